//! Test harness for Herald's integration tests: starts the real `herald` binary as separate
//! processes on loopback (nodes and carrier simulators, each node with its own RocksDB data dir),
//! kills and restarts them, and talks to them over gRPC.
//!
//! Nothing here is mocked: what the tests check is what an operator would run.

pub mod chaos;
pub mod faketime;
pub mod fuzz;
pub mod http;
pub mod ops;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herald_api::v1::cluster_client::ClusterClient;
use herald_api::v1::messaging_client::MessagingClient;
use herald_api::v1::{
    ClusterStatusRequest, ClusterStatusResponse, GetMessageRequest, GetMessageResponse,
};
use herald_node::cli::connect::{ClientChannel, Connector};
use herald_node::service::auth::{hex, NewKey};
use secrecy::{ExposeSecret as _, SecretString};

/// The bootstrap admin key of every test cluster this process starts (random, made once), and
/// the `[auth]` section that makes it one in a node config. One per process, so that a command
/// line run by a test can be given it without knowing its cluster.
pub fn admin_key() -> (SecretString, String) {
    static KEY: std::sync::OnceLock<NewKey> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(NewKey::generate);
    let section = format!(
        "[auth]\nadmin-key-sha256 = [\"{}\"]\n\n",
        hex(&key.sha256())
    );
    (key.key.clone(), section)
}

/// The harness's admin key as the `herald` CLI takes it (`HERALD_API_KEY`).
pub fn admin_key_text() -> String {
    admin_key().0.expose_secret().to_string()
}

/// The `herald` binary: `$HERALD_BIN`, or the workspace's debug build.
pub fn herald_bin() -> PathBuf {
    if let Ok(path) = std::env::var("HERALD_BIN") {
        return PathBuf::from(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/herald");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bin herald` first (or set HERALD_BIN)",
        path.display()
    );
    path
}

/// A TCP port free on 127.0.0.1 at the time of asking. Racy between parallel tests: prefer
/// [`LoopbackNet`] for servers a test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral port on 127.0.0.1")
}

/// A private corner of the loopback range (127.A.B.0/24) for one test cluster, so clusters of
/// tests running in parallel (threads or processes) never compete for a port: each host of the
/// cluster gets its own address and fixed ports. Linux routes all of 127.0.0.0/8 to loopback.
pub struct LoopbackNet {
    prefix: (u8, u8),
}

impl LoopbackNet {
    /// Picks a subnet from the process id and a counter, checking that it is unused.
    pub fn new() -> LoopbackNet {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        loop {
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let seed = std::process::id().wrapping_mul(2_654_435_761) ^ n.wrapping_mul(40_503);
            let prefix = ((seed % 250) as u8 + 1, ((seed / 250) % 250) as u8 + 1);
            let net = LoopbackNet { prefix };
            // Somebody else (another test process) using this subnet would hold its first host's
            // gRPC port; take the next subnet then.
            if std::net::TcpListener::bind(net.addr(1, 7101)).is_ok() {
                return net;
            }
        }
    }

    pub fn ip(&self, host: u8) -> String {
        format!("127.{}.{}.{}", self.prefix.0, self.prefix.1, host)
    }

    pub fn addr(&self, host: u8, port: u16) -> String {
        format!("{}:{port}", self.ip(host))
    }
}

impl Default for LoopbackNet {
    fn default() -> Self {
        Self::new()
    }
}

/// The CA of every test cluster this process starts (made once, like [`admin_key`]), so that a
/// command line or a channel made by a test can trust it without knowing its cluster. Each
/// cluster's node certificates are its own, in its folder.
pub fn test_ca() -> &'static TestCa {
    static CA: std::sync::OnceLock<(tempfile::TempDir, TestCa)> = std::sync::OnceLock::new();
    let (_, ca) = CA.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("herald-test-ca-")
            .tempdir()
            .expect("a temp dir for the test CA");
        let ca = TestCa::new(dir.path(), "test");
        (dir, ca)
    });
    ca
}

/// A CA made with the node's own library (`herald_node::tls::certs`), written as `ca.pem` and
/// `ca.key` in `dir`, and the node certificates it signs.
pub struct TestCa {
    pub cluster: String,
    pub dir: PathBuf,
    pub ca: herald_node::tls::certs::Issued,
}

