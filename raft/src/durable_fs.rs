//! Creating, renaming and writing files and directories so that a power loss keeps them: the one
//! place Herald makes directory entries durable.
//!
//! A file's fsync makes its bytes durable, not its name: the entry lives in the parent directory,
//! which must be fsynced too (a new directory's entry in its parent, likewise, all the way up to
//! the first directory that already existed). Without it a node's data directory, its database
//! directory or a renamed snapshot can vanish on a power loss although everything inside was
//! synced. Configuration written by tools (`herald dev`'s files) is not data and does not use
//! this; RocksDB makes the entries inside its own directory durable itself.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// fsyncs a directory: the entries created, renamed or removed in it become durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// fsyncs the directory holding `path` (the current directory for a bare name).
pub fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => fsync_dir(dir),
        _ => fsync_dir(Path::new(".")),
    }
}

/// `create_dir_all`, durably: every directory it creates is fsynced, and so is its parent, so
/// the whole path survives a power loss. An existing directory is left as it is.
pub fn create_dir_durable(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durable(parent)?;
    }
    match std::fs::create_dir(path) {
        Ok(()) => {}
        // Another thread or process made it meanwhile: its entry still needs the parent's sync.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
        Err(e) => return Err(e),
    }
    sync_parent(path)
}

/// rename(2), durably: both directories are fsynced afterwards (one when they are the same).
/// The caller syncs the file's content before.
pub fn rename_durable(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    sync_parent(to)?;
    if from.parent() != to.parent() {
        sync_parent(from)?;
    }
    Ok(())
}

/// Writes `bytes` to a new or truncated file at `path` and makes file and entry durable.
pub fn write_durable(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    sync_parent(path)
}

/// Removes a file and makes its removal durable; a file already gone is not an error.
pub fn remove_file_durable(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    sync_parent(path)
}

#[cfg(test)]
mod tests {
    //! On a filesystem that loses what was not fsynced: what these helpers create survives a
    //! power cut, what plain std::fs creates does not (the second half shows the test can tell).

    use super::*;
    use herald_lossyfs::{LossyFs, Tear};

    fn mounted() -> Option<(tempfile::TempDir, LossyFs)> {
        if let Err(reason) = LossyFs::available() {
            eprintln!("SKIPPED: {reason}");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let fs = LossyFs::mount(dir.path()).expect("mount");
        Some((dir, fs))
    }

    #[test]
    fn created_directories_and_renamed_files_survive_a_power_cut() {
        let Some((dir, fs)) = mounted() else { return };
        let data = dir.path().join("var/lib/herald/node1");
        create_dir_durable(&data).unwrap();
        let tmp = data.join("file.tmp");
        let mut f = File::create(&tmp).unwrap();
        f.write_all(b"content").unwrap();
        f.sync_all().unwrap();
        drop(f);
        rename_durable(&tmp, &data.join("file")).unwrap();
        write_durable(&data.join("marker"), b"m").unwrap();

        let plain = dir.path().join("plain/dir");
        std::fs::create_dir_all(&plain).unwrap();
        fs.power_cut(Tear::None).unwrap();

        assert_eq!(std::fs::read(data.join("file")).unwrap(), b"content");
        assert!(!tmp.exists());
        assert_eq!(std::fs::read(data.join("marker")).unwrap(), b"m");
        assert!(!plain.exists(), "the power cut kept an entry never synced");
        remove_file_durable(&data.join("marker")).unwrap();
        fs.power_cut(Tear::None).unwrap();
        assert!(!data.join("marker").exists());
    }
}
