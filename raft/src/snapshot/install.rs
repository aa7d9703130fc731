//! Installing a snapshot: replacing the projection with a snapshot file's content in bounded
//! batches, in a way a crash cannot leave half done.
//!
//! A projection of millions of messages cannot be replaced in one RocksDB batch without holding
//! it all in memory, so the install is several writes, made crash safe by a durable marker:
//!
//! 1. the whole file is read once and checked: a malformed snapshot is refused before anything
//!    changes;
//! 2. the log's unsynced writes (openraft's truncation of a conflicting tail) are synced, then
//!    the file becomes the node's current snapshot (synced, renamed into place, its directory
//!    synced), so it is still there after a crash, never beside a log tail it contradicts;
//! 3. one synced batch writes the marker ([`INSTALLING`] in `raft_meta_v1`, holding the
//!    snapshot's meta) and clears every projection column family (range deletions: a few bytes
//!    whatever their size);
//! 4. the records are written in batches of about [`BATCH_BYTES`], without sync;
//! 5. one synced batch writes the applied log id and membership and removes the marker (a synced
//!    write makes every earlier write of the WAL durable too).
//!
//! A node that opens its store with the marker present ([`resume_interrupted`]) does steps 3–5
//! again from the current snapshot before it answers anything. Until step 5 the projection has
//! no applied state (the snapshot's own records of it are written in that last batch).

use std::io;

use rocksdb::{WriteBatch, WriteOptions, DB};

use super::file::{SnapshotDir, SnapshotFile};
use super::format::{invalid, validate, RecordReader};
use crate::db::{self, CF_RAFT_META, CF_SM_META, PROJECTION_CFS};
use crate::keys;
use crate::types::SnapshotMeta;

/// Key of the marker of an install under way, in `raft_meta_v1` (outside the projection, so
/// clearing the projection leaves it and no snapshot carries it).
pub const INSTALLING: &[u8] = b"installing_snapshot";

/// Size of each batch of records written while installing.
pub const BATCH_BYTES: usize = 4 << 20;

/// Replaces the projection with `snapshot` (whose file holds `meta`) and makes it the current
/// snapshot. A malformed snapshot is refused and changes nothing. Blocking.
pub fn install(
    db: &DB,
    dir: &SnapshotDir,
    meta: &SnapshotMeta,
    snapshot: SnapshotFile,
) -> io::Result<()> {
    let _guard = dir.lock_swap();
    let (snapshot, records) = keep(db, dir, meta, snapshot)?;
    load(db, meta, &snapshot)?;
    tracing::debug!(records, "snapshot records loaded");
    Ok(())
}

/// Steps 1–2: checks the file and makes it the current snapshot; returns it and its record
/// count. The caller holds the swap lock.
///
/// Before the rename, the log's unsynced writes are made durable: openraft truncates a
/// conflicting log tail and purges without waiting for the disk, then hands over the snapshot.
/// A power loss that kept the renamed snapshot but lost that truncation would leave the old
/// tail (lower term, higher index) beside a newer snapshot, and openraft refuses to start on
/// that ("inverted log order"). The log and the projection share one WAL, so one WAL sync
/// covers every earlier truncation and purge.
pub(crate) fn keep(
    db: &DB,
    dir: &SnapshotDir,
    meta: &SnapshotMeta,
    mut snapshot: SnapshotFile,
) -> io::Result<(SnapshotFile, u64)> {
    let (file_meta, _) = SnapshotFile::open(snapshot.path())?;
    if &file_meta != meta {
        return Err(invalid(format!(
            "the snapshot file holds {file_meta:?}, openraft installs {meta:?}"
        )));
    }
    let records = validate(snapshot.data_reader()?, snapshot.data_len())?;
    snapshot.sync()?;
    db.flush_wal(true).map_err(io::Error::other)?;
    let current = dir.make_current(snapshot.path())?;
    snapshot.moved_to(current);
    Ok((snapshot, records))
}

