//! A failed fsync of the Raft log's WAL is never acknowledged and never retried (PostgreSQL's
//! "fsyncgate"): after a failed writeback Linux may drop the dirty pages and mark them clean, so
//! a later fsync that succeeds proves nothing about the data before it. The store on a
//! `herald-lossyfs` mount whose fsyncs fail EIO must fail the write, and keep failing once the
//! fault is cleared, naming the data directory; the node then stops (openraft's storage error).
//!
//! Skipped, with the reason printed, where FUSE is unusable.

use herald_lossyfs::{Fault, LossyFs};
use herald_raft::db;
use herald_raft::log_store::LogStore;
use herald_raft::types::Vote;
use openraft::storage::RaftLogStorage;

#[tokio::test]
async fn a_failed_wal_fsync_fails_every_later_write_too() {
    if let Err(why) = LossyFs::available() {
        eprintln!("SKIPPED a_failed_wal_fsync_fails_every_later_write_too: {why}");
        return;
    }
    let mount = tempfile::tempdir().unwrap();
    let fs = LossyFs::mount(mount.path()).unwrap();
    let dir = mount.path().join("db");
    let database = db::open(&dir).unwrap();
    let mut store = LogStore::new(database.clone());
    store
        .save_vote(&Vote::new(1, 1))
        .await
        .expect("a healthy disk");

    fs.set_fault(Fault::FsyncEio);
    let failed = store
        .save_vote(&Vote::new(2, 1))
        .await
        .expect_err("a vote whose fsync failed must not be acknowledged");
    let text = failed.to_string();
    assert!(text.contains("fsyncing the raft log WAL"), "{text}");
    assert!(text.contains(&dir.display().to_string()), "{text}");

    // The disk answers again; nothing may be acknowledged anyway. (RocksDB itself refuses
    // writes after a failed WAL sync; the syncer would refuse the fsync too: "not retried".)
    fs.set_fault(Fault::None);
    let again = store
        .save_vote(&Vote::new(3, 1))
        .await
        .expect_err("no write is acknowledged after a failed fsync");
    let again = again.to_string();
    assert!(
        again.contains("not retried") || again.contains("fdatasync"),
        "{again}"
    );
    drop(store);
    drop(database);
    drop(fs);
}
