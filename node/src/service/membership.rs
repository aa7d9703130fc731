//! Raft membership changes an operator asks for (`herald cluster add-node | remove-node`): a
//! node joins as a learner, catches up, and only then votes; a node leaves without taking the
//! cluster below a working majority. Only the leader changes membership (openraft's
//! `change_membership`), so elsewhere the answer names the leader. Every change is audited by a
//! `AdminAction` event carrying the caller.
//!
//! Not here: whether a node may vote before it is added (`herald_raft::admission`), where link
//! slots go once a node leaves (`cluster/placement.rs` follows the voters).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use herald_raft::events::{event::Kind, AdminAction, Event};
use herald_raft::types::{Member, RaftMetrics};
use openraft::async_runtime::WatchReceiver as _;
use openraft::ChangeMembers;

use super::caller::Caller;
use super::error::ServiceError;
use super::permissions::Permission;
use crate::context::Ctx;

/// How long a new node may take to catch up when the caller gives no bound.
pub const DEFAULT_CATCH_UP: Duration = Duration::from_secs(300);

/// A learner this close to the leader's last entry counts as caught up: under load the leader's
/// log keeps growing, and the last entries reach a voter with the next append anyway.
pub const CAUGHT_UP_LAG: u64 = 100;

/// How often progress is reported while a learner catches up.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// The node to add.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub node: u64,
    /// Its internal address, as every member will dial it (its `raft-listen`).
    pub raft_addr: String,
    /// Its public address (its `grpc-listen`); may be empty.
    pub grpc_addr: String,
}

/// Where an addition stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddStage {
    /// In the membership as a learner (or demoted to one): it receives the log, does not vote.
    LearnerAdded,
    CatchingUp,
    /// A voter.
    Promoted,
}

impl AddStage {
    pub fn name(self) -> &'static str {
        match self {
            AddStage::LearnerAdded => "learner-added",
            AddStage::CatchingUp => "catching-up",
            AddStage::Promoted => "promoted",
        }
    }
}

/// One progress report of an addition.
#[derive(Debug, Clone)]
pub struct AddProgress {
    pub stage: AddStage,
    /// The last log index the node holds, as the leader knows it.
    pub node_index: u64,
    /// The leader's last log index.
    pub leader_index: u64,
}

/// The membership after a change.
#[derive(Debug, Clone, Default)]
pub struct MembershipView {
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
}

/// Adds `new` as a learner, waits (at most `catch_up`) until it has caught up, then makes it a
/// voter, calling `progress` at each step. A voter of that id (one that lost its data and waits
/// to be re-added) is demoted to a learner first, so it votes again only once caught up.
pub async fn add_node(
    ctx: &Ctx,
    caller: &Caller,
    new: NewMember,
    catch_up: Duration,
    mut progress: impl FnMut(AddProgress),
) -> Result<MembershipView, ServiceError> {
    caller.require(Permission::ChangeMembership)?;
    check_new_member(&new)?;
    let metrics = leader_metrics(ctx)?;
    let membership = metrics.membership_config.membership();
    let known: BTreeMap<u64, Member> = membership.nodes().map(|(id, m)| (*id, m.clone())).collect();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    if let Some(existing) = known.get(&new.node) {
        if existing.raft_addr != new.raft_addr {
            return Err(ServiceError::invalid(
                "raft_addr",
                format!(
                    "{:?}: node {} is already a member at {:?}; remove it first to move it",
                    new.raft_addr, new.node, existing.raft_addr
                ),
            ));
        }
    }
    if voters.contains(&new.node) {
        if new.node == ctx.id() {
            return Err(ServiceError::FailedPrecondition(format!(
                "node: node {} is the leader and a voter already",
                new.node
            )));
        }
        change(
            ctx,
            ChangeMembers::RemoveVoters(BTreeSet::from([new.node])),
            true,
        )
        .await?;
        audit(ctx, caller, new.node, "demote", "").await?;
    } else if !known.contains_key(&new.node) {
        let member = Member {
            raft_addr: new.raft_addr.clone(),
            grpc_addr: new.grpc_addr.clone(),
        };
        ctx.raft
            .add_learner(new.node, member, false)
            .await
            .map_err(membership_error)?;
        audit(ctx, caller, new.node, "add", &new.raft_addr).await?;
    }
    let added_at = last_log_index(&ctx.raft.metrics().borrow_watched());
    progress(AddProgress {
        stage: AddStage::LearnerAdded,
        node_index: 0,
        leader_index: added_at,
    });

    let deadline = Instant::now() + catch_up;
    loop {
        let m = leader_metrics(ctx)?;
        let leader_index = last_log_index(&m);
        let node_index = matched(&m, new.node);
        if node_index >= added_at && node_index + CAUGHT_UP_LAG >= leader_index {
            break;
        }
        progress(AddProgress {
            stage: AddStage::CatchingUp,
            node_index,
            leader_index,
        });
        if Instant::now() > deadline {
            return Err(ServiceError::FailedPrecondition(format!(
                "node: node {} did not catch up within {} s (it holds up to index {node_index}, \
                 the leader {leader_index}); it stays a learner: check that it runs and that \
                 the members reach it at {}, then add it again",
                new.node,
                catch_up.as_secs(),
                new.raft_addr
            )));
        }
        tokio::time::sleep(PROGRESS_EVERY).await;
    }
    change(
        ctx,
        ChangeMembers::AddVoterIds(BTreeSet::from([new.node])),
        true,
    )
    .await?;
    audit(ctx, caller, new.node, "promote", "").await?;
    let m = ctx.raft.metrics().borrow_watched().clone();
    progress(AddProgress {
        stage: AddStage::Promoted,
        node_index: matched(&m, new.node),
        leader_index: last_log_index(&m),
    });
    Ok(view(&m))
}

