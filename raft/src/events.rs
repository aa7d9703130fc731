//! The event log's vocabulary: every state change of a message or a link is one of these events.
//!
//! Events are protobuf messages (prost), written here with explicit field tags instead of generated
//! from a `.proto` file: the tags are the wire contract, so a field may be added under a new tag and a
//! node of the next version still reads what this one wrote. Never reuse or renumber a tag.

/// One Raft entry's payload: events proposed together (group commit) and applied in order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EventBatch {
    #[prost(message, repeated, tag = "1")]
    pub events: Vec<Event>,
}

/// One event, stamped with the proposer's wall clock.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Milliseconds since the Unix epoch, taken where the event was observed.
    #[prost(uint64, tag = "1")]
    pub at_ms: u64,
    #[prost(
        oneof = "event::Kind",
        tags = "2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23"
    )]
    pub kind: Option<event::Kind>,
    /// Who asked for the event, set where the request was authenticated (the node that received
    /// it). Absent in events a node makes by itself (dispatches, timers, link status) and in
    /// events of older nodes. It sits on the event, not the batch, because the proposer batches
    /// several callers' events into one entry.
    #[prost(message, optional, tag = "30")]
    pub principal: Option<Principal>,
}

/// An authenticated caller, as the audit trail names it: never a key or a secret, only the
/// public key id.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Principal {
    /// The client's name; `bootstrap-admin` for a key of the node config's `[auth]` list;
    /// `anonymous` on an insecure node.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The public id of the key that authenticated the call (empty for `anonymous`).
    #[prost(string, tag = "2")]
    pub key_id: String,
    #[prost(enumeration = "PrincipalKind", tag = "3")]
    pub kind: i32,
}

/// What kind of caller a [`Principal`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PrincipalKind {
    Unspecified = 0,
    /// A client system of the replicated client list, by one of its keys.
    Client = 1,
    /// A key listed in a node config's `[auth] admin-key-sha256`: admin without being in the log.
    BootstrapAdmin = 2,
    /// Any caller of a node running with `insecure = true`.
    Anonymous = 3,
}

impl PrincipalKind {
    pub fn name(self) -> &'static str {
        match self {
            PrincipalKind::Unspecified => "unspecified",
            PrincipalKind::Client => "client",
            PrincipalKind::BootstrapAdmin => "bootstrap-admin",
            PrincipalKind::Anonymous => "anonymous",
        }
    }
}

pub mod event {
    /// What happened.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(message, tag = "2")]
        Submitted(super::MessageSubmitted),
        #[prost(message, tag = "3")]
        Dispatched(super::MessageDispatched),
        #[prost(message, tag = "4")]
        CarrierAccepted(super::CarrierAccepted),
        #[prost(message, tag = "5")]
        CarrierRejected(super::CarrierRejected),
        #[prost(message, tag = "6")]
        DeliveryReported(super::DeliveryReported),
        #[prost(message, tag = "7")]
        Expired(super::MessageExpired),
        #[prost(message, tag = "8")]
        LinkAssigned(super::LinkAssigned),
        #[prost(message, tag = "9")]
        Canceled(super::MessageCanceled),
        #[prost(message, tag = "10")]
        Released(super::MessageReleased),
        #[prost(message, tag = "11")]
        Requeued(super::MessageRequeued),
        #[prost(message, tag = "12")]
        LinkStatus(super::LinkStatusChanged),
        #[prost(message, tag = "13")]
        PolicyChanged(super::PolicyChanged),
        #[prost(message, tag = "14")]
        NodeDrain(super::NodeDrainChanged),
        #[prost(message, tag = "15")]
        MoReceived(super::MoReceived),
        #[prost(message, tag = "16")]
        MoAssemblyClosed(super::MoAssemblyClosed),
        #[prost(message, tag = "17")]
        CarrierUnanswered(super::CarrierUnanswered),
        #[prost(message, tag = "18")]
        ClientCreated(super::ClientCreated),
        #[prost(message, tag = "19")]
        ClientKeyAdded(super::ClientKeyAdded),
        #[prost(message, tag = "20")]
        ClientKeyRevoked(super::ClientKeyRevoked),
        #[prost(message, tag = "21")]
        ClientDeleted(super::ClientDeleted),
        #[prost(message, tag = "22")]
        AdminAction(super::AdminAction),
        #[prost(message, tag = "23")]
        ClusterVersionRaised(super::ClusterVersionRaised),
    }
}

