//! What the projection stores: the current state of each message and the link table, as protobuf
//! records (explicit tags, like the events, so a newer node reads an older node's projection).

use crate::events::Event;

/// A message's lifecycle state. The numbers are the API enum's values (`herald.v1.MessageState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MessageState {
    /// Committed on a majority, waiting for its link.
    Accepted = 1,
    /// Dispatched to a link; not every segment acknowledged by the carrier yet.
    Sending = 2,
    /// Every segment acknowledged by the carrier.
    Sent = 3,
    Delivered = 4,
    Undelivered = 5,
    Failed = 6,
    Expired = 7,
    Canceled = 8,
    /// Committed, waiting for its send time (a scheduled send, quiet hours, a retry's backoff).
    Scheduled = 9,
}

impl MessageState {
    pub fn from_u32(value: u32) -> Option<Self> {
        use MessageState::*;
        Some(match value {
            1 => Accepted,
            2 => Sending,
            3 => Sent,
            4 => Delivered,
            5 => Undelivered,
            6 => Failed,
            7 => Expired,
            8 => Canceled,
            9 => Scheduled,
            _ => return None,
        })
    }

    /// Terminal states never change again (guarantee 3 counts a message done when it reaches one).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            MessageState::Delivered
                | MessageState::Undelivered
                | MessageState::Failed
                | MessageState::Expired
                | MessageState::Canceled
        )
    }

    pub fn name(self) -> &'static str {
        use MessageState::*;
        match self {
            Accepted => "ACCEPTED",
            Sending => "SENDING",
            Sent => "SENT",
            Delivered => "DELIVERED",
            Undelivered => "UNDELIVERED",
            Failed => "FAILED",
            Expired => "EXPIRED",
            Canceled => "CANCELED",
            Scheduled => "SCHEDULED",
        }
    }
}

/// Where one segment (one recipient × one part) stands with the carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum SegmentStatus {
    Pending = 0,
    Accepted = 1,
    Delivered = 2,
    Undelivered = 3,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SegmentRecord {
    #[prost(string, tag = "1")]
    pub carrier_id: String,
    /// A [`SegmentStatus`].
    #[prost(uint32, tag = "2")]
    pub status: u32,
    /// The carrier's raw report status, once reported.
    #[prost(string, tag = "3")]
    pub report_status: String,
}

