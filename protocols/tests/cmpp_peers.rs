//! Herald's CMPP simulator against an independent CMPP 2.0 client: PyPI `pycmpp`, driven by
//! `tests/peers/pycmpp_client.py` from the virtualenv `scripts/install-peers` builds in `.peers/`.
//! The peer connects, submits (one short and one long, split message), sends ACTIVE_TEST and
//! TERMINATE; the test checks the peer's own verdict and what the simulator recorded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_protocols::sim::cmpp::{run_on, SimConfig, SimFaults};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::timeout;

const ACCOUNT: &str = "901234";
const SECRET: &str = "s3cret";
const DEST: &str = "13800138000";
const DEADLINE: Duration = Duration::from_secs(60);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("protocols/ sits in the repository root")
        .to_path_buf()
}

#[tokio::test]
async fn pycmpp_connects_submits_keeps_alive_and_terminates() {
    let root = repo_root();
    let python = root.join(".peers/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-peers",
        python.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let record = dir.path().join("sim.jsonl");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let config = SimConfig {
        listen: addr.to_string(),
        accounts: vec![(ACCOUNT.into(), SECRET.into())],
        report_delay: Duration::from_millis(50),
        delivered_ratio: 1.0,
        record: Some(record.clone()),
        gateway_id: 7,
        version: None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let sim = tokio::spawn(run_on(listener, config, SimFaults::default(), async move {
        let _ = stopped.await;
    }));

    let run = tokio::process::Command::new(&python)
        .arg(root.join("tests/peers/pycmpp_client.py"))
        .args([&addr.to_string(), ACCOUNT, SECRET, DEST])
        .current_dir(&root)
        .kill_on_drop(true)
        .output();
    let output = timeout(DEADLINE, run)
        .await
        .expect("pycmpp finishes in time")
        .expect("pycmpp runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("pycmpp said:\n{stdout}");
    assert!(
        output.status.success(),
        "pycmpp failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let steps: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let step = |name: &str| -> Vec<&serde_json::Value> {
        steps.iter().filter(|s| s["step"] == name).collect()
    };
    let connect = step("connect");
    assert_eq!(connect.len(), 1, "{stdout}");
    assert_eq!(connect[0]["status"], 0);
    // Answered in CMPP 2.0 (pycmpp parses a 1-byte Status and asks for version 0x21).
    assert_eq!(connect[0]["version"], 0x20);
    let short = step("submit");
    assert_eq!(short.len(), 1, "{stdout}");
    let long = step("submit_long");
    assert!(long.len() >= 2, "{stdout}");
    let mut msg_ids = Vec::new();
    for s in short.iter().chain(&long) {
        assert_eq!(s["result"], 0, "{s}");
        msg_ids.push(s["msg_id"].as_str().expect("msg_id").to_string());
    }
    assert_eq!(step("active_test").len(), 1, "{stdout}");
    assert_eq!(step("terminate").len(), 1, "{stdout}");
    assert_eq!(step("done").len(), 1, "{stdout}");

    let _ = stop.send(());
    let ended = timeout(DEADLINE, sim).await;
    assert!(matches!(ended, Ok(Ok(Ok(())))), "simulator: {ended:?}");

    // The simulator saw a 2.0 login and decoded every submit pycmpp built, UDH and UCS2 included.
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&record)
        .expect("record")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let logins: Vec<_> = records.iter().filter(|r| r["kind"] == "login").collect();
    assert_eq!(logins.len(), 1);
    assert_eq!(logins[0]["version"], "2.0");
    assert_eq!(logins[0]["version_byte"], 0x21);
    let submits: Vec<_> = records.iter().filter(|r| r["kind"] == "submit").collect();
    assert_eq!(submits.len(), 1 + long.len());
    for s in &submits {
        assert_eq!(s["dest"], DEST);
        assert_eq!(s["account"], ACCOUNT);
        assert!(msg_ids.contains(&s["msg_id"].as_str().unwrap_or_default().to_string()));
    }
    assert_eq!(submits[0]["text"], "hello from pycmpp 你好");
    let parts: String = submits[1..]
        .iter()
        .filter_map(|s| s["text"].as_str())
        .collect();
    assert_eq!(parts, "pycmpp 长短信测试，".repeat(8));
    assert!(submits[1..]
        .iter()
        .all(|s| s["pk_total"] == long.len() as u64));
}