/// The newest log format this build can apply. Level 1 is every format up to issue 17; level 2
/// adds [`AdminAction`] (tag 22) and [`ClusterVersionRaised`] (tag 23). A build that writes a new kind of event (or a field whose
/// absence changes meaning) raises this, and writes it only once the cluster's level (the last
/// [`ClusterVersionRaised`] applied) is at least the new level: an older node never meets it.
pub const FORMAT_LEVEL: u32 = 2;

/// The level of a cluster whose log has no [`ClusterVersionRaised`]: the formats every version
/// since the log began can apply.
pub const BASE_FORMAT_LEVEL: u32 = 1;

/// The cluster's format level raised to `level`: from this entry on, every member may write
/// events of that level. Proposed only when every member reported a build that applies it
/// (automatically by the leader, or `herald cluster finalize`); the caller's principal stamped.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClusterVersionRaised {
    #[prost(uint32, tag = "1")]
    pub level: u32,
}

/// A client's submission, validated before it was proposed.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MessageSubmitted {
    /// The submitting system (from its credentials; "anonymous" without).
    #[prost(string, tag = "1")]
    pub client_id: String,
    /// Empty when the client gave none.
    #[prost(string, tag = "2")]
    pub idempotency_key: String,
    #[prost(string, tag = "3")]
    pub client_ref: String,
    #[prost(string, repeated, tag = "4")]
    pub recipients: Vec<String>,
    #[prost(string, tag = "5")]
    pub text: String,
    /// 0 = most urgent (alarm) … 3 = bulk.
    #[prost(uint32, tag = "6")]
    pub priority: u32,
    /// The link chosen for this message.
    #[prost(string, tag = "7")]
    pub link: String,
    /// The message expires at this time (ms since epoch); 0 = never.
    #[prost(uint64, tag = "8")]
    pub expires_at_ms: u64,
    /// The route whose links may carry the message (its queue is the route's); empty when the
    /// client named a link, which is then the only one.
    #[prost(string, tag = "9")]
    pub route: String,
    /// Not to be sent before this time (ms since epoch): a scheduled send, or the end of the
    /// class's quiet hours. 0 or a time already past = at once.
    #[prost(uint64, tag = "10")]
    pub send_at_ms: u64,
    /// Why the message waits until `send_at_ms` ("scheduled", "quiet hours of bulk"), for its timeline.
    #[prost(string, tag = "11")]
    pub deferred_because: String,
    /// An urgent message sent through several links of its route at once: one copy per link
    /// (the first through the route's queue, the others pinned to their link). Empty: one send.
    #[prost(string, repeated, tag = "12")]
    pub fan_out_links: Vec<String>,
    /// Recipients whose numbers take different routes (carriers): one copy per route, each with
    /// its own recipients; the message is delivered when every copy is. Empty: one message.
    #[prost(message, repeated, tag = "13")]
    pub split: Vec<RecipientsRoute>,
    /// A digest of what the client asked for ([`crate::idempotency::request_digest`]), so that a
    /// key reused for other content is refused rather than answered with the earlier message.
    /// Empty in events of older nodes and for keys the node made up: those keep the old rule
    /// (a known key returns its message, whatever the content).
    #[prost(bytes = "vec", tag = "14")]
    pub request_digest: Vec<u8>,
}

/// Some of a message's recipients and the route (or, without one, the link) that carries them.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RecipientsRoute {
    #[prost(string, tag = "1")]
    pub route: String,
    #[prost(string, tag = "2")]
    pub link: String,
    #[prost(string, repeated, tag = "3")]
    pub recipients: Vec<String>,
}