impl SegmentRecord {
    pub fn status(&self) -> SegmentStatus {
        match self.status {
            1 => SegmentStatus::Accepted,
            2 => SegmentStatus::Delivered,
            3 => SegmentStatus::Undelivered,
            _ => SegmentStatus::Pending,
        }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MessageRecord {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(string, tag = "2")]
    pub client_id: String,
    #[prost(string, tag = "3")]
    pub idempotency_key: String,
    #[prost(string, tag = "4")]
    pub client_ref: String,
    #[prost(string, repeated, tag = "5")]
    pub recipients: Vec<String>,
    #[prost(string, tag = "6")]
    pub text: String,
    #[prost(uint32, tag = "7")]
    pub priority: u32,
    #[prost(string, tag = "8")]
    pub link: String,
    /// A [`MessageState`].
    #[prost(uint32, tag = "9")]
    pub state: u32,
    #[prost(uint64, tag = "10")]
    pub submitted_at_ms: u64,
    #[prost(uint64, tag = "11")]
    pub expires_at_ms: u64,
    #[prost(uint32, tag = "12")]
    pub attempts: u32,
    /// Epoch and node of the latest accepted dispatch.
    #[prost(uint64, tag = "13")]
    pub epoch: u64,
    #[prost(uint64, tag = "14")]
    pub node: u64,
    #[prost(message, repeated, tag = "15")]
    pub segments: Vec<SegmentRecord>,
    /// The events that concerned this message, in log order: the submission and the latest
    /// [`crate::projection::TIMELINE_LIMIT`] − 1 others (the protocol trace is read from them).
    #[prost(message, repeated, tag = "16")]
    pub timeline: Vec<Event>,
    #[prost(string, tag = "17")]
    pub last_error: String,
    /// The route the message was submitted to (empty: the client named `link`).
    #[prost(string, tag = "18")]
    pub route: String,
    /// While SCHEDULED: when it joins its queue.
    #[prost(uint64, tag = "19")]
    pub not_before_ms: u64,
    /// The connection slot of the latest accepted dispatch.
    #[prost(string, tag = "20")]
    pub slot: String,
    /// The carrier code of the latest refusal (0: none).
    #[prost(uint32, tag = "21")]
    pub last_code: u32,
    /// After a retryable refusal: the link the retry goes through (the next one of the route), so
    /// the message waits in that link's queue instead of its route's. Cleared when dispatched.
    #[prost(string, tag = "22")]
    pub retry_link: String,
    /// A fan-out copy: the id of the group (the message the client submitted) it belongs to.
    #[prost(uint64, tag = "23")]
    pub copy_of: u64,
    /// A fan-out group: the copies that carry it, one per link. The group itself is never
    /// queued or sent; its state is derived from its copies (see `projection::settle_group`).
    #[prost(uint64, repeated, tag = "24")]
    pub copies: Vec<u64>,
    /// A group: the copy whose delivery report came first (0: none yet).
    #[prost(uint64, tag = "25")]
    pub won_by: u64,
    /// A copy delivered after its group had already been delivered by another copy.
    #[prost(bool, tag = "26")]
    pub duplicate: bool,
    /// A group: how many copies were delivered after the first.
    #[prost(uint32, tag = "27")]
    pub duplicates: u32,
    /// A group split by route (recipients on different carriers): delivered only when every
    /// copy is. Without it, a group is a fan-out, delivered by its first copy.
    #[prost(bool, tag = "28")]
    pub split: bool,
    /// How many events were left out of `timeline` to keep it bounded (the oldest after the
    /// submission; see [`crate::projection::TIMELINE_LIMIT`]).
    #[prost(uint32, tag = "29")]
    pub timeline_dropped: u32,
}

impl MessageRecord {
    pub fn state(&self) -> MessageState {
        MessageState::from_u32(self.state).unwrap_or(MessageState::Accepted)
    }

    /// The name of the queue the message waits in: its retry link's, its route's, or its link's.
    pub fn queue_name(&self) -> String {
        if !self.retry_link.is_empty() {
            return queue_name("", &self.retry_link);
        }
        queue_name(&self.route, &self.link)
    }

    /// A fan-out group: sent only through its copies.
    pub fn is_group(&self) -> bool {
        !self.copies.is_empty()
    }
}

/// Route queues and link queues share one column family; a route's queue name starts with a
/// control character no link name may contain, so the two never collide.
pub fn queue_name(route: &str, link: &str) -> String {
    if route.is_empty() {
        link.to_string()
    } else {
        format!("\u{1}{route}")
    }
}

/// Which node holds a connection slot of a link, since which epoch, and how the link fares there.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LinkHolder {
    /// The slot: the link's name for a link of one connection, `name#n` for each of several.
    #[prost(string, tag = "1")]
    pub link: String,
    #[prost(uint64, tag = "2")]
    pub node: u64,
    #[prost(uint64, tag = "3")]
    pub epoch: u64,
    /// The holder reported the carrier connection down (unknown counts as up: a link is given
    /// the benefit of the doubt until its holder says otherwise).
    #[prost(bool, tag = "4")]
    pub down: bool,
    /// The holder reported flow-control answers from the carrier.
    #[prost(bool, tag = "5")]
    pub congested: bool,
    #[prost(string, tag = "6")]
    pub status_reason: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinkTable {
    #[prost(message, repeated, tag = "1")]
    pub links: Vec<LinkHolder>,
    /// Nodes an operator drained: they hold no links.
    #[prost(uint64, repeated, tag = "2")]
    pub drained: Vec<u64>,
}

/// The link a slot belongs to (`sms#2` → `sms`).
pub fn slot_link(slot: &str) -> &str {
    slot.split_once('#').map(|(link, _)| link).unwrap_or(slot)
}

impl LinkTable {
    /// The holder of a slot (a link of one connection is its own slot).
    pub fn holder(&self, slot: &str) -> Option<&LinkHolder> {
        self.links.iter().find(|h| h.link == slot)
    }

