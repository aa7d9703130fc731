//! The leader's job of giving every configured link to exactly one live node.
//!
//! Every half second the leader compares the link table (from the projection) with which nodes it
//! has heard from recently. A link without a holder, or whose holder went silent for longer than
//! `node-lost-after-ms`, is assigned to the live node holding the fewest links, with the next epoch.
//! The epoch fences the old holder: its dispatches are ignored from then on.

use openraft::async_runtime::WatchReceiver as _;
use openraft::Instant as _;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use herald_raft::events::{event::Kind, now_ms, Event, LinkAssigned};
use herald_raft::types::NodeId;
use openraft::ServerState;

use crate::context::Ctx;

pub async fn run(ctx: Ctx) {
    let lost_after = Duration::from_millis(ctx.config.placement.node_lost_after_ms);
    let mut leader_since: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let metrics = ctx.raft.metrics().borrow_watched().clone();
        if metrics.state != ServerState::Leader {
            leader_since = None;
            continue;
        }
        let since = *leader_since.get_or_insert_with(Instant::now);
        let live = live_nodes(&ctx, &metrics, lost_after);
        // A new leader has not heard every follower yet: give them one loss period before moving
        // links away from them.
        let may_move = since.elapsed() >= lost_after;
        match plan(&ctx, &live, may_move) {
            Ok(events) if !events.is_empty() => {
                for e in &events {
                    if let Some(Kind::LinkAssigned(l)) = &e.kind {
                        tracing::info!(link = %l.link, node = l.node, epoch = l.epoch, "assigning link");
                    }
                }
                if let Err(e) = ctx.proposer.propose(events).await {
                    tracing::warn!("link assignment not committed: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("reading the link table: {e}"),
        }
    }
}

fn live_nodes(
    ctx: &Ctx,
    metrics: &herald_raft::types::RaftMetrics,
    lost_after: Duration,
) -> BTreeSet<NodeId> {
    let mut live = BTreeSet::from([ctx.id()]);
    let voters: BTreeSet<NodeId> = metrics.membership_config.membership().voter_ids().collect();
    if let Some(heartbeats) = &metrics.heartbeat {
        for (id, last) in heartbeats {
            if let Some(at) = last {
                if at.elapsed() < lost_after && voters.contains(id) {
                    live.insert(*id);
                }
            }
        }
    }
    live
}

fn plan(
    ctx: &Ctx,
    live: &BTreeSet<NodeId>,
    may_move: bool,
) -> Result<Vec<Event>, herald_raft::projection::ProjectionError> {
    let table = ctx.reader.links()?;
    let mut load: BTreeMap<NodeId, usize> = live.iter().map(|n| (*n, 0)).collect();
    for h in &table.links {
        if let Some(count) = load.get_mut(&h.node) {
            *count += 1;
        }
    }
    let mut events = Vec::new();
    for link in &ctx.config.links {
        let holder = table.holder(&link.name);
        let needs_holder = match holder {
            None => true,
            Some(h) => may_move && !live.contains(&h.node),
        };
        if !needs_holder {
            continue;
        }
        let Some((&node, _)) = load.iter().min_by_key(|(id, count)| (**count, **id)) else {
            continue;
        };
        *load.entry(node).or_default() += 1;
        events.push(Event::new(
            now_ms(),
            Kind::LinkAssigned(LinkAssigned {
                link: link.name.clone(),
                node,
                epoch: holder.map(|h| h.epoch).unwrap_or(0) + 1,
            }),
        ));
    }
    Ok(events)
}
