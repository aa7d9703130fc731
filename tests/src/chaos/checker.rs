//! The checker: after the final heal and drain, it holds the history and the simulators' records
//! against what every node says, and the nodes' Raft logs against each other.
//!
//! What it verifies (the guarantees in `/RELIABILITY.md`):
//! - every acknowledged message exists, with one id per idempotency key, and reads the same on
//!   every node (state, segments, timeline);
//! - every acknowledged message is terminal on every node, and a delivered (or undelivered) one was
//!   received by its simulator at least once;
//! - duplicates at the simulators are counted and stay within the bound of one window per link per
//!   link-disrupting fault;
//! - no reference was created twice; an operation whose outcome was unknown was created once or not
//!   at all; a refused one not at all; no message exists that no client asked for;
//! - every delivery report a simulator sent for a carrier id a message kept is recorded on that
//!   message's segment with the simulator's status;
//! - the committed prefixes of the nodes' Raft logs agree entry by entry;
//! - clocks: no short-validity message expired, and no scheduled message reached its carrier,
//!   earlier than its time by more than [`CLOCK_BOUND_MS`] of the harness's true clock, whatever
//!   clock faults did to a node's wall clock.
//!
//! It never tolerates a loss to make a run pass: a problem is a line in `problems`, and any line
//! fails the run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use herald_api::v1::{GetMessageRequest, GetMessageResponse, MessageState};

use super::cluster::ChaosCluster;
use super::faults::FaultKind;
use super::history::{Outcome, Phase, Record};
use super::workload::reference_in;

