//! The leader's job of giving every configured link to exactly one live node.
//!
//! Every half second the leader compares the link table (from the projection) with which nodes it
//! has heard from recently. A link without a holder, or whose holder went silent for longer than
//! `node-lost-after-ms`, is assigned to the live node holding the fewest links, with the next epoch.
//! The epoch fences the old holder: its dispatches are ignored from then on. A drained leader
//! also hands leadership over here (`drain.rs` picks the successor).

use openraft::async_runtime::WatchReceiver as _;
use openraft::Instant as _;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use herald_raft::events::{event::Kind, Event, LinkAssigned};
use herald_raft::types::NodeId;
use openraft::ServerState;

use crate::context::Ctx;

pub async fn run(ctx: Ctx) {
    let lost_after = Duration::from_millis(ctx.config.placement.node_lost_after_ms);
    let mut leader_since: Option<Instant> = None;
    let mut parked_since: BTreeMap<String, Instant> = BTreeMap::new();
    let mut handed_off_at: Option<Instant> = None;
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
        match plan(&ctx, &live, may_move, &mut parked_since) {
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
        // A drained leader hands leadership over (asked again after an election timeout if the
        // successor has not taken it).
        let retry = Duration::from_millis(ctx.config.raft.election_timeout_min_ms);
        if handed_off_at.is_none_or(|at| at.elapsed() >= retry) {
            if let Ok(table) = ctx.reader.links() {
                if crate::cluster::drain::hand_off_leadership(&ctx, &metrics, &table)
                    .await
                    .is_some()
                {
                    handed_off_at = Some(Instant::now());
                }
            }
        }
    }
}

/// The voters the leader heard from within `lost_after`, and itself: the nodes that may hold links.
pub fn live_nodes(
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
    parked_since: &mut BTreeMap<String, Instant>,
) -> Result<Vec<Event>, herald_raft::projection::ProjectionError> {
    let table = ctx.reader.links()?;
    parked_since.retain(|slot, _| table.holder(slot).is_some_and(|h| h.node == PARKED));
    for h in table.links.iter().filter(|h| h.node == PARKED) {
        parked_since
            .entry(h.link.clone())
            .or_insert_with(Instant::now);
    }
    let parked_ready: BTreeSet<String> = parked_since
        .iter()
        .filter(|(_, at)| at.elapsed() >= PARK_GRACE)
        .map(|(slot, _)| slot.clone())
        .collect();
    let slots: Vec<(String, String)> = ctx
        .config
        .links
        .iter()
        .flat_map(|l| l.slots().into_iter().map(|s| (l.name.clone(), s)))
        .collect();
    let current: BTreeMap<String, (NodeId, u64)> = table
        .links
        .iter()
        .map(|h| (h.link.clone(), (h.node, h.epoch)))
        .collect();
    let eligible: BTreeSet<NodeId> = live
        .iter()
        .copied()
        .filter(|n| !table.is_drained(*n))
        .collect();
    Ok(
        assign(&slots, &current, live, &eligible, may_move, &parked_ready)
            .into_iter()
            .map(|(slot, node, epoch)| {
                Event::new(
                    ctx.clock.now_ms(),
                    Kind::LinkAssigned(LinkAssigned {
                        link: slot,
                        node,
                        epoch,
                    }),
                )
            })
            .collect(),
    )
}

/// The "node" of a slot taken from its holder and not yet given to another: nobody runs it.
pub const PARKED: NodeId = 0;

/// How long a slot stays parked before its next holder gets it: the old holder must have applied
/// the change and closed its carrier connection, so one slot is never connected twice.
const PARK_GRACE: Duration = Duration::from_secs(1);