/// A link holder took a message off the queue and is about to send it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MessageDispatched {
    #[prost(uint64, tag = "1")]
    pub message_id: u64,
    #[prost(string, tag = "2")]
    pub link: String,
    #[prost(uint64, tag = "3")]
    pub node: u64,
    /// The holder's assignment epoch: a dispatch from an older epoch is fenced (ignored).
    #[prost(uint64, tag = "4")]
    pub epoch: u64,
    #[prost(uint32, tag = "5")]
    pub attempt: u32,
    /// How many carrier submissions (recipients × parts) the message takes on this link.
    #[prost(uint32, tag = "6")]
    pub segments: u32,
    /// The connection slot of the link that sends it (`link#n`); empty = the link's only slot.
    #[prost(string, tag = "7")]
    pub slot: String,
}

/// The carrier acknowledged one segment and gave it an id.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CarrierAccepted {
    #[prost(uint64, tag = "1")]
    pub message_id: u64,
    #[prost(string, tag = "2")]
    pub link: String,
    #[prost(uint32, tag = "3")]
    pub segment: u32,
    #[prost(string, tag = "4")]
    pub carrier_id: String,
    /// The SUBMIT and its response, for the protocol trace (absent in events of older nodes).
    #[prost(message, optional, tag = "20")]
    pub pdus: Option<SubmitPdus>,
    /// The connection slot that sent it (empty: the link's only one) and the node holding it.
    #[prost(string, tag = "21")]
    pub slot: String,
    #[prost(uint64, tag = "22")]
    pub node: u64,
}

/// The carrier refused one segment.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CarrierRejected {
    #[prost(uint64, tag = "1")]
    pub message_id: u64,
    #[prost(string, tag = "2")]
    pub link: String,
    #[prost(uint32, tag = "3")]
    pub segment: u32,
    #[prost(uint32, tag = "4")]
    pub code: u32,
    #[prost(bool, tag = "5")]
    pub retryable: bool,
    #[prost(string, tag = "6")]
    pub description: String,
    /// The retry policy's decision, taken by the link holder: with `policy_decided`, the message
    /// waits until `retry_at_ms` and is offered again, or fails when it is 0. Events written
    /// before retry policies existed leave both unset and fall back to [`crate::projection::MAX_ATTEMPTS`].
    #[prost(uint64, tag = "7")]
    pub retry_at_ms: u64,
    #[prost(bool, tag = "8")]
    pub policy_decided: bool,
    /// The link the retry goes through (the holder's choice: the next usable link of the route);
    /// empty = back to the route's (or the link's own) queue.
    #[prost(string, tag = "12")]
    pub retry_link: String,
    /// The SUBMIT and its response, for the protocol trace (absent in events of older nodes).
    #[prost(message, optional, tag = "20")]
    pub pdus: Option<SubmitPdus>,
    #[prost(string, tag = "21")]
    pub slot: String,
    #[prost(uint64, tag = "22")]
    pub node: u64,
}

/// A delivery report from the carrier, matched to its message by `link` and `carrier_id`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeliveryReported {
    #[prost(string, tag = "1")]
    pub link: String,
    #[prost(string, tag = "2")]
    pub carrier_id: String,
    #[prost(string, tag = "3")]
    pub dest: String,
    /// The carrier's raw status (DELIVRD, UNDELIV, EXPIRED, …).
    #[prost(string, tag = "4")]
    pub status: String,
    #[prost(bool, tag = "5")]
    pub delivered: bool,
    /// The carrier's own completion time, as it wrote it.
    #[prost(string, tag = "6")]
    pub carrier_time: String,
    /// The PDU the report came in (`CMPP_DELIVER`, `deliver_sm`, …) and its sequence number,
    /// for the protocol trace; empty in events of older nodes.
    #[prost(string, tag = "20")]
    pub command: String,
    #[prost(uint32, tag = "21")]
    pub sequence: u32,
    /// The carrier's raw error code beside `status`, where the protocol has one (`err:`).
    #[prost(string, tag = "22")]
    pub error_code: String,
    /// The carrier's own submit time, as it wrote it.
    #[prost(string, tag = "23")]
    pub carrier_submit_time: String,
    /// The connection slot the report arrived on (empty: the link's only one).
    #[prost(string, tag = "24")]
    pub slot: String,
}