/// Removes `node` from the membership. Refused for the last voter, and without `force` when the
/// voters left would not include a majority of live ones (the cluster would stop committing).
pub async fn remove_node(
    ctx: &Ctx,
    caller: &Caller,
    node: u64,
    force: bool,
) -> Result<MembershipView, ServiceError> {
    caller.require(Permission::ChangeMembership)?;
    let metrics = leader_metrics(ctx)?;
    let membership = metrics.membership_config.membership();
    let members: Vec<u64> = membership.nodes().map(|(id, _)| *id).collect();
    if !members.contains(&node) {
        return Err(ServiceError::invalid(
            "node",
            format!("{node} is not a member (members: {members:?})"),
        ));
    }
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let lost_after = Duration::from_millis(ctx.config.placement.node_lost_after_ms);
    let live = crate::cluster::placement::live_nodes(ctx, &metrics, lost_after);
    check_removal(node, &voters, &live, force)?;
    let change_set = BTreeSet::from([node]);
    if voters.contains(&node) {
        change(ctx, ChangeMembers::RemoveVoters(change_set), false).await?;
    } else {
        change(ctx, ChangeMembers::RemoveNodes(change_set), false).await?;
    }
    audit(ctx, caller, node, "remove", "").await?;
    Ok(view(&ctx.raft.metrics().borrow_watched()))
}

/// The rules of a removal: never the last voter; without `force`, the voters left must keep a
/// live majority among themselves.
fn check_removal(
    node: u64,
    voters: &BTreeSet<u64>,
    live: &BTreeSet<u64>,
    force: bool,
) -> Result<(), ServiceError> {
    if !voters.contains(&node) {
        return Ok(());
    }
    let left: Vec<u64> = voters.iter().copied().filter(|v| *v != node).collect();
    if left.is_empty() {
        return Err(ServiceError::FailedPrecondition(format!(
            "node: node {node} is the last voter; a cluster needs one"
        )));
    }
    let live_left = left.iter().filter(|v| live.contains(v)).count();
    if !force && live_left * 2 <= left.len() {
        return Err(ServiceError::FailedPrecondition(format!(
            "node: removing node {node} would leave voters {left:?} of which only {live_left} \
             are live, not a majority: the cluster would stop committing; bring a node back \
             first, or remove with force to accept that"
        )));
    }
    Ok(())
}

fn check_new_member(new: &NewMember) -> Result<(), ServiceError> {
    if new.node == 0 {
        return Err(ServiceError::invalid(
            "node",
            "0: node ids start at 1 (0 means \"nobody\" in the slot table)",
        ));
    }
    let valid_addr = |a: &str| {
        a.rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
    };
    if !valid_addr(&new.raft_addr) {
        return Err(ServiceError::invalid(
            "raft_addr",
            format!(
                "{:?}: must be HOST:PORT (the node's raft-listen)",
                new.raft_addr
            ),
        ));
    }
    if !new.grpc_addr.is_empty() && !valid_addr(&new.grpc_addr) {
        return Err(ServiceError::invalid(
            "grpc_addr",
            format!(
                "{:?}: must be HOST:PORT (the node's grpc-listen) or empty",
                new.grpc_addr
            ),
        ));
    }
    Ok(())
}

