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
mod quota;
mod routing;
mod server;
mod timers;
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
    /// Cancels a message not yet handed to a carrier.
    Cancel(cli_client::CancelArgs),
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
enum SimProtocol {
    /// A CMPP 3.0 / 2.0 SMS gateway.
    Cmpp(SimCmppArgs),
    /// An SMGP 3.0.3 (China Telecom) SMS gateway.
    Smgp(SimGatewayArgs),
    /// A CNGP 2.0 (China Netcom) SMS gateway.
    Cngp(SimGatewayArgs),
    /// An SGIP 1.2 (China Unicom) SMS gateway; it connects back to the SP to send reports.
    Sgip(SimSgipArgs),
    /// An SMPP 3.3 / 3.4 / 5.0 SMSC (binds of all three kinds, delivery receipts).
    Smpp(SimSmppArgs),
}

#[derive(clap::Args)]
struct SimSmppArgs {
    #[arg(long)]
    listen: String,
    /// SYSTEM_ID:PASSWORD; repeatable.
    #[arg(long = "account", required = true)]
    accounts: Vec<String>,
    /// Delay before a delivery receipt is sent, in milliseconds.
    #[arg(long, default_value_t = 200)]
    report_delay_ms: u64,
    /// Fraction of messages reported DELIVRD (the rest UNDELIV).
    #[arg(long, default_value_t = 1.0)]
    delivered_ratio: f64,
    /// JSON-lines file recording every submit received and every receipt sent.
    #[arg(long)]
    record: Option<PathBuf>,
    /// How message ids are written: hex or decimal.
    #[arg(long, default_value = "decimal")]
    id_format: String,
}

#[derive(clap::Args)]
struct SimSgipArgs {
    #[arg(long)]
    listen: String,
    /// LOGIN:PASSWORD, or LOGIN:PASSWORD@SP_ADDR to give this SP its own listener; repeatable.
    #[arg(long = "account", required = true)]
    accounts: Vec<String>,
    /// The SP's listener (its `listen` link option) for Reports and MOs.
    #[arg(long)]
    sp_addr: Option<String>,
    /// Delay before a status report is sent, in milliseconds.
    #[arg(long, default_value_t = 200)]
    report_delay_ms: u64,
    /// Fraction of messages reported delivered (the rest failed).
    #[arg(long, default_value_t = 1.0)]
    delivered_ratio: f64,
    /// JSON-lines file recording every submit received and every report sent.
    #[arg(long)]
    record: Option<PathBuf>,
    /// The gateway's node id in its own sequence numbers.
    #[arg(long, default_value_t = 4_000_000_001)]
    node_id: u32,
    /// Close an SP connection idle this long, in milliseconds.
    #[arg(long, default_value_t = 60_000)]
    idle_timeout_ms: u64,
}

/// Options of the SMGP and CNGP simulators.
#[derive(clap::Args)]
struct SimGatewayArgs {
    #[arg(long)]
    listen: String,
    /// CLIENTID:SECRET; repeatable.
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
    /// Gateway code in minted MsgIDs (up to six digits).
    #[arg(long, default_value_t = 1)]
    gateway_id: u32,
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
    /// Accept only this CMPP version (2 or 3); both by default.
    #[arg(long, value_parser = clap::value_parser!(u8).range(2..=3))]
    version: Option<u8>,
    /// Answer SUBMITs beyond this many per second per account with Result=8 (flow control).
    #[arg(long)]
    max_per_second: Option<u32>,
    /// Answer a SUBMIT with Result=8 while this many of its connection await SUBMIT_RESP.
    #[arg(long)]
    max_window: Option<usize>,
    /// Hold every SUBMIT_RESP this long, in milliseconds.
    #[arg(long, default_value_t = 0)]
    submit_resp_delay_ms: u64,
    /// Fault: answer N PDUs per connection, then close it on the next.
    #[arg(long)]
    drop_after: Option<u64>,
    /// Fault: answer N PDUs per connection, then stop answering (the connection stays open).
    #[arg(long)]
    stall_after: Option<u64>,
    /// Fault: answer N PDUs per connection, then answer with malformed PDUs.
    #[arg(long)]
    malformed_after: Option<u64>,
    /// Send a mobile-originated message on every connection this often, in milliseconds.
    #[arg(long)]
    mo_every_ms: Option<u64>,
    /// Fault: refuse every SUBMIT to numbers starting with PREFIX, with Result CODE
    /// (PREFIX=CODE); repeatable.
    #[arg(long = "reject-dest")]
    reject_dest: Vec<String>,
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
            Command::Sim {
                protocol: SimProtocol::Cmpp(args),
            } => {
                init_tracing();
                run_cmpp_sim(args).await
            }
            Command::Sim {
                protocol: SimProtocol::Smgp(args),
            } => {
                init_tracing();
                let config = gateway_sim_config(args)?;
                herald_protocols::sim::smgp::run(config, server::shutdown_signal()).await?;
                Ok(())
            }
            Command::Sim {
                protocol: SimProtocol::Cngp(args),
            } => {
                init_tracing();
                let config = gateway_sim_config(args)?;
                herald_protocols::sim::cngp::run(config, server::shutdown_signal()).await?;
                Ok(())
            }
            Command::Sim {
                protocol: SimProtocol::Sgip(args),
            } => {
                init_tracing();
                run_sgip_sim(args).await
            }
            Command::Sim {
                protocol: SimProtocol::Smpp(args),
            } => {
                init_tracing();
                run_smpp_sim(args).await
            }
            Command::Send(args) => cli_client::send(args).await,
            Command::Bench(args) => {
                init_tracing();
                bench::run(args).await
            }
            Command::Status(args) => cli_client::status(args).await,
            Command::Cancel(args) => cli_client::cancel(args).await,
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

fn gateway_sim_config(
    args: SimGatewayArgs,
) -> anyhow::Result<herald_protocols::sim::telecom::SimConfig> {
    let mut accounts = Vec::new();
    for raw in &args.accounts {
        let (id, secret) = raw
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("--account {raw:?}: expected CLIENTID:SECRET"))?;
        accounts.push((id.to_string(), secret.to_string()));
    }
    if !(0.0..=1.0).contains(&args.delivered_ratio) {
        anyhow::bail!("--delivered-ratio must be between 0 and 1");
    }
    Ok(herald_protocols::sim::telecom::SimConfig {
        listen: args.listen,
        accounts,
        report_delay: std::time::Duration::from_millis(args.report_delay_ms),
        delivered_ratio: args.delivered_ratio,
        record: args.record,
        gateway_id: args.gateway_id,
    })
}

