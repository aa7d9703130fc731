//! How a message reads to the people and systems that follow it: its state, segments, copies and
//! a timeline of its events in words. Every transport (gRPC today, REST and the console next)
//! shows the same view, so the wording lives here once. Pure: a record in, a view out.

use herald_raft::events::{event::Kind, Event};
use herald_raft::records::{MessageRecord, MessageState, SegmentStatus};

use crate::policy::CLASS_NAMES;

/// A message as `GetMessage` answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageView {
    pub id: u64,
    pub state: MessageState,
    pub recipients: Vec<String>,
    pub text: String,
    /// 0 = alarm … 3 = bulk.
    pub class: u32,
    pub link: String,
    pub client_ref: String,
    pub attempts: u32,
    pub last_error: String,
    pub submitted_at_ms: u64,
    pub segments: Vec<SegmentView>,
    /// The events kept for the message, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// Events left out of `timeline` to keep the record bounded (the oldest after the
    /// submission): a message to many recipients has more events than the record keeps.
    pub timeline_dropped: u32,
    pub route: String,
    pub not_before_ms: u64,
    pub last_code: u32,
    /// The copies of a message sent as several (fan-out, or split by route).
    pub copies: Vec<CopyView>,
    /// For a copy: the message it belongs to.
    pub copy_of: Option<u64>,
    pub duplicate_deliveries: u32,
    /// The node that answered, and the log index its projection had applied.
    pub answered_by: u64,
    pub applied_index: u64,
}

/// One segment: a recipient × a part of a long message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentView {
    pub recipient: String,
    /// From 1.
    pub part: u32,
    pub carrier_id: String,
    /// PENDING, ACCEPTED, DELIVERED or UNDELIVERED.
    pub status: &'static str,
    /// The carrier's raw report status (DELIVRD, …).
    pub report_status: String,
}

/// One event of a message's timeline, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    pub at_ms: u64,
    /// The event's name: MessageSubmitted, MessageDispatched, CarrierAccepted, …
    pub kind: &'static str,
    /// Its fields as people read them.
    pub detail: String,
}

/// One copy of a message sent as several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyView {
    pub id: u64,
    pub link: String,
    pub state: MessageState,
    /// The copy whose delivery report came first.
    pub won: bool,
    /// Delivered after another copy already had been.
    pub duplicate: bool,
}

/// `m` as `node` shows it, with its projection at `applied`; copies are added by the caller.
pub fn message_view(m: &MessageRecord, node: u64, applied: u64) -> MessageView {
    let parts = if m.recipients.is_empty() {
        1
    } else {
        (m.segments.len() / m.recipients.len()).max(1)
    };
    let segments = m
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| SegmentView {
            recipient: m.recipients.get(i / parts).cloned().unwrap_or_default(),
            part: (i % parts) as u32 + 1,
            carrier_id: s.carrier_id.clone(),
            status: match s.status() {
                SegmentStatus::Pending => "PENDING",
                SegmentStatus::Accepted => "ACCEPTED",
                SegmentStatus::Delivered => "DELIVERED",
                SegmentStatus::Undelivered => "UNDELIVERED",
            },
            report_status: s.report_status.clone(),
        })
        .collect();
    MessageView {
        id: m.id,
        state: m.state(),
        recipients: m.recipients.clone(),
        text: m.text.clone(),
        class: m.priority,
        link: m.link.clone(),
        client_ref: m.client_ref.clone(),
        attempts: m.attempts,
        last_error: m.last_error.clone(),
        submitted_at_ms: m.submitted_at_ms,
        segments,
        timeline: m.timeline.iter().map(timeline_entry).collect(),
        timeline_dropped: m.timeline_dropped,
        route: m.route.clone(),
        not_before_ms: m.not_before_ms,
        last_code: m.last_code,
        copies: Vec::new(),
        copy_of: (m.copy_of != 0).then_some(m.copy_of),
        duplicate_deliveries: m.duplicates,
        answered_by: node,
        applied_index: applied,
    }
}

/// `copy` as a copy of `group`.
pub fn copy_view(group: &MessageRecord, copy: &MessageRecord) -> CopyView {
    CopyView {
        id: copy.id,
        link: copy.link.clone(),
        state: copy.state(),
        won: copy.id == group.won_by,
        duplicate: copy.duplicate,
    }
}

/// One event of a timeline in words.
pub fn timeline_entry(e: &Event) -> TimelineEntry {
    TimelineEntry {
        at_ms: e.at_ms,
        kind: e.name(),
        detail: detail(e),
    }
}

