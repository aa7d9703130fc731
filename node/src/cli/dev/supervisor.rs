//! The dev cluster's supervisor: it owns the nodes and the simulator as child processes, reports
//! a child's exit and keeps the others running (so a newcomer can kill a node and watch the rest
//! fail over), starts a stopped child again on its data when `herald dev start-node` asks over the
//! control socket, keeps `cluster.json`'s pids true, and stops everything only on Ctrl-C.
//!
//! It knows nothing of Herald's protocols: a child is a command line, a log file and the ports
//! it will listen on.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::control::{Reply, Request};
use super::folder::{DevFolder, CLUSTER_FILE, SOCKET_FILE};
use super::layout::{check_free, Listen};

/// How long a child has to stop after SIGTERM before it is killed.
/// An argument a child takes on its first start only (a node's `--bootstrap`): dropped from its
/// arguments once it has been spawned, so restarts go without it.
pub const FIRST_START_ONLY: &str = "--bootstrap";

const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long a control client has to send its one request line.
/// A request is one short line sent at once: the supervisor's loop (exit reports, Ctrl-C) waits
/// at most this long for it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// What kind of child: it decides where the child appears in `cluster.json`.
#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    Node,
    Simulator,
}

/// One child process: how to start it and what to say about it.
pub struct ChildSpec {
    /// `node2`, `sim-cmpp`: the name in reports and control requests.
    pub name: String,
    pub kind: Kind,
    /// The `herald` arguments that start it.
    pub args: Vec<OsString>,
    pub log: PathBuf,
    /// Checked free before each start.
    pub listens: Vec<Listen>,
    /// Its entry in `cluster.json`, without the pid.
    pub entry: serde_json::Value,
    /// The command that asks the supervisor to start it again.
    pub restart_command: String,
}

struct Slot {
    spec: ChildSpec,
    pid: Option<u32>,
}

/// A child that exited (or could not be waited for).
struct Exit {
    name: String,
    pid: u32,
    status: std::io::Result<ExitStatus>,
}

pub struct Supervisor {
    exe: PathBuf,
    folder: DevFolder,
    slots: Vec<Slot>,
    exits_tx: mpsc::UnboundedSender<Exit>,
    exits_rx: mpsc::UnboundedReceiver<Exit>,
    /// Cancelled on Ctrl-C: every child's watcher then stops its child.
    stop: CancellationToken,
    /// `cluster.json`'s `credentials`: the admin's and the demo sender's keys (null until made,
    /// and for an insecure cluster).
    credentials: serde_json::Value,
    /// What else `cluster.json` says about connecting (`tls`).
    fields: serde_json::Map<String, serde_json::Value>,
}

impl Supervisor {
    pub fn new(exe: PathBuf, folder: DevFolder, specs: Vec<ChildSpec>) -> Supervisor {
        let (exits_tx, exits_rx) = mpsc::unbounded_channel();
        Supervisor {
            exe,
            folder,
            slots: specs
                .into_iter()
                .map(|spec| Slot { spec, pid: None })
                .collect(),
            exits_tx,
            exits_rx,
            stop: CancellationToken::new(),
            credentials: serde_json::Value::Null,
            fields: serde_json::Map::new(),
        }
    }

    /// Records the cluster's keys in `cluster.json`, where client commands run in the folder's
    /// parent find them.
    pub fn set_credentials(&mut self, credentials: serde_json::Value) -> std::io::Result<()> {
        self.credentials = credentials;
        self.write_cluster_file()
    }

    /// Records `key: value` at the top of `cluster.json` (e.g. `"tls": {"ca": ...}`).
    pub fn set_field(&mut self, key: &str, value: serde_json::Value) {
        self.fields.insert(key.to_string(), value);
    }

    pub fn folder(&self) -> &DevFolder {
        &self.folder
    }

