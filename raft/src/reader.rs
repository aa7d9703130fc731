//! Read-only queries over the local projection, for the node's API and dispatchers.
//!
//! Any node answers from its own projection: it may trail the leader by the entries it has not
//! applied yet, which the API reports as the answering node's applied index.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prost::Message as _;
use rocksdb::{Direction, IteratorMode, DB};

use crate::db::{
    self, CF_AUDIT, CF_CLIENTS, CF_CLIENT_REPLIES, CF_EXPIRY, CF_INFLIGHT, CF_MESSAGES, CF_MO_AGE,
    CF_MO_ASSEMBLY, CF_QUEUE, CF_SCHEDULED,
};
use crate::events::MoAssemblyClosed;
use crate::keys;
use crate::projection::{load_links, load_message, load_policy, Kv, ProjectionError};
use crate::records::{
    AuditRecord, ClientRecord, LinkTable, MessageRecord, MoAssemblyRecord, PolicyRecord,
    ReplyRecord,
};

/// RocksDB sizes in bytes, over every column family.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StorageSizes {
    /// SST files of the current version.
    pub live_sst: u64,
    /// Every SST file, obsolete ones still on disk included.
    pub total_sst: u64,
    /// Active and immutable memtables.
    pub memtable: u64,
}

#[derive(Clone)]
pub struct ProjectionReader {
    db: Arc<DB>,
    class_heads: Arc<Mutex<HashMap<(String, u32), ClassHead>>>,
}

/// Where the live entries of one queue class began at the last read. RocksDB keeps a deleted key
/// (a tombstone) until compaction, and every dispatched message leaves one at the head of its
/// class; a read from the class's first key would walk all of them on every dispatch round
/// (a long-running node slowed down as it sent). Valid while no older message went back into the
/// queue, which the projection counts (`queue_rewinds`).
#[derive(Clone, Copy)]
struct ClassHead {
    rewinds: u64,
    first_live_id: u64,
}

/// Reads straight from RocksDB (writes are not supported: only the state machine writes).
struct DbKv<'a>(&'a DB);

impl Kv for DbKv<'_> {
    fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, ProjectionError> {
        self.0
            .get_cf(db::cf(self.0, cf), key)
            .map_err(|e| ProjectionError::Storage(e.to_string()))
    }
    fn put(&mut self, _: &'static str, _: Vec<u8>, _: Vec<u8>) {
        unreachable!("the reader never writes")
    }
    fn delete(&mut self, _: &'static str, _: Vec<u8>) {
        unreachable!("the reader never writes")
    }
}

impl ProjectionReader {
    /// Writes the projection as it is now to `out` in the snapshot layout (a backup's data);
    /// returns what it covers, its length and SHA-256. Blocking.
    pub fn export_backup(
        &self,
        out: impl std::io::Write,
    ) -> std::io::Result<(crate::types::SnapshotMeta, u64, String)> {
        crate::snapshot::backup::export(&self.db, out)
    }

    pub fn new(db: Arc<DB>) -> Self {
        ProjectionReader {
            db,
            class_heads: Arc::default(),
        }
    }

    pub fn message(&self, id: u64) -> Result<Option<MessageRecord>, ProjectionError> {
        load_message(&DbKv(&self.db), id)
    }

    pub fn links(&self) -> Result<LinkTable, ProjectionError> {
        load_links(&DbKv(&self.db))
    }

    /// Up to `limit` message ids waiting in `queue` (a link's, or a route's: see
    /// [`crate::records::queue_name`]), most urgent first, oldest first within a priority.
    pub fn queued(&self, queue: &str, limit: usize) -> Result<Vec<u64>, ProjectionError> {
        self.ids_with_prefix(CF_QUEUE, &keys::queue_prefix(queue), limit)
    }

    /// Up to `limit` message ids of one priority class waiting in `queue`, oldest first.
    pub fn queued_in_class(
        &self,
        queue: &str,
        priority: u32,
        limit: usize,
    ) -> Result<Vec<u64>, ProjectionError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Both are read before the scan: a message applied after them is either fresh (an id
        // at or above `next_id`) or a rewind, which the next read notices.
        let kv = DbKv(&self.db);
        let rewinds = crate::projection::queue_rewinds(&kv, queue)?;
        let next_id = crate::projection::next_message_id_to_assign(&kv)?;
        let class = (queue.to_string(), priority);
        let start_id = self
            .class_heads
            .lock()
            .ok()
            .and_then(|heads| heads.get(&class).copied())
            .filter(|head| head.rewinds == rewinds)
            .map_or(0, |head| head.first_live_id);
        let prefix = keys::queue_class_prefix(queue, priority);
        let mut ids = Vec::new();
        self.scan_range(
            CF_QUEUE,
            &keys::queue(queue, priority, start_id),
            keys::prefix_end(&prefix),
            |key, _| {
                ids.extend(keys::id_suffix(key));
                ids.len() < limit
            },
        )?;
        let head = ClassHead {
            rewinds,
            first_live_id: ids.first().copied().unwrap_or(next_id),
        };
        if let Ok(mut heads) = self.class_heads.lock() {
            heads.insert(class, head);
        }
        Ok(ids)
    }

