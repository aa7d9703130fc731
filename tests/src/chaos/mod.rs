//! Herald's fault-injection harness and history checker, in the manner of Jepsen: start a real
//! cluster on loopback, run a workload of concurrent clients that record every invocation and
//! outcome in a history, inject faults on a seeded schedule (SIGKILL, SIGSTOP, partitions through
//! per-pair TCP proxies, carrier disconnects and stalls, power cuts, full disks and failing fsyncs
//! on the nodes' lossy filesystems), heal, drain, and check every message
//! against the history, the carrier simulators' records and the nodes' Raft logs.
//!
//! The binary `herald-chaos` and the test `tests/chaos_short.rs` drive [`run`]. What is checked
//! and how to read a result: `RELIABILITY.md` at the repository root.

pub mod checker;
pub mod cluster;
pub mod faults;
pub mod history;
pub mod proxy;
pub mod workload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

pub use checker::Report;
pub use faults::FaultKind;

#[derive(Debug, Clone)]
pub struct ChaosConfig {
    pub nodes: u64,
    pub sims: usize,
    pub duration: Duration,
    pub seed: u64,
    pub faults: Vec<FaultKind>,
    pub clients: usize,
    /// Submissions per second over all clients.
    pub rate: f64,
    /// Where the history, configs, data and logs go; kept after the run.
    pub dir: PathBuf,
    pub drain_limit: Duration,
    pub tuning: cluster::Tuning,
}

impl ChaosConfig {
    pub fn new(nodes: u64, duration: Duration, seed: u64, dir: PathBuf) -> ChaosConfig {
        ChaosConfig {
            nodes,
            sims: 2,
            duration,
            seed,
            faults: FaultKind::all(),
            clients: 6,
            rate: 40.0,
            dir,
            drain_limit: Duration::from_secs(120),
            tuning: cluster::Tuning::default(),
        }
    }
}

/// Runs one chaos test end to end and returns the checker's report. Errors only when the harness
/// itself cannot run (a port, a process); a product failure is a report that did not pass.
pub async fn run(config: &ChaosConfig) -> anyhow::Result<Report> {
    std::fs::create_dir_all(&config.dir)
        .with_context(|| format!("creating {}", config.dir.display()))?;
    let history = Arc::new(history::History::create(&config.dir.join("history.jsonl"))?);
    let warmup = Duration::from_secs(5);
    // The last stretch is fault-free, so the run ends on a cluster that had time to settle.
    let span = config.duration.saturating_sub(Duration::from_secs(5));
    let skipped = FaultKind::skipped();
    for (kind, why) in &skipped {
        eprintln!("chaos: fault kind {} skipped: {why}", kind.name());
    }
    let kinds: Vec<FaultKind> = config
        .faults
        .iter()
        .copied()
        .filter(|k| k.missing_capability().is_none())
        .collect();
    if kinds.is_empty() {
        anyhow::bail!(
            "no fault kind of {:?} can be injected on this machine",
            config.faults
        );
    }
    let schedule = faults::schedule(config.seed, &kinds, span, warmup);
    let mut tuning = config.tuning.clone();
    tuning.clock_skew |= kinds.iter().any(|k| k.needs_fake_clock());
    tuning.lossy_fs |= kinds.iter().any(|k| k.needs_lossy_fs());
    eprintln!(
        "chaos: seed {} | {} nodes | {} simulators | {:?} | {} faults scheduled | dir {}",
        config.seed,
        config.nodes,
        config.sims,
        config.duration,
        schedule.len(),
        config.dir.display()
    );
    let cluster = Arc::new(
        cluster::ChaosCluster::start(&config.dir, config.nodes, config.sims, tuning).await?,
    );
    if cluster
        .wait_for_leader(Duration::from_secs(60))
        .await
        .is_none()
    {
        anyhow::bail!("the cluster elected no leader within 60 s of starting");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let workload = tokio::spawn(workload::run(
        cluster.clone(),
        history.clone(),
        workload::WorkloadConfig {
            seed: config.seed,
            clients: config.clients,
            rate: config.rate,
            attempt_timeout: Duration::from_secs(12),
            op_limit: Duration::from_secs(60),
        },
        stop.clone(),
    ));
    let injector = tokio::spawn(faults::run(
        cluster.clone(),
        history.clone(),
        schedule,
        stop.clone(),
    ));
    tokio::time::sleep(config.duration).await;
    stop.store(true, Ordering::SeqCst);
    let _ = injector.await;
    eprintln!("chaos: healing everything; waiting for the clients to finish");
    cluster.heal_all()?;
    let _ = workload.await;
    history.flush();

    let report = checker::check(
        &cluster,
        &history.records(),
        &checker::CheckConfig {
            drain_limit: config.drain_limit,
        },
    )
    .await;
    let mut report = report;
    report.skipped_faults = skipped
        .into_iter()
        .map(|(kind, why)| (kind.name().to_string(), why))
        .collect();
    std::fs::write(
        config.dir.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    std::fs::write(config.dir.join("report.txt"), report.summary())?;
    Ok(report)
}
