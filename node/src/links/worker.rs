//! Runs the carrier links this node holds: takes queued messages off the replicated queue, records
//! each dispatch in the log *before* sending, sends through the protocol client within the link's
//! window and rate, and records every carrier answer and delivery report as events.
//!
//! Crash points: a message is on the wire only after its `MessageDispatched` committed, so a node
//! that dies leaves it in the link's in-flight set; the next holder (or this node after a restart)
//! sends every in-flight message again. Segments already acknowledged by the carrier are skipped,
//! so duplicates are bounded by the window of segments awaiting an answer when the node died.

use crate::metrics::link::LinkMetrics;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_protocols::client::{
    ClientEvent, LinkSettings, OutboundSegment, SendError, SubmitOutcome,
};
use herald_protocols::link::{LinkClient, Protocol};
use herald_protocols::trace::{SubmitTrace, Submitted};
use herald_protocols::MoPart;
use herald_raft::events::{
    event::Kind, CarrierAccepted, CarrierRejected, CarrierUnanswered, DeliveryReported, Event,
    MessageDispatched, MessageExpired, MoConcat, MoReceived, SubmitPdus,
};
use herald_raft::records::{queue_name, slot_link, LinkTable, MessageRecord, SegmentStatus};
use herald_raft::types::EventOutcome;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::LinkConfig;
use crate::context::Ctx;
use crate::links::adaptive_rate::AdaptiveRate;
use crate::links::class_pick::ClassPicker;
use crate::links::queue_share::{left_waiting, QueueShare};
use crate::policy::DispatchPolicy;

/// How long an acknowledgement or report is retried before it is given up (and the message is
/// left to be resent by the next holder).
const PERSIST_FOR: Duration = Duration::from_secs(120);