async fn run_sgip_sim(args: SimSgipArgs) -> anyhow::Result<()> {
    use herald_protocols::sim::sgip::{SimAccount, SimConfig};
    let mut accounts = Vec::new();
    for raw in &args.accounts {
        let (login, rest) = raw.split_once(':').ok_or_else(|| {
            anyhow::anyhow!("--account {raw:?}: expected LOGIN:PASSWORD[@SP_ADDR]")
        })?;
        let (password, sp_addr) = match rest.rsplit_once('@') {
            Some((password, addr)) => (password, Some(addr.to_string())),
            None => (rest, None),
        };
        if sp_addr.is_none() && args.sp_addr.is_none() {
            anyhow::bail!("--account {login:?} has no SP address: add @SP_ADDR or --sp-addr");
        }
        accounts.push(SimAccount {
            login: login.to_string(),
            password: password.to_string(),
            sp_addr,
        });
    }
    if !(0.0..=1.0).contains(&args.delivered_ratio) {
        anyhow::bail!("--delivered-ratio must be between 0 and 1");
    }
    let config = SimConfig {
        listen: args.listen,
        accounts,
        sp_addr: args.sp_addr,
        report_delay: std::time::Duration::from_millis(args.report_delay_ms),
        delivered_ratio: args.delivered_ratio,
        record: args.record,
        node_id: args.node_id,
        idle_timeout: std::time::Duration::from_millis(args.idle_timeout_ms.max(1)),
    };
    herald_protocols::sim::sgip::run(config, server::shutdown_signal()).await?;
    Ok(())
}

async fn run_smpp_sim(args: SimSmppArgs) -> anyhow::Result<()> {
    use herald_protocols::smpp::IdFormat;
    let mut accounts = Vec::new();
    for raw in &args.accounts {
        let (id, password) = raw
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("--account {raw:?}: expected SYSTEM_ID:PASSWORD"))?;
        accounts.push((id.to_string(), password.to_string()));
    }
    if !(0.0..=1.0).contains(&args.delivered_ratio) {
        anyhow::bail!("--delivered-ratio must be between 0 and 1");
    }
    let id_format = match args.id_format.parse::<IdFormat>() {
        Ok(f @ (IdFormat::Hex | IdFormat::Decimal)) => f,
        _ => anyhow::bail!("--id-format {:?}: must be hex or decimal", args.id_format),
    };
    let config = herald_protocols::sim::smpp::SimConfig {
        listen: args.listen,
        accounts,
        report_delay: std::time::Duration::from_millis(args.report_delay_ms),
        delivered_ratio: args.delivered_ratio,
        record: args.record,
        id_format,
        receipt_id_format: None,
    };
    herald_protocols::sim::smpp::run(config, server::shutdown_signal()).await?;
    Ok(())
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
        version: args.version,
    };
    let mut reject_dest = Vec::new();
    for spec in &args.reject_dest {
        let parsed = spec
            .split_once('=')
            .and_then(|(prefix, code)| Some((prefix.to_string(), code.parse::<u32>().ok()?)));
        match parsed {
            Some(rule) => reject_dest.push(rule),
            None => anyhow::bail!("--reject-dest {spec:?}: expected PREFIX=CODE"),
        }
    }
    let faults = herald_protocols::sim::cmpp::SimFaults {
        reject_dest,
        submit_resp_delay: std::time::Duration::from_millis(args.submit_resp_delay_ms),
        max_per_second: args.max_per_second,
        max_window: args.max_window,
        drop_after: args.drop_after,
        stall_after: args.stall_after,
        malformed_after: args.malformed_after,
        mo_every: args.mo_every_ms.map(std::time::Duration::from_millis),
        ..Default::default()
    };
    herald_protocols::sim::cmpp::run_with_faults(config, faults, server::shutdown_signal()).await?;
    Ok(())
}