/// Completes an install a crash interrupted, if there was one; returns its meta. Blocking.
pub fn resume_interrupted(db: &DB, dir: &SnapshotDir) -> io::Result<Option<SnapshotMeta>> {
    let marker = db
        .get_cf(db::cf(db, CF_RAFT_META), INSTALLING)
        .map_err(io::Error::other)?;
    let Some(marker) = marker else {
        return Ok(None);
    };
    let meta: SnapshotMeta = serde_json::from_slice(&marker).map_err(invalid)?;
    let _guard = dir.lock_swap();
    let Some((file_meta, snapshot)) = dir.open_current()? else {
        return Err(invalid(format!(
            "an install of snapshot {meta:?} was interrupted and its file {} is gone: the \
             projection is incomplete; this node cannot start on this data directory: keep it \
             aside for diagnosis and start the node on a new, empty one without --bootstrap, \
             then re-add it (herald cluster add-node)",
            dir.current_path().display()
        )));
    };
    if file_meta != meta {
        return Err(invalid(format!(
            "an install of snapshot {meta:?} was interrupted but the current snapshot holds \
             {file_meta:?}: the projection is incomplete; this node cannot start on this data \
             directory: keep it aside for diagnosis and start the node on a new, empty one \
             without --bootstrap, then re-add it (herald cluster add-node)"
        )));
    }
    tracing::warn!(last_log_id = ?meta.last_log_id, "resuming an interrupted snapshot install");
    validate(snapshot.data_reader()?, snapshot.data_len())?;
    load(db, &meta, &snapshot)?;
    Ok(Some(meta))
}

/// Steps 3–5: marker and clearing, records, applied state and marker removal.
fn load(db: &DB, meta: &SnapshotMeta, snapshot: &SnapshotFile) -> io::Result<()> {
    start(db, meta)?;
    let mut batch = load_records(db, snapshot)?;
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
    batch.delete_cf(db::cf(db, CF_RAFT_META), INSTALLING);
    db.write_opt(batch, &synced()).map_err(io::Error::other)
}

/// Step 3: the marker and the clearing of the projection, in one synced batch.
pub(crate) fn start(db: &DB, meta: &SnapshotMeta) -> io::Result<()> {
    let mut batch = WriteBatch::default();
    batch.put_cf(
        db::cf(db, CF_RAFT_META),
        INSTALLING,
        serde_json::to_vec(meta).map_err(invalid)?,
    );
    clear_projection(db, &mut batch)?;
    db.write_opt(batch, &synced()).map_err(io::Error::other)
}

/// Step 4: the records, in batches of about [`BATCH_BYTES`]; returns the last batch, unwritten,
/// for step 5 to complete.
fn load_records(db: &DB, snapshot: &SnapshotFile) -> io::Result<WriteBatch> {
    let mut reader = RecordReader::new(snapshot.data_reader()?, snapshot.data_len())?;
    let (mut key, mut value) = (Vec::new(), Vec::new());
    let mut batch = WriteBatch::default();
    let meta_index = PROJECTION_CFS.iter().position(|name| *name == CF_SM_META);
    while let Some(cf_index) = reader.next_into(&mut key, &mut value)? {
        // Written last, from `meta`, so that the applied state changes only when all is in.
        let applied_state = Some(cf_index) == meta_index
            && (key == keys::META_LAST_APPLIED || key == keys::META_MEMBERSHIP);
        if applied_state {
            continue;
        }
        batch.put_cf(db::cf(db, PROJECTION_CFS[cf_index]), &key, &value);
        if batch.size_in_bytes() >= BATCH_BYTES {
            db.write(std::mem::take(&mut batch))
                .map_err(io::Error::other)?;
        }
    }
    Ok(batch)
}

fn synced() -> WriteOptions {
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    opts
}

/// Adds to `batch` the deletion of every key of every projection column family: one range
/// deletion up to each family's last key, and that key.
fn clear_projection(db: &DB, batch: &mut WriteBatch) -> io::Result<()> {
    for name in PROJECTION_CFS {
        let cf = db::cf(db, name);
        let mut last = db.raw_iterator_cf(cf);
        last.seek_to_last();
        if let Some(key) = last.key() {
            batch.delete_range_cf(cf, &[][..], key);
            batch.delete_cf(cf, key);
        }
        last.status().map_err(io::Error::other)?;
    }
    Ok(())
}
