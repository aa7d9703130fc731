//! The pure heart of the state machine: how one event changes the projection.
//!
//! It reads and writes through the [`Kv`] trait only, so it runs the same over RocksDB (in
//! [`crate::state_machine`]) and over a `BTreeMap` in unit tests. It must be deterministic: every node
//! applies the same events to the same state and must reach the same bytes.

use std::collections::BTreeMap;

use prost::Message as _;

use crate::db::{
    CF_CARRIER_IDS, CF_EXPIRY, CF_IDEMPOTENCY, CF_INFLIGHT, CF_MESSAGES, CF_ORPHAN_REPORTS,
    CF_QUEUE, CF_SCHEDULED, CF_SM_META,
};
use crate::events::{event::Kind, DeliveryReported, Event};
use crate::keys;
use crate::records::{
    LinkTable, MessageRecord, MessageState, PolicyRecord, SegmentRecord, SegmentStatus,
};
use crate::types::EventOutcome;

/// How many times a message is offered to a carrier that answers "retry later" before it fails.
pub const MAX_ATTEMPTS: u32 = 5;

/// How many events a message's timeline keeps: the submission and the latest others. A message
/// retried under flow control or sent over a flapping link for its whole validity would
/// otherwise grow its record (rewritten on every event) without bound.
pub const TIMELINE_LIMIT: usize = 64;

/// Appends `event` to the message's timeline, dropping the oldest event after the submission
/// once the timeline is full (and counting what was dropped).
pub(crate) fn remember(msg: &mut MessageRecord, event: Event) {
    if msg.timeline.len() >= TIMELINE_LIMIT {
        let excess = msg.timeline.len() + 1 - TIMELINE_LIMIT;
        msg.timeline.drain(1..1 + excess);
        msg.timeline_dropped = msg.timeline_dropped.saturating_add(excess as u32);
    }
    msg.timeline.push(event);
}

/// The submission as a message's timeline keeps it: without the text, which the record holds in
/// its own field. The timeline's copy would double the bytes of a record that is read, decoded,
/// encoded and written again on every later event of the message, on every node.
pub(crate) fn submission_for_timeline(event: &Event) -> Event {
    let mut kept = event.clone();
    if let Some(Kind::Submitted(s)) = &mut kept.kind {
        s.text.clear();
    }
    kept
}

/// Key-value access to the projection's column families.
pub trait Kv {
    fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, ProjectionError>;
    fn put(&mut self, cf: &'static str, key: Vec<u8>, value: Vec<u8>);
    fn delete(&mut self, cf: &'static str, key: Vec<u8>);
    /// Told what an event changed that operators count (see [`crate::observe`]); only the
    /// state machine's apply keeps these.
    fn note(&mut self, _note: crate::observe::ApplyNote) {}
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("storage read failed: {0}")]
    Storage(String),
    #[error("stored record {what} is corrupt: {detail}")]
    Corrupt { what: String, detail: String },
    /// An entry written by a newer version: applying past it (or skipping it) would make this
    /// node's projection diverge from its peers', so the node stops instead.
    #[error(
        "this node's version (format level {here}) cannot apply {what}: upgrade it to a \
         version that applies format level {needs} or newer"
    )]
    TooNew {
        what: String,
        /// The level the entry needs (this node's level + 1 when only "newer" is known).
        needs: u32,
        here: u32,
    },
}

/// An in-memory [`Kv`], for tests and for staging writes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MemKv {
    pub data: BTreeMap<(&'static str, Vec<u8>), Vec<u8>>,
}

impl Kv for MemKv {
    fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, ProjectionError> {
        Ok(self.data.get(&(cf, key.to_vec())).cloned())
    }
    fn put(&mut self, cf: &'static str, key: Vec<u8>, value: Vec<u8>) {
        self.data.insert((cf, key), value);
    }
    fn delete(&mut self, cf: &'static str, key: Vec<u8>) {
        self.data.remove(&(cf, key));
    }
}

/// The cluster's format level in force: the last [`crate::events::ClusterVersionRaised`] applied,
/// or [`crate::events::BASE_FORMAT_LEVEL`].
pub fn load_cluster_level(kv: &impl Kv) -> Result<u32, ProjectionError> {
    match kv.get(CF_SM_META, keys::META_CLUSTER_LEVEL)? {
        None => Ok(crate::events::BASE_FORMAT_LEVEL),
        Some(bytes) => {
            let raw: [u8; 4] =
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| ProjectionError::Corrupt {
                        what: "cluster format level".into(),
                        detail: format!("{} bytes, not 4", bytes.len()),
                    })?;
            Ok(u32::from_be_bytes(raw))
        }
    }
}