impl TestCa {
    /// A new CA for `cluster`, written in `dir`.
    pub fn new(dir: &Path, cluster: &str) -> TestCa {
        use herald_node::tls::certs;
        let ca = certs::make_ca(cluster, certs::Validity::days(30).expect("valid days"))
            .expect("making a test CA");
        certs::write(dir, "ca", &ca).expect("writing the test CA");
        TestCa {
            cluster: cluster.to_string(),
            dir: dir.to_path_buf(),
            ca,
        }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        self.ca.cert_pem.clone().into_bytes()
    }

    /// Node `id`'s certificate and key, written in `out` as `node<id>.pem`/`.key` (or
    /// `<stem>.pem`/`.key`), valid as `validity` says, naming `hosts`.
    pub fn node_cert(
        &self,
        out: &Path,
        id: u64,
        hosts: &[String],
        validity: herald_node::tls::certs::Validity,
        stem: Option<&str>,
    ) -> (PathBuf, PathBuf) {
        use herald_node::tls::{certs, NodeIdentity};
        let identity = NodeIdentity::new(&self.cluster, id).expect("a valid cluster name");
        let cert = certs::make_node(&self.ca, &identity, hosts, validity)
            .expect("making a node certificate");
        let stem = stem.map_or_else(|| format!("node{id}"), str::to_string);
        certs::write(out, &stem, &cert).expect("writing a node certificate")
    }

    /// The `[tls]` section of node `id`'s configuration, with a new certificate for it in `out`.
    pub fn node_section(&self, out: &Path, id: u64, hosts: &[String]) -> String {
        let (cert, key) = self.node_cert(
            out,
            id,
            hosts,
            herald_node::tls::certs::Validity::days(30).expect("valid days"),
            None,
        );
        tls_section(&self.cluster, &self.ca_path(), &cert, &key)
    }
}

/// A `[tls]` TOML section.
pub fn tls_section(cluster: &str, ca: &Path, cert: &Path, key: &Path) -> String {
    format!(
        "\n[tls]\ncluster = \"{cluster}\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
        ca.display(),
        cert.display(),
        key.display()
    )
}

/// Polls `check` until it returns `Some`, or panics with `what` after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A CMPP simulator of the test cluster; `args` are extra `herald sim cmpp` flags (faults, limits).
#[derive(Clone, Default)]
pub struct SimSpec {
    pub name: String,
    pub args: Vec<String>,
}

/// A link of every node's configuration, to the simulator named `sim`.
#[derive(Clone)]
pub struct LinkSpec {
    pub name: String,
    pub sim: String,
    pub max_window: usize,
    pub max_per_second: u32,
    pub connections: u32,
}

pub struct Options {
    /// Simulators and links; empty: one simulator and one link `cmpp-sim` (window and rate from
    /// `max_window` and `max_per_second`).
    pub sims: Vec<SimSpec>,
    pub links: Vec<LinkSpec>,
    pub nodes: u64,
    /// Raft snapshot threshold (entries); small values force snapshots and log purges.
    pub snapshot_logs: u64,
    pub keep_logs: u64,
    pub report_delay_ms: u64,
    pub max_window: usize,
    pub max_per_second: u32,
    /// The body of every link's `options` inline table (e.g. `bind = "pair"`); empty: none.
    pub link_options: String,
    /// The carrier password of every link and simulator account (`secret` in the config).
    pub carrier_secret: String,
    /// The nodes' `HERALD_LOG` filter.
    pub log_filter: String,
    /// Plaintext nodes (`insecure = true`) instead of TLS with a test CA.
    pub insecure: bool,
    /// Nodes configured (ids after `nodes`, with certificates and a config naming every node)
    /// but neither started nor members: a test starts them and adds them
    /// (`herald cluster add-node`).
    pub spare_nodes: u64,
    /// Arguments every `herald node` of the cluster gets after its `--config` (e.g.
    /// `--log-format json`).
    pub node_args: Vec<String>,
    /// A backup (`herald backup`) node 1 is restored from (`herald restore`) before it first
    /// starts; the cluster then starts from it instead of bootstrapping, and the other nodes
    /// wait to be added.
    pub restore_from: Option<PathBuf>,
    /// Every node runs under libfaketime with its own clock file, so a test can jump its wall
    /// clock ([`Cluster::set_clock_offset`]). Panics at start where libfaketime is missing
    /// (`scripts/install-deps` installs it).
    pub fake_clocks: bool,
    /// Where the nodes' data directories go (`ROOT/nodeN`, created by the nodes themselves);
    /// None: the cluster's temporary directory. E.g. a path not yet made under a LossyFs mount.
    pub data_root: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sims: Vec::new(),
            links: Vec::new(),
            nodes: 3,
            snapshot_logs: 20_000,
            keep_logs: 1_000,
            report_delay_ms: 100,
            max_window: 16,
            max_per_second: 1000,
            link_options: String::new(),
            carrier_secret: "test-secret".into(),
            log_filter: "info,openraft=info,h2=warn,tower=warn".into(),
            insecure: false,
            spare_nodes: 0,
            node_args: Vec::new(),
            restore_from: None,
            fake_clocks: false,
            data_root: None,
        }
    }
}