/// Starts and stops link workers as the link table assigns links to and away from this node.
pub async fn run_manager(ctx: Ctx, shutdown: CancellationToken) {
    let mut running: HashMap<String, (u64, CancellationToken, tokio::task::JoinHandle<()>)> =
        HashMap::new();
    let mut applied = ctx.applied.clone();
    loop {
        let table = match ctx.reader.links() {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("reading the link table: {e}");
                Default::default()
            }
        };
        // Stop what is no longer ours (or ours under an older epoch).
        running.retain(|name, (epoch, stop, _)| {
            let keep = table
                .holder(name)
                .is_some_and(|h| h.node == ctx.id() && h.epoch == *epoch);
            if !keep {
                tracing::info!(link = %name, epoch = *epoch, "stopping link: assigned elsewhere");
                stop.cancel();
                ctx.set_link_connected(name, false);
            }
            keep
        });
        for holder in &table.links {
            if holder.node != ctx.id() || running.contains_key(&holder.link) {
                continue;
            }
            let Some(link) = ctx.config.link(slot_link(&holder.link)).cloned() else {
                tracing::warn!(slot = %holder.link, "assigned a link this node has no configuration for");
                continue;
            };
            tracing::info!(slot = %holder.link, epoch = holder.epoch, "starting link");
            let stop = shutdown.child_token();
            let task = tokio::spawn(run_link(
                ctx.clone(),
                link,
                holder.link.clone(),
                holder.epoch,
                stop.clone(),
            ));
            running.insert(holder.link.clone(), (holder.epoch, stop, task));
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = applied.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    for (_, (_, stop, task)) in running {
        stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
    }
}

fn settings(link: &LinkConfig) -> LinkSettings {
    LinkSettings {
        name: link.name.clone(),
        addr: link.address.clone(),
        account: link.account.clone(),
        secret: link.secret.clone(),
        service_id: link.service_id.clone(),
        src_id: link.src_id.clone(),
        window: link.max_window,
        heartbeat_interval: Duration::from_secs(10),
        response_timeout: Duration::from_secs(10),
        reconnect_min: Duration::from_millis(200),
        reconnect_max: Duration::from_secs(10),
        options: link.options.clone(),
    }
}

/// What one link worker (one connection slot) shares with its send tasks.
pub(crate) struct LinkRun {
    pub(crate) ctx: Ctx,
    pub(crate) link: LinkConfig,
    /// The slot this worker holds: the link's name, or `name#n`.
    pub(crate) slot: String,
    pub(crate) epoch: u64,
    pub(crate) protocol: Protocol,
    pub(crate) client: LinkClient,
    pub(crate) rate: AdaptiveRate,
    pub(crate) in_progress: Mutex<HashSet<u64>>,
    /// Since when the connection has been down (None while connected), and why.
    pub(crate) down_since: Mutex<Option<Instant>>,
    pub(crate) last_down_reason: Mutex<String>,
    /// When in-flight messages were last given back to their routes (at most once a second).
    pub(crate) last_give_back: Mutex<Option<Instant>>,
    pub(crate) picker: Mutex<ClassPicker>,
    /// This slot's share of the link's queues (none for a link of one connection).
    pub(crate) share: Option<QueueShare>,
    pub(crate) stop: CancellationToken,
    /// This link's metric handles, resolved once.
    pub(crate) metrics: LinkMetrics,
}

impl LinkRun {
    /// The slot as events record it: empty for a link's only connection.
    pub(crate) fn slot_field(&self) -> String {
        if self.slot == self.link.name {
            String::new()
        } else {
            self.slot.clone()
        }
    }

    /// How long the connection has been down (zero while it is up).
    pub(crate) fn down_for(&self) -> Duration {
        self.down_since
            .lock()
            .ok()
            .and_then(|d| *d)
            .map(|at| at.elapsed())
            .unwrap_or_default()
    }
}

async fn run_link(ctx: Ctx, link: LinkConfig, slot: String, epoch: u64, stop: CancellationToken) {
    let protocol: Protocol = match link.protocol.parse() {
        Ok(p) => p,
        Err(e) => {
            // Config validation refuses this at start-up; a node never runs such a link.
            tracing::error!(link = %link.name, "{e}");
            return;
        }
    };
    let (client, events) = LinkClient::start(protocol, settings(&link));
    let share = QueueShare::of(&slot, link.connections);
    let metrics = LinkMetrics::new(&ctx.metrics, &link.name);
    let run = Arc::new(LinkRun {
        metrics,
        ctx: ctx.clone(),
        rate: AdaptiveRate::new(link.rate_per_slot()),
        link,
        slot: slot.clone(),
        epoch,
        protocol,
        client: client.clone(),
        in_progress: Mutex::new(HashSet::new()),
        down_since: Mutex::new(Some(Instant::now())),
        last_down_reason: Mutex::new("not connected yet".into()),
        last_give_back: Mutex::new(None),
        picker: Mutex::new(ClassPicker::default()),
        share,
        stop: stop.clone(),
    });
    let events_task = tokio::spawn(handle_client_events(run.clone(), events));
    let status_task = tokio::spawn(crate::links::status::run(run.clone()));
    dispatch_loop(run.clone()).await;
    client.shutdown().await;
    events_task.abort();
    status_task.abort();
    ctx.set_link_connected(&slot, false);
}

/// How many messages one slot works on at once: the carrier's window (which the session enforces
/// on the wire) plus up to 50 ms of the slot's rate, at most three windows more.
///
/// Why more than the window: a message's dispatch must be committed before it is sent, and that
/// commit takes milliseconds under load. Had the window bounded dispatch and carrier together, a
/// link could move at most a window per (commit + carrier answer) — measured: one SMPP link at
/// 2,700/s with the cluster far from busy. Why not much more: what is dispatched is no longer
/// in its queue, so an urgent message submitted later waits behind it; 50 ms of the rate keeps
/// that wait short on a slow carrier link (5 more messages at 100/s).
fn dispatch_depth(link: &LinkConfig) -> usize {
    let window = link.max_window.max(1);
    let ahead = (link.rate_per_slot() as usize / 20).min(3 * window);
    window + ahead
}

async fn dispatch_loop(run: Arc<LinkRun>) {
    let ctx = &run.ctx;
    let depth = Arc::new(Semaphore::new(dispatch_depth(&run.link)));
    // Messages a previous holder of this slot (or this node before a restart) dispatched and the
    // carrier never acknowledged: they go first.
    let mut resend: Vec<u64> = inflight_of_slot(&run);
    if !resend.is_empty() {
        tracing::info!(slot = %run.slot, count = resend.len(), "resending in-flight messages");
    }
    let mut applied = ctx.applied.clone();
    let mut stuck_scan = StuckScan::default();
    let mut was_connected = true;
    while !run.stop.is_cancelled() {
        resend.extend(stuck_scan.poll(&run));
        let connected = run.client.is_connected();
        if !connected {
            crate::links::status::give_back_if_down(&run, &mut resend).await;
        } else if !was_connected {
            // Sends given up while the link was down (see `send_segment`) left their messages
            // in flight with nobody working on them: offer every such message again at once.
            resend = inflight_of_slot(&run);
        }
        was_connected = connected;
        let free = depth.available_permits();
        if free == 0 || !connected {
            tokio::select! {
                _ = run.stop.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(20)) => continue,
            }
        }
        let candidates = next_candidates(&run, &mut resend, free);
        if candidates.is_empty() {
            tokio::select! {
                _ = run.stop.cancelled() => break,
                _ = applied.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            continue;
        }
        let now = run.ctx.clock.now_ms();
        let mut events = Vec::new();
        let mut planned = Vec::new();
        for msg in candidates {
            if msg.expires_at_ms != 0 && msg.expires_at_ms <= now {
                events.push(Event::new(
                    now,
                    Kind::Expired(MessageExpired { message_id: msg.id }),
                ));
                planned.push(None);
                continue;
            }
            let parts = run.client.split(&msg.text).len() as u32;
            events.push(Event::new(
                now,
                Kind::Dispatched(MessageDispatched {
                    message_id: msg.id,
                    link: run.link.name.clone(),
                    node: ctx.id(),
                    epoch: run.epoch,
                    attempt: msg.attempts + 1,
                    segments: parts * msg.recipients.len() as u32,
                    slot: run.slot_field(),
                }),
            ));
            planned.push(Some(msg));
        }
        let ids: Vec<u64> = planned.iter().flatten().map(|m| m.id).collect();
        // Each message holds a slot of the dispatch depth from its dispatch proposal until the
        // carrier answers, so proposals of successive rounds overlap (one commit per round would
        // otherwise cap a link at a depth per commit latency) while the slots still bound the
        // work in hand.
        let Ok(permits) = depth.clone().acquire_many_owned(ids.len() as u32).await else {
            break;
        };
        if let Ok(mut set) = run.in_progress.lock() {
            set.extend(ids.iter().copied());
        }
        tokio::spawn(dispatch_round(run.clone(), events, planned, ids, permits));
    }
}

/// Commits one round's dispatches, then sends every message whose dispatch was applied.
async fn dispatch_round(
    run: Arc<LinkRun>,
    events: Vec<Event>,
    planned: Vec<Option<MessageRecord>>,
    ids: Vec<u64>,
    mut permits: tokio::sync::OwnedSemaphorePermit,
) {
    let outcomes = match run.ctx.proposer.propose_gathered(events).await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(link = %run.link.name, "dispatch not committed: {e}");
            forget(&run, &ids);
            return;
        }
    };
    for (msg, outcome) in planned.into_iter().zip(outcomes) {
        let Some(msg) = msg else { continue };
        let Some(permit) = permits.split(1) else {
            forget(&run, &[msg.id]);
            continue;
        };
        match outcome {
            EventOutcome::Applied => {
                let run = run.clone();
                tokio::spawn(async move {
                    let id = msg.id;
                    tracing::debug!(
                        node = run.ctx.id(),
                        link = %run.link.name,
                        slot = %run.slot,
                        message_id = id,
                        attempt = msg.attempts,
                        "dispatched: sending to the carrier"
                    );
                    let recording = send_message(&run, msg).await;
                    // The depth is about the carrier: free the slot as soon as the carrier has
                    // answered, and let the acknowledgements commit in the background. The
                    // message stays ours (not dispatched again) until they have.
                    drop(permit);
                    for task in recording {
                        let _ = task.await;
                    }
                    forget(&run, &[id]);
                });
            }
            other => {
                tracing::debug!(node = run.ctx.id(), link = %run.link.name, message_id = msg.id, "dispatch not applied: {other:?}");
                forget(&run, &[msg.id]);
            }
        }
    }
}