pub(crate) fn decode<M: prost::Message + Default>(
    what: &str,
    bytes: &[u8],
) -> Result<M, ProjectionError> {
    M::decode(bytes).map_err(|e| ProjectionError::Corrupt {
        what: what.to_string(),
        detail: e.to_string(),
    })
}

pub fn load_message(kv: &impl Kv, id: u64) -> Result<Option<MessageRecord>, ProjectionError> {
    kv.get(CF_MESSAGES, &keys::message(id))?
        .map(|bytes| decode(&format!("message {id}"), &bytes))
        .transpose()
}

pub fn load_links(kv: &impl Kv) -> Result<LinkTable, ProjectionError> {
    match kv.get(CF_SM_META, keys::META_LINKS)? {
        Some(bytes) => decode("link table", &bytes),
        None => Ok(LinkTable::default()),
    }
}

pub fn load_policy(kv: &impl Kv) -> Result<PolicyRecord, ProjectionError> {
    match kv.get(CF_SM_META, keys::META_POLICY)? {
        Some(bytes) => decode("dispatch policy", &bytes),
        None => Ok(PolicyRecord::default()),
    }
}

/// A big-endian counter in the meta column family; corrupt bytes are an error, not a zero.
pub(crate) fn load_counter(
    kv: &impl Kv,
    key: &[u8],
    what: &str,
) -> Result<Option<u64>, ProjectionError> {
    let Some(bytes) = kv.get(CF_SM_META, key)? else {
        return Ok(None);
    };
    let raw: [u8; 8] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| ProjectionError::Corrupt {
            what: what.into(),
            detail: format!("{} bytes, expected 8", bytes.len()),
        })?;
    Ok(Some(u64::from_be_bytes(raw)))
}

pub(crate) fn store_counter(kv: &mut impl Kv, key: Vec<u8>, value: u64) {
    kv.put(CF_SM_META, key, value.to_be_bytes().to_vec());
}

/// The version of the policy in force (0: never set), without reading the document.
pub fn load_policy_version(kv: &impl Kv) -> Result<u64, ProjectionError> {
    Ok(load_counter(kv, keys::META_POLICY_VERSION, "policy version")?.unwrap_or(0))
}

/// How many of `client_id`'s messages have not reached a terminal state.
pub fn pending_of(kv: &impl Kv, client_id: &str) -> Result<u64, ProjectionError> {
    Ok(load_counter(kv, &keys::pending_of(client_id), "pending count")?.unwrap_or(0))
}

fn add_pending(kv: &mut impl Kv, client_id: &str, delta: i64) -> Result<(), ProjectionError> {
    let next = pending_of(kv, client_id)?.saturating_add_signed(delta);
    store_counter(kv, keys::pending_of(client_id), next);
    Ok(())
}

/// How many messages wait in `queue` (a route's or a link's), without walking it: links behind a
/// route's primary read it to decide whether the primary is congested.
pub fn queue_len(kv: &impl Kv, queue: &str) -> Result<u64, ProjectionError> {
    Ok(load_counter(kv, &keys::queue_len(queue), "queue length")?.unwrap_or(0))
}

/// How often messages went back into `queue` behind newer ones (see [`keys::queue_rewinds`]).
pub fn queue_rewinds(kv: &impl Kv, queue: &str) -> Result<u64, ProjectionError> {
    Ok(load_counter(kv, &keys::queue_rewinds(queue), "queue rewinds")?.unwrap_or(0))
}

/// The id the next submission will get: every message id in the projection is below it.
pub fn next_message_id_to_assign(kv: &impl Kv) -> Result<u64, ProjectionError> {
    Ok(load_counter(kv, keys::META_NEXT_ID, "next message id")?.unwrap_or(1))
}

fn add_queue_len(kv: &mut impl Kv, queue: &str, delta: i64) -> Result<(), ProjectionError> {
    let next = queue_len(kv, queue)?.saturating_add_signed(delta);
    store_counter(kv, keys::queue_len(queue), next);
    Ok(())
}

