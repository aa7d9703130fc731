//! Real mounts: each test mounts a LossyFs in a temporary directory, works through std::fs (and
//! RocksDB), cuts the power and checks what survived. Skipped, with the reason printed, where
//! /dev/fuse cannot be used.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::Path;

use herald_lossyfs::{Fault, LossyFs, Tear};

/// A mounted filesystem and the temporary directory it is mounted on (unmounted first on drop).
struct Mounted {
    fs: LossyFs,
    _dir: tempfile::TempDir,
}

fn mount() -> Option<Mounted> {
    if let Err(reason) = LossyFs::available() {
        eprintln!("SKIPPED: {reason}");
        return None;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let fs = LossyFs::mount(dir.path()).expect("mount LossyFs");
    Some(Mounted { fs, _dir: dir })
}

impl Mounted {
    fn path(&self, name: &str) -> std::path::PathBuf {
        self.fs.mountpoint().join(name)
    }
}

fn fsync_dir(dir: &Path) {
    File::open(dir)
        .expect("open dir")
        .sync_all()
        .expect("fsync dir");
}

fn read(path: &Path) -> Option<Vec<u8>> {
    match fs::read(path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => panic!("reading {}: {e}", path.display()),
    }
}

#[test]
fn unsynced_write_is_lost_on_power_cut_and_fsynced_survives() {
    let Some(m) = mount() else { return };
    let path = m.path("wal");
    let mut f = File::create(&path).unwrap();
    fsync_dir(m.fs.mountpoint());
    f.write_all(b"acknowledged;").unwrap();
    f.sync_data().unwrap();
    f.write_all(b"not synced").unwrap();
    assert_eq!(read(&path).unwrap(), b"acknowledged;not synced");
    let stats = m.fs.stats();
    assert_eq!(stats.durable_bytes, 13);
    assert_eq!(stats.unsynced_bytes, 10);
    drop(f);
    m.fs.power_cut(Tear::None).unwrap();
    assert_eq!(read(&path).unwrap(), b"acknowledged;");
    assert_eq!(m.fs.stats().power_cuts, 1);
}

#[test]
fn created_file_vanishes_without_a_directory_fsync() {
    let Some(m) = mount() else { return };
    fs::create_dir(m.path("kept")).unwrap();
    fsync_dir(m.fs.mountpoint());
    let mut f = File::create(m.path("kept/synced")).unwrap();
    f.write_all(b"data").unwrap();
    f.sync_all().unwrap();
    fsync_dir(&m.path("kept"));
    let mut g = File::create(m.path("kept/file-only-synced")).unwrap();
    g.write_all(b"data").unwrap();
    g.sync_all().unwrap();
    fs::create_dir(m.path("lost-dir")).unwrap();
    drop((f, g));
    m.fs.power_cut(Tear::None).unwrap();
    assert_eq!(read(&m.path("kept/synced")).unwrap(), b"data");
    assert_eq!(read(&m.path("kept/file-only-synced")), None);
    assert!(!m.path("lost-dir").exists());
    let names: Vec<_> = fs::read_dir(m.fs.mountpoint())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["kept"]);
}

#[test]
fn rename_is_durable_only_after_the_directory_fsync() {
    let Some(m) = mount() else { return };
    let write_synced = |name: &str, data: &[u8]| {
        let mut f = File::create(m.path(name)).unwrap();
        f.write_all(data).unwrap();
        f.sync_all().unwrap();
    };
    write_synced("CURRENT", b"old");
    write_synced("CURRENT.tmp", b"new");
    fsync_dir(m.fs.mountpoint());
    fs::rename(m.path("CURRENT.tmp"), m.path("CURRENT")).unwrap();
    assert_eq!(read(&m.path("CURRENT")).unwrap(), b"new");
    m.fs.power_cut(Tear::None).unwrap();
    // The rename was never made durable: the old name and the old target are back.
    assert_eq!(read(&m.path("CURRENT")).unwrap(), b"old");
    assert_eq!(read(&m.path("CURRENT.tmp")).unwrap(), b"new");

    fs::rename(m.path("CURRENT.tmp"), m.path("CURRENT")).unwrap();
    fsync_dir(m.fs.mountpoint());
    m.fs.power_cut(Tear::None).unwrap();
    assert_eq!(read(&m.path("CURRENT")).unwrap(), b"new");
    assert_eq!(read(&m.path("CURRENT.tmp")), None);
}

