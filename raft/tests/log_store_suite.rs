//! The log store against openraft's storage conformance suite, plus what the suite cannot see:
//! durability across a reopen, refusal of corrupt or unknown on-disk bytes, and many appends in
//! flight at once (group commit).
//!
//! The suite also exercises a state machine, so this file carries a toy in-memory one; it is not
//! Herald's state machine and tests nothing about it.

use std::io::{self, Cursor};
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use herald_raft::db::{self, CF_LOG, CF_RAFT_META};
use herald_raft::log_store::LogStore;
use herald_raft::types::{
    ApplyResponse, Entry, EventsPayload, LogId, SnapshotMeta, StoredMembership, TypeConfig, Vote,
};
use openraft::entry::RaftEntry;
use openraft::storage::{
    EntryResponder, IOFlushed, RaftLogReader, RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine,
};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::{OptionalSend, StorageError};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// A toy state machine, only so that openraft's suite can run.

#[derive(Default)]
struct ToyState {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    snapshot: Option<SnapshotMeta>,
}

/// The toy's snapshots carry no data (Herald's own are files).
type Snapshot = openraft::alias::SnapshotOf<TypeConfig, Cursor<Vec<u8>>>;

/// Remembers only what the suite checks (last applied, membership); a snapshot is its metadata.
#[derive(Clone, Default)]
struct ToyStateMachine(Arc<Mutex<ToyState>>);

impl ToyStateMachine {
    fn snapshot_of(meta: SnapshotMeta) -> Snapshot {
        Snapshot {
            meta,
            snapshot: Cursor::new(Vec::new()),
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for ToyStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let mut state = self.0.lock().unwrap();
        let meta = SnapshotMeta {
            last_log_id: state.last_applied,
            last_membership: state.membership.clone(),
        };
        state.snapshot = Some(meta.clone());
        Ok(Self::snapshot_of(meta))
    }
}

impl RaftStateMachine<TypeConfig> for ToyStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = ToyStateMachine;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let state = self.0.lock().unwrap();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            {
                let mut state = self.0.lock().unwrap();
                state.last_applied = Some(entry.log_id());
                if let Some(membership) = entry.get_membership() {
                    state.membership = StoredMembership::new(Some(entry.log_id()), membership);
                }
            }
            if let Some(responder) = responder {
                responder.send(ApplyResponse::default());
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        _snapshot: Cursor<Vec<u8>>,
    ) -> io::Result<()> {
        let mut state = self.0.lock().unwrap();
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        state.snapshot = Some(meta.clone());
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        let state = self.0.lock().unwrap();
        Ok(state.snapshot.clone().map(Self::snapshot_of))
    }
}

/// Every suite case gets its own directory and database; the `TempDir` guard outlives the store.
struct Builder;

impl StoreBuilder<TypeConfig, LogStore, ToyStateMachine, TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore, ToyStateMachine), StorageError<TypeConfig>> {
        let dir = TempDir::new().expect("temp dir");
        let db = db::open(dir.path()).expect("open rocksdb");
        Ok((dir, LogStore::new(db), ToyStateMachine::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite() {
    Suite::test_all(Builder)
        .await
        .expect("openraft storage suite");
}

// ---------------------------------------------------------------------------------------------
// What the suite does not cover.

fn log_id(term: u64, index: u64) -> LogId {
    openraft::testing::log_id::<TypeConfig>(term, 1, index)
}

fn normal(term: u64, index: u64) -> Entry {
    Entry::new_normal(log_id(term, index), EventsPayload(vec![index as u8; 3]))
}

/// Appends and waits for the fsync callback, as openraft does before acknowledging.
async fn append_durably(store: &mut LogStore, entries: Vec<Entry>) {
    let (tx, rx) = TypeConfig::oneshot();
    store
        .append(entries, IOFlushed::signal(tx))
        .await
        .expect("append");
    rx.await.expect("callback called").expect("fsync succeeded");
}

fn open(dir: &Path) -> (Arc<rocksdb::DB>, LogStore) {
    let db = db::open(dir).expect("open rocksdb");
    let store = LogStore::new(db.clone());
    (db, store)
}

#[tokio::test]
async fn vote_log_committed_and_purge_survive_a_reopen() {
    let dir = TempDir::new().unwrap();
    {
        let (_db, mut store) = open(dir.path());
        store.save_vote(&Vote::new_committed(3, 1)).await.unwrap();
        append_durably(&mut store, (1..=10).map(|i| normal(3, i)).collect()).await;
        store.save_committed(Some(log_id(3, 8))).await.unwrap();
        store.purge(log_id(3, 4)).await.unwrap();
        store.truncate_after(Some(log_id(3, 9))).await.unwrap();
        // The syncer thread must let go of the database when the last store is dropped, or the
        // reopen below fails on RocksDB's lock.
    }

    let (_db, mut store) = open(dir.path());
    assert_eq!(
        store.read_vote().await.unwrap(),
        Some(Vote::new_committed(3, 1))
    );
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(3, 8)));
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(3, 4)));
    assert_eq!(state.last_log_id, Some(log_id(3, 9)));
    let entries = store.try_get_log_entries(0..100).await.unwrap();
    let indexes: Vec<u64> = entries.iter().map(|e| e.index()).collect();
    assert_eq!(indexes, (5..=9).collect::<Vec<_>>());
    assert_eq!(entries[0], normal(3, 5));
}

