//! `herald dev`: a whole local cluster for a newcomer — N nodes and a CMPP carrier simulator as
//! child processes on loopback, with the configuration files, data, logs and `cluster.json` in
//! one folder. It supervises them: a child that dies is reported and the rest keep running, so
//! the failover the README describes can be tried; `herald dev start-node N` starts a stopped
//! node again as its child; Ctrl-C stops everything.
//!
//! The folder is locked and every port checked free before anything is written or started, so a
//! second `herald dev` on the same folder or ports refuses and leaves the first one alone.

mod control;
mod credentials;
mod folder;
mod layout;
mod supervisor;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::connect::Connector;
use crate::config::{
    AuthConfig, LinkConfig, MessageLimits, NodeConfig, PeerConfig, PlacementConfig, RaftTuning,
    TlsConfig,
};
use secrecy::ExposeSecret as _;

use control::Request;
use folder::{DevFolder, CLUSTER_FILE};
use layout::{check_free, Layout};
use supervisor::{ChildSpec, Kind, Supervisor};

/// Destinations the dev simulator refuses by default, and with which CMPP result (13:
/// Dest_terminal_Id error, not retried), so that `herald trace` has a refusal to show. No
/// number `herald bench` sends to (139…) starts with it.
pub const REFUSED_PREFIX: &str = "1340000";
pub const REFUSED_CODE: u32 = 13;
const SIM_NAME: &str = "sim-cmpp";
const DEFAULT_DIR: &str = ".herald-dev";

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DevArgs {
    #[command(subcommand)]
    command: Option<DevCommand>,
    /// Where configs, data, logs and cluster.json go.
    #[arg(long, default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// How many nodes to start (1 to 9).
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Node i serves gRPC on HOST:(port-base + i) and Raft on (port-base + 50 + i); the
    /// simulator listens on (port-base + 99). At most 65436.
    #[arg(long, default_value_t = 7100)]
    port_base: u16,
    /// The loopback address every node and the simulator listen on (any of 127.0.0.0/8), so
    /// that clusters on different addresses can use the same ports.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Start from empty data directories (the folder is emptied, once it is known to be free).
    #[arg(long)]
    fresh: bool,
    /// Carrier links to the simulator (messages are spread over them).
    #[arg(long, default_value_t = 1)]
    links: usize,
    /// Window (unacknowledged submits) of each link.
    #[arg(long, default_value_t = 16)]
    link_window: usize,
    /// Messages per second each link may send.
    #[arg(long, default_value_t = 500)]
    link_rate: u32,
    /// An extra argument for the simulator (`herald sim cmpp --help`); repeatable, in order,
    /// e.g. `--sim-arg=--reject-dest --sim-arg=1390000=13`. By default it already refuses
    /// destinations starting 1340000 with result 13.
    #[arg(long = "sim-arg", value_name = "ARG", allow_hyphen_values = true)]
    sim_args: Vec<String>,
    /// Plaintext nodes without certificates or API keys (every caller is an admin; cluster.json's
    /// tls and credentials are null): the benchmarks' "security off" case. By default the cluster
    /// gets a CA and node certificates in DIR/tls/, an admin key and a demo sender.
    #[arg(long)]
    insecure: bool,
    /// The log format of the supervisor and every node it starts (text, or one JSON object per
    /// line).
    #[arg(long, value_enum, value_name = "FORMAT", env = crate::cli::LOG_FORMAT_ENV, default_value = "text")]
    pub log_format: crate::cli::LogFormat,
}

/// The dev cluster's name in its certificates.
pub const DEV_CLUSTER_NAME: &str = "dev";