/// How much earlier than its time (by the true clock) a message may expire or be released: the
/// bound RELIABILITY.md and OPERATIONS.md ("Clocks") document while a minority of the voters'
/// clocks is off — half a sample's round trip (at most 400 ms), plus the spread of the majority's
/// clocks (nil here: one machine), plus margin.
pub const CLOCK_BOUND_MS: u64 = 1000;

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    pub operations: usize,
    pub acknowledged: usize,
    pub unknown: usize,
    pub failed: usize,
    /// Unknown-outcome operations whose message was in fact created.
    pub recovered: usize,
    /// Acknowledged but missing, not terminal, or never at the carrier.
    pub lost: usize,
    /// References with more than one message (idempotency broken).
    pub duplicated: usize,
    /// Messages or carrier submits no operation asked for.
    pub unexpected: usize,
    /// Messages that read differently on two nodes.
    pub divergent: usize,
    pub messages_in_cluster: usize,
    pub delivered: usize,
    pub undelivered: usize,
    pub failed_or_expired: usize,
    pub sim_submits: usize,
    pub sim_duplicates: usize,
    pub duplicate_bound: usize,
    pub reports_sent: usize,
    pub reports_recorded: usize,
    pub reports_for_resent: usize,
    pub log_entries_compared: usize,
    pub faults: BTreeMap<String, usize>,
    /// Per leader-losing fault: ms from the fault to the first acknowledgement of a later attempt.
    pub leader_loss_unavailable_ms: Vec<(String, u64)>,
    /// Per fault kind, per fault: ms from the fault's start to the first acknowledgement of an
    /// attempt made at or after it (how long new submissions went unanswered).
    pub unavailable_ms_by_kind: BTreeMap<String, Vec<u64>>,
    pub longest_ack_gap_ms: u64,
    pub minority_refusals: BTreeMap<String, usize>,
    pub minority_acks: usize,
    /// The longest a minority node took to refuse a submission.
    pub minority_refusal_max_ms: u64,
    /// Short-validity messages whose expiry was checked (seen terminal by a watcher).
    pub clock_expiry_checked: usize,
    /// Of those, expired earlier than their time less the bound.
    pub expired_early: usize,
    /// Scheduled messages whose release was checked (received by their carrier).
    pub clock_release_checked: usize,
    /// Of those, at the carrier earlier than their send time less the bound.
    pub released_early: usize,
    /// The earliest a scheduled message reached its carrier relative to its send time (ms;
    /// negative: early) and the latest.
    pub release_offset_min_ms: i64,
    pub release_offset_max_ms: i64,
    /// Fault kinds asked for that this machine could not inject, with the reason.
    pub skipped_faults: BTreeMap<String, String>,
    pub problems: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn summary(&self) -> String {
        let mut s = String::new();
        let windows: Vec<u64> = self
            .leader_loss_unavailable_ms
            .iter()
            .map(|w| w.1)
            .collect();
        s.push_str(&format!(
            "operations {} | acknowledged {} | unknown {} (recovered {}) | failed {}\n\
             lost {} | duplicated {} | unexpected {} | divergent {} | recovered {}\n\
             messages in cluster {} | delivered {} undelivered {} failed/expired {}\n\
             carrier submits {} | carrier duplicates {} (bound {}) | reports sent {} recorded {} (for resent copies {})\n\
             raft log entries compared {}\n\
             faults {:?}\n\
             unavailability after leader loss (ms): {:?} (max {}) | longest gap between acks {} ms\n\
             minority side: refusals {:?} (slowest {} ms), acks {}\n\
             clocks: expiry checked {} (early {}) | release checked {} (early {}; at the carrier {}..{} ms from the send time)\n\
             unavailability per fault kind (ms, from the fault to the next acknowledged submission):\n{}",
            self.operations,
            self.acknowledged,
            self.unknown,
            self.recovered,
            self.failed,
            self.lost,
            self.duplicated,
            self.unexpected,
            self.divergent,
            self.recovered,
            self.messages_in_cluster,
            self.delivered,
            self.undelivered,
            self.failed_or_expired,
            self.sim_submits,
            self.sim_duplicates,
            self.duplicate_bound,
            self.reports_sent,
            self.reports_recorded,
            self.reports_for_resent,
            self.log_entries_compared,
            self.faults,
            self.leader_loss_unavailable_ms,
            windows.iter().max().copied().unwrap_or(0),
            self.longest_ack_gap_ms,
            self.minority_refusals,
            self.minority_refusal_max_ms,
            self.minority_acks,
            self.clock_expiry_checked,
            self.expired_early,
            self.clock_release_checked,
            self.released_early,
            self.release_offset_min_ms,
            self.release_offset_max_ms,
            self.unavailability_table(),
        ));
        for (kind, why) in &self.skipped_faults {
            s.push_str(&format!("skipped fault kind {kind}: {why}\n"));
        }
        if self.passed() {
            s.push_str("PASS\n");
        } else {
            s.push_str(&format!("FAIL: {} problems\n", self.problems.len()));
            for p in self.problems.iter().take(40) {
                s.push_str(&format!("  - {p}\n"));
            }
        }
        s
    }

    /// One line per fault kind: how many, median and max unavailability.
    pub fn unavailability_table(&self) -> String {
        let mut out = String::new();
        for (kind, windows) in &self.unavailable_ms_by_kind {
            let mut w = windows.clone();
            w.sort();
            let median = w.get(w.len() / 2).copied().unwrap_or(0);
            let max = w.last().copied().unwrap_or(0);
            out.push_str(&format!(
                "  {kind:<20} faults {:>3} | median {median:>6} | max {max:>6}\n",
                w.len()
            ));
        }
        out
    }

    fn problem(&mut self, p: String) {
        self.problems.push(p);
    }
}

#[derive(Debug, Default)]
struct Op {
    reference: String,
    link: String,
    acked: BTreeSet<String>,
    outcome: Option<Outcome>,
    /// When the first attempt was sent (history ms): no message of the op existed before.
    first_invoke_ms: Option<u64>,
    validity_s: u32,
    send_at_ms: u64,
    /// When a watcher first saw it terminal, and in which state.
    terminal: Option<(u64, String)>,
}

fn ops_of(history: &[Record]) -> BTreeMap<u64, Op> {
    let mut ops: BTreeMap<u64, Op> = BTreeMap::new();
    for r in history {
        match r {
            Record::Invoke {
                t_ms,
                op,
                reference,
                link,
                validity_s,
                send_at_ms,
                ..
            } => {
                let o = ops.entry(*op).or_default();
                o.reference = reference.clone();
                o.link = link.clone();
                o.validity_s = *validity_s;
                o.send_at_ms = *send_at_ms;
                o.first_invoke_ms.get_or_insert(*t_ms);
            }
            Record::Terminal { t_ms, op, state } => {
                ops.entry(*op)
                    .or_default()
                    .terminal
                    .get_or_insert((*t_ms, state.clone()));
            }
            Record::Ok { op, message_id, .. } => {
                ops.entry(*op).or_default().acked.insert(message_id.clone());
            }
            Record::Done { op, outcome, .. } => {
                ops.entry(*op).or_default().outcome = Some(*outcome);
            }
            _ => {}
        }
    }
    ops
}

