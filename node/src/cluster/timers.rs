//! The leader's clock-driven decisions, each recorded as an event so every node sees the same:
//! - messages whose validity ran out become EXPIRED (`MessageExpired`), whatever state they were
//!   stuck in (queued on a link nobody can run, sent but never reported) — this is what makes every
//!   acknowledged message reach a terminal state;
//! - SCHEDULED messages whose time came (a scheduled send, the end of quiet hours, a retry's
//!   backoff) join their queue (`MessageReleased`);
//! - MO assemblies older than the policy's `replies.incomplete-after-ms` are closed
//!   (`MoAssemblyClosed`): a long reply still missing parts is passed on marked incomplete, and
//!   the memory of a finished one (which recognises a carrier's resends) is forgotten.
//!
//! "Now" is the cluster clock, and nothing is decided until it holds a majority's samples.

use std::time::Duration;

use herald_raft::events::{event::Kind, Event, MessageExpired, MessageReleased};
use herald_raft::reader::ProjectionReader;
use openraft::async_runtime::WatchReceiver as _;
use openraft::ServerState;

use crate::context::Ctx;

/// Most messages expired or released by one proposal.
const SWEEP_BATCH: usize = 1000;

pub async fn run(ctx: Ctx) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if ctx.raft.metrics().borrow_watched().state != ServerState::Leader {
            continue;
        }
        // A leader reaches a majority, so its clock samples arrive within a second; until then
        // its own wall clock may be the stepped one (`cluster/clock.rs`).
        if !ctx.clock.has_majority() {
            continue;
        }
        let now = ctx.clock.now_ms();
        close_old_mo_assemblies(&ctx, now).await;
        let expired = ctx.reader.expired(now, SWEEP_BATCH);
        let due = ctx.reader.due_scheduled(now, SWEEP_BATCH);
        let (expired, due) = match (expired, due) {
            (Ok(e), Ok(d)) => (e, d),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("reading the expiry or schedule index: {e}");
                continue;
            }
        };
        if expired.is_empty() && due.is_empty() {
            continue;
        }
        if !expired.is_empty() {
            tracing::info!(
                count = expired.len(),
                "expiring messages past their validity"
            );
        }
        // Expiry first: a message both due and expired must not be sent.
        let events: Vec<Event> = expired
            .iter()
            .map(|&message_id| Event::new(now, Kind::Expired(MessageExpired { message_id })))
            .chain(
                due.iter()
                    .filter(|id| !expired.contains(id))
                    .map(|&message_id| {
                        Event::new(now, Kind::Released(MessageReleased { message_id }))
                    }),
            )
            .collect();
        if let Err(e) = ctx.proposer.propose(events).await {
            tracing::warn!("expiry or release not committed: {e}");
        }
    }
}

/// Closes the MO assemblies whose age stamp is older than the policy allows.
async fn close_old_mo_assemblies(ctx: &Ctx, now: u64) {
    let max_age = ctx.policy().replies.incomplete_after_ms;
    let events = match old_mo_assemblies(&ctx.reader, now, max_age) {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!("reading the MO assembly index: {e}");
            return;
        }
    };
    if events.is_empty() {
        return;
    }
    tracing::debug!(count = events.len(), "closing MO assemblies past their age");
    if let Err(e) = ctx.proposer.propose(events).await {
        tracing::warn!("closing MO assemblies not committed: {e}");
    }
}

fn old_mo_assemblies(
    reader: &ProjectionReader,
    now: u64,
    max_age_ms: u64,
) -> Result<Vec<Event>, herald_raft::projection::ProjectionError> {
    let Some(before) = now.checked_sub(max_age_ms) else {
        return Ok(Vec::new());
    };
    Ok(reader
        .mo_assemblies_to_close(before, SWEEP_BATCH)?
        .into_iter()
        .map(|closing| Event::new(now, Kind::MoAssemblyClosed(closing)))
        .collect())
}
