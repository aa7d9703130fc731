//! Operators' changes to the running cluster — the dispatch policy and draining nodes — each one
//! an event in the log, so it takes effect on every node at the same log position.

use herald_raft::events::{event::Kind, now_ms, Event, NodeDrainChanged, PolicyChanged};
use herald_raft::types::EventOutcome;
use openraft::async_runtime::WatchReceiver as _;

use super::caller::Caller;
use super::error::ServiceError;
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

pub fn get_policy(ctx: &Ctx, _caller: &Caller) -> Result<PolicyView, ServiceError> {
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
        now_ms(),
        Kind::PolicyChanged(PolicyChanged {
            version,
            document: policy.to_json(),
            changed_by: caller.client().to_string(),
        }),
    );
    let outcomes = ctx.proposer.propose(vec![event]).await?;
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
pub async fn drain(
    ctx: &Ctx,
    _caller: &Caller,
    node: u64,
    drained: bool,
) -> Result<Vec<u64>, ServiceError> {
    let members: Vec<u64> = {
        let metrics = ctx.raft.metrics().borrow_watched().clone();
        metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .collect()
    };
    if !members.contains(&node) {
        return Err(ServiceError::invalid(
            "node",
            format!("{node} is not a member (members: {members:?})"),
        ));
    }
    let event = Event::new(
        now_ms(),
        Kind::NodeDrain(NodeDrainChanged { node, drained }),
    );
    ctx.proposer.propose(vec![event]).await?;
    let applied_here = || {
        ctx.reader
            .links()
            .is_ok_and(|t| t.is_drained(node) == drained)
    };
    ctx.applied_until(std::time::Duration::from_secs(2), applied_here)
        .await;
    Ok(ctx
        .reader
        .links()
        .map_err(|e| ServiceError::Internal(e.to_string()))?
        .drained)
}
