//! `herald bench`: a load generator over the public gRPC API. It submits messages (singly or in
//! batches, closed loop or at a target rate), measures submit latency, then follows every message to
//! its terminal state to measure end-to-end throughput and time to DELIVERED.
//!
//! Latency is measured from when a call was *due* (at a target rate) rather than when it was sent,
//! so a stalled server shows up in the percentiles instead of silently lowering the offered load.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cli::connect::ClientChannel;
use herald_api::v1::messaging_client::MessagingClient;
use herald_api::v1::{
    GetMessagesRequest, MessageState, SubmitBatchRequest, SubmitRequest, SubmitResult,
};

use crate::cli::connect::ConnectManyArgs;

#[derive(clap::Args, Clone)]
pub struct BenchArgs {
    #[command(flatten)]
    connect: ConnectManyArgs,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Messages per call: 1 uses Submit, more uses SubmitBatch (at most 1000).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Stop submitting after this many messages…
    #[arg(long, default_value_t = 10_000)]
    messages: u64,
    /// …or after this many seconds, whichever comes first.
    #[arg(long, default_value_t = 60)]
    duration_secs: u64,
    /// Offered load in messages per second; 0 submits as fast as the cluster answers.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Characters per message text.
    #[arg(long, default_value_t = 60)]
    text_len: usize,
    /// ascii, ucs2 (Chinese text) or mixed (alternating).
    #[arg(long, default_value = "ascii")]
    encoding: String,
    /// Do not follow messages to their terminal state.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for every message to reach a terminal state.
    #[arg(long, default_value_t = 300)]
    delivery_timeout_secs: u64,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Percentiles of a set of durations, in milliseconds.
fn percentiles(mut samples: Vec<f64>) -> serde_json::Value {
    if samples.is_empty() {
        return serde_json::json!(null);
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| {
        let idx = ((samples.len() as f64 - 1.0) * q).round() as usize;
        (samples[idx.min(samples.len() - 1)] * 1000.0).round() / 1000.0
    };
    serde_json::json!({
        "count": samples.len(),
        "p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99), "p999_ms": at(0.999),
        "max_ms": at(1.0),
    })
}

fn text_for(i: u64, len: usize, encoding: &str) -> String {
    let ucs2 = match encoding {
        "ucs2" => true,
        "mixed" => i % 2 == 1,
        _ => false,
    };
    let head = if ucs2 {
        format!("告警{i}:")
    } else {
        format!("bench {i}: ")
    };
    let filler = if ucs2 { '电' } else { 'x' };
    let mut text = head;
    while text.chars().count() < len {
        text.push(filler);
    }
    text
}

struct Shared {
    next: AtomicU64,
    ids: Mutex<Vec<String>>,
    latencies_ms: Mutex<Vec<f64>>,
    failures: Mutex<Failures>,
}

/// The most kinds of failure told apart; later kinds are counted together.
const MAX_FAILURE_KINDS: usize = 32;

/// How many kinds of failure the summary names, the most frequent first.
const FAILURE_KINDS_SHOWN: usize = 5;

/// Refused or failed submissions, counted by kind, so that a run where thousands fail prints a
/// few lines (how many, why, one example of each) instead of one line per failure.
#[derive(Default)]
struct Failures {
    kinds: Vec<FailureKind>,
    /// Failures of kinds beyond [`MAX_FAILURE_KINDS`].
    others: u64,
}

struct FailureKind {
    code: String,
    /// The message with every run of digits replaced by `#`: failures that differ only in a
    /// number (a recipient, an index, a node) are one kind.
    shape: String,
    /// The first message of this kind, as the node wrote it.
    example: String,
    count: u64,
}

impl Failures {
    fn record(&mut self, code: tonic::Code, message: &str, count: u64) {
        let code = format!("{code:?}");
        let shape = digits_as_hash(message);
        if let Some(kind) = self
            .kinds
            .iter_mut()
            .find(|k| k.code == code && k.shape == shape)
        {
            kind.count += count;
        } else if self.kinds.len() < MAX_FAILURE_KINDS {
            self.kinds.push(FailureKind {
                code,
                shape,
                example: message.to_string(),
                count,
            });
        } else {
            self.others += count;
        }
    }

    fn total(&self) -> u64 {
        self.kinds.iter().map(|k| k.count).sum::<u64>() + self.others
    }

    /// The summary's lines: the most frequent kinds, then how many failures the rest make.
    fn summary(&self) -> Vec<String> {
        let mut kinds: Vec<&FailureKind> = self.kinds.iter().collect();
        kinds.sort_by_key(|k| std::cmp::Reverse(k.count));
        let mut lines: Vec<String> = kinds
            .iter()
            .take(FAILURE_KINDS_SHOWN)
            .map(|k| format!("  {} × {}, e.g. {:?}", k.count, k.code, k.example))
            .collect();
        let rest: u64 = kinds
            .iter()
            .skip(FAILURE_KINDS_SHOWN)
            .map(|k| k.count)
            .sum::<u64>()
            + self.others;
        if rest > 0 {
            lines.push(format!("  {rest} more, of other kinds"));
        }
        lines
    }

    fn as_json(&self) -> serde_json::Value {
        let mut kinds: serde_json::Value = self
            .kinds
            .iter()
            .map(|k| serde_json::json!({"code": k.code, "example": k.example, "count": k.count}))
            .collect();
        if self.others > 0 {
            if let Some(list) = kinds.as_array_mut() {
                list.push(serde_json::json!({"code": "other", "count": self.others}));
            }
        }
        kinds
    }
}

fn digits_as_hash(message: &str) -> String {
    let mut shape = String::with_capacity(message.len());
    for c in message.chars() {
        if !c.is_ascii_digit() {
            shape.push(c);
        } else if !shape.ends_with('#') {
            shape.push('#');
        }
    }
    shape
}

impl BenchArgs {
    /// Refuses options under which the run would measure nothing.
    fn check(&self) -> anyhow::Result<()> {
        if self.concurrency == 0 {
            anyhow::bail!("--concurrency 0: must be at least 1 (calls in flight at once)");
        }
        if self.messages == 0 {
            anyhow::bail!("--messages 0: must be at least 1");
        }
        if self.batch == 0 || self.batch > 1000 {
            anyhow::bail!(
                "--batch {}: must be between 1 and 1000 (messages per call)",
                self.batch
            );
        }
        if self.duration_secs == 0 {
            anyhow::bail!("--duration-secs 0: must be at least 1");
        }
        if !["ascii", "ucs2", "mixed"].contains(&self.encoding.as_str()) {
            anyhow::bail!(
                "--encoding {:?}: must be ascii, ucs2 or mixed",
                self.encoding
            );
        }
        Ok(())
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    args.check()?;
    let mut clients = Vec::new();
    for connector in args.connect.connectors() {
        clients.push(MessagingClient::new(connector.channel().await?));
    }
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let shared = Arc::new(Shared {
        next: AtomicU64::new(0),
        ids: Mutex::new(Vec::new()),
        latencies_ms: Mutex::new(Vec::new()),
        failures: Mutex::new(Failures::default()),
    });
    let start = Instant::now();
    let stop_at = start + Duration::from_secs(args.duration_secs);
    // At a target rate, calls become due on a fixed schedule and workers take them in order.
    let call_interval =
        (args.rate > 0).then(|| Duration::from_secs_f64(args.batch as f64 / args.rate as f64));
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let mut client = clients[w % clients.len()].clone();
        let (shared, args, run_id) = (shared.clone(), args.clone(), run_id.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let first = shared.next.fetch_add(args.batch as u64, Ordering::SeqCst);
                if first >= args.messages || Instant::now() >= stop_at {
                    return;
                }
                let count = (args.messages - first).min(args.batch as u64);
                let due = match call_interval {
                    Some(interval) => {
                        let due = start + interval.mul_f64((first / args.batch as u64) as f64);
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                let requests: Vec<SubmitRequest> = (first..first + count)
                    .map(|i| SubmitRequest {
                        recipients: vec![format!("139{:08}", i % 100_000_000)],
                        text: text_for(i, args.text_len, &args.encoding),
                        idempotency_key: format!("bench-{run_id}-{i}"),
                        ..Default::default()
                    })
                    .collect();
                let results: Result<Vec<SubmitResult>, tonic::Status> = if args.batch == 1 {
                    client.submit(requests[0].clone()).await.map(|r| {
                        let r = r.into_inner();
                        vec![SubmitResult {
                            message_id: r.message_id,
                            created: r.created,
                            ..Default::default()
                        }]
                    })
                } else {
                    client
                        .submit_batch(SubmitBatchRequest { messages: requests })
                        .await
                        .map(|r| r.into_inner().results)
                };
                let elapsed = due.elapsed().as_secs_f64() * 1000.0;
                match results {
                    Ok(results) => {
                        shared.latencies_ms.lock().expect("lock").push(elapsed);
                        let answered = results.len() as u64;
                        let mut ids = Vec::with_capacity(results.len());
                        let mut failures = shared.failures.lock().expect("lock");
                        for r in results {
                            if r.error.is_empty() {
                                ids.push(r.message_id);
                            } else {
                                failures.record(tonic::Code::from_i32(r.error_code), &r.error, 1);
                            }
                        }
                        if answered < count {
                            failures.record(
                                tonic::Code::Unknown,
                                &format!("the node answered {answered} of {count} messages"),
                                count - answered,
                            );
                        }
                        drop(failures);
                        shared.ids.lock().expect("lock").extend(ids);
                    }
                    Err(status) => {
                        shared.failures.lock().expect("lock").record(
                            status.code(),
                            status.message(),
                            count,
                        );
                    }
                }
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let submit_secs = start.elapsed().as_secs_f64();
    let ids = std::mem::take(&mut *shared.ids.lock().expect("lock"));
    let latencies = std::mem::take(&mut *shared.latencies_ms.lock().expect("lock"));
    let accepted = ids.len();
    let failures = std::mem::take(&mut *shared.failures.lock().expect("lock"));
    let errors = failures.total();
    println!(
        "submitted: {accepted} accepted, {errors} failed in {submit_secs:.2} s = {:.0} messages/s accepted",
        accepted as f64 / submit_secs
    );
    let submit_latency = percentiles(latencies);
    println!(
        "submit latency per call ({} message(s) a call): {submit_latency}",
        args.batch
    );

    let mut result = serde_json::json!({
        "endpoints": args.connect.endpoints, "concurrency": args.concurrency, "batch": args.batch,
        "rate": args.rate, "text_len": args.text_len, "encoding": args.encoding,
        "accepted": accepted, "failed": errors, "submit_seconds": submit_secs,
        "accepted_per_second": accepted as f64 / submit_secs,
        "submit_latency": submit_latency, "failures": failures.as_json(),
    });
    if errors > 0 {
        eprintln!("{errors} message(s) not accepted, by kind:");
        for line in failures.summary() {
            eprintln!("{line}");
        }
    }
    if !args.no_wait && accepted > 0 {
        let e2e = follow_to_terminal(&clients, ids, &args).await?;
        println!("end to end: {e2e}");
        result["end_to_end"] = e2e;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&result)?)?;
        println!("results written to {}", path.display());
    }
    if errors > 0 {
        // Figures from a run where submits failed measure something else than the cluster
        // taking load: scripts must not mistake them for a good run.
        anyhow::bail!(
            "{errors} of {} messages were not accepted",
            accepted as u64 + errors
        );
    }
    Ok(())
}

/// Follows every submitted message until it is terminal (or the delivery timeout passes).
///
/// The ids are split into runs of consecutive ids, one reader per run; each reader asks for the
/// states of the oldest of its run's unfinished messages in one `GetMessages` call and drops
/// those that finished. Messages mostly finish in the order they were sent: when all it asked
/// about had finished it asks for twice as many at once, and when some had not it waits a moment
/// and asks again about those (and as many more as had finished). So the readers trail the
/// cluster, reading each message about once, instead of sweeping every pending message again and
/// again (the load generator shares the cluster's cores: a call per message cost it and the nodes
/// about a tenth of the machine). The figures come from the messages' own event times, so
/// reading later costs no accuracy.
async fn follow_to_terminal(
    clients: &[MessagingClient<ClientChannel>],
    mut ids: Vec<String>,
    args: &BenchArgs,
) -> anyhow::Result<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(args.delivery_timeout_secs);
    ids.sort_by_key(|id| id.parse::<u64>().unwrap_or(u64::MAX));
    let run_len = ids.len().div_ceil(args.concurrency.max(1)).max(1);
    let mut readers = Vec::new();
    for (k, run) in ids.chunks(run_len).map(<[String]>::to_vec).enumerate() {
        let client = clients[k % clients.len()].clone();
        readers.push(tokio::spawn(follow_run(client, run, deadline)));
    }
    let mut done: Vec<Outcome> = Vec::with_capacity(ids.len());
    let mut not_terminal = 0;
    for reader in readers {
        let (finished, left) = reader.await?;
        done.extend(finished);
        not_terminal += left;
    }
    let delivered: Vec<&Outcome> = done
        .iter()
        .filter(|o| o.state == MessageState::Delivered as i32)
        .collect();
    let first_submit = done.iter().map(|o| o.submitted_at_ms).min().unwrap_or(0);
    let last_report = delivered
        .iter()
        .map(|o| o.finished_at_ms)
        .max()
        .unwrap_or(0);
    let span = (last_report.saturating_sub(first_submit)) as f64 / 1000.0;
    let to_delivered: Vec<f64> = delivered
        .iter()
        .map(|o| o.finished_at_ms.saturating_sub(o.submitted_at_ms) as f64)
        .collect();
    Ok(serde_json::json!({
        "terminal": done.len(),
        "delivered": delivered.len(),
        "not_terminal_at_timeout": not_terminal,
        "delivered_per_second": if span > 0.0 { delivered.len() as f64 / span } else { 0.0 },
        "time_to_delivered": percentiles(to_delivered),
    }))
}

/// The most of a run's unfinished messages one `GetMessages` call asks about.
const FOLLOW_WINDOW: usize = 500;

/// A terminal message: its state, when it was submitted and when it reached that state.
struct Outcome {
    state: i32,
    submitted_at_ms: u64,
    finished_at_ms: u64,
}

/// Reads one run's messages until all are terminal or `deadline` passes; returns the outcomes
/// and how many were still not terminal.
async fn follow_run(
    mut client: MessagingClient<ClientChannel>,
    run: Vec<String>,
    deadline: Instant,
) -> (Vec<Outcome>, usize) {
    let mut finished = Vec::with_capacity(run.len());
    let mut pending: std::collections::VecDeque<String> = run.into();
    let mut window_len = 1;
    while !pending.is_empty() {
        let window: Vec<String> = pending.iter().take(window_len).cloned().collect();
        let asked = window.len();
        let answer = client
            .get_messages(GetMessagesRequest {
                message_ids: window,
            })
            .await;
        let mut still: Vec<String> = Vec::new();
        let mut finished_now = 0;
        if let Ok(answer) = answer {
            for status in answer.into_inner().messages {
                if status.found && is_terminal(status.state) {
                    finished_now += 1;
                    finished.push(Outcome {
                        state: status.state,
                        submitted_at_ms: status.submitted_at_ms,
                        finished_at_ms: status.updated_at_ms,
                    });
                } else {
                    still.push(status.message_id);
                }
            }
            let rest = pending.split_off(asked.min(pending.len()));
            pending = still.into_iter().chain(rest).collect();
        }
        if Instant::now() > deadline {
            return (finished, pending.len());
        }
        // All of them finished: the reader is behind the cluster and asks for more at once.
        // Otherwise it has caught up with it and waits a moment before looking again.
        if finished_now == asked {
            window_len = (2 * asked).min(FOLLOW_WINDOW);
        } else {
            window_len = (2 * finished_now).clamp(1, FOLLOW_WINDOW);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    (finished, 0)
}

fn is_terminal(state: i32) -> bool {
    MessageState::try_from(state).is_ok_and(|state| {
        matches!(
            state,
            MessageState::Delivered
                | MessageState::Undelivered
                | MessageState::Failed
                | MessageState::Expired
                | MessageState::Canceled
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_that_differ_only_in_a_number_are_one_kind_with_its_first_example() {
        let mut failures = Failures::default();
        for i in 0..1000 {
            failures.record(
                tonic::Code::InvalidArgument,
                &format!("recipients[0]: \"{i}\" is not a mobile number"),
                1,
            );
        }
        failures.record(tonic::Code::Unavailable, "no leader", 10);
        assert_eq!(failures.total(), 1010);
        assert_eq!(
            failures.summary(),
            [
                "  1000 × InvalidArgument, e.g. \"recipients[0]: \\\"0\\\" is not a mobile number\"",
                "  10 × Unavailable, e.g. \"no leader\"",
            ]
        );
    }

    #[test]
    fn the_summary_stays_short_however_many_kinds_there_are() {
        let mut failures = Failures::default();
        for kind in 0..100u64 {
            let message: String = std::iter::repeat_n('x', kind as usize + 1).collect();
            failures.record(tonic::Code::Internal, &message, kind + 1);
        }
        let total: u64 = (1..=100).sum();
        assert_eq!(failures.total(), total);
        let summary = failures.summary();
        assert_eq!(summary.len(), FAILURE_KINDS_SHOWN + 1, "{summary:?}");
        assert!(summary[0].starts_with("  32 × Internal"), "{summary:?}");
        let shown: u64 = (28..=32).sum();
        assert_eq!(
            summary[FAILURE_KINDS_SHOWN],
            format!("  {} more, of other kinds", total - shown)
        );
    }

    #[test]
    fn options_that_would_measure_nothing_are_refused_by_name() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let refusal = |options: &[&str]| {
            let args = std::iter::once("bench").chain(options.iter().copied());
            Command::try_parse_from(args)
                .expect("the options parse")
                .bench
                .check()
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(refusal(&[]), None);
        for (options, start) in [
            (
                &["--concurrency", "0"][..],
                "--concurrency 0: must be at least 1",
            ),
            (&["--messages", "0"], "--messages 0: must be at least 1"),
            (&["--batch", "0"], "--batch 0: must be between 1 and 1000"),
            (
                &["--batch", "1001"],
                "--batch 1001: must be between 1 and 1000",
            ),
            (
                &["--duration-secs", "0"],
                "--duration-secs 0: must be at least 1",
            ),
            (
                &["--encoding", "utf8"],
                "--encoding \"utf8\": must be ascii",
            ),
        ] {
            let refusal = refusal(options).unwrap_or_default();
            assert!(refusal.starts_with(start), "{options:?}: {refusal}");
        }
    }
}
