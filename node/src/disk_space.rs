//! The data directory's free space against the node's reserve (`min-free-space`).
//!
//! A node whose disk fills up must not find out from RocksDB: a failed WAL write is a fatal
//! storage error (the node stops). So a watcher measures the filesystem (statvfs) a few times a
//! second, and while free space is below the reserve the node refuses new writes itself, early and
//! cleanly: client writes answer UNAVAILABLE naming the node, the free bytes and the reserve; the
//! internal service refuses the leader's appends and snapshots (the leader retries; the majority
//! carries on without this node); a leader hands leadership to another voter. Reads, votes and
//! heartbeats go on. Once space returns every refusal stops by itself and replication catches the
//! node up.
//!
//! This module measures and decides "low or not"; it does not refuse anything itself (the service
//! layer, the internal service and the leader hand-over ask it).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver as _;
use openraft::ServerState;
use tokio_util::sync::CancellationToken;

use crate::context::Ctx;

/// How often the free space is measured: a burst of writes fills at most this much time's worth
/// of the reserve before the node notices.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// The default reserve: room for RocksDB to flush its memtables and compact a little after the
/// node stops taking writes.
pub const DEFAULT_MIN_FREE_SPACE: u64 = 64 << 20;

/// The data directory's filesystem has less free space than the reserve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "disk full on node {node}: the data directory {} has {free} bytes free, below the reserve of \
     {reserve} bytes (min-free-space); this node refuses writes until space returns",
    dir.display()
)]
pub struct LowSpace {
    pub node: u64,
    pub dir: PathBuf,
    pub free: u64,
    pub reserve: u64,
}

/// The last measurement of one node's data directory.
pub struct DiskSpace {
    node: u64,
    dir: PathBuf,
    reserve: u64,
    free: AtomicU64,
    /// The filesystem's size at the last measurement (0 before the first).
    total: AtomicU64,
    low: AtomicBool,
}

impl DiskSpace {
    /// Measures once now, so a node that starts on a full disk refuses writes from the start.
    pub fn new(node: u64, dir: &Path, reserve: u64) -> Arc<DiskSpace> {
        let space = Arc::new(DiskSpace {
            node,
            dir: dir.to_path_buf(),
            reserve,
            free: AtomicU64::new(u64::MAX),
            total: AtomicU64::new(0),
            low: AtomicBool::new(false),
        });
        space.measure();
        space
    }

    /// Ok while the last measurement was at or above the reserve.
    pub fn check(&self) -> Result<(), LowSpace> {
        if !self.low.load(Ordering::SeqCst) {
            return Ok(());
        }
        Err(LowSpace {
            node: self.node,
            dir: self.dir.clone(),
            free: self.free.load(Ordering::SeqCst),
            reserve: self.reserve,
        })
    }

    /// Free bytes at the last measurement.
    pub fn free(&self) -> u64 {
        self.free.load(Ordering::SeqCst)
    }

    /// The filesystem's size at the last measurement (0 before the first succeeded).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }

    /// Reads the filesystem's free space (for unprivileged writers: `f_bavail`) and size, and
    /// records them: the one measurement both the write refusals and the disk gauges of
    /// `/metrics` read. Returns whether the low/not-low state changed. A failed statvfs keeps
    /// the last state: it says nothing about the space.
    pub fn measure(&self) -> bool {
        let (free, total) = match rustix::fs::statvfs(&self.dir) {
            Ok(st) => (
                st.f_bavail.saturating_mul(st.f_frsize),
                st.f_blocks.saturating_mul(st.f_frsize),
            ),
            Err(e) => {
                tracing::warn!("statvfs of {}: {e}", self.dir.display());
                return false;
            }
        };
        self.total.store(total, Ordering::SeqCst);
        self.record(free)
    }

    fn record(&self, free: u64) -> bool {
        self.free.store(free, Ordering::SeqCst);
        let low = free < self.reserve;
        self.low.swap(low, Ordering::SeqCst) != low
    }
}

/// Measures every [`CHECK_INTERVAL`] until `shutdown`; logs each change, and on a leader whose
/// disk is low asks another voter to take over (again each second while it still leads).
pub async fn watch(ctx: Ctx, shutdown: CancellationToken) {
    let space = ctx.disk.clone();
    let mut last_hand_off = tokio::time::Instant::now() - Duration::from_secs(10);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(CHECK_INTERVAL) => {}
        }
        let probe = space.clone();
        let changed = tokio::task::spawn_blocking(move || probe.measure())
            .await
            .unwrap_or(false);
        match space.check() {
            Err(low) => {
                if changed {
                    tracing::error!("{low}");
                }
                let leader = ctx.raft.metrics().borrow_watched().state == ServerState::Leader;
                if leader && last_hand_off.elapsed() >= Duration::from_secs(1) {
                    last_hand_off = tokio::time::Instant::now();
                    crate::cluster::drain::hand_off_leadership_because(&ctx, "its disk is full")
                        .await;
                }
            }
            Ok(()) if changed => tracing::info!(
                node = ctx.id(),
                free = space.free(),
                "disk space is back above the reserve (min-free-space): writes accepted again"
            ),
            Ok(()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_the_reserve_is_low_and_the_error_names_node_dir_free_and_reserve() {
        let space = DiskSpace::new(3, Path::new("/nonexistent-for-the-test"), 1000);
        assert!(space.check().is_ok(), "an unmeasured disk is not low");
        assert!(space.record(999));
        let e = space.check().unwrap_err().to_string();
        for part in [
            "node 3",
            "/nonexistent-for-the-test",
            "999 bytes free",
            "1000 bytes",
            "min-free-space",
        ] {
            assert!(e.contains(part), "{part:?} missing from {e}");
        }
        assert!(!space.record(500), "still low: no change");
        assert!(space.record(1000), "at the reserve is enough");
        assert!(space.check().is_ok());
    }
}