fn is_terminal(state: i32) -> bool {
    [
        MessageState::Delivered,
        MessageState::Undelivered,
        MessageState::Failed,
        MessageState::Expired,
        MessageState::Canceled,
    ]
    .iter()
    .any(|s| *s as i32 == state)
}

/// Reads messages `ids` from node `node`, 16 at a time; absent ones are left out.
async fn read_many(
    cluster: &ChaosCluster,
    node: u64,
    ids: &[u64],
) -> BTreeMap<u64, GetMessageResponse> {
    let Some(client) = cluster.messaging(node).await else {
        return BTreeMap::new();
    };
    futures::stream::iter(ids.iter().copied())
        .map(|id| {
            let mut client = client.clone();
            async move {
                let r = client
                    .get_message(GetMessageRequest {
                        message_id: id.to_string(),
                    })
                    .await
                    .ok()
                    .map(|r| r.into_inner());
                (id, r)
            }
        })
        .buffer_unordered(16)
        .filter_map(|(id, r)| async move {
            r.map(|mut m| {
                // Which node answered and how far it had applied are not part of the message.
                m.answered_by = 0;
                m.applied_index = 0;
                (id, m)
            })
        })
        .collect()
        .await
}

/// Every message a node has: ids are assigned 1, 2, 3, … so read until a long run of absent ids.
async fn scan(cluster: &ChaosCluster, node: u64) -> BTreeMap<u64, GetMessageResponse> {
    const CHUNK: u64 = 256;
    let mut all = BTreeMap::new();
    let mut start = 1;
    for _ in 0..100_000 {
        let ids: Vec<u64> = (start..start + CHUNK).collect();
        let found = read_many(cluster, node, &ids).await;
        let any = !found.is_empty();
        all.extend(found);
        if !any {
            break;
        }
        start += CHUNK;
    }
    all
}

/// Waits until every message in `ids` is terminal on every node, or `limit` passes.
async fn drain(cluster: &ChaosCluster, ids: &[u64], limit: Duration) -> bool {
    let start = Instant::now();
    let mut pending: BTreeMap<u64, Vec<u64>> = cluster
        .ids()
        .into_iter()
        .map(|n| (n, ids.to_vec()))
        .collect();
    while start.elapsed() < limit {
        for (node, left) in pending.iter_mut() {
            let seen = read_many(cluster, *node, left).await;
            left.retain(|id| !seen.get(id).is_some_and(|m| is_terminal(m.state)));
        }
        pending.retain(|_, left| !left.is_empty());
        if pending.is_empty() {
            return true;
        }
        let total: usize = pending.values().map(Vec::len).sum();
        eprintln!("chaos: draining, {total} (node, message) pairs not terminal yet");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    false
}

struct SimRecords {
    /// carrier msg_id → reference
    submits: HashMap<String, String>,
    /// reference → submits received
    per_ref: HashMap<String, usize>,
    /// reference → when the carrier first received it (its true clock, ms since the epoch)
    first_at_ms: HashMap<String, u64>,
    /// (msg_id, stat)
    reports: Vec<(String, String)>,
    total_submits: usize,
}

fn read_sim(path: &Path) -> SimRecords {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = SimRecords {
        submits: HashMap::new(),
        per_ref: HashMap::new(),
        first_at_ms: HashMap::new(),
        reports: Vec::new(),
        total_submits: 0,
    };
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let msg_id = v["msg_id"].as_str().unwrap_or_default().to_string();
        match v["kind"].as_str() {
            Some("submit") => {
                let reference = reference_in(v["text"].as_str().unwrap_or_default())
                    .unwrap_or_default()
                    .to_string();
                out.total_submits += 1;
                *out.per_ref.entry(reference.clone()).or_default() += 1;
                if let Some(at) = v["at_ms"].as_u64() {
                    let first = out.first_at_ms.entry(reference.clone()).or_insert(at);
                    *first = (*first).min(at);
                }
                out.submits.insert(msg_id, reference);
            }
            Some("report") => {
                out.reports
                    .push((msg_id, v["stat"].as_str().unwrap_or_default().to_string()));
            }
            _ => {}
        }
    }
    out
}