/// Finds in-flight messages nobody on this node is working on any more — a carrier acknowledgement
/// whose recording failed leaves its message in flight — so they are sent again instead of waiting
/// for their validity to run out. A message counts as stuck only when two scans
/// [`STUCK_SCAN_EVERY`] apart both find it so, which rules out one whose last event this node has
/// simply not applied yet.
#[derive(Default)]
struct StuckScan {
    last: Option<std::time::Instant>,
    suspects: HashSet<u64>,
}

const STUCK_SCAN_EVERY: Duration = Duration::from_secs(30);

impl StuckScan {
    fn poll(&mut self, run: &LinkRun) -> Vec<u64> {
        let now = std::time::Instant::now();
        match self.last {
            Some(at) if now.duration_since(at) < STUCK_SCAN_EVERY => return Vec::new(),
            None => {
                // The worker's start already resends every in-flight message.
                self.last = Some(now);
                return Vec::new();
            }
            Some(_) => {}
        }
        self.last = Some(now);
        let busy = run
            .in_progress
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        let idle: HashSet<u64> = inflight_of_slot(run)
            .into_iter()
            .filter(|id| !busy.contains(id))
            .collect();
        let stuck: Vec<u64> = idle.intersection(&self.suspects).copied().collect();
        if !stuck.is_empty() {
            tracing::warn!(link = %run.link.name, count = stuck.len(), "resending messages stuck in flight");
        }
        self.suspects = idle.difference(&self.suspects).copied().collect();
        stuck
    }
}

