//! The Raft state machine over RocksDB: applies committed event batches to the projection, and builds
//! and installs snapshots of it.
//!
//! Applying writes one RocksDB batch per `apply` call without its own fsync: the log entries are
//! durable already, so after a crash openraft re-applies from the last applied id stored in the same
//! batch. Before a snapshot is cut the WAL is fsynced, because the log behind a snapshot is purged.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use prost::Message as _;
use rocksdb::{IteratorMode, WriteBatch, DB};
use tokio::sync::watch;

use crate::db::{self, CF_SM_META, PROJECTION_CFS};
use crate::events::EventBatch;
use crate::keys;
use crate::projection::{apply_event, Kv, ProjectionError};
use crate::types::{
    ApplyResponse, EventOutcome, LogId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership,
    TypeConfig,
};

/// Format version written at the head of every snapshot file.
const SNAPSHOT_FORMAT_V1: u8 = 1;

#[derive(Clone)]
pub struct StateMachineStore {
    db: Arc<DB>,
    snapshot_dir: PathBuf,
    applied_tx: Arc<watch::Sender<u64>>,
}

impl StateMachineStore {
    /// `snapshot_dir` holds the latest snapshot file; the watch channel reports the last applied
    /// log index so that dispatchers wake up when new events land.
    pub fn new(db: Arc<DB>, snapshot_dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(snapshot_dir)?;
        let (applied_tx, _) = watch::channel(0);
        let store = StateMachineStore {
            db,
            snapshot_dir: snapshot_dir.to_path_buf(),
            applied_tx: Arc::new(applied_tx),
        };
        let (applied, _) = store.read_applied_state()?;
        store
            .applied_tx
            .send_replace(applied.map(|l| l.index).unwrap_or(0));
        Ok(store)
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

    fn snapshot_path(&self) -> PathBuf {
        self.snapshot_dir.join("snapshot-v1.bin")
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

fn projection_err(e: ProjectionError) -> io::Error {
    io::Error::other(e.to_string())
}

/// Reads through to RocksDB and stages writes, so that later events of one apply call see what
/// earlier ones wrote; the staged writes become one RocksDB batch.
struct StagedKv<'a> {
    db: &'a DB,
    staged: BTreeMap<(&'static str, Vec<u8>), Option<Vec<u8>>>,
}

impl Kv for StagedKv<'_> {
    fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, ProjectionError> {
        if let Some(v) = self.staged.get(&(cf, key.to_vec())) {
            return Ok(v.clone());
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
}

impl StagedKv<'_> {
    fn into_batch(self) -> WriteBatch {
        let mut batch = WriteBatch::default();
        for ((cf, key), value) in self.staged {
            let handle = db::cf(self.db, cf);
            match value {
                Some(v) => batch.put_cf(handle, key, v),
                None => batch.delete_cf(handle, key),
            }
        }
        batch
    }
}

/// Applies entries to the projection in one batch; returns each entry's response.
fn apply_entries(
    db: &DB,
    entries: &[crate::types::Entry],
) -> io::Result<Vec<Option<ApplyResponse>>> {
    let mut kv = StagedKv {
        db,
        staged: BTreeMap::new(),
    };
    let mut responses = Vec::with_capacity(entries.len());
    let mut last_membership = None;
    for entry in entries {
        match &entry.payload {
            EntryPayload::Blank => responses.push(Some(ApplyResponse::default())),
            EntryPayload::Normal(payload) => {
                let outcomes = match EventBatch::decode(payload.0.as_slice()) {
                    Ok(batch) => batch
                        .events
                        .iter()
                        .map(|e| apply_event(&mut kv, e))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(projection_err)?,
                    // A batch this node cannot decode was written by a newer version; applying
                    // nothing keeps this node consistent until it is upgraded too.
                    Err(e) => vec![EventOutcome::Ignored {
                        reason: format!("undecodable event batch: {e}"),
                    }],
                };
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
    db.write(kv.into_batch()).map_err(io::Error::other)?;
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
        let db = self.db.clone();
        let (entries, responses) = tokio::task::spawn_blocking(move || {
            let responses = apply_entries(&db, &entries);
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
        let data = snapshot.into_inner();
        let db = self.db.clone();
        let meta_owned = meta.clone();
        let data_for_load = data.clone();
        tokio::task::spawn_blocking(move || load_snapshot(&db, &meta_owned, &data_for_load))
            .await
            .map_err(io::Error::other)??;
        write_snapshot_file(&self.snapshot_path(), meta, &data)?;
        tracing::info!(last_log_id = ?meta.last_log_id, bytes = data.len(), "installed snapshot");
        self.applied_tx
            .send_replace(meta.last_log_id.map(|l| l.index).unwrap_or(0));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        read_snapshot_file(&self.snapshot_path())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let db = self.db.clone();
        let (meta, data) = tokio::task::spawn_blocking(move || dump_projection(&db))
            .await
            .map_err(io::Error::other)??;
        write_snapshot_file(&self.snapshot_path(), &meta, &data)?;
        Ok(Snapshot {
            meta,
            snapshot: std::io::Cursor::new(data),
        })
    }
}

/// Serialises every projection column family from one consistent RocksDB view:
/// records of `cf index u8, key len u32, key, value len u32, value`.
fn dump_projection(db: &DB) -> io::Result<(SnapshotMeta, Vec<u8>)> {
    // The log behind this snapshot will be purged, so what it covers must be on disk.
    db.flush_wal(true).map_err(io::Error::other)?;
    let view = db.snapshot();
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
    let mut data = vec![SNAPSHOT_FORMAT_V1];
    for (index, name) in PROJECTION_CFS.iter().enumerate() {
        for item in view.iterator_cf(db::cf(db, name), IteratorMode::Start) {
            let (key, value) = item.map_err(io::Error::other)?;
            data.push(index as u8);
            data.extend_from_slice(&(key.len() as u32).to_be_bytes());
            data.extend_from_slice(&key);
            data.extend_from_slice(&(value.len() as u32).to_be_bytes());
            data.extend_from_slice(&value);
        }
    }
    let meta = SnapshotMeta {
        last_log_id,
        last_membership,
    };
    Ok((meta, data))
}

/// Replaces the projection with a snapshot's content.
fn load_snapshot(db: &DB, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
    let records = parse_snapshot(data)?;
    let mut batch = WriteBatch::default();
    for name in PROJECTION_CFS {
        let cf = db::cf(db, name);
        for item in db.iterator_cf(cf, IteratorMode::Start) {
            let (key, _) = item.map_err(io::Error::other)?;
            batch.delete_cf(cf, key);
        }
    }
    for (cf_index, key, value) in records {
        batch.put_cf(db::cf(db, PROJECTION_CFS[cf_index]), key, value);
    }
    let meta_cf = db::cf(db, CF_SM_META);
    batch.put_cf(
        meta_cf,
        keys::META_LAST_APPLIED,
        serde_json::to_vec(&meta.last_log_id).map_err(invalid)?,
    );
    batch.put_cf(
        meta_cf,
        keys::META_MEMBERSHIP,
        serde_json::to_vec(&meta.last_membership).map_err(invalid)?,
    );
    let mut opts = rocksdb::WriteOptions::default();
    opts.set_sync(true);
    db.write_opt(batch, &opts).map_err(io::Error::other)
}

/// One key-value pair of a snapshot: column family index, key, value.
type SnapshotRecord<'a> = (usize, &'a [u8], &'a [u8]);

/// Splits snapshot bytes into records, checking every length against what is left.
fn parse_snapshot(data: &[u8]) -> io::Result<Vec<SnapshotRecord<'_>>> {
    let Some((&version, mut rest)) = data.split_first() else {
        return Err(invalid("empty snapshot"));
    };
    if version != SNAPSHOT_FORMAT_V1 {
        return Err(invalid(format!("unknown snapshot format {version}")));
    }
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> io::Result<&'a [u8]> {
        if rest.len() < n {
            return Err(invalid("snapshot truncated"));
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Ok(head)
    }
    fn take_len(rest: &mut &[u8]) -> io::Result<usize> {
        let bytes: [u8; 4] = take(rest, 4)?.try_into().map_err(invalid)?;
        Ok(u32::from_be_bytes(bytes) as usize)
    }
    let mut records = Vec::new();
    while !rest.is_empty() {
        let cf_index = take(&mut rest, 1)?[0] as usize;
        if cf_index >= PROJECTION_CFS.len() {
            return Err(invalid(format!("unknown column family {cf_index}")));
        }
        let key_len = take_len(&mut rest)?;
        let key = take(&mut rest, key_len)?;
        let value_len = take_len(&mut rest)?;
        let value = take(&mut rest, value_len)?;
        records.push((cf_index, key, value));
    }
    Ok(records)
}

/// Writes `meta` (JSON, one line) then the data, atomically by rename.
fn write_snapshot_file(path: &Path, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    let meta_json = serde_json::to_vec(meta).map_err(invalid)?;
    file.write_all(&(meta_json.len() as u32).to_be_bytes())?;
    file.write_all(&meta_json)?;
    file.write_all(data)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn read_snapshot_file(path: &Path) -> io::Result<Option<Snapshot>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len_bytes: [u8; 4] = bytes
        .get(0..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| invalid("snapshot file truncated"))?;
    let meta_len = u32::from_be_bytes(len_bytes) as usize;
    let meta_bytes = bytes
        .get(4..4 + meta_len)
        .ok_or_else(|| invalid("snapshot file truncated"))?;
    let meta: SnapshotMeta = serde_json::from_slice(meta_bytes).map_err(invalid)?;
    let data = bytes.get(4 + meta_len..).unwrap_or_default().to_vec();
    Ok(Some(Snapshot {
        meta,
        snapshot: std::io::Cursor::new(data),
    }))
}

#[cfg(test)]
mod tests {
    //! Snapshot encoding: `parse_snapshot` refuses every malformed input with an error (a snapshot
    //! arrives from another node), and `dump_projection` → `load_snapshot` reproduces the projection.

    use std::collections::{BTreeMap, BTreeSet};

    use openraft::entry::RaftEntry;
    use proptest::prelude::*;

    use super::*;
    use crate::db::CF_MESSAGES;
    use crate::events::{event::Kind, *};
    use crate::types::{Entry, EventsPayload};

    fn record(cf: u8, key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut out = vec![cf];
        out.extend_from_slice(&(key.len() as u32).to_be_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
        out
    }

    fn snapshot_of(records: &[Vec<u8>]) -> Vec<u8> {
        let mut data = vec![SNAPSHOT_FORMAT_V1];
        for r in records {
            data.extend_from_slice(r);
        }
        data
    }

    fn parse_err(data: &[u8]) -> String {
        match parse_snapshot(data) {
            Ok(records) => panic!("parsed {} records from malformed input", records.len()),
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::InvalidData);
                e.to_string()
            }
        }
    }

    #[test]
    fn parses_records_in_order() {
        let last = (PROJECTION_CFS.len() - 1) as u8;
        let data = snapshot_of(&[
            record(0, b"k1", b"v1"),
            record(last, b"", b""),
            record(3, b"k", b""),
        ]);
        let records = parse_snapshot(&data).unwrap();
        assert_eq!(
            records,
            vec![
                (0, &b"k1"[..], &b"v1"[..]),
                (last as usize, &b""[..], &b""[..]),
                (3, &b"k"[..], &b""[..]),
            ]
        );
    }

    #[test]
    fn a_header_alone_is_an_empty_projection() {
        assert!(parse_snapshot(&[SNAPSHOT_FORMAT_V1]).unwrap().is_empty());
    }

    #[test]
    fn empty_input_is_refused() {
        assert!(parse_err(&[]).contains("empty"));
    }

    #[test]
    fn an_unknown_format_is_refused() {
        for version in [0u8, 2, 255] {
            let mut data = snapshot_of(&[record(0, b"k", b"v")]);
            data[0] = version;
            assert!(parse_err(&data).contains(&format!("format {version}")));
        }
    }

    #[test]
    fn an_unknown_column_family_is_refused() {
        for cf in [PROJECTION_CFS.len() as u8, 200, 255] {
            let data = snapshot_of(&[record(0, b"k", b"v"), record(cf, b"k", b"v")]);
            assert!(parse_err(&data).contains(&format!("column family {cf}")));
        }
    }

    #[test]
    fn every_truncation_is_refused_except_at_a_record_boundary() {
        let records = [record(0, b"key-1", b"value-1"), record(2, b"k2", b"")];
        let data = snapshot_of(&records);
        let boundaries = [1, 1 + records[0].len(), data.len()];
        for cut in 0..=data.len() {
            let result = parse_snapshot(&data[..cut]);
            if boundaries.contains(&cut) {
                assert!(result.is_ok(), "cut at {cut}: {result:?}");
            } else {
                assert!(result.is_err(), "cut at {cut} parsed: {result:?}");
            }
        }
    }

    #[test]
    fn a_length_beyond_the_end_is_refused() {
        // Key length (after the format byte and the column family byte).
        let mut data = snapshot_of(&[record(0, b"k", b"v")]);
        data[2..6].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_err(&data).contains("truncated"));
        // Value length, one more than what is left.
        let mut data = snapshot_of(&[record(0, b"k", b"v")]);
        let value_len_at = 1 + 1 + 4 + 1;
        data[value_len_at..value_len_at + 4].copy_from_slice(&2u32.to_be_bytes());
        assert!(parse_err(&data).contains("truncated"));
        // Value length at its maximum.
        data[value_len_at..value_len_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_err(&data).contains("truncated"));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_snapshot(&data);
        }

        #[test]
        fn arbitrary_bytes_after_a_valid_header_never_panic(
            tail in prop::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut data = vec![SNAPSHOT_FORMAT_V1];
            data.extend_from_slice(&tail);
            let _ = parse_snapshot(&data);
        }

        #[test]
        fn encoded_records_parse_back(
            records in prop::collection::vec(
                (
                    0..PROJECTION_CFS.len() as u8,
                    prop::collection::vec(any::<u8>(), 0..20),
                    prop::collection::vec(any::<u8>(), 0..40),
                ),
                0..20,
            ),
        ) {
            let data = snapshot_of(
                &records.iter().map(|(cf, k, v)| record(*cf, k, v)).collect::<Vec<_>>(),
            );
            let parsed = parse_snapshot(&data).unwrap();
            let expected: Vec<(usize, &[u8], &[u8])> = records
                .iter()
                .map(|(cf, k, v)| (*cf as usize, k.as_slice(), v.as_slice()))
                .collect();
            prop_assert_eq!(parsed, expected);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Round trip through RocksDB.

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
                ],
            ),
            Entry::new_blank(log_id(5)),
        ];
        apply_entries(db, &entries).unwrap();
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
        let source_dir = tempfile::tempdir().unwrap();
        let source = db::open(source_dir.path()).unwrap();
        populated(&source);
        let (meta, data) = dump_projection(&source).unwrap();
        assert_eq!(meta.last_log_id, Some(log_id(5)));
        assert_eq!(meta.last_membership.log_id(), &Some(log_id(1)));

        let target_dir = tempfile::tempdir().unwrap();
        let target = db::open(target_dir.path()).unwrap();
        load_snapshot(&target, &meta, &data).unwrap();
        assert_eq!(projection(&target), projection(&source));

        // And the loaded copy dumps to the same bytes.
        let (meta_again, data_again) = dump_projection(&target).unwrap();
        assert_eq!(meta_again, meta);
        assert_eq!(data_again, data);
    }

    #[test]
    fn load_replaces_what_was_there() {
        let source_dir = tempfile::tempdir().unwrap();
        let source = db::open(source_dir.path()).unwrap();
        populated(&source);
        let (meta, data) = dump_projection(&source).unwrap();

        // The target has a different history: more messages, other keys in every family.
        let target_dir = tempfile::tempdir().unwrap();
        let target = db::open(target_dir.path()).unwrap();
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
        apply_entries(&target, &other).unwrap();
        load_snapshot(&target, &meta, &data).unwrap();
        assert_eq!(projection(&target), projection(&source));
    }

    #[test]
    fn a_corrupt_snapshot_leaves_the_projection_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(dir.path()).unwrap();
        populated(&db);
        let (meta, mut data) = dump_projection(&db).unwrap();
        let before = projection(&db);
        data.truncate(data.len() - 1);
        assert!(load_snapshot(&db, &meta, &data).is_err());
        assert_eq!(projection(&db), before);
    }

