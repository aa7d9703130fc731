//! The filesystem's state: every inode twice, as the processes see it (current) and as the disk
//! would hold it after a power cut (durable). Pure data and rules, no FUSE: the FUSE adapter
//! (`fs.rs`) translates kernel requests into these calls, and the unit tests below check the
//! durability rules without a mount.
//!
//! A file keeps its durable bytes, its current bytes and a journal of the writes and size changes
//! made since its last fsync, so an fsync costs what was written since the previous one (RocksDB
//! WALs only grow). A directory keeps its current and its durable entries; fsyncing it makes the
//! current entries durable. Inodes reachable from neither kind of entry (nor open) are freed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

use fuser::Errno;

use crate::{Fault, Stats, Tear};

/// The root directory's inode number (FUSE's convention).
pub(crate) const ROOT: u64 = 1;

/// `fallocate` mode bit: preallocate without changing the size (what RocksDB asks for its WAL).
const FALLOC_FL_KEEP_SIZE: i32 = 1;

/// One change to a file's bytes not yet made durable.
#[derive(Debug, Clone)]
enum Op {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default)]
struct FileBody {
    current: Vec<u8>,
    durable: Vec<u8>,
    journal: Vec<Op>,
}

#[derive(Debug, Default)]
struct DirBody {
    current: BTreeMap<OsString, u64>,
    durable: BTreeMap<OsString, u64>,
}

#[derive(Debug)]
enum Body {
    File(FileBody),
    Dir(DirBody),
    /// A Unix socket or a FIFO: an inode with no content of its own (the kernel keeps the
    /// endpoint), durable like any entry.
    Special(NodeKind),
}

/// What an inode is, as `getattr` and `readdir` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeKind {
    File,
    Dir,
    Socket,
    Fifo,
}

impl Body {
    fn kind(&self) -> NodeKind {
        match self {
            Body::File(_) => NodeKind::File,
            Body::Dir(_) => NodeKind::Dir,
            Body::Special(k) => *k,
        }
    }
}

/// Attributes are not part of the durability model: a power cut keeps them as they were.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
}

impl Meta {
    pub(crate) fn new(perm: u16, uid: u32, gid: u32) -> Self {
        let now = SystemTime::now();
        Meta {
            perm,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
        }
    }
}

#[derive(Debug)]
struct Node {
    meta: Meta,
    body: Body,
}

/// What `getattr` reports about an inode.
#[derive(Debug, Clone)]
pub(crate) struct Attr {
    pub ino: u64,
    pub kind: NodeKind,
    pub size: u64,
    pub meta: Meta,
}

/// The whole filesystem, behind one mutex in `lib.rs`.
#[derive(Debug)]
pub(crate) struct Model {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    next_fh: u64,
    /// Open file handles and their inodes: an unlinked file stays readable while open.
    open: HashMap<u64, u64>,
    pub fault: Fault,
    pub capacity: Option<u64>,
    fsyncs: u64,
    faults_injected: u64,
    power_cuts: u64,
}

fn apply(bytes: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write { offset, data } => write_at(bytes, *offset, data),
        Op::SetLen(len) => bytes.resize(usize_of(*len), 0),
    }
}

fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn write_at(bytes: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = usize_of(offset);
    let end = start.saturating_add(data.len());
    if bytes.len() < end {
        bytes.resize(end, 0);
    }
    bytes[start..end].copy_from_slice(data);
}

