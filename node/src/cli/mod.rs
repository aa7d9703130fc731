//! The command line: what `herald` does with its arguments — run a node, a local development
//! cluster or a carrier simulator, or act as a client of a running cluster. Each command's
//! arguments and output live in its own module here; none of them holds a business rule.

// First, so that its `println!` and `print!` are the ones every command below uses.
#[macro_use]
mod output;

pub mod admin;
pub mod backup;
pub mod bench;
pub mod cert;
pub mod clients;
pub mod connect;
pub mod debug;
pub mod dev;
pub mod log_limit;
pub mod membership;
pub mod messages;
pub mod replies;
pub mod sim;
pub mod trace;

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

/// `herald --version`: the build, and the RocksDB it links (durability depends on its version).
static VERSION_TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} (RocksDB {})",
        crate::version::describe(),
        herald_raft::db::ROCKSDB_VERSION
    )
});

#[derive(Parser)]
#[command(
    name = "herald",
    version = VERSION_TEXT.as_str(),
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
        /// The node's TOML configuration (node id, listen addresses, data dir, peers, links).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Initialise a new cluster of the config's peers if the data directory is empty: the
        /// very first start of a new cluster only. Without it a node on an empty data directory
        /// waits to be added (`herald cluster add-node`) and does not vote until then.
        #[arg(long)]
        bootstrap: bool,
        /// How the log is written to stderr: text, or one JSON object per line.
        #[arg(long, value_enum, value_name = "FORMAT", env = LOG_FORMAT_ENV, default_value = "text")]
        log_format: LogFormat,
    },
    /// Starts a local cluster and a CMPP carrier simulator as child processes.
    Dev(dev::DevArgs),
    /// Runs a carrier simulator.
    Sim {
        #[command(subcommand)]
        protocol: sim::SimProtocol,
    },
    /// Submits a message; prints its id.
    Send(messages::SendArgs),
    /// Shows a message's state and timeline.
    Status(messages::StatusArgs),
    /// Cancels a message not yet handed to a carrier.
    Cancel(messages::CancelArgs),
    /// Subscribers' replies routed to a client system (or, for operators, the unrouted ones).
    Replies(replies::RepliesArgs),
    /// The protocol trace of a message: the PDUs exchanged with carriers and why it failed.
    Trace(trace::TraceArgs),
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
    /// Client systems and their API keys (admins).
    Client {
        #[command(subcommand)]
        command: clients::ClientCommand,
    },
    /// Who changed the policy, clients, keys, drains and cancels (from the log; any node).
    Audit(clients::AuditArgs),
    /// Makes a CA, node and client certificates (no openssl needed).
    Cert {
        #[command(subcommand)]
        command: cert::CertCommand,
    },
    /// Writes a consistent backup of the running cluster to a file (admins).
    Backup(backup::BackupArgs),
    /// Seeds a new cluster's first node's data directory from a backup (offline).
    Restore(backup::RestoreArgs),
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
    Status(messages::ClusterStatusArgs),
    /// Moves leadership and every link off a node (before stopping it) and gives it none until
    /// undrained.
    Drain(admin::DrainArgs),
    /// Adds a node: as a learner, then, once caught up, as a voter (admins; on the leader).
    AddNode(membership::AddNodeArgs),
    /// Removes a node from the membership; its links move to the others (admins).
    RemoveNode(membership::RemoveNodeArgs),
    /// Raises the cluster version once every member runs the new version (the last step of a
    /// rolling upgrade: no rollback to the older binary after it).
    Finalize(admin::FinalizeArgs),
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Prints the policy in force, every default filled in.
    Show(admin::PolicyShowArgs),
    /// Replaces the policy with a TOML (or JSON) file.
    Set(admin::PolicySetArgs),
}

/// The whole command tree, as `--help` shows it: the README's command table is checked against it.
pub fn command() -> clap::Command {
    Cli::command()
}