    #[test]
    fn a_store_reads_its_applied_state_after_loading_a_snapshot() {
        let source_dir = tempfile::tempdir().unwrap();
        let source = db::open(source_dir.path()).unwrap();
        populated(&source);
        let (meta, data) = dump_projection(&source).unwrap();
        let target_dir = tempfile::tempdir().unwrap();
        let target = db::open(target_dir.path()).unwrap();
        load_snapshot(&target, &meta, &data).unwrap();
        let store = StateMachineStore::new(target, &target_dir.path().join("snapshots")).unwrap();
        let (applied, membership) = store.read_applied_state().unwrap();
        assert_eq!(applied, meta.last_log_id);
        assert_eq!(membership, meta.last_membership);
        assert_eq!(*store.subscribe_applied().borrow(), 5);
    }

    /// A snapshot of a state machine that has applied nothing: its `last_log_id` (None) is stored
    /// as JSON `null` and must read back as None.
    #[test]
    fn an_empty_projection_survives_a_round_trip() {
        let source_dir = tempfile::tempdir().unwrap();
        let source = db::open(source_dir.path()).unwrap();
        let (meta, data) = dump_projection(&source).unwrap();
        assert_eq!(meta.last_log_id, None);
        assert_eq!(data, [SNAPSHOT_FORMAT_V1]);

        let target_dir = tempfile::tempdir().unwrap();
        let target = db::open(target_dir.path()).unwrap();
        load_snapshot(&target, &meta, &data).unwrap();
        let (meta_again, data_again) = dump_projection(&target).unwrap();
        assert_eq!(meta_again, meta);
        // Loading records the snapshot's (empty) applied state and membership in the projection.
        assert!(parse_snapshot(&data_again).is_ok());
        StateMachineStore::new(target, &target_dir.path().join("snapshots")).unwrap();
    }
}