pub struct CheckConfig {
    pub drain_limit: Duration,
}

/// Runs every check. Stops the nodes (SIGTERM) at the end to read their logs.
pub async fn check(cluster: &ChaosCluster, history: &[Record], config: &CheckConfig) -> Report {
    let mut report = Report::default();
    let ops = ops_of(history);
    report.operations = ops.len();
    analyse_history(history, &mut report);

    let Some(leader) = cluster.wait_for_leader(Duration::from_secs(60)).await else {
        report.problem("no leader within 60 s of the final heal".into());
        return report;
    };

    // Every message the cluster has, from the leader; then wait for all to be terminal everywhere.
    let on_leader = scan(cluster, leader).await;
    let mut ids: BTreeSet<u64> = on_leader.keys().copied().collect();
    for op in ops.values() {
        for id in &op.acked {
            match id.parse::<u64>() {
                Ok(n) => {
                    ids.insert(n);
                }
                Err(_) => report.problem(format!("acknowledged id {id:?} is not a message id")),
            }
        }
    }
    let ids: Vec<u64> = ids.into_iter().collect();
    eprintln!("chaos: draining {} messages on every node", ids.len());
    if !drain(cluster, &ids, config.drain_limit).await {
        report.problem(format!(
            "messages still not terminal on some node after {:?} of drain",
            config.drain_limit
        ));
    }

    // The final view of every node.
    let mut views: BTreeMap<u64, BTreeMap<u64, GetMessageResponse>> = BTreeMap::new();
    for node in cluster.ids() {
        views.insert(node, read_many(cluster, node, &ids).await);
    }
    let first_node = cluster.ids()[0];
    let reference_view = views[&first_node].clone();
    report.messages_in_cluster = reference_view.len();
    for (&node, view) in &views {
        for id in &ids {
            match (reference_view.get(id), view.get(id)) {
                (Some(a), Some(b)) if a == b => {}
                (Some(_), Some(_)) => {
                    report.divergent += 1;
                    report.problem(format!(
                        "message {id} reads differently on nodes {first_node} and {node}"
                    ));
                }
                (a, b) => {
                    report.divergent += 1;
                    report.problem(format!(
                        "message {id} present on node {first_node}: {}, on node {node}: {}",
                        a.is_some(),
                        b.is_some()
                    ));
                }
            }
        }
    }

    // Messages by reference.
    let mut by_ref: HashMap<String, Vec<u64>> = HashMap::new();
    for (id, m) in &reference_view {
        let r = reference_in(&m.text).unwrap_or_default().to_string();
        by_ref.entry(r).or_default().push(*id);
        match MessageState::try_from(m.state) {
            Ok(MessageState::Delivered) => report.delivered += 1,
            Ok(MessageState::Undelivered) => report.undelivered += 1,
            Ok(MessageState::Failed) | Ok(MessageState::Expired) => report.failed_or_expired += 1,
            _ => {}
        }
        if !is_terminal(m.state) {
            report.problem(format!(
                "message {id} ({}) is {:?}, not terminal",
                m.client_ref,
                MessageState::try_from(m.state)
            ));
        }
    }
    let known_refs: BTreeSet<&str> = ops.values().map(|o| o.reference.as_str()).collect();
    for (r, list) in &by_ref {
        if !known_refs.contains(r.as_str()) {
            report.unexpected += list.len();
            report.problem(format!(
                "messages {list:?} carry reference {r:?} no client submitted"
            ));
        }
        if list.len() > 1 {
            report.duplicated += 1;
            report.problem(format!(
                "reference {r} was created {} times: {list:?}",
                list.len()
            ));
        }
    }

    // Carrier records.
    let sims: HashMap<String, SimRecords> = cluster
        .sims
        .iter()
        .map(|s| (s.link.clone(), read_sim(&s.record)))
        .collect();
    for (link, sim) in &sims {
        report.sim_submits += sim.total_submits;
        report.sim_duplicates += sim
            .per_ref
            .values()
            .map(|c| c.saturating_sub(1))
            .sum::<usize>();
        for r in sim.per_ref.keys() {
            if !known_refs.contains(r.as_str()) {
                report.unexpected += 1;
                report.problem(format!(
                    "{link} received reference {r:?} no client submitted"
                ));
            }
        }
    }

    // Operation by operation.
    for (op_id, op) in &ops {
        let created = by_ref.get(&op.reference).cloned().unwrap_or_default();
        match op.outcome {
            Some(Outcome::Ok) | None if !op.acked.is_empty() => {
                report.acknowledged += 1;
                if op.acked.len() > 1 {
                    report.duplicated += 1;
                    report.problem(format!(
                        "op {op_id} ({}) was acknowledged with different ids {:?}",
                        op.reference, op.acked
                    ));
                }
                let Some(id) = op.acked.iter().next().and_then(|s| s.parse::<u64>().ok()) else {
                    continue;
                };
                let Some(m) = reference_view.get(&id) else {
                    report.lost += 1;
                    report.problem(format!(
                        "LOST: op {op_id} ({}) acknowledged as {id}, which does not exist",
                        op.reference
                    ));
                    continue;
                };
                if reference_in(&m.text) != Some(op.reference.as_str()) {
                    report.lost += 1;
                    report.problem(format!(
                        "LOST: op {op_id} ({}) acknowledged as {id}, which is another message ({:?})",
                        op.reference, m.client_ref
                    ));
                    continue;
                }
                if !is_terminal(m.state) {
                    report.lost += 1;
                    continue;
                }
                let sent_states = [
                    MessageState::Delivered as i32,
                    MessageState::Undelivered as i32,
                ];
                let at_carrier = sims
                    .get(&op.link)
                    .and_then(|s| s.per_ref.get(&op.reference))
                    .copied()
                    .unwrap_or(0);
                if sent_states.contains(&m.state) && at_carrier == 0 {
                    report.lost += 1;
                    report.problem(format!(
                        "LOST: op {op_id} ({}) is {:?} but {} never received it",
                        op.reference,
                        MessageState::try_from(m.state),
                        op.link
                    ));
                }
            }
            Some(Outcome::Failed) => {
                report.failed += 1;
                if !created.is_empty() {
                    report.unexpected += 1;
                    report.problem(format!(
                        "op {op_id} ({}) was refused yet created {created:?}",
                        op.reference
                    ));
                }
            }
            _ => {
                report.unknown += 1;
                if created.len() == 1 {
                    report.recovered += 1;
                }
            }
        }
    }

    check_clocks(&ops, &sims, &mut report);

    // Delivery reports: each one for a carrier id a message kept must be on that segment.
    let mut segment_of: HashMap<(String, String), (u64, String)> = HashMap::new();
    for (id, m) in &reference_view {
        for seg in &m.segments {
            if !seg.carrier_id.is_empty() {
                segment_of.insert(
                    (m.link.clone(), seg.carrier_id.clone()),
                    (*id, seg.report_status.clone()),
                );
            }
        }
        for seg in &m.segments {
            if seg.carrier_id.is_empty() {
                continue;
            }
            let known = sims
                .get(&m.link)
                .and_then(|s| s.submits.get(&seg.carrier_id))
                .map(|r| Some(r.as_str()) == reference_in(&m.text));
            if known != Some(true) {
                report.problem(format!(
                    "message {id}: carrier id {} is not a submit of this message at {}",
                    seg.carrier_id, m.link
                ));
            }
        }
    }
    for (link, sim) in &sims {
        for (msg_id, stat) in &sim.reports {
            report.reports_sent += 1;
            match segment_of.get(&(link.clone(), msg_id.clone())) {
                Some((_, recorded)) if recorded == stat => report.reports_recorded += 1,
                Some((id, recorded)) => report.problem(format!(
                    "report {stat} for carrier id {msg_id} at {link}: message {id} records {recorded:?}"
                )),
                None => report.reports_for_resent += 1,
            }
        }
    }

    // The duplicate bound: a window of segments per link per fault that can cut a link.
    let disruptions: usize = history
        .iter()
        .filter(|r| {
            matches!(r, Record::Fault { phase: Phase::Start, kind, .. }
                if kind != FaultKind::SimStall.name())
        })
        .count();
    report.duplicate_bound = cluster.tuning.max_window * cluster.sims.len() * disruptions.max(1);
    if report.sim_duplicates > report.duplicate_bound {
        report.problem(format!(
            "{} duplicates at the carriers exceed the bound of {}",
            report.sim_duplicates, report.duplicate_bound
        ));
    }

    compare_logs(cluster, &mut report).await;
    report
}