pub struct NodeSpec {
    pub id: u64,
    pub grpc: String,
    pub raft: String,
    /// The HTTP listener (`/metrics`, `/livez`, `/readyz`); TLS with the test CA unless the
    /// cluster is insecure.
    pub http: String,
    pub config: PathBuf,
    pub log: PathBuf,
    pub data_dir: PathBuf,
}

/// A running cluster of `herald node` processes plus CMPP simulators.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<NodeSpec>,
    /// The first simulator's address and record (the only one of a default cluster).
    pub sim_addr: String,
    pub sim_record: PathBuf,
    procs: std::sync::Mutex<HashMap<u64, Child>>,
    /// Nodes that run another binary than [`herald_bin`].
    binaries: std::sync::Mutex<HashMap<u64, PathBuf>>,
    sim_specs: Vec<(SimSpec, String)>,
    sims: std::sync::Mutex<HashMap<String, Child>>,
    carrier_secret: String,
    log_filter: String,
    node_args: Vec<String>,
    /// A bootstrap admin key of every node's `[auth]`: the harness's clients use it unless a
    /// test connects with another key.
    admin_key: SecretString,
    /// The CA of the cluster's certificates (the process's [`test_ca`]; None: an insecure
    /// cluster).
    pub tls: Option<&'static TestCa>,
    /// Each node's wall-clock offset file (empty unless `Options::fake_clocks`).
    clocks: HashMap<u64, faketime::ClockFile>,
}

impl Cluster {
    pub fn start(opts: Options) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("herald-test-")
            .tempdir()
            .expect("creating a temp dir");
        let net = LoopbackNet::new();
        let mut sim_list = opts.sims.clone();
        let mut link_list = opts.links.clone();
        if sim_list.is_empty() {
            sim_list.push(SimSpec {
                name: "cmpp".into(),
                args: Vec::new(),
            });
        }
        if link_list.is_empty() {
            link_list.push(LinkSpec {
                name: "cmpp-sim".into(),
                sim: sim_list[0].name.clone(),
                max_window: opts.max_window,
                max_per_second: opts.max_per_second,
                connections: 1,
            });
        }
        let sim_specs: Vec<(SimSpec, String)> = sim_list
            .into_iter()
            .enumerate()
            .map(|(i, mut spec)| {
                // A simulator's own report delay wins over the cluster's.
                if !spec.args.iter().any(|a| a == "--report-delay-ms") {
                    spec.args.extend([
                        "--report-delay-ms".to_string(),
                        opts.report_delay_ms.to_string(),
                    ]);
                }
                (spec, net.addr(200 + i as u8, 7190))
            })
            .collect();
        let sim_addr = sim_specs[0].1.clone();
        let sim_record = dir
            .path()
            .join(format!("sim-{}.jsonl", sim_specs[0].0.name));
        let links_toml: String = link_list
            .iter()
            .map(|l| {
                let addr = &sim_specs
                    .iter()
                    .find(|(s, _)| s.name == l.sim)
                    .expect("a link names a simulator of the options")
                    .1;
                let options = if opts.link_options.is_empty() {
                    String::new()
                } else {
                    format!("options = {{ {} }}\n", opts.link_options)
                };
                format!(
                    "[[links]]\nname = \"{}\"\nprotocol = \"cmpp\"\naddress = \"{addr}\"\n\
                     account = \"900001\"\nsecret = \"{secret}\"\nsrc-id = \"10690001\"\n\
                     max-window = {}\nmax-per-second = {}\nconnections = {}\n{options}\n",
                    l.name,
                    l.max_window,
                    l.max_per_second,
                    l.connections,
                    secret = opts.carrier_secret,
                )
            })
            .collect();

