//! What "live" and "ready" mean for a node, for every transport that reports them (`/livez`,
//! `/readyz`, the gRPC health service). Live: the process answers — never tied to quorum, so an
//! orchestrator does not restart nodes of a cluster that merely lost its majority. Ready: this
//! node can serve reads and writes now.
//!
//! It decides nothing else (no routing, no draining itself).

use openraft::async_runtime::WatchReceiver as _;

use crate::context::NodeContext;

/// How many committed entries a node may still have to apply and count as caught up: a busy
/// node is always a few entries behind, a recovering one thousands.
pub const MAX_APPLY_LAG: u64 = 1_000;

/// Whether this node is ready to serve; `Err` says why not, in words for an operator.
pub fn readiness(ctx: &NodeContext) -> Result<(), String> {
    // First: the one reason an operator must act on, whatever else is true.
    if let Err(low) = ctx.disk.check() {
        return Err(low.to_string());
    }
    let (leader, committed) = {
        let m = ctx.raft.metrics();
        let m = m.borrow_watched();
        (
            m.current_leader,
            m.local_committed.map(|l| l.index).unwrap_or(0),
        )
    };
    if leader.is_none() {
        return Err("no leader known".into());
    }
    let applied = *ctx.applied.borrow();
    let behind = committed.saturating_sub(applied);
    if behind > MAX_APPLY_LAG {
        return Err(format!(
            "applied up to entry {applied} of the {committed} committed ({behind} behind, \
             at most {MAX_APPLY_LAG} allowed)"
        ));
    }
    if draining(ctx) {
        return Err(format!("node {} is drained", ctx.id()));
    }
    Ok(())
}

/// Whether this node is drained (by an operator, or by itself to stop: it holds no links then)
/// or stopping.
pub fn draining(ctx: &NodeContext) -> bool {
    if ctx.is_stopping() {
        return true;
    }
    match ctx.reader.links() {
        Ok(table) => table.is_drained(ctx.id()),
        Err(e) => {
            tracing::warn!("reading the link table for readiness: {e}");
            false
        }
    }
}