/// No message expired or was released earlier than its time by more than [`CLOCK_BOUND_MS`],
/// by the true clocks of the harness and the simulators (never faked).
fn check_clocks(ops: &BTreeMap<u64, Op>, sims: &HashMap<String, SimRecords>, report: &mut Report) {
    for (op_id, op) in ops {
        if op.acked.is_empty() {
            continue;
        }
        if op.validity_s > 0 {
            if let (Some((seen, state)), Some(first)) = (&op.terminal, op.first_invoke_ms) {
                report.clock_expiry_checked += 1;
                // It was submitted at `first` at the earliest, so it may expire at
                // `first + validity` at the earliest; it expired before `seen`.
                let due = first + u64::from(op.validity_s) * 1000;
                if state == "expired" && seen + CLOCK_BOUND_MS < due {
                    report.expired_early += 1;
                    report.problem(format!(
                        "EARLY EXPIRY: op {op_id} ({}) with {} s validity was expired {} ms \
                         after its first attempt (at most {} ms early allowed)",
                        op.reference,
                        op.validity_s,
                        seen.saturating_sub(first),
                        CLOCK_BOUND_MS
                    ));
                }
            }
        }
        if op.send_at_ms > 0 {
            let at = sims
                .get(&op.link)
                .and_then(|s| s.first_at_ms.get(&op.reference))
                .copied();
            if let Some(at) = at {
                report.clock_release_checked += 1;
                let offset = at as i64 - op.send_at_ms as i64;
                if report.clock_release_checked == 1 {
                    report.release_offset_min_ms = offset;
                    report.release_offset_max_ms = offset;
                }
                report.release_offset_min_ms = report.release_offset_min_ms.min(offset);
                report.release_offset_max_ms = report.release_offset_max_ms.max(offset);
                if offset < -(CLOCK_BOUND_MS as i64) {
                    report.released_early += 1;
                    report.problem(format!(
                        "EARLY RELEASE: op {op_id} ({}) reached {} {} ms before its send time \
                         (at most {} ms early allowed)",
                        op.reference, op.link, -offset, CLOCK_BOUND_MS
                    ));
                }
            }
        }
    }
}

