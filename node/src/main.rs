//! The `herald` binary: runs a node, a local development cluster, a carrier simulator, and the
//! client commands operators and scripts use.

mod adaptive_rate;
mod admin_cli;
mod admin_service;
mod api_service;
mod bench;
mod class_pick;
mod cli_client;
mod config;
mod context;
mod debug;
mod dev;
mod link_status;
mod link_worker;
mod placement;
mod policy;
mod proposer;
mod queue_share;
mod quota;
mod replies_api;
mod replies_cli;
mod reply_rules;
mod routing;
mod server;
mod sim_cli;
mod statuses_api;
mod timers;
mod trace_cli;
mod validate;

use std::path::PathBuf;

/// mimalloc instead of the system allocator: decoding and re-encoding message records, events and
/// gRPC frames allocates many short-lived buffers on every message, and profiled under load
/// glibc's malloc and free (their slow paths: chunk unlinking, fastbin consolidation) were a fifth
/// of a node's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "Herald: a clustered enterprise SMS platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one cluster node.
    Node {
        #[arg(long)]
        config: PathBuf,
    },
    /// Starts a local cluster and a CMPP carrier simulator as child processes.
    Dev(dev::DevArgs),
    /// Runs a carrier simulator.
    Sim {
        #[command(subcommand)]
        protocol: sim_cli::SimProtocol,
    },
    /// Submits a message; prints its id.
    Send(cli_client::SendArgs),
    /// Shows a message's state and timeline.
    Status(cli_client::StatusArgs),
    /// Cancels a message not yet handed to a carrier.
    Cancel(cli_client::CancelArgs),
    /// Subscribers' replies routed to a client system (or, for operators, the unrouted ones).
    Replies(replies_cli::RepliesArgs),
    /// The protocol trace of a message: the PDUs exchanged with carriers and why it failed.
    Trace(trace_cli::TraceArgs),
    /// The dispatch policy: routes, classes, quotas (replicated; effective on every node).
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Load generator: submits messages and measures throughput and latency.
    Bench(bench::BenchArgs),
    /// Cluster commands.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Read-only diagnosis of a stopped node's data directory.
    Debug {
        #[command(subcommand)]
        command: DebugCommand,
    },
}

#[derive(Subcommand)]
enum DebugCommand {
    /// Prints the committed index and a hash of every stored Raft log entry, as JSON.
    LogHashes(debug::LogHashesArgs),
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Members, leader, term, commit index and link placement.
    Status(cli_client::ClusterStatusArgs),
    /// Moves every link off a node (before stopping it) and gives it none until undrained.
    Drain(admin_cli::DrainArgs),
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Prints the policy in force, every default filled in.
    Show(admin_cli::PolicyShowArgs),
    /// Replaces the policy with a TOML (or JSON) file.
    Set(admin_cli::PolicySetArgs),
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,openraft=warn,h2=warn,tower=warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One readable line for people and scripts; no backtrace.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Node { config } => {
                init_tracing();
                let config = config::NodeConfig::load(&config)?;
                server::run(config).await
            }
            Command::Dev(args) => {
                init_tracing();
                dev::run(args).await
            }
            Command::Sim { protocol } => {
                init_tracing();
                sim_cli::run(protocol, server::shutdown_signal()).await
            }
            Command::Send(args) => cli_client::send(args).await,
            Command::Bench(args) => {
                init_tracing();
                bench::run(args).await
            }
            Command::Status(args) => cli_client::status(args).await,
            Command::Cancel(args) => cli_client::cancel(args).await,
            Command::Replies(args) => replies_cli::run(args).await,
            Command::Trace(args) => trace_cli::trace(args).await,
            Command::Policy {
                command: PolicyCommand::Show(args),
            } => admin_cli::policy_show(args).await,
            Command::Policy {
                command: PolicyCommand::Set(args),
            } => admin_cli::policy_set(args).await,
            Command::Cluster {
                command: ClusterCommand::Drain(args),
            } => admin_cli::drain(args).await,
            Command::Cluster {
                command: ClusterCommand::Status(args),
            } => cli_client::cluster_status(args).await,
            Command::Debug {
                command: DebugCommand::LogHashes(args),
            } => debug::log_hashes(args),
        }
    })
}