/// The store serves recent entries from memory; a second store over the same database starts
/// with nothing in memory and reads RocksDB. After appends, a truncation that replaces entries,
/// and a purge, both must read the same log for every range.
#[tokio::test]
async fn entries_read_from_memory_match_the_disk_after_truncation_and_purge() {
    let dir = TempDir::new().unwrap();
    let (db, mut store) = open(dir.path());
    append_durably(&mut store, (1..=40).map(|i| normal(1, i)).collect()).await;
    store.truncate_after(Some(log_id(1, 30))).await.unwrap();
    append_durably(&mut store, (31..=50).map(|i| normal(2, i)).collect()).await;
    store.purge(log_id(1, 12)).await.unwrap();
    let mut from_disk = LogStore::new(db);
    for (start, end) in [
        (0, 60),
        (10, 14),
        (13, 14),
        (25, 35),
        (30, 31),
        (49, 51),
        (50, 50),
    ] {
        let cached = store.try_get_log_entries(start..end).await.unwrap();
        let stored = from_disk.try_get_log_entries(start..end).await.unwrap();
        assert_eq!(cached, stored, "range {start}..{end}");
    }
    assert_eq!(
        store.try_get_log_entries(13..).await.unwrap(),
        from_disk.try_get_log_entries(13..).await.unwrap()
    );
    let replaced = store.try_get_log_entries(31..32).await.unwrap();
    assert_eq!(replaced, vec![normal(2, 31)]);
}

#[tokio::test]
async fn committed_can_be_cleared() {
    let dir = TempDir::new().unwrap();
    let (_db, mut store) = open(dir.path());
    assert_eq!(store.read_committed().await.unwrap(), None);
    store.save_committed(Some(log_id(1, 2))).await.unwrap();
    store.save_committed(None).await.unwrap();
    assert_eq!(store.read_committed().await.unwrap(), None);
}

#[tokio::test]
async fn purging_everything_leaves_the_log_ending_at_the_purge_point() {
    let dir = TempDir::new().unwrap();
    let (_db, mut store) = open(dir.path());
    append_durably(&mut store, (1..=3).map(|i| normal(1, i)).collect()).await;
    store.purge(log_id(1, 3)).await.unwrap();
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 3)));
    assert_eq!(state.last_log_id, Some(log_id(1, 3)));
    assert!(store.try_get_log_entries(..).await.unwrap().is_empty());
}

#[tokio::test]
async fn ranges_at_the_edges_of_u64() {
    let dir = TempDir::new().unwrap();
    let (_db, mut store) = open(dir.path());
    append_durably(
        &mut store,
        vec![normal(1, u64::MAX - 1), normal(1, u64::MAX)],
    )
    .await;
    assert_eq!(
        store.try_get_log_entries(u64::MAX..).await.unwrap().len(),
        1
    );
    assert_eq!(
        store
            .try_get_log_entries(u64::MAX - 1..=u64::MAX)
            .await
            .unwrap()
            .len(),
        2
    );
    use std::ops::Bound::{Excluded, Unbounded};
    let past_end = (Excluded(u64::MAX), Unbounded);
    assert!(store
        .try_get_log_entries(past_end)
        .await
        .unwrap()
        .is_empty());
    store
        .truncate_after(Some(log_id(1, u64::MAX - 2)))
        .await
        .unwrap();
    assert!(store.try_get_log_entries(..).await.unwrap().is_empty());
}

