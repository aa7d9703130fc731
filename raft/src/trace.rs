//! A message's protocol trace: one line per PDU exchanged with a carrier (the submit out, its
//! response in, the delivery report in, or the absence of an answer) and per decision Herald took
//! (dispatch, retry, failure, requeue, expiry), ending with why the message stands where it does.
//!
//! The trace is read from the message's timeline, whose events carry the PDU facts (see
//! [`crate::events::SubmitPdus`]): nothing extra is stored or replicated for it, so every node
//! answers with the same lines. Pure: record in, lines out, in log order (times come from the
//! events, which different nodes stamped, so they are shown as recorded, not re-sorted).

use crate::events::{event::Kind, Event, SubmitPdus};
use crate::records::{MessageRecord, MessageState};

/// Which way a line's PDU went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Herald to the carrier.
    Out,
    /// The carrier to Herald.
    In,
    /// Herald's own decision, or the absence of an answer: no PDU.
    Note,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Out => "out",
            Direction::In => "in",
            Direction::Note => "",
        }
    }
}

/// One line of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLine {
    pub at_ms: u64,
    /// The link, or its connection slot (`link#n`); empty before any link took the message.
    pub link: String,
    /// The node that sent or received (0: not known, e.g. a decision of the leader's clock).
    pub node: u64,
    pub direction: Direction,
    /// The PDU's command in the protocol's spelling; empty for a note.
    pub command: String,
    /// The PDU's sequence number (0: none).
    pub sequence: u32,
    /// Which segment (recipient × part) it concerns, counted from 1; 0 = the whole message.
    pub segment: u32,
    /// The raw status: a response's code, a report's stat.
    pub status: String,
    /// What the status means, or what the note says.
    pub meaning: String,
    pub carrier_id: String,
}

/// A message's trace and the account of where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub lines: Vec<TraceLine>,
    /// Events left out of the bounded timeline (between the submission and the first line after it).
    pub dropped_events: u32,
    /// Why the message is in its state: the last code, the attempts, the expiry…
    pub reason: String,
}

/// The trace of `msg`.
pub fn trace_of(msg: &MessageRecord) -> Trace {
    let mut lines = Vec::new();
    for event in &msg.timeline {
        lines_of(event, &mut lines);
    }
    Trace {
        lines,
        dropped_events: msg.timeline_dropped,
        reason: reason(msg),
    }
}

/// A time of the log as people read it (UTC, to the millisecond): formatting only, no clock.
fn utc(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_else(|| format!("{ms} ms"))
}

fn slot_or_link(link: &str, slot: &str) -> String {
    if slot.is_empty() {
        link.to_string()
    } else {
        slot.to_string()
    }
}

fn note(at_ms: u64, link: String, node: u64, segment: u32, meaning: String) -> TraceLine {
    TraceLine {
        at_ms,
        link,
        node,
        direction: Direction::Note,
        command: String::new(),
        sequence: 0,
        segment,
        status: String::new(),
        meaning,
        carrier_id: String::new(),
    }
}

/// The submit line of an exchange, when the submit reached a connection.
fn submit_line(
    event: &Event,
    pdus: &SubmitPdus,
    link: &str,
    node: u64,
    segment: u32,
) -> Option<TraceLine> {
    (pdus.sequence != 0).then(|| TraceLine {
        at_ms: pdus.sent_at_ms(event.at_ms),
        link: link.to_string(),
        node,
        direction: Direction::Out,
        command: pdus.command.clone(),
        sequence: pdus.sequence,
        segment,
        status: String::new(),
        meaning: String::new(),
        carrier_id: String::new(),
    })
}

/// The response line of an exchange (written by nodes that predate the trace too, without PDUs).
fn response_line(
    event: &Event,
    pdus: Option<&SubmitPdus>,
    link: &str,
    node: u64,
    segment: u32,
    code: u32,
    meaning: String,
) -> TraceLine {
    TraceLine {
        at_ms: event.at_ms,
        link: link.to_string(),
        node,
        direction: Direction::In,
        command: pdus.map(SubmitPdus::response_name).unwrap_or_default(),
        sequence: pdus.map(|p| p.sequence).unwrap_or_default(),
        segment,
        status: code.to_string(),
        meaning,
        carrier_id: String::new(),
    }
}

