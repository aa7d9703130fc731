//! Turns what storage and apply observed (`herald_raft::observe`) into this node's metrics:
//! fsync durations, terminal states, delivery report delays, unmatched reports, replies routed,
//! snapshots. Apply notes are counted once per node, as each node applies each event once.

use std::sync::Arc;
use std::time::Duration;

use herald_raft::observe::{ApplyNote, Observer};
use herald_raft::records::MessageState;
use prometheus::IntCounter;

use super::families::TERMINAL_STATES;
use super::Metrics;

pub struct MetricsObserver {
    metrics: Arc<Metrics>,
    /// `herald_messages_terminal_total` per terminal state, resolved once.
    terminal: [IntCounter; 5],
}

impl MetricsObserver {
    pub fn new(metrics: Arc<Metrics>) -> MetricsObserver {
        let terminal =
            TERMINAL_STATES.map(|state| metrics.messages_terminal.with_label_values(&[state]));
        MetricsObserver { metrics, terminal }
    }

    fn terminal(&self, state: MessageState) -> Option<&IntCounter> {
        let i = match state {
            MessageState::Delivered => 0,
            MessageState::Undelivered => 1,
            MessageState::Failed => 2,
            MessageState::Expired => 3,
            MessageState::Canceled => 4,
            _ => return None,
        };
        self.terminal.get(i)
    }
}

impl Observer for MetricsObserver {
    fn log_synced(&self, took: Duration) {
        self.metrics
            .raft_log_fsync_duration
            .observe(took.as_secs_f64());
    }

    fn applied(&self, notes: &[ApplyNote]) {
        let m = &self.metrics;
        for note in notes {
            match note {
                ApplyNote::Terminal(state) => {
                    if let Some(c) = self.terminal(*state) {
                        c.inc();
                    }
                }
                ApplyNote::Report { link, delay_ms } => {
                    if let (Some(ms), true) = (delay_ms, m.is_link(link)) {
                        m.delivery_report_delay
                            .with_label_values(&[link])
                            .observe(*ms as f64 / 1000.0);
                    }
                }
                ApplyNote::UnmatchedReport { link } => {
                    if m.is_link(link) {
                        m.delivery_reports_unmatched
                            .with_label_values(&[link])
                            .inc();
                    }
                }
                ApplyNote::Reply { routed: true } => m.replies_routed.inc(),
                ApplyNote::Reply { routed: false } => m.replies_unrouted.inc(),
            }
        }
    }

    fn snapshot_built(&self, took: Duration, bytes: u64) {
        let m = &self.metrics;
        m.raft_snapshot_builds.inc();
        m.raft_snapshot_build_duration.observe(took.as_secs_f64());
        m.raft_snapshot_size
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    fn snapshot_installed(&self, took: Duration, bytes: u64) {
        let m = &self.metrics;
        m.raft_snapshot_installs.inc();
        m.raft_snapshot_install_duration.observe(took.as_secs_f64());
        m.raft_snapshot_size
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}
