//! Operators' changes to the running cluster — the dispatch policy, draining nodes, raising the
//! cluster version — each one an event in the log, so it takes effect on every node at the same
//! log position.

use std::collections::BTreeSet;
use std::time::Duration;

use herald_raft::events::{event::Kind, Event, NodeDrainChanged, PolicyChanged};
use herald_raft::types::EventOutcome;
use openraft::async_runtime::WatchReceiver as _;

use super::caller::Caller;
use super::error::ServiceError;
use super::permissions::Permission;
use crate::context::Ctx;
use crate::policy::DispatchPolicy;

/// The policy in force, every default filled in.
pub struct PolicyView {
    /// 0: never set (the defaults are in force).
    pub version: u64,
    pub policy: DispatchPolicy,
    pub changed_at_ms: u64,
    pub changed_by: String,
}

pub fn get_policy(ctx: &Ctx, caller: &Caller) -> Result<PolicyView, ServiceError> {
    caller.require(Permission::ReadPolicy)?;
    let record = ctx
        .reader
        .policy()
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    let policy = DispatchPolicy::from_stored(&record.document).map_err(|e| {
        ServiceError::Internal(format!("the stored policy is unreadable here: {e}"))
    })?;
    Ok(PolicyView {
        version: record.version,
        policy,
        changed_at_ms: record.changed_at_ms,
        changed_by: record.changed_by,
    })
}

/// Replaces the policy with `document` (TOML, or JSON), based on `expected_version`; the caller
/// is recorded as who changed it. Returns the new version.
pub async fn set_policy(
    ctx: &Ctx,
    caller: &Caller,
    document: &str,
    expected_version: u64,
) -> Result<u64, ServiceError> {
    caller.require(Permission::SetPolicy)?;
    let policy = DispatchPolicy::parse(document, &ctx.link_names()).map_err(|e| {
        ServiceError::InvalidArgument {
            field: e.field,
            rule: e.rule,
        }
    })?;
    let version = expected_version.checked_add(1).ok_or_else(|| {
        ServiceError::invalid("expected_version", "not a version this cluster can have")
    })?;
    let event = Event::new(
        ctx.clock.now_ms(),
        Kind::PolicyChanged(PolicyChanged {
            version,
            document: policy.to_json(),
            changed_by: caller.name().to_string(),
        }),
    )
    .by(caller.principal());
    let outcomes = ctx.propose(vec![event]).await?;
    match outcomes.first() {
        Some(EventOutcome::Applied) => Ok(version),
        Some(EventOutcome::Ignored { reason }) => Err(ServiceError::Conflict(format!(
            "expected_version: {reason}; read the policy again and reapply your change"
        ))),
        other => Err(ServiceError::Internal(format!(
            "unexpected outcome of a policy change: {other:?}"
        ))),
    }
}

/// Drains `node` (its links move to other nodes and it gets no new ones) or undrains it.
/// Returns every drained node after the change, as this node has applied it.
///
/// A drain that would leave no undrained live member to hold the links is refused unless
/// `force`: the links would be held by nobody and messages would wait in their queues for good.
pub async fn drain(
    ctx: &Ctx,
    caller: &Caller,
    node: u64,
    drained: bool,
    force: bool,
) -> Result<Vec<u64>, ServiceError> {
    caller.require(Permission::DrainNode)?;
    let metrics = ctx.raft.metrics().borrow_watched().clone();
    let membership = metrics.membership_config.membership();
    let members: Vec<u64> = membership.nodes().map(|(id, _)| *id).collect();
    if !members.contains(&node) {
        return Err(ServiceError::invalid(
            "node",
            format!("{node} is not a member (members: {members:?})"),
        ));
    }
    if drained && !force {
        let table = ctx
            .reader
            .links()
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        // Only the leader hears every member: elsewhere every voter counts as live.
        let live = (metrics.state == openraft::ServerState::Leader).then(|| {
            let lost_after = Duration::from_millis(ctx.config.placement.node_lost_after_ms);
            crate::cluster::placement::live_nodes(ctx, &metrics, lost_after)
        });
        check_drain_leaves_a_holder(node, &voters, &table.drained, live.as_ref())?;
    }
    let event = Event::new(
        ctx.clock.now_ms(),
        Kind::NodeDrain(NodeDrainChanged { node, drained }),
    )
    .by(caller.principal());
    ctx.propose(vec![event]).await?;
    let applied_here = || {
        ctx.reader
            .links()
            .is_ok_and(|t| t.is_drained(node) == drained)
    };
    ctx.applied_until(Duration::from_secs(2), applied_here)
        .await;
    if drained && node == ctx.id() {
        // Placement would notice within its tick; asking now saves that much of the drain.
        let metrics = ctx.raft.metrics().borrow_watched().clone();
        if let Ok(table) = ctx.reader.links() {
            crate::cluster::drain::hand_off_leadership(ctx, &metrics, &table).await;
        }
    }
    Ok(ctx
        .reader
        .links()
        .map_err(|e| ServiceError::Internal(e.to_string()))?
        .drained)
}

