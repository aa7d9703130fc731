//! The FUSE adapter: kernel requests in, `Model` calls, replies out. It holds no state of its own
//! besides the mount generation it serves: after a power cut the model's generation moves on and
//! requests still arriving through an old mount (a handle kept open in the test process, such as
//! a RocksDB instance dropped after the cut) reach nothing. Their writes, syncs and closes are
//! answered with success and discarded, as a dead machine's writes go nowhere (RocksDB aborts on
//! an assertion when closing after I/O errors); lookups and reads fail with EIO.
//!
//! Entries and attributes are given a zero TTL and files are opened `direct_io`, so the kernel
//! caches nothing the model does not know; the power cut also remounts.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::model::{Attr, Model, NodeKind};
use crate::Shared;

const TTL: Duration = Duration::ZERO;
const BLOCK: u64 = 4096;

pub(crate) struct LossyFilesystem {
    pub(crate) shared: Arc<Shared>,
    pub(crate) generation: u64,
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.meta.atime,
        mtime: a.meta.mtime,
        ctime: a.meta.ctime,
        crtime: a.meta.ctime,
        kind: file_type(a.kind),
        perm: a.meta.perm,
        nlink: if a.kind == NodeKind::Dir { 2 } else { 1 },
        uid: a.meta.uid,
        gid: a.meta.gid,
        rdev: 0,
        blksize: BLOCK as u32,
        flags: 0,
    }
}

fn file_type(kind: NodeKind) -> FileType {
    match kind {
        NodeKind::File => FileType::RegularFile,
        NodeKind::Dir => FileType::Directory,
        NodeKind::Socket => FileType::Socket,
        NodeKind::Fifo => FileType::NamedPipe,
    }
}

fn time_of(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl LossyFilesystem {
    /// Whether this mount is older than the last power cut.
    /// fsync and fsyncdir alike: a file's data or a directory's entries become durable. A
    /// handle of a mount that was power-cut syncs nothing and is told all is well (its process is
    /// dead or about to be; an error would make Debian's RocksDB abort on close).
    fn sync(&self, ino: INodeNo, reply: ReplyEmpty) {
        if self.stale() {
            reply.ok();
            return;
        }
        match self.with(|m| m.fsync(ino.0)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn stale(&self) -> bool {
        self.shared.lock().generation != self.generation
    }

    /// Runs `f` on the model if this mount is still the live one.
    fn with<T>(&self, f: impl FnOnce(&mut Model) -> Result<T, Errno>) -> Result<T, Errno> {
        let mut guard = self.shared.lock();
        if guard.generation != self.generation {
            return Err(Errno::EIO);
        }
        f(&mut guard.model)
    }
}

impl Filesystem for LossyFilesystem {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.with(|m| m.lookup(parent.0, name)) {
            Ok(a) => reply.entry(&TTL, &file_attr(&a), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.with(|m| m.attr(ino.0)) {
            Ok(a) => reply.attr(&TTL, &file_attr(&a)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        if self.stale() {
            let attr = Attr {
                ino: ino.0,
                kind: NodeKind::File,
                size: size.unwrap_or(0),
                meta: crate::model::Meta::new(0o644, 0, 0),
            };
            reply.attr(&TTL, &file_attr(&attr));
            return;
        }
        let result = self.with(|m| {
            if let Some(len) = size {
                m.set_len(ino.0, len)?;
            }
            m.set_meta(
                ino.0,
                mode.map(|m| (m & 0o7777) as u16),
                uid,
                gid,
                atime.map(time_of),
                mtime.map(time_of),
            )?;
            m.attr(ino.0)
        });
        match result {
            Ok(a) => reply.attr(&TTL, &file_attr(&a)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let perm = (mode & !umask & 0o7777) as u16;
        match self.with(|m| m.mkdir(parent.0, name, perm, req.uid(), req.gid())) {
            Ok(a) => reply.entry(&TTL, &file_attr(&a), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let kind = match mode & libc::S_IFMT {
            libc::S_IFSOCK => NodeKind::Socket,
            libc::S_IFIFO => NodeKind::Fifo,
            libc::S_IFREG => NodeKind::File,
            _ => {
                reply.error(Errno::EPERM);
                return;
            }
        };
        let perm = (mode & !umask & 0o7777) as u16;
        match self.with(|m| m.mknod(parent.0, name, kind, perm, req.uid(), req.gid())) {
            Ok(a) => reply.entry(&TTL, &file_attr(&a), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if self.stale() {
            reply.ok();
            return;
        }
        match self.with(|m| m.unlink(parent.0, name)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if self.stale() {
            reply.ok();
            return;
        }
        match self.with(|m| m.rmdir(parent.0, name)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            reply.error(Errno::EINVAL);
            return;
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        match self.with(|m| m.rename(parent.0, name, newparent.0, newname, no_replace)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.with(|m| m.open(ino.0)) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let guard = self.shared.lock();
        if guard.generation != self.generation {
            reply.error(Errno::EIO);
            return;
        }
        match guard.model.read(ino.0, offset, size) {
            Ok(data) => reply.data(data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if self.stale() {
            reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX));
            return;
        }
        match self.with(|m| m.write(ino.0, offset, data)) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() does not make anything durable.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // A handle of an older mount must not free inodes of the live one.
        let _ = self.with(|m| {
            m.release(fh.0);
            Ok(())
        });
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.sync(ino, reply);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.with(|m| m.entries(ino.0)) {
            Ok(e) => e,
            Err(e) => {
                reply.error(e);
                return;
            }
        };
        let dots = [
            (OsStr::new(".").to_owned(), ino.0, NodeKind::Dir),
            (OsStr::new("..").to_owned(), ino.0, NodeKind::Dir),
        ];
        for (i, (name, child, kind)) in dots
            .into_iter()
            .chain(entries)
            .enumerate()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        {
            if reply.add(INodeNo(child), (i + 1) as u64, file_type(kind), &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.sync(ino, reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let result = self.with(|m| Ok((m.statfs_free(), m.used_bytes())));
        match result {
            Ok((free, used)) => {
                // Without a capacity the disk is "large": 1 TiB free beyond what is used.
                let free = free.unwrap_or(1 << 40);
                let free_blocks = free / BLOCK;
                let blocks = used.div_ceil(BLOCK) + free_blocks;
                reply.statfs(
                    blocks,
                    free_blocks,
                    free_blocks,
                    1 << 20,
                    1 << 20,
                    BLOCK as u32,
                    255,
                    BLOCK as u32,
                );
            }
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let perm = (mode & !umask & 0o7777) as u16;
        let exclusive = flags & libc::O_EXCL != 0;
        let truncate = flags & libc::O_TRUNC != 0;
        let result = self.with(|m| {
            let (a, fh) = m.create(parent.0, name, perm, req.uid(), req.gid(), exclusive)?;
            if truncate && a.size > 0 {
                m.set_len(a.ino, 0)?;
                return Ok((m.attr(a.ino)?, fh));
            }
            Ok((a, fh))
        });
        match result {
            Ok((a, fh)) => reply.created(
                &TTL,
                &file_attr(&a),
                Generation(0),
                FileHandle(fh),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if self.stale() {
            reply.ok();
            return;
        }
        match self.with(|m| m.fallocate(ino.0, offset, length, mode)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}
