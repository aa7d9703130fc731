//! The leader's sweep of messages whose validity ran out: each becomes EXPIRED through a
//! `MessageExpired` event, whatever state it was stuck in (queued on a link nobody can run, sent
//! but never reported). This is what makes every acknowledged message reach a terminal state.

use std::time::Duration;

use herald_raft::events::{event::Kind, now_ms, Event, MessageExpired};
use openraft::async_runtime::WatchReceiver as _;
use openraft::ServerState;

use crate::context::Ctx;

/// Most messages expired by one proposal.
const SWEEP_BATCH: usize = 1000;

pub async fn run(ctx: Ctx) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if ctx.raft.metrics().borrow_watched().state != ServerState::Leader {
            continue;
        }
        let now = now_ms();
        let ids = match ctx.reader.expired(now, SWEEP_BATCH) {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!("reading the expiry index: {e}");
                continue;
            }
        };
        if ids.is_empty() {
            continue;
        }
        tracing::info!(count = ids.len(), "expiring messages past their validity");
        let events = ids
            .into_iter()
            .map(|message_id| Event::new(now, Kind::Expired(MessageExpired { message_id })))
            .collect();
        if let Err(e) = ctx.proposer.propose(events).await {
            tracing::warn!("expiry not committed: {e}");
        }
    }
}