fn forget(run: &LinkRun, ids: &[u64]) {
    if let Ok(mut set) = run.in_progress.lock() {
        for id in ids {
            set.remove(id);
        }
    }
}

/// The in-flight messages of `link` that this worker's slot dispatched.
pub(crate) fn inflight_of_slot(run: &LinkRun) -> Vec<u64> {
    let mine = run.slot_field();
    run.ctx
        .reader
        .inflight_slots(&run.link.name)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, slot)| *slot == mine)
        .map(|(id, _)| id)
        .collect()
}

/// The queues this link takes messages from now: its own (messages that named it, retries and
/// fan-out copies sent its way), and the queue of every route where it is the primary, where every
/// link ahead of it is down or congested, or where the route's queue has grown past what the links
/// ahead of it are given to drain (`congested-queue` × its position).
fn served_queues(run: &LinkRun, policy: &DispatchPolicy, table: &LinkTable) -> Vec<String> {
    let me = run.link.name.as_str();
    let mut queues = vec![queue_name("", me)];
    for route in &policy.routes {
        let Some(position) = route.links.iter().position(|l| l == me) else {
            continue;
        };
        let queue = queue_name(&route.name, "");
        let ahead_unusable = route.links[..position]
            .iter()
            .all(|l| !table.link_up(l) || table.link_congested(l));
        let overflowing = position > 0
            && route.congested_queue > 0
            && run.ctx.reader.queue_len(&queue).unwrap_or(0)
                > route.congested_queue.saturating_mul(position as u64);
        if ahead_unusable || overflowing {
            queues.push(queue);
        }
    }
    queues
}