/// One submit PDU as it went on the wire and what answered it: the facts of a protocol trace
/// line. Carried inside the events written for each exchange anyway, so tracing adds no
/// Raft entry to the path of a message that goes through.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SubmitPdus {
    /// The request's command name in the protocol's spelling (`CMPP_SUBMIT`, `submit_sm`, …).
    #[prost(string, tag = "1")]
    pub command: String,
    /// Its sequence number; 0 = it never reached a connection.
    #[prost(uint32, tag = "2")]
    pub sequence: u32,
    /// How long before the event's `at_ms` (the response's time, or the failure's) it was
    /// handed to the connection: a delta, which takes fewer bytes than a time on every message.
    #[prost(uint32, tag = "3")]
    pub sent_ms_before: u32,
    /// The response's command name when it is not the request's own response (a generic_nack,
    /// an unexpected PDU); empty for the usual response (see [`SubmitPdus::response_name`]),
    /// again to keep the bytes written for every message few.
    #[prost(string, tag = "4")]
    pub response: String,
    /// The response's raw status or result code.
    #[prost(uint32, tag = "5")]
    pub status: u32,
}

impl SubmitPdus {
    /// The name of the request's own response: every protocol Herald speaks names it after the
    /// request (`CMPP_SUBMIT_RESP`, `submit_sm_resp`).
    pub fn own_response(command: &str) -> String {
        let lower = command.bytes().any(|b| b.is_ascii_lowercase());
        format!("{command}{}", if lower { "_resp" } else { "_RESP" })
    }

    /// The response's command name, for an event that had a response.
    pub fn response_name(&self) -> String {
        if self.response.is_empty() {
            SubmitPdus::own_response(&self.command)
        } else {
            self.response.clone()
        }
    }

    /// When the request was sent, given the event's time.
    pub fn sent_at_ms(&self, event_at_ms: u64) -> u64 {
        event_at_ms.saturating_sub(u64::from(self.sent_ms_before))
    }
}

/// A segment's submit got no answer: no response in time, the connection was lost with it in
/// the window, or no connection came up to send it on. Written for the protocol trace only — the
/// message stays in flight and its sender tries again — so only failures cost an event.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CarrierUnanswered {
    #[prost(uint64, tag = "1")]
    pub message_id: u64,
    #[prost(string, tag = "2")]
    pub link: String,
    #[prost(string, tag = "3")]
    pub slot: String,
    #[prost(uint64, tag = "4")]
    pub node: u64,
    #[prost(uint32, tag = "5")]
    pub segment: u32,
    #[prost(message, optional, tag = "6")]
    pub pdus: Option<SubmitPdus>,
    /// Why nothing answered, as the link saw it.
    #[prost(string, tag = "7")]
    pub failure: String,
}

/// The message's validity ran out before it reached a terminal state.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MessageExpired {
    #[prost(uint64, tag = "1")]
    pub message_id: u64,
}

/// The message was canceled before it was sent.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MessageCanceled {
    #[prost(uint64, tag = "1")]
    pub message_id: u64,
}

/// A scheduled (or backed-off) message's time came: it joins its queue.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MessageReleased {
    #[prost(uint64, tag = "1")]
    pub message_id: u64,
}

/// A link holder gave a message back to its queue unsent (the link is down and the route has
/// other links): any link of the route may take it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MessageRequeued {
    #[prost(uint64, tag = "1")]
    pub message_id: u64,
    #[prost(string, tag = "2")]
    pub link: String,
    /// The slot and epoch of the dispatch being given back: a stale holder's requeue is ignored.
    #[prost(string, tag = "3")]
    pub slot: String,
    #[prost(uint64, tag = "4")]
    pub epoch: u64,
    #[prost(string, tag = "5")]
    pub reason: String,
}

/// A link holder saw its carrier connection change: up or down, congested (flow-control answers)
/// or not. Routes read this to decide when backups take over.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LinkStatusChanged {
    #[prost(string, tag = "1")]
    pub link: String,
    #[prost(string, tag = "2")]
    pub slot: String,
    #[prost(uint64, tag = "3")]
    pub epoch: u64,
    #[prost(bool, tag = "4")]
    pub up: bool,
    #[prost(bool, tag = "5")]
    pub congested: bool,
    #[prost(string, tag = "6")]
    pub reason: String,
}

