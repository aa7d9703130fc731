//! Every `herald_` metric family a node serves, registered in the node's own [`Registry`] (not
//! the crate's global default, so that unit tests and several nodes in one process never
//! collide). OPERATIONS.md's "Metrics" table documents each one; a test checks the two agree.
//!
//! This module only defines the families and their fixed label values. Recording happens where
//! things happen (service layer, proposer, links, apply); values read from state at scrape time
//! are set by [`super::scrape`].

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

/// Why a submission was refused: a fixed set, so the label stays bounded.
pub const REFUSAL_REASONS: [&str; 7] = [
    "invalid",
    "unauthenticated",
    "permission_denied",
    "quota",
    "unavailable",
    "conflict",
    "internal",
];

/// Why an authentication failed (see `service::auth`).
pub const AUTH_FAILURE_REASONS: [&str; 6] = [
    "missing",
    "malformed",
    "unknown_key",
    "wrong_secret",
    "revoked",
    "throttled",
];

/// The terminal message states, as label values (`MessageState::name`, lower case).
pub const TERMINAL_STATES: [&str; 5] =
    ["delivered", "undelivered", "failed", "expired", "canceled"];

/// The cluster version (format level) a node serves before it learns one from the log: the
/// first level, which every cluster without a recorded version runs.
pub const INITIAL_CLUSTER_VERSION: u64 = 1;

/// The `status` of a delivery report as counted: what the carrier's status means.
pub const REPORT_STATUSES: [&str; 2] = ["delivered", "undelivered"];

/// The RocksDB size kinds of `herald_rocksdb_size_bytes`.
pub const ROCKSDB_KINDS: [&str; 3] = ["live_sst", "total_sst", "memtable"];

/// The two ports whose certificate expiry is served.
pub const TLS_PORTS: [&str; 2] = ["internal", "public"];

/// A metric family failed to register (a duplicate name: a programming error caught by tests).
#[derive(Debug, thiserror::Error)]
#[error("metric registration: {0}")]
pub struct RegisterError(#[from] prometheus::Error);

/// Buckets of `herald_submit_duration_seconds` and `herald_raft_commit_duration_seconds`:
/// 1 ms to 10 s.
fn latency_buckets() -> Vec<f64> {
    vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
}

/// Buckets of the fsync histogram: a disk's fsync takes from tens of microseconds to seconds.
fn fsync_buckets() -> Vec<f64> {
    vec![
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    ]
}

/// Buckets of the delivery report delay: carriers report from a second to two days later.
fn report_delay_buckets() -> Vec<f64> {
    vec![
        1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 43200.0,
        86400.0, 172800.0,
    ]
}

/// Buckets of a carrier's submit round trip: milliseconds to tens of seconds.
fn rtt_buckets() -> Vec<f64> {
    vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ]
}

/// Events per Raft proposal: 1 up to the batch ceiling.
fn batch_buckets() -> Vec<f64> {
    vec![
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
    ]
}

/// Snapshot build/install: a small one takes milliseconds, a large one minutes.
fn snapshot_buckets() -> Vec<f64> {
    vec![0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0]
}

/// The node's metric families. Cheap to share (`Arc`); every field is a handle into the registry.
pub struct Metrics {
    pub registry: Registry,
    /// The configured link names: a link label takes no other value (an event of a link this
    /// node does not configure is not counted under its name).
    links: Vec<String>,
    // intake
    pub messages_submitted: IntCounterVec,
    pub submissions_refused: IntCounterVec,
    pub submit_duration: Histogram,
    // queues
    pub queue_messages: IntGaugeVec,
    pub queue_oldest_age: GaugeVec,
    pub scheduled_messages: IntGauge,
    pub inflight_messages: IntGaugeVec,
    // links
    pub link_up: IntGaugeVec,
    pub link_held: IntGaugeVec,
    pub link_submits: IntCounterVec,
    pub link_window_in_use: IntGaugeVec,
    pub link_submit_rtt: HistogramVec,
    pub link_flow_control: IntCounterVec,
    pub carrier_refusals: IntCounterVec,
    pub link_reconnects: IntCounterVec,
    // outcomes
    pub messages_terminal: IntCounterVec,
    pub delivery_reports: IntCounterVec,
    pub delivery_report_delay: HistogramVec,
    pub delivery_reports_unmatched: IntCounterVec,
    // replies
    pub replies_received: IntCounterVec,
    pub replies_routed: IntCounter,
    pub replies_unrouted: IntCounter,
    // raft
    pub raft_has_leader: IntGauge,
    pub raft_is_leader: IntGauge,
    pub raft_term: IntGauge,
    pub raft_commit_index: IntGauge,
    pub raft_applied_index: IntGauge,
    pub raft_apply_lag: IntGauge,
    pub raft_leader_changes: IntCounter,
    pub raft_follower_lag: IntGaugeVec,
    pub raft_proposal_batch: Histogram,
    pub raft_commit_duration: Histogram,
    pub raft_log_fsync_duration: Histogram,
    pub raft_snapshot_builds: IntCounter,
    pub raft_snapshot_installs: IntCounter,
    pub raft_snapshot_build_duration: Histogram,
    pub raft_snapshot_install_duration: Histogram,
    pub raft_snapshot_size: IntGauge,
    // node
    pub build_info: IntGaugeVec,
    pub cluster_version_info: IntGaugeVec,
    pub node_draining: IntGauge,
    pub rocksdb_size: IntGaugeVec,
    pub disk_free: IntGauge,
    pub disk_total: IntGauge,
    pub tls_certificate_expiry: IntGaugeVec,
    pub auth_failures: IntCounterVec,
    pub clock_offset: prometheus::Gauge,
}