/// The pure placement rule. `slots` are (link, slot) pairs; `current` the slot table; `live` the
/// nodes heard from; `eligible` the live nodes not drained. Returns (slot, node, epoch) moves:
/// - a slot without a holder, or whose holder is lost (once `may_move`) or drained, goes to the
///   eligible node with the fewest slots of the same link, then the fewest slots overall;
/// - otherwise, when `may_move` and one node holds two or more slots more than another (a node
///   joined or came back), one slot moves from the busiest to the idlest per round.
pub fn assign(
    slots: &[(String, String)],
    current: &BTreeMap<String, (NodeId, u64)>,
    live: &BTreeSet<NodeId>,
    eligible: &BTreeSet<NodeId>,
    may_move: bool,
    parked_ready: &BTreeSet<String>,
) -> Vec<(String, NodeId, u64)> {
    let mut holder: BTreeMap<&str, NodeId> = BTreeMap::new();
    for (_, slot) in slots {
        if let Some((node, _)) = current.get(slot) {
            holder.insert(slot, *node);
        }
    }
    let load = |holder: &BTreeMap<&str, NodeId>, node: NodeId, link: Option<&str>| {
        slots
            .iter()
            .filter(|(l, s)| holder.get(s.as_str()) == Some(&node) && link.is_none_or(|x| x == l))
            .count()
    };
    let mut moves = Vec::new();
    for (link, slot) in slots {
        let epoch = current.get(slot).map(|(_, e)| *e).unwrap_or(0) + 1;
        let needs = match holder.get(slot.as_str()) {
            None => true,
            Some(&PARKED) => parked_ready.contains(slot),
            Some(node) if !eligible.contains(node) && live.contains(node) => {
                // Drained but alive: park the slot first, so the old holder has closed its
                // connection before another node opens one.
                holder.insert(slot, PARKED);
                moves.push((slot.clone(), PARKED, epoch));
                continue;
            }
            Some(node) => may_move && !live.contains(node),
        };
        if !needs {
            continue;
        }
        let Some(node) = eligible
            .iter()
            .copied()
            .min_by_key(|n| (load(&holder, *n, Some(link)), load(&holder, *n, None), *n))
        else {
            continue;
        };
        holder.insert(slot, node);
        moves.push((slot.clone(), node, epoch));
    }
    if moves.is_empty() && may_move && eligible.len() > 1 {
        let by_load = |h: &BTreeMap<&str, NodeId>| {
            let mut v: Vec<(usize, NodeId)> =
                eligible.iter().map(|n| (load(h, *n, None), *n)).collect();
            v.sort();
            v
        };
        let loads = by_load(&holder);
        if let (Some(&(low, idle)), Some(&(high, busy))) = (loads.first(), loads.last()) {
            // Parked first, like a drain; then the least loaded node (the idle one) gets it.
            if high >= low + 2 && idle != busy {
                if let Some((_, slot)) = slots
                    .iter()
                    .rev()
                    .find(|(_, s)| holder.get(s.as_str()) == Some(&busy))
                {
                    let epoch = current.get(slot).map(|(_, e)| *e).unwrap_or(0) + 1;
                    moves.push((slot.clone(), PARKED, epoch));
                }
            }
        }
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(spec: &[(&str, u32)]) -> Vec<(String, String)> {
        spec.iter()
            .flat_map(|(link, n)| {
                (0..*n).map(move |i| {
                    let slot = if *n == 1 {
                        link.to_string()
                    } else {
                        format!("{link}#{i}")
                    };
                    (link.to_string(), slot)
                })
            })
            .collect()
    }

    fn none() -> BTreeSet<String> {
        BTreeSet::new()
    }

    fn nodes(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    fn apply(current: &mut BTreeMap<String, (NodeId, u64)>, moves: &[(String, NodeId, u64)]) {
        for (slot, node, epoch) in moves {
            current.insert(slot.clone(), (*node, *epoch));
        }
    }

    #[test]
    fn connections_of_one_link_spread_over_nodes() {
        let s = slots(&[("a", 3), ("b", 1)]);
        let mut current = BTreeMap::new();
        let moves = assign(
            &s,
            &current,
            &nodes(&[1, 2, 3]),
            &nodes(&[1, 2, 3]),
            false,
            &none(),
        );
        apply(&mut current, &moves);
        let a_nodes: BTreeSet<NodeId> = ["a#0", "a#1", "a#2"]
            .iter()
            .map(|k| current[*k].0)
            .collect();
        assert_eq!(a_nodes.len(), 3, "{current:?}");
    }

    #[test]
    fn a_drained_node_loses_its_slots_at_once_and_gets_none() {
        let s = slots(&[("a", 2), ("b", 1), ("c", 1)]);
        let mut current = BTreeMap::new();
        let all = nodes(&[1, 2, 3, 4]);
        let first = assign(&s, &current, &all, &all, false, &none());
        apply(&mut current, &first);
        let on_4: Vec<String> = current
            .iter()
            .filter(|(_, (n, _))| *n == 4)
            .map(|(k, _)| k.clone())
            .collect();
        assert!(!on_4.is_empty());
        let eligible = nodes(&[1, 2, 3]);
        let moves = assign(&s, &current, &all, &eligible, false, &none());
        apply(&mut current, &moves);
        for slot in &on_4 {
            assert_eq!(
                current[slot],
                (PARKED, 2),
                "parked first, with the next epoch"
            );
        }
        // Not before the grace passed; then to an eligible node with the next epoch again.
        assert!(assign(&s, &current, &all, &eligible, false, &none()).is_empty());
        let ready: BTreeSet<String> = on_4.iter().cloned().collect();
        let moves = assign(&s, &current, &all, &eligible, false, &ready);
        apply(&mut current, &moves);
        assert!(current.values().all(|(n, _)| *n != 4 && *n != PARKED));
        for slot in &on_4 {
            assert_eq!(current[slot].1, 3);
        }
    }

    #[test]
    fn a_lost_node_loses_its_slots_only_once_moving_is_allowed() {
        let s = slots(&[("a", 1)]);
        let mut current = BTreeMap::from([("a".to_string(), (3, 4))]);
        let live = nodes(&[1, 2]);
        assert!(assign(&s, &current, &live, &live, false, &none()).is_empty());
        let moves = assign(&s, &current, &live, &live, true, &none());
        assert_eq!(moves, [("a".to_string(), 1, 5)]);
        apply(&mut current, &moves);
    }

    #[test]
    fn a_returning_node_gets_slots_back_one_at_a_time() {
        let s = slots(&[("a", 1), ("b", 1), ("c", 1), ("d", 1)]);
        let mut current: BTreeMap<String, (NodeId, u64)> = [("a", 1), ("b", 1), ("c", 2), ("d", 2)]
            .iter()
            .map(|(k, n)| (k.to_string(), (*n, 1)))
            .collect();
        let all = nodes(&[1, 2, 3]);
        let moves = assign(&s, &current, &all, &all, true, &none());
        assert_eq!(moves.len(), 1);
        assert_eq!(moves[0].1, PARKED);
        apply(&mut current, &moves);
        let ready = BTreeSet::from([moves[0].0.clone()]);
        let moves = assign(&s, &current, &all, &all, true, &ready);
        assert_eq!(moves.len(), 1);
        assert_eq!(moves[0].1, 3, "the idle node gets it");
        apply(&mut current, &moves);
        // Balanced within one: no more moves.
        assert!(assign(&s, &current, &all, &all, true, &none()).is_empty());
    }
}