#[derive(clap::Subcommand)]
enum DevCommand {
    /// Asks the running `herald dev` to start its stopped node N again, on its data, as its
    /// child (Ctrl-C of `herald dev` stops it too; cluster.json shows its new pid).
    StartNode {
        /// The node's id (1 to the cluster's node count).
        id: u64,
        /// The running cluster's folder.
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// Asks the running `herald dev` to start its stopped carrier simulator again.
    StartSim {
        /// The running cluster's folder.
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
    },
}

/// Why `herald dev` refuses to start: each names the option or the resource, the value and the
/// rule.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(
        "--host {host}: must be a loopback address (127.0.0.0/8 or ::1): every node and the \
         simulator of a dev cluster run on this machine"
    )]
    Host { host: IpAddr },
    #[error("--nodes {nodes}: must be between 1 and {}", layout::MAX_NODES)]
    Nodes { nodes: u64 },
    #[error(
        "--port-base {base}: herald dev listens on port-base+1 to port-base+99 (nodes' gRPC and \
         Raft, the simulator), which must fit below 65536, so --port-base must be at most {max}"
    )]
    PortBase { base: u16, max: u16 },
    #[error("--{option} {value}: must be at least 1")]
    AtLeastOne { option: &'static str, value: u64 },
    #[error(
        "folder {} is in use by pid {pid} (another herald dev); stop that one (Ctrl-C) or \
         choose another --dir", dir.display()
    )]
    FolderInUse { dir: PathBuf, pid: String },
    #[error("folder {}: {reason}", dir.display())]
    Folder { dir: PathBuf, reason: String },
    #[error(
        "port {addr} ({what}) is in use ({reason}): another cluster or program listens there; \
         stop it, or choose another --port-base or --host"
    )]
    PortInUse {
        addr: std::net::SocketAddr,
        what: String,
        reason: String,
    },
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    match args.command {
        Some(DevCommand::StartNode { id, dir }) => start_again(&dir, format!("node{id}")).await,
        Some(DevCommand::StartSim { dir }) => start_again(&dir, SIM_NAME.into()).await,
        None => run_cluster(args).await,
    }
}

/// `herald dev start-node` / `start-sim`: one request to the running supervisor.
async fn start_again(dir: &Path, name: String) -> anyhow::Result<()> {
    let answer = control::ask(dir, Request::Start { name }).await?;
    println!("{answer}");
    Ok(())
}

async fn run_cluster(args: DevArgs) -> anyhow::Result<()> {
    // Every check that needs no file comes first: a refusal writes nothing.
    let layout = Layout::new(args.host, args.port_base, args.nodes)?;
    for (option, value) in [
        ("links", args.links as u64),
        ("link-window", args.link_window as u64),
        ("link-rate", u64::from(args.link_rate)),
    ] {
        if value == 0 {
            return Err(DevError::AtLeastOne { option, value }.into());
        }
    }
    let folder = DevFolder::lock(&args.dir)?;
    // Before `--fresh` deletes anything: a cluster on these ports may be the one whose data
    // this folder holds.
    if let Err(e) = check_free(&layout.all_listens()) {
        folder.abandon();
        return Err(e.into());
    }
    // Also before `--fresh`: a socket path too long for the system (a deep --dir) is refused
    // while the folder is still as it was.
    let listener = match supervisor::bind_control(&folder) {
        Ok(listener) => listener,
        Err(e) => {
            let path = folder.join(folder::SOCKET_FILE);
            folder.abandon();
            anyhow::bail!("control socket {}: {e}", path.display());
        }
    };
    if args.fresh {
        folder.empty()?;
    }
    let exe = std::env::current_exe()?;
    // A bootstrap admin key for this run: its hash goes into every node config, the key into
    // cluster.json (the dev folder is the developer's own).
    let admin = (!args.insecure).then(crate::service::auth::NewKey::generate);
    let tls = if args.insecure {
        None
    } else {
        Some(make_certificates(&layout, &folder.join("tls"))?)
    };
    let specs = child_specs(&args, &layout, &folder, admin.as_ref(), tls.as_ref())?;
    // Listening for the signals before any child starts: the children run in their own process
    // group, so a signal that killed this process unhandled would leave them running.
    let shutdown = stop_signals()?;
    tokio::pin!(shutdown);
    let mut supervisor = Supervisor::new(exe, folder, specs);
    supervisor.set_field(
        "tls",
        match &tls {
            Some(files) => serde_json::json!({ "ca": files.ca }),
            None => serde_json::Value::Null,
        },
    );
    supervisor.start_all()?;

    let admin_key = admin.as_ref().map(|k| k.key.clone());
    let ca_pem = match &tls {
        Some(files) => Some(std::fs::read(&files.ca)?),
        None => None,
    };
    let connectors: Vec<Connector> = layout
        .ids()
        .map(|id| {
            let mut connector =
                Connector::new(layout.grpc(id).to_string()).request_timeout(Duration::from_secs(1));
            if let Some(pem) = &ca_pem {
                connector = connector.ca_pem(pem.clone());
            }
            if let Some(key) = &admin_key {
                connector = connector.api_key(key.clone());
            }
            connector
        })
        .collect();
    tokio::select! {
        leader = wait_for_agreed_leader(&connectors, Duration::from_secs(30)) => {
            if let (Some(admin), Some(_)) = (&admin_key, leader) {
                match credentials::demo_key(&connectors[0], admin).await {
                    Ok(demo) => supervisor.set_credentials(serde_json::json!({
                        "admin": admin.expose_secret(),
                        "demo": demo.expose_secret(),
                    }))?,
                    Err(e) => eprintln!("could not make the demo client's key: {e:#}"),
                }
            }
            print_banner(&args, &layout, &supervisor, leader);
            supervisor.run(listener, shutdown).await
        }
        // Stopped while starting: stop the children at once.
        _ = &mut shutdown => supervisor.run(listener, std::future::ready(())).await,
    }
}

