//! The `herald` binary: runs a node, a local development cluster, a carrier simulator, and the
//! client commands operators and scripts use.

mod api_service;
mod cli_client;
mod config;
mod context;
mod dev;
mod link_worker;
mod placement;
mod proposer;
mod server;
mod validate;

use std::path::PathBuf;

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
        protocol: SimProtocol,
    },
    /// Submits a message; prints its id.
    Send(cli_client::SendArgs),
    /// Shows a message's state and timeline.
    Status(cli_client::StatusArgs),
    /// Cluster commands.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

#[derive(Subcommand)]
enum SimProtocol {
    /// A CMPP 3.0 SMS gateway.
    Cmpp(SimCmppArgs),
}

#[derive(clap::Args)]
struct SimCmppArgs {
    #[arg(long)]
    listen: String,
    /// ACCOUNT:SECRET; repeatable.
    #[arg(long = "account", required = true)]
    accounts: Vec<String>,
    /// Delay before a status report is sent, in milliseconds.
    #[arg(long, default_value_t = 200)]
    report_delay_ms: u64,
    /// Fraction of messages reported DELIVRD (the rest UNDELIV).
    #[arg(long, default_value_t = 1.0)]
    delivered_ratio: f64,
    /// JSON-lines file recording every submit received and every report sent.
    #[arg(long)]
    record: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    gateway_id: u32,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Members, leader, term, commit index and link placement.
    Status(cli_client::ClusterStatusArgs),
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
            Command::Sim {
                protocol: SimProtocol::Cmpp(args),
            } => {
                init_tracing();
                run_cmpp_sim(args).await
            }
            Command::Send(args) => cli_client::send(args).await,
            Command::Status(args) => cli_client::status(args).await,
            Command::Cluster {
                command: ClusterCommand::Status(args),
            } => cli_client::cluster_status(args).await,
        }
    })
}

async fn run_cmpp_sim(args: SimCmppArgs) -> anyhow::Result<()> {
    let mut accounts = Vec::new();
    for raw in &args.accounts {
        let (id, secret) = raw
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("--account {raw:?}: expected ACCOUNT:SECRET"))?;
        accounts.push((id.to_string(), secret.to_string()));
    }
    if !(0.0..=1.0).contains(&args.delivered_ratio) {
        anyhow::bail!("--delivered-ratio must be between 0 and 1");
    }
    let config = herald_protocols::sim::cmpp::SimConfig {
        listen: args.listen,
        accounts,
        report_delay: std::time::Duration::from_millis(args.report_delay_ms),
        delivered_ratio: args.delivered_ratio,
        record: args.record,
        gateway_id: args.gateway_id,
    };
    herald_protocols::sim::cmpp::run(config, server::shutdown_signal()).await?;
    Ok(())
}
