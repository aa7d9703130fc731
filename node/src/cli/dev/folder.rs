//! The dev cluster's folder (configs, data, logs, `cluster.json`, the control socket) and the
//! lock that makes one `herald dev` its only writer. The lock is taken before anything in the
//! folder is written or deleted, so a second `herald dev` on the same folder refuses with the
//! first one's pid and leaves the first cluster's files alone.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::DevError;

/// Holds the folder's lock (`flock`) for as long as the value lives; the kernel drops it when
/// the process dies, so a crashed `herald dev` leaves no stale lock behind.
pub const LOCK_FILE: &str = "dev.lock";
/// The control socket `herald dev start-node` talks to.
pub const SOCKET_FILE: &str = "dev.sock";
pub const CLUSTER_FILE: &str = "cluster.json";

pub struct DevFolder {
    dir: PathBuf,
    /// Kept open: closing it would release the lock.
    _lock: File,
    /// The folder did not exist before this `herald dev`: a refusal may remove it again.
    created: bool,
}

impl DevFolder {
    /// Creates the folder if needed and locks it, or says which process holds it.
    pub fn lock(dir: &Path) -> Result<DevFolder, DevError> {
        let io = |e: std::io::Error| DevError::Folder {
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        };
        let created = !dir.exists();
        std::fs::create_dir_all(dir).map_err(io)?;
        let dir = std::fs::canonicalize(dir).map_err(io)?;
        // No truncation on open: the holder's pid in it is what a refused second run reports.
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(DevError::FolderInUse {
                    dir,
                    pid: if holder.is_empty() {
                        "unknown".into()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        lock.set_len(0).map_err(io)?;
        writeln!(lock, "{}", std::process::id()).map_err(io)?;
        Ok(DevFolder {
            dir,
            _lock: lock,
            created,
        })
    }

    /// The folder's canonical path.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `--fresh`: removes everything in the folder but the lock.
    pub fn empty(&self) -> std::io::Result<()> {
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_name() == LOCK_FILE || entry.file_name() == SOCKET_FILE {
                continue;
            }
            if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(entry.path())?;
            } else {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }

    /// After a refusal: leaves no trace of this run in a folder it created itself (an existing
    /// folder keeps its lock file, which is harmless).
    pub fn abandon(self) {
        if self.created {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Writes `name` whole or not at all (a reader never sees half a `cluster.json`).
    pub fn write_atomically(&self, name: &str, contents: &str) -> std::io::Result<()> {
        let temporary = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&temporary, contents)?;
        std::fs::rename(&temporary, self.dir.join(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_folder_is_refused_with_the_holders_pid() {
        let parent = tempfile::tempdir().expect("a temp dir");
        let dir = parent.path().join("cluster");
        let first = DevFolder::lock(&dir).expect("the first lock");
        std::fs::write(first.join("node1.log"), "kept\n").expect("a log");
        let err = match DevFolder::lock(&dir) {
            Ok(_) => panic!("a second lock on a locked folder was granted"),
            Err(e) => e,
        };
        let text = err.to_string();
        assert!(
            text.contains(&format!("in use by pid {}", std::process::id())),
            "{text}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("node1.log")).expect("the log"),
            "kept\n"
        );
        drop(first);
        DevFolder::lock(&dir).expect("the lock once the first holder is gone");
    }

    #[test]
    fn fresh_empties_everything_but_the_lock() {
        let parent = tempfile::tempdir().expect("a temp dir");
        let folder = DevFolder::lock(parent.path()).expect("the lock");
        std::fs::create_dir(folder.join("node1")).expect("a data dir");
        std::fs::write(folder.join("node1.log"), "old").expect("a log");
        folder.empty().expect("emptying");
        let left: Vec<_> = std::fs::read_dir(folder.path())
            .expect("listing")
            .map(|e| e.expect("an entry").file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from(LOCK_FILE)]);
    }
}