/// Where a message refused with a retryable code is retried: the next link of its route that is
/// up and not congested (after the refusing one, wrapping around), so one gateway's trouble does
/// not hold the message. None keeps it in its route's queue. A message whose recipient already
/// has parts at the carrier stays: parts of one long text must travel the same way.
fn retry_link(run: &LinkRun, msg: &MessageRecord, segment_index: u32) -> Option<String> {
    if msg.route.is_empty() || msg.copy_of != 0 {
        return None;
    }
    let parts = run.client.split(&msg.text).len().max(1);
    if !(segment_index as usize).is_multiple_of(parts) {
        return None;
    }
    let policy = run.ctx.policy();
    let route = policy.routes.iter().find(|r| r.name == msg.route)?;
    let me = route.links.iter().position(|l| *l == run.link.name)?;
    let table = run.ctx.reader.links().ok()?;
    (1..route.links.len())
        .map(|step| &route.links[(me + step) % route.links.len()])
        .find(|l| table.link_up(l) && !table.link_congested(l))
        .cloned()
}

/// Up to `limit` messages to dispatch now: leftovers to resend first, then the waiting messages
/// of the queues this link serves, alarms first and the other classes by weight; a class in its
/// quiet hours waits.
/// Keeps, of `ids` (oldest first), this slot's own messages and then other slots' messages that
/// have waited past the grace, at most `room` of them, oldest first.
fn keep_share(run: &LinkRun, share: QueueShare, ids: &mut Vec<u64>, room: usize, now: u64) {
    let (mut kept, others): (Vec<u64>, Vec<u64>) = ids.iter().partition(|id| share.owns(**id));
    kept.truncate(room);
    for id in others {
        if kept.len() >= room {
            break;
        }
        let waited = run
            .ctx
            .reader
            .message(id)
            .ok()
            .flatten()
            .is_some_and(|m| left_waiting(m.submitted_at_ms.max(m.not_before_ms), now));
        // Ids grow with submission time: once one has not waited long enough, nor have the
        // ones after it, and reading their records would be wasted.
        if !waited {
            break;
        }
        kept.push(id);
    }
    kept.sort_unstable();
    *ids = kept;
}

fn next_candidates(run: &LinkRun, resend: &mut Vec<u64>, limit: usize) -> Vec<MessageRecord> {
    let busy = run
        .in_progress
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    let mut ids: Vec<u64> = Vec::new();
    while ids.len() < limit {
        match resend.pop() {
            Some(id) if !busy.contains(&id) => ids.push(id),
            Some(_) => {}
            None => break,
        }
    }
    if ids.len() < limit {
        let policy = run.ctx.policy();
        let table = run.ctx.reader.links().unwrap_or_default();
        // Every applied entry wakes every link, and most entries queue nothing for this one:
        // a queue's length is one counter read, its four priority classes four scans.
        let queues: Vec<String> = served_queues(run, &policy, &table)
            .into_iter()
            .filter(|queue| run.ctx.reader.queue_len(queue).map_or(true, |len| len > 0))
            .collect();
        let now = run.ctx.clock.now_ms();
        let room = limit - ids.len();
        let mut waiting: [Vec<u64>; 4] = Default::default();
        for (priority, class_ids) in waiting.iter_mut().enumerate() {
            let priority = priority as u32;
            if policy.quiet_until(priority, now).is_some() {
                continue;
            }
            // Alarms are not shared out between the link's slots (see `queue_share`).
            let share = run.share.filter(|_| priority > 0);
            let to_read = share.map_or(room + busy.len(), |s| s.ids_to_read(room + busy.len()));
            for queue in &queues {
                let queued = run
                    .ctx
                    .reader
                    .queued_in_class(queue, priority, to_read)
                    .unwrap_or_default();
                class_ids.extend(
                    queued
                        .into_iter()
                        .filter(|id| !busy.contains(id) && !ids.contains(id)),
                );
            }
            // Oldest first across the queues of one class.
            class_ids.sort_unstable();
            class_ids.dedup();
            if let Some(share) = share {
                keep_share(run, share, class_ids, room, now);
            }
            class_ids.truncate(room);
        }
        let weights = [
            0,
            policy.classes.notification.weight,
            policy.classes.customer_service.weight,
            policy.classes.bulk.weight,
        ];
        let picked = match run.picker.lock() {
            Ok(mut picker) => picker.pick(waiting, weights, room),
            Err(_) => Vec::new(),
        };
        ids.extend(picked);
    }
    ids.into_iter()
        .filter_map(|id| run.ctx.reader.message(id).ok().flatten())
        .filter(|m| !m.state().is_terminal())
        .collect()
}

