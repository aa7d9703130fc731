//! `herald-chaos`: runs Herald's fault-injection test (see RELIABILITY.md).
//!
//! ```text
//! herald-chaos --nodes 5 --duration 10m --seed 42 --faults kill,pause,partition,sim
//! ```
//! Exits 0 when the checker found nothing, 1 on any loss or divergence, 2 when the harness itself
//! could not run. The history, configs, node logs and data are kept in `--dir`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use herald_tests::chaos::{self, ChaosConfig, FaultKind};

#[derive(Parser)]
#[command(
    name = "herald-chaos",
    about = "Fault injection and history checking for Herald"
)]
struct Args {
    /// Nodes of the cluster under test (3 to 9).
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Workload and fault time: 90s, 10m, 1h.
    #[arg(long, default_value = "3m", value_parser = parse_duration)]
    duration: Duration,
    /// Seeds the fault schedule and the workload: the same seed, the same faults at the same times.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fault families or fault names, comma-separated (the full list: --help).
    #[arg(long, default_value = "all", long_help = FaultKind::help())]
    faults: String,
    /// Carrier simulators (one link each).
    #[arg(long, default_value_t = 2)]
    sims: usize,
    /// Concurrent clients, each submitting to random nodes and retrying with the same
    /// idempotency key until a node acknowledges.
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// Submissions per second, over all clients.
    #[arg(long, default_value_t = 40.0)]
    rate: f64,
    /// Where to keep the history, logs and data (default: a new directory under the temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 90s, 10m, 1h)"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("{s:?}: the unit must be s, m or h")),
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let faults = match FaultKind::parse_list(&args.faults) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if !(3..=9).contains(&args.nodes) || args.sims == 0 || args.sims > 8 || args.clients == 0 {
        eprintln!("error: need --nodes 3..=9, --sims 1..=8, --clients at least 1");
        return std::process::ExitCode::from(2);
    }
    let dir = args.dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("herald-chaos-{}-{}", args.seed, std::process::id()))
    });
    let mut config = ChaosConfig::new(args.nodes, args.duration, args.seed, dir);
    config.faults = faults;
    config.sims = args.sims;
    config.clients = args.clients;
    config.rate = args.rate;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(chaos::run(&config)) {
        Ok(report) => {
            print!("{}", report.summary());
            println!("history, logs and data: {}", config.dir.display());
            if report.passed() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            eprintln!("history, logs and data: {}", config.dir.display());
            std::process::ExitCode::from(2)
        }
    }
}