fn lines_of(event: &Event, lines: &mut Vec<TraceLine>) {
    let at = event.at_ms;
    let Some(kind) = &event.kind else { return };
    match kind {
        Kind::Submitted(s) => {
            let via = if s.route.is_empty() {
                format!("link {}", s.link)
            } else {
                format!("route {}", s.route)
            };
            let mut meaning = format!("submitted to {} via {via}", s.recipients.join(","));
            if s.send_at_ms > at {
                meaning.push_str(&format!(
                    ", not before {} ({})",
                    utc(s.send_at_ms),
                    s.deferred_because
                ));
            }
            lines.push(note(at, String::new(), 0, 0, meaning));
        }
        Kind::Dispatched(d) => lines.push(note(
            at,
            slot_or_link(&d.link, &d.slot),
            d.node,
            0,
            format!(
                "dispatched: attempt {}, {} segment(s), epoch {}",
                d.attempt, d.segments, d.epoch
            ),
        )),
        Kind::CarrierAccepted(a) => {
            let link = slot_or_link(&a.link, &a.slot);
            let segment = a.segment + 1;
            let pdus = a.pdus.as_ref();
            lines.extend(pdus.and_then(|p| submit_line(event, p, &link, a.node, segment)));
            let mut line = response_line(
                event,
                pdus,
                &link,
                a.node,
                segment,
                pdus.map(|p| p.status).unwrap_or(0),
                "accepted".into(),
            );
            line.carrier_id = a.carrier_id.clone();
            lines.push(line);
        }
        Kind::CarrierRejected(r) => {
            let link = slot_or_link(&r.link, &r.slot);
            let segment = r.segment + 1;
            let pdus = r.pdus.as_ref();
            lines.extend(pdus.and_then(|p| submit_line(event, p, &link, r.node, segment)));
            let kind = if r.retryable {
                "retryable"
            } else {
                "permanent"
            };
            let mut response = response_line(
                event,
                pdus,
                &link,
                r.node,
                segment,
                r.code,
                format!("refused: {} ({kind})", r.description),
            );
            if pdus.is_some_and(|p| p.sequence == 0) {
                // Refused before sending (a field did not fit): no PDU came back.
                response.direction = Direction::Note;
                response.command.clear();
            }
            lines.push(response);
            let decision = match (r.policy_decided, r.retry_at_ms) {
                (false, _) => "retried while attempts remain".to_string(),
                (true, 0) => format!("not retried: the message fails with code {}", r.code),
                (true, at_ms) => format!("retry at {}", utc(at_ms)),
            };
            lines.push(note(at, link, r.node, segment, decision));
        }
        Kind::CarrierUnanswered(u) => {
            let link = slot_or_link(&u.link, &u.slot);
            let segment = u.segment + 1;
            let pdus = u.pdus.as_ref();
            lines.extend(pdus.and_then(|p| submit_line(event, p, &link, u.node, segment)));
            let mut line = note(
                at,
                link,
                u.node,
                segment,
                format!("no answer: {}; sent again", u.failure),
            );
            line.command = pdus.map(|p| p.command.clone()).unwrap_or_default();
            line.sequence = pdus.map(|p| p.sequence).unwrap_or_default();
            lines.push(line);
        }
        Kind::DeliveryReported(r) => {
            let mut meaning = if r.delivered {
                "delivered".to_string()
            } else {
                "not delivered".to_string()
            };
            if !r.error_code.is_empty() {
                meaning.push_str(&format!(", error code {}", r.error_code));
            }
            meaning.push_str(&format!(" (to {}", r.dest));
            if !r.carrier_submit_time.is_empty() {
                meaning.push_str(&format!(", submitted {}", r.carrier_submit_time));
            }
            if !r.carrier_time.is_empty() {
                meaning.push_str(&format!(", done {}", r.carrier_time));
            }
            meaning.push(')');
            lines.push(TraceLine {
                at_ms: at,
                link: slot_or_link(&r.link, &r.slot),
                node: 0,
                direction: Direction::In,
                command: r.command.clone(),
                sequence: r.sequence,
                segment: 0,
                status: r.status.clone(),
                meaning,
                carrier_id: r.carrier_id.clone(),
            });
        }
        Kind::Expired(_) => lines.push(note(at, String::new(), 0, 0, "validity ran out".into())),
        Kind::Canceled(_) => lines.push(note(at, String::new(), 0, 0, "canceled".into())),
        Kind::Released(_) => lines.push(note(
            at,
            String::new(),
            0,
            0,
            "send time reached: queued again".into(),
        )),
        Kind::Requeued(r) => lines.push(note(
            at,
            slot_or_link(&r.link, &r.slot),
            0,
            0,
            format!("given back to its route: {}", r.reason),
        )),
        Kind::LinkAssigned(_)
        | Kind::LinkStatus(_)
        | Kind::PolicyChanged(_)
        | Kind::NodeDrain(_)
        | Kind::MoReceived(_)
        | Kind::MoAssemblyClosed(_)
        | Kind::ClientCreated(_)
        | Kind::ClientKeyAdded(_)
        | Kind::ClientKeyRevoked(_)
        | Kind::ClientDeleted(_)
        | Kind::AdminAction(_)
        | Kind::ClusterVersionRaised(_) => {}
    }
}

