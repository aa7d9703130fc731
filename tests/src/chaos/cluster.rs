//! The cluster under test: N `herald node` processes, each on its own loopback address
//! (127.0.0.(10+id)) and data dir, one or more CMPP simulators, and a fault proxy for every ordered
//! pair of nodes and every (node, simulator) pair.
//!
//! Each node gets its own config whose `[[peers]] route` points at the proxy `i → j`, so blocking
//! that proxy cuts exactly node i's traffic to node j; the membership (`raft`) is the same
//! everywhere. Nodes and simulators can be SIGKILLed, restarted, SIGSTOPped and SIGCONTed.
//!
//! With [`Tuning::lossy_fs`], each node's data directory is its own [`LossyFs`] mount (held by
//! this process), so a node's machine can lose power ([`ChaosCluster::power_cut`]), fill its
//! disk or fail its fsyncs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use herald_api::v1::cluster_client::ClusterClient;
use herald_api::v1::messaging_client::MessagingClient;
use herald_api::v1::{ClusterStatusRequest, ClusterStatusResponse};
use herald_lossyfs::{Fault, LossyFs, Tear};
use herald_node::cli::connect::{ClientChannel, Connector};
use secrecy::SecretString;

use super::proxy::Proxy;
use crate::herald_bin;

pub const ACCOUNT: &str = "900001";
pub const SECRET: &str = "chaos-secret";

/// Tuning shared by every node of a chaos cluster.
#[derive(Debug, Clone)]
pub struct Tuning {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    pub node_lost_after_ms: u64,
    pub snapshot_logs: u64,
    pub keep_logs: u64,
    pub max_window: usize,
    pub max_per_second: u32,
    pub report_delay_ms: u64,
    /// Every node runs under libfaketime with its own clock file, so its wall clock can be
    /// jumped ([`ChaosCluster::set_clock_offset`]); the clock-skew faults need it.
    pub clock_skew: bool,
    /// Each node's data directory on its own [`LossyFs`] mount (the power, disk and fsync faults
    /// need it; FUSE must be usable).
    pub lossy_fs: bool,
    /// Environment variables every node is started with (the teeth test's unsafe switch).
    pub node_env: Vec<(String, String)>,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            heartbeat_ms: 150,
            election_min_ms: 1000,
            election_max_ms: 2000,
            node_lost_after_ms: 2000,
            snapshot_logs: 2000,
            keep_logs: 500,
            max_window: 16,
            max_per_second: 300,
            report_delay_ms: 100,
            clock_skew: false,
            lossy_fs: false,
            node_env: Vec::new(),
        }
    }
}

pub struct Node {
    pub id: u64,
    pub grpc: String,
    pub raft: String,
    /// The HTTP listener (`/metrics`, `/livez`, `/readyz`), TLS with the cluster's CA.
    pub http: String,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
}

pub struct Sim {
    /// The link name the nodes use for this simulator.
    pub link: String,
    pub addr: String,
    pub record: PathBuf,
    pub log: PathBuf,
    pub gateway_id: u32,
}

pub struct ChaosCluster {
    pub dir: PathBuf,
    pub nodes: Vec<Node>,
    pub sims: Vec<Sim>,
    pub tuning: Tuning,
    /// (from, to) → the proxy `from` uses to reach `to`'s internal service.
    pub peer_proxies: BTreeMap<(u64, u64), Proxy>,
    /// (node, simulator index) → the proxy that node's link uses.
    pub sim_proxies: BTreeMap<(u64, usize), Proxy>,
    procs: Mutex<HashMap<u64, Child>>,
    /// Nodes that run another `herald` than [`herald_bin`] (the rolling-upgrade test's older
    /// build), from their next start on.
    binaries: Mutex<HashMap<u64, PathBuf>>,
    paused: Mutex<BTreeSet<u64>>,
    /// Each node's data directory when [`Tuning::lossy_fs`]; unmounted when the cluster drops
    /// (after its processes are killed).
    filesystems: BTreeMap<u64, LossyFs>,
    sim_procs: Mutex<Vec<Option<Child>>>,
    sim_paused: Mutex<BTreeSet<usize>>,
    /// The bootstrap admin key of every node's `[auth]`: the workload and the checks call with it.
    admin_key: SecretString,
    /// The cluster's CA: nodes speak TLS to each other through the proxies and to clients.
    pub tls: crate::TestCa,
    /// Each node's wall-clock offset file (empty unless `tuning.clock_skew`).
    clocks: BTreeMap<u64, crate::faketime::ClockFile>,
}

