//! The Raft log store: openraft's [`RaftLogStorage`] over the node's RocksDB, in the column
//! families [`CF_LOG`] (entries, keyed by big-endian index) and [`CF_RAFT_META`] (vote, last purged
//! log id, committed log id).
//!
//! Its one hard job is durability at a useful rate. A vote is fsynced before `save_vote` returns;
//! appended entries are acknowledged to openraft only after the WAL holding them is fsynced. Every
//! fsync goes through one "syncer" thread that coalesces all requests queued while the previous
//! fsync ran, so a disk doing a few hundred fsyncs a second still commits thousands of entries a
//! second (group commit).
//!
//! It is not the state machine: the projection lives in other column families of the same database
//! and is written by `state_machine`. Nothing here interprets an entry's payload.
//!
//! On-disk format, version 1: every value is one format byte (`1`) followed by the value encoded
//! with bincode 1's `DefaultOptions` (varint integers, little-endian, no trailing bytes). A value
//! with another format byte is refused, not guessed at, so a node never misreads a newer layout.

use std::fmt;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use bincode::Options as _;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::type_config::TypeConfigExt;
use openraft::OptionalSend;
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::db::{self, CF_LOG, CF_RAFT_META};
use crate::log_tail::LogTail;
use crate::types::{Entry, LogId, TypeConfig, Vote};

/// The leading byte of every value this module writes.
const FORMAT_V1: u8 = 1;

const KEY_VOTE: &[u8] = b"vote";
const KEY_LAST_PURGED: &[u8] = b"last_purged_log_id";
const KEY_COMMITTED: &[u8] = b"committed_log_id";

/// Sorts after every 8-byte index key, so a range ending here covers index `u64::MAX` too.
const KEY_PAST_LAST_INDEX: [u8; 9] = [0xff; 9];

/// How the syncer makes what it acknowledges durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSync {
    /// `FlushWAL(true)` before every acknowledgement: the only mode a real node runs in.
    Fsync,
    /// Acknowledges appended entries without fsyncing. It exists so the power-loss test can prove
    /// that its checker sees the bug it exists for (a power cut then loses acknowledged
    /// messages); the node turns it on only from [`UNSAFE_SKIP_LOG_FSYNC_ENV`] and says so in an
    /// ERROR line. Votes are still fsynced (each such fsync also makes the entries before it
    /// durable): the bug it plants is the hot path's, and a cluster whose very first entries
    /// vanished would only show amnesia (no node could lead again), not the loss.
    UnsafeSkip,
}

/// The hidden switch of [`LogSync::UnsafeSkip`]: the variable must hold exactly
/// [`UNSAFE_SKIP_LOG_FSYNC_VALUE`], so nobody turns it on by accident with `1` or `true`.
pub const UNSAFE_SKIP_LOG_FSYNC_ENV: &str = "HERALD_UNSAFE_SKIP_LOG_FSYNC";
/// The one value [`UNSAFE_SKIP_LOG_FSYNC_ENV`] accepts: it says what it does.
pub const UNSAFE_SKIP_LOG_FSYNC_VALUE: &str = "lose-acknowledged-messages";

/// The Raft log and vote of this node, stored in RocksDB.
///
/// Cheap to clone: clones share the database and the syncer thread, and openraft's log readers are
/// such clones. The syncer thread stops once the last clone is dropped.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    syncer: Arc<Syncer>,
    /// The newest entries, shared with every reader clone (see `log_tail`).
    tail: Arc<Mutex<LogTail>>,
}

impl fmt::Debug for LogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

impl LogStore {
    /// A log store over `db`, which must have been opened by [`db::open`] (it has the column
    /// families). Starts the syncer thread.
    pub fn new(db: Arc<DB>) -> LogStore {
        LogStore::observed(db, crate::observe::nothing())
    }

    /// As [`LogStore::new`], reporting each fsync's duration to `observer`.
    pub fn observed(db: Arc<DB>, observer: crate::observe::SharedObserver) -> LogStore {
        LogStore::with_sync(db, observer, LogSync::Fsync)
    }

    /// As [`LogStore::observed`], with the given [`LogSync`] mode.
    pub fn with_sync(
        db: Arc<DB>,
        observer: crate::observe::SharedObserver,
        mode: LogSync,
    ) -> LogStore {
        let syncer = Syncer::start(db.clone(), observer, mode);
        LogStore {
            db,
            syncer: Arc::new(syncer),
            tail: Default::default(),
        }
    }