    /// The current pid of the child `name`, if it runs.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.slots
            .iter()
            .find(|s| s.spec.name == name)
            .and_then(|s| s.pid)
    }

    /// Starts every child, in the order given, and writes `cluster.json`.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for index in 0..self.slots.len() {
            self.spawn(index)?;
        }
        self.write_cluster_file()?;
        Ok(())
    }

    /// Starts the child at `index` with its output appended to its log.
    fn spawn(&mut self, index: usize) -> std::io::Result<u32> {
        let spec = &self.slots[index].spec;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)?;
        let child = Command::new(&self.exe)
            .args(&spec.args)
            // A child outlives a SIGKILLed supervisor otherwise, holding the ports and folder.
            .env(crate::node::EXIT_WITH_PARENT, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            // Its own process group: Ctrl-C in the terminal reaches the supervisor alone, which
            // then stops the children in order instead of watching them all "exit".
            .process_group(0)
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().unwrap_or(0);
        tokio::spawn(watch(
            child,
            spec.name.clone(),
            pid,
            self.stop.clone(),
            self.exits_tx.clone(),
        ));
        self.slots[index].pid = Some(pid);
        self.slots[index]
            .spec
            .args
            .retain(|a| a.as_os_str() != FIRST_START_ONLY);
        Ok(pid)
    }

    /// `cluster.json`: every child with its pid now (null while it is stopped), and how to
    /// reach this supervisor.
    fn write_cluster_file(&self) -> std::io::Result<()> {
        let entries = |kind: Kind| -> Vec<serde_json::Value> {
            self.slots
                .iter()
                .filter(|s| s.spec.kind == kind)
                .map(|s| {
                    let mut entry = s.spec.entry.clone();
                    if let Some(map) = entry.as_object_mut() {
                        map.insert("pid".into(), serde_json::json!(s.pid));
                    }
                    entry
                })
                .collect()
        };
        let mut cluster = serde_json::json!({
            "nodes": entries(Kind::Node),
            "simulators": entries(Kind::Simulator),
            "credentials": self.credentials,
            // null once stopped: no process answers at that socket any more.
            "supervisor": (!self.stop.is_cancelled()).then(|| serde_json::json!({
                "pid": std::process::id(),
                "control": self.folder.join(SOCKET_FILE),
            })),
        });
        if let Some(map) = cluster.as_object_mut() {
            for (key, value) in &self.fields {
                map.insert(key.clone(), value.clone());
            }
        }
        let text = serde_json::to_string_pretty(&cluster).map_err(std::io::Error::other)?;
        self.folder.write_atomically(CLUSTER_FILE, &text)
    }

    /// Supervises until `shutdown` completes, then stops every child.
    pub async fn run(
        mut self,
        listener: UnixListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(exit) = self.exits_rx.recv() => self.exited(exit),
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => self.serve(stream).await,
                    Err(e) => eprintln!("control socket: {e}"),
                },
            }
        }
        self.stop_all().await;
        Ok(())
    }

    /// Reports an exit and leaves the other children running.
    fn exited(&mut self, exit: Exit) {
        let Some(slot) = self.slots.iter_mut().find(|s| s.spec.name == exit.name) else {
            return;
        };
        if slot.pid != Some(exit.pid) {
            return;
        }
        slot.pid = None;
        let status = match &exit.status {
            Ok(status) => status.to_string(),
            Err(e) => format!("could not be waited for: {e}"),
        };
        let spec = &slot.spec;
        println!(
            "{} (pid {}) exited ({status}); the others keep running.",
            spec.name, exit.pid
        );
        println!("  log: {}", spec.log.display());
        // A crash says why in its last lines; a kill (signal) says nothing there.
        if matches!(&exit.status, Ok(s) if s.code().is_some_and(|c| c != 0)) {
            for line in last_lines(&spec.log, 5) {
                println!("  | {line}");
            }
        }
        println!(
            "  start it again (same data, log and ports): {}",
            spec.restart_command
        );
        println!(
            "  (or by hand, unsupervised: {} {})",
            self.exe.display(),
            spec.args
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        if let Err(e) = self.write_cluster_file() {
            eprintln!("could not update {CLUSTER_FILE}: {e}");
        }
    }

    /// Answers one control request.
    async fn serve(&mut self, stream: UnixStream) {
        let (read, mut write) = stream.into_split();
        let mut line = String::new();
        let mut reader = BufReader::new(read.take(super::control::MAX_LINE));
        let reply = match tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await {
            Ok(Ok(_)) => match Request::parse(&line) {
                Ok(request) => self.handle(request),
                Err(e) => Reply::Error(e.to_string()),
            },
            Ok(Err(e)) => Reply::Error(format!("reading the request: {e}")),
            Err(_) => Reply::Error("no request within 1 s".into()),
        };
        let _ = write.write_all(reply.to_line().as_bytes()).await;
    }

    fn handle(&mut self, request: Request) -> Reply {
        match request {
            Request::Start { name } => self.restart(&name),
        }
    }

    /// Starts the stopped child `name` again, on the same data, log and ports.
    fn restart(&mut self, name: &str) -> Reply {
        let Some(index) = self.slots.iter().position(|s| s.spec.name == name) else {
            let names: Vec<&str> = self.slots.iter().map(|s| s.spec.name.as_str()).collect();
            return Reply::Error(format!(
                "this cluster has no {name}; it has {}",
                names.join(", ")
            ));
        };
        if let Some(pid) = self.slots[index].pid {
            return Reply::Error(format!("{name} is already running (pid {pid})"));
        }
        if let Err(e) = check_free(&self.slots[index].spec.listens) {
            return Reply::Error(format!("{name} not started: {e} (was it started by hand?)"));
        }
        match self.spawn(index) {
            Ok(pid) => {
                let log = self.slots[index].spec.log.display().to_string();
                println!("{name} started again (pid {pid}); log: {log}");
                if let Err(e) = self.write_cluster_file() {
                    eprintln!("could not update {CLUSTER_FILE}: {e}");
                }
                Reply::Ok(format!("{name} started again (pid {pid}); log: {log}"))
            }
            Err(e) => Reply::Error(format!("{name} could not be started: {e}")),
        }
    }

    /// Stops every running child (SIGTERM, then SIGKILL after [`STOP_GRACE`]) and waits for
    /// them, so that no node outlives `herald dev`.
    async fn stop_all(&mut self) {
        self.stop.cancel();
        let deadline = tokio::time::Instant::now() + STOP_GRACE + Duration::from_secs(5);
        while self.slots.iter().any(|s| s.pid.is_some()) {
            match tokio::time::timeout_at(deadline, self.exits_rx.recv()).await {
                Ok(Some(exit)) => {
                    if let Some(slot) = self
                        .slots
                        .iter_mut()
                        .find(|s| s.spec.name == exit.name && s.pid == Some(exit.pid))
                    {
                        slot.pid = None;
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        let _ = std::fs::remove_file(self.folder.join(SOCKET_FILE));
        if let Err(e) = self.write_cluster_file() {
            eprintln!("could not update {CLUSTER_FILE}: {e}");
        }
        println!("stopped");
    }
}

/// Waits for `child` to exit, or on `stop` ends it: SIGTERM (a clean shutdown), then SIGKILL.
/// The exit is reported either way.
async fn watch(
    mut child: Child,
    name: String,
    pid: u32,
    stop: CancellationToken,
    exits: mpsc::UnboundedSender<Exit>,
) {
    let status = tokio::select! {
        status = child.wait() => status,
        _ = stop.cancelled() => {
            terminate(pid);
            match tokio::time::timeout(STOP_GRACE, child.wait()).await {
                Ok(status) => status,
                Err(_) => match child.kill().await {
                    Ok(()) => child.wait().await,
                    Err(e) => Err(e),
                },
            }
        }
    };
    let _ = exits.send(Exit { name, pid, status });
}

/// SIGTERM to `pid`, a child not yet waited for (so the pid is still ours).
fn terminate(pid: u32) {
    let _ = std::process::Command::new("kill")
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The last `n` lines of a log, for an exit report.
fn last_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    // The end of the log is enough for a few lines: a debug log may be gigabytes.
    const TAIL_BYTES: u64 = 16 * 1024;
    let mut tail = Vec::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let length = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(length.saturating_sub(TAIL_BYTES)));
        let _ = file.take(TAIL_BYTES).read_to_end(&mut tail);
    }
    let text = String::from_utf8_lossy(&tail);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// Binds the control socket in the (locked) folder; a socket file left by a killed supervisor
/// is replaced, which is safe only because the lock says no other supervisor owns it.
pub fn bind_control(folder: &DevFolder) -> std::io::Result<UnixListener> {
    let path = folder.join(SOCKET_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    UnixListener::bind(&path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::dev::control::{ask, Request};

    /// A child that runs until signalled: `sh -c 'sleep 600'` (exec'd, so its pid is the sleep's).
    fn sleeper(folder: &DevFolder, name: &str) -> ChildSpec {
        ChildSpec {
            name: name.into(),
            kind: Kind::Node,
            args: vec!["-c".into(), "exec sleep 600".into()],
            log: folder.join(&format!("{name}.log")),
            listens: Vec::new(),
            entry: serde_json::json!({ "name": name }),
            restart_command: format!("start {name}"),
        }
    }

    fn pids_in_cluster_file(dir: &std::path::Path) -> Vec<Option<u64>> {
        let text = std::fs::read_to_string(dir.join(CLUSTER_FILE)).unwrap_or_default();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        value["nodes"]
            .as_array()
            .map(|nodes| nodes.iter().map(|n| n["pid"].as_u64()).collect())
            .unwrap_or_default()
    }

    async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn alive(pid: u64) -> bool {
        std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    #[tokio::test]
    async fn an_exit_leaves_the_others_running_and_a_start_request_brings_it_back() {
        let temp = tempfile::tempdir().expect("a temp dir");
        let folder = DevFolder::lock(temp.path()).expect("the lock");
        let dir = folder.path().to_path_buf();
        let specs = vec![sleeper(&folder, "node1"), sleeper(&folder, "node2")];
        let listener = bind_control(&folder).expect("the control socket");
        let mut supervisor = Supervisor::new("/bin/sh".into(), folder, specs);
        supervisor.start_all().expect("starting the children");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(supervisor.run(listener, async {
            let _ = stop_rx.await;
        }));

        let pids = pids_in_cluster_file(&dir);
        let (Some(first), Some(second)) = (pids[0], pids[1]) else {
            panic!("cluster.json lacks the pids: {pids:?}");
        };
        std::process::Command::new("kill")
            .args(["-9", &first.to_string()])
            .status()
            .expect("kill");
        wait_until("cluster.json to show node1 stopped", || {
            pids_in_cluster_file(&dir)[0].is_none()
        })
        .await;
        assert!(alive(second), "node2 was stopped with node1");

        let reply = ask(
            &dir,
            Request::Start {
                name: "node1".into(),
            },
        )
        .await
        .expect("node1 started again");
        assert!(reply.contains("started again"), "{reply}");
        let restarted = pids_in_cluster_file(&dir)[0].expect("node1's new pid");
        assert_ne!(restarted, first);
        assert!(alive(restarted));
        let refused = ask(
            &dir,
            Request::Start {
                name: "node2".into(),
            },
        )
        .await
        .expect_err("node2 runs");
        assert!(refused.to_string().contains("already running"), "{refused}");

        stop_tx.send(()).expect("the supervisor listens");
        running
            .await
            .expect("the supervisor task")
            .expect("a clean stop");
        assert_eq!(pids_in_cluster_file(&dir), vec![None, None]);
        wait_until("every child to be gone", || {
            !alive(restarted) && !alive(second)
        })
        .await;
    }
}