/// How a long-running command writes its log to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event (colours only at a terminal).
    Text,
    /// One JSON object per line: timestamp, level, message, target and the event's fields
    /// (`node`, `link`, `message_id` on the lines about a message), for a log pipeline.
    Json,
}

impl LogFormat {
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// The environment variable `--log-format` defaults to.
pub const LOG_FORMAT_ENV: &str = "HERALD_LOG_FORMAT";

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,openraft=warn,h2=warn,tower=warn")
    });
    let writer = log_limit::RateLimitedWriter::new(std::io::stderr, log_limit::REPEAT_WINDOW)
        .json(format == LogFormat::Json);
    match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            // Colours for a person at a terminal only: a log file gets plain text.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(writer)
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            // `message` and the fields at the top level, where log pipelines look for them.
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_writer(writer)
            .init(),
    }
}

pub fn main() -> std::process::ExitCode {
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
    if matches!(
        cli.command,
        Command::Node { .. } | Command::Dev(_) | Command::Sim { .. }
    ) {
        output::keep_running_when_stdout_fails();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Node {
                config,
                bootstrap,
                log_format,
            } => {
                init_tracing(log_format);
                let mut config = crate::config::NodeConfig::load(&config)?;
                config.bootstrap |= bootstrap;
                crate::node::run(config).await
            }
            Command::Dev(args) => {
                init_tracing(args.log_format);
                dev::run(args).await
            }
            Command::Sim { protocol } => {
                init_tracing(LogFormat::Text);
                sim::run(protocol, crate::node::shutdown_signal()).await
            }
            Command::Send(args) => messages::send(args).await,
            Command::Bench(args) => {
                init_tracing(LogFormat::Text);
                bench::run(args).await
            }
            Command::Status(args) => messages::status(args).await,
            Command::Cancel(args) => messages::cancel(args).await,
            Command::Replies(args) => replies::run(args).await,
            Command::Trace(args) => trace::trace(args).await,
            Command::Policy {
                command: PolicyCommand::Show(args),
            } => admin::policy_show(args).await,
            Command::Policy {
                command: PolicyCommand::Set(args),
            } => admin::policy_set(args).await,
            Command::Cluster {
                command: ClusterCommand::Drain(args),
            } => admin::drain(args).await,
            Command::Cluster {
                command: ClusterCommand::Finalize(args),
            } => admin::finalize(args).await,
            Command::Cluster {
                command: ClusterCommand::Status(args),
            } => messages::cluster_status(args).await,
            Command::Cluster {
                command: ClusterCommand::AddNode(args),
            } => membership::add_node(args).await,
            Command::Cluster {
                command: ClusterCommand::RemoveNode(args),
            } => membership::remove_node(args).await,
            Command::Client { command } => clients::client(command).await,
            Command::Audit(args) => clients::audit(args).await,
            Command::Debug {
                command: DebugCommand::LogHashes(args),
            } => debug::log_hashes(args),
            Command::Cert { command } => cert::run(command),
            Command::Backup(args) => backup::backup(args).await,
            Command::Restore(args) => backup::restore(args).await,
        }
    })
}

#[cfg(test)]
mod tests {
    /// Every argument of every command, with the path of the command that takes it.
    fn arguments(command: &clap::Command, path: &str, out: &mut Vec<(String, clap::Arg)>) {
        for arg in command.get_arguments() {
            out.push((path.to_string(), arg.clone()));
        }
        for sub in command.get_subcommands() {
            arguments(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_option_of_every_command_says_what_it_is_for() {
        let mut all = Vec::new();
        arguments(&super::command(), "herald", &mut all);
        let silent: Vec<String> = all
            .iter()
            .filter(|(_, arg)| arg.get_help().is_none() && arg.get_long_help().is_none())
            .map(|(path, arg)| match arg.get_long() {
                Some(long) => format!("{path} --{long}"),
                None => format!("{path} {}", arg.get_id()),
            })
            .collect();
        assert!(silent.is_empty(), "no help text: {silent:#?}");
    }

    #[test]
    fn the_command_tree_is_consistent() {
        super::command().debug_assert();
    }
}
