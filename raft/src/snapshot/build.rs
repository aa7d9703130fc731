//! Building a snapshot: one consistent RocksDB view of the projection, written record by record
//! into a temporary file that becomes the current snapshot once synced.
//!
//! Memory stays bounded by one record and the writer's buffer, whatever the projection holds.
//! Blocking: callers run it off the async runtime.

use std::io::{self, BufWriter};
use std::path::Path;

use rocksdb::{IteratorMode, ReadOptions, DB};

use super::file::{write_meta, SnapshotDir, SnapshotFile, IO_BUFFER};
use super::format::{invalid, RecordWriter};
use crate::db::{self, CF_SM_META, PROJECTION_CFS};
use crate::keys;
use crate::types::{LogId, SnapshotMeta, StoredMembership};

/// Builds a snapshot of the projection as it is now and makes it the current one. If a newer
/// snapshot was installed while this one was written, that one stays current and is returned.
pub fn build(db: &DB, dir: &SnapshotDir) -> io::Result<(SnapshotMeta, SnapshotFile)> {
    let (path, file) = dir.create_temporary("build")?;
    let mut removal = RemoveOnError(Some(&path));
    let guard = dir.lock_swap();
    // The log behind this snapshot will be purged, so what it covers must be on disk.
    db.flush_wal(true).map_err(io::Error::other)?;
    let view = db.snapshot();
    drop(guard);
    let meta = meta_of(db, &view)?;

    let records = write_projection(db, &view, &meta, BufWriter::with_capacity(IO_BUFFER, file))?;
    drop(view);
    let bytes = records.written();
    let file = records
        .into_inner()
        .into_inner()
        .map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);

    let _guard = dir.lock_swap();
    if let Some((current_meta, current)) = dir.open_current()? {
        if current_meta.last_log_id > meta.last_log_id {
            tracing::info!(
                built = ?meta.last_log_id,
                current = ?current_meta.last_log_id,
                "a newer snapshot was installed while this one was built; keeping it"
            );
            std::fs::remove_file(&path)?;
            removal.0 = None;
            return Ok((current_meta, current));
        }
    }
    let current = dir.make_current(&path)?;
    removal.0 = None;
    tracing::info!(last_log_id = ?meta.last_log_id, bytes, "built snapshot");
    let (meta_read, snapshot) = SnapshotFile::open(&current)?;
    if meta_read != meta {
        return Err(invalid("the snapshot file changed under its builder"));
    }
    Ok((meta, snapshot))
}

/// Writes the snapshot file layout of `view` to `out`: `meta`, then every projection record, one
/// at a time. The snapshot builder and the backup export share it, so a backup is a snapshot.
pub(crate) fn write_projection<W: io::Write>(
    db: &DB,
    view: &rocksdb::Snapshot<'_>,
    meta: &SnapshotMeta,
    mut out: W,
) -> io::Result<RecordWriter<W>> {
    write_meta(&mut out, meta)?;
    let mut records = RecordWriter::new(out)?;
    for (index, name) in PROJECTION_CFS.iter().enumerate() {
        // A scan of everything: keep it from evicting what the node reads while applying.
        let mut opts = ReadOptions::default();
        opts.fill_cache(false);
        for item in view.iterator_cf_opt(db::cf(db, name), opts, IteratorMode::Start) {
            let (key, value) = item.map_err(io::Error::other)?;
            records.write(index, &key, &value)?;
        }
    }
    Ok(records)
}

/// The applied state and membership the view covers.
pub(crate) fn meta_of(db: &DB, view: &rocksdb::Snapshot<'_>) -> io::Result<SnapshotMeta> {
    let meta_cf = db::cf(db, CF_SM_META);
    let last_log_id: Option<LogId> = view
        .get_cf(meta_cf, keys::META_LAST_APPLIED)
        .map_err(io::Error::other)?
        .map(|b| serde_json::from_slice::<Option<LogId>>(&b))
        .transpose()
        .map_err(invalid)?
        .flatten();
    let last_membership: StoredMembership = view
        .get_cf(meta_cf, keys::META_MEMBERSHIP)
        .map_err(io::Error::other)?
        .map(|b| serde_json::from_slice(&b))
        .transpose()
        .map_err(invalid)?
        .unwrap_or_default();
    Ok(SnapshotMeta {
        last_log_id,
        last_membership,
    })
}

/// Removes a temporary file unless disarmed: a build that fails leaves nothing behind.
struct RemoveOnError<'a>(Option<&'a Path>);

impl Drop for RemoveOnError<'_> {
    fn drop(&mut self) {
        if let Some(path) = self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}
