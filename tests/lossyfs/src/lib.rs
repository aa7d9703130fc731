//! A filesystem for tests that loses what was not synced, as a machine losing power does
//! (LazyFS-like): file data is durable once the file is fsynced, a directory entry change
//! (create, mkdir, rename, unlink, rmdir) once its parent directory is fsynced, and
//! [`LossyFs::power_cut`] drops everything else. It also injects ENOSPC and EIO on command.
//!
//! It is mounted with FUSE from the test process itself (the `fuser` crate; mount(2) as root,
//! `fusermount3` otherwise) and keeps all content in memory. It is for tests only: nothing it holds
//! survives the process, and it models durability, not performance.

mod fs;
mod model;

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use fuser::{BackgroundSession, Config, MountOption};

use crate::fs::LossyFilesystem;
use crate::model::Model;

/// How a power cut treats the last write not yet synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tear {
    /// Every unsynced write is lost whole.
    None,
    /// The first half of each file's last unsynced write reaches the disk (a torn write).
    LastWrite,
}

/// A fault injected until set back to [`Fault::None`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Every write, create, mkdir and fallocate fails ENOSPC; statfs reports 0 free.
    NoSpace,
    /// Every write and fallocate fails EIO.
    WriteEio,
    /// fsync/fdatasync fail EIO and the file's unsynced data never reaches the disk (as Linux
    /// after a failed writeback: still readable until the power goes, a retried fsync succeeds).
    FsyncEio,
}

/// What the filesystem holds and has done, for tests to assert on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes that would survive a power cut now (files' durable contents).
    pub durable_bytes: u64,
    /// Bytes written but not yet fsynced.
    pub unsynced_bytes: u64,
    /// Successful fsyncs of files and directories.
    pub fsyncs: u64,
    /// Operations failed by an injected [`Fault`].
    pub faults_injected: u64,
    /// Power cuts so far.
    pub power_cuts: u64,
    /// Inodes held (files and directories, the root included).
    pub inodes: u64,
}

pub(crate) struct State {
    /// Bumped by each power cut: requests through an older mount fail with EIO.
    pub(crate) generation: u64,
    pub(crate) model: Model,
}

pub(crate) struct Shared {
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in a request handler must not make every later request panic too.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Inner {
    shared: Arc<Shared>,
    mountpoint: PathBuf,
    session: Mutex<Option<BackgroundSession>>,
}

/// A mounted lossy filesystem. Clones share it; it unmounts when the last clone drops.
#[derive(Clone)]
pub struct LossyFs {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LossyFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LossyFs")
            .field("mountpoint", &self.inner.mountpoint)
            .finish()
    }
}

/// Kernel request threads per mount: one can wait on a slow reply while another serves a read.
const THREADS: usize = 2;

fn config() -> Config {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("herald-lossyfs".into()),
        MountOption::Subtype("herald-lossyfs".into()),
        MountOption::DefaultPermissions,
    ];
    config.n_threads = Some(THREADS);
    config.clone_fd = true;
    config
}

impl LossyFs {
    /// Ok(()) where /dev/fuse can be used; Err(reason) otherwise (tests skip with that reason).
    pub fn available() -> Result<(), String> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .map_err(|e| format!("cannot open /dev/fuse ({e}): FUSE is not available here"))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        if !root && !on_path("fusermount3") && !on_path("fusermount") {
            return Err("not root and no fusermount3 on PATH (Debian package fuse3)".into());
        }
        Ok(())
    }

    /// Mounts a new empty filesystem on `mountpoint` (an existing empty directory).
    pub fn mount(mountpoint: &Path) -> io::Result<LossyFs> {
        let mut entries = std::fs::read_dir(mountpoint)?;
        if entries.next().is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "mountpoint {} is not empty: LossyFs mounts on an empty directory",
                    mountpoint.display()
                ),
            ));
        }
        // SAFETY: getuid/getgid have no preconditions and cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                generation: 0,
                model: Model::new(uid, gid),
            }),
        });
        let session = spawn(&shared, 0, mountpoint)?;
        Ok(LossyFs {
            inner: Arc::new(Inner {
                shared,
                mountpoint: mountpoint.to_path_buf(),
                session: Mutex::new(Some(session)),
            }),
        })
    }

    /// The directory it is mounted on.
    pub fn mountpoint(&self) -> &Path {
        &self.inner.mountpoint
    }

    /// The machine loses power: every write, truncate, create, rename, unlink not yet made
    /// durable is dropped (Tear::LastWrite keeps a prefix of each file's last unsynced write).
    /// Processes using it must be dead first (kill them); the call remounts so no kernel cache
    /// survives. A handle still open through the old mount (in the test process) reaches nothing
    /// from now on: its writes and syncs are discarded, its reads fail with EIO.
    pub fn power_cut(&self, tear: Tear) -> io::Result<()> {
        let generation = {
            let mut state = self.inner.shared.lock();
            state.generation += 1;
            state.model.power_cut(tear);
            state.generation
        };
        let mut session = self.inner.session.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = session.take() {
            unmount(old, &self.inner.mountpoint);
        }
        *session = Some(spawn(
            &self.inner.shared,
            generation,
            &self.inner.mountpoint,
        )?);
        Ok(())
    }

    /// Injects `fault` until set back to [`Fault::None`].
    pub fn set_fault(&self, fault: Fault) {
        self.inner.shared.lock().model.fault = fault;
    }

    /// Optional capacity: writes past it fail ENOSPC; statfs reports capacity - used.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.inner.shared.lock().model.capacity = bytes;
    }

    pub fn stats(&self) -> Stats {
        self.inner.shared.lock().model.stats()
    }
}

fn spawn(
    shared: &Arc<Shared>,
    generation: u64,
    mountpoint: &Path,
) -> io::Result<BackgroundSession> {
    let fs = LossyFilesystem {
        shared: shared.clone(),
        generation,
    };
    fuser::spawn_mount(fs, mountpoint, &config()).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("mounting LossyFs on {}: {e}", mountpoint.display()),
        )
    })
}

/// Unmounts; a mount still in use (a process's cwd, a handle the test holds) is detached lazily
/// instead: it disappears from the tree now and its session ends with the last handle.
fn unmount(session: BackgroundSession, mountpoint: &Path) {
    if session.umount_and_join().is_err() {
        if let Ok(path) = std::ffi::CString::new(mountpoint.as_os_str().as_encoded_bytes()) {
            // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
            unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

impl Drop for Inner {
    fn drop(&mut self) {
        let session = self.session.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = session.take() {
            unmount(s, &self.mountpoint);
        }
    }
}