#[test]
fn unlink_is_undone_without_a_directory_fsync() {
    let Some(m) = mount() else { return };
    let mut f = File::create(m.path("f")).unwrap();
    f.write_all(b"x").unwrap();
    f.sync_all().unwrap();
    fsync_dir(m.fs.mountpoint());
    drop(f);
    fs::remove_file(m.path("f")).unwrap();
    m.fs.power_cut(Tear::None).unwrap();
    assert_eq!(read(&m.path("f")).unwrap(), b"x");
}

#[test]
fn torn_last_write_keeps_a_prefix_of_it() {
    let Some(m) = mount() else { return };
    let mut f = File::create(m.path("log")).unwrap();
    fsync_dir(m.fs.mountpoint());
    f.write_all(b"synced|").unwrap();
    f.sync_data().unwrap();
    f.write_all(b"lost-whole|").unwrap();
    f.write_all(b"torn-half!").unwrap();
    drop(f);
    m.fs.power_cut(Tear::LastWrite).unwrap();
    // The earlier unsynced write is gone; the first half of the last one reached the disk.
    let mut expected = b"synced|".to_vec();
    expected.extend_from_slice(&[0; 11]);
    expected.extend_from_slice(b"torn-");
    assert_eq!(read(&m.path("log")).unwrap(), expected);
}

fn statvfs_free(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a zeroed statvfs is a valid out-parameter; `c` is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    st.f_bavail * st.f_frsize
}

#[test]
fn injected_enospc_and_eio_and_capacity_show_in_writes_and_statfs() {
    let Some(m) = mount() else { return };
    let mut f = File::create(m.path("f")).unwrap();
    f.write_all(b"before").unwrap();

    m.fs.set_fault(Fault::NoSpace);
    assert_eq!(statvfs_free(m.fs.mountpoint()), 0);
    let e = f.write_all(b"more").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    let e = File::create(m.path("g")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");

    m.fs.set_fault(Fault::WriteEio);
    let e = f.write_all(b"more").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");

    m.fs.set_fault(Fault::None);
    f.write_all(b"+after").unwrap();
    assert_eq!(read(&m.path("f")).unwrap(), b"before+after");
    assert!(m.fs.stats().faults_injected >= 3);

    m.fs.set_capacity(Some(4096 * 4));
    let free = statvfs_free(m.fs.mountpoint());
    assert_eq!(free, 4096 * 4 - 4096, "capacity 16 KiB, 12 bytes used");
    let e = f.write_all(&[7u8; 4096 * 4]).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    m.fs.set_capacity(None);
    f.write_all(&[7u8; 4096 * 4]).unwrap();
}

#[test]
fn fsync_eio_drops_the_unsynced_data() {
    let Some(m) = mount() else { return };
    let mut f = File::create(m.path("f")).unwrap();
    fsync_dir(m.fs.mountpoint());
    f.write_all(b"durable;").unwrap();
    f.sync_all().unwrap();
    f.write_all(b"doomed").unwrap();
    m.fs.set_fault(Fault::FsyncEio);
    let e = f.sync_data().unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    m.fs.set_fault(Fault::None);
    // Like Linux after a failed writeback: the retry "succeeds", the data never reaches the disk.
    f.sync_data().unwrap();
    drop(f);
    m.fs.power_cut(Tear::None).unwrap();
    assert_eq!(read(&m.path("f")).unwrap(), b"durable;");
}

#[test]
fn a_handle_kept_open_across_the_cut_cannot_write_to_the_new_disk() {
    let Some(m) = mount() else { return };
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(m.path("f"))
        .unwrap();
    f.write_all(b"a").unwrap();
    f.sync_all().unwrap();
    fsync_dir(m.fs.mountpoint());
    m.fs.power_cut(Tear::None).unwrap();
    // The dead machine's writes go nowhere: "accepted", never seen.
    f.write_all(b"after the cut").unwrap();
    f.sync_all().unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    assert!(f.read(&mut [0u8; 8]).is_err());
    drop(f);
    assert_eq!(read(&m.path("f")).unwrap(), b"a");
}

fn rocksdb_opts() -> rocksdb::Options {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:06}").into_bytes()
}