    /// Applies `batch` without waiting for the disk.
    ///
    /// Inline, with RocksDB told never to stall the caller (`no_slowdown`): the common case is a
    /// memtable insert and a WAL append, where a hop to a blocking thread and back costs more
    /// than the write. Only when RocksDB would throttle writers (memtable or compaction backlog)
    /// does the write go to a blocking thread, where it may wait without stalling the runtime.
    ///
    /// Tokio's pool, not `TypeConfig::spawn_blocking`: openraft's default for that starts a new
    /// OS thread per call.
    async fn write(&self, batch: WriteBatch) -> io::Result<()> {
        let mut inline = WriteOptions::default();
        inline.set_no_slowdown(true);
        // A refused write leaves nothing behind, and the call consumes the batch: keep its bytes
        // to write them again on the blocking path.
        let bytes = batch.data().to_vec();
        match self.db.write_opt(batch, &inline) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == rocksdb::ErrorKind::Incomplete => {}
            Err(e) => return Err(rocks_err("writing to the raft log", e)),
        }
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.write(WriteBatch::from_data(&bytes)))
            .await
            .map_err(|e| io::Error::other(format!("raft log write task failed: {e}")))?
            .map_err(|e| rocks_err("writing to the raft log", e))
    }

    /// Returns once every write made before the call is on disk.
    async fn sync(&self) -> io::Result<()> {
        let (tx, rx) = TypeConfig::oneshot();
        self.syncer.request(SyncRequest {
            callback: IOFlushed::signal(tx),
            vote: true,
        });
        rx.await
            .map_err(|_| io::Error::other("the raft log syncer thread dropped an fsync request"))?
    }

    /// Runs `f` on the tail. A poisoned lock only means another thread panicked while holding
    /// it; the tail is a cache, so it is emptied rather than trusted.
    fn with_tail<R>(&self, f: impl FnOnce(&mut LogTail) -> R) -> R {
        let mut tail = self.tail.lock().unwrap_or_else(|poisoned| {
            let mut tail = poisoned.into_inner();
            *tail = LogTail::default();
            tail
        });
        f(&mut tail)
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &'static [u8]) -> io::Result<Option<T>> {
        let what = || String::from_utf8_lossy(key).into_owned();
        let cf = db::cf(&self.db, CF_RAFT_META);
        match self.db.get_pinned_cf(cf, key) {
            Ok(Some(bytes)) => decode(&bytes).map(Some).map_err(|e| in_context(e, &what())),
            Ok(None) => Ok(None),
            Err(e) => Err(rocks_err(&format!("reading {}", what()), e)),
        }
    }

    fn put_meta<T: Serialize>(
        &self,
        batch: &mut WriteBatch,
        key: &[u8],
        value: &T,
    ) -> io::Result<()> {
        batch.put_cf(db::cf(&self.db, CF_RAFT_META), key, encode(value)?);
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    /// Served from the in-memory tail when it holds the whole range (replication and the state
    /// machine read what was just appended); otherwise read inline from RocksDB: memtable or
    /// block-cache hits in the common case, where a `spawn_blocking` hop would cost more than
    /// the read.
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        if let Some(entries) = self.with_tail(|tail| tail.get(&range)) {
            return Ok(entries);
        }
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => match i.checked_add(1) {
                Some(i) => i,
                None => return Ok(Vec::new()),
            },
            Bound::Unbounded => 0,
        };
        let start_key = index_key(start);
        let iter = self.db.iterator_cf(
            db::cf(&self.db, CF_LOG),
            IteratorMode::From(&start_key, Direction::Forward),
        );
        let mut entries = Vec::new();
        for item in iter {
            let (key, value) = item.map_err(|e| rocks_err("reading raft log entries", e))?;
            let index = key_index(&key)?;
            if !range.contains(&index) {
                break;
            }
            entries.push(decode_entry(index, &value)?);
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.read_meta(KEY_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last = self
            .db
            .iterator_cf(db::cf(&self.db, CF_LOG), IteratorMode::End)
            .next()
            .transpose()
            .map_err(|e| rocks_err("reading the last raft log entry", e))?;
        let last_present = match last {
            Some((key, value)) => Some(decode_entry(key_index(&key)?, &value)?.log_id()),
            None => None,
        };
        let last_purged_log_id: Option<LogId> = self.read_meta(KEY_LAST_PURGED)?;
        // openraft reads "no entries" as "the log ends where it was purged".
        let last_log_id = last_present.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    /// Raft's safety rests on a node never voting twice in a term, even across a crash, so the
    /// vote is fsynced before this returns (sharing the fsync with any appends queued with it).
    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let mut batch = WriteBatch::default();
        self.put_meta(&mut batch, KEY_VOTE, vote)?;
        self.write(batch).await?;
        self.sync().await
    }

    /// Not fsynced: a committed id that is lost in a crash only means the node re-applies from an
    /// older point, and a later fsync (the next append or vote) makes it durable anyway.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let mut batch = WriteBatch::default();
        match committed {
            Some(log_id) => self.put_meta(&mut batch, KEY_COMMITTED, &log_id)?,
            None => batch.delete_cf(db::cf(&self.db, CF_RAFT_META), KEY_COMMITTED),
        }
        self.write(batch).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        self.read_meta(KEY_COMMITTED)
    }

    /// Writes all the entries in one batch (readable when this returns, as openraft requires)
    /// and hands the callback to the syncer, which calls it after the fsync that covers them.
    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = db::cf(&self.db, CF_LOG);
        let mut batch = WriteBatch::default();
        let mut written = Vec::new();
        for entry in entries {
            batch.put_cf(cf, index_key(entry.index()), encode(&entry)?);
            written.push(entry);
        }
        self.write(batch).await?;
        // Readable from the tail only once they are in RocksDB: the tail never holds an entry
        // the log does not.
        self.with_tail(|tail| tail.push(written));
        self.syncer.request(SyncRequest {
            callback,
            vote: false,
        });
        Ok(())
    }

    /// One range delete, so a crash cannot leave a hole. Not fsynced: the entries that replace the
    /// truncated ones are appended next, and their fsync covers this earlier write; losing the
    /// truncation before then restores a log openraft had not yet acted on.
    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = match &last_log_id {
            Some(log_id) => key_after(log_id.index()),
            None => index_key(0).to_vec(),
        };
        self.with_tail(|tail| tail.truncate_after(last_log_id.as_ref().map(|l| l.index())));
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(db::cf(&self.db, CF_LOG), from, KEY_PAST_LAST_INDEX.to_vec());
        self.write(batch).await
    }

    /// Records the purge point and deletes the entries up to it in one atomic batch, the record
    /// first: whatever a crash keeps, the log never lacks entries it claims to have.
    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.with_tail(|tail| tail.purge_upto(log_id.index()));
        let mut batch = WriteBatch::default();
        self.put_meta(&mut batch, KEY_LAST_PURGED, &log_id)?;
        batch.delete_range_cf(
            db::cf(&self.db, CF_LOG),
            index_key(0).to_vec(),
            key_after(log_id.index()),
        );
        self.write(batch).await
    }
}

