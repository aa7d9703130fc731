//! Keeps the Raft gauges current from openraft's metrics channel: every change of leader, term,
//! commit or applied index is seen (a leader change between two scrapes is counted too, which a
//! scrape-time read would miss). Follower lag is served only on the leader.

use std::sync::Arc;

use herald_raft::types::Raft;
use openraft::async_runtime::WatchReceiver as _;
use tokio_util::sync::CancellationToken;

use super::Metrics;

/// Runs until `shutdown` or until Raft stops.
pub async fn run(raft: Raft, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let mut rx = raft.metrics();
    let mut last_leader = None;
    loop {
        {
            let m = rx.borrow_watched();
            let leader = m.current_leader;
            if leader != last_leader {
                if leader.is_some() {
                    metrics.raft_leader_changes.inc();
                }
                last_leader = leader;
            }
            metrics.raft_has_leader.set(i64::from(leader.is_some()));
            metrics.raft_is_leader.set(i64::from(leader == Some(m.id)));
            metrics.raft_term.set(gauge(m.current_term));
            let committed = m.local_committed.map(|l| l.index).unwrap_or(0);
            let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
            metrics.raft_commit_index.set(gauge(committed));
            metrics.raft_applied_index.set(gauge(applied));
            metrics
                .raft_apply_lag
                .set(gauge(committed.saturating_sub(applied)));
            match &m.replication {
                Some(replication) => {
                    let last = m.last_log_index.unwrap_or(0);
                    for (follower, matched) in replication {
                        if *follower == m.id {
                            continue;
                        }
                        let matched = matched.as_ref().map(|l| l.index).unwrap_or(0);
                        metrics
                            .raft_follower_lag
                            .with_label_values(&[&follower.to_string()])
                            .set(gauge(last.saturating_sub(matched)));
                    }
                }
                None => metrics.raft_follower_lag.reset(),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = rx.changed() => if changed.is_err() { return },
        }
    }
}

fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
