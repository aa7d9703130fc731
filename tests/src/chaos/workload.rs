//! The clients: concurrent tasks that submit messages with unique references and idempotency keys
//! to random nodes and, like a careful real client, retry on timeouts and unavailability — with the
//! same key, on another node — until acknowledged or their patience runs out. Every attempt and its
//! outcome goes to the history.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_api::v1::SubmitRequest;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::cluster::ChaosCluster;
use super::history::{History, Outcome, Record};

#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    pub seed: u64,
    pub clients: usize,
    /// Target submissions per second over all clients.
    pub rate: f64,
    /// One attempt's limit (above the node's 10 s proposal deadline, so a refusing minority node
    /// answers before the client gives up on it).
    pub attempt_timeout: Duration,
    /// How long a client keeps retrying one operation before calling its outcome unknown.
    pub op_limit: Duration,
}

/// Every `CLOCK_EVERY`th operation (offset 1) asks for a short validity, and every one at offset
/// `CLOCK_EVERY / 2 + 1` for a send time a little ahead: under clock faults the checker finds
/// whether any expired or was released before its time (RELIABILITY.md, "Clocks").
pub const CLOCK_EVERY: u64 = 10;
/// The short validity, seconds: far longer than a fault keeps a message from its carrier.
pub const SHORT_VALIDITY_S: u32 = 90;
/// How far ahead the scheduled operations ask to be sent.
pub const SCHEDULE_AHEAD: Duration = Duration::from_secs(20);

/// The harness's wall clock (never faked), ms since the epoch.
pub fn true_wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The unique reference carried in an operation's text; the checker finds it at the carrier.
pub fn reference(seed: u64, op: u64) -> String {
    format!("chaos-{seed}-{op}")
}

pub fn text_of(reference: &str) -> String {
    format!("herald chaos ref {reference} end")
}

/// Extracts the reference from a text the simulator received (or a stored message's text).
pub fn reference_in(text: &str) -> Option<&str> {
    let rest = text.split("ref ").nth(1)?;
    rest.split(' ').next()
}