/// RocksDB on the lossy filesystem: writes acknowledged after `flush_wal(true)` survive a cut,
/// later unsynced ones are lost. The DB stays open through the cut (as a process killed by a power
/// loss never closes it): the old handle is then cut off from the new mount.
#[test]
fn rocksdb_keeps_synced_writes_and_loses_unsynced_ones() {
    let Some(m) = mount() else { return };
    let path = m.path("db");
    // RocksDB fsyncs the files and entries inside its directory, never the directory's own
    // entry in its parent: that is the caller's job (without it the whole DB vanishes).
    fs::create_dir(&path).unwrap();
    fsync_dir(m.fs.mountpoint());
    let db = rocksdb::DB::open(&rocksdb_opts(), &path).unwrap();
    for i in 0..500 {
        db.put(key(i), b"synced").unwrap();
    }
    db.flush_wal(true).unwrap();
    for i in 500..1000 {
        db.put(key(i), b"unsynced").unwrap();
    }
    assert!(m.fs.stats().unsynced_bytes > 0);
    m.fs.power_cut(Tear::None).unwrap();
    drop(db);

    let db = rocksdb::DB::open(&rocksdb_opts(), &path).unwrap();
    for i in 0..500 {
        assert_eq!(
            db.get(key(i)).unwrap().as_deref(),
            Some(&b"synced"[..]),
            "acknowledged key {i} lost"
        );
    }
    let survived = (500..1000)
        .filter(|&i| db.get(key(i)).unwrap().is_some())
        .count();
    assert_eq!(survived, 0, "unsynced writes survived the power cut");
    // Still usable after recovery, and across a second cut.
    db.put(b"after", b"recovery").unwrap();
    db.flush_wal(true).unwrap();
    m.fs.power_cut(Tear::LastWrite).unwrap();
    drop(db);
    let db = rocksdb::DB::open(&rocksdb_opts(), &path).unwrap();
    assert_eq!(db.get(b"after").unwrap().as_deref(), Some(&b"recovery"[..]));
    assert_eq!(db.get(key(0)).unwrap().as_deref(), Some(&b"synced"[..]));
}

/// What RocksDB leaves to its caller: a DB directory it created is not durable in its parent.
#[test]
fn rocksdb_directory_not_fsynced_in_its_parent_vanishes() {
    let Some(m) = mount() else { return };
    let path = m.path("db");
    let db = rocksdb::DB::open(&rocksdb_opts(), &path).unwrap();
    db.put(b"k", b"v").unwrap();
    db.flush_wal(true).unwrap();
    m.fs.power_cut(Tear::None).unwrap();
    drop(db);
    assert!(
        !path.exists(),
        "the DB directory survived without its parent's fsync"
    );
}

/// A Unix socket can be bound on it (`herald dev`'s control socket), and its entry follows the
/// same durability rule as a file's.
#[test]
fn unix_sockets_bind_and_follow_the_entry_rules() {
    let Some(m) = mount() else { return };
    let path = m.path("dev.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let client = std::os::unix::net::UnixStream::connect(&path).unwrap();
    drop((client, listener));
    assert!(path.exists());
    m.fs.power_cut(Tear::None).unwrap();
    assert!(!path.exists(), "the socket's entry was never made durable");
}
