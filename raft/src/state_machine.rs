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
        let applied = match self
            .db
            .get_cf(meta, keys::META_LAST_APPLIED)
            .map_err(io::Error::other)?
        {
            Some(b) => Some(serde_json::from_slice(&b).map_err(invalid)?),
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
        .map(|b| serde_json::from_slice(&b))
        .transpose()
        .map_err(invalid)?;
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

/// Splits snapshot bytes into records, checking every length against what is left.
fn parse_snapshot(data: &[u8]) -> io::Result<Vec<(usize, &[u8], &[u8])>> {
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