/// Faults, unavailability windows, minority behaviour: from the history alone.
fn analyse_history(history: &[Record], report: &mut Report) {
    let mut invoked: HashMap<(u64, u32), (u64, u64)> = HashMap::new();
    let mut acks: Vec<(u64, u64)> = Vec::new(); // (invoke t, ok t)
    let mut attempts: Vec<(u64, u64, u64, Result<(), String>)> = Vec::new(); // node, t0, t1, outcome
    for r in history {
        match r {
            Record::Invoke {
                t_ms,
                op,
                attempt,
                node,
                ..
            } => {
                invoked.insert((*op, *attempt), (*t_ms, *node));
            }
            Record::Ok {
                t_ms, op, attempt, ..
            } => {
                if let Some((t0, node)) = invoked.get(&(*op, *attempt)) {
                    acks.push((*t0, *t_ms));
                    attempts.push((*node, *t0, *t_ms, Ok(())));
                }
            }
            Record::Info {
                t_ms,
                op,
                attempt,
                code,
                ..
            }
            | Record::Fail {
                t_ms,
                op,
                attempt,
                code,
                ..
            } => {
                if let Some((t0, node)) = invoked.get(&(*op, *attempt)) {
                    attempts.push((*node, *t0, *t_ms, Err(code.clone())));
                }
            }
            _ => {}
        }
    }
    let mut ack_times: Vec<u64> = acks.iter().map(|a| a.1).collect();
    ack_times.sort();
    report.longest_ack_gap_ms = ack_times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);

    let mut open: HashMap<u32, (u64, String, Vec<u64>)> = HashMap::new();
    for r in history {
        let Record::Fault {
            t_ms,
            seq,
            kind,
            phase,
            minority,
            detail,
            ..
        } = r
        else {
            continue;
        };
        match phase {
            Phase::Start => {
                *report.faults.entry(kind.clone()).or_default() += 1;
                let next_ack = acks
                    .iter()
                    .filter(|(t0, _)| *t0 >= *t_ms)
                    .map(|(_, t1)| *t1)
                    .min();
                if let Some(t1) = next_ack {
                    report
                        .unavailable_ms_by_kind
                        .entry(kind.clone())
                        .or_default()
                        .push(t1 - t_ms);
                }
                let loses_leader = FaultKind::KNOWN
                    .iter()
                    .any(|k| k.name() == kind && k.hits_leader());
                if loses_leader {
                    let first = acks
                        .iter()
                        .filter(|(t0, _)| *t0 >= *t_ms)
                        .map(|(_, t1)| *t1)
                        .min();
                    if let Some(t1) = first {
                        report
                            .leader_loss_unavailable_ms
                            .push((kind.clone(), t1 - t_ms));
                    }
                }
                open.insert(*seq, (*t_ms, kind.clone(), minority.clone()));
            }
            Phase::End => {
                if let Some(what) = detail.strip_prefix(super::faults::PROBLEM_MARK) {
                    report
                        .problems
                        .push(format!("fault {seq} ({kind}): {what}"));
                }
                let Some((start, kind, minority)) = open.remove(seq) else {
                    continue;
                };
                let partition = kind == FaultKind::PartitionHalves.name()
                    || kind == FaultKind::IsolateLeader.name();
                if !partition {
                    continue;
                }
                for (node, t0, t1, outcome) in &attempts {
                    if !minority.contains(node) || *t0 < start + 200 || *t0 > *t_ms {
                        continue;
                    }
                    if *t1 > *t_ms {
                        // Answered after the heal: whatever it says, the partition is over.
                        *report
                            .minority_refusals
                            .entry("answered after heal".into())
                            .or_default() += 1;
                        continue;
                    }
                    match outcome {
                        Ok(()) => report.minority_acks += 1,
                        Err(code) => {
                            *report.minority_refusals.entry(code.clone()).or_default() += 1;
                            report.minority_refusal_max_ms =
                                report.minority_refusal_max_ms.max(t1 - t0);
                        }
                    }
                }
            }
        }
    }
    if report.minority_acks > 0 {
        report.problems.push(format!(
            "{} submissions were acknowledged by a node cut off from the majority",
            report.minority_acks
        ));
    }
}