    /// Every slot of `link`.
    pub fn slots_of<'a>(&'a self, link: &'a str) -> impl Iterator<Item = &'a LinkHolder> + 'a {
        self.links
            .iter()
            .filter(move |h| slot_link(&h.link) == link)
    }

    /// A link is usable when at least one of its slots is not reported down (or none reported).
    pub fn link_up(&self, link: &str) -> bool {
        let mut slots = self.slots_of(link).peekable();
        slots.peek().is_none() || slots.any(|h| !h.down)
    }

    /// Congested when every slot that is up reports flow control.
    pub fn link_congested(&self, link: &str) -> bool {
        let up: Vec<&LinkHolder> = self.slots_of(link).filter(|h| !h.down).collect();
        !up.is_empty() && up.iter().all(|h| h.congested)
    }

    pub fn is_drained(&self, node: u64) -> bool {
        self.drained.contains(&node)
    }
}

/// The dispatch policy in force, as an operator last set it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PolicyRecord {
    #[prost(uint64, tag = "1")]
    pub version: u64,
    #[prost(string, tag = "2")]
    pub document: String,
    #[prost(uint64, tag = "3")]
    pub changed_at_ms: u64,
    #[prost(string, tag = "4")]
    pub changed_by: String,
}

/// One received part of a long mobile-originated message, as an assembly or a reply keeps it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MoPartRecord {
    /// 1-based part number (1 for a message that came whole).
    #[prost(uint32, tag = "1")]
    pub number: u32,
    #[prost(string, tag = "2")]
    pub text: String,
    #[prost(string, tag = "3")]
    pub encoding: String,
    #[prost(string, tag = "4")]
    pub carrier_id: String,
    /// Where it was received: the link, the connection slot and the node.
    #[prost(string, tag = "5")]
    pub link: String,
    #[prost(string, tag = "6")]
    pub slot: String,
    #[prost(uint64, tag = "7")]
    pub node: u64,
    /// When the receiving node recorded it (the event's time).
    #[prost(uint64, tag = "8")]
    pub at_ms: u64,
    #[prost(string, tag = "9")]
    pub carrier_time: String,
}

/// A long MO message being joined (`reply_id` 0), or the memory of one already joined (or of a
/// single message with a carrier id), kept for a while so a carrier's resend is recognised as a
/// duplicate instead of starting a new message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MoAssemblyRecord {
    /// The age stamp of the entry in the age index (first part, or completion).
    #[prost(uint64, tag = "1")]
    pub since_ms: u64,
    /// Parts received so far, in arrival order (emptied once the reply exists).
    #[prost(message, repeated, tag = "2")]
    pub parts: Vec<MoPartRecord>,
    /// The latest non-empty reply-rule client of the parts.
    #[prost(string, tag = "3")]
    pub rule_client: String,
    /// The reply made of these parts; 0 while parts are missing.
    #[prost(uint64, tag = "4")]
    pub reply_id: u64,
    /// Carrier ids of the parts of the finished message: a part with one of them is a resend.
    #[prost(string, repeated, tag = "5")]
    pub carrier_ids: Vec<String>,
    #[prost(string, tag = "6")]
    pub scheme: String,
    /// What the assembly is keyed by (see [`crate::keys::mo_concat`], [`crate::keys::mo_single`]),
    /// so the leader can name it when it closes it. `total` 0: a single message's guard.
    #[prost(string, tag = "7")]
    pub src: String,
    #[prost(string, tag = "8")]
    pub dest: String,
    #[prost(uint32, tag = "9")]
    pub reference: u32,
    #[prost(uint32, tag = "10")]
    pub total: u32,
}

