//! Snapshot files and the directory that holds them.
//!
//! A snapshot file is `meta length u32 (big-endian), meta (JSON), data` (the data in
//! [`super::format`]). The directory holds the current snapshot (`snapshot-v1.bin`, the layout
//! every version so far wrote) and temporary files: one being built, or received from the
//! leader. A file becomes current only whole and synced, by an atomic rename followed by a sync
//! of the directory, so a crash leaves the old current snapshot or the new one, never a part.
//!
//! [`SnapshotFile`] is what openraft moves around as the snapshot's data: an open file, not its
//! bytes. An open file keeps reading the same bytes after a newer snapshot is renamed over its
//! path, so a snapshot being sent to a follower stays consistent while the next one is built.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::format::invalid;
use crate::types::SnapshotMeta;

/// Name of the current snapshot in its directory.
const CURRENT: &str = "snapshot-v1.bin";
/// Every temporary file ends so; what a crash left of them is removed at the next start.
const TEMPORARY_SUFFIX: &str = ".tmp";
/// Longest meta accepted from a file (a membership of a few nodes is a few hundred bytes).
const MAX_META_LEN: u64 = 1 << 20;
/// Buffer of a reader or writer of snapshot data.
pub(crate) const IO_BUFFER: usize = 1 << 20;

/// A snapshot's data on disk, open for reading.
///
/// A file received from the leader is temporary until it is installed: dropped before that (a
/// transfer refused, a snapshot openraft decided not to install), it is removed.
#[derive(Debug)]
pub struct SnapshotFile {
    path: PathBuf,
    file: File,
    data_offset: u64,
    data_len: u64,
    temporary: bool,
}

impl SnapshotFile {
    /// Opens a snapshot file and reads its meta; checks that the meta's length fits the file.
    pub fn open(path: &Path) -> io::Result<(SnapshotMeta, SnapshotFile)> {
        let mut file = File::open(path)?;
        let file_len = file.metadata()?.len();
        let mut len = [0u8; 4];
        file.read_exact(&mut len)
            .map_err(|_| invalid("snapshot file truncated"))?;
        let meta_len = u32::from_be_bytes(len) as u64;
        if meta_len > MAX_META_LEN || 4 + meta_len > file_len {
            return Err(invalid(format!(
                "snapshot file {}: meta of {meta_len} bytes does not fit",
                path.display()
            )));
        }
        let mut meta = vec![0u8; meta_len as usize];
        file.read_exact(&mut meta)
            .map_err(|_| invalid("snapshot file truncated"))?;
        let meta: SnapshotMeta = serde_json::from_slice(&meta).map_err(invalid)?;
        let data_offset = 4 + meta_len;
        let snapshot = SnapshotFile {
            path: path.to_path_buf(),
            file,
            data_offset,
            data_len: file_len - data_offset,
            temporary: false,
        };
        Ok((meta, snapshot))
    }

    /// The data's length in bytes.
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A buffered reader of the whole data, from its first byte, independent of other readers.
    pub fn data_reader(&self) -> io::Result<impl io::BufRead> {
        let mut file = self.file.try_clone()?;
        file.seek(SeekFrom::Start(self.data_offset))?;
        Ok(BufReader::with_capacity(
            IO_BUFFER,
            file.take(self.data_len),
        ))
    }

    /// Fills `buf` from the data at `offset` (which with `buf` must lie within the data).
    pub fn read_data_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if offset + buf.len() as u64 > self.data_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "read past the snapshot's data",
            ));
        }
        self.file.read_exact_at(buf, self.data_offset + offset)
    }

    /// Makes the file's content durable.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    pub(crate) fn mark_temporary(&mut self) {
        self.temporary = true;
    }

    /// The file was moved to `path` (and must no longer be removed when dropped).
    pub(crate) fn moved_to(&mut self, path: PathBuf) {
        self.path = path;
        self.temporary = false;
    }
}

impl Drop for SnapshotFile {
    fn drop(&mut self) {
        if self.temporary {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), "removing a snapshot file: {e}");
            }
        }
    }
}

/// Writes a snapshot file's meta.
pub fn write_meta(out: &mut impl Write, meta: &SnapshotMeta) -> io::Result<()> {
    let json = serde_json::to_vec(meta).map_err(invalid)?;
    out.write_all(&(json.len() as u32).to_be_bytes())?;
    out.write_all(&json)
}

/// The directory of a node's snapshots.
#[derive(Debug)]
pub struct SnapshotDir {
    dir: PathBuf,
    next_temporary: AtomicU64,
    /// Held by an install for its whole length, and by a build while it takes its view of the
    /// projection and while it makes its file current: a build never sees a half-installed
    /// projection, nor replaces a snapshot installed while it was writing.
    swap: Mutex<()>,
}

impl SnapshotDir {
    /// Creates the directory if needed and removes what a crash left of temporary files.
    pub fn open(dir: &Path) -> io::Result<Self> {
        crate::durable_fs::create_dir_durable(dir)?;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let leftover = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(TEMPORARY_SUFFIX));
            if leftover {
                tracing::info!(path = %path.display(), "removing an unfinished snapshot file");
                std::fs::remove_file(&path)?;
            }
        }
        Ok(SnapshotDir {
            dir: dir.to_path_buf(),
            next_temporary: AtomicU64::new(0),
            swap: Mutex::new(()),
        })
    }

    pub fn current_path(&self) -> PathBuf {
        self.dir.join(CURRENT)
    }

    /// The current snapshot, if there is one.
    pub fn open_current(&self) -> io::Result<Option<(SnapshotMeta, SnapshotFile)>> {
        match SnapshotFile::open(&self.current_path()) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a new temporary file, named for what it is (`build`, `received`).
    pub fn create_temporary(&self, kind: &str) -> io::Result<(PathBuf, File)> {
        let n = self.next_temporary.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{kind}-{n}{TEMPORARY_SUFFIX}"));
        let file = File::options().write(true).create_new(true).open(&path)?;
        Ok((path, file))
    }

    pub(crate) fn lock_swap(&self) -> MutexGuard<'_, ()> {
        // The guard protects no data, so a panic while it was held leaves nothing inconsistent.
        self.swap
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes the synced file at `from` the current snapshot.
    pub(crate) fn make_current(&self, from: &Path) -> io::Result<PathBuf> {
        let to = self.current_path();
        if from != to {
            crate::durable_fs::rename_durable(from, &to)?;
        }
        Ok(to)
    }
}
