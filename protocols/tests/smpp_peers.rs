//! Herald's SMPP client and simulator against independent implementations nobody at Herald
//! wrote, installed by `scripts/install-peers` into `.peers/` at the workspace root:
//! - PyPI `smpplib` as an ESME against Herald's SMPP simulator;
//! - npm `smpp` (node-smpp) as an SMSC for Herald's SMPP client;
//! - PyPI `smpp34` (Rust-core SMPP 3.4 server) as an SMSC for Herald's SMPP client.
//!
//! The peer scripts live in `tests/peers/`. A missing peer fails the test with the command that
//! installs it. Every wait has a deadline.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use herald_protocols::client::DeliveryReport;
use herald_protocols::gsm7::split_smpp;
use herald_protocols::sim::smpp::{run_on, SimConfig, SimFaults};
use herald_protocols::smpp_client::SmppClient;
use herald_protocols::{ClientEvent, LinkSettings, OutboundSegment, SubmitOutcome};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::time::timeout;

const SYSTEM_ID: &str = "herald";
const PASSWORD: &str = "s3cret";
const DEADLINE: Duration = Duration::from_secs(60);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the protocols crate sits in the workspace")
        .to_path_buf()
}

fn require(path: PathBuf, what: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{what} is not installed ({} is missing): run scripts/install-peers at the workspace root",
        path.display()
    );
    path
}

fn python() -> PathBuf {
    require(
        workspace().join(".peers/venv/bin/python"),
        "the Python peer venv",
    )
}

fn node_modules() -> PathBuf {
    require(
        workspace().join(".peers/node_modules/smpp"),
        "npm smpp (node-smpp)",
    );
    workspace().join(".peers/node_modules")
}