/// An event's fields as people read them.
pub fn detail(e: &Event) -> String {
    match &e.kind {
        Some(Kind::Submitted(s)) => format!(
            "to {} via {} class {}{}{}{}{}",
            s.recipients.join(","),
            if s.route.is_empty() {
                format!("link {}", s.link)
            } else {
                format!("route {}", s.route)
            },
            CLASS_NAMES.get(s.priority as usize).unwrap_or(&"bulk"),
            if s.client_ref.is_empty() {
                String::new()
            } else {
                format!(" ref {}", s.client_ref)
            },
            if s.send_at_ms == 0 {
                String::new()
            } else {
                format!(" not before {} ({})", s.send_at_ms, s.deferred_because)
            },
            if s.fan_out_links.is_empty() {
                String::new()
            } else {
                format!(" fanned out over {}", s.fan_out_links.join(","))
            },
            if s.split.is_empty() {
                String::new()
            } else {
                format!(
                    " split by route: {}",
                    s.split
                        .iter()
                        .map(|p| format!(
                            "{} via {}",
                            p.recipients.join(","),
                            if p.route.is_empty() {
                                &p.link
                            } else {
                                &p.route
                            }
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        ),
        Some(Kind::Dispatched(d)) => format!(
            "link {}{} node {} epoch {} attempt {} segments {}",
            d.link,
            if d.slot.is_empty() {
                String::new()
            } else {
                format!(" slot {}", d.slot)
            },
            d.node,
            d.epoch,
            d.attempt,
            d.segments
        ),
        Some(Kind::CarrierAccepted(a)) => {
            format!(
                "link {} segment {} carrier id {}",
                a.link, a.segment, a.carrier_id
            )
        }
        Some(Kind::CarrierRejected(r)) => format!(
            "link {} segment {} code {} ({}) {}; {}",
            r.link,
            r.segment,
            r.code,
            if r.retryable {
                "retryable"
            } else {
                "permanent"
            },
            r.description,
            match (r.policy_decided, r.retry_at_ms) {
                (false, _) => "retried while attempts remain".to_string(),
                (true, 0) => "not retried: the message fails".to_string(),
                (true, at) if r.retry_link.is_empty() => format!("retry at {at}"),
                (true, at) => format!("retry at {at} through link {}", r.retry_link),
            }
        ),
        Some(Kind::DeliveryReported(r)) => format!(
            "link {} carrier id {} to {} status {} at {}",
            r.link, r.carrier_id, r.dest, r.status, r.carrier_time
        ),
        Some(Kind::Expired(_)) => "validity ran out".into(),
        Some(Kind::Canceled(_)) => "canceled".into(),
        Some(Kind::LinkAssigned(l)) => {
            format!("link {} to node {} epoch {}", l.link, l.node, l.epoch)
        }
        Some(Kind::Released(_)) => "send time reached: queued".into(),
        Some(Kind::Requeued(r)) => format!("given back by link {}: {}", r.link, r.reason),
        Some(Kind::LinkStatus(l)) => format!(
            "link {} {}{}: {}",
            l.link,
            if l.up { "up" } else { "down" },
            if l.congested { ", congested" } else { "" },
            l.reason
        ),
        Some(Kind::PolicyChanged(p)) => format!("policy version {} by {}", p.version, p.changed_by),
        Some(Kind::CarrierUnanswered(u)) => format!(
            "link {} segment {} no answer: {}",
            u.link, u.segment, u.failure
        ),
        Some(Kind::NodeDrain(n)) => format!(
            "node {} {}",
            n.node,
            if n.drained { "drained" } else { "undrained" }
        ),
        // Never in a message's timeline: replies have their own records.
        Some(Kind::ClientCreated(c)) => format!("client {} role {}", c.name, c.role),
        Some(Kind::ClientKeyAdded(k)) => format!("client {} key {}", k.client, k.key_id),
        Some(Kind::ClientKeyRevoked(k)) => format!("client {} key {} revoked", k.client, k.key_id),
        Some(Kind::ClientDeleted(d)) => format!("client {} deleted", d.name),
        Some(Kind::AdminAction(a)) => format!("{} {}", a.action, a.detail),
        Some(Kind::ClusterVersionRaised(v)) => format!("cluster version raised to {}", v.level),
        Some(Kind::MoReceived(_) | Kind::MoAssemblyClosed(_)) => String::new(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_raft::events::{MessageDispatched, MessageSubmitted};
    use herald_raft::records::SegmentRecord;

    fn record() -> MessageRecord {
        MessageRecord {
            id: 7,
            recipients: vec!["13800138000".into(), "13800138001".into()],
            state: MessageState::Sending as u32,
            priority: 0,
            segments: vec![SegmentRecord::default(); 4],
            timeline: vec![
                Event::new(
                    10,
                    Kind::Submitted(MessageSubmitted {
                        recipients: vec!["13800138000".into(), "13800138001".into()],
                        link: "gw".into(),
                        priority: 0,
                        client_ref: "r1".into(),
                        ..Default::default()
                    }),
                ),
                Event::new(
                    20,
                    Kind::Dispatched(MessageDispatched {
                        link: "gw".into(),
                        slot: "gw#2".into(),
                        node: 3,
                        epoch: 4,
                        attempt: 1,
                        segments: 4,
                        ..Default::default()
                    }),
                ),
            ],
            timeline_dropped: 5,
            ..Default::default()
        }
    }

    #[test]
    fn segments_are_recipients_times_parts_and_events_read_as_words() {
        let view = message_view(&record(), 2, 99);
        let where_: Vec<(&str, u32)> = view
            .segments
            .iter()
            .map(|s| (s.recipient.as_str(), s.part))
            .collect();
        assert_eq!(
            where_,
            [
                ("13800138000", 1),
                ("13800138000", 2),
                ("13800138001", 1),
                ("13800138001", 2)
            ]
        );
        assert_eq!(view.segments[0].status, "PENDING");
        assert_eq!(view.timeline[0].kind, "MessageSubmitted");
        assert_eq!(
            view.timeline[0].detail,
            "to 13800138000,13800138001 via link gw class alarm ref r1"
        );
        assert_eq!(
            view.timeline[1].detail,
            "link gw slot gw#2 node 3 epoch 4 attempt 1 segments 4"
        );
        assert_eq!((view.answered_by, view.applied_index), (2, 99));
        assert_eq!(view.timeline_dropped, 5);
        assert_eq!(view.copy_of, None);
    }
}