fn next_message_id(kv: &mut impl Kv) -> Result<u64, ProjectionError> {
    let current = load_counter(kv, keys::META_NEXT_ID, "next message id")?.unwrap_or(1);
    store_counter(kv, keys::META_NEXT_ID.to_vec(), current + 1);
    Ok(current)
}

/// Stores `msg`, changed by `event`; `before` is its state before the event. A fan-out copy that
/// changed state settles its group.
fn save(
    kv: &mut impl Kv,
    msg: &MessageRecord,
    before: MessageState,
    event: &Event,
) -> Result<(), ProjectionError> {
    save_record(kv, msg, before)?;
    if msg.copy_of != 0 && msg.state() != before {
        crate::fan_out::settle_group(kv, msg.copy_of, event)?;
    }
    Ok(())
}

/// Stores `msg` and keeps its expiry entry and its client's pending count in step with its state.
pub(crate) fn save_record(
    kv: &mut impl Kv,
    msg: &MessageRecord,
    before: MessageState,
) -> Result<(), ProjectionError> {
    kv.put(CF_MESSAGES, keys::message(msg.id), msg.encode_to_vec());
    // Only messages that can still change wait for their expiry.
    if msg.state().is_terminal() {
        if msg.expires_at_ms != 0 {
            kv.delete(CF_EXPIRY, keys::expiry(msg.expires_at_ms, msg.id));
        }
        // A fan-out copy is the platform's, not the client's: only its group counts.
        if !before.is_terminal() && msg.copy_of == 0 {
            add_pending(kv, &msg.client_id, -1)?;
            kv.note(crate::observe::ApplyNote::Terminal(msg.state()));
        }
    }
    Ok(())
}

/// Puts the message in its queue. A message that was there before (`fresh` false: a retry, a
/// requeue, a release) may be older than messages still queued, which readers must be told of.
fn enqueue(kv: &mut impl Kv, msg: &mut MessageRecord, fresh: bool) -> Result<(), ProjectionError> {
    msg.state = MessageState::Accepted as u32;
    msg.not_before_ms = 0;
    let queue = msg.queue_name();
    kv.put(
        CF_QUEUE,
        keys::queue(&queue, msg.priority, msg.id),
        Vec::new(),
    );
    if !fresh {
        let rewinds = queue_rewinds(kv, &queue)?;
        store_counter(kv, keys::queue_rewinds(&queue), rewinds.wrapping_add(1));
    }
    add_queue_len(kv, &queue, 1)
}

/// Parks the message until `due_ms` (the leader releases it then with a `MessageReleased`).
pub(crate) fn schedule(kv: &mut impl Kv, msg: &mut MessageRecord, due_ms: u64) {
    msg.state = MessageState::Scheduled as u32;
    msg.not_before_ms = due_ms;
    kv.put(CF_SCHEDULED, keys::scheduled(due_ms, msg.id), Vec::new());
}

/// Takes the message out of whichever waiting place it is in (queue, schedule, in-flight set).
/// A group is never in one (its copies are).
pub(crate) fn unqueue(kv: &mut impl Kv, msg: &MessageRecord) -> Result<(), ProjectionError> {
    if msg.is_group() {
        return Ok(());
    }
    // Each waiting place holds the message exactly while it is in one state (property-tested:
    // ACCEPTED is "in its queue", SENDING "in flight", SCHEDULED "in the schedule"), so only that
    // place is cleared: deleting a key that is not there still writes a tombstone, which every
    // node pays for in its memtable, on disk and in compactions.
    match msg.state() {
        MessageState::Accepted => {
            let queue = msg.queue_name();
            kv.delete(CF_QUEUE, keys::queue(&queue, msg.priority, msg.id));
            add_queue_len(kv, &queue, -1)?;
        }
        MessageState::Sending => kv.delete(CF_INFLIGHT, keys::inflight(&msg.link, msg.id)),
        MessageState::Scheduled => {
            kv.delete(CF_SCHEDULED, keys::scheduled(msg.not_before_ms, msg.id))
        }
        _ => {}
    }
    Ok(())
}

/// A new message (or fan-out copy) joins its queue, or its schedule when it may not be sent yet,
/// and the expiry index.
pub(crate) fn start_waiting(
    kv: &mut impl Kv,
    msg: &mut MessageRecord,
    s: &crate::events::MessageSubmitted,
    event: &Event,
) -> Result<(), ProjectionError> {
    if s.send_at_ms > event.at_ms {
        schedule(kv, msg, s.send_at_ms);
    } else {
        enqueue(kv, msg, true)?;
    }
    if s.expires_at_ms != 0 {
        kv.put(CF_EXPIRY, keys::expiry(s.expires_at_ms, msg.id), Vec::new());
    }
    Ok(())
}