/// Registers a collector and hands it back.
fn reg<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    c: C,
) -> Result<C, RegisterError> {
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn counter(r: &Registry, name: &str, help: &str) -> Result<IntCounter, RegisterError> {
    reg(r, IntCounter::new(name, help)?)
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, RegisterError> {
    reg(r, IntCounterVec::new(Opts::new(name, help), labels)?)
}

fn gauge(r: &Registry, name: &str, help: &str) -> Result<IntGauge, RegisterError> {
    reg(r, IntGauge::new(name, help)?)
}

fn gauge_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, RegisterError> {
    reg(r, IntGaugeVec::new(Opts::new(name, help), labels)?)
}

fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
) -> Result<Histogram, RegisterError> {
    reg(
        r,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?,
    )
}

fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> Result<HistogramVec, RegisterError> {
    reg(
        r,
        HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)?,
    )
}

/// What the families' fixed label values are made from: the node's configuration.
pub struct Labels<'a> {
    pub links: &'a [&'a str],
    pub classes: &'a [&'a str],
    /// The crate version and the short git commit this binary was built from.
    pub version: &'a str,
    pub commit: &'a str,
}

impl Metrics {
    /// Registers every family and creates the labelled series of `labels` at zero, so that each
    /// family is present from the first scrape.
    pub fn new(labels: &Labels<'_>) -> Result<Metrics, RegisterError> {
        let r = Registry::new();
        let m = Metrics {
            messages_submitted: counter_vec(
                &r,
                "herald_messages_submitted_total",
                "Messages accepted (durably committed), by client system and class.",
                &["client", "class"],
            )?,
            submissions_refused: counter_vec(
                &r,
                "herald_submissions_refused_total",
                "Submissions refused, by reason.",
                &["reason"],
            )?,
            submit_duration: histogram(
                &r,
                "herald_submit_duration_seconds",
                "Time from a submission's arrival to its durable acknowledgement.",
                latency_buckets(),
            )?,
            queue_messages: gauge_vec(
                &r,
                "herald_queue_messages",
                "Messages waiting to be sent (ACCEPTED), by class and link (or route).",
                &["class", "link"],
            )?,
            queue_oldest_age: reg(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "herald_queue_oldest_age_seconds",
                        "Age of the oldest waiting message, by class and link (or route).",
                    ),
                    &["class", "link"],
                )?,
            )?,
            scheduled_messages: gauge(
                &r,
                "herald_scheduled_messages",
                "Messages waiting for their send time (SCHEDULED).",
            )?,
            inflight_messages: gauge_vec(
                &r,
                "herald_inflight_messages",
                "Messages handed to a link and not yet acknowledged by the carrier.",
                &["link"],
            )?,
            link_up: gauge_vec(
                &r,
                "herald_link_up",
                "1 if this node has a connection of the link up to its carrier.",
                &["link"],
            )?,
            link_held: gauge_vec(
                &r,
                "herald_link_held",
                "1 if this node holds a connection slot of the link.",
                &["link"],
            )?,
            link_submits: counter_vec(
                &r,
                "herald_link_submits_total",
                "Submits sent to the carrier on this node.",
                &["link"],
            )?,
            link_window_in_use: gauge_vec(
                &r,
                "herald_link_window_in_use",
                "Submits awaiting the carrier's response on this node.",
                &["link"],
            )?,
            link_submit_rtt: histogram_vec(
                &r,
                "herald_link_submit_rtt_seconds",
                "Time from a submit to the carrier's response.",
                &["link"],
                rtt_buckets(),
            )?,
            link_flow_control: counter_vec(
                &r,
                "herald_link_flow_control_total",
                "Flow-control answers (throttled, window full) from the carrier.",
                &["link"],
            )?,
            carrier_refusals: counter_vec(
                &r,
                "herald_carrier_refusals_total",
                "Submits the carrier refused, by normalised code.",
                &["link", "code"],
            )?,
            link_reconnects: counter_vec(
                &r,
                "herald_link_reconnects_total",
                "Connections to the carrier opened again after one was lost.",
                &["link"],
            )?,
            messages_terminal: counter_vec(
                &r,
                "herald_messages_terminal_total",
                "Messages reaching a terminal state (counted on apply, once per node).",
                &["state"],
            )?,
            delivery_reports: counter_vec(
                &r,
                "herald_delivery_reports_total",
                "Delivery reports received from carriers on this node, by status.",
                &["link", "status"],
            )?,
            delivery_report_delay: histogram_vec(
                &r,
                "herald_delivery_report_delay_seconds",
                "Time from the carrier's acceptance of a submit to its delivery report.",
                &["link"],
                report_delay_buckets(),
            )?,
            delivery_reports_unmatched: counter_vec(
                &r,
                "herald_delivery_reports_unmatched_total",
                "Delivery reports that matched no message sent.",
                &["link"],
            )?,
            replies_received: counter_vec(
                &r,
                "herald_replies_received_total",
                "Subscriber replies (MO messages) received on this node.",
                &["link"],
            )?,
            replies_routed: counter(
                &r,
                "herald_replies_routed_total",
                "Replies routed to a client system (counted on apply).",
            )?,
            replies_unrouted: counter(
                &r,
                "herald_replies_unrouted_total",
                "Replies no rule routed to a client system (counted on apply).",
            )?,
            raft_has_leader: gauge(
                &r,
                "herald_raft_has_leader",
                "1 if this node knows a leader.",
            )?,
            raft_is_leader: gauge(&r, "herald_raft_is_leader", "1 if this node is the leader.")?,
            raft_term: gauge(&r, "herald_raft_term", "The Raft term this node is in.")?,
            raft_commit_index: gauge(
                &r,
                "herald_raft_commit_index",
                "The last log index this node knows committed.",
            )?,
            raft_applied_index: gauge(
                &r,
                "herald_raft_applied_index",
                "The last log index applied to this node's projection.",
            )?,
            raft_apply_lag: gauge(
                &r,
                "herald_raft_apply_lag_entries",
                "Committed entries not yet applied on this node.",
            )?,
            raft_leader_changes: counter(
                &r,
                "herald_raft_leader_changes_total",
                "Times the leader this node knows changed (seen at scrape time).",
            )?,
            raft_follower_lag: gauge_vec(
                &r,
                "herald_raft_follower_lag_entries",
                "On the leader: entries each follower is behind the leader's last log index.",
                &["follower"],
            )?,
            raft_proposal_batch: histogram(
                &r,
                "herald_raft_proposal_batch_events",
                "Events per Raft proposal made by this node.",
                batch_buckets(),
            )?,
            raft_commit_duration: histogram(
                &r,
                "herald_raft_commit_duration_seconds",
                "Time from proposing a batch to its commit.",
                latency_buckets(),
            )?,
            raft_log_fsync_duration: histogram(
                &r,
                "herald_raft_log_fsync_duration_seconds",
                "Duration of each fsync of the Raft log.",
                fsync_buckets(),
            )?,
            raft_snapshot_builds: counter(
                &r,
                "herald_raft_snapshot_builds_total",
                "Snapshots this node built.",
            )?,
            raft_snapshot_installs: counter(
                &r,
                "herald_raft_snapshot_installs_total",
                "Snapshots from the leader this node installed.",
            )?,
            raft_snapshot_build_duration: histogram(
                &r,
                "herald_raft_snapshot_build_duration_seconds",
                "Duration of building a snapshot.",
                snapshot_buckets(),
            )?,
            raft_snapshot_install_duration: histogram(
                &r,
                "herald_raft_snapshot_install_duration_seconds",
                "Duration of installing a snapshot.",
                snapshot_buckets(),
            )?,
            raft_snapshot_size: gauge(
                &r,
                "herald_raft_snapshot_size_bytes",
                "Size of the last snapshot built or installed.",
            )?,
            build_info: gauge_vec(
                &r,
                "herald_build_info",
                "Always 1; the labels say which build this node runs.",
                &["version", "commit"],
            )?,
            cluster_version_info: gauge_vec(
                &r,
                "herald_cluster_version_info",
                "Always 1; the label is the cluster version (format level) in force.",
                &["version"],
            )?,
            node_draining: gauge(&r, "herald_node_draining", "1 while this node is drained.")?,
            rocksdb_size: gauge_vec(
                &r,
                "herald_rocksdb_size_bytes",
                "RocksDB sizes, summed over column families.",
                &["kind"],
            )?,
            disk_free: gauge(
                &r,
                "herald_disk_free_bytes",
                "Free space for this node on the data directory's filesystem.",
            )?,
            clock_offset: reg(
                &r,
                prometheus::Gauge::new(
                    "herald_clock_offset_seconds",
                    "This node's wall clock minus the cluster clock (the median of the voters' \
                     clocks); 0 until a majority of voters has been sampled.",
                )?,
            )?,
            disk_total: gauge(
                &r,
                "herald_disk_total_bytes",
                "Size of the data directory's filesystem.",
            )?,
            tls_certificate_expiry: gauge_vec(
                &r,
                "herald_tls_certificate_expiry_timestamp_seconds",
                "When the certificate served on each port expires (Unix time).",
                &["port"],
            )?,
            auth_failures: counter_vec(
                &r,
                "herald_auth_failures_total",
                "Calls refused because their API key did not authenticate, by reason.",
                &["reason"],
            )?,
            registry: r,
            links: labels.links.iter().map(|l| l.to_string()).collect(),
        };
        #[cfg(target_os = "linux")]
        m.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        m.zero_series(labels);
        Ok(m)
    }

    /// Creates every series whose labels come from configuration or a fixed set.
    fn zero_series(&self, labels: &Labels<'_>) {
        for reason in REFUSAL_REASONS {
            self.submissions_refused.with_label_values(&[reason]);
        }
        for reason in AUTH_FAILURE_REASONS {
            self.auth_failures.with_label_values(&[reason]);
        }
        for state in TERMINAL_STATES {
            self.messages_terminal.with_label_values(&[state]);
        }
        for port in TLS_PORTS {
            self.tls_certificate_expiry.with_label_values(&[port]);
        }
        for kind in ROCKSDB_KINDS {
            self.rocksdb_size.with_label_values(&[kind]);
        }
        for &link in labels.links {
            self.inflight_messages.with_label_values(&[link]);
            self.link_up.with_label_values(&[link]);
            self.link_held.with_label_values(&[link]);
            self.link_submits.with_label_values(&[link]);
            self.link_window_in_use.with_label_values(&[link]);
            self.link_submit_rtt.with_label_values(&[link]);
            self.link_flow_control.with_label_values(&[link]);
            self.link_reconnects.with_label_values(&[link]);
            self.delivery_report_delay.with_label_values(&[link]);
            self.delivery_reports_unmatched.with_label_values(&[link]);
            self.replies_received.with_label_values(&[link]);
            for status in REPORT_STATUSES {
                self.delivery_reports.with_label_values(&[link, status]);
            }
            for &class in labels.classes {
                self.queue_messages.with_label_values(&[class, link]);
                self.queue_oldest_age.with_label_values(&[class, link]);
            }
        }
        self.build_info
            .with_label_values(&[labels.version, labels.commit])
            .set(1);
        self.set_cluster_version(INITIAL_CLUSTER_VERSION);
    }

    /// Makes `level` the one series of `herald_cluster_version_info` (the lifecycle code calls
    /// this whenever the cluster version in force changes).
    pub fn set_cluster_version(&self, level: u64) {
        self.cluster_version_info.reset();
        self.cluster_version_info
            .with_label_values(&[&level.to_string()])
            .set(1);
    }

    /// Whether `link` is a configured link (a label value this node may use).
    pub fn is_link(&self, link: &str) -> bool {
        self.links.iter().any(|l| l == link)
    }

    /// The text exposition (format 0.0.4) of every family.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        let mut out = String::new();
        if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&families, &mut out) {
            tracing::error!("encoding metrics: {e}");
        }
        out
    }
}