/// Stops every node and compares their Raft logs: entries at the same index, up to what both
/// recorded as committed, must be the same bytes.
async fn compare_logs(cluster: &ChaosCluster, report: &mut Report) {
    for id in cluster.ids() {
        cluster.stop_node(id, Duration::from_secs(15));
    }
    let mut digests = Vec::new();
    for node in &cluster.nodes {
        let out = std::process::Command::new(crate::herald_bin())
            .args(["debug", "log-hashes", "--data-dir"])
            .arg(&node.data_dir)
            .output();
        let digest = out
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok());
        match digest {
            Some(d) => digests.push((node.id, d)),
            None => report.problem(format!("could not read node {}'s raft log", node.id)),
        }
    }
    // index → (hash, node) of the first node that committed it.
    let mut seen: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut compared = 0;
    for (node, d) in &digests {
        let committed = d["committed"].as_u64().unwrap_or(0);
        for e in d["entries"].as_array().into_iter().flatten() {
            let (Some(index), Some(hash)) = (e["index"].as_u64(), e["hash"].as_u64()) else {
                continue;
            };
            if index > committed {
                continue;
            }
            match seen.get(&index) {
                None => {
                    seen.insert(index, (hash, *node));
                }
                Some((h, other)) => {
                    compared += 1;
                    if *h != hash {
                        report.problem(format!(
                            "raft log entry {index} differs between nodes {other} and {node}"
                        ));
                    }
                }
            }
        }
    }
    report.log_entries_compared = compared;
}
