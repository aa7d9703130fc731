//! `herald dev` as a newcomer runs it: a supervised local cluster that keeps running when a node
//! is killed and starts it again on request, refuses to run twice on one folder or one set of
//! ports, refuses ports that do not fit, and still prints the README's first session.
//!
//! Each test runs the real `herald dev` (the harness's `herald_bin()`) in its own temp dir, on its
//! own loopback subnet (`--host 127.A.B.1`), so tests in parallel never share a port.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_api::v1::cluster_client::ClusterClient;
use herald_api::v1::messaging_client::MessagingClient;
use herald_api::v1::{
    ClusterStatusRequest, GetMessageRequest, MessageState, Priority, SubmitRequest,
};
use herald_node::cli::connect::ClientChannel;
use herald_node::cli::connect::Connector;
use herald_tests::{herald_bin, wait_for, LoopbackNet};
use secrecy::{ExposeSecret as _, SecretString};

const PORT_BASE: u16 = 7100;

/// A running `herald dev`, its output collected as it comes.
struct Dev {
    child: Child,
    output: Arc<Mutex<String>>,
    dir: PathBuf,
    host: String,
}

impl Dev {
    fn start(dir: &Path, host: &str) -> Dev {
        let mut child = Command::new(herald_bin())
            .arg("dev")
            .arg("--dir")
            .arg(dir)
            .args(["--host", host, "--port-base", &PORT_BASE.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting herald dev");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut all = output.lock().expect("output buffer");
                    all.push_str(&line);
                    all.push('\n');
                }
            });
        }
        Dev {
            child,
            output,
            dir: dir.to_path_buf(),
            host: host.to_string(),
        }
    }

    /// The CA `herald dev` made for its cluster (what cluster.json's `tls.ca` names).
    fn ca(&self) -> PathBuf {
        self.dir.join("tls").join("ca.pem")
    }

    fn output(&self) -> String {
        self.output.lock().expect("output buffer").clone()
    }

    async fn wait_output(&self, needle: &str, limit: Duration) {
        wait_for(
            &format!("herald dev to print {needle:?}"),
            limit,
            || async { self.output().contains(needle).then_some(()) },
        )
        .await;
    }

    async fn wait_up(&self) {
        self.wait_output("cluster is up", Duration::from_secs(90))
            .await;
    }

    fn grpc(&self, id: u64) -> String {
        format!("{}:{}", self.host, PORT_BASE + id as u16)
    }

    /// Node `id`'s HTTP listener (`/metrics`, `/livez`, `/readyz`): port-base + 20 + id.
    fn http(&self, id: u64) -> String {
        format!("{}:{}", self.host, PORT_BASE + 20 + id as u16)
    }

    fn cluster_json(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.join("cluster.json")).expect("cluster.json");
        serde_json::from_str(&text).expect("cluster.json is JSON")
    }

    /// The demo sender's key `herald dev` recorded in cluster.json.
    fn demo_key(&self) -> SecretString {
        let json = self.cluster_json();
        let key = json["credentials"]["demo"]
            .as_str()
            .unwrap_or_else(|| panic!("cluster.json has no demo key: {json}"));
        SecretString::from(key.to_string())
    }

    fn node_pid(&self, id: u64) -> Option<i32> {
        self.cluster_json()["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["id"] == id)
            .and_then(|n| n["pid"].as_i64())
            .map(|p| p as i32)
    }

    /// Ctrl-C, as a person would stop it; its exit status once everything stopped.
    fn interrupt(&mut self) -> ExitStatus {
        // SAFETY: signalling our own child, which has not been waited for.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        wait_child(&mut self.child, Duration::from_secs(40)).expect("herald dev stops on Ctrl-C")
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Ctrl-C stops the children too; a plain kill would leave them running.
            self.interrupt();
        }
        if std::thread::panicking() {
            eprintln!("herald dev printed:\n{}", self.output());
        }
    }
}