pub(crate) fn next_id(kv: &mut impl Kv) -> Result<u64, ProjectionError> {
    next_message_id(kv)
}

/// Events addressed to one message that only a sendable message (not a fan-out group) takes.
const GROUP_IS_NOT_SENT: &str = "a fan-out group is sent through its copies";

pub(crate) fn ignored(reason: impl Into<String>) -> EventOutcome {
    EventOutcome::Ignored {
        reason: reason.into(),
    }
}

/// Applies one event. Errors are storage failures only; an event that does not fit the state is
/// answered with [`EventOutcome::Ignored`] and changes nothing.
pub fn apply_event(kv: &mut impl Kv, event: &Event) -> Result<EventOutcome, ProjectionError> {
    let Some(kind) = &event.kind else {
        // prost decodes a oneof tag it does not know to no kind at all.
        return Err(ProjectionError::TooNew {
            what: "an event of a kind it does not know".into(),
            needs: crate::events::FORMAT_LEVEL + 1,
            here: crate::events::FORMAT_LEVEL,
        });
    };
    match kind {
        Kind::Submitted(s) => {
            let idem_key = (!s.idempotency_key.is_empty())
                .then(|| keys::idempotency(&s.client_id, &s.idempotency_key));
            if let Some(key) = &idem_key {
                if let Some(existing) = kv.get(CF_IDEMPOTENCY, key)? {
                    let (id, digest) = keys::idempotency_entry(&existing).ok_or_else(|| {
                        ProjectionError::Corrupt {
                            what: "idempotency entry".into(),
                            detail: "shorter than 8 bytes".into(),
                        }
                    })?;
                    // Either side without a digest (written by an older node) cannot be compared:
                    // the key alone decides, as it did then.
                    if !digest.is_empty()
                        && !s.request_digest.is_empty()
                        && digest != s.request_digest.as_slice()
                    {
                        let differs = match load_message(kv, id)? {
                            Some(earlier) => differences(&earlier, s),
                            None => Vec::new(),
                        };
                        return Ok(EventOutcome::IdempotencyConflict {
                            message_id: id,
                            differs,
                        });
                    }
                    return Ok(EventOutcome::Submitted {
                        message_id: id,
                        created: false,
                    });
                }
            }
            let id = next_message_id(kv)?;
            let mut msg = MessageRecord {
                id,
                client_id: s.client_id.clone(),
                idempotency_key: s.idempotency_key.clone(),
                client_ref: s.client_ref.clone(),
                recipients: s.recipients.clone(),
                text: s.text.clone(),
                priority: s.priority,
                link: s.link.clone(),
                route: s.route.clone(),
                submitted_at_ms: event.at_ms,
                expires_at_ms: s.expires_at_ms,
                timeline: vec![submission_for_timeline(event)],
                ..Default::default()
            };
            if let Some(key) = idem_key {
                kv.put(
                    CF_IDEMPOTENCY,
                    key,
                    keys::idempotency_value(id, &s.request_digest),
                );
            }
            add_pending(kv, &s.client_id, 1)?;
            crate::replies::record_last_sender(kv, s);
            if s.split.len() > 1 {
                crate::fan_out::create_split_group(kv, msg, s, event)?;
            } else if s.fan_out_links.len() > 1 && !s.route.is_empty() {
                crate::fan_out::create_group(kv, msg, s, event)?;
            } else {
                start_waiting(kv, &mut msg, s, event)?;
                save(kv, &msg, MessageState::Accepted, event)?;
            }
            Ok(EventOutcome::Submitted {
                message_id: id,
                created: true,
            })
        }
        Kind::Dispatched(d) => {
            let Some(mut msg) = load_message(kv, d.message_id)? else {
                return Ok(ignored("unknown message"));
            };
            let before = msg.state();
            if before.is_terminal() {
                return Ok(ignored("message is already terminal"));
            }
            if msg.is_group() {
                return Ok(ignored(GROUP_IS_NOT_SENT));
            }
            let slot = if d.slot.is_empty() { &d.link } else { &d.slot };
            let links = load_links(kv)?;
            match links.holder(slot) {
                Some(h) if h.node == d.node && h.epoch == d.epoch => {}
                _ => {
                    return Ok(ignored(
                        "dispatch from a node that no longer holds the link",
                    ))
                }
            }
            if !matches!(before, MessageState::Accepted | MessageState::Sending) {
                return Ok(ignored("message is not waiting to be sent"));
            }
            // The same dispatch applied twice: the proposer re-proposes a batch whose first
            // answer was lost in a leader change. It stays applied, and its sender still sends.
            let replay = before == MessageState::Sending
                && d.attempt == msg.attempts
                && d.node == msg.node
                && d.epoch == msg.epoch
                && d.slot == msg.slot
                && d.link == msg.link;
            if replay {
                return Ok(EventOutcome::Applied);
            }
            // Compare-and-set on the attempt number: of two connections that picked the same
            // message, only the first dispatch counts and only its sender may send.
            if d.attempt != msg.attempts + 1 {
                return Ok(ignored(format!(
                    "attempt {} is not the next one ({})",
                    d.attempt,
                    msg.attempts + 1
                )));
            }
            unqueue(kv, &msg)?;
            msg.retry_link.clear();
            msg.link = d.link.clone();
            msg.slot = d.slot.clone();
            msg.state = MessageState::Sending as u32;
            msg.attempts = d.attempt;
            msg.epoch = d.epoch;
            msg.node = d.node;
            if msg.segments.len() != d.segments as usize {
                msg.segments = vec![SegmentRecord::default(); d.segments as usize];
            }
            kv.put(
                CF_INFLIGHT,
                keys::inflight(&d.link, msg.id),
                keys::inflight_value(d.epoch, &d.slot),
            );
            remember(&mut msg, event.clone());
            save(kv, &msg, before, event)?;
            Ok(EventOutcome::Applied)
        }
        Kind::CarrierAccepted(a) => {
            let Some(mut msg) = load_message(kv, a.message_id)? else {
                return Ok(ignored("unknown message"));
            };
            let before = msg.state();
            if msg.is_group() {
                return Ok(ignored(GROUP_IS_NOT_SENT));
            }
            let Some(segment) = msg.segments.get_mut(a.segment as usize) else {
                return Ok(ignored("no such segment"));
            };
            segment.carrier_id = a.carrier_id.clone();
            if segment.status() == SegmentStatus::Pending {
                segment.status = SegmentStatus::Accepted as u32;
            }
            let mut value = a.message_id.to_be_bytes().to_vec();
            value.extend_from_slice(&a.segment.to_be_bytes());
            kv.put(
                CF_CARRIER_IDS,
                keys::carrier_id(&a.link, &a.carrier_id),
                value,
            );
            remember(&mut msg, event.clone());
            let orphan_key = keys::carrier_id(&a.link, &a.carrier_id);
            if let Some(bytes) = kv.get(CF_ORPHAN_REPORTS, &orphan_key)? {
                let orphan: Event = decode("orphan report", &bytes)?;
                kv.delete(CF_ORPHAN_REPORTS, orphan_key);
                if let Some(Kind::DeliveryReported(report)) = &orphan.kind {
                    record_report(&mut msg, a.segment, report);
                    remember(&mut msg, orphan.clone());
                }
            }
            settle(kv, &mut msg)?;
            save(kv, &msg, before, event)?;
            Ok(EventOutcome::Applied)
        }
        Kind::CarrierRejected(r) => {
            let Some(mut msg) = load_message(kv, r.message_id)? else {
                return Ok(ignored("unknown message"));
            };
            let before = msg.state();
            if msg.is_group() {
                return Ok(ignored(GROUP_IS_NOT_SENT));
            }
            // Only a message in flight can be refused: a late answer from an older dispatch of a
            // message that was requeued, sent or finished since must not move it again.
            if before != MessageState::Sending {
                return Ok(ignored("message is not in flight"));
            }
            msg.last_error = format!("carrier code {}: {}", r.code, r.description);
            msg.last_code = r.code;
            remember(&mut msg, event.clone());
            kv.delete(CF_INFLIGHT, keys::inflight(&msg.link, msg.id));
            let retry = if r.policy_decided {
                r.retry_at_ms > 0
            } else {
                r.retryable && msg.attempts < MAX_ATTEMPTS
            };
            if retry {
                msg.retry_link = r.retry_link.clone();
            }
            if !retry {
                msg.state = MessageState::Failed as u32;
            } else if r.policy_decided && r.retry_at_ms > event.at_ms {
                schedule(kv, &mut msg, r.retry_at_ms);
            } else {
                enqueue(kv, &mut msg, false)?;
            }
            save(kv, &msg, before, event)?;
            Ok(EventOutcome::Applied)
        }
        Kind::DeliveryReported(report) => {
            let key = keys::carrier_id(&report.link, &report.carrier_id);
            let Some(target) = kv.get(CF_CARRIER_IDS, &key)? else {
                // The report overtook the carrier's acknowledgement (or its commit): keep it until the
                // CarrierAccepted with this id arrives.
                kv.put(CF_ORPHAN_REPORTS, key, event.encode_to_vec());
                kv.note(crate::observe::ApplyNote::UnmatchedReport {
                    link: report.link.clone(),
                });
                return Ok(EventOutcome::Applied);
            };
            let (Some(id), Some(seg)) = (
                target
                    .get(0..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes),
                target
                    .get(8..12)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_be_bytes),
            ) else {
                return Err(ProjectionError::Corrupt {
                    what: "carrier id index".into(),
                    detail: format!("{} bytes, expected 12", target.len()),
                });
            };
            let Some(mut msg) = load_message(kv, id)? else {
                return Ok(ignored("unknown message"));
            };
            let before = msg.state();
            kv.note(crate::observe::ApplyNote::Report {
                link: report.link.clone(),
                delay_ms: accepted_at(&msg, seg).map(|at| event.at_ms.saturating_sub(at)),
            });
            record_report(&mut msg, seg, report);
            remember(&mut msg, event.clone());
            settle(kv, &mut msg)?;
            save(kv, &msg, before, event)?;
            Ok(EventOutcome::Applied)
        }
        Kind::Expired(e) => finish_early(kv, e.message_id, event, MessageState::Expired, false),
        Kind::Canceled(c) => {
            let outcome = finish_early(kv, c.message_id, event, MessageState::Canceled, true)?;
            if outcome == EventOutcome::Applied {
                crate::clients::audit(
                    kv,
                    event,
                    "message.cancel",
                    format!("message {}", c.message_id),
                )?;
            }
            Ok(outcome)
        }
        Kind::Released(r) => {
            let Some(mut msg) = load_message(kv, r.message_id)? else {
                return Ok(ignored("unknown message"));
            };
            let before = msg.state();
            if msg.is_group() {
                return Ok(ignored(GROUP_IS_NOT_SENT));
            }
            if before != MessageState::Scheduled {
                return Ok(ignored("message is not scheduled"));
            }
            kv.delete(CF_SCHEDULED, keys::scheduled(msg.not_before_ms, msg.id));
            enqueue(kv, &mut msg, false)?;
            remember(&mut msg, event.clone());
            save(kv, &msg, before, event)?;
            Ok(EventOutcome::Applied)
        }
        Kind::Requeued(r) => {
            let Some(mut msg) = load_message(kv, r.message_id)? else {
                return Ok(ignored("unknown message"));
            };
            let before = msg.state();
            if msg.is_group() {
                return Ok(ignored(GROUP_IS_NOT_SENT));
            }
            // Only the slot's current holder may give back what that slot has in flight (a
            // previous holder's dispatch included); a fenced worker may not.
            let slot = if r.slot.is_empty() { &r.link } else { &r.slot };
            if load_links(kv)?.holder(slot).map(|h| h.epoch) != Some(r.epoch) {
                return Ok(ignored("requeue from a node that no longer holds the link"));
            }
            let in_flight_here =
                before == MessageState::Sending && msg.link == r.link && msg.slot == r.slot;
            // A retry sent this link's way that the link, now down, never took.
            let waiting_for_retry_here = before == MessageState::Accepted
                && !msg.route.is_empty()
                && msg.retry_link == r.link;
            if in_flight_here {
                kv.delete(CF_INFLIGHT, keys::inflight(&msg.link, msg.id));
            } else if waiting_for_retry_here {
                unqueue(kv, &msg)?;
            } else {
                return Ok(ignored(
                    "message is neither in flight on that connection nor waiting for its retry there",
                ));
            }
            // Given back to the route: any of its links may take it, not only a retry's link.
            msg.retry_link.clear();
            enqueue(kv, &mut msg, false)?;
            remember(&mut msg, event.clone());
            save(kv, &msg, before, event)?;
            Ok(EventOutcome::Applied)
        }
        Kind::CarrierUnanswered(u) => {
            // Trace only: the message's state does not change (its sender tries again).
            let Some(mut msg) = load_message(kv, u.message_id)? else {
                return Ok(ignored("unknown message"));
            };
            let before = msg.state();
            if before.is_terminal() {
                return Ok(ignored("message is already terminal"));
            }
            remember(&mut msg, event.clone());
            save(kv, &msg, before, event)?;
            Ok(EventOutcome::Applied)
        }
        Kind::LinkAssigned(l) => {
            let mut links = load_links(kv)?;
            match links.links.iter_mut().find(|h| h.link == l.link) {
                Some(h) if h.epoch >= l.epoch => return Ok(ignored("stale link assignment")),
                Some(h) => {
                    // The link's reported condition stays until the new holder reports its own.
                    h.node = l.node;
                    h.epoch = l.epoch;
                }
                None => links.links.push(crate::records::LinkHolder {
                    link: l.link.clone(),
                    node: l.node,
                    epoch: l.epoch,
                    ..Default::default()
                }),
            }
            kv.put(CF_SM_META, keys::META_LINKS.to_vec(), links.encode_to_vec());
            Ok(EventOutcome::Applied)
        }
        Kind::LinkStatus(l) => {
            let slot = if l.slot.is_empty() { &l.link } else { &l.slot };
            let mut links = load_links(kv)?;
            let Some(h) = links.links.iter_mut().find(|h| &h.link == slot) else {
                return Ok(ignored("no such link"));
            };
            if h.epoch != l.epoch {
                return Ok(ignored("status from a node that no longer holds the link"));
            }
            h.down = !l.up;
            h.congested = l.congested;
            h.status_reason = l.reason.clone();
            kv.put(CF_SM_META, keys::META_LINKS.to_vec(), links.encode_to_vec());
            Ok(EventOutcome::Applied)
        }
        Kind::NodeDrain(n) => {
            let mut links = load_links(kv)?;
            links.drained.retain(|id| *id != n.node);
            if n.drained {
                links.drained.push(n.node);
                links.drained.sort_unstable();
            }
            kv.put(CF_SM_META, keys::META_LINKS.to_vec(), links.encode_to_vec());
            let action = if n.drained {
                "node.drain"
            } else {
                "node.undrain"
            };
            crate::clients::audit(kv, event, action, format!("node {}", n.node))?;
            Ok(EventOutcome::Applied)
        }
        Kind::AdminAction(a) => {
            crate::clients::audit(kv, event, &a.action, a.detail.clone())?;
            Ok(EventOutcome::Applied)
        }
        Kind::ClusterVersionRaised(raised) => {
            if raised.level > crate::events::FORMAT_LEVEL {
                return Err(ProjectionError::TooNew {
                    what: format!(
                        "the cluster version raised to format level {}",
                        raised.level
                    ),
                    needs: raised.level,
                    here: crate::events::FORMAT_LEVEL,
                });
            }
            let current = load_cluster_level(kv)?;
            if raised.level <= current {
                // Raised by a re-proposal or a second finalize: levels never go down.
                return Ok(ignored(format!(
                    "the cluster is at format level {current} already"
                )));
            }
            kv.put(
                CF_SM_META,
                keys::META_CLUSTER_LEVEL.to_vec(),
                raised.level.to_be_bytes().to_vec(),
            );
            crate::clients::audit(
                kv,
                event,
                "cluster.version",
                format!("format level {current} -> {}", raised.level),
            )?;
            Ok(EventOutcome::Applied)
        }
        Kind::MoReceived(mo) => crate::replies::received(kv, event, mo),
        Kind::MoAssemblyClosed(c) => crate::replies::closed(kv, event, c),
        Kind::ClientCreated(c) => crate::clients::created(kv, event, c),
        Kind::ClientKeyAdded(k) => crate::clients::key_added(kv, event, k),
        Kind::ClientKeyRevoked(k) => crate::clients::key_revoked(kv, event, k),
        Kind::ClientDeleted(d) => crate::clients::deleted(kv, event, d),
        Kind::PolicyChanged(p) => {
            let current = load_policy(kv)?;
            if p.version == current.version && p.document == current.document {
                // A re-proposed change that already applied.
                return Ok(EventOutcome::Applied);
            }
            if Some(p.version) != current.version.checked_add(1) {
                return Ok(ignored(format!(
                    "policy version {} is not the next one: the current version is {}",
                    p.version, current.version
                )));
            }
            let record = PolicyRecord {
                version: p.version,
                document: p.document.clone(),
                changed_at_ms: event.at_ms,
                changed_by: p.changed_by.clone(),
            };
            kv.put(
                CF_SM_META,
                keys::META_POLICY.to_vec(),
                record.encode_to_vec(),
            );
            store_counter(kv, keys::META_POLICY_VERSION.to_vec(), p.version);
            crate::clients::audit(kv, event, "policy.set", format!("version {}", p.version))?;
            Ok(EventOutcome::Applied)
        }
    }
}