/// Many appends in flight before any is acknowledged, as openraft pipelines them: every callback
/// must arrive, successfully, and only once the entries are readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_appends_are_all_acknowledged() {
    let dir = TempDir::new().unwrap();
    let (_db, mut store) = open(dir.path());
    let mut pending = Vec::new();
    for i in 1..=500 {
        let (tx, rx) = TypeConfig::oneshot();
        store
            .append(vec![normal(1, i)], IOFlushed::signal(tx))
            .await
            .unwrap();
        pending.push(rx);
    }
    for rx in pending {
        rx.await.expect("callback called").expect("fsync succeeded");
    }
    assert_eq!(store.try_get_log_entries(1..=500).await.unwrap().len(), 500);
}

/// Dropping the last store answers callbacks still queued rather than losing them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_store_answers_pending_callbacks() {
    let dir = TempDir::new().unwrap();
    let (_db, mut store) = open(dir.path());
    let (tx, rx) = TypeConfig::oneshot();
    store
        .append(vec![normal(1, 1)], IOFlushed::signal(tx))
        .await
        .unwrap();
    drop(store);
    rx.await.expect("callback called").expect("fsync succeeded");
}

fn put_raw(db: &rocksdb::DB, cf: &str, key: &[u8], value: &[u8]) {
    db.put_cf(db::cf(db, cf), key, value).unwrap();
}

fn assert_invalid_data<T: std::fmt::Debug>(result: io::Result<T>) -> String {
    let err = result.expect_err("corrupt bytes must be an error");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    err.to_string()
}

#[tokio::test]
async fn corrupt_entry_bytes_are_an_error_not_a_panic() {
    let dir = TempDir::new().unwrap();
    let (db, mut writer) = open(dir.path());
    append_durably(&mut writer, vec![normal(1, 1)]).await;
    // The bytes below are written behind the store's back, so they are read by a store that
    // keeps nothing in memory yet (the writer still holds entry 1 as it appended it).
    let mut store = LogStore::new(db.clone());

    // Garbage after a valid format byte, including a huge length prefix.
    put_raw(
        &db,
        CF_LOG,
        &2u64.to_be_bytes(),
        &[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    );
    let msg = assert_invalid_data(store.try_get_log_entries(1..=2).await);
    assert!(msg.contains("raft log entry 2"), "{msg}");
    assert_invalid_data(store.get_log_state().await);

    // An empty value.
    put_raw(&db, CF_LOG, &2u64.to_be_bytes(), &[]);
    assert_invalid_data(store.try_get_log_entries(2..3).await);

    // A valid entry stored under the wrong index.
    let raw = db
        .get_cf(db::cf(&db, CF_LOG), 1u64.to_be_bytes())
        .unwrap()
        .unwrap();
    put_raw(&db, CF_LOG, &2u64.to_be_bytes(), &raw);
    let msg = assert_invalid_data(store.try_get_log_entries(2..3).await);
    assert!(msg.contains("index"), "{msg}");

    // A key that is not an 8-byte index.
    put_raw(&db, CF_LOG, &[0, 0, 0, 0, 0, 0, 0, 0, 7], &raw);
    assert_invalid_data(store.try_get_log_entries(0..1).await);

    // Trailing bytes after a valid value.
    let mut trailing = raw.clone();
    trailing.push(0);
    put_raw(&db, CF_LOG, &1u64.to_be_bytes(), &trailing);
    assert_invalid_data(store.try_get_log_entries(1..2).await);
}

#[tokio::test]
async fn unknown_format_version_is_refused() {
    let dir = TempDir::new().unwrap();
    let (db, mut store) = open(dir.path());
    append_durably(&mut store, vec![normal(1, 1)]).await;
    let mut raw = db
        .get_cf(db::cf(&db, CF_LOG), 1u64.to_be_bytes())
        .unwrap()
        .unwrap();
    raw[0] = 2;
    put_raw(&db, CF_LOG, &1u64.to_be_bytes(), &raw);
    let msg = assert_invalid_data(store.try_get_log_entries(..).await);
    assert!(msg.contains("format version 2"), "{msg}");
}

#[tokio::test]
async fn corrupt_meta_bytes_are_an_error_not_a_panic() {
    let dir = TempDir::new().unwrap();
    let (db, mut store) = open(dir.path());
    put_raw(&db, CF_RAFT_META, b"vote", &[1, 9]);
    put_raw(&db, CF_RAFT_META, b"committed_log_id", &[7]);
    put_raw(&db, CF_RAFT_META, b"last_purged_log_id", &[1]);
    let msg = assert_invalid_data(store.read_vote().await);
    assert!(msg.contains("vote"), "{msg}");
    assert_invalid_data(store.read_committed().await);
    assert_invalid_data(store.get_log_state().await);
}
