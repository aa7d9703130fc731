//! `herald dev`: a whole local cluster for a newcomer — N nodes and a CMPP carrier simulator as
//! child processes on loopback, with the configuration files and `cluster.json` written to a folder.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::cli::connect::Connector;
use crate::config::{
    LinkConfig, MessageLimits, NodeConfig, PeerConfig, PlacementConfig, RaftTuning,
};

#[derive(clap::Args)]
pub struct DevArgs {
    /// Where configs, data, logs and cluster.json go.
    #[arg(long, default_value = ".herald-dev")]
    dir: PathBuf,
    /// How many nodes to start (1 to 9).
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Node i serves gRPC on 127.0.0.1:(port-base + i) and Raft on (port-base + 50 + i); the
    /// simulator listens on (port-base + 99).
    #[arg(long, default_value_t = 7100)]
    port_base: u16,
    /// Start from empty data directories.
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
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    if args.nodes == 0 || args.nodes > 9 {
        anyhow::bail!("--nodes must be between 1 and 9");
    }
    if args.links == 0 || args.link_window == 0 || args.link_rate == 0 {
        anyhow::bail!("--links, --link-window and --link-rate must be at least 1");
    }
    if args.fresh && args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)?;
    }
    std::fs::create_dir_all(&args.dir)?;
    let dir = std::fs::canonicalize(&args.dir)?;
    let exe = std::env::current_exe()?;
    let base = args.port_base;
    let sim_addr = format!("127.0.0.1:{}", base + 99);

    let mut children: Vec<(String, Child)> = Vec::new();
    let sim = Command::new(&exe)
        .args([
            "sim",
            "cmpp",
            "--listen",
            &sim_addr,
            "--account",
            "900001:dev-secret",
        ])
        .arg("--record")
        .arg(dir.join("sim-cmpp.jsonl"))
        .stdout(log_file(&dir, "sim-cmpp.log")?)
        .stderr(log_file(&dir, "sim-cmpp.log")?)
        .kill_on_drop(true)
        .spawn()?;
    let sim_pid = sim.id().unwrap_or(0);
    children.push(("sim-cmpp".into(), sim));

    let peers: Vec<PeerConfig> = (1..=args.nodes)
        .map(|i| PeerConfig {
            id: i,
            grpc: format!("127.0.0.1:{}", base + i as u16),
            raft: format!("127.0.0.1:{}", base + 50 + i as u16),
            route: None,
        })
        .collect();
    let mut nodes_json = Vec::new();
    for peer in &peers {
        let config = NodeConfig {
            node_id: peer.id,
            grpc_listen: peer.grpc.parse()?,
            raft_listen: peer.raft.parse()?,
            data_dir: dir.join(format!("node{}", peer.id)),
            peers: peers.clone(),
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
        };
        let path = dir.join(format!("node{}.toml", peer.id));
        std::fs::write(&path, toml::to_string_pretty(&config)?)?;
        let log = format!("node{}.log", peer.id);
        let child = Command::new(&exe)
            .args(["node", "--config"])
            .arg(&path)
            .stdout(log_file(&dir, &log)?)
            .stderr(log_file(&dir, &log)?)
            .kill_on_drop(true)
            .spawn()?;
        nodes_json.push(serde_json::json!({
            "id": peer.id, "grpc": peer.grpc, "raft": peer.raft, "pid": child.id().unwrap_or(0),
            "config": path, "log": dir.join(log),
        }));
        children.push((format!("node{}", peer.id), child));
    }
    let cluster = serde_json::json!({
        "nodes": nodes_json,
        "simulators": [{"protocol": "cmpp", "addr": sim_addr, "pid": sim_pid,
                        "record": dir.join("sim-cmpp.jsonl")}],
    });
    std::fs::write(
        dir.join("cluster.json"),
        serde_json::to_string_pretty(&cluster)?,
    )?;

    let first = &peers[0].grpc;
    let endpoints: Vec<&str> = peers.iter().map(|p| p.grpc.as_str()).collect();
    match wait_for_agreed_leader(&endpoints, Duration::from_secs(30)).await {
        Some(leader) => {
            println!(
                "Herald dev cluster is up: {} nodes, leader is node {leader}.",
                args.nodes
            );
            println!("  cluster file: {}", dir.join("cluster.json").display());
            println!("  logs:         {}/*.log", dir.display());
            println!("Try:");
            println!(
                "  herald send --endpoint {first} --to 13800138000 --text 'Hello from Herald'"
            );
            println!("  herald status --endpoint {first} <id printed by send>");
            println!("  herald cluster status --endpoint {first}");
            println!("Ctrl-C stops everything.");
        }
        None => println!(
            "The nodes did not agree on a leader within 30 s; see the logs in {}",
            dir.display()
        ),
    }

    tokio::select! {
        _ = crate::node::shutdown_signal() => {}
        (name, status) = first_exit(&mut children) => {
            println!("{name} exited ({status}); stopping the others. See {}/{name}.log", dir.display());
        }
    }
    for (_, child) in &mut children {
        if let Some(pid) = child.id() {
            // SIGTERM lets each process shut down cleanly; kill_on_drop is the backstop.
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
    }
    for (_, child) in &mut children {
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    }
    println!("stopped");
    Ok(())
}

fn log_file(dir: &Path, name: &str) -> std::io::Result<Stdio> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))?;
    Ok(Stdio::from(file))
}

async fn first_exit(children: &mut [(String, Child)]) -> (String, String) {
    loop {
        for (name, child) in children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return (name.clone(), status.to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until every node names the same leader, so that "the cluster is up" means any node
/// takes a call at once. One node knowing its leader is not enough: at a cold start the first
/// candidate asks for votes before its peers listen and waits out an election timeout (1.5–3 s),
/// and calls made meanwhile wait that long (benchmarks saw p99 of 2 s on a fresh cluster).
async fn wait_for_agreed_leader(endpoints: &[&str], limit: Duration) -> Option<u64> {
    let start = Instant::now();
    while start.elapsed() < limit {
        let mut leaders = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            leaders.push(leader_seen_by(endpoint).await);
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
async fn leader_seen_by(endpoint: &str) -> Option<u64> {
    use herald_api::v1::cluster_client::ClusterClient;
    let mut client = ClusterClient::new(Connector::new(endpoint).channel().await.ok()?);
    let status = client
        .status(herald_api::v1::ClusterStatusRequest {})
        .await
        .ok()?
        .into_inner();
    (status.leader != 0).then_some(status.leader)
}