/// The label value of a class in submit counters and queue gauges: a policy class name.
pub fn class_label(priority: u32) -> &'static str {
    crate::policy::CLASS_NAMES
        .get(priority as usize)
        .copied()
        .unwrap_or(crate::policy::CLASS_NAMES[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Labels<'static> {
        Labels {
            links: &["cm1"],
            classes: &crate::policy::CLASS_NAMES,
            version: "0.1.0",
            commit: "abc1234",
        }
    }

    #[test]
    fn every_family_is_present_before_anything_happens() {
        let m = Metrics::new(&labels()).expect("registers");
        let text = m.render();
        for name in [
            "herald_submissions_refused_total{reason=\"quota\"} 0",
            "herald_link_up{link=\"cm1\"} 0",
            "herald_queue_messages{class=\"alarm\",link=\"cm1\"} 0",
            "herald_messages_terminal_total{state=\"delivered\"} 0",
            "herald_build_info{commit=\"abc1234\",version=\"0.1.0\"} 1",
            "herald_raft_commit_duration_seconds_bucket{le=\"0.001\"} 0",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }

    #[test]
    fn two_nodes_in_one_process_do_not_collide() {
        let a = Metrics::new(&labels()).expect("first registers");
        let b = Metrics::new(&labels()).expect("second registers too");
        a.replies_routed.inc();
        assert!(b.render().contains("herald_replies_routed_total 0"));
    }
}
