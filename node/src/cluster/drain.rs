//! Draining a node so that stopping it barely pauses the cluster's writes: leadership moves to
//! another voter (openraft's transfer-leader, an immediate election instead of an election
//! timeout) and placement moves its link slots (`placement.rs`). This module decides the
//! successor, drains a node told to stop (SIGTERM) and undrains it once it is back; it does not
//! place links (placement does) nor record operators' drains (`service/admin.rs`).
//!
//! A node that drained itself to stop leaves a marker file in its data directory; when it starts
//! again and is ready it undrains itself and removes the marker. A node an operator drained
//! (`herald cluster drain`) has no marker and stays drained until the operator undrains it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use herald_raft::events::{event::Kind, Event, NodeDrainChanged};
use herald_raft::records::LinkTable;
use herald_raft::types::{NodeId, RaftMetrics};
use openraft::async_runtime::WatchReceiver as _;
use openraft::ServerState;

use crate::context::Ctx;

/// The file a node that drained itself to stop leaves in its data directory.
const STOP_MARKER: &str = "drained-for-stop";

/// What a node still holds that a drain must move away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub leader: bool,
    pub slots: Vec<String>,
}

impl Holding {
    pub fn is_empty(&self) -> bool {
        !self.leader && self.slots.is_empty()
    }
}

/// What `node` holds as this node's projection and Raft state know it.
pub fn holding(
    ctx: &Ctx,
    node: NodeId,
) -> Result<Holding, herald_raft::projection::ProjectionError> {
    let table = ctx.reader.links()?;
    let leader = ctx.raft.metrics().borrow_watched().current_leader == Some(node);
    Ok(Holding {
        leader,
        slots: slots_of(&table, node),
    })
}

fn slots_of(table: &LinkTable, node: NodeId) -> Vec<String> {
    table
        .links
        .iter()
        .filter(|h| h.node == node)
        .map(|h| h.link.clone())
        .collect()
}

/// The voter that should lead instead of `me`: not drained, heard from recently (`live`), and
/// with the most of the log replicated (it wins the election without catching up first). Ties
/// go to the lowest id, so that repeated calls name the same node.
pub fn successor(
    me: NodeId,
    voters: &BTreeSet<NodeId>,
    drained: &[NodeId],
    live: &BTreeSet<NodeId>,
    matched: &dyn Fn(NodeId) -> u64,
) -> Option<NodeId> {
    voters
        .iter()
        .copied()
        .filter(|v| *v != me && !drained.contains(v) && live.contains(v))
        .max_by_key(|v| (matched(*v), std::cmp::Reverse(*v)))
}

/// On the leader: when this node is drained, asks the best successor to take over. Returns the
/// node asked, if any. Called by placement every tick and right after a drain commits.
pub async fn hand_off_leadership(
    ctx: &Ctx,
    metrics: &RaftMetrics,
    table: &LinkTable,
) -> Option<NodeId> {
    if metrics.state != ServerState::Leader || !table.is_drained(ctx.id()) {
        return None;
    }
    transfer_to_successor(ctx, metrics, table, "this node is drained").await
}

/// On the leader: asks the best successor to take over because of `why` (a full disk), whether
/// or not this node is drained. Returns the node asked, if any.
pub async fn hand_off_leadership_because(ctx: &Ctx, why: &str) -> Option<NodeId> {
    let metrics = ctx.raft.metrics().borrow_watched().clone();
    if metrics.state != ServerState::Leader {
        return None;
    }
    let table = match ctx.reader.links() {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("reading the link table to hand leadership over: {e}");
            return None;
        }
    };
    transfer_to_successor(ctx, &metrics, &table, why).await
}

async fn transfer_to_successor(
    ctx: &Ctx,
    metrics: &RaftMetrics,
    table: &LinkTable,
    why: &str,
) -> Option<NodeId> {
    let voters: BTreeSet<NodeId> = metrics.membership_config.membership().voter_ids().collect();
    let lost_after = Duration::from_millis(ctx.config.placement.node_lost_after_ms);
    let live = crate::cluster::placement::live_nodes(ctx, metrics, lost_after);
    let matched = |id: NodeId| {
        metrics
            .replication
            .as_ref()
            .and_then(|r| r.get(&id).cloned().flatten())
            .map(|l| l.index)
            .unwrap_or(0)
    };
    let to = successor(ctx.id(), &voters, &table.drained, &live, &matched)?;
    tracing::info!(to, "{why}: handing leadership over");
    if let Err(e) = ctx.raft.trigger().transfer_leader(to).await {
        tracing::warn!("leadership transfer to node {to} not started: {e}");
        return None;
    }
    Some(to)
}

fn marker(ctx: &Ctx) -> PathBuf {
    ctx.config.data_dir.join(STOP_MARKER)
}

/// Run when the node is told to stop: drains it (unless it is the only voter, or already drained
/// by an operator), hands leadership over and waits until placement moved its slots, at most
/// `shutdown-drain-timeout-ms` in all. Never fails: a drain that cannot complete (no quorum, no
/// other node to take over) is logged and the node stops anyway.
pub async fn before_stop(ctx: &Ctx) {
    ctx.set_stopping();
    let limit = Duration::from_millis(ctx.config.shutdown_drain_timeout_ms);
    let start = Instant::now();
    match tokio::time::timeout(limit, drain_and_wait(ctx)).await {
        Ok(Ok(())) => tracing::info!(
            ms = start.elapsed().as_millis() as u64,
            "drained before stopping: no leadership, no link slots held"
        ),
        Ok(Err(why)) => tracing::warn!("stopping without a drain: {why}"),
        Err(_) => {
            let left = holding(ctx, ctx.id()).ok();
            tracing::warn!(
                ?left,
                "stopping with the drain incomplete after shutdown-drain-timeout-ms = {}",
                ctx.config.shutdown_drain_timeout_ms
            );
        }
    }
}

