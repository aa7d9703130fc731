//! What the node learns from storage and apply for its metrics, without this crate knowing
//! Prometheus: the log's fsync durations, what applying changed (messages reaching a terminal
//! state, delivery reports and their delay, replies routed or not), snapshots built and
//! installed. The node implements [`Observer`]; the default does nothing.
//!
//! Apply notes are collected while a batch of entries is applied and handed over only once the
//! batch is written, so each applied event is reported exactly once per node.

use std::sync::Arc;
use std::time::Duration;

use crate::records::MessageState;

/// Something applying an event changed that an operator counts.
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyNote {
    /// A client's message (not a fan-out copy) reached a terminal state.
    Terminal(MessageState),
    /// A delivery report matched a segment sent on `link`; `delay_ms`: since the carrier
    /// accepted the segment, when the message's timeline still holds that acceptance.
    Report { link: String, delay_ms: Option<u64> },
    /// A delivery report matched no segment sent (yet): kept as an orphan.
    UnmatchedReport { link: String },
    /// A reply became whole: routed to a client system, or not.
    Reply { routed: bool },
}

/// Receives what storage and apply observed. Called from blocking threads: keep it cheap.
pub trait Observer: Send + Sync {
    fn log_synced(&self, _took: Duration) {}
    fn applied(&self, _notes: &[ApplyNote]) {}
    fn snapshot_built(&self, _took: Duration, _bytes: u64) {}
    fn snapshot_installed(&self, _took: Duration, _bytes: u64) {}
}

/// Observes nothing (tests, tools).
pub struct Nothing;

impl Observer for Nothing {}

pub type SharedObserver = Arc<dyn Observer>;

/// The observer of a store made without one.
pub fn nothing() -> SharedObserver {
    Arc::new(Nothing)
}