/// An operator replaced the dispatch policy (routes, classes, quotas). `document` is the policy as
/// JSON with its own `format` field; the projection keeps it as given and nodes interpret it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PolicyChanged {
    /// Must be the current version + 1, so two operators' concurrent edits cannot both win.
    #[prost(uint64, tag = "1")]
    pub version: u64,
    #[prost(string, tag = "2")]
    pub document: String,
    #[prost(string, tag = "3")]
    pub changed_by: String,
}

/// An operator drained a node (its links move away and it gets none) or undrained it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeDrainChanged {
    #[prost(uint64, tag = "1")]
    pub node: u64,
    #[prost(bool, tag = "2")]
    pub drained: bool,
}

/// An operator's action that changes no projected state but belongs in the audit trail:
/// Raft membership changes (`herald cluster add-node | remove-node`: the change itself is
/// openraft's membership entry) and backups. A node that predates it ignores it (its audit trail
/// lacks the record).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AdminAction {
    /// As the audit trail shows it: `member.add`, `member.promote`, `member.demote`,
    /// `member.remove`, `cluster.backup`.
    #[prost(string, tag = "1")]
    pub action: String,
    /// The node it concerns (0: none).
    #[prost(uint64, tag = "2")]
    pub node: u64,
    #[prost(string, tag = "3")]
    pub detail: String,
}

/// The leader handed a link to a node; `epoch` grows with every assignment of that link.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LinkAssigned {
    #[prost(string, tag = "1")]
    pub link: String,
    #[prost(uint64, tag = "2")]
    pub node: u64,
    #[prost(uint64, tag = "3")]
    pub epoch: u64,
}

/// A mobile-originated message (a subscriber's reply), or one part of a long one, as a carrier
/// delivered it on one of our links. The carrier is acknowledged only once this event commits.
/// The projection joins the parts of a long message (wherever they were received) into one
/// reply, routed to a client system.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MoReceived {
    #[prost(string, tag = "1")]
    pub link: String,
    /// The connection slot that received it (`link#n`); empty = the link's only slot.
    #[prost(string, tag = "2")]
    pub slot: String,
    /// The node that received it.
    #[prost(uint64, tag = "3")]
    pub node: u64,
    /// The subscriber's number, as the carrier wrote it.
    #[prost(string, tag = "4")]
    pub src: String,
    /// The SP number the subscriber wrote to, with any extension.
    #[prost(string, tag = "5")]
    pub dest: String,
    /// This part's text, decoded with its data coding.
    #[prost(string, tag = "6")]
    pub text: String,
    /// The data coding's name (`ucs2`, `gbk`, `ascii`, `gsm7`, …).
    #[prost(string, tag = "7")]
    pub encoding: String,
    /// The carrier's id of this deliver (may be empty): a resend after a lost acknowledgement
    /// carries the same id, which is how duplicates are recognised.
    #[prost(string, tag = "8")]
    pub carrier_id: String,
    /// Set for one part of a long message; absent for a message that came whole.
    #[prost(message, optional, tag = "9")]
    pub concat: Option<MoConcat>,
    /// The carrier's own time of receipt, as it wrote it (empty when the protocol has none).
    #[prost(string, tag = "10")]
    pub carrier_time: String,
    /// The client system the dispatch policy's reply rules gave this message's destination, on
    /// the receiving node (empty: no rule matched). Decided before proposing, like a
    /// submission's route, so applying stays a pure function of the log.
    #[prost(string, tag = "11")]
    pub rule_client: String,
}

/// Concatenation information of one part of a long mobile-originated message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MoConcat {
    /// The message's reference (8 or 16 bits).
    #[prost(uint32, tag = "1")]
    pub reference: u32,
    #[prost(uint32, tag = "2")]
    pub total: u32,
    /// This part's number, 1-based.
    #[prost(uint32, tag = "3")]
    pub number: u32,
    /// Where it came from: `udh8`, `udh16` or `sar` (SMPP's sar_* parameters).
    #[prost(string, tag = "4")]
    pub scheme: String,
}