impl MoAssemblyRecord {
    /// The event that closes this assembly.
    pub fn closing_event(&self) -> crate::events::MoAssemblyClosed {
        crate::events::MoAssemblyClosed {
            src: self.src.clone(),
            dest: self.dest.clone(),
            reference: self.reference,
            total: self.total,
            carrier_id: if self.total >= 2 {
                String::new()
            } else {
                self.carrier_ids.first().cloned().unwrap_or_default()
            },
            since_ms: self.since_ms,
        }
    }
}

/// A subscriber's reply, joined from its parts and routed to a client system.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReplyRecord {
    /// Sequential over the cluster, from 1.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// The client system it belongs to; empty = unrouted (visible to administrators).
    #[prost(string, tag = "2")]
    pub client_id: String,
    /// Why it went there: `rule` (the policy's reply rules), `last-sender` (the client that last
    /// sent a message to this subscriber) or empty (unrouted).
    #[prost(string, tag = "3")]
    pub routed_by: String,
    #[prost(string, tag = "4")]
    pub src: String,
    #[prost(string, tag = "5")]
    pub dest: String,
    /// The parts' texts joined in part order.
    #[prost(string, tag = "6")]
    pub text: String,
    /// How many parts the message has (1 for a message that came whole).
    #[prost(uint32, tag = "7")]
    pub total: u32,
    /// False when parts are missing: the leader closed the assembly after its time ran out, or the
    /// concatenation header was unusable. `text` is then what arrived, in part order.
    #[prost(bool, tag = "8")]
    pub complete: bool,
    /// The parts received, in part order.
    #[prost(message, repeated, tag = "9")]
    pub parts: Vec<MoPartRecord>,
    /// When the first part was recorded, and when the reply was made.
    #[prost(uint64, tag = "10")]
    pub received_at_ms: u64,
    #[prost(uint64, tag = "11")]
    pub completed_at_ms: u64,
    /// `udh8`, `udh16`, `sar`, or empty for a message that came whole.
    #[prost(string, tag = "12")]
    pub scheme: String,
}

/// A client system: who may call the API, with which role, by which keys.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClientRecord {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub role: String,
    #[prost(uint64, tag = "3")]
    pub created_at_ms: u64,
    /// Live keys first added first, then the most recently revoked ones (kept so that a call
    /// with a revoked key is told so; at most [`crate::clients::REVOKED_KEPT`]).
    #[prost(message, repeated, tag = "4")]
    pub keys: Vec<KeyRecord>,
}

/// One key of a client, as the log knows it: its public id and the SHA-256 of the whole key.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyRecord {
    #[prost(string, tag = "1")]
    pub key_id: String,
    #[prost(bytes = "vec", tag = "2")]
    pub sha256: Vec<u8>,
    #[prost(uint64, tag = "3")]
    pub added_at_ms: u64,
    /// 0: live.
    #[prost(uint64, tag = "4")]
    pub revoked_at_ms: u64,
}

impl KeyRecord {
    pub fn is_live(&self) -> bool {
        self.revoked_at_ms == 0
    }
}

impl ClientRecord {
    pub fn live_keys(&self) -> impl Iterator<Item = &KeyRecord> {
        self.keys.iter().filter(|k| k.is_live())
    }

    pub fn key(&self, key_id: &str) -> Option<&KeyRecord> {
        self.keys.iter().find(|k| k.key_id == key_id)
    }
}

/// One change an authenticated caller made, as the audit trail lists it. Never a key or a secret:
/// the principal's name and public key id, what was done and to what.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuditRecord {
    /// Its place in the trail (log order), starting at 1.
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    /// The event's time (the receiving node's clock).
    #[prost(uint64, tag = "2")]
    pub at_ms: u64,
    #[prost(message, optional, tag = "3")]
    pub principal: Option<crate::events::Principal>,
    /// `policy.set`, `node.drain`, `node.undrain`, `message.cancel`, `client.create`,
    /// `client.key.add`, `client.key.revoke`, `client.delete`.
    #[prost(string, tag = "4")]
    pub action: String,
    /// What was changed: `version 3`, `node 2`, `message 17`, `client erp role sender`, …
    #[prost(string, tag = "5")]
    pub detail: String,
}