        let nodes: Vec<NodeSpec> = (1..=opts.nodes + opts.spare_nodes)
            .map(|id| NodeSpec {
                id,
                grpc: net.addr(id as u8, 7101),
                raft: net.addr(id as u8, 7151),
                http: net.addr(id as u8, 7121),
                config: dir.path().join(format!("node{id}.toml")),
                log: dir.path().join(format!("node{id}.log")),
                data_dir: opts
                    .data_root
                    .as_deref()
                    .unwrap_or(dir.path())
                    .join(format!("node{id}")),
            })
            .collect();
        let (admin_key, auth_toml) = admin_key();
        let peers_of = |ids: &mut dyn Iterator<Item = &NodeSpec>| -> String {
            ids.map(|n| {
                format!(
                    "[[peers]]\nid = {}\ngrpc = \"{}\"\nraft = \"{}\"\n\n",
                    n.id, n.grpc, n.raft
                )
            })
            .collect()
        };
        // The founding members bootstrap with their peers as the first membership: spare nodes
        // are not in it, but know every node.
        let founders = peers_of(&mut nodes.iter().filter(|n| n.id <= opts.nodes));
        let everyone = peers_of(&mut nodes.iter());
        let tls = (!opts.insecure).then(test_ca);
        let tls_dir = dir.path().join("tls");
        for n in &nodes {
            let peers = if n.id <= opts.nodes {
                &founders
            } else {
                &everyone
            };
            let (insecure, tls_toml) = match &tls {
                Some(ca) => {
                    let ip = n.grpc.rsplit_once(':').map_or("", |(ip, _)| ip).to_string();
                    ("", ca.node_section(&tls_dir, n.id, &[ip]))
                }
                None => ("insecure = true\n", String::new()),
            };
            let config = format!(
                "node-id = {id}\ngrpc-listen = \"{grpc}\"\nraft-listen = \"{raft}\"\nhttp-listen = \"{http}\"\n\
                 data-dir = \"{data}\"\n{insecure}\n\
                 [raft]\nheartbeat-ms = 150\nelection-timeout-min-ms = 1000\nelection-timeout-max-ms = 2000\n\
                 snapshot-logs = {snap}\nkeep-logs = {keep}\n\n[placement]\nnode-lost-after-ms = 2000\n\n\
                 {auth_toml}{peers}{links_toml}{tls_toml}",
                id = n.id,
                grpc = n.grpc,
                raft = n.raft,
                http = n.http,
                data = n.data_dir.display(),
                snap = opts.snapshot_logs,
                keep = opts.keep_logs,
            );
            std::fs::write(&n.config, config).expect("writing a node config");
        }
        let clocks: HashMap<u64, faketime::ClockFile> = if opts.fake_clocks {
            nodes
                .iter()
                .map(|n| {
                    let file = dir.path().join(format!("node{}.faketime", n.id));
                    let clock = faketime::ClockFile::create(&file)
                        .unwrap_or_else(|e| panic!("fake clocks: {e}"));
                    (n.id, clock)
                })
                .collect()
        } else {
            HashMap::new()
        };
        let cluster = Cluster {
            clocks,
            dir,
            nodes,
            sim_addr,
            sim_record,
            procs: Default::default(),
            binaries: Default::default(),
            sim_specs,
            sims: Default::default(),
            carrier_secret: opts.carrier_secret.clone(),
            log_filter: opts.log_filter.clone(),
            node_args: opts.node_args.clone(),
            admin_key,
            tls,
        };
        for (spec, _) in &cluster.sim_specs {
            cluster.start_sim(&spec.name);
        }
        if let Some(backup) = &opts.restore_from {
            cluster.restore_node(1, backup);
        }
        for id in 1..=opts.nodes {
            if opts.restore_from.is_some() {
                cluster.start_node(id);
            } else {
                cluster.spawn_node(id, &["--bootstrap"]);
            }
        }
        // Spare nodes are not running: `running()` and the tests' loops skip them until started.
        cluster
    }

    /// Starts (or restarts) the simulator `name`; its record file is appended to.
    pub fn start_sim(&self, name: &str) {
        let (spec, addr) = self
            .sim_specs
            .iter()
            .find(|(s, _)| s.name == name)
            .expect("no such simulator");
        let child = Command::new(herald_bin())
            .args(["sim", "cmpp", "--listen", addr])
            .arg("--account")
            .arg(format!("900001:{}", self.carrier_secret))
            .args(&spec.args)
            .arg("--record")
            .arg(self.sim_record_path(name))
            .stdout(Stdio::null())
            .stderr(log_file(&self.dir.path().join(format!("sim-{name}.log"))))
            .spawn()
            .expect("starting a CMPP simulator");
        self.sims
            .lock()
            .expect("simulator table")
            .insert(name.to_string(), child);
    }

    /// SIGKILL of a simulator: the carrier's gateway vanishes mid-conversation.
    pub fn kill_sim(&self, name: &str) {
        let child = self.sims.lock().expect("simulator table").remove(name);
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn sim_record_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("sim-{name}.jsonl"))
    }

    /// Every line the simulator `name` recorded.
    pub fn sim_lines(&self, name: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.sim_record_path(name))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub async fn admin(
        &self,
        id: u64,
    ) -> Option<herald_api::v1::admin_client::AdminClient<ClientChannel>> {
        self.channel_as(&self.node(id).grpc, &self.admin_key)
            .await
            .map(herald_api::v1::admin_client::AdminClient::new)
    }

    /// Sets the dispatch policy (TOML) through node `id`, on top of whatever version is current,
    /// and waits until every running node applies it.
    pub async fn set_policy(&self, id: u64, toml: &str) -> u64 {
        use herald_api::v1::{GetPolicyRequest, SetPolicyRequest};
        // A node just started may not listen yet: connect as a client would, until it does.
        let mut admin = wait_for("the admin API", Duration::from_secs(30), || self.admin(id)).await;
        let current = admin
            .get_policy(GetPolicyRequest {})
            .await
            .expect("reading the policy")
            .into_inner()
            .version;
        let version = admin
            .set_policy(SetPolicyRequest {
                document: toml.to_string(),
                expected_version: current,
            })
            .await
            .unwrap_or_else(|e| panic!("setting the policy: {e}"))
            .into_inner()
            .version;
        for node in self.running() {
            wait_for(
                "every node to apply the policy",
                Duration::from_secs(10),
                || async {
                    let mut admin = self.admin(node).await?;
                    let v = admin
                        .get_policy(GetPolicyRequest {})
                        .await
                        .ok()?
                        .into_inner()
                        .version;
                    (v >= version).then_some(())
                },
            )
            .await;
        }
        version
    }

    /// The bootstrap admin key every node of this cluster knows.
    pub fn admin_key(&self) -> &SecretString {
        &self.admin_key
    }

    /// The admin key as the `herald` CLI takes it (`HERALD_API_KEY`).
    pub fn admin_key_text(&self) -> String {
        self.admin_key.expose_secret().to_string()
    }

    /// Creates the client system `name` with `role` through node `id` (as the bootstrap admin)
    /// and returns its key, once every running node knows it.
    pub async fn create_client(&self, id: u64, name: &str, role: &str) -> SecretString {
        use herald_api::v1::{CreateClientRequest, GetClientRequest};
        let mut admin = wait_for("the admin API", Duration::from_secs(30), || self.admin(id)).await;
        let key = admin
            .create_client(CreateClientRequest {
                name: name.into(),
                role: role.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("creating client {name}: {e}"))
            .into_inner()
            .key;
        for node in self.running() {
            wait_for(
                "every node to know the new client",
                Duration::from_secs(10),
                || async {
                    let mut admin = self.admin(node).await?;
                    admin
                        .get_client(GetClientRequest { name: name.into() })
                        .await
                        .ok()
                        .map(|_| ())
                },
            )
            .await;
        }
        SecretString::from(key)
    }

    pub fn node(&self, id: u64) -> &NodeSpec {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .expect("no such node")
    }

    /// `herald restore`: seeds node `id`'s data dir from `backup`, as the one voter of a new
    /// cluster. Panics with the command's output if it fails.
    pub fn restore_node(&self, id: u64, backup: &Path) {
        let spec = self.node(id);
        let out = Command::new(herald_bin())
            .args(["restore", "--from"])
            .arg(backup)
            .arg("--data-dir")
            .arg(&spec.data_dir)
            .args([
                "--node-id",
                &id.to_string(),
                "--raft",
                &spec.raft,
                "--grpc",
                &spec.grpc,
            ])
            .output()
            .expect("herald restore runs");
        assert!(
            out.status.success(),
            "herald restore: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts (or restarts, on its existing data dir) node `id`, without `--bootstrap`: only
    /// [`Cluster::start`] bootstraps (a node started on an empty data dir waits to be added).
    pub fn start_node(&self, id: u64) {
        self.spawn_node(id, &[]);
    }

    /// Starts node `id` with `extra` arguments after its `--config`.
    pub fn spawn_node(&self, id: u64, extra: &[&str]) {
        let spec = self.node(id);
        let bin = self
            .binaries
            .lock()
            .expect("binary table")
            .get(&id)
            .cloned()
            .unwrap_or_else(herald_bin);
        let faketime = self.clocks.get(&id).map(|c| c.env()).unwrap_or_default();
        let child = Command::new(bin)
            .args(["node", "--config"])
            .arg(&spec.config)
            .args(&self.node_args)
            .args(extra)
            .envs(faketime)
            .env("HERALD_LOG", &self.log_filter)
            .stdout(Stdio::null())
            .stderr(log_file(&spec.log))
            .spawn()
            .expect("starting a herald node");
        self.procs.lock().expect("process table").insert(id, child);
    }

    /// Jumps node `id`'s wall clock to `secs` from the true time (0: back to it), as an NTP
    /// step would; the node sees it within a second. Needs `Options::fake_clocks`.
    pub fn set_clock_offset(&self, id: u64, secs: i64) {
        self.clocks
            .get(&id)
            .unwrap_or_else(|| panic!("node {id} has no fake clock (Options::fake_clocks)"))
            .set_offset_secs(secs)
            .unwrap_or_else(|e| panic!("setting node {id}'s clock offset: {e}"));
    }

    /// The wall-clock offset a process under node `id`'s fake clock sees now (see
    /// [`faketime::ClockFile::observed_offset_secs`]).
    pub fn observed_clock_offset(&self, id: u64) -> Option<i64> {
        self.clocks.get(&id)?.observed_offset_secs().ok()
    }

    /// SIGKILL: no shutdown code runs, as in a power cut of the process.
    pub fn kill_node(&self, id: u64) {
        let child = self.procs.lock().expect("process table").remove(&id);
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The `herald` binary node `id` runs from its next start on (the rolling-upgrade test runs
    /// an older build); [`herald_bin`] unless set.
    pub fn set_binary(&self, id: u64, bin: PathBuf) {
        self.binaries.lock().expect("binary table").insert(id, bin);
    }

    /// SIGTERM, as a supervisor stops a node (it drains itself first), then waits up to `limit`
    /// for the process to exit. Returns its exit status; panics if it outlives `limit` (the
    /// process is then killed).
    pub fn stop_node(&self, id: u64, limit: Duration) -> std::process::ExitStatus {
        let child = self.procs.lock().expect("process table").remove(&id);
        let Some(mut child) = child else {
            panic!("node {id} is not running");
        };
        let pid = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) with a pid of a child this harness spawned and has not reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("node {id} did not exit within {limit:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn running(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .procs
            .lock()
            .expect("process table")
            .keys()
            .copied()
            .collect();
        ids.sort();
        ids
    }

    pub fn log_of(&self, id: u64) -> String {
        std::fs::read_to_string(&self.node(id).log).unwrap_or_default()
    }

    /// Every SUBMIT the simulator received: (text, msg_id) pairs.
    pub fn sim_submits(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(&self.sim_record).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["kind"] == "submit")
            .map(|v| {
                (
                    v["text"].as_str().unwrap_or_default().to_string(),
                    v["msg_id"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// A client of node `id`. A node this harness runs gets up to 10 s to take the connection
    /// (a node just started, or one busy on a loaded machine, may miss the short connect
    /// timeout once); a stopped one is tried once.
    pub async fn messaging(&self, id: u64) -> Option<MessagingClient<ClientChannel>> {
        self.messaging_as(id, &self.admin_key).await
    }

    /// A client of node `id` calling with `key`.
    pub async fn messaging_as(
        &self,
        id: u64,
        key: &SecretString,
    ) -> Option<MessagingClient<ClientChannel>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(channel) = self.channel_as(&self.node(id).grpc, key).await {
                return Some(MessagingClient::new(channel));
            }
            if !self.running().contains(&id) || Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn status(&self, id: u64) -> Option<ClusterStatusResponse> {
        let mut client = ClusterClient::new(
            self.channel_as(&self.node(id).grpc, &self.admin_key)
                .await?,
        );
        client
            .status(ClusterStatusRequest {})
            .await
            .ok()
            .map(|r| r.into_inner())
    }

    /// Waits until a running node reports a leader that is itself running; returns its id.
    pub async fn wait_for_leader(&self, limit: Duration) -> u64 {
        wait_for("a leader", limit, || async {
            for id in self.running() {
                if let Some(s) = self.status(id).await {
                    if s.leader != 0 && self.running().contains(&s.leader) {
                        if let Some(ls) = self.status(s.leader).await {
                            if ls.state == "Leader" {
                                return Some(s.leader);
                            }
                        }
                    }
                }
            }
            None
        })
        .await
    }

    /// A leader every running node agrees on, with the term they agree on: an election that has
    /// settled. Right after a cluster starts, two nodes can both campaign in the first term and
    /// the first leader may step down for a second election a moment later; a test that compares
    /// the leader or the term before and after something must start from a settled one.
    pub async fn wait_for_settled_leader(&self, limit: Duration) -> (u64, u64) {
        wait_for("a leader every running node agrees on", limit, || async {
            let mut seen = None;
            for id in self.running() {
                let s = self.status(id).await?;
                if s.leader == 0 || seen.is_some_and(|agreed| agreed != (s.leader, s.term)) {
                    return None;
                }
                seen = Some((s.leader, s.term));
            }
            let (leader, term) = seen?;
            let ls = self.status(leader).await?;
            (ls.state == "Leader" && ls.term == term).then_some((leader, term))
        })
        .await
    }

    pub async fn get_message(&self, node: u64, id: &str) -> Option<GetMessageResponse> {
        let mut client = self.messaging(node).await?;
        client
            .get_message(GetMessageRequest {
                message_id: id.to_string(),
            })
            .await
            .ok()
            .map(|r| r.into_inner())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let procs: Vec<Child> = match self.procs.lock() {
            Ok(mut p) => p.drain().map(|(_, c)| c).collect(),
            Err(_) => Vec::new(),
        };
        for mut child in procs {
            let _ = child.kill();
            let _ = child.wait();
        }
        let sims: Vec<Child> = match self.sims.lock() {
            Ok(mut s) => s.drain().map(|(_, c)| c).collect(),
            Err(_) => Vec::new(),
        };
        for mut sim in sims {
            let _ = sim.kill();
            let _ = sim.wait();
        }
        if std::thread::panicking() {
            // Keep the logs and data of a failed run for diagnosis.
            let kept = self.dir.path().to_path_buf();
            eprintln!("test failed; logs and data kept in {}", kept.display());
            std::mem::forget(std::mem::replace(
                &mut self.dir,
                tempfile::tempdir().expect("temp dir"),
            ));
        }
    }
}

fn log_file(path: &Path) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

/// A channel to a node of a cluster this process started, as every client makes it
/// (`herald_node::cli::connect`): the process's test CA, `key`, a short connect timeout (tests
/// poll nodes that may be down) and a bound on every call (a hung call fails the test instead of
/// hanging it).
pub async fn channel(addr: &str, key: &SecretString) -> Option<ClientChannel> {
    Connector::new(addr)
        .ca_pem(test_ca().ca_pem())
        .api_key(key.clone())
        .connect_timeout(Duration::from_millis(500))
        .request_timeout(Duration::from_secs(15))
        .channel()
        .await
        .ok()
}

impl Cluster {
    /// A connector to `addr` as every client makes it (`herald_node::cli::connect`), with the
    /// cluster's CA and the admin key, a short connect timeout (tests poll nodes that may be
    /// down) and a bound on every call (a hung call fails the test instead of hanging it).
    pub fn connector(&self, addr: &str) -> Connector {
        let connector = Connector::new(addr)
            .api_key(self.admin_key.clone())
            .connect_timeout(Duration::from_millis(500))
            .request_timeout(Duration::from_secs(15));
        match &self.tls {
            Some(ca) => connector.ca_pem(ca.ca_pem()),
            None => connector,
        }
    }

    /// A channel to `addr` calling with `key`, connected now.
    pub async fn channel_as(&self, addr: &str, key: &SecretString) -> Option<ClientChannel> {
        self.connector(addr)
            .api_key(key.clone())
            .channel()
            .await
            .ok()
    }

    /// A channel made by [`Cluster::connector`] (the admin key), connected now.
    pub async fn channel(&self, addr: &str) -> Option<ClientChannel> {
        self.connector(addr).channel().await.ok()
    }

    /// What a `herald` client command run against this cluster needs in its environment: the
    /// CA as `HERALD_CA` and the admin key as `HERALD_API_KEY`.
    pub fn client_env(&self) -> Vec<(String, String)> {
        let mut env = vec![("HERALD_API_KEY".to_string(), self.admin_key_text())];
        if let Some(ca) = &self.tls {
            env.push(("HERALD_CA".into(), ca.ca_path().display().to_string()));
        }
        env
    }

    /// `herald ARGS` as an operator runs it against this cluster (its CA and the admin key in
    /// the environment; `--api-key` in `args` overrides the key).
    pub fn herald(&self, args: &[&str]) -> std::process::Output {
        Command::new(herald_bin())
            .args(args)
            .envs(self.client_env())
            .output()
            .expect("herald runs")
    }
}

/// A command's output as text (lossy: a test shows whatever bytes came).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

impl Cluster {
    /// Submits `request` until some node acknowledges it, as a real client would: on any error it
    /// retries, with the same idempotency key, on the next running node. None if `limit` passed.
    pub async fn submit_until_acked(
        &self,
        request: &herald_api::v1::SubmitRequest,
        start_at: usize,
        limit: Duration,
    ) -> Option<String> {
        let deadline = Instant::now() + limit;
        let mut attempt = start_at;
        while Instant::now() < deadline {
            let nodes = self.running();
            if nodes.is_empty() {
                return None;
            }
            let node = nodes[attempt % nodes.len()];
            attempt += 1;
            let Some(mut client) = self.messaging(node).await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            match client.submit(request.clone()).await {
                Ok(resp) => return Some(resp.into_inner().message_id),
                Err(status) => {
                    assert_ne!(
                        status.code(),
                        tonic::Code::InvalidArgument,
                        "a valid submission was refused: {status}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        None
    }

    /// Waits until every message in `ids` is DELIVERED as seen from `node`.
    pub async fn wait_all_delivered(&self, node: u64, ids: &[String], limit: Duration) {
        let start = Instant::now();
        let mut pending: Vec<String> = ids.to_vec();
        loop {
            let mut still = Vec::new();
            for id in pending {
                let state = self.get_message(node, &id).await.map(|m| m.state);
                if state != Some(herald_api::v1::MessageState::Delivered as i32) {
                    still.push(id);
                }
            }
            if still.is_empty() {
                return;
            }
            if start.elapsed() > limit {
                panic!(
                    "node {node}: {} acknowledged messages not DELIVERED after {limit:?}, e.g. {:?}",
                    still.len(),
                    self.get_message(node, &still[0]).await
                );
            }
            pending = still;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