impl Model {
    pub(crate) fn new(uid: u32, gid: u32) -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                meta: Meta::new(0o755, uid, gid),
                body: Body::Dir(DirBody::default()),
            },
        );
        Model {
            nodes,
            next_ino: ROOT + 1,
            next_fh: 1,
            open: HashMap::new(),
            fault: Fault::None,
            capacity: None,
            fsyncs: 0,
            faults_injected: 0,
            power_cuts: 0,
        }
    }

    fn node(&self, ino: u64) -> Result<&Node, Errno> {
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Result<&mut Node, Errno> {
        self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn dir(&self, ino: u64) -> Result<&DirBody, Errno> {
        match &self.node(ino)?.body {
            Body::Dir(d) => Ok(d),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Result<&mut DirBody, Errno> {
        match &mut self.node_mut(ino)?.body {
            Body::Dir(d) => Ok(d),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Result<&mut FileBody, Errno> {
        match &mut self.node_mut(ino)?.body {
            Body::File(f) => Ok(f),
            Body::Dir(_) => Err(Errno::EISDIR),
            Body::Special(_) => Err(Errno::EINVAL),
        }
    }

    /// Bytes the processes see in use (what capacity is measured against).
    fn used(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| match &n.body {
                Body::File(f) => f.current.len() as u64,
                _ => 0,
            })
            .sum()
    }

    /// Fails with the injected fault for an operation that allocates space, or with ENOSPC when
    /// growing by `growth` bytes would pass the capacity.
    fn check_space(&mut self, growth: u64, eio_too: bool) -> Result<(), Errno> {
        match self.fault {
            Fault::NoSpace => {
                self.faults_injected += 1;
                return Err(Errno::ENOSPC);
            }
            Fault::WriteEio if eio_too => {
                self.faults_injected += 1;
                return Err(Errno::EIO);
            }
            _ => {}
        }
        if let Some(cap) = self.capacity {
            if growth > 0 && self.used().saturating_add(growth) > cap {
                return Err(Errno::ENOSPC);
            }
        }
        Ok(())
    }

    pub(crate) fn attr(&self, ino: u64) -> Result<Attr, Errno> {
        let node = self.node(ino)?;
        let size = match &node.body {
            Body::File(f) => f.current.len() as u64,
            Body::Dir(d) => d.current.len() as u64,
            Body::Special(_) => 0,
        };
        Ok(Attr {
            ino,
            kind: node.body.kind(),
            size,
            meta: node.meta.clone(),
        })
    }

    pub(crate) fn lookup(&self, parent: u64, name: &OsStr) -> Result<Attr, Errno> {
        let ino = *self.dir(parent)?.current.get(name).ok_or(Errno::ENOENT)?;
        self.attr(ino)
    }

    fn add_node(
        &mut self,
        parent: u64,
        name: &OsStr,
        meta: Meta,
        body: Body,
    ) -> Result<u64, Errno> {
        let dir = self.dir(parent)?;
        if dir.current.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, Node { meta, body });
        self.dir_mut(parent)?.current.insert(name.to_owned(), ino);
        self.touch(parent);
        Ok(ino)
    }

    fn touch(&mut self, ino: u64) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            let now = SystemTime::now();
            n.meta.mtime = now;
            n.meta.ctime = now;
        }
    }

    pub(crate) fn mkdir(
        &mut self,
        parent: u64,
        name: &OsStr,
        perm: u16,
        uid: u32,
        gid: u32,
    ) -> Result<Attr, Errno> {
        self.check_space(0, false)?;
        let ino = self.add_node(
            parent,
            name,
            Meta::new(perm, uid, gid),
            Body::Dir(DirBody::default()),
        )?;
        self.attr(ino)
    }

    /// Creates a socket or FIFO inode (what bind(2) on a Unix socket path asks for).
    pub(crate) fn mknod(
        &mut self,
        parent: u64,
        name: &OsStr,
        kind: NodeKind,
        perm: u16,
        uid: u32,
        gid: u32,
    ) -> Result<Attr, Errno> {
        self.check_space(0, false)?;
        let body = match kind {
            NodeKind::File => Body::File(FileBody::default()),
            NodeKind::Socket | NodeKind::Fifo => Body::Special(kind),
            NodeKind::Dir => return Err(Errno::EINVAL),
        };
        let ino = self.add_node(parent, name, Meta::new(perm, uid, gid), body)?;
        self.attr(ino)
    }

    /// Creates a file (or opens the existing one unless `exclusive`) and returns it open.
    pub(crate) fn create(
        &mut self,
        parent: u64,
        name: &OsStr,
        perm: u16,
        uid: u32,
        gid: u32,
        exclusive: bool,
    ) -> Result<(Attr, u64), Errno> {
        let ino = match self.dir(parent)?.current.get(name) {
            Some(&ino) if !exclusive => ino,
            Some(_) => return Err(Errno::EEXIST),
            None => {
                self.check_space(0, false)?;
                self.add_node(
                    parent,
                    name,
                    Meta::new(perm, uid, gid),
                    Body::File(FileBody::default()),
                )?
            }
        };
        let fh = self.open(ino)?;
        Ok((self.attr(ino)?, fh))
    }

    pub(crate) fn open(&mut self, ino: u64) -> Result<u64, Errno> {
        self.node(ino)?;
        let fh = self.next_fh;
        self.next_fh += 1;
        self.open.insert(fh, ino);
        Ok(fh)
    }

    pub(crate) fn release(&mut self, fh: u64) {
        if self.open.remove(&fh).is_some() {
            self.collect();
        }
    }

    pub(crate) fn read(&self, ino: u64, offset: u64, size: u32) -> Result<&[u8], Errno> {
        match &self.node(ino)?.body {
            Body::File(f) => {
                let start = usize_of(offset).min(f.current.len());
                let end = start.saturating_add(size as usize).min(f.current.len());
                Ok(&f.current[start..end])
            }
            Body::Dir(_) => Err(Errno::EISDIR),
            Body::Special(_) => Err(Errno::EINVAL),
        }
    }

    pub(crate) fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let len = self.file_mut(ino)?.current.len() as u64;
        let growth = (offset + data.len() as u64).saturating_sub(len);
        self.check_space(growth, true)?;
        let written = u32::try_from(data.len()).map_err(|_| Errno::EFBIG)?;
        let f = self.file_mut(ino)?;
        write_at(&mut f.current, offset, data);
        f.journal.push(Op::Write {
            offset,
            data: data.to_vec(),
        });
        self.touch(ino);
        Ok(written)
    }

    pub(crate) fn set_len(&mut self, ino: u64, len: u64) -> Result<(), Errno> {
        let old = self.file_mut(ino)?.current.len() as u64;
        if len > old {
            self.check_space(len - old, false)?;
        }
        let f = self.file_mut(ino)?;
        f.current.resize(usize_of(len), 0);
        f.journal.push(Op::SetLen(len));
        self.touch(ino);
        Ok(())
    }

    pub(crate) fn set_meta(
        &mut self,
        ino: u64,
        perm: Option<u16>,
        uid: Option<u32>,
        gid: Option<u32>,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> Result<(), Errno> {
        let m = &mut self.node_mut(ino)?.meta;
        if let Some(p) = perm {
            m.perm = p;
        }
        if let Some(u) = uid {
            m.uid = u;
        }
        if let Some(g) = gid {
            m.gid = g;
        }
        if let Some(t) = atime {
            m.atime = t;
        }
        if let Some(t) = mtime {
            m.mtime = t;
        }
        m.ctime = SystemTime::now();
        Ok(())
    }

    pub(crate) fn fallocate(
        &mut self,
        ino: u64,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<(), Errno> {
        let old = self.file_mut(ino)?.current.len() as u64;
        let end = offset.saturating_add(length);
        if mode & !FALLOC_FL_KEEP_SIZE != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        // Preallocation is not modelled (no blocks), but it still fails when the disk is full.
        self.check_space(end.saturating_sub(old), true)?;
        if mode & FALLOC_FL_KEEP_SIZE == 0 && end > old {
            self.set_len(ino, end)?;
        }
        Ok(())
    }

    /// fsync/fdatasync of a file: its journal becomes durable. Under `Fault::FsyncEio` it fails
    /// and the journal is dropped without reaching the durable bytes, as Linux marks the pages
    /// clean after a failed writeback: the process still reads its data, a retried fsync
    /// succeeds, and a power cut shows the data was never written.
    pub(crate) fn fsync(&mut self, ino: u64) -> Result<(), Errno> {
        let fault = self.fault;
        match &mut self.node_mut(ino)?.body {
            Body::File(f) => {
                if fault == Fault::FsyncEio {
                    f.journal.clear();
                    self.faults_injected += 1;
                    return Err(Errno::EIO);
                }
                for op in f.journal.drain(..) {
                    apply(&mut f.durable, &op);
                }
            }
            Body::Dir(d) => {
                if fault == Fault::FsyncEio {
                    self.faults_injected += 1;
                    return Err(Errno::EIO);
                }
                d.durable = d.current.clone();
            }
            Body::Special(_) => {}
        }
        self.fsyncs += 1;
        Ok(())
    }

    pub(crate) fn unlink(&mut self, parent: u64, name: &OsStr) -> Result<(), Errno> {
        let ino = *self.dir(parent)?.current.get(name).ok_or(Errno::ENOENT)?;
        if self.attr(ino)?.kind == NodeKind::Dir {
            return Err(Errno::EISDIR);
        }
        self.dir_mut(parent)?.current.remove(name);
        self.touch(parent);
        self.collect();
        Ok(())
    }

    pub(crate) fn rmdir(&mut self, parent: u64, name: &OsStr) -> Result<(), Errno> {
        let ino = *self.dir(parent)?.current.get(name).ok_or(Errno::ENOENT)?;
        if !self.dir(ino)?.current.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        self.dir_mut(parent)?.current.remove(name);
        self.touch(parent);
        self.collect();
        Ok(())
    }

    /// rename(2), replacing an existing target (RENAME_NOREPLACE refuses to).
    pub(crate) fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        no_replace: bool,
    ) -> Result<(), Errno> {
        let ino = *self.dir(parent)?.current.get(name).ok_or(Errno::ENOENT)?;
        let moving_dir = self.attr(ino)?.kind == NodeKind::Dir;
        if let Some(&target) = self.dir(new_parent)?.current.get(new_name) {
            if target == ino {
                return Ok(());
            }
            if no_replace {
                return Err(Errno::EEXIST);
            }
            match (moving_dir, self.attr(target)?.kind == NodeKind::Dir) {
                (false, true) => return Err(Errno::EISDIR),
                (true, false) => return Err(Errno::ENOTDIR),
                (true, true) if !self.dir(target)?.current.is_empty() => {
                    return Err(Errno::ENOTEMPTY)
                }
                _ => {}
            }
        }
        if moving_dir && self.is_ancestor(ino, new_parent) {
            return Err(Errno::EINVAL);
        }
        self.dir_mut(parent)?.current.remove(name);
        self.dir_mut(new_parent)?
            .current
            .insert(new_name.to_owned(), ino);
        self.touch(parent);
        self.touch(new_parent);
        self.collect();
        Ok(())
    }

    /// Whether `dir` is `ino` or lies under it in the current tree.
    fn is_ancestor(&self, ino: u64, dir: u64) -> bool {
        let mut stack = vec![ino];
        let mut seen = HashSet::new();
        while let Some(d) = stack.pop() {
            if d == dir {
                return true;
            }
            if !seen.insert(d) {
                continue;
            }
            if let Ok(body) = self.dir(d) {
                stack.extend(body.current.values().copied());
            }
        }
        false
    }

    /// The current entries of a directory, sorted by name, with what each is.
    pub(crate) fn entries(&self, ino: u64) -> Result<Vec<(OsString, u64, NodeKind)>, Errno> {
        let dir = self.dir(ino)?;
        Ok(dir
            .current
            .iter()
            .map(|(name, &child)| {
                let kind = self
                    .nodes
                    .get(&child)
                    .map_or(NodeKind::File, |n| n.body.kind());
                (name.clone(), child, kind)
            })
            .collect())
    }

    /// Frees inodes no directory entry (current or durable) and no open handle reaches.
    fn collect(&mut self) {
        let mut live = HashSet::new();
        let mut stack: Vec<u64> = vec![ROOT];
        stack.extend(self.open.values().copied());
        while let Some(ino) = stack.pop() {
            if !live.insert(ino) {
                continue;
            }
            if let Some(Node {
                body: Body::Dir(d), ..
            }) = self.nodes.get(&ino)
            {
                stack.extend(d.current.values().copied());
                stack.extend(d.durable.values().copied());
            }
        }
        self.nodes.retain(|ino, _| live.contains(ino));
    }

    /// The power cut: every inode goes back to its durable state, open handles die with their
    /// processes, and whatever the durable tree no longer reaches is gone.
    pub(crate) fn power_cut(&mut self, tear: Tear) {
        for node in self.nodes.values_mut() {
            match &mut node.body {
                Body::File(f) => {
                    if tear == Tear::LastWrite {
                        let last = f.journal.iter().rev().find_map(|op| match op {
                            Op::Write { offset, data } => Some((*offset, data)),
                            Op::SetLen(_) => None,
                        });
                        if let Some((offset, data)) = last {
                            let keep = data.len().div_ceil(2);
                            write_at(&mut f.durable, offset, &data[..keep]);
                        }
                    }
                    f.journal.clear();
                    f.current = f.durable.clone();
                }
                Body::Dir(d) => d.current = d.durable.clone(),
                Body::Special(_) => {}
            }
        }
        self.open.clear();
        self.power_cuts += 1;
        // Reachability now follows durable entries only (current == durable everywhere).
        self.collect();
    }

    pub(crate) fn statfs_free(&self) -> Option<u64> {
        if self.fault == Fault::NoSpace {
            return Some(0);
        }
        self.capacity.map(|c| c.saturating_sub(self.used()))
    }

    pub(crate) fn used_bytes(&self) -> u64 {
        self.used()
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut durable_bytes = 0;
        let mut unsynced_bytes = 0;
        for node in self.nodes.values() {
            if let Body::File(f) = &node.body {
                durable_bytes += f.durable.len() as u64;
                unsynced_bytes += f
                    .journal
                    .iter()
                    .map(|op| match op {
                        Op::Write { data, .. } => data.len() as u64,
                        Op::SetLen(_) => 0,
                    })
                    .sum::<u64>();
            }
        }
        Stats {
            durable_bytes,
            unsynced_bytes,
            fsyncs: self.fsyncs,
            faults_injected: self.faults_injected,
            power_cuts: self.power_cuts,
            inodes: self.nodes.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    fn content(m: &Model, parent: u64, n: &str) -> Option<Vec<u8>> {
        let a = m.lookup(parent, name(n)).ok()?;
        Some(m.read(a.ino, 0, u32::MAX).ok()?.to_vec())
    }

    #[test]
    fn fsync_keeps_only_what_was_written_before_it() {
        let mut m = Model::new(0, 0);
        let (a, fh) = m.create(ROOT, name("f"), 0o644, 0, 0, true).unwrap();
        m.fsync(ROOT).unwrap();
        m.write(a.ino, 0, b"hello").unwrap();
        m.fsync(a.ino).unwrap();
        m.write(a.ino, 5, b" world").unwrap();
        m.release(fh);
        assert_eq!(m.stats().unsynced_bytes, 6);
        m.power_cut(Tear::None);
        assert_eq!(content(&m, ROOT, "f").unwrap(), b"hello");
    }

    #[test]
    fn torn_last_write_keeps_a_prefix() {
        let mut m = Model::new(0, 0);
        let (a, _) = m.create(ROOT, name("f"), 0o644, 0, 0, true).unwrap();
        m.fsync(ROOT).unwrap();
        m.write(a.ino, 0, b"abcd").unwrap();
        m.power_cut(Tear::LastWrite);
        assert_eq!(content(&m, ROOT, "f").unwrap(), b"ab");
    }

    #[test]
    fn rename_over_a_file_is_undone_without_a_directory_fsync() {
        let mut m = Model::new(0, 0);
        let (a, _) = m.create(ROOT, name("cur"), 0o644, 0, 0, true).unwrap();
        m.write(a.ino, 0, b"old").unwrap();
        m.fsync(a.ino).unwrap();
        let (b, _) = m.create(ROOT, name("tmp"), 0o644, 0, 0, true).unwrap();
        m.write(b.ino, 0, b"new").unwrap();
        m.fsync(b.ino).unwrap();
        m.fsync(ROOT).unwrap();
        m.rename(ROOT, name("tmp"), ROOT, name("cur"), false)
            .unwrap();
        assert_eq!(content(&m, ROOT, "cur").unwrap(), b"new");
        m.power_cut(Tear::None);
        assert_eq!(content(&m, ROOT, "cur").unwrap(), b"old");
        assert_eq!(content(&m, ROOT, "tmp").unwrap(), b"new");
    }

    #[test]
    fn a_file_under_an_unsynced_directory_vanishes() {
        let mut m = Model::new(0, 0);
        let d = m.mkdir(ROOT, name("d"), 0o755, 0, 0).unwrap();
        let (a, _) = m.create(d.ino, name("f"), 0o644, 0, 0, true).unwrap();
        m.write(a.ino, 0, b"x").unwrap();
        m.fsync(a.ino).unwrap();
        m.fsync(d.ino).unwrap();
        m.power_cut(Tear::None);
        assert!(m.lookup(ROOT, name("d")).is_err());
        assert_eq!(m.stats().inodes, 1);
    }

    #[test]
    fn failed_fsync_drops_the_data_for_good() {
        let mut m = Model::new(0, 0);
        let (a, _) = m.create(ROOT, name("f"), 0o644, 0, 0, true).unwrap();
        m.fsync(ROOT).unwrap();
        m.write(a.ino, 0, b"lost").unwrap();
        m.fault = Fault::FsyncEio;
        assert_eq!(m.fsync(a.ino), Err(Errno::EIO));
        m.fault = Fault::None;
        // The page cache still shows it and a retried fsync "succeeds" ...
        assert_eq!(m.read(a.ino, 0, 10).unwrap(), b"lost");
        m.fsync(a.ino).unwrap();
        // ... but it never reached the disk.
        m.power_cut(Tear::None);
        assert_eq!(content(&m, ROOT, "f").unwrap(), b"");
    }

    #[test]
    fn capacity_and_no_space() {
        let mut m = Model::new(0, 0);
        let (a, _) = m.create(ROOT, name("f"), 0o644, 0, 0, true).unwrap();
        m.capacity = Some(10);
        m.write(a.ino, 0, b"0123456789").unwrap();
        assert_eq!(m.write(a.ino, 10, b"x"), Err(Errno::ENOSPC));
        // Overwriting in place needs no space.
        m.write(a.ino, 0, b"abc").unwrap();
        assert_eq!(m.statfs_free(), Some(0));
        m.capacity = None;
        m.fault = Fault::NoSpace;
        assert_eq!(m.write(a.ino, 10, b"x"), Err(Errno::ENOSPC));
        assert_eq!(
            m.create(ROOT, name("g"), 0o644, 0, 0, true).map(|_| ()),
            Err(Errno::ENOSPC)
        );
        assert_eq!(m.stats().faults_injected, 2);
    }
}