/// Resolves on SIGINT (Ctrl-C), SIGTERM or SIGHUP (the terminal closed); registered at once.
fn stop_signals() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
            _ = hangup.recv() => {}
        }
    })
}

/// The dev cluster's certificate files: one CA, one certificate per node.
struct DevTls {
    ca: PathBuf,
    nodes: std::collections::BTreeMap<u64, (PathBuf, PathBuf)>,
}

/// A CA (kept across restarts of the same folder, so certificates given out stay valid) and a
/// fresh certificate per node naming its identity and the loopback host, in `dir`.
fn make_certificates(layout: &Layout, dir: &Path) -> anyhow::Result<DevTls> {
    use crate::tls::certs;
    let dir = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()?.join(dir)
    };
    let ca = match certs::read_ca(&dir) {
        Ok(ca) => ca,
        Err(_) => {
            let ca = certs::make_ca(DEV_CLUSTER_NAME, certs::Validity::days(3650)?)?;
            certs::write(&dir, "ca", &ca)?;
            ca
        }
    };
    let mut nodes = std::collections::BTreeMap::new();
    for id in layout.ids() {
        let identity = crate::tls::NodeIdentity::new(DEV_CLUSTER_NAME, id)?;
        let hosts = vec![layout.grpc(id).ip().to_string(), "localhost".to_string()];
        let cert = certs::make_node(&ca, &identity, &hosts, certs::Validity::days(365)?)?;
        nodes.insert(id, certs::write(&dir, &format!("node{id}"), &cert)?);
    }
    Ok(DevTls {
        ca: dir.join("ca.pem"),
        nodes,
    })
}