/// This node's metrics, if it is the leader; else the error naming the leader.
fn leader_metrics(ctx: &Ctx) -> Result<RaftMetrics, ServiceError> {
    let m = ctx.raft.metrics().borrow_watched().clone();
    if m.state == openraft::ServerState::Leader {
        return Ok(m);
    }
    Err(not_leader(&m))
}

fn not_leader(m: &RaftMetrics) -> ServiceError {
    match m.current_leader {
        Some(leader) => {
            let addr = m
                .membership_config
                .membership()
                .get_node(&leader)
                .map(|n| n.grpc_addr.clone())
                .unwrap_or_default();
            ServiceError::FailedPrecondition(format!(
                "not the leader: membership changes are made by the leader, node {leader} \
                 ({addr}); call it"
            ))
        }
        None => ServiceError::Unavailable("no leader is known".into()),
    }
}

async fn change(
    ctx: &Ctx,
    members: ChangeMembers<u64, Member>,
    retain: bool,
) -> Result<(), ServiceError> {
    ctx.raft
        .change_membership(members, retain)
        .await
        .map(|_| ())
        .map_err(membership_error)
}

fn membership_error<E: std::fmt::Display>(e: E) -> ServiceError {
    let text = e.to_string();
    if text.contains("forward") || text.contains("leader") {
        ServiceError::Unavailable(format!("membership change: {text}"))
    } else {
        ServiceError::FailedPrecondition(format!("membership change refused: {text}"))
    }
}

async fn audit(
    ctx: &Ctx,
    caller: &Caller,
    node: u64,
    action: &str,
    raft_addr: &str,
) -> Result<(), ServiceError> {
    let detail = if raft_addr.is_empty() {
        format!("node {node}")
    } else {
        format!("node {node} at {raft_addr}")
    };
    let event = Event::new(
        ctx.clock.now_ms(),
        Kind::AdminAction(AdminAction {
            action: format!("member.{action}"),
            node,
            detail,
        }),
    )
    .by(caller.principal());
    ctx.propose(vec![event]).await?;
    Ok(())
}

fn last_log_index(m: &RaftMetrics) -> u64 {
    m.last_log_index.unwrap_or(0)
}

/// The last index `node` holds, as the leader's replication knows it (0: nothing yet).
fn matched(m: &RaftMetrics, node: u64) -> u64 {
    m.replication
        .as_ref()
        .and_then(|r| r.get(&node).cloned().flatten())
        .map(|l| l.index)
        .unwrap_or(0)
}

fn view(m: &RaftMetrics) -> MembershipView {
    let membership = m.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    MembershipView {
        learners: membership
            .nodes()
            .map(|(id, _)| *id)
            .filter(|id| !voters.contains(id))
            .collect(),
        voters: voters.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn the_last_voter_stays() {
        let e = check_removal(1, &set(&[1]), &set(&[1]), true).unwrap_err();
        assert!(e.to_string().contains("last voter"), "{e}");
    }

    #[test]
    fn a_removal_that_leaves_no_live_majority_needs_force() {
        let voters = set(&[1, 2, 3]);
        assert!(check_removal(3, &voters, &set(&[1, 2]), false).is_ok());
        let e = check_removal(2, &voters, &set(&[1, 2]), false).unwrap_err();
        assert!(
            e.to_string().contains("only 1 are live, not a majority"),
            "{e}"
        );
        assert!(check_removal(2, &voters, &set(&[1, 2]), true).is_ok());
        // A learner never counts.
        assert!(check_removal(4, &voters, &set(&[1]), false).is_ok());
    }

    #[test]
    fn a_new_member_needs_an_id_and_addresses() {
        let member = |node, raft: &str, grpc: &str| NewMember {
            node,
            raft_addr: raft.into(),
            grpc_addr: grpc.into(),
        };
        assert!(check_new_member(&member(4, "10.0.0.4:7151", "")).is_ok());
        let e = check_new_member(&member(0, "10.0.0.4:7151", "")).unwrap_err();
        assert!(e.to_string().starts_with("node: 0"), "{e}");
        let e = check_new_member(&member(4, "10.0.0.4", "")).unwrap_err();
        assert!(e.to_string().starts_with("raft_addr: \"10.0.0.4\""), "{e}");
        let e = check_new_member(&member(4, "10.0.0.4:1", "x:y")).unwrap_err();
        assert!(e.to_string().starts_with("grpc_addr: \"x:y\""), "{e}");
    }
}