/// A port free on `ip` at the time of asking.
fn free_port_on(ip: &str) -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind(format!("{ip}:0"))
        .with_context(|| format!("binding an ephemeral port on {ip}"))?;
    Ok(l.local_addr()?.port())
}

/// The node config an older build reads: without the keys it does not know (it refuses
/// unknown keys), written beside the config as `nodeN.older.toml`. `http-listen` came with the
/// metrics issue, `[upgrades]` and `shutdown-drain-timeout-ms` with the lifecycle one.
fn older_config(config: &Path) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(config)?;
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            skipping = t.starts_with("[upgrades]");
        }
        if skipping || t.starts_with("http-listen") || t.starts_with("shutdown-drain-timeout-ms") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    let path = config.with_extension("older.toml");
    std::fs::write(&path, out)?;
    Ok(path)
}

fn node_ip(id: u64) -> String {
    format!("127.0.0.{}", 10 + id)
}

fn log_file(path: &Path) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on the pid of a child we spawned and have not yet reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

impl ChaosCluster {
    pub async fn start(
        dir: &Path,
        nodes: u64,
        sims: usize,
        tuning: Tuning,
    ) -> anyhow::Result<ChaosCluster> {
        Self::start_with_binary(dir, nodes, sims, tuning, None).await
    }