/// The simulator and the nodes, with their configuration files written.
fn child_specs(
    args: &DevArgs,
    layout: &Layout,
    folder: &DevFolder,
    admin: Option<&crate::service::auth::NewKey>,
    tls: Option<&DevTls>,
) -> anyhow::Result<Vec<ChildSpec>> {
    let dir = folder.path();
    let sim_addr = layout.sim().to_string();
    let record = folder.join("sim-cmpp.jsonl");
    let mut sim_args: Vec<std::ffi::OsString> = [
        "sim",
        "cmpp",
        "--listen",
        &sim_addr,
        "--account",
        "900001:dev-secret",
        "--reject-dest",
        &format!("{REFUSED_PREFIX}={REFUSED_CODE}"),
        "--record",
    ]
    .iter()
    .map(Into::into)
    .collect();
    sim_args.push(record.clone().into());
    sim_args.extend(args.sim_args.iter().map(Into::into));
    let mut specs = vec![ChildSpec {
        name: SIM_NAME.into(),
        kind: Kind::Simulator,
        args: sim_args,
        log: folder.join("sim-cmpp.log"),
        listens: layout.sim_listens(),
        entry: serde_json::json!({
            "protocol": "cmpp", "addr": sim_addr, "record": record,
            "log": folder.join("sim-cmpp.log"),
        }),
        restart_command: format!("herald dev start-sim --dir {}", dir.display()),
    }];

    let peers: Vec<PeerConfig> = layout
        .ids()
        .map(|id| PeerConfig {
            id,
            grpc: layout.grpc(id).to_string(),
            raft: layout.raft(id).to_string(),
            route: None,
        })
        .collect();
    for peer in &peers {
        let config = NodeConfig {
            node_id: peer.id,
            grpc_listen: layout.grpc(peer.id),
            http_listen: Some(layout.http(peer.id)),
            raft_listen: layout.raft(peer.id),
            data_dir: folder.join(&format!("node{}", peer.id)),
            peers: peers.clone(),
            // `--bootstrap` on the first start instead (see below): a config that says it would
            // start a second cluster from a node whose data directory was emptied.
            bootstrap: false,
            links: (1..=args.links)
                .map(|k| LinkConfig {
                    name: if args.links == 1 {
                        "cmpp-sim".into()
                    } else {
                        format!("cmpp-sim-{k}")
                    },
                    protocol: "cmpp".into(),
                    address: sim_addr.clone(),
                    account: "900001".into(),
                    secret: "dev-secret".into(),
                    secret_file: None,
                    service_id: "HERALD".into(),
                    src_id: "10690001".into(),
                    max_window: args.link_window,
                    max_per_second: args.link_rate,
                    connections: 1,
                    options: Default::default(),
                })
                .collect(),
            raft: RaftTuning::default(),
            messages: MessageLimits::default(),
            placement: PlacementConfig::default(),
            min_free_space: crate::disk_space::DEFAULT_MIN_FREE_SPACE,
            insecure: args.insecure,
            auth: AuthConfig {
                admin_key_sha256: admin
                    .map(|k| crate::service::auth::hex(&k.sha256()))
                    .into_iter()
                    .collect(),
            },
            tls: tls.and_then(|t| {
                let (cert, key) = t.nodes.get(&peer.id)?;
                Some(TlsConfig {
                    cluster: DEV_CLUSTER_NAME.into(),
                    ca: t.ca.clone(),
                    cert: cert.clone(),
                    key: key.clone(),
                    public_cert: None,
                    public_key: None,
                })
            }),
            // `herald dev` stops every node at once, when handing over helps nobody: short, so
            // the supervisor's grace period covers it.
            shutdown_drain_timeout_ms: 5_000,
            upgrades: Default::default(),
        };
        let name = format!("node{}", peer.id);
        let path = folder.join(&format!("{name}.toml"));
        std::fs::write(&path, toml::to_string_pretty(&config)?)?;
        let log = folder.join(&format!("{name}.log"));
        specs.push(ChildSpec {
            name,
            kind: Kind::Node,
            args: node_args(&path, &config.data_dir, args.log_format),
            log: log.clone(),
            listens: layout.node_listens(peer.id),
            entry: serde_json::json!({
                "id": peer.id, "grpc": peer.grpc, "raft": peer.raft,
                "http": layout.http(peer.id).to_string(), "config": path, "log": log,
            }),
            restart_command: format!("herald dev start-node {} --dir {}", peer.id, dir.display()),
        });
    }
    Ok(specs)
}

