//! What a link holder tells the cluster about its carrier connection, and what it does when the
//! connection stays down.
//!
//! Routes need every node to agree on which links are usable, so a holder records changes of its
//! connection as `LinkStatusChanged` events: down after `failover.down-after-ms` without a
//! connection, up as soon as it is back, congested while the carrier answered with flow control in
//! the last few seconds. The backups of a route start taking its messages when these events say
//! the links ahead of them are unusable, and stop when the primary is back.
//!
//! A holder whose connection stays down past `failover.requeue-after-ms` gives its routed in-flight
//! messages back to their route (`MessageRequeued`), so a backup sends them instead of their
//! waiting for this carrier to return. One whose segment did reach the carrier before the
//! connection broke may then be sent twice: bounded by the window, and recorded in its timeline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_raft::events::{event::Kind, Event, LinkStatusChanged, MessageRequeued};
use herald_raft::records::{queue_name, MessageState};

use crate::links::worker::{inflight_of_slot, LinkRun};

/// How long after the last flow-control answer a link still counts as congested.
const CONGESTED_FOR: Duration = Duration::from_secs(5);
/// Most retries waiting in a down link's own queue given back to their routes per pass (a pass
/// runs at most once a second).
const GIVE_BACK_AT_ONCE: usize = 1000;

/// Reports the connection's condition whenever it differs from what the cluster last recorded.
pub(crate) async fn run(run: Arc<LinkRun>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let policy = run.ctx.policy();
        let down_after = Duration::from_millis(policy.failover.down_after_ms);
        let up = run.down_for() < down_after;
        let congested = up && run.rate.congested_within(CONGESTED_FOR);
        let Ok(table) = run.ctx.reader.links() else {
            continue;
        };
        let Some(holder) = table.holder(&run.slot) else {
            continue;
        };
        if holder.epoch != run.epoch {
            // No longer ours: the manager stops this worker.
            continue;
        }
        if holder.down != up && holder.congested == congested {
            continue;
        }
        let reason = if !up {
            run.last_down_reason
                .lock()
                .map(|r| r.clone())
                .unwrap_or_default()
        } else if congested {
            format!("flow control; sending at {}/s", run.rate.current())
        } else {
            "connected".to_string()
        };
        tracing::info!(slot = %run.slot, up, congested, %reason, "recording link status");
        let event = Event::new(
            run.ctx.clock.now_ms(),
            Kind::LinkStatus(LinkStatusChanged {
                link: run.link.name.clone(),
                slot: run.slot_field(),
                epoch: run.epoch,
                up,
                congested,
                reason,
            }),
        );
        if let Err(e) = run.ctx.proposer.propose(vec![event]).await {
            tracing::warn!(slot = %run.slot, "link status not recorded: {e}");
        }
    }
}

/// While the connection is down past the policy's patience, gives the routed messages this slot
/// holds in flight back to their routes, when another link of the route is usable.
pub(crate) async fn give_back_if_down(run: &Arc<LinkRun>, resend: &mut Vec<u64>) {
    let policy = run.ctx.policy();
    if run.down_for() < Duration::from_millis(policy.failover.requeue_after_ms) {
        return;
    }
    {
        let Ok(mut last) = run.last_give_back.lock() else {
            return;
        };
        if last.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            return;
        }
        *last = Some(Instant::now());
    }
    let Ok(table) = run.ctx.reader.links() else {
        return;
    };
    let busy = run
        .in_progress
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    let now = run.ctx.clock.now_ms();
    let mut events = Vec::new();
    // What this slot has in flight, and the retries sent this link's way that it cannot take.
    let own_queue = queue_name("", &run.link.name);
    let retries = run
        .ctx
        .reader
        .queued(&own_queue, GIVE_BACK_AT_ONCE)
        .unwrap_or_default();
    for id in inflight_of_slot(run).into_iter().chain(retries) {
        if busy.contains(&id) {
            continue;
        }
        let Ok(Some(msg)) = run.ctx.reader.message(id) else {
            continue;
        };
        let waiting_here = msg.state() == MessageState::Accepted;
        if waiting_here && msg.retry_link != run.link.name {
            // Named this link itself: it waits for it.
            continue;
        }
        let elsewhere = policy.routes.iter().any(|r| {
            r.name == msg.route
                && r.links
                    .iter()
                    .any(|l| *l != run.link.name && table.link_up(l))
        });
        if !elsewhere {
            continue;
        }
        events.push(Event::new(
            now,
            Kind::Requeued(MessageRequeued {
                message_id: id,
                link: run.link.name.clone(),
                slot: run.slot_field(),
                epoch: run.epoch,
                reason: format!("link {} down for {:?}", run.slot, run.down_for()),
            }),
        ));
    }
    if events.is_empty() {
        return;
    }
    let given: Vec<u64> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::Requeued(r)) => Some(r.message_id),
            _ => None,
        })
        .collect();
    tracing::warn!(slot = %run.slot, count = given.len(), "link down: giving in-flight messages back to their routes");
    match run.ctx.proposer.propose(events).await {
        Ok(_) => resend.retain(|id| !given.contains(id)),
        Err(e) => tracing::warn!(slot = %run.slot, "requeue not committed: {e}"),
    }
}