    /// How many messages wait in `queue` (counted by the projection; no scan).
    pub fn queue_len(&self, queue: &str) -> Result<u64, ProjectionError> {
        crate::projection::queue_len(&DbKv(&self.db), queue)
    }

    /// How many messages of one priority class wait in `queue`, counting at most `cap` (a
    /// key-only bounded scan: the projection keeps counts per queue, not per class), and the id
    /// of the oldest (ids grow with submission, so it is the first key).
    pub fn class_depth(
        &self,
        queue: &str,
        priority: u32,
        cap: u64,
    ) -> Result<(u64, Option<u64>), ProjectionError> {
        let mut count = 0u64;
        let mut first = None;
        self.scan(
            CF_QUEUE,
            &keys::queue_class_prefix(queue, priority),
            |key, _| {
                if first.is_none() {
                    first = keys::id_suffix(key);
                }
                count += 1;
                count < cap
            },
        )?;
        Ok((count, first))
    }

    /// How many messages wait for their send time, counting at most `cap`.
    pub fn scheduled_count(&self, cap: u64) -> Result<u64, ProjectionError> {
        self.count_prefix(CF_SCHEDULED, &[], cap)
    }

    /// How many messages are in flight on `link`, counting at most `cap`.
    pub fn inflight_count(&self, link: &str, cap: u64) -> Result<u64, ProjectionError> {
        self.count_prefix(CF_INFLIGHT, &keys::inflight_prefix(link), cap)
    }

    fn count_prefix(&self, cf: &str, prefix: &[u8], cap: u64) -> Result<u64, ProjectionError> {
        let mut count = 0u64;
        self.scan(cf, prefix, |_, _| {
            count += 1;
            count < cap
        })?;
        Ok(count)
    }

    /// RocksDB's own size figures, summed over every column family (for operators' gauges).
    pub fn storage_sizes(&self) -> StorageSizes {
        let mut sizes = StorageSizes::default();
        for name in crate::db::ALL_CFS {
            let Some(cf) = self.db.cf_handle(name) else {
                continue;
            };
            let prop = |p: &str| {
                self.db
                    .property_int_value_cf(&cf, p)
                    .ok()
                    .flatten()
                    .unwrap_or(0)
            };
            sizes.live_sst += prop("rocksdb.live-sst-files-size");
            sizes.total_sst += prop("rocksdb.total-sst-files-size");
            sizes.memtable += prop("rocksdb.cur-size-all-mem-tables");
        }
        sizes
    }

    /// Ids of the messages dispatched on `link` and not yet fully acknowledged by the carrier.
    pub fn inflight(&self, link: &str, limit: usize) -> Result<Vec<u64>, ProjectionError> {
        self.ids_with_prefix(CF_INFLIGHT, &keys::inflight_prefix(link), limit)
    }

    /// The in-flight messages of `link` with the slot that dispatched each.
    pub fn inflight_slots(&self, link: &str) -> Result<Vec<(u64, String)>, ProjectionError> {
        let mut out = Vec::new();
        self.scan(CF_INFLIGHT, &keys::inflight_prefix(link), |key, value| {
            let slot = String::from_utf8_lossy(value.get(8..).unwrap_or_default()).into_owned();
            out.extend(keys::id_suffix(key).map(|id| (id, slot)));
            true
        })?;
        Ok(out)
    }

    /// The dispatch policy in force (version 0 and an empty document before any was set).
    pub fn policy(&self) -> Result<PolicyRecord, ProjectionError> {
        load_policy(&DbKv(&self.db))
    }

    /// The policy's version alone: cheap enough to check on every submission.
    /// The cluster's format level in force (see [`crate::events::ClusterVersionRaised`]).
    pub fn cluster_level(&self) -> Result<u32, ProjectionError> {
        crate::projection::load_cluster_level(&DbKv(&self.db))
    }

    pub fn policy_version(&self) -> Result<u64, ProjectionError> {
        crate::projection::load_policy_version(&DbKv(&self.db))
    }

    /// How many of a client's messages are not terminal yet.
    pub fn pending_of(&self, client_id: &str) -> Result<u64, ProjectionError> {
        crate::projection::pending_of(&DbKv(&self.db), client_id)
    }