/// Owns the thread that fsyncs the WAL on behalf of every [`LogStore`] clone.
///
/// Why one thread and a queue: an fsync covers every write that completed before it started, so
/// all requests that arrive while one fsync runs can share the next one. Under load the queue
/// fills during each fsync and the number of fsyncs stays near the disk's rate, whatever the
/// number of appends.
struct Syncer {
    tx: Option<mpsc::Sender<SyncRequest>>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    fn start(db: Arc<DB>, observer: crate::observe::SharedObserver, mode: LogSync) -> Syncer {
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("raft-log-sync".to_string())
            .spawn(move || run_syncer(&db, &rx, observer.as_ref(), mode));
        match spawned {
            Ok(thread) => Syncer {
                tx: Some(tx),
                thread: Some(thread),
            },
            Err(e) => {
                // Every append and vote will then fail with an I/O error, which openraft turns
                // into a fatal storage error: a node that cannot make its log durable must stop.
                tracing::error!(error = %e, "cannot start the raft log syncer thread");
                Syncer {
                    tx: None,
                    thread: None,
                }
            }
        }
    }

    /// Queues `callback` for the next fsync. The caller must have finished its write first.
    fn request(&self, request: SyncRequest) {
        let Some(tx) = &self.tx else {
            request.callback.io_completed(Err(io::Error::other(
                "the raft log syncer thread is not running",
            )));
            return;
        };
        if let Err(mpsc::SendError(request)) = tx.send(request) {
            request.callback.io_completed(Err(io::Error::other(
                "the raft log syncer thread has stopped",
            )));
        }
    }
}