async fn drain_and_wait(ctx: &Ctx) -> Result<(), String> {
    let me = ctx.id();
    let metrics = ctx.raft.metrics().borrow_watched().clone();
    let voters: BTreeSet<NodeId> = metrics.membership_config.membership().voter_ids().collect();
    if voters.len() < 2 || !voters.contains(&me) {
        return Err("no other voter could take over".into());
    }
    let table = ctx.reader.links().map_err(|e| e.to_string())?;
    if !table.is_drained(me) {
        let undrained = voters
            .iter()
            .filter(|v| **v != me && !table.is_drained(**v))
            .count();
        if undrained == 0 {
            return Err("every other voter is drained: nobody would hold the links".into());
        }
        // Written before the drain is proposed: a crash in between leaves a marker for a node
        // that is not drained, which the restart merely removes.
        herald_raft::durable_fs::write_durable(
            &marker(ctx),
            b"drained by this node to stop; undrained when it is back\n",
        )
        .map_err(|e| format!("writing {}: {e}", marker(ctx).display()))?;
        let event = Event::new(
            ctx.clock.now_ms(),
            Kind::NodeDrain(NodeDrainChanged {
                node: me,
                drained: true,
            }),
        );
        ctx.proposer
            .propose(vec![event])
            .await
            .map_err(|e| format!("the drain was not committed: {e}"))?;
    }
    wait_until_holding_nothing(ctx, me, None).await;
    Ok(())
}

/// Waits until `node` holds neither leadership nor a link slot, as this node knows it; while
/// this node leads and is the one drained, keeps asking for a successor. `progress` hears what
/// is left each time it changes.
pub async fn wait_until_holding_nothing(
    ctx: &Ctx,
    node: NodeId,
    mut progress: Option<&mut dyn FnMut(&Holding)>,
) {
    let mut last: Option<Holding> = None;
    let mut asked_at: Option<Instant> = None;
    loop {
        if let Ok(left) = holding(ctx, node) {
            if left.is_empty() {
                return;
            }
            if last.as_ref() != Some(&left) {
                if let Some(p) = progress.as_mut() {
                    p(&left);
                }
                last = Some(left.clone());
            }
            // A transfer the successor did not complete (it was busy, a message was lost) is
            // asked for again after an election timeout.
            let again = asked_at.is_none_or(|at| {
                at.elapsed() >= Duration::from_millis(ctx.config.raft.election_timeout_min_ms)
            });
            if left.leader && node == ctx.id() && again {
                let metrics = ctx.raft.metrics().borrow_watched().clone();
                if let Ok(table) = ctx.reader.links() {
                    if hand_off_leadership(ctx, &metrics, &table).await.is_some() {
                        asked_at = Some(Instant::now());
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Run at start: a node that drained itself to stop undrains itself once it is ready (a leader
/// known, caught up with it), so that a restart needs no operator. Without the marker nothing
/// happens: an operator's drain stays.
pub async fn undrain_after_restart(ctx: Ctx) {
    let path = marker(&ctx);
    if !path.exists() {
        return;
    }
    loop {
        if ctx.is_stopping() {
            return;
        }
        if ctx.catch_up(Duration::from_secs(5)).await.is_ok() {
            match ctx.reader.links() {
                Ok(table) if !table.is_drained(ctx.id()) => break,
                Ok(_) => {
                    let event = Event::new(
                        ctx.clock.now_ms(),
                        Kind::NodeDrain(NodeDrainChanged {
                            node: ctx.id(),
                            drained: false,
                        }),
                    );
                    match ctx.proposer.propose(vec![event]).await {
                        Ok(_) => {
                            tracing::info!("back after a stop: this node takes links again");
                            break;
                        }
                        Err(e) => tracing::info!("undrain after restart not committed yet: {e}"),
                    }
                }
                Err(e) => tracing::warn!("reading the link table: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Durably: a marker a power loss brought back would undrain this node after a later
    // restart, undoing an operator's drain made meanwhile.
    if let Err(e) = herald_raft::durable_fs::remove_file_durable(&path) {
        tracing::warn!("removing {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn the_successor_is_an_undrained_live_voter_with_the_most_log() {
        let voters = set(&[1, 2, 3, 4]);
        let matched = |id: u64| match id {
            2 => 90,
            3 => 100,
            4 => 100,
            _ => 0,
        };
        assert_eq!(
            successor(1, &voters, &[], &set(&[1, 2, 3, 4]), &matched),
            Some(3)
        );
        assert_eq!(
            successor(1, &voters, &[3], &set(&[1, 2, 3, 4]), &matched),
            Some(4)
        );
        assert_eq!(
            successor(1, &voters, &[3], &set(&[1, 2, 3]), &matched),
            Some(2)
        );
        assert_eq!(
            successor(1, &voters, &[2, 3, 4], &set(&[1, 2, 3, 4]), &matched),
            None
        );
        assert_eq!(successor(1, &set(&[1]), &[], &set(&[1]), &matched), None);
    }
}