/// Waits for `child` with a deadline; kills it if the deadline passes.
fn wait_child(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Runs `herald ARGS` to completion (at most 60 s) and returns what it printed.
fn herald(args: &[&str]) -> Output {
    let mut child = Command::new(herald_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting herald");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let status = wait_child(&mut child, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("herald {args:?} did not finish within 60 s"));
    Output {
        status,
        stdout: out.join().unwrap_or_default().into_bytes(),
        stderr: err.join().unwrap_or_default().into_bytes(),
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// A channel as every client makes it, with the harness's short connect timeout and call bound.
async fn channel(ca: &Path, addr: &str, key: &SecretString) -> Option<ClientChannel> {
    Connector::new(addr)
        .ca_file(ca)
        .api_key(key.clone())
        .connect_timeout(Duration::from_millis(500))
        .request_timeout(Duration::from_secs(10))
        .channel()
        .await
        .ok()
}

async fn leader_seen_by(ca: &Path, addr: &str, key: &SecretString) -> Option<u64> {
    let status = ClusterClient::new(channel(ca, addr, key).await?)
        .status(ClusterStatusRequest {})
        .await
        .ok()?
        .into_inner();
    (status.leader != 0).then_some(status.leader)
}

/// Submits one message through any of `endpoints` until one acknowledges it (same idempotency
/// key each time, as a real client retries).
async fn submit(ca: &Path, endpoints: &[String], key: &str, api_key: &SecretString) -> String {
    let request = SubmitRequest {
        recipients: vec!["13800138000".into()],
        text: format!("dev cluster {key}"),
        priority: Priority::Notification as i32,
        idempotency_key: key.to_string(),
        ..Default::default()
    };
    let mut attempt = 0usize;
    wait_for(
        &format!("a node to accept {key}"),
        Duration::from_secs(60),
        || {
            attempt += 1;
            let endpoint = endpoints[attempt % endpoints.len()].clone();
            let request = request.clone();
            async move {
                let mut client = MessagingClient::new(channel(ca, &endpoint, api_key).await?);
                let response = client.submit(request).await.ok()?;
                Some(response.into_inner().message_id)
            }
        },
    )
    .await
}

async fn wait_delivered(
    ca: &Path,
    endpoint: &str,
    ids: &[String],
    limit: Duration,
    api_key: &SecretString,
) {
    for id in ids {
        wait_for(
            &format!("message {id} DELIVERED as {endpoint} sees it"),
            limit,
            || async {
                let mut client = MessagingClient::new(channel(ca, endpoint, api_key).await?);
                let message = client
                    .get_message(GetMessageRequest {
                        message_id: id.clone(),
                    })
                    .await
                    .ok()?
                    .into_inner();
                (message.state == MessageState::Delivered as i32).then_some(())
            },
        )
        .await;
    }
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("herald-dev-test-")
        .tempdir()
        .expect("a temp dir")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dev_cluster_whose_leader_is_killed_keeps_delivering_and_the_node_started_again_catches_up(
) {
    let temp = temp_dir();
    let net = LoopbackNet::new();
    let mut dev = Dev::start(&temp.path().join("cluster"), &net.ip(1));
    dev.wait_up().await;
    let ca = std::fs::read(dev.ca()).expect("the dev CA");
    for id in 1..=3 {
        assert!(
            dev.output().contains(&format!(
                "node {id}  gRPC {}  HTTP {}  pid ",
                dev.grpc(id),
                dev.http(id)
            )),
            "the banner lists node {id}:\n{}",
            dev.output()
        );
        let recorded = dev.cluster_json()["nodes"][(id - 1) as usize]["http"].clone();
        assert_eq!(recorded, serde_json::json!(dev.http(id)), "cluster.json");
        let live = herald_tests::http::get(&dev.http(id), "/livez", Some(&ca))
            .await
            .expect("GET /livez over TLS with the dev CA");
        assert_eq!(live.status, 200, "node {id} /livez: {}", live.body);
    }

    let node1 = dev.grpc(1);
    let demo = dev.demo_key();
    let ca = dev.ca();
    let leader = wait_for("a leader", Duration::from_secs(30), || {
        leader_seen_by(&ca, &node1, &demo)
    })
    .await;
    let old_pid = dev
        .node_pid(leader)
        .expect("the leader's pid in cluster.json");
    // SAFETY: a process of the cluster, by the pid its supervisor recorded.
    unsafe { libc::kill(old_pid, libc::SIGKILL) };
    dev.wait_output(
        &format!("node{leader} (pid {old_pid}) exited"),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        dev.node_pid(leader),
        None,
        "cluster.json says the killed node is not running"
    );

    // The others keep accepting and delivering while it is down.
    let survivors: Vec<String> = (1..=3)
        .filter(|id| *id != leader)
        .map(|id| dev.grpc(id))
        .collect();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(submit(&ca, &survivors, &format!("while-down-{n}"), &demo).await);
    }
    wait_delivered(&ca, &survivors[0], &ids, Duration::from_secs(60), &demo).await;

    // Started again through the supervisor, on its data; it catches up on what it missed.
    let started = herald(&[
        "dev",
        "start-node",
        &leader.to_string(),
        "--dir",
        dev.dir.to_str().expect("a UTF-8 temp path"),
    ]);
    assert!(
        started.status.success(),
        "start-node failed: {}",
        String::from_utf8_lossy(&started.stderr)
    );
    assert!(String::from_utf8_lossy(&started.stdout).contains("started again"));
    let new_pid = dev
        .node_pid(leader)
        .expect("cluster.json has the restarted node's pid");
    assert_ne!(new_pid, old_pid);
    assert!(alive(new_pid));
    wait_delivered(&ca, &dev.grpc(leader), &ids, Duration::from_secs(60), &demo).await;

    // Asking again while it runs is refused, and changes nothing.
    let again = herald(&[
        "dev",
        "start-node",
        &leader.to_string(),
        "--dir",
        dev.dir.to_str().expect("a UTF-8 temp path"),
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already running"));

    // Ctrl-C stops every child, the restarted one and the simulator included.
    let mut pids: Vec<i32> = (1..=3).filter_map(|id| dev.node_pid(id)).collect();
    assert_eq!(pids.len(), 3);
    let sim = dev.cluster_json()["simulators"][0]["pid"].as_i64();
    pids.push(sim.expect("the simulator's pid in cluster.json") as i32);
    let status = dev.interrupt();
    assert!(status.success(), "herald dev exited with {status}");
    for pid in pids {
        assert!(!alive(pid), "pid {pid} outlived herald dev");
    }
    let after = dev.cluster_json();
    assert!(
        after["supervisor"].is_null(),
        "a stopped supervisor is not named: {after}"
    );
    assert!(after["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .all(|n| n["pid"].is_null()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_dev_on_the_same_folder_or_ports_refuses_and_touches_nothing() {
    let temp = temp_dir();
    let net = LoopbackNet::new();
    let host = net.ip(1);
    let dir = temp.path().join("cluster");
    let first = Dev::start(&dir, &host);
    first.wait_up().await;
    let demo = first.demo_key();
    let id = submit(&first.ca(), &[first.grpc(1)], "before-the-second", &demo).await;
    wait_delivered(
        &first.ca(),
        &first.grpc(2),
        std::slice::from_ref(&id),
        Duration::from_secs(60),
        &demo,
    )
    .await;

    let cluster_json = std::fs::read_to_string(dir.join("cluster.json")).expect("cluster.json");
    let logs = ["node1.log", "node2.log", "node3.log", "sim-cmpp.log"];
    let logs_before: Vec<String> = logs
        .iter()
        .map(|l| std::fs::read_to_string(dir.join(l)).unwrap_or_default())
        .collect();

    // Same folder, other ports, and --fresh: refused before anything is deleted.
    let second = herald(&[
        "dev",
        "--dir",
        dir.to_str().expect("a UTF-8 temp path"),
        "--host",
        &host,
        "--port-base",
        "7300",
        "--fresh",
    ]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    let first_pid = first.child.id();
    assert!(
        stderr.contains(&format!("is in use by pid {first_pid}")),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&second.stdout).contains("cluster is up"));

    // Same ports, another folder: refused before any child starts.
    let other = temp.path().join("other");
    let third = herald(&[
        "dev",
        "--dir",
        other.to_str().expect("a UTF-8 temp path"),
        "--host",
        &host,
        "--port-base",
        &PORT_BASE.to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&third.stderr);
    assert_eq!(third.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("port {host}:71")) && stderr.contains("is in use"),
        "{stderr}"
    );
    assert!(!other.exists(), "the refused run left its folder behind");

    // The first cluster's files are as they were (its logs only grew), and it still works.
    assert_eq!(
        std::fs::read_to_string(dir.join("cluster.json")).expect("cluster.json"),
        cluster_json
    );
    for (log, before) in logs.iter().zip(&logs_before) {
        let now = std::fs::read_to_string(dir.join(log)).unwrap_or_default();
        assert!(now.starts_with(before.as_str()), "{log} was rewritten");
        assert!(!now.contains("in use"), "{log} has another run's output");
    }
    wait_delivered(
        &first.ca(),
        &first.grpc(3),
        &[id],
        Duration::from_secs(30),
        &demo,
    )
    .await;
    assert!(
        !first.output().contains("exited"),
        "a child of the first cluster exited:\n{}",
        first.output()
    );
}

/// A supervisor killed outright (SIGKILL: no chance to stop its children) takes its cluster with
/// it: the children notice they were re-parented and shut down, freeing the ports and the folder
/// for the next `herald dev`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_children_of_a_killed_dev_supervisor_stop_too() {
    let temp = temp_dir();
    let net = LoopbackNet::new();
    let mut dev = Dev::start(&temp.path().join("cluster"), &net.ip(1));
    dev.wait_up().await;
    let cluster = dev.cluster_json();
    let pids: Vec<i32> = ["nodes", "simulators"]
        .iter()
        .flat_map(|kind| cluster[kind].as_array().cloned().unwrap_or_default())
        .filter_map(|child| child["pid"].as_i64())
        .map(|pid| pid as i32)
        .collect();
    assert_eq!(pids.len(), 4, "three nodes and a simulator: {cluster}");
    dev.child.kill().expect("SIGKILL to herald dev");
    let _ = dev.child.wait();
    wait_for(
        "every child of the killed supervisor to stop",
        Duration::from_secs(30),
        || {
            let left: Vec<i32> = pids.iter().copied().filter(|p| running(*p)).collect();
            async move { left.is_empty().then_some(()) }
        },
    )
    .await;
}

/// Whether `pid` runs: a zombie (exited, not yet reaped by whoever adopted it) does not.
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses, which may hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// A folder whose control socket path is too long for the system is refused before `--fresh`
/// deletes anything in it.
#[test]
fn a_folder_too_deep_for_the_control_socket_is_refused_before_fresh_deletes_anything() {
    let temp = temp_dir();
    let net = LoopbackNet::new();
    let dir = temp.path().join("d".repeat(120));
    std::fs::create_dir_all(dir.join("node1")).expect("a data folder");
    std::fs::write(dir.join("node1").join("keep"), "data").expect("a data file");
    let out = herald(&[
        "dev",
        "--dir",
        dir.to_str().expect("a UTF-8 temp path"),
        "--host",
        &net.ip(1),
        "--fresh",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("control socket"), "{stderr}");
    assert!(
        dir.join("node1").join("keep").exists(),
        "--fresh deleted the data of a run it then refused"
    );
    assert!(
        !dir.join("node1.toml").exists(),
        "a refused run wrote configs"
    );
}

#[test]
fn a_port_base_whose_ports_do_not_fit_is_refused_without_a_panic() {
    let temp = temp_dir();
    let dir = temp.path().join("cluster");
    let out = herald(&[
        "dev",
        "--dir",
        dir.to_str().expect("a UTF-8 temp path"),
        "--port-base",
        "65500",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("--port-base 65500"), "{stderr}");
    assert!(stderr.contains("at most 65436"), "{stderr}");
    assert!(!dir.exists(), "a refused run created its folder");
}

/// The README's first session (`scripts/first-session`) against a real `herald dev`: the output
/// has the README's lines and fields; ids, times, addresses and which node leads may differ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_first_session_prints_what_the_readme_shows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let shown = readme_first_session(&readme);

    let temp = temp_dir();
    let net = LoopbackNet::new();
    let dev = Dev::start(&temp.path().join("cluster"), &net.ip(1));
    dev.wait_up().await;
    // What the README's reader gets from `.herald-dev/cluster.json` in the repository, this
    // cluster in a temp folder gets from the environment.
    let run = Command::new(root.join("scripts/first-session"))
        .env("HERALD", herald_bin())
        .env("HERALD_API_KEY", dev.demo_key().expose_secret())
        .env("HERALD_CA", dev.ca())
        .env("HERALD_DEV_HOST", net.ip(1))
        .env("HERALD_DEV_PORT_BASE", PORT_BASE.to_string())
        .stdin(Stdio::null())
        .output()
        .expect("running scripts/first-session");
    let printed = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "scripts/first-session failed: {}\n{printed}",
        String::from_utf8_lossy(&run.stderr)
    );
    let shown_shape: Vec<String> = shown.lines().map(shape).collect();
    let printed_shape: Vec<String> = printed.lines().map(shape).collect();
    for (n, (readme_line, real_line)) in shown_shape.iter().zip(&printed_shape).enumerate() {
        assert_eq!(
            readme_line, real_line,
            "line {} of the README's first session differs from a real run:\nREADME:\n{shown}\nreal run:\n{printed}",
            n + 1
        );
    }
    assert_eq!(
        shown_shape.len(),
        printed_shape.len(),
        "the README's first session has another number of lines than a real run:\nREADME:\n{shown}\nreal run:\n{printed}"
    );
}

/// The console block of the README's "A first session" section.
fn readme_first_session(readme: &str) -> String {
    let section = readme
        .split("## A first session")
        .nth(1)
        .expect("README has a section \"A first session\"");
    let block = section
        .split("```console\n")
        .nth(1)
        .expect("the section has a console block");
    block
        .split("\n```")
        .next()
        .expect("the block ends")
        .to_string()
}

/// A line's shape: every number one `#`, runs of spaces one space, and what depends on which
/// node leads (its role, the "(leader)" mark) or holds the link (only the holder knows whether
/// it is connected) left out.
fn shape(line: &str) -> String {
    let line = match line.split_once(", connection known only to node") {
        Some((head, _)) => format!("{head}, CONNECTION"),
        None => line
            .replace(", not connected", ", CONNECTION")
            .replace(", connected", ", CONNECTION"),
    };
    // Auto-finalize raises a new cluster's version a few seconds after it starts: before that,
    // status adds a hint that the README, read later, does not show.
    let line = match line.split_once(" (every member applies") {
        Some((head, _)) => head.to_string(),
        None => line,
    };
    // A member's build names its git commit, which changes with every commit.
    let line = match (line.find(" version "), line.find(") format level")) {
        (Some(start), Some(end)) if start < end => match line[start..end].find('(') {
            Some(open) => format!("{}(COMMIT{}", &line[..start + open], &line[end..]),
            None => line,
        },
        _ => line,
    };
    let line = line
        .replace(" (leader)", "")
        .replace("Leader", "ROLE")
        .replace("Follower", "ROLE")
        .replace("Candidate", "ROLE");
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        let c = if c.is_ascii_digit() { '#' } else { c };
        let last = out.chars().last();
        if (c == '#' && last == Some('#')) || (c == ' ' && last == Some(' ')) {
            continue;
        }
        out.push(c);
    }
    out.trim_end().to_string()
}

#[test]
fn shapes_ignore_numbers_spacing_and_roles() {
    assert_eq!(
        shape("  2026-12-06 06:43:35.586  MessageSubmitted  to 13800138000"),
        " #-#-# #:#:#.# MessageSubmitted to #"
    );
    assert_eq!(
        shape("node 2 (Leader), leader 2"),
        shape("node 3 (Follower), leader 12")
    );
    assert_ne!(shape("message 1: DELIVERED"), shape("message 1: FAILED"));
    assert_eq!(
        shape("  link cmpp-sim on node 1 (epoch 1), connected"),
        shape("  link cmpp-sim on node 2 (epoch 3), connection known only to node 2")
    );
}