impl Drop for Syncer {
    /// Closes the queue and waits for the thread, so that pending callbacks are answered and the
    /// thread's handle on the database is gone when the last store is (a reopen needs the lock).
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the raft log syncer thread panicked");
            }
        }
    }
}

/// One wait for the disk: an append's callback, or a saved vote.
struct SyncRequest {
    callback: IOFlushed<TypeConfig>,
    /// A vote: fsynced even under [`LogSync::UnsafeSkip`] (see there).
    vote: bool,
}

/// Answers queued requests, one fsync for all those waiting.
///
/// After a failed fsync the thread never fsyncs again and fails every later request: Linux may
/// have dropped the dirty pages the failed writeback held and marked them clean, so a later fsync
/// that succeeds proves nothing about the data before it (PostgreSQL's "fsyncgate"). openraft turns
/// the error into a fatal storage error and the node stops; a restart replays the WAL from what
/// is really on disk, and the cluster supplies the rest.
fn run_syncer(
    db: &DB,
    rx: &mpsc::Receiver<SyncRequest>,
    observer: &dyn crate::observe::Observer,
    mode: LogSync,
) {
    let mut pending = Vec::new();
    let mut failed: Option<String> = None;
    while let Ok(first) = rx.recv() {
        pending.push(first);
        pending.extend(rx.try_iter());
        if let Some(first_failure) = &failed {
            for request in pending.drain(..) {
                request.callback.io_completed(Err(io::Error::other(format!(
                    "the raft log WAL fsync failed earlier and is not retried ({first_failure})"
                ))));
            }
            continue;
        }
        let started = std::time::Instant::now();
        let result = match mode {
            LogSync::UnsafeSkip if !pending.iter().any(|r| r.vote) => Ok(()),
            _ => db.flush_wal(true),
        };
        observer.log_synced(started.elapsed());
        tracing::trace!(
            requests = pending.len(),
            ok = result.is_ok(),
            "raft log WAL fsync"
        );
        if let Err(e) = &result {
            let reason = format!(
                "fsyncing the raft log WAL in {} failed: {e}; nothing written since the last \
                 good fsync is acknowledged, and the fsync is not retried (a failed fsync may \
                 have dropped the written data): the node must stop and restart",
                db.path().display()
            );
            tracing::error!("{reason}");
            failed = Some(reason);
        }
        for request in pending.drain(..) {
            let outcome = match &failed {
                None => Ok(()),
                Some(reason) => Err(io::Error::other(reason.clone())),
            };
            request.callback.io_completed(outcome);
        }
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The first key past `index`: the exclusive end of a range that includes `index`.
fn key_after(index: u64) -> Vec<u8> {
    match index.checked_add(1) {
        Some(next) => index_key(next).to_vec(),
        None => KEY_PAST_LAST_INDEX.to_vec(),
    }
}

fn key_index(key: &[u8]) -> io::Result<u64> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| {
        invalid_data(format!(
            "raft log key {key:02x?} is {} bytes, expected an 8-byte index",
            key.len()
        ))
    })?;
    Ok(u64::from_be_bytes(bytes))
}

fn decode_entry(index: u64, value: &[u8]) -> io::Result<Entry> {
    let entry: Entry =
        decode(value).map_err(|e| in_context(e, &format!("raft log entry {index}")))?;
    if entry.index() != index {
        return Err(invalid_data(format!(
            "raft log entry stored under index {index} says its index is {}",
            entry.index()
        )));
    }
    Ok(entry)
}

fn bincode_options() -> impl bincode::Options {
    bincode::DefaultOptions::new()
}

fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let mut bytes = vec![FORMAT_V1];
    bincode_options()
        .serialize_into(&mut bytes, value)
        .map_err(|e| io::Error::other(format!("encoding a raft log value: {e}")))?;
    Ok(bytes)
}

/// Bounded by the value's own length, so a corrupt length prefix fails instead of allocating.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    match bytes.split_first() {
        Some((&FORMAT_V1, body)) => bincode_options()
            .with_limit(body.len() as u64)
            .deserialize(body)
            .map_err(|e| invalid_data(format!("format {FORMAT_V1} value does not decode: {e}"))),
        Some((version, _)) => Err(invalid_data(format!(
            "format version {version} is unknown; this node reads version {FORMAT_V1}"
        ))),
        None => Err(invalid_data(
            "the value is empty, expected a format byte".to_string(),
        )),
    }
}

fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn rocks_err(doing: &str, e: rocksdb::Error) -> io::Error {
    io::Error::other(format!("{doing}: {e}"))
}