/// Runs the clients until `stop` is set; returns once every client finished its current operation.
pub async fn run(
    cluster: Arc<ChaosCluster>,
    history: Arc<History>,
    config: WorkloadConfig,
    stop: Arc<AtomicBool>,
) {
    let next_op = Arc::new(AtomicU64::new(1));
    let mut tasks = Vec::new();
    for c in 0..config.clients {
        let (cluster, history, config, stop, next_op) = (
            cluster.clone(),
            history.clone(),
            config.clone(),
            stop.clone(),
            next_op.clone(),
        );
        tasks.push(tokio::spawn(async move {
            client(c, cluster, history, config, stop, next_op).await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn client(
    c: usize,
    cluster: Arc<ChaosCluster>,
    history: Arc<History>,
    config: WorkloadConfig,
    stop: Arc<AtomicBool>,
    next_op: Arc<AtomicU64>,
) {
    let mut rng = StdRng::seed_from_u64(config.seed ^ (0x9e37_79b9 * (c as u64 + 1)));
    let interval = Duration::from_secs_f64(config.clients as f64 / config.rate.max(0.1));
    let links: Vec<String> = cluster.sims.iter().map(|s| s.link.clone()).collect();
    let ids = cluster.ids();
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let op = next_op.fetch_add(1, Ordering::SeqCst);
        let reference = reference(config.seed, op);
        let link = links[rng.gen_range(0..links.len())].clone();
        let validity_s = if op % CLOCK_EVERY == 1 {
            SHORT_VALIDITY_S
        } else {
            0
        };
        let send_at_ms = if op % CLOCK_EVERY == CLOCK_EVERY / 2 + 1 {
            true_wall_ms() + SCHEDULE_AHEAD.as_millis() as u64
        } else {
            0
        };
        let request = SubmitRequest {
            recipients: vec![format!("139{:08}", rng.gen_range(0..100_000_000u32))],
            text: text_of(&reference),
            idempotency_key: format!("key-{reference}"),
            client_ref: reference.clone(),
            link: link.clone(),
            validity_seconds: validity_s,
            send_at_ms,
            ..Default::default()
        };
        let mut attempt = 0u32;
        let mut outcome = (Outcome::Unknown, None);
        let mut backoff = Duration::from_millis(100);
        while started.elapsed() < config.op_limit {
            attempt += 1;
            let node = ids[rng.gen_range(0..ids.len())];
            history.push(Record::Invoke {
                t_ms: history.now(),
                op,
                attempt,
                node,
                reference: reference.clone(),
                key: request.idempotency_key.clone(),
                link: link.clone(),
                validity_s,
                send_at_ms,
            });
            match submit_once(&cluster, node, &request, config.attempt_timeout).await {
                Ok((id, created)) => {
                    history.push(Record::Ok {
                        t_ms: history.now(),
                        op,
                        attempt,
                        node,
                        message_id: id.clone(),
                        created,
                    });
                    if validity_s > 0 {
                        tokio::spawn(watch_terminal(
                            cluster.clone(),
                            history.clone(),
                            op,
                            id.clone(),
                            Duration::from_secs(u64::from(validity_s) + 60),
                        ));
                    }
                    outcome = (Outcome::Ok, Some(id));
                    break;
                }
                Err((code, error, definite)) => {
                    if definite {
                        history.push(Record::Fail {
                            t_ms: history.now(),
                            op,
                            attempt,
                            node,
                            code,
                            error,
                        });
                        outcome = (Outcome::Failed, None);
                        break;
                    }
                    history.push(Record::Info {
                        t_ms: history.now(),
                        op,
                        attempt,
                        node,
                        code,
                        error,
                    });
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
        history.push(Record::Done {
            t_ms: history.now(),
            op,
            outcome: outcome.0,
            message_id: outcome.1,
        });
        if let Some(rest) = interval.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
}

/// Reads message `id` from a live node every second until it is terminal (recorded with the time
/// first seen) or `limit` passes: when a short-validity message expired, by the true clock.
async fn watch_terminal(
    cluster: Arc<ChaosCluster>,
    history: Arc<History>,
    op: u64,
    id: String,
    limit: Duration,
) {
    use herald_api::v1::{GetMessageRequest, MessageState};
    let start = Instant::now();
    let mut turn = 0usize;
    while start.elapsed() < limit {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let live = cluster.live();
        if live.is_empty() {
            continue;
        }
        turn += 1;
        let node = live[turn % live.len()];
        let Some(mut client) = cluster.messaging(node).await else {
            continue;
        };
        let read = tokio::time::timeout(
            Duration::from_secs(2),
            client.get_message(GetMessageRequest {
                message_id: id.clone(),
            }),
        )
        .await;
        let Ok(Ok(m)) = read else { continue };
        let state = m.into_inner().state;
        let terminal = match MessageState::try_from(state) {
            Ok(MessageState::Delivered) => "delivered",
            Ok(MessageState::Undelivered) => "undelivered",
            Ok(MessageState::Failed) => "failed",
            Ok(MessageState::Expired) => "expired",
            Ok(MessageState::Canceled) => "canceled",
            _ => continue,
        };
        history.push(Record::Terminal {
            t_ms: history.now(),
            op,
            state: terminal.into(),
        });
        return;
    }
}

/// One attempt: Ok((id, created)), or Err((code, message, definite)).
async fn submit_once(
    cluster: &ChaosCluster,
    node: u64,
    request: &SubmitRequest,
    limit: Duration,
) -> Result<(String, bool), (String, String, bool)> {
    let call = async {
        let Some(mut client) = cluster.messaging(node).await else {
            return Err((
                "Connect".to_string(),
                "could not connect".to_string(),
                false,
            ));
        };
        // The harness's client calls with the cluster's bootstrap admin key.
        match client.submit(request.clone()).await {
            Ok(resp) => {
                let r = resp.into_inner();
                Ok((r.message_id, r.created))
            }
            Err(status) => Err((
                format!("{:?}", status.code()),
                status.message().to_string(),
                status.code() == tonic::Code::InvalidArgument,
            )),
        }
    };
    match tokio::time::timeout(limit, call).await {
        Ok(r) => r,
        Err(_) => Err((
            "ClientTimeout".to_string(),
            format!("no answer within {limit:?}"),
            false,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_is_found_again_in_the_text() {
        let r = reference(42, 7);
        assert_eq!(reference_in(&text_of(&r)), Some(r.as_str()));
        assert_eq!(reference_in("no reference here"), None);
    }
}