/// What a submission reusing an idempotency key asks differently from the message the key
/// made, as far as the stored record tells: the link it named and its urgency are not kept apart
/// from what routing chose, so a difference the digest saw in neither of the others is named
/// as theirs.
fn differences(earlier: &MessageRecord, s: &crate::events::MessageSubmitted) -> Vec<String> {
    let sorted = |numbers: &[String]| {
        let mut numbers = numbers.to_vec();
        numbers.sort_unstable();
        numbers
    };
    let mut differs = Vec::new();
    if sorted(&earlier.recipients) != sorted(&s.recipients) {
        differs.push("recipients".to_string());
    }
    if earlier.text != s.text {
        differs.push("text".to_string());
    }
    if earlier.priority != s.priority {
        differs.push("priority".to_string());
    }
    if earlier.client_ref != s.client_ref {
        differs.push("client_ref".to_string());
    }
    if differs.is_empty() {
        differs.push("link or urgent".to_string());
    }
    differs
}

/// When the carrier accepted segment `seg` of `msg`, if the timeline still holds it.
fn accepted_at(msg: &MessageRecord, seg: u32) -> Option<u64> {
    msg.timeline.iter().rev().find_map(|e| match &e.kind {
        Some(Kind::CarrierAccepted(a)) if a.segment == seg => Some(e.at_ms),
        _ => None,
    })
}