/// Raises the cluster version to the format level of this build once every member applies it
/// (the end of a rolling upgrade: older binaries cannot rejoin after it). Refused, naming the
/// members, while any runs an older version or cannot be asked. Returns (before, after).
pub async fn finalize(ctx: &Ctx, caller: &Caller) -> Result<(u32, u32), ServiceError> {
    caller.require(Permission::FinalizeUpgrade)?;
    use crate::cluster::versions::{raise, RaiseError};
    raise(ctx, Some(caller.principal()))
        .await
        .map_err(|e| match e {
            RaiseError::Not(why) => ServiceError::FailedPrecondition(format!("finalize: {why}")),
            RaiseError::NotCommitted(why) => ServiceError::Unavailable(why),
        })
}

/// The rule of a drain without force: some voter other than `node`, not drained and live (when
/// liveness is known), must remain to hold the links. Draining a node already drained changes
/// nothing and is allowed.
fn check_drain_leaves_a_holder(
    node: u64,
    voters: &BTreeSet<u64>,
    drained: &[u64],
    live: Option<&BTreeSet<u64>>,
) -> Result<(), ServiceError> {
    if drained.contains(&node) {
        return Ok(());
    }
    let undrained: Vec<u64> = voters
        .iter()
        .copied()
        .filter(|v| *v != node && !drained.contains(v))
        .collect();
    let holders = undrained
        .iter()
        .filter(|v| live.is_none_or(|live| live.contains(v)))
        .count();
    if holders > 0 {
        return Ok(());
    }
    let why = if undrained.is_empty() {
        let mut others: Vec<u64> = drained.to_vec();
        others.sort_unstable();
        format!("every other member is drained ({others:?})")
    } else {
        format!("the other undrained members ({undrained:?}) are not live")
    };
    Err(ServiceError::FailedPrecondition(format!(
        "node: draining node {node} would leave no undrained live member to hold the carrier \
         links ({why}): they would be held by nobody and messages would wait in their queues; \
         undrain a node first, or drain with force to accept that"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn the_last_undrained_member_is_not_drained() {
        let voters = set(&[1, 2, 3]);
        assert!(check_drain_leaves_a_holder(1, &voters, &[], None).is_ok());
        assert!(check_drain_leaves_a_holder(2, &voters, &[1], None).is_ok());
        let e = check_drain_leaves_a_holder(3, &voters, &[1, 2], None).unwrap_err();
        assert!(matches!(e, ServiceError::FailedPrecondition(_)));
        let e = e.to_string();
        assert!(
            e.starts_with("node: draining node 3 would leave no undrained live member"),
            "{e}"
        );
        assert!(e.contains("every other member is drained ([1, 2])"), "{e}");
        assert!(e.contains("force"), "{e}");
        // Already drained: nothing changes.
        assert!(check_drain_leaves_a_holder(3, &voters, &[1, 2, 3], None).is_ok());
    }

    #[test]
    fn a_member_the_leader_has_not_heard_from_cannot_take_the_links() {
        let voters = set(&[1, 2, 3]);
        let live = set(&[1, 2]);
        assert!(check_drain_leaves_a_holder(1, &voters, &[], Some(&live)).is_ok());
        let e = check_drain_leaves_a_holder(2, &voters, &[1], Some(&live)).unwrap_err();
        assert!(
            e.to_string()
                .contains("the other undrained members ([3]) are not live"),
            "{e}"
        );
    }
}