/// Why the message stands where it does, in one sentence.
fn reason(msg: &MessageRecord) -> String {
    let attempts = match msg.attempts {
        1 => "1 attempt".to_string(),
        n => format!("{n} attempts"),
    };
    let last_refusal = msg.timeline.iter().rev().find_map(|e| match &e.kind {
        Some(Kind::CarrierRejected(r)) => Some(r),
        _ => None,
    });
    let last_report = msg.timeline.iter().rev().find_map(|e| match &e.kind {
        Some(Kind::DeliveryReported(r)) if !r.delivered => Some(r),
        _ => None,
    });
    let last_unanswered = msg.timeline.iter().rev().find_map(|e| match &e.kind {
        Some(Kind::CarrierUnanswered(u)) => Some(u),
        _ => None,
    });
    match msg.state() {
        MessageState::Failed => match last_refusal {
            Some(r) if !r.retryable => format!(
                "the carrier refused it with code {} ({}), a code that is not retried; {attempts}",
                r.code, r.description
            ),
            Some(r) => format!(
                "the carrier refused it with code {} ({}) and no attempt was left; {attempts}",
                r.code, r.description
            ),
            None => format!("{}; {attempts}", msg.last_error),
        },
        MessageState::Undelivered => match last_report {
            Some(r) => format!(
                "the carrier reported {}{} for {}",
                r.status,
                if r.error_code.is_empty() {
                    String::new()
                } else {
                    format!(" (error code {})", r.error_code)
                },
                r.dest
            ),
            None => "the carrier reported it not delivered".into(),
        },
        MessageState::Expired => {
            let mut why = format!(
                "its validity ran out (at {}) after {attempts}",
                utc(msg.expires_at_ms)
            );
            if msg.last_code != 0 {
                why.push_str(&format!("; last refusal: {}", msg.last_error));
            }
            why
        }
        MessageState::Delivered => "the carrier reported it delivered".into(),
        MessageState::Canceled => "canceled before it was sent".into(),
        MessageState::Sent => "accepted by the carrier; waiting for its delivery report".into(),
        MessageState::Sending => match last_unanswered {
            Some(u) => format!(
                "in flight (attempt {}): the carrier has not answered yet; last: {}",
                msg.attempts, u.failure
            ),
            None => format!(
                "in flight (attempt {}): waiting for the carrier's answer",
                msg.attempts
            ),
        },
        MessageState::Scheduled => {
            let mut why = format!("waiting until {}", utc(msg.not_before_ms));
            if msg.last_code != 0 {
                why.push_str(&format!(" to retry after {}", msg.last_error));
            }
            why
        }
        MessageState::Accepted => "queued: waiting for a link to take it".into(),
    }
}
