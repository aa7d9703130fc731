//! The Raft state machine over RocksDB: applies committed event batches to the projection, and builds
//! and installs snapshots of it.
//!
//! Applying writes one RocksDB batch per `apply` call without its own fsync: the log entries are
//! durable already, so after a crash openraft re-applies from the last applied id stored in the same
//! batch. Before a snapshot is cut the WAL is fsynced, because the log behind a snapshot is purged.
//! Snapshots are files, built, sent and installed with bounded memory: see [`crate::snapshot`].

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use prost::Message as _;
use rocksdb::{WriteBatch, DB};
use tokio::sync::watch;

use crate::db::{self, CF_MESSAGES, CF_SM_META};
use crate::events::EventBatch;
use crate::keys;
use crate::observe::{ApplyNote, SharedObserver};
use crate::projection::{apply_event, Kv, ProjectionError};
use crate::record_cache::RecordCache;
use crate::snapshot::{build, install, SnapshotDir};
use crate::types::{
    ApplyResponse, LogId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig,
};

#[derive(Clone)]
pub struct StateMachineStore {
    db: Arc<DB>,
    snapshots: Arc<SnapshotDir>,
    applied_tx: Arc<watch::Sender<u64>>,
    records: Arc<Mutex<RecordCache>>,
    observer: SharedObserver,
}

/// Memory for the message records apply keeps for the messages' next events.
const RECORD_CACHE_BYTES: usize = 32 << 20;

impl StateMachineStore {
    /// `snapshot_dir` holds the latest snapshot file; the watch channel reports the last applied
    /// log index so that dispatchers wake up when new events land.
    ///
    /// A snapshot install that a crash interrupted is completed here, before anything reads the
    /// projection (blocking, and as long as the install itself).
    pub fn new(db: Arc<DB>, snapshot_dir: &Path) -> io::Result<Self> {
        let snapshots = Arc::new(SnapshotDir::open(snapshot_dir)?);
        if let Some(meta) = install::resume_interrupted(&db, &snapshots)? {
            tracing::info!(last_log_id = ?meta.last_log_id, "installed snapshot (resumed)");
        }
        let (applied_tx, _) = watch::channel(0);
        let store = StateMachineStore {
            db,
            snapshots,
            applied_tx: Arc::new(applied_tx),
            records: Arc::new(Mutex::new(RecordCache::new(RECORD_CACHE_BYTES))),
            observer: crate::observe::nothing(),
        };
        let (applied, _) = store.read_applied_state()?;
        store
            .applied_tx
            .send_replace(applied.map(|l| l.index).unwrap_or(0));
        Ok(store)
    }

    /// Reports applies and snapshots to `observer` (the node's metrics).
    pub fn with_observer(mut self, observer: SharedObserver) -> Self {
        self.observer = observer;
        self
    }

    /// Last applied log index, updated after every apply.
    pub fn subscribe_applied(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    fn read_applied_state(&self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let meta = db::cf(&self.db, CF_SM_META);
        // Stored as JSON `null` after an empty snapshot was installed.
        let applied: Option<LogId> = match self
            .db
            .get_cf(meta, keys::META_LAST_APPLIED)
            .map_err(io::Error::other)?
        {
            Some(b) => serde_json::from_slice(&b).map_err(invalid)?,
            None => None,
        };
        let membership = match self
            .db
            .get_cf(meta, keys::META_MEMBERSHIP)
            .map_err(io::Error::other)?
        {
            Some(b) => serde_json::from_slice(&b).map_err(invalid)?,
            None => StoredMembership::default(),
        };
        Ok((applied, membership))
    }

    /// Where the internal service writes the snapshots it receives.
    pub fn snapshot_dir(&self) -> Arc<SnapshotDir> {
        self.snapshots.clone()
    }
}

/// Installs a snapshot and clears the record cache before and after, whatever the outcome: the
/// install may have replaced part of the projection under it.
fn install_clearing(
    db: &DB,
    dir: &SnapshotDir,
    meta: &SnapshotMeta,
    snapshot: SnapshotData,
    records: &Mutex<RecordCache>,
) -> io::Result<()> {
    let clear = || {
        records
            .lock()
            .map(|mut r| r.clear())
            .map_err(|_| io::Error::other("record cache poisoned"))
    };
    clear()?;
    let installed = install::install(db, dir, meta, snapshot);
    clear()?;
    installed
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

fn projection_err(e: ProjectionError) -> io::Error {
    io::Error::other(e.to_string())
}

/// Reads through to RocksDB and stages writes, so that later events of one apply call see what
/// earlier ones wrote; the staged writes become one RocksDB batch. Message records are read from
/// the record cache first.
struct StagedKv<'a> {
    db: &'a DB,
    staged: BTreeMap<(&'static str, Vec<u8>), Option<Vec<u8>>>,
    records: MutexGuard<'a, RecordCache>,
    notes: Vec<ApplyNote>,
}

impl Kv for StagedKv<'_> {
    fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, ProjectionError> {
        if let Some(v) = self.staged.get(&(cf, key.to_vec())) {
            return Ok(v.clone());
        }
        if cf == CF_MESSAGES {
            if let Some(record) = self.records.get(key) {
                return Ok(Some(record.clone()));
            }
        }
        self.db
            .get_cf(db::cf(self.db, cf), key)
            .map_err(|e| ProjectionError::Storage(e.to_string()))
    }
    fn put(&mut self, cf: &'static str, key: Vec<u8>, value: Vec<u8>) {
        self.staged.insert((cf, key), Some(value));
    }
    fn delete(&mut self, cf: &'static str, key: Vec<u8>) {
        self.staged.insert((cf, key), None);
    }
    fn note(&mut self, note: ApplyNote) {
        self.notes.push(note);
    }
}

impl StagedKv<'_> {
    /// Writes the staged changes in one batch, then hands the message records written to the
    /// cache (only then: the cache never holds what RocksDB does not). Returns the apply notes.
    fn write(mut self) -> Result<Vec<ApplyNote>, rocksdb::Error> {
        let mut batch = WriteBatch::default();
        for ((cf, key), value) in &self.staged {
            let handle = db::cf(self.db, cf);
            match value {
                Some(v) => batch.put_cf(handle, key, v),
                None => batch.delete_cf(handle, key),
            }
        }
        self.db.write(batch)?;
        for ((cf, key), value) in std::mem::take(&mut self.staged) {
            if cf == CF_MESSAGES {
                self.records.written(&key, value);
            }
        }
        Ok(std::mem::take(&mut self.notes))
    }
}