/// Sends every segment of `msg` the carrier has not acknowledged yet.
/// Returns the tasks still recording the carrier's acknowledgements.
async fn send_message(run: &Arc<LinkRun>, msg: MessageRecord) -> Vec<tokio::task::JoinHandle<()>> {
    let mut recording = Vec::new();
    let parts = run.client.split(&msg.text);
    for (r, dest) in msg.recipients.iter().enumerate() {
        for (p, part) in parts.iter().enumerate() {
            let index = r * parts.len() + p;
            let done = msg
                .segments
                .get(index)
                .is_some_and(|s| s.status() != SegmentStatus::Pending);
            if done {
                continue;
            }
            let segment = OutboundSegment {
                dest: dest.clone(),
                segment: part.clone(),
                registered_delivery: true,
            };
            if !send_segment(run, &msg, index as u32, segment, &mut recording).await {
                return recording;
            }
        }
    }
    recording
}

/// Returns false when the rest of the message must not be sent (rejected, the link stopped, or
/// the link is down long enough that the message's route should carry it elsewhere).
async fn send_segment(
    run: &Arc<LinkRun>,
    msg: &MessageRecord,
    index: u32,
    segment: OutboundSegment,
    recording: &mut Vec<tokio::task::JoinHandle<()>>,
) -> bool {
    let link = &run.link.name;
    let mut last_failure = None;
    loop {
        if run.stop.is_cancelled() {
            return false;
        }
        run.rate.until_ready().await;
        let sent = Instant::now();
        run.metrics.submits.inc();
        run.metrics.window_in_use.inc();
        let Submitted { trace, result } = run.client.submit_traced(segment.clone()).await;
        run.metrics.window_in_use.dec();
        if result.is_ok() {
            run.metrics.submit_rtt.observe(sent.elapsed().as_secs_f64());
        }
        // The answer's (or the failure's) time: the event's, which the send time is counted back from.
        let answered_at = run.ctx.clock.now_ms();
        let pdus = Some(submit_pdus(&trace, answered_at));
        match result {
            Ok(SubmitOutcome::Accepted { carrier_id }) => {
                let event = Event::new(
                    answered_at,
                    Kind::CarrierAccepted(CarrierAccepted {
                        message_id: msg.id,
                        link: link.clone(),
                        segment: index,
                        carrier_id,
                        pdus,
                        slot: run.slot_field(),
                        node: run.ctx.id(),
                    }),
                );
                let (run, id) = (run.clone(), msg.id);
                recording.push(tokio::spawn(async move {
                    if let Err(e) = run
                        .ctx
                        .proposer
                        .propose_persistently(vec![event], PERSIST_FOR)
                        .await
                    {
                        // The message stays in flight and is sent again by the link's next
                        // holder: a duplicate, never a loss.
                        tracing::error!(node = run.ctx.id(), link = %run.link.name, message_id = id, "carrier acknowledgement not recorded: {e}");
                    }
                }));
                return true;
            }
            Ok(SubmitOutcome::Rejected {
                code,
                retryable,
                description,
            }) => {
                let flow_control = run.protocol.is_flow_control(code);
                if flow_control {
                    run.rate.throttled();
                    run.metrics.flow_control.inc();
                } else {
                    run.metrics.refused(&run.protocol.to_string(), code);
                }
                let retry_at_ms = retry_decision(run, msg, code, retryable, flow_control);
                let retry_link = if retry_at_ms > 0 && !flow_control {
                    retry_link(run, msg, index).unwrap_or_default()
                } else {
                    String::new()
                };
                let event = Event::new(
                    answered_at,
                    Kind::CarrierRejected(CarrierRejected {
                        message_id: msg.id,
                        link: link.clone(),
                        segment: index,
                        code,
                        retryable,
                        description,
                        retry_at_ms,
                        policy_decided: true,
                        retry_link,
                        pdus,
                        slot: run.slot_field(),
                        node: run.ctx.id(),
                    }),
                );
                if let Err(e) = run
                    .ctx
                    .proposer
                    .propose_persistently(vec![event], PERSIST_FOR)
                    .await
                {
                    tracing::error!(node = run.ctx.id(), %link, message_id = msg.id, "carrier rejection not recorded: {e}");
                }
                return false;
            }
            Err(SendError::Closed) => return false,
            Err(e) => {
                // A link down for long fails every try the same way: its first failure says
                // it; every PDU that was on the wire is worth its own line.
                if e != SendError::NotConnected || last_failure != Some(e) {
                    record_unanswered(run, answered_at, msg.id, index, pdus, e);
                }
                last_failure = Some(e);
                // Transport trouble: the segment may or may not have reached the carrier. Send it
                // again once the link is back (a possible duplicate, bounded by the window) —
                // unless the link stays down and the message's route has other links: then the
                // worker gives it back to the route (see `link_status::give_back_if_down`).
                let requeue_after =
                    Duration::from_millis(run.ctx.policy().failover.requeue_after_ms);
                if !msg.route.is_empty() && run.down_for() >= requeue_after {
                    return false;
                }
                tracing::debug!(node = run.ctx.id(), %link, message_id = msg.id, "segment not acknowledged: {e}; retrying");
                tokio::select! {
                    _ = run.stop.cancelled() => return false,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
}

/// The trace facts of one submit, as an event stamped `at_ms` carries them (the usual response's
/// name and the send time are implied, to keep every message's events small).
fn submit_pdus(trace: &SubmitTrace, at_ms: u64) -> SubmitPdus {
    let own = trace.response == SubmitPdus::own_response(trace.command);
    SubmitPdus {
        command: trace.command.to_string(),
        sequence: trace.sequence,
        sent_ms_before: if trace.sent_at_ms == 0 {
            0
        } else {
            u32::try_from(at_ms.saturating_sub(trace.sent_at_ms)).unwrap_or(u32::MAX)
        },
        response: if own {
            String::new()
        } else {
            trace.response.clone()
        },
        status: trace.status,
    }
}

/// Records, for the protocol trace, a submit nobody answered. Best effort and in the background:
/// it changes no state (the segment is sent again), so the send loop does not wait for it, and
/// losing it loses only a trace line.
fn record_unanswered(
    run: &Arc<LinkRun>,
    at_ms: u64,
    message_id: u64,
    segment: u32,
    pdus: Option<SubmitPdus>,
    failure: SendError,
) {
    let event = Event::new(
        at_ms,
        Kind::CarrierUnanswered(CarrierUnanswered {
            message_id,
            link: run.link.name.clone(),
            slot: run.slot_field(),
            node: run.ctx.id(),
            segment,
            pdus,
            failure: failure.to_string(),
        }),
    );
    let run = run.clone();
    tokio::spawn(async move {
        if let Err(e) = run.ctx.proposer.propose(vec![event]).await {
            tracing::debug!(node = run.ctx.id(), link = %run.link.name, message_id, "unanswered submit not traced: {e}");
        }
    });
}

/// When the refused message is offered again (ms since the epoch), or 0 when it fails now: the
/// class's retry policy decides, and the decision goes into the event. Flow control is the carrier
/// asking for less traffic, not a verdict on the message: it is retried after a short pause
/// without counting against the class's attempts (the validity still bounds it).
fn retry_decision(
    run: &LinkRun,
    msg: &MessageRecord,
    code: u32,
    protocol_says_retryable: bool,
    flow_control: bool,
) -> u64 {
    let policy = run.ctx.policy();
    let now = run.ctx.clock.now_ms();
    if flow_control {
        return now + 200;
    }
    let class = policy.classes.of(msg.priority);
    let retryable = policy.retryable(msg.priority, code, protocol_says_retryable);
    // `msg` is the record as it was before this attempt's dispatch.
    let this_attempt = msg.attempts + 1;
    if !retryable || this_attempt >= class.max_attempts {
        return 0;
    }
    now + policy.backoff_ms(msg.priority, this_attempt).max(1)
}

async fn handle_client_events(
    run: Arc<LinkRun>,
    mut events: tokio::sync::mpsc::Receiver<ClientEvent>,
) {
    let link = run.link.name.clone();
    let reports_in_flight = Arc::new(Semaphore::new(1024));
    let mut connected_before = false;
    while let Some(event) = events.recv().await {
        match event {
            ClientEvent::Connected => {
                if connected_before {
                    run.metrics.reconnects.inc();
                }
                connected_before = true;
                tracing::info!(slot = %run.slot, "link connected");
                run.ctx.set_link_connected(&run.slot, true);
                if let Ok(mut d) = run.down_since.lock() {
                    *d = None;
                }
            }
            ClientEvent::Disconnected { reason } => {
                tracing::warn!(slot = %run.slot, %reason, "link down");
                run.ctx.set_link_connected(&run.slot, false);
                if let Ok(mut d) = run.down_since.lock() {
                    d.get_or_insert_with(Instant::now);
                }
                if let Ok(mut r) = run.last_down_reason.lock() {
                    *r = reason;
                }
            }
            ClientEvent::Report(mut report) => {
                let ack = std::mem::take(&mut report.ack);
                run.metrics.report(report.delivered);
                let event = Event::new(
                    run.ctx.clock.now_ms(),
                    Kind::DeliveryReported(DeliveryReported {
                        link: link.clone(),
                        carrier_id: report.carrier_id,
                        dest: report.dest,
                        status: report.stat,
                        delivered: report.delivered,
                        carrier_time: report.done_time,
                        command: report.pdu.command.to_string(),
                        sequence: report.pdu.sequence,
                        error_code: report.error_code,
                        carrier_submit_time: report.submit_time,
                        slot: run.slot_field(),
                    }),
                );
                let Ok(permit) = reports_in_flight.clone().acquire_owned().await else {
                    return;
                };
                tokio::spawn(record_then_ack(
                    run.clone(),
                    event,
                    ack,
                    permit,
                    "delivery report",
                ));
            }
            ClientEvent::Mo(mut part) => {
                let ack = std::mem::take(&mut part.ack);
                run.metrics.replies_received.inc();
                let event = Event::new(
                    run.ctx.clock.now_ms(),
                    Kind::MoReceived(mo_received(&run, part)),
                );
                let Ok(permit) = reports_in_flight.clone().acquire_owned().await else {
                    return;
                };
                tokio::spawn(record_then_ack(run.clone(), event, ack, permit, "MO part"));
            }
        }
    }
}

/// Commits what the carrier delivered, then lets the protocol answer it. If it is never
/// committed, the carrier gets no answer, keeps the item and delivers it again.
async fn record_then_ack(
    run: Arc<LinkRun>,
    event: Event,
    ack: herald_protocols::ack::Ack,
    permit: tokio::sync::OwnedSemaphorePermit,
    what: &'static str,
) {
    match run
        .ctx
        .proposer
        .propose_persistently(vec![event], PERSIST_FOR)
        .await
    {
        Ok(_) => ack.done(),
        Err(e) => tracing::error!(link = %run.link.name, "{what} not recorded: {e}"),
    }
    drop(permit);
}

/// The event recording one MO part this slot received, with the client the policy's reply
/// rules give its destination (decided here, so applying it stays pure).
fn mo_received(run: &LinkRun, part: MoPart) -> MoReceived {
    let rule_client = run
        .ctx
        .policy()
        .replies
        .client_for(&part.dest)
        .unwrap_or_default()
        .to_string();
    MoReceived {
        link: run.link.name.clone(),
        slot: run.slot_field(),
        node: run.ctx.id(),
        concat: part.concat.map(|(c, scheme)| MoConcat {
            reference: u32::from(c.reference),
            total: u32::from(c.total),
            number: u32::from(c.number),
            scheme: scheme.as_str().to_string(),
        }),
        src: part.src,
        dest: part.dest,
        text: part.text,
        encoding: part.encoding.to_string(),
        carrier_id: part.carrier_id,
        carrier_time: part.carrier_time,
        rule_client,
    }
}