    /// [`ChaosCluster::start`] with every node running `binary` (None: [`herald_bin`]).
    pub async fn start_with_binary(
        dir: &Path,
        nodes: u64,
        sims: usize,
        tuning: Tuning,
        start_binary: Option<PathBuf>,
    ) -> anyhow::Result<ChaosCluster> {
        std::fs::create_dir_all(dir)?;
        let ids: Vec<u64> = (1..=nodes).collect();
        let sims: Vec<Sim> = (0..sims)
            .map(|i| -> anyhow::Result<Sim> {
                let letter = (b'a' + i as u8) as char;
                Ok(Sim {
                    link: format!("sim-{letter}"),
                    addr: format!("127.0.0.1:{}", free_port_on("127.0.0.1")?),
                    record: dir.join(format!("sim-{letter}.jsonl")),
                    log: dir.join(format!("sim-{letter}.log")),
                    gateway_id: 100 + i as u32,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let nodes: Vec<Node> = (1..=nodes)
            .map(|id| -> anyhow::Result<Node> {
                let ip = node_ip(id);
                Ok(Node {
                    id,
                    grpc: format!("{ip}:{}", free_port_on(&ip)?),
                    raft: format!("{ip}:{}", free_port_on(&ip)?),
                    http: format!("{ip}:{}", free_port_on(&ip)?),
                    data_dir: dir.join(format!("node{id}")),
                    config: dir.join(format!("node{id}.toml")),
                    log: dir.join(format!("node{id}.log")),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let tls = crate::TestCa::new(&dir.join("tls"), "chaos");
        let mut peer_proxies = BTreeMap::new();
        let mut sim_proxies = BTreeMap::new();
        for from in &nodes {
            for to in &nodes {
                if from.id != to.id {
                    let p = Proxy::start("127.0.0.1", &to.raft).await?;
                    peer_proxies.insert((from.id, to.id), p);
                }
            }
            for (s, sim) in sims.iter().enumerate() {
                let p = Proxy::start("127.0.0.1", &sim.addr).await?;
                sim_proxies.insert((from.id, s), p);
            }
        }
        let mut filesystems = BTreeMap::new();
        if tuning.lossy_fs {
            for n in &nodes {
                std::fs::create_dir_all(&n.data_dir)?;
                let fs = LossyFs::mount(&n.data_dir)
                    .with_context(|| format!("node {}'s data directory", n.id))?;
                filesystems.insert(n.id, fs);
            }
        }
        let (admin_key, auth_toml) = crate::admin_key();
        for n in &nodes {
            let mut peers = String::new();
            for p in &nodes {
                peers.push_str(&format!(
                    "[[peers]]\nid = {}\ngrpc = \"{}\"\nraft = \"{}\"\n",
                    p.id, p.grpc, p.raft
                ));
                if let Some(proxy) = peer_proxies.get(&(n.id, p.id)) {
                    peers.push_str(&format!("route = \"{}\"\n", proxy.addr()));
                }
                peers.push('\n');
            }
            let mut links = String::new();
            for (s, sim) in sims.iter().enumerate() {
                let via = sim_proxies[&(n.id, s)].addr();
                links.push_str(&format!(
                    "[[links]]\nname = \"{}\"\nprotocol = \"cmpp\"\naddress = \"{via}\"\n\
                     account = \"{ACCOUNT}\"\nsecret = \"{SECRET}\"\nsrc-id = \"1069{:04}\"\n\
                     max-window = {}\nmax-per-second = {}\n\n",
                    sim.link, sim.gateway_id, tuning.max_window, tuning.max_per_second
                ));
            }
            let t = &tuning;
            let tls_toml = tls.node_section(&dir.join("tls"), n.id, &[node_ip(n.id)]);
            let config = format!(
                "node-id = {id}\ngrpc-listen = \"{grpc}\"\nraft-listen = \"{raft}\"\nhttp-listen = \"{http}\"\n\
                 data-dir = \"{data}\"\n\n[raft]\nheartbeat-ms = {hb}\nelection-timeout-min-ms = {emin}\nelection-timeout-max-ms = {emax}\n\
                 snapshot-logs = {snap}\nkeep-logs = {keep}\n\n[placement]\nnode-lost-after-ms = {lost}\n\n\
                 {auth_toml}{peers}{links}{tls_toml}",
                id = n.id,
                grpc = n.grpc,
                raft = n.raft,
                http = n.http,
                data = n.data_dir.display(),
                hb = t.heartbeat_ms,
                emin = t.election_min_ms,
                emax = t.election_max_ms,
                snap = t.snapshot_logs,
                keep = t.keep_logs,
                lost = t.node_lost_after_ms,
            );
            std::fs::write(&n.config, config)?;
        }
        let mut clocks = BTreeMap::new();
        if tuning.clock_skew {
            for n in &nodes {
                let file =
                    crate::faketime::ClockFile::create(&dir.join(format!("node{}.faketime", n.id)))
                        .map_err(|e| anyhow::anyhow!("clock skew: {e}"))?;
                clocks.insert(n.id, file);
            }
        }
        let cluster = ChaosCluster {
            clocks,
            dir: dir.to_path_buf(),
            sim_procs: Mutex::new((0..sims.len()).map(|_| None).collect()),
            nodes,
            sims,
            tuning,
            peer_proxies,
            sim_proxies,
            procs: Mutex::default(),
            binaries: Mutex::new(
                start_binary
                    .map(|bin| ids.iter().map(|id| (*id, bin.clone())).collect())
                    .unwrap_or_default(),
            ),
            paused: Mutex::default(),
            filesystems,
            sim_paused: Mutex::default(),
            admin_key,
            tls,
        };
        for s in 0..cluster.sims.len() {
            cluster.start_sim(s)?;
        }
        for id in cluster.ids() {
            cluster.spawn_node(id, &["--bootstrap"])?;
        }
        Ok(cluster)
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    pub fn start_sim(&self, s: usize) -> anyhow::Result<()> {
        let sim = &self.sims[s];
        let child = Command::new(herald_bin())
            .args(["sim", "cmpp", "--listen", &sim.addr])
            .arg("--account")
            .arg(format!("{ACCOUNT}:{SECRET}"))
            .args([
                "--report-delay-ms",
                &self.tuning.report_delay_ms.to_string(),
            ])
            .args(["--gateway-id", &sim.gateway_id.to_string()])
            .arg("--record")
            .arg(&sim.record)
            .stdout(Stdio::null())
            .stderr(log_file(&sim.log))
            .spawn()
            .context("starting a CMPP simulator")?;
        if let Ok(mut p) = self.sim_procs.lock() {
            p[s] = Some(child);
        }
        Ok(())
    }

    /// Starts (or restarts, on its data dir) node `id`, without `--bootstrap` (only the first
    /// start of the cluster bootstraps).
    pub fn start_node(&self, id: u64) -> anyhow::Result<()> {
        self.spawn_node(id, &[])
    }

    /// Starts node `id` with `extra` arguments after its `--config`.
    pub fn spawn_node(&self, id: u64, extra: &[&str]) -> anyhow::Result<()> {
        let spec = self.node(id);
        let other = self.binaries.lock().ok().and_then(|b| b.get(&id).cloned());
        // An older build bootstraps by itself and knows no `--bootstrap`.
        let (bin, config, args): (PathBuf, PathBuf, Vec<&str>) = match other {
            Some(bin) => (
                bin,
                older_config(&spec.config)?,
                extra
                    .iter()
                    .copied()
                    .filter(|a| *a != "--bootstrap")
                    .collect(),
            ),
            None => (herald_bin(), spec.config.clone(), extra.to_vec()),
        };
        let faketime = self.clocks.get(&id).map(|c| c.env()).unwrap_or_default();
        let child = Command::new(bin)
            .args(["node", "--config"])
            .arg(&config)
            .args(args)
            .envs(faketime)
            .env("HERALD_LOG", "info,openraft=warn,h2=warn,tower=warn")
            .envs(self.tuning.node_env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log_file(&spec.log))
            .spawn()
            .context("starting a herald node")?;
        if let Ok(mut p) = self.procs.lock() {
            p.insert(id, child);
        }
        Ok(())
    }

    /// Node `id` runs `binary` from its next start on; None: [`herald_bin`].
    pub fn set_binary(&self, id: u64, binary: Option<PathBuf>) {
        if let Ok(mut b) = self.binaries.lock() {
            match binary {
                Some(bin) => b.insert(id, bin),
                None => b.remove(&id),
            };
        }
    }

    /// SIGKILL, as a power cut of the process: no shutdown code runs.
    pub fn kill_node(&self, id: u64) {
        let child = self.procs.lock().ok().and_then(|mut p| p.remove(&id));
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Ok(mut p) = self.paused.lock() {
            p.remove(&id);
        }
    }

    /// Node `id`'s filesystem, when the data directories are on LossyFs.
    pub fn filesystem(&self, id: u64) -> Option<&LossyFs> {
        self.filesystems.get(&id)
    }

    /// The machines of `ids` lose power together: every process SIGKILLed first, then every
    /// filesystem cut (what was not fsynced is gone, `tear` decides about the last writes). The
    /// nodes stay down until [`ChaosCluster::start_node`].
    pub fn power_cut(&self, ids: &[u64], tear: Tear) -> anyhow::Result<()> {
        for &id in ids {
            self.kill_node(id);
        }
        for &id in ids {
            let fs = self
                .filesystem(id)
                .with_context(|| format!("node {id}'s data directory is not on LossyFs"))?;
            fs.power_cut(tear)
                .with_context(|| format!("cutting node {id}'s power"))?;
        }
        Ok(())
    }

    /// Has node `id`'s process ended by itself? Its exit status if so (it is then no longer
    /// running, and [`ChaosCluster::start_node`] may start it again).
    pub fn exited(&self, id: u64) -> Option<std::process::ExitStatus> {
        let mut procs = self.procs.lock().ok()?;
        let status = procs.get_mut(&id)?.try_wait().ok()??;
        procs.remove(&id);
        Some(status)
    }

    /// Clears every injected filesystem fault and capacity.
    pub fn clear_disk_faults(&self) {
        for fs in self.filesystems.values() {
            fs.set_fault(Fault::None);
            fs.set_capacity(None);
        }
    }

    /// SIGTERM and wait (bounded) for a clean exit; SIGKILL after `limit`.
    pub fn stop_node(&self, id: u64, limit: Duration) {
        self.resume_node(id);
        let child = self.procs.lock().ok().and_then(|mut p| p.remove(&id));
        let Some(mut child) = child else { return };
        signal(&child, libc::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    pub fn pause_node(&self, id: u64) {
        if let Ok(p) = self.procs.lock() {
            if let Some(child) = p.get(&id) {
                signal(child, libc::SIGSTOP);
                if let Ok(mut paused) = self.paused.lock() {
                    paused.insert(id);
                }
            }
        }
    }

    pub fn resume_node(&self, id: u64) {
        if let Ok(p) = self.procs.lock() {
            if let Some(child) = p.get(&id) {
                signal(child, libc::SIGCONT);
            }
        }
        if let Ok(mut paused) = self.paused.lock() {
            paused.remove(&id);
        }
    }

    pub fn pause_sim(&self, s: usize) {
        if let Ok(p) = self.sim_procs.lock() {
            if let Some(Some(child)) = p.get(s) {
                signal(child, libc::SIGSTOP);
                if let Ok(mut paused) = self.sim_paused.lock() {
                    paused.insert(s);
                }
            }
        }
    }

    pub fn resume_sim(&self, s: usize) {
        if let Ok(p) = self.sim_procs.lock() {
            if let Some(Some(child)) = p.get(s) {
                signal(child, libc::SIGCONT);
            }
        }
        if let Ok(mut paused) = self.sim_paused.lock() {
            paused.remove(&s);
        }
    }

    /// Nodes whose process is running (paused or not).
    pub fn running(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .procs
            .lock()
            .map(|p| p.keys().copied().collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// Running and not paused.
    pub fn live(&self) -> Vec<u64> {
        let paused = self.paused.lock().map(|p| p.clone()).unwrap_or_default();
        self.running()
            .into_iter()
            .filter(|id| !paused.contains(id))
            .collect()
    }

    /// Jumps node `id`'s wall clock to `secs` from the true time (0: the true time again), as an
    /// NTP step would; within a second. Only with `tuning.clock_skew`.
    pub fn set_clock_offset(&self, id: u64, secs: i64) -> anyhow::Result<()> {
        let clock = self.clocks.get(&id).ok_or_else(|| {
            anyhow::anyhow!("node {id} runs without a fake clock (tuning.clock_skew)")
        })?;
        clock
            .set_offset_secs(secs)
            .with_context(|| format!("setting node {id}'s clock offset"))
    }

    /// Cuts every link from a node in `a` to a node in `b`, both ways.
    pub fn partition(&self, a: &[u64], b: &[u64]) {
        for (&(from, to), proxy) in &self.peer_proxies {
            if (a.contains(&from) && b.contains(&to)) || (b.contains(&from) && a.contains(&to)) {
                proxy.block();
            }
        }
    }

    pub fn heal_network(&self) {
        for proxy in self.peer_proxies.values() {
            proxy.unblock();
        }
        for proxy in self.sim_proxies.values() {
            proxy.unblock();
        }
    }

    /// Undoes every fault: network healed, disks cleared, everything resumed, dead nodes
    /// (killed or stopped by themselves) restarted.
    pub fn heal_all(&self) -> anyhow::Result<()> {
        self.heal_network();
        self.clear_disk_faults();
        for id in self.ids() {
            self.exited(id);
        }
        for id in self.clocks.keys() {
            self.set_clock_offset(*id, 0)?;
        }
        for s in 0..self.sims.len() {
            self.resume_sim(s);
        }
        let running = self.running();
        for id in self.ids() {
            if running.contains(&id) {
                self.resume_node(id);
            } else {
                self.start_node(id)?;
            }
        }
        Ok(())
    }

    pub async fn status(&self, id: u64) -> Option<ClusterStatusResponse> {
        let channel = self.channel(id, Duration::from_secs(2)).await?;
        let mut client = ClusterClient::new(channel);
        tokio::time::timeout(
            Duration::from_secs(2),
            client.status(ClusterStatusRequest {}),
        )
        .await
        .ok()?
        .ok()
        .map(|r| r.into_inner())
    }

    /// The node that says it is the leader, among the live ones (the highest term wins).
    pub async fn leader(&self) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for id in self.live() {
            if let Some(s) = self.status(id).await {
                if s.state == "Leader" && best.is_none_or(|(term, _)| s.term > term) {
                    best = Some((s.term, id));
                }
            }
        }
        best.map(|(_, id)| id)
    }

    pub async fn wait_for_leader(&self, limit: Duration) -> Option<u64> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(id) = self.leader().await {
                return Some(id);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    }

    /// Nodes holding a carrier link, as the leader's applied link table says.
    pub async fn link_holders(&self) -> Vec<u64> {
        let Some(leader) = self.leader().await else {
            return Vec::new();
        };
        let Some(s) = self.status(leader).await else {
            return Vec::new();
        };
        let mut holders: Vec<u64> = s.links.iter().map(|l| l.node).filter(|n| *n != 0).collect();
        holders.sort();
        holders.dedup();
        holders
    }

    pub async fn messaging(&self, id: u64) -> Option<MessagingClient<ClientChannel>> {
        self.channel(id, Duration::from_secs(30))
            .await
            .map(MessagingClient::new)
    }

    /// A channel to node `id` as every client makes it (`herald_node::cli::connect`), with the
    /// cluster's CA: a short connect timeout, since faults keep nodes away, and `timeout` on
    /// every call.
    pub async fn channel(&self, id: u64, timeout: Duration) -> Option<ClientChannel> {
        Connector::new(&self.node(id).grpc)
            .ca_pem(self.tls.ca_pem())
            .api_key(self.admin_key.clone())
            .connect_timeout(Duration::from_millis(500))
            .request_timeout(timeout)
            .channel()
            .await
            .ok()
    }
}

impl Drop for ChaosCluster {
    fn drop(&mut self) {
        let procs: Vec<Child> = match self.procs.lock() {
            Ok(mut p) => p.drain().map(|(_, c)| c).collect(),
            Err(_) => Vec::new(),
        };
        for mut child in procs {
            signal(&child, libc::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Ok(mut sims) = self.sim_procs.lock() {
            for mut child in sims.drain(..).flatten() {
                signal(&child, libc::SIGCONT);
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