fn script(name: &str) -> PathBuf {
    workspace().join("tests/peers").join(name)
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn settings(addr: String, options: &[(&str, &str)]) -> LinkSettings {
    LinkSettings {
        name: "smpp-peer".into(),
        addr,
        account: SYSTEM_ID.into(),
        secret: PASSWORD.into(),
        service_id: "HERALD".into(),
        src_id: "Herald".into(),
        window: 4,
        heartbeat_interval: Duration::from_secs(30),
        response_timeout: Duration::from_secs(5),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(400),
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// A peer process writing JSON lines on stdout; killed when dropped.
struct Peer {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    seen: Vec<serde_json::Value>,
}

impl Peer {
    fn spawn(mut cmd: Command) -> Peer {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("peer process starts");
        let stdout = child.stdout.take().expect("stdout piped");
        Peer {
            child,
            lines: BufReader::new(stdout).lines(),
            seen: Vec::new(),
        }
    }

    /// Reads events until one has `"event": name`; returns it.
    async fn wait_for(&mut self, name: &str) -> serde_json::Value {
        within(&format!("peer event {name}"), async {
            loop {
                let line = self
                    .lines
                    .next_line()
                    .await
                    .expect("peer stdout")
                    .unwrap_or_else(|| panic!("peer exited before {name}; saw {:?}", self.seen));
                let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                self.seen.push(value.clone());
                if value["event"] == name {
                    return value;
                }
            }
        })
        .await
    }

    /// Reads events until `n` with `"event": name` have been seen; returns them all.
    async fn collect(&mut self, name: &str, n: usize) -> Vec<serde_json::Value> {
        while self.seen.iter().filter(|e| e["event"] == name).count() < n {
            self.wait_for(name).await;
        }
        self.seen
            .iter()
            .filter(|e| e["event"] == name)
            .cloned()
            .collect()
    }

    async fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = within("peer exit", self.child.wait()).await;
    }
}

/// Submits `texts` (split for SMPP) through `client` and waits for a receipt per accepted id.
/// Returns carrier id → the segment it carried. Receipts are taken (and acknowledged, as the node
/// does once they are recorded) while the submits go on: a single-threaded SMSC may wait for a
/// receipt's acknowledgement before it reads the next submit.
async fn submit_and_match(
    client: &SmppClient,
    events: &mut mpsc::Receiver<ClientEvent>,
    texts: &[&str],
) -> HashMap<String, OutboundSegment> {
    let mut accepted = HashMap::new();
    let mut reports: Vec<DeliveryReport> = Vec::new();
    let submits = async {
        let mut accepted = HashMap::new();
        for (i, text) in texts.iter().enumerate() {
            for segment in split_smpp(text) {
                let seg = OutboundSegment {
                    dest: format!("44770090{i:04}"),
                    segment,
                    registered_delivery: true,
                };
                match within("submit", client.submit(seg.clone())).await {
                    Ok(SubmitOutcome::Accepted { carrier_id }) => {
                        assert!(accepted.insert(carrier_id, seg).is_none(), "duplicate id");
                    }
                    other => panic!("not accepted: {other:?}"),
                }
            }
        }
        accepted
    };
    tokio::pin!(submits);
    let mut submitted = None;
    within("submits and receipts", async {
        loop {
            if let Some(acc) = &submitted {
                let acc: &HashMap<String, OutboundSegment> = acc;
                if reports.len() >= acc.len() {
                    break;
                }
            }
            tokio::select! {
                acc = &mut submits, if submitted.is_none() => submitted = Some(acc),
                event = events.recv() => match event {
                    Some(ClientEvent::Report(mut r)) => {
                        std::mem::take(&mut r.ack).done();
                        reports.push(r);
                    }
                    Some(ClientEvent::Disconnected { reason }) => panic!("link dropped: {reason}"),
                    Some(_) => {}
                    None => panic!("events closed"),
                },
            }
        }
    })
    .await;
    if let Some(acc) = submitted {
        accepted = acc;
    }
    let mut reported = HashMap::new();
    for r in reports {
        let seg = accepted
            .get(&r.carrier_id)
            .unwrap_or_else(|| panic!("receipt for unknown id {:?}", r.carrier_id));
        assert_eq!(r.dest, seg.dest);
        assert!(r.delivered && r.stat == "DELIVRD", "{r:?}");
        reported.insert(r.carrier_id.clone(), r);
    }
    assert_eq!(
        reported.len(),
        accepted.len(),
        "a receipt for every accepted id"
    );
    accepted
}

#[tokio::test]
async fn smpplib_client_against_the_simulator() {
    let python = python();
    let dir = tempfile::tempdir().expect("tempdir");
    let record = dir.path().join("sim.jsonl");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut config = SimConfig::new(addr.to_string(), SYSTEM_ID, PASSWORD);
    config.record = Some(record.clone());
    config.id_format = herald_protocols::smpp::IdFormat::Hex;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sim = tokio::spawn(run_on(listener, config, SimFaults::default(), async move {
        let _ = stopped.await;
    }));

    let output = within(
        "smpplib client",
        Command::new(&python)
            .arg(script("smpplib_client.py"))
            .arg(addr.to_string())
            .arg(SYSTEM_ID)
            .arg(PASSWORD)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "smpplib client failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let result: serde_json::Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no RESULT line in {stdout}"));
    assert_eq!(result["wrong_password_status"], 0x0E, "{result}");

    // What the simulator saw, decoded by Herald, is what smpplib encoded.
    let lines = std::fs::read_to_string(&record).expect("record");
    let records: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let submits: Vec<_> = records.iter().filter(|r| r["kind"] == "submit").collect();
    assert!(submits
        .iter()
        .any(|s| s["text"] == "Hello from smpplib {ok} 100€" && s["pk_total"] == 1));
    let long: String = submits
        .iter()
        .filter(|s| s["pk_total"] == 2)
        .map(|s| s["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(long, "Long message from smpplib. ".repeat(8));
    let ids: Vec<&str> = result["transceiver_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(ids.len(), 3, "{result}");
    for id in ids
        .iter()
        .chain([&result["receiver_id"].as_str().unwrap_or("?")])
    {
        assert!(
            records
                .iter()
                .any(|r| r["kind"] == "report" && r["msg_id"] == *id),
            "no report recorded for {id}"
        );
    }
    let _ = stop.send(());
    let ended = within("simulator stop", sim).await;
    assert!(matches!(ended, Ok(Ok(()))), "{ended:?}");
}

#[tokio::test]
async fn herald_client_against_node_smpp_smsc() {
    let modules = node_modules();
    let mut cmd = Command::new("node");
    cmd.arg(script("node_smpp_smsc.js"))
        .arg(SYSTEM_ID)
        .arg(PASSWORD)
        .env("NODE_PATH", &modules);
    let mut peer = Peer::spawn(cmd);
    let port = peer.wait_for("listening").await["port"]
        .as_u64()
        .expect("port");

    let (client, mut events) = SmppClient::start(settings(format!("127.0.0.1:{port}"), &[]));
    let texts = [
        "Hello node-smpp {ok} 100€",
        "你好，node-smpp",
        &"Long GSM text for node-smpp. ".repeat(7),
    ];
    let accepted = submit_and_match(&client, &mut events, &texts).await;
    assert_eq!(accepted.len(), 4, "1 + 1 + 2 parts");
    // Ids are node-smpp's zero-padded hex, passed through as given.
    assert!(accepted
        .keys()
        .all(|id| id.len() == 10 && id.starts_with("0000")));
    let bind = peer.collect("bind", 1).await.remove(0);
    assert_eq!(bind["command"], "bind_transceiver");
    assert_eq!(bind["system_type"], "HERALD");
    // node-smpp decoded what Herald encoded (GSM 7-bit with escapes, UCS2, UDH parts).
    let submits = peer.collect("submit", 4).await;
    assert_eq!(submits.len(), 4);
    assert!(submits
        .iter()
        .any(|s| s["text"] == texts[0] && s["data_coding"] == 0));
    assert!(submits
        .iter()
        .any(|s| s["text"] == texts[1] && s["data_coding"] == 8));
    let long: String = submits
        .iter()
        .filter(|s| !s["udh"].is_null())
        .map(|s| s["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(long, texts[2]);

    within("client shutdown", client.shutdown()).await;
    peer.wait_for("unbind").await;
    peer.stop().await;
}

#[tokio::test]
async fn herald_client_against_smpp34_smsc() {
    let python = python();
    // smpp34's Python server takes a fixed port: find a free one (a race is possible but rare).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut cmd = Command::new(&python);
    cmd.arg(script("smpp34_smsc.py")).arg(port.to_string());
    let mut peer = Peer::spawn(cmd);
    peer.wait_for("listening").await;

    let (client, mut events) = SmppClient::start(settings(format!("127.0.0.1:{port}"), &[]));
    let texts = ["Hello smpp34 {ok}", &"Long text for smpp34. ".repeat(9)];
    let accepted = submit_and_match(&client, &mut events, &texts).await;
    assert_eq!(accepted.len(), 3, "1 + 2 parts");
    let submits = peer.collect("submit", 3).await;
    assert_eq!(submits.len(), 3);
    // smpp34 hands over raw bytes: check the UDH and the GSM septets Herald put there.
    for (id, seg) in &accepted {
        let s = submits
            .iter()
            .find(|s| s["id"] == id.as_str())
            .unwrap_or_else(|| panic!("smpp34 did not see {id}"));
        let hex: String = seg
            .segment
            .payload
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(s["short_message"], hex);
        assert_eq!(s["esm_class"], if seg.segment.udhi { 0x40 } else { 0 });
    }
    within("client shutdown", client.shutdown()).await;
    peer.stop().await;
}
