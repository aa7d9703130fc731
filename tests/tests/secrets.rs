//! Secrets stay secret, against real processes: a cluster whose carrier links log in with a
//! distinctive password (the nodes logging at debug level, the simulator sending replies) runs
//! the suite's user-facing commands through the real CLI — send, status, trace, cancel, replies,
//! cluster status, policy show and set, drain — and then every command's stdout and stderr,
//! every node log, the simulator's log and its record are searched for the password. It may
//! appear only in the node config files, where the operator put it.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use herald_api::v1::MessageState;
use herald_tests::{herald_bin, wait_for, Cluster, Options, SimSpec};

/// The carrier password every link and the simulator use: long and unlike anything else the
/// cluster prints, so a match can only be a leak.
const CARRIER_SECRET: &str = "Pw7-carrier-QzX4vL9mR2";

async fn herald(args: &[&str]) -> Output {
    tokio::process::Command::new(herald_bin())
        .args(args)
        .env("HERALD_API_KEY", herald_tests::admin_key_text())
        .output()
        .await
        .expect("herald runs")
}

/// Runs one command, keeps what it printed for the search, and returns its stdout.
async fn run(outputs: &mut Vec<(String, String)>, args: &[&str]) -> String {
    let out = herald(args).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    outputs.push((
        format!("herald {} (stdout)", args.join(" ")),
        stdout.clone(),
    ));
    outputs.push((format!("herald {} (stderr)", args.join(" ")), stderr));
    stdout
}

/// Every file under `dir` but the node configs, as (name, text).
fn files_to_search(dir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            continue;
        }
        let name = path.display().to_string();
        if name.ends_with(".toml") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_default();
        found.push((name, String::from_utf8_lossy(&bytes).to_string()));
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_command_output_or_log_shows_a_configured_secret() {
    let cluster = Cluster::start(Options {
        nodes: 3,
        sims: vec![SimSpec {
            name: "cmpp".into(),
            args: vec!["--mo-every-ms".into(), "300".into()],
        }],
        carrier_secret: CARRIER_SECRET.into(),
        log_filter: "debug,openraft=info,h2=info,tower=info,hyper=info,hyper_util=info".into(),
        ..Options::default()
    });
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let endpoint = cluster.node(1).grpc.clone();
    let other = cluster.node(2).grpc.clone();
    let mut outputs = Vec::new();

    // A message delivered: the link logged in with the password.
    let sent = run(
        &mut outputs,
        &[
            "send",
            "--endpoint",
            &endpoint,
            "--to",
            "13800138000",
            "--text",
            "secrets stay secret",
            "--idempotency-key",
            "secrets-1",
        ],
    )
    .await;
    let id = sent.trim().to_string();
    assert!(!id.is_empty(), "herald send printed no id: {outputs:?}");
    wait_for("the message delivered", Duration::from_secs(60), || {
        let cluster = &cluster;
        let id = id.clone();
        async move {
            let message = cluster.get_message(1, &id).await?;
            (message.state == MessageState::Delivered as i32).then_some(())
        }
    })
    .await;
    // One scheduled far ahead, then canceled.
    let later = run(
        &mut outputs,
        &[
            "send",
            "--endpoint",
            &other,
            "--to",
            "13800138001",
            "--text",
            "never sent",
            "--at",
            "+3600",
        ],
    )
    .await;
    let later = later.trim().to_string();
    run(&mut outputs, &["cancel", "--endpoint", &endpoint, &later]).await;

    for node in [&endpoint, &other] {
        run(&mut outputs, &["status", "--endpoint", node, &id]).await;
        run(&mut outputs, &["status", "--endpoint", node, &id, "--json"]).await;
        run(&mut outputs, &["trace", "--endpoint", node, &id]).await;
        run(&mut outputs, &["trace", "--endpoint", node, &id, "--json"]).await;
        run(&mut outputs, &["cluster", "status", "--endpoint", node]).await;
        run(
            &mut outputs,
            &["cluster", "status", "--endpoint", node, "--json"],
        )
        .await;
        run(&mut outputs, &["policy", "show", "--endpoint", node]).await;
        run(
            &mut outputs,
            &["policy", "show", "--endpoint", node, "--json"],
        )
        .await;
        run(
            &mut outputs,
            &["replies", "--endpoint", node, "--unrouted", "--json"],
        )
        .await;
    }
    // A policy change and a drain and its undo: admin paths that log what they change.
    let policy = cluster.dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"routes": [{"name": "all", "links": ["cmpp-sim"]}]}"#,
    )
    .expect("policy file");
    run(
        &mut outputs,
        &[
            "policy",
            "set",
            "--endpoint",
            &endpoint,
            &policy.display().to_string(),
            "--expected-version",
            "0",
        ],
    )
    .await;
    run(
        &mut outputs,
        &["cluster", "drain", "--endpoint", &endpoint, "3"],
    )
    .await;
    run(
        &mut outputs,
        &["cluster", "drain", "--endpoint", &endpoint, "3", "--undo"],
    )
    .await;
    // Commands that fail: their errors must not quote a secret either.
    run(&mut outputs, &["status", "--endpoint", &endpoint, "999999"]).await;
    run(
        &mut outputs,
        &["policy", "set", "--endpoint", &endpoint, "/nonexistent"],
    )
    .await;
    // Replies arrived (the simulator's MOs): the links' receive paths ran too.
    wait_for("a reply recorded", Duration::from_secs(30), || {
        let cluster = &cluster;
        async move {
            cluster
                .sim_lines("cmpp")
                .iter()
                .any(|l| l["kind"] == "mo")
                .then_some(())
        }
    })
    .await;

    // The secret was configured where it belongs, and the links used it.
    let config = std::fs::read_to_string(&cluster.node(1).config).expect("node config");
    assert!(config.contains(CARRIER_SECRET), "the test set no secret");
    let mut searched = outputs;
    searched.extend(files_to_search(cluster.dir.path()));
    let logs: usize = searched
        .iter()
        .filter(|(name, _)| name.ends_with(".log"))
        .count();
    assert!(logs >= 4, "three node logs and a simulator log: {logs}");
    let leaks: Vec<&String> = searched
        .iter()
        .filter(|(_, text)| text.contains(CARRIER_SECRET))
        .map(|(name, _)| name)
        .collect();
    assert!(
        leaks.is_empty(),
        "the carrier password appears in: {leaks:?}"
    );
    let total: usize = searched.iter().map(|(_, text)| text.len()).sum();
    assert!(
        total > 10_000,
        "too little output to mean anything: {total} bytes"
    );
}