/// Prefixes an error's message with what was being read, keeping its kind.
fn in_context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// One stored log entry, for comparing nodes' logs (`herald debug log-hashes`): its index, its log
/// id as text (term and leader) and a 64-bit FNV-1a hash of its stored bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EntryDigest {
    pub index: u64,
    pub log_id: String,
    pub hash: u64,
}

/// What a stopped node's log holds, for diagnosis and the fault-injection checker: the committed
/// index it recorded, the last purged index, and a digest of every entry still stored.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct LogDigest {
    pub committed: Option<u64>,
    pub last_purged: Option<u64>,
    pub entries: Vec<EntryDigest>,
}

/// Reads `db` (opened read-only by [`db::open_read_only`]) without changing anything.
pub fn log_digest(db: &DB) -> io::Result<LogDigest> {
    let read = |key: &'static [u8]| -> io::Result<Option<LogId>> {
        match db.get_pinned_cf(db::cf(db, CF_RAFT_META), key) {
            Ok(Some(bytes)) => decode(&bytes).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(rocks_err("reading raft metadata", e)),
        }
    };
    let committed = read(KEY_COMMITTED)?.map(|l| l.index());
    let last_purged = read(KEY_LAST_PURGED)?.map(|l| l.index());
    let mut entries = Vec::new();
    for item in db.iterator_cf(db::cf(db, CF_LOG), IteratorMode::Start) {
        let (key, value) = item.map_err(|e| rocks_err("reading raft log entries", e))?;
        let index = key_index(&key)?;
        let entry = decode_entry(index, &value)?;
        // FNV-1a: stable across builds and platforms, unlike std's hasher.
        let hash = value.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
        entries.push(EntryDigest {
            index,
            log_id: entry.log_id().to_string(),
            hash,
        });
    }
    Ok(LogDigest {
        committed,
        last_purged,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The blocking-thread path of [`LogStore::write`] only runs when RocksDB would slow writers
    /// down; this makes it do so (table files piling up in level 0 beyond the slowdown trigger,
    /// none of them compacted) and checks that the write still lands, whole.
    #[tokio::test]
    async fn a_write_rocksdb_would_slow_down_goes_through_a_blocking_thread() {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(dir.path()).unwrap();
        let log = db::cf(&db, CF_LOG);
        db.set_options_cf(
            log,
            &[
                ("level0_file_num_compaction_trigger", "-1"),
                ("level0_slowdown_writes_trigger", "100"),
                ("level0_stop_writes_trigger", "1000"),
            ],
        )
        .unwrap();
        for index in 0..3u64 {
            db.put_cf(log, index_key(index), b"filler").unwrap();
            db.flush_cf(log).unwrap();
        }
        // Lowered only now: a flush waits for as long as it would push level 0 into a stall.
        db.set_options_cf(log, &[("level0_slowdown_writes_trigger", "2")])
            .unwrap();
        // The first write after the stall begins goes through undelayed; it leaves the debt that
        // makes the next one wait.
        db.put_cf(log, index_key(50), vec![0u8; 1 << 20]).unwrap();
        let mut inline = WriteOptions::default();
        inline.set_no_slowdown(true);
        let mut probe = WriteBatch::default();
        // Far bigger than the credit RocksDB grants a delayed writer (the time since its last
        // refill at 16 MiB/s, so up to a second of this thread being descheduled), so it owes a
        // delay and is refused; the debt also holds back the next small write.
        probe.put_cf(log, index_key(99), vec![0u8; 16 << 20]);
        let refused = db.write_opt(probe, &inline).unwrap_err();
        assert_eq!(refused.kind(), rocksdb::ErrorKind::Incomplete, "{refused}");

        let store = LogStore::new(db.clone());
        let mut batch = WriteBatch::default();
        batch.put_cf(log, index_key(7), b"entry seven");
        batch.put_cf(log, index_key(8), b"entry eight");
        store.write(batch).await.unwrap();

        assert_eq!(
            db.get_cf(log, index_key(7)).unwrap().as_deref(),
            Some(&b"entry seven"[..])
        );
        assert_eq!(
            db.get_cf(log, index_key(8)).unwrap().as_deref(),
            Some(&b"entry eight"[..])
        );
        assert_eq!(
            db.get_cf(log, index_key(99)).unwrap(),
            None,
            "a refused write leaves nothing"
        );
    }
}
