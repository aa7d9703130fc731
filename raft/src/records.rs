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
    /// Every event that concerned this message, in log order.
    #[prost(message, repeated, tag = "16")]
    pub timeline: Vec<Event>,
    #[prost(string, tag = "17")]
    pub last_error: String,
}

impl MessageRecord {
    pub fn state(&self) -> MessageState {
        MessageState::from_u32(self.state).unwrap_or(MessageState::Accepted)
    }
}

/// Which node holds a link, and since which epoch.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LinkHolder {
    #[prost(string, tag = "1")]
    pub link: String,
    #[prost(uint64, tag = "2")]
    pub node: u64,
    #[prost(uint64, tag = "3")]
    pub epoch: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinkTable {
    #[prost(message, repeated, tag = "1")]
    pub links: Vec<LinkHolder>,
}

impl LinkTable {
    pub fn holder(&self, link: &str) -> Option<&LinkHolder> {
        self.links.iter().find(|h| h.link == link)
    }
}