/// Applies entries to the projection in one batch; returns each entry's response.
fn apply_entries(
    db: &DB,
    records: &Mutex<RecordCache>,
    entries: &[crate::types::Entry],
    observer: &SharedObserver,
) -> io::Result<Vec<Option<ApplyResponse>>> {
    let mut kv = StagedKv {
        db,
        notes: Vec::new(),
        staged: BTreeMap::new(),
        records: records
            .lock()
            .map_err(|_| io::Error::other("record cache poisoned"))?,
    };
    let mut responses = Vec::with_capacity(entries.len());
    let mut last_membership = None;
    for entry in entries {
        match &entry.payload {
            EntryPayload::Blank => responses.push(Some(ApplyResponse::default())),
            EntryPayload::Normal(payload) => {
                // A batch this node cannot decode, or an event it cannot apply, was written by a
                // newer version: skipping it would leave this node's projection different from
                // its peers' for good, so apply fails and the node stops (nothing of this call's
                // entries is written) until it is upgraded.
                let batch = EventBatch::decode(payload.0.as_slice()).map_err(|e| {
                    io::Error::other(format!(
                        "log entry {}: {}",
                        entry.log_id.index,
                        ProjectionError::TooNew {
                            what: format!("an event batch it cannot decode ({e})"),
                            needs: crate::events::FORMAT_LEVEL + 1,
                            here: crate::events::FORMAT_LEVEL,
                        }
                    ))
                })?;
                let outcomes = batch
                    .events
                    .iter()
                    .map(|e| apply_event(&mut kv, e))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| match e {
                        ProjectionError::TooNew { .. } => {
                            io::Error::other(format!("log entry {}: {e}", entry.log_id.index))
                        }
                        e => projection_err(e),
                    })?;
                responses.push(Some(ApplyResponse { outcomes }));
            }
            EntryPayload::Membership(m) => {
                last_membership = Some(StoredMembership::new(Some(entry.log_id), m.clone()));
                responses.push(Some(ApplyResponse::default()));
            }
        }
    }
    if let Some(last) = entries.last() {
        kv.put(
            CF_SM_META,
            keys::META_LAST_APPLIED.to_vec(),
            serde_json::to_vec(&last.log_id).map_err(invalid)?,
        );
    }
    if let Some(m) = last_membership {
        kv.put(
            CF_SM_META,
            keys::META_MEMBERSHIP.to_vec(),
            serde_json::to_vec(&m).map_err(invalid)?,
        );
    }
    let notes = kv.write().map_err(io::Error::other)?;
    if !notes.is_empty() {
        observer.applied(&notes);
    }
    Ok(responses)
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        self.read_applied_state()
    }

    async fn apply<Strm>(&mut self, entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let items: Vec<EntryResponder<TypeConfig>> = entries.try_collect().await?;
        if items.is_empty() {
            return Ok(());
        }
        let (entries, responders): (Vec<_>, Vec<_>) = items.into_iter().unzip();
        let (db, records) = (self.db.clone(), self.records.clone());
        let observer = self.observer.clone();
        let (entries, responses) = tokio::task::spawn_blocking(move || {
            let responses = apply_entries(&db, &records, &entries, &observer);
            (entries, responses)
        })
        .await
        .map_err(io::Error::other)?;
        let responses = responses?;
        for (responder, response) in responders.into_iter().zip(responses) {
            if let (Some(responder), Some(response)) = (responder, response) {
                responder.send(response);
            }
        }
        if let Some(last) = entries.last() {
            self.applied_tx.send_replace(last.log_id.index);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let bytes = snapshot.data_len();
        let started = std::time::Instant::now();
        let (db, dir, meta_owned) = (self.db.clone(), self.snapshots.clone(), meta.clone());
        let records = self.records.clone();
        tokio::task::spawn_blocking(move || {
            install_clearing(&db, &dir, &meta_owned, snapshot, &records)
        })
        .await
        .map_err(io::Error::other)??;
        tracing::info!(last_log_id = ?meta.last_log_id, bytes, "installed snapshot");
        self.observer.snapshot_installed(started.elapsed(), bytes);
        self.applied_tx
            .send_replace(meta.last_log_id.map(|l| l.index).unwrap_or(0));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let dir = self.snapshots.clone();
        let current = tokio::task::spawn_blocking(move || dir.open_current())
            .await
            .map_err(io::Error::other)??;
        Ok(current.map(|(meta, snapshot)| Snapshot { meta, snapshot }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let (db, dir) = (self.db.clone(), self.snapshots.clone());
        let started = std::time::Instant::now();
        let (meta, snapshot) = tokio::task::spawn_blocking(move || build::build(&db, &dir))
            .await
            .map_err(io::Error::other)??;
        self.observer
            .snapshot_built(started.elapsed(), snapshot.data_len());
        Ok(Snapshot { meta, snapshot })
    }
}

#[cfg(test)]
mod tests {
    //! Snapshots through RocksDB: building then installing reproduces the projection exactly,
    //! also through the chunked transfer and with more data than one chunk and one install batch;
    //! a corrupt snapshot changes nothing; an install a crash interrupted is completed when the
    //! store opens. (The record format's own tests are in `snapshot::format`, the transfer's in
    //! `snapshot::transfer`.)

    use std::collections::{BTreeMap, BTreeSet};
    use std::io::Read as _;

    use futures::StreamExt;
    use openraft::entry::RaftEntry;
    use rocksdb::IteratorMode;

    use super::*;
    use crate::db::{CF_MESSAGES, CF_RAFT_META, PROJECTION_CFS};
    use crate::events::{event::Kind, *};
    use crate::snapshot::format::SNAPSHOT_FORMAT_V1;
    use crate::snapshot::install::{BATCH_BYTES, INSTALLING};
    use crate::snapshot::transfer::{self, CHUNK_LEN};
    use crate::snapshot::SnapshotFile;
    use crate::types::{Entry, EventsPayload};

    /// A node's storage: its RocksDB and its snapshot directory, side by side as on a node.
    struct Node {
        dir: tempfile::TempDir,
        db: Arc<DB>,
        snapshots: Arc<SnapshotDir>,
        records: Mutex<RecordCache>,
    }

    fn fresh_cache() -> Mutex<RecordCache> {
        Mutex::new(RecordCache::new(RECORD_CACHE_BYTES))
    }

    impl Node {
        fn new() -> Node {
            let dir = tempfile::tempdir().unwrap();
            let db = db::open(&dir.path().join("db")).unwrap();
            let snapshots = Arc::new(SnapshotDir::open(&dir.path().join("snapshots")).unwrap());
            Node {
                dir,
                db,
                snapshots,
                records: fresh_cache(),
            }
        }

        /// Builds a snapshot the way the store does (it becomes this node's current one).
        fn build(&self) -> (SnapshotMeta, SnapshotFile) {
            build::build(&self.db, &self.snapshots).unwrap()
        }

        /// A copy of another node's snapshot file, as if just received: a temporary file here.
        fn receive(&self, from: &SnapshotFile) -> SnapshotFile {
            let (path, mut file) = self.snapshots.create_temporary("received").unwrap();
            std::io::copy(&mut std::fs::File::open(from.path()).unwrap(), &mut file).unwrap();
            let (_, mut snapshot) = SnapshotFile::open(&path).unwrap();
            snapshot.mark_temporary();
            snapshot
        }

        fn install(&self, meta: &SnapshotMeta, snapshot: SnapshotFile) -> io::Result<()> {
            install_clearing(&self.db, &self.snapshots, meta, snapshot, &self.records)
        }

        /// Applies `entries` the way the store does, through this node's record cache.
        fn apply(&self, entries: &[Entry]) {
            apply_entries(&self.db, &self.records, entries, &crate::observe::nothing()).unwrap();
        }

        fn marker(&self) -> Option<Vec<u8>> {
            self.db
                .get_cf(db::cf(&self.db, CF_RAFT_META), INSTALLING)
                .unwrap()
        }

        /// Closes the database (as a crash would, with what it wrote in its WAL) and opens the
        /// store again on the same directories.
        fn reopen_store(self) -> (tempfile::TempDir, Arc<DB>, io::Result<StateMachineStore>) {
            let Node {
                dir, db, snapshots, ..
            } = self;
            drop(snapshots);
            drop(db);
            let db = db::open(&dir.path().join("db")).unwrap();
            let store = StateMachineStore::new(db.clone(), &dir.path().join("snapshots"));
            (dir, db, store)
        }
    }

    /// The whole data of a snapshot file.
    fn data_of(snapshot: &SnapshotFile) -> Vec<u8> {
        let mut data = Vec::new();
        snapshot
            .data_reader()
            .unwrap()
            .read_to_end(&mut data)
            .unwrap();
        assert_eq!(data.len() as u64, snapshot.data_len());
        data
    }

    /// Adds `count` records of about `value_len` bytes to several projection column families,
    /// with keys no event writes: enough data to span many chunks and install batches.
    fn bulk(db: &DB, count: u32, value_len: usize) {
        for i in 0..count {
            let cf = PROJECTION_CFS[(i as usize * 7) % PROJECTION_CFS.len()];
            let key = format!("bulk-{i:08}");
            let value: Vec<u8> = (0..value_len)
                .map(|j| (i as usize * 31 + j * 7) as u8)
                .collect();
            db.put_cf(db::cf(db, cf), key, value).unwrap();
        }
    }

    type Projection = BTreeMap<&'static str, Vec<(Vec<u8>, Vec<u8>)>>;

    fn projection(db: &DB) -> Projection {
        PROJECTION_CFS
            .iter()
            .map(|name| {
                let rows = db
                    .iterator_cf(db::cf(db, name), IteratorMode::Start)
                    .map(|item| {
                        let (k, v) = item.unwrap();
                        (k.to_vec(), v.to_vec())
                    })
                    .collect();
                (*name, rows)
            })
            .collect()
    }

    fn log_id(index: u64) -> LogId {
        openraft::testing::log_id::<TypeConfig>(1, 1, index)
    }

    fn normal(index: u64, kinds: Vec<Kind>) -> Entry {
        let batch = EventBatch {
            events: kinds.into_iter().map(|k| Event::new(index, k)).collect(),
        };
        Entry::new_normal(log_id(index), EventsPayload(batch.encode_to_vec()))
    }

    fn membership(index: u64) -> Entry {
        let m = openraft::Membership::new_with_defaults(vec![BTreeSet::from([1u64])], [1u64]);
        Entry::new_membership(log_id(index), m)
    }

    fn submit(key: &str) -> Kind {
        Kind::Submitted(MessageSubmitted {
            client_id: "client".into(),
            idempotency_key: key.into(),
            recipients: vec!["+1".into(), "+2".into()],
            text: "hi".into(),
            link: "acme".into(),
            expires_at_ms: 4_000_000_000_000,
            ..Default::default()
        })
    }

    fn dispatch(id: u64, segments: u32) -> Kind {
        Kind::Dispatched(MessageDispatched {
            message_id: id,
            link: "acme".into(),
            node: 1,
            epoch: 1,
            attempt: 1,
            segments,
            ..Default::default()
        })
    }

    fn accepted(id: u64, segment: u32, carrier_id: &str) -> Kind {
        Kind::CarrierAccepted(CarrierAccepted {
            message_id: id,
            link: "acme".into(),
            segment,
            carrier_id: carrier_id.into(),
            ..Default::default()
        })
    }

    fn report(carrier_id: &str) -> Kind {
        Kind::DeliveryReported(DeliveryReported {
            link: "acme".into(),
            carrier_id: carrier_id.into(),
            delivered: true,
            status: "DELIVRD".into(),
            ..Default::default()
        })
    }

    fn mo_part(reference: u32, number: u32) -> Kind {
        Kind::MoReceived(crate::events::MoReceived {
            link: "acme".into(),
            src: "+1".into(),
            dest: "106".into(),
            text: format!("part {number}"),
            carrier_id: format!("{reference}-{number}"),
            concat: Some(crate::events::MoConcat {
                reference,
                total: 2,
                number,
                scheme: "udh8".into(),
            }),
            ..Default::default()
        })
    }

    /// A projection with something in every column family: queued, in-flight, sent and delivered
    /// messages, idempotency keys, carrier ids, an orphan report, the link table, membership,
    /// a reply, an MO message waiting for a part and the last-sender index.
    fn populated(db: &DB) {
        let entries = vec![
            membership(1),
            normal(
                2,
                vec![
                    Kind::LinkAssigned(LinkAssigned {
                        link: "acme".into(),
                        node: 1,
                        epoch: 1,
                    }),
                    submit("k1"),
                    submit("k2"),
                    submit(""),
                    submit("k4"),
                    Kind::Submitted(MessageSubmitted {
                        client_id: "client".into(),
                        idempotency_key: "later".into(),
                        recipients: vec!["+1".into()],
                        text: "scheduled".into(),
                        link: "acme".into(),
                        send_at_ms: 4_000_000_000_000,
                        ..Default::default()
                    }),
                ],
            ),
            normal(3, vec![dispatch(1, 2), dispatch(2, 2), dispatch(3, 1)]),
            normal(
                4,
                vec![
                    accepted(1, 0, "a"),
                    accepted(2, 0, "b0"),
                    accepted(2, 1, "b1"),
                    report("b0"),
                    report("b1"),
                    report("orphan"),
                    // One reply (routed to the last sender of "+1"), one part still waiting.
                    mo_part(1, 1),
                    mo_part(1, 2),
                    mo_part(2, 1),
                    // A client with a key: the client list, the key index and the audit trail.
                    Kind::ClientCreated(ClientCreated {
                        name: "erp".into(),
                        role: "sender".into(),
                        ..Default::default()
                    }),
                    Kind::ClientKeyAdded(ClientKeyAdded {
                        client: "erp".into(),
                        key_id: "0123456789ab".into(),
                        key_sha256: vec![7; 32],
                    }),
                ],
            ),
            Entry::new_blank(log_id(5)),
        ];
        apply_entries(db, &fresh_cache(), &entries, &crate::observe::nothing()).unwrap();
    }

    /// An entry written by a newer version stops apply (the node stops) instead of being
    /// skipped: nothing of the call is written, and the error names the entry and the upgrade.
    #[test]
    fn an_entry_of_a_newer_format_stops_apply_instead_of_diverging() {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(dir.path()).unwrap();
        let records = fresh_cache();
        apply_entries(
            &db,
            &records,
            &[normal(1, vec![submit("a")])],
            &crate::observe::nothing(),
        )
        .unwrap();
        let before = projection(&db);
        // A oneof tag this build does not know (prost decodes it to no kind at all), after an
        // event it knows in the same entry.
        let mut unknown_kind = EventBatch {
            events: vec![Event::new(2, submit("b"))],
        }
        .encode_to_vec();
        // Event { at_ms: 1, <field 99, length-delimited>: empty } inside EventBatch field 1.
        let event = [0x08, 0x01, 0x9a, 0x06, 0x00];
        unknown_kind.extend([0x0a, event.len() as u8]);
        unknown_kind.extend(event);
        let raised = EventBatch {
            events: vec![Event::new(
                3,
                Kind::ClusterVersionRaised(crate::events::ClusterVersionRaised {
                    level: crate::events::FORMAT_LEVEL + 1,
                }),
            )],
        }
        .encode_to_vec();
        let cases = [
            (unknown_kind, "an event of a kind it does not know"),
            (vec![0x0a, 0xff, 0xff], "an event batch it cannot decode"),
            (raised, "the cluster version raised to format level 3"),
        ];
        for (bytes, what) in cases {
            let entry = Entry::new_normal(log_id(7), EventsPayload(bytes));
            let e = apply_entries(
                &db,
                &records,
                &[normal(6, vec![submit("c")]), entry],
                &crate::observe::nothing(),
            )
            .unwrap_err()
            .to_string();
            assert!(
                e.starts_with("log entry 7: this node's version (format level 2) cannot apply"),
                "{e}"
            );
            assert!(e.contains(what), "{e}");
            assert!(e.contains("upgrade it"), "{e}");
            assert_eq!(projection(&db), before, "a failed apply wrote something");
        }
    }

    #[test]
    fn the_cluster_version_only_rises() {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(dir.path()).unwrap();
        let reader = crate::reader::ProjectionReader::new(db.clone());
        assert_eq!(reader.cluster_level().unwrap(), 1);
        let raise =
            |level| Kind::ClusterVersionRaised(crate::events::ClusterVersionRaised { level });
        let responses = apply_entries(
            &db,
            &fresh_cache(),
            &[normal(1, vec![raise(2), raise(1), raise(2)])],
            &crate::observe::nothing(),
        )
        .unwrap();
        assert_eq!(reader.cluster_level().unwrap(), 2);
        let outcomes = &responses[0].as_ref().unwrap().outcomes;
        assert!(matches!(outcomes[0], crate::types::EventOutcome::Applied));
        assert!(matches!(
            outcomes[1],
            crate::types::EventOutcome::Ignored { .. }
        ));
        assert!(matches!(
            outcomes[2],
            crate::types::EventOutcome::Ignored { .. }
        ));
    }

    #[test]
    fn the_fixture_fills_every_projection_column_family() {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(dir.path()).unwrap();
        populated(&db);
        for (cf, rows) in projection(&db) {
            assert!(!rows.is_empty(), "{cf} is empty");
        }
        let messages = db
            .iterator_cf(db::cf(&db, CF_MESSAGES), IteratorMode::Start)
            .count();
        assert_eq!(messages, 5);
    }

    #[test]
    fn dump_then_load_reproduces_the_projection() {
        let source = Node::new();
        populated(&source.db);
        let (meta, snapshot) = source.build();
        assert_eq!(meta.last_log_id, Some(log_id(5)));
        assert_eq!(meta.last_membership.log_id(), &Some(log_id(1)));

        let target = Node::new();
        target.install(&meta, target.receive(&snapshot)).unwrap();
        assert_eq!(projection(&target.db), projection(&source.db));
        assert!(target.marker().is_none());

        // And the loaded copy dumps to the same bytes.
        let (meta_again, snapshot_again) = target.build();
        assert_eq!(meta_again, meta);
        assert_eq!(data_of(&snapshot_again), data_of(&snapshot));
    }

    #[test]
    fn load_replaces_what_was_there() {
        let source = Node::new();
        populated(&source.db);
        let (meta, snapshot) = source.build();

        // The target has a different history: more messages, other keys in every family.
        let target = Node::new();
        let mut other = vec![membership(1)];
        other.push(normal(
            2,
            vec![
                Kind::LinkAssigned(LinkAssigned {
                    link: "zeta".into(),
                    node: 2,
                    epoch: 9,
                }),
                submit("x1"),
                submit("x2"),
                submit("x3"),
                submit("x4"),
                submit("x5"),
                submit("x6"),
                report("stray"),
            ],
        ));
        target.apply(&other);
        let sixth = keys::message(6);
        let messages = db::cf(&target.db, CF_MESSAGES);
        assert!(target.db.get_cf(messages, &sixth).unwrap().is_some());
        assert!(target.records.lock().unwrap().get(&sixth).is_some());
        target.install(&meta, target.receive(&snapshot)).unwrap();
        assert_eq!(projection(&target.db), projection(&source.db));
        // Point reads see the clearing too, not only iterators; and so does apply, which reads
        // through the record cache.
        assert!(target.db.get_cf(messages, &sixth).unwrap().is_none());
        assert!(target.records.lock().unwrap().get(&sixth).is_none());
    }

    #[test]
    fn a_corrupt_snapshot_leaves_the_projection_alone() {
        let node = Node::new();
        populated(&node.db);
        let (meta, snapshot) = node.build();
        let before = projection(&node.db);
        let good_data = data_of(&snapshot);

        let corrupt = node.receive(&snapshot);
        let len = std::fs::metadata(corrupt.path()).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(corrupt.path())
            .unwrap()
            .set_len(len - 1)
            .unwrap();
        let (_, corrupt) = SnapshotFile::open(corrupt.path()).unwrap();
        assert!(node.install(&meta, corrupt).is_err());
        assert_eq!(projection(&node.db), before);
        assert!(node.marker().is_none());
        // The current snapshot is still the good one.
        let (current_meta, current) = node.snapshots.open_current().unwrap().unwrap();
        assert_eq!(current_meta, meta);
        assert_eq!(data_of(&current), good_data);
    }

    #[test]
    fn a_store_reads_its_applied_state_after_loading_a_snapshot() {
        let source = Node::new();
        populated(&source.db);
        let (meta, snapshot) = source.build();
        let target = Node::new();
        target.install(&meta, target.receive(&snapshot)).unwrap();
        let (_dir, _db, store) = target.reopen_store();
        let store = store.unwrap();
        let (applied, membership) = store.read_applied_state().unwrap();
        assert_eq!(applied, meta.last_log_id);
        assert_eq!(membership, meta.last_membership);
        assert_eq!(*store.subscribe_applied().borrow(), 5);
    }

    /// A snapshot of a state machine that has applied nothing: its `last_log_id` (None) is stored
    /// as JSON `null` and must read back as None.
    #[test]
    fn an_empty_projection_survives_a_round_trip() {
        let source = Node::new();
        let (meta, snapshot) = source.build();
        assert_eq!(meta.last_log_id, None);
        assert_eq!(data_of(&snapshot), [SNAPSHOT_FORMAT_V1]);

        let target = Node::new();
        target.install(&meta, target.receive(&snapshot)).unwrap();
        let (meta_again, snapshot_again) = target.build();
        assert_eq!(meta_again, meta);
        // Loading records the snapshot's (empty) applied state and membership in the projection.
        let data = data_of(&snapshot_again);
        crate::snapshot::format::validate(&data[..], data.len() as u64).unwrap();
        let (_dir, _db, store) = target.reopen_store();
        store.unwrap();
    }

    /// The store's own snapshot is what openraft reads back, and what a restarted node offers.
    #[tokio::test]
    async fn the_built_snapshot_is_the_current_one() {
        let node = Node::new();
        populated(&node.db);
        let mut store =
            StateMachineStore::new(node.db.clone(), &node.dir.path().join("snapshots")).unwrap();
        assert!(store.get_current_snapshot().await.unwrap().is_none());
        let built = store.build_snapshot().await.unwrap();
        let current = store.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, built.meta);
        assert_eq!(data_of(&current.snapshot), data_of(&built.snapshot));
    }

    /// Build, send in chunks, receive, install: more data than one chunk and than one install
    /// batch comes out exactly as it went in.
    #[tokio::test]
    async fn a_snapshot_larger_than_a_chunk_and_a_batch_round_trips_through_the_transfer() {
        let source = Node::new();
        populated(&source.db);
        bulk(&source.db, 6_000, 1_500);
        let (meta, snapshot) = source.build();
        assert!(
            snapshot.data_len() > 2 * BATCH_BYTES as u64,
            "{}",
            snapshot.data_len()
        );
        assert!(snapshot.data_len() > 4 * CHUNK_LEN as u64);

        let vote = crate::types::Vote::new(1, 1);
        let header = transfer::header(&vote, &meta).unwrap();
        let (chunks, failure) = transfer::outgoing(header, Arc::new(snapshot));
        let chunks: Vec<_> = chunks.collect().await;
        assert!(failure.take().is_none());
        assert!(chunks.len() > 4, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.data.len() <= CHUNK_LEN));

        let target = Node::new();
        populated(&target.db);
        bulk(&target.db, 100, 10);
        let mut store =
            StateMachineStore::new(target.db.clone(), &target.dir.path().join("snapshots"))
                .unwrap();
        let received = transfer::receive(
            &store.snapshot_dir(),
            futures::stream::iter(chunks.into_iter().map(Ok)),
        )
        .await
        .unwrap();
        assert_eq!(received.meta, meta);
        assert_eq!(received.vote, vote);
        store
            .install_snapshot(&received.meta, received.snapshot)
            .await
            .unwrap();
        assert_eq!(projection(&target.db), projection(&source.db));
        assert_eq!(*store.subscribe_applied().borrow(), 5);
        let current = store.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, meta);
        // No temporary file is left behind.
        let files: Vec<_> = std::fs::read_dir(target.dir.path().join("snapshots"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, vec![std::ffi::OsString::from("snapshot-v1.bin")]);
    }

    /// A crash after the projection was cleared and partly loaded: the marker is there when the
    /// store opens, and the install is completed before anything reads the projection.
    #[test]
    fn an_install_interrupted_by_a_crash_is_completed_when_the_store_opens() {
        let source = Node::new();
        populated(&source.db);
        bulk(&source.db, 3_000, 1_500);
        let (meta, snapshot) = source.build();

        let target = Node::new();
        let other = vec![
            membership(1),
            normal(2, vec![submit("x1"), submit("x2"), report("stray")]),
        ];
        target.apply(&other);
        // Steps 1–3 of an install: the file kept as the current snapshot, the marker written and
        // the projection cleared; then part of the records loaded, and the crash.
        let received = target.receive(&snapshot);
        let kept = target.snapshots.make_current(received.path()).unwrap();
        let mut received = received;
        received.moved_to(kept);
        install::start(&target.db, &meta).unwrap();
        let messages = db::cf(&target.db, CF_MESSAGES);
        target
            .db
            .put_cf(messages, b"bulk-00000000", b"half")
            .unwrap();
        target
            .db
            .put_cf(messages, b"not-in-the-snapshot", b"x")
            .unwrap();
        assert!(target.marker().is_some());
        drop(received);

        let (_dir, db, store) = target.reopen_store();
        let store = store.unwrap();
        assert_eq!(projection(&db), projection(&source.db));
        assert!(db
            .get_cf(db::cf(&db, CF_RAFT_META), INSTALLING)
            .unwrap()
            .is_none());
        let (applied, membership) = store.read_applied_state().unwrap();
        assert_eq!(applied, meta.last_log_id);
        assert_eq!(membership, meta.last_membership);
        assert_eq!(*store.subscribe_applied().borrow(), 5);
    }

    /// Until an install finishes, the projection has no applied state: a store that somehow read
    /// it half loaded would start from nothing, never from the snapshot's index.
    #[test]
    fn a_half_installed_projection_has_no_applied_state() {
        let source = Node::new();
        populated(&source.db);
        let (meta, _) = source.build();
        let target = Node::new();
        populated(&target.db);
        install::start(&target.db, &meta).unwrap();
        let meta_cf = db::cf(&target.db, CF_SM_META);
        assert!(target
            .db
            .get_cf(meta_cf, keys::META_LAST_APPLIED)
            .unwrap()
            .is_none());
    }

    /// The marker is there but the file it names is not (or is another): the store refuses to
    /// open rather than answer from a half-loaded projection.
    #[test]
    fn an_interrupted_install_without_its_file_refuses_to_open() {
        let source = Node::new();
        populated(&source.db);
        let (meta, _) = source.build();

        let target = Node::new();
        install::start(&target.db, &meta).unwrap();
        let (_dir, _db, store) = target.reopen_store();
        let err = store
            .err()
            .expect("opened over a half-installed projection");
        assert!(err.to_string().contains("interrupted"), "{err}");

        // Another snapshot kept than the one being installed.
        let target = Node::new();
        populated(&target.db);
        let (_other_meta, _) = target.build();
        let mut newer = meta.clone();
        newer.last_log_id = Some(log_id(99));
        install::start(&target.db, &newer).unwrap();
        let (_dir, _db, store) = target.reopen_store();
        let err = store
            .err()
            .expect("opened over a half-installed projection");
        assert!(err.to_string().contains("interrupted"), "{err}");
    }

    /// A follower installs a snapshot that conflicts with its log tail: openraft truncates the
    /// tail (a write it does not wait to be synced), then installs. Power is lost once the install
    /// has kept the snapshot file as current (renamed, directory synced) and before its first
    /// synced batch. On a filesystem that loses what was not fsynced, the node must still start:
    /// openraft's own start-up check refuses a snapshot beside the tail it replaced ("inverted log
    /// order").
    #[tokio::test]
    async fn a_power_cut_during_an_install_leaves_log_and_snapshot_consistent() {
        use herald_lossyfs::{LossyFs, Tear};
        use openraft::storage::{IOFlushed, RaftLogReader, RaftLogStorage};
        use openraft::type_config::TypeConfigExt;

        if let Err(reason) = LossyFs::available() {
            eprintln!("SKIPPED: {reason}");
            return;
        }
        let source = Node::new();
        populated(&source.db);
        let (meta, built) = source.build();
        let snap_last = meta.last_log_id.expect("a snapshot of applied entries");

        let mount = tempfile::tempdir().unwrap();
        let fs = LossyFs::mount(mount.path()).unwrap();
        let (db_dir, snap_dir) = (mount.path().join("db"), mount.path().join("snapshots"));
        // The directories themselves are made durable here: this test is about the install.
        std::fs::create_dir(&db_dir).unwrap();
        std::fs::create_dir(&snap_dir).unwrap();
        std::fs::File::open(mount.path())
            .unwrap()
            .sync_all()
            .unwrap();

        let db = db::open(&db_dir).unwrap();
        let mut log = crate::log_store::LogStore::new(db.clone());
        // An old leader's tail, at a lower term and past the snapshot's index, acknowledged
        // (fsynced) when it was appended.
        let old_tail: Vec<Entry> = (1..=snap_last.index + 3)
            .map(|i| {
                Entry::new_normal(
                    openraft::testing::log_id::<TypeConfig>(0, 2, i),
                    EventsPayload(Vec::new()),
                )
            })
            .collect();
        let (tx, rx) = TypeConfig::oneshot();
        log.append(old_tail, IOFlushed::signal(tx)).await.unwrap();
        rx.await.unwrap().unwrap();
        log.save_vote(&crate::types::Vote::new(1, 1)).await.unwrap();
        db.flush_wal(true).unwrap();

        let store = StateMachineStore::new(db.clone(), &snap_dir).unwrap();
        let received = {
            let (path, mut file) = store.snapshot_dir().create_temporary("received").unwrap();
            std::io::copy(&mut std::fs::File::open(built.path()).unwrap(), &mut file).unwrap();
            let (_, mut snapshot) = SnapshotFile::open(&path).unwrap();
            snapshot.mark_temporary();
            snapshot
        };
        // openraft: the local entry at the snapshot's index differs, so the uncommitted tail goes.
        log.truncate_after(None).await.unwrap();
        // The install's steps 1–2, then the power cut (before step 3's synced batch).
        let dir = store.snapshot_dir();
        let (kept, _) = install::keep(&db, &dir, &meta, received).unwrap();
        drop(kept);
        fs.power_cut(Tear::None).unwrap();
        drop((store, log, dir, db));

        let db = db::open(&db_dir).unwrap();
        let mut log = crate::log_store::LogStore::new(db.clone());
        let mut store = StateMachineStore::new(db.clone(), &snap_dir).unwrap();
        let state = openraft::StorageHelper::new(&mut log, &mut store)
            .with_id(1)
            .get_initial_state()
            .await;
        if let Err(e) = state {
            panic!("the node cannot start after the power cut: {e}");
        }
        let log_state = log.get_log_state().await.unwrap();
        assert_eq!(log_state.last_log_id, Some(snap_last));
        let (applied, _) = store.read_applied_state().unwrap();
        assert_eq!(applied, Some(snap_last));
        let entries = log.try_get_log_entries(0..100).await.unwrap();
        assert!(
            entries.iter().all(|e| e.log_id.leader_id.term >= 1),
            "the old tail is still in the log: {entries:?}"
        );
    }
}