/// The leader closed an MO assembly that outlived its time: a long message still missing parts
/// becomes a reply marked incomplete (with the parts present), and the record kept to recognise
/// duplicates of a finished message is forgotten.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MoAssemblyClosed {
    #[prost(string, tag = "1")]
    pub src: String,
    #[prost(string, tag = "2")]
    pub dest: String,
    /// With `total` ≥ 2: the long message's reference; otherwise unused.
    #[prost(uint32, tag = "3")]
    pub reference: u32,
    /// The long message's part count; 0 for the record of a single message (keyed by
    /// `carrier_id`).
    #[prost(uint32, tag = "4")]
    pub total: u32,
    #[prost(string, tag = "5")]
    pub carrier_id: String,
    /// The assembly's age stamp as the leader read it: an assembly restarted since (another
    /// message reusing the reference) has another stamp and is left alone.
    #[prost(uint64, tag = "6")]
    pub since_ms: u64,
}

/// An administrator registered a client system (an API caller) with a role and its first key.
/// The key travels in this event, not in a [`ClientKeyAdded`] beside it, so that a creation
/// refused (the name exists) adds no key to the existing client.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClientCreated {
    #[prost(string, tag = "1")]
    pub name: String,
    /// `admin`, `operator`, `sender` or `viewer`, checked where the request was received.
    #[prost(string, tag = "2")]
    pub role: String,
    /// The first key's public id and the SHA-256 of the whole key (empty: no key yet).
    #[prost(string, tag = "3")]
    pub key_id: String,
    #[prost(bytes = "vec", tag = "4")]
    pub key_sha256: Vec<u8>,
}

/// A key was added to a client. Only the SHA-256 of the whole key travels and is stored: the key
/// itself is shown once to whoever created it and exists nowhere in the cluster.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClientKeyAdded {
    #[prost(string, tag = "1")]
    pub client: String,
    /// The key's public id (12 lowercase hex characters), part of the key.
    #[prost(string, tag = "2")]
    pub key_id: String,
    #[prost(bytes = "vec", tag = "3")]
    pub key_sha256: Vec<u8>,
}

/// A client's key stops working.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClientKeyRevoked {
    #[prost(string, tag = "1")]
    pub client: String,
    #[prost(string, tag = "2")]
    pub key_id: String,
}

/// A client and all its keys are removed (its messages and replies stay).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClientDeleted {
    #[prost(string, tag = "1")]
    pub name: String,
}

impl Event {
    pub fn new(at_ms: u64, kind: event::Kind) -> Self {
        Event {
            at_ms,
            kind: Some(kind),
            principal: None,
        }
    }

    /// The same event, asked for by `principal`.
    pub fn by(mut self, principal: Principal) -> Self {
        self.principal = Some(principal);
        self
    }

    /// The event's name as shown in a message's timeline.
    pub fn name(&self) -> &'static str {
        use event::Kind::*;
        match &self.kind {
            Some(Submitted(_)) => "MessageSubmitted",
            Some(Dispatched(_)) => "MessageDispatched",
            Some(CarrierAccepted(_)) => "CarrierAccepted",
            Some(CarrierRejected(_)) => "CarrierRejected",
            Some(DeliveryReported(_)) => "DeliveryReported",
            Some(Expired(_)) => "MessageExpired",
            Some(LinkAssigned(_)) => "LinkAssigned",
            Some(Canceled(_)) => "MessageCanceled",
            Some(Released(_)) => "MessageReleased",
            Some(Requeued(_)) => "MessageRequeued",
            Some(LinkStatus(_)) => "LinkStatusChanged",
            Some(PolicyChanged(_)) => "PolicyChanged",
            Some(NodeDrain(_)) => "NodeDrainChanged",
            Some(MoReceived(_)) => "MoReceived",
            Some(MoAssemblyClosed(_)) => "MoAssemblyClosed",
            Some(CarrierUnanswered(_)) => "CarrierUnanswered",
            Some(ClientCreated(_)) => "ClientCreated",
            Some(ClientKeyAdded(_)) => "ClientKeyAdded",
            Some(ClientKeyRevoked(_)) => "ClientKeyRevoked",
            Some(ClientDeleted(_)) => "ClientDeleted",
            Some(AdminAction(_)) => "AdminAction",
            Some(ClusterVersionRaised(_)) => "ClusterVersionRaised",
            None => "Unknown",
        }
    }
}

/// Milliseconds since the Unix epoch, for stamping events.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