fn record_report(msg: &mut MessageRecord, segment: u32, report: &DeliveryReported) {
    if let Some(seg) = msg.segments.get_mut(segment as usize) {
        seg.status = if report.delivered {
            SegmentStatus::Delivered as u32
        } else {
            SegmentStatus::Undelivered as u32
        };
        seg.report_status = report.status.clone();
    }
}

/// Derives the message's state from its segments once they have moved on.
fn settle(kv: &mut impl Kv, msg: &mut MessageRecord) -> Result<(), ProjectionError> {
    if msg.state().is_terminal() || msg.segments.is_empty() {
        return Ok(());
    }
    let statuses: Vec<SegmentStatus> = msg.segments.iter().map(|s| s.status()).collect();
    if statuses.contains(&SegmentStatus::Pending) {
        return Ok(());
    }
    // A late acknowledgement can complete a message that was requeued or rescheduled meanwhile:
    // it leaves every waiting place.
    unqueue(kv, msg)?;
    let reported = statuses
        .iter()
        .all(|s| matches!(s, SegmentStatus::Delivered | SegmentStatus::Undelivered));
    msg.state = if !reported {
        MessageState::Sent as u32
    } else if statuses.iter().all(|s| *s == SegmentStatus::Delivered) {
        MessageState::Delivered as u32
    } else {
        MessageState::Undelivered as u32
    };
    Ok(())
}

fn finish_early(
    kv: &mut impl Kv,
    id: u64,
    event: &Event,
    state: MessageState,
    only_if_unsent: bool,
) -> Result<EventOutcome, ProjectionError> {
    let Some(mut msg) = load_message(kv, id)? else {
        return Ok(ignored("unknown message"));
    };
    let before = msg.state();
    if before.is_terminal() {
        return Ok(ignored("message is already terminal"));
    }
    if only_if_unsent && !matches!(before, MessageState::Accepted | MessageState::Scheduled) {
        return Ok(ignored("message is already being sent"));
    }
    if msg.is_group() {
        return crate::fan_out::finish_group(kv, msg, event, state, only_if_unsent);
    }
    unqueue(kv, &msg)?;
    msg.state = state as u32;
    remember(&mut msg, event.clone());
    save(kv, &msg, before, event)?;
    Ok(EventOutcome::Applied)
}
