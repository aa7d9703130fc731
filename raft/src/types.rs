//! The openraft type configuration: what a log entry carries, what applying it answers, and what a
//! cluster member is. Everything Raft-generic in this crate is expressed through these aliases.

use serde::{Deserialize, Serialize};

/// A node's id in the cluster, as configured (`node-id` in the TOML file).
pub type NodeId = u64;

/// What the cluster knows about a member: where its Raft peers and its clients reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Address of the node's internal gRPC service (Raft RPCs and forwarded writes).
    pub raft_addr: String,
    /// Address of the node's public gRPC service (Messaging, Cluster).
    pub grpc_addr: String,
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "raft={} grpc={}", self.raft_addr, self.grpc_addr)
    }
}

/// The application payload of one log entry: a protobuf-encoded [`crate::events::EventBatch`].
///
/// Raft only moves these bytes; they are decoded when applied. Keeping the payload opaque means the
/// Raft envelope never changes when events gain fields, which is what a rolling upgrade needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsPayload(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl std::fmt::Display for EventsPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EventBatch({} bytes)", self.0.len())
    }
}

/// What applying one entry answers: one outcome per event, in the batch's order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyResponse {
    pub outcomes: Vec<EventOutcome>,
}

/// The state machine's verdict on one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventOutcome {
    /// A submission: the message id, and whether this event created it (false: the idempotency key
    /// was already known and the earlier message's id is returned).
    Submitted { message_id: u64, created: bool },
    /// The event changed state as asked.
    Applied,
    /// The event was recorded in no message because it no longer fits the state (a dispatch from a
    /// fenced epoch, an event for a message already terminal, an unknown message id).
    Ignored { reason: String },
    /// A submission whose idempotency key is already known for a request with other content:
    /// nothing was created. `differs` names what differs from the earlier message
    /// (`recipients`, `text`, `priority`, `client_ref`, or `link or urgent` when none of those
    /// do). Last, so that the other variants keep the bincode numbers older nodes use.
    IdempotencyConflict {
        message_id: u64,
        differs: Vec<String>,
    },
}

openraft::declare_raft_types!(
    /// Herald's Raft type configuration.
    pub TypeConfig:
        D = EventsPayload,
        R = ApplyResponse,
        NodeId = NodeId,
        Node = Member,
);

pub type Raft = openraft::Raft<TypeConfig, crate::state_machine::StateMachineStore>;
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Entry = <TypeConfig as openraft::RaftTypeConfig>::Entry;
pub type Vote = <TypeConfig as openraft::RaftTypeConfig>::Vote;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot's data is a file, never its bytes in memory (see [`crate::snapshot`]).
pub type SnapshotData = crate::snapshot::SnapshotFile;
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotData>;
pub type RaftMetrics = openraft::RaftMetrics<TypeConfig>;