    /// Up to `limit` ids of non-terminal messages whose validity ended at or before `now_ms`.
    pub fn expired(&self, now_ms: u64, limit: usize) -> Result<Vec<u64>, ProjectionError> {
        self.due_in(CF_EXPIRY, now_ms, limit)
    }

    /// Up to `limit` ids of SCHEDULED messages due at or before `now_ms`.
    pub fn due_scheduled(&self, now_ms: u64, limit: usize) -> Result<Vec<u64>, ProjectionError> {
        self.due_in(CF_SCHEDULED, now_ms, limit)
    }

    /// Keys of these indexes start with a big-endian time, so everything due sorts before
    /// `now_ms + 1`: the scan is bounded there and never walks the (deleted) entries of messages
    /// that are not due.
    fn due_in(&self, cf: &str, now_ms: u64, limit: usize) -> Result<Vec<u64>, ProjectionError> {
        let mut ids = Vec::new();
        let upper = keys::expiry(now_ms.saturating_add(1), 0);
        self.scan_range(cf, &[], Some(upper), |key, _| {
            ids.extend(keys::id_suffix(key));
            ids.len() < limit
        })?;
        Ok(ids)
    }

    /// Up to `limit` replies of `client_id` (empty: the unrouted ones) with ids above `after_id`,
    /// in id order.
    pub fn replies_of(
        &self,
        client_id: &str,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<ReplyRecord>, ProjectionError> {
        let prefix = keys::client_replies_prefix(client_id);
        let from = keys::client_reply(client_id, after_id.saturating_add(1));
        let mut ids = Vec::new();
        if limit > 0 {
            self.scan_range(
                CF_CLIENT_REPLIES,
                &from,
                keys::prefix_end(&prefix),
                |key, _| {
                    ids.extend(keys::id_suffix(key));
                    ids.len() < limit
                },
            )?;
        }
        let kv = DbKv(&self.db);
        let mut replies = Vec::with_capacity(ids.len());
        for id in ids {
            replies.extend(crate::replies::load_reply(&kv, id)?);
        }
        Ok(replies)
    }

    /// Up to `limit` MO assemblies stamped at or before `before_ms` (oldest first), as the
    /// events that close them.
    pub fn mo_assemblies_to_close(
        &self,
        before_ms: u64,
        limit: usize,
    ) -> Result<Vec<MoAssemblyClosed>, ProjectionError> {
        let mut keys_found = Vec::new();
        let upper = keys::mo_age(before_ms.saturating_add(1), &[]);
        if limit > 0 {
            self.scan_range(CF_MO_AGE, &[], Some(upper), |key, _| {
                keys_found.push(key.get(8..).unwrap_or_default().to_vec());
                keys_found.len() < limit
            })?;
        }
        let kv = DbKv(&self.db);
        let mut closing = Vec::with_capacity(keys_found.len());
        for key in keys_found {
            if let Some(bytes) = kv.get(CF_MO_ASSEMBLY, &key)? {
                let record: MoAssemblyRecord = crate::projection::decode("MO assembly", &bytes)?;
                closing.push(record.closing_event());
            }
        }
        Ok(closing)
    }

    /// Every message id in the projection, in id order (for checks and tooling).
    pub fn all_message_ids(&self) -> Result<Vec<u64>, ProjectionError> {
        self.ids_with_prefix(CF_MESSAGES, &[], usize::MAX)
    }

    /// The client system named `name`.
    pub fn client(&self, name: &str) -> Result<Option<ClientRecord>, ProjectionError> {
        crate::clients::load_client(&DbKv(&self.db), name)
    }

    /// The client holding the key `key_id` (live or recently revoked).
    pub fn client_of_key(&self, key_id: &str) -> Result<Option<ClientRecord>, ProjectionError> {
        crate::clients::client_of_key(&DbKv(&self.db), key_id)
    }

    /// Every client system, by name.
    pub fn clients(&self) -> Result<Vec<ClientRecord>, ProjectionError> {
        let mut records = Vec::new();
        let mut corrupt = None;
        self.scan_range(CF_CLIENTS, &[], None, |key, value| {
            match ClientRecord::decode(value) {
                Ok(r) => records.push(r),
                Err(e) => {
                    corrupt = Some(ProjectionError::Corrupt {
                        what: format!("client {}", String::from_utf8_lossy(key)),
                        detail: e.to_string(),
                    })
                }
            }
            corrupt.is_none()
        })?;
        corrupt.map_or(Ok(records), Err)
    }

    /// Audit records after `after_seq`, in log order, that `keep` accepts, until `limit` are
    /// found.
    pub fn audit(
        &self,
        after_seq: u64,
        limit: usize,
        mut keep: impl FnMut(&AuditRecord) -> bool,
    ) -> Result<Vec<AuditRecord>, ProjectionError> {
        let mut records = Vec::new();
        let mut corrupt = None;
        if limit == 0 {
            return Ok(records);
        }
        let from = keys::audit(after_seq.saturating_add(1));
        self.scan_range(CF_AUDIT, &from, None, |key, value| {
            match AuditRecord::decode(value) {
                Ok(r) => {
                    if keep(&r) {
                        records.push(r);
                    }
                }
                Err(e) => {
                    corrupt = Some(ProjectionError::Corrupt {
                        what: format!("audit record {:?}", keys::id_suffix(key)),
                        detail: e.to_string(),
                    })
                }
            }
            corrupt.is_none() && records.len() < limit
        })?;
        corrupt.map_or(Ok(records), Err)
    }

    fn ids_with_prefix(
        &self,
        cf: &str,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<u64>, ProjectionError> {
        let mut ids = Vec::new();
        if limit == 0 {
            return Ok(ids);
        }
        self.scan(cf, prefix, |key, _| {
            ids.extend(keys::id_suffix(key));
            ids.len() < limit
        })?;
        Ok(ids)
    }

    /// Visits the entries under `prefix` in key order while `visit` returns true.
    fn scan(
        &self,
        cf: &str,
        prefix: &[u8],
        visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), ProjectionError> {
        self.scan_range(cf, prefix, keys::prefix_end(prefix), visit)
    }

    /// Visits the entries from `lower` up to (not including) `upper`. The bound goes to RocksDB
    /// itself, so the entries deleted just past the range (every dispatched message leaves one
    /// in its queue) are never walked.
    fn scan_range(
        &self,
        cf: &str,
        lower: &[u8],
        upper: Option<Vec<u8>>,
        mut visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), ProjectionError> {
        let mut options = rocksdb::ReadOptions::default();
        if let Some(upper) = upper {
            options.set_iterate_upper_bound(upper);
        }
        let iter = self.db.iterator_cf_opt(
            db::cf(&self.db, cf),
            options,
            IteratorMode::From(lower, Direction::Forward),
        );
        for item in iter {
            let (key, value) = item.map_err(|e| ProjectionError::Storage(e.to_string()))?;
            if !visit(&key, &value) {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::CF_SM_META;

    struct Fixture {
        _dir: tempfile::TempDir,
        db: Arc<DB>,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let db = db::open(dir.path()).unwrap();
            Fixture { _dir: dir, db }
        }
        fn queue(&self, id: u64) {
            let key = keys::queue("q", 3, id);
            self.db.put_cf(db::cf(&self.db, CF_QUEUE), key, []).unwrap();
            self.counter(keys::META_NEXT_ID.to_vec(), id + 1);
        }
        fn requeue(&self, id: u64, rewinds: u64) {
            let key = keys::queue("q", 3, id);
            self.db.put_cf(db::cf(&self.db, CF_QUEUE), key, []).unwrap();
            self.counter(keys::queue_rewinds("q"), rewinds);
        }
        fn take(&self, id: u64) {
            let key = keys::queue("q", 3, id);
            self.db.delete_cf(db::cf(&self.db, CF_QUEUE), key).unwrap();
        }
        fn counter(&self, key: Vec<u8>, value: u64) {
            let cf = db::cf(&self.db, CF_SM_META);
            self.db.put_cf(cf, key, value.to_be_bytes()).unwrap();
        }
    }

    #[test]
    fn a_class_is_read_from_its_first_live_entry_and_from_its_start_after_a_rewind() {
        let f = Fixture::new();
        let reader = ProjectionReader::new(f.db.clone());
        for id in 1..=5 {
            f.queue(id);
        }
        assert_eq!(reader.queued_in_class("q", 3, 2).unwrap(), [1, 2]);
        f.take(1);
        f.take(2);
        assert_eq!(reader.queued_in_class("q", 3, 2).unwrap(), [3, 4]);
        // Back into the queue without the projection counting it: the reader (rightly, by its
        // contract) starts past it...
        f.requeue(1, 0);
        assert_eq!(reader.queued_in_class("q", 3, 2).unwrap(), [3, 4]);
        // ...and once it is counted, reads from the start again.
        f.requeue(1, 1);
        assert_eq!(reader.queued_in_class("q", 3, 2).unwrap(), [1, 3]);
        // Another class of the queue is read on its own.
        assert!(reader.queued_in_class("q", 0, 2).unwrap().is_empty());
    }

    #[test]
    fn an_emptied_class_finds_the_next_fresh_message() {
        let f = Fixture::new();
        let reader = ProjectionReader::new(f.db.clone());
        f.queue(1);
        f.take(1);
        assert!(reader.queued_in_class("q", 3, 10).unwrap().is_empty());
        f.queue(2);
        assert_eq!(reader.queued_in_class("q", 3, 10).unwrap(), [2]);
    }
}