/// A node's command line: `--bootstrap` only while its data directory does not exist yet (a new
/// cluster's first start); the supervisor drops it once the node has started
/// ([`supervisor::FIRST_START_ONLY`]), so a restart never bootstraps again.
fn node_args(
    config: &Path,
    data_dir: &Path,
    log_format: crate::cli::LogFormat,
) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "node".into(),
        "--config".into(),
        config.into(),
        "--log-format".into(),
        log_format.name().into(),
    ];
    if !data_dir.exists() {
        args.push(supervisor::FIRST_START_ONLY.into());
    }
    args
}

/// What is running and how to use it. Bench scripts wait for the "cluster is up" line.
fn print_banner(args: &DevArgs, layout: &Layout, supervisor: &Supervisor, leader: Option<u64>) {
    let dir = supervisor.folder().path();
    let pid = |name: &str| {
        supervisor
            .pid(name)
            .map_or_else(|| "exited".to_string(), |p| p.to_string())
    };
    match leader {
        Some(leader) => println!(
            "Herald dev cluster is up: {} nodes, leader is node {leader}.",
            layout.nodes()
        ),
        None => println!(
            "The nodes did not agree on a leader within 30 s; see the logs in {}",
            dir.display()
        ),
    }
    for id in layout.ids() {
        let name = format!("node{id}");
        println!(
            "  node {id}  gRPC {}  HTTP {}  pid {}  log {}",
            layout.grpc(id),
            layout.http(id),
            pid(&name),
            dir.join(format!("{name}.log")).display()
        );
    }
    println!(
        "  CMPP simulator  {}  pid {}  log {}",
        layout.sim(),
        pid(SIM_NAME),
        dir.join("sim-cmpp.log").display()
    );
    println!(
        "    it delivers every message, but refuses destinations starting {REFUSED_PREFIX} \
         (result {REFUSED_CODE}){}",
        if args.sim_args.is_empty() {
            String::new()
        } else {
            format!("; extra options: {}", args.sim_args.join(" "))
        }
    );
    println!("  cluster file: {}", dir.join(CLUSTER_FILE).display());
    let first = layout.grpc(1);
    println!("Try:");
    println!("  herald send --endpoint {first} --to 13800138000 --text 'Hello from Herald'");
    println!("  herald status --endpoint {first} <id printed by send>");
    println!(
        "  herald send --endpoint {first} --to {REFUSED_PREFIX}1234 --text 'refused'; then \
         herald trace --endpoint {first} <id>"
    );
    println!("  herald cluster status --endpoint {first}");
    println!(
        "Kill any node (kill -9 PID) and keep sending; start it again with \
         `herald dev start-node N --dir {}`.",
        dir.display()
    );
    println!("Ctrl-C stops everything.");
}

/// Waits until every node names the same leader, so that "the cluster is up" means any node
/// takes a call at once. One node knowing its leader is not enough: at a cold start the first
/// candidate asks for votes before its peers listen and waits out an election timeout (1.5–3 s),
/// and calls made meanwhile wait that long (benchmarks saw p99 of 2 s on a fresh cluster).
async fn wait_for_agreed_leader(nodes: &[Connector], limit: Duration) -> Option<u64> {
    let start = Instant::now();
    while start.elapsed() < limit {
        let mut leaders = Vec::with_capacity(nodes.len());
        for node in nodes {
            leaders.push(leader_seen_by(node).await);
        }
        if let Some(Some(leader)) = leaders.first() {
            if leaders.iter().all(|l| *l == Some(*leader)) {
                return Some(*leader);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// The leader `endpoint`'s node knows of, if it answers and knows one.
/// (`node` bounds each call: a node that accepts but does not answer must not hold up the wait.)
async fn leader_seen_by(node: &Connector) -> Option<u64> {
    use herald_api::v1::cluster_client::ClusterClient;
    let channel = node.channel().await.ok()?;
    let mut client = ClusterClient::new(channel);
    let status = client
        .status(herald_api::v1::ClusterStatusRequest {})
        .await
        .ok()?
        .into_inner();
    (status.leader != 0).then_some(status.leader)
}
