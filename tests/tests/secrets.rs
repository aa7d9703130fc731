//! Secrets stay secret, against real processes: a TLS cluster whose carrier links log in with a
//! distinctive password (the nodes logging at debug level, the simulator sending replies) runs
//! the suite's user-facing commands through the real CLI — send, status, trace, cancel, replies,
//! cluster status, policy show and set, drain, client create/rotate-key/list/show/revoke-key,
//! audit, and calls with a revoked, a wrong and a malformed API key — and then every command's
//! stdout and stderr, every node log, the simulator's log and record, and the nodes' data
//! folders are searched for the carrier password, the secret part of every API key used and
//! every node's private key (whole and line by line). The password may appear only in the node
//! config files and the keys in `tls/`, where the operator put them; an API key only in the
//! stdout of the one command that issues it.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use herald_api::v1::MessageState;
use herald_tests::{herald_bin, wait_for, Cluster, Options, SimSpec};

/// The carrier password every link and the simulator use: long and unlike anything else the
/// cluster prints, so a match can only be a leak.
const CARRIER_SECRET: &str = "Pw7-carrier-QzX4vL9mR2";

async fn herald(args: &[&str], key: &str) -> Output {
    tokio::process::Command::new(herald_bin())
        .args(args)
        .env("HERALD_API_KEY", key)
        // Every test cluster of this process trusts the harness's one test CA.
        .env("HERALD_CA", herald_tests::test_ca().ca_path())
        .output()
        .await
        .expect("herald runs")
}

/// Runs one command as the bootstrap admin, keeps what it printed for the search, and returns
/// its stdout.
async fn run(outputs: &mut Vec<(String, String)>, args: &[&str]) -> String {
    run_as(outputs, &herald_tests::admin_key_text(), args).await
}

/// Runs one command with the API key `key`.
async fn run_as(outputs: &mut Vec<(String, String)>, key: &str, args: &[&str]) -> String {
    let out = herald(args, key).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    outputs.push((
        format!("herald {} (stdout)", args.join(" ")),
        stdout.clone(),
    ));
    outputs.push((format!("herald {} (stderr)", args.join(" ")), stderr));
    stdout
}

/// A command that prints a new API key once, by design: its stdout is the key alone (and is
/// left out of the search); its stderr is searched like every other output.
async fn new_key(outputs: &mut Vec<(String, String)>, args: &[&str]) -> String {
    let out = herald(args, &herald_tests::admin_key_text()).await;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success() && stdout.starts_with("hrd_") && !stdout.contains(char::is_whitespace),
        "herald {} printed no key alone: {stdout:?} {stderr:?}",
        args.join(" ")
    );
    outputs.push((format!("herald {} (stderr)", args.join(" ")), stderr));
    stdout
}

/// The secret part of an API key (`hrd_<12 hex id>_<secret>`): what must never show. The key id
/// before it is public.
fn secret_of(key: &str) -> String {
    key.get(17..)
        .unwrap_or_else(|| panic!("not an API key: {key:?}"))
        .to_string()
}

/// Every file under `dir`, recursively, as (name, bytes): logs, the simulator's record, and the
/// nodes' data (RocksDB's log, tables and Raft log, uncompressed) — but not the node configs
/// and the `tls/` folder, where the operator put the secrets.
fn files_to_search(dir: &Path, found: &mut Vec<(String, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path.display().to_string();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "tls") {
                files_to_search(&path, found);
            }
            continue;
        }
        if name.ends_with(".toml") {
            continue;
        }
        found.push((name, std::fs::read(&path).unwrap_or_default()));
    }
}

/// The base64 lines of a PEM private key: the whole body, and each line alone (a log that
/// printed part of the key would show one).
fn pem_secrets(what: &str, pem: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    assert!(!lines.is_empty(), "{what} has no PEM body");
    let mut found = vec![(what.to_string(), lines.concat())];
    for (i, line) in lines.iter().enumerate() {
        found.push((format!("{what}, line {}", i + 1), line.to_string()));
    }
    found
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
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
    // Client systems and keys: created, listed, shown, rotated, revoked, used; the audit trail.
    let sender = new_key(
        &mut outputs,
        &[
            "client",
            "create",
            "shop",
            "--role",
            "sender",
            "--endpoint",
            &endpoint,
        ],
    )
    .await;
    let rotated = new_key(
        &mut outputs,
        &["client", "rotate-key", "shop", "--endpoint", &endpoint],
    )
    .await;
    let sent_by_shop = run_as(
        &mut outputs,
        &sender,
        &[
            "send",
            "--endpoint",
            &other,
            "--to",
            "13800138002",
            "--text",
            "from the shop",
        ],
    )
    .await;
    let shop_id = sent_by_shop.trim().to_string();
    assert!(!shop_id.is_empty(), "the shop's key sends: {outputs:?}");
    run_as(
        &mut outputs,
        &rotated,
        &["status", "--endpoint", &other, &shop_id],
    )
    .await;
    run(&mut outputs, &["client", "list", "--endpoint", &endpoint]).await;
    run(
        &mut outputs,
        &["client", "list", "--endpoint", &endpoint, "--json"],
    )
    .await;
    run(
        &mut outputs,
        &["client", "show", "shop", "--endpoint", &other],
    )
    .await;
    let sender_id = &sender[4..16];
    run(
        &mut outputs,
        &[
            "client",
            "revoke-key",
            "shop",
            sender_id,
            "--endpoint",
            &endpoint,
        ],
    )
    .await;
    // A revoked key, a made-up secret under a real key id, and a key of no format at all:
    // refused, and the refusals (logged, counted) must not quote what was presented.
    let wrong = format!("hrd_{sender_id}_WrongSecret-Kq83nZt5VwXe0LmP4yR7uA2bC9dF");
    let garbage = "not-a-key-Hv5Tq0Wm8Zr3Ls6Yp1Xn";
    for key in [sender.as_str(), wrong.as_str(), garbage] {
        run_as(
            &mut outputs,
            key,
            &["status", "--endpoint", &endpoint, &shop_id],
        )
        .await;
        let refusal = &outputs[outputs.len() - 1].1;
        assert!(
            refusal.to_lowercase().contains("unauthenticated"),
            "a bad key is refused: {refusal}"
        );
        run_as(
            &mut outputs,
            key,
            &["cluster", "status", "--endpoint", &other],
        )
        .await;
    }
    run(&mut outputs, &["audit", "--endpoint", &endpoint]).await;
    run(&mut outputs, &["audit", "--endpoint", &other, "--json"]).await;

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
    let mut searched: Vec<(String, Vec<u8>)> = outputs
        .into_iter()
        .map(|(name, text)| (name, text.into_bytes()))
        .collect();
    files_to_search(cluster.dir.path(), &mut searched);
    let logs: usize = searched
        .iter()
        .filter(|(name, _)| name.ends_with(".log"))
        .count();
    assert!(logs >= 4, "three node logs and a simulator log: {logs}");
    let mut secrets: Vec<(String, String)> = [
        ("the carrier password", CARRIER_SECRET.to_string()),
        (
            "the bootstrap admin key",
            secret_of(&herald_tests::admin_key_text()),
        ),
        ("the sender's first key", secret_of(&sender)),
        ("the sender's rotated key", secret_of(&rotated)),
        ("a wrong key", secret_of(&wrong)),
        ("a malformed key", garbage.to_string()),
    ]
    .into_iter()
    .map(|(what, secret)| (what.to_string(), secret))
    .collect();
    // Every node's private key (its TLS key for both ports and towards its peers).
    for node in &cluster.nodes {
        let key = cluster
            .dir
            .path()
            .join("tls")
            .join(format!("node{}.key", node.id));
        let pem = std::fs::read_to_string(&key)
            .unwrap_or_else(|e| panic!("node {}'s key {}: {e}", node.id, key.display()));
        secrets.extend(pem_secrets(
            &format!("node {}'s private key", node.id),
            &pem,
        ));
    }
    for (what, secret) in &secrets {
        let leaks: Vec<&String> = searched
            .iter()
            .filter(|(_, text)| contains(text, secret.as_bytes()))
            .map(|(name, _)| name)
            .collect();
        assert!(leaks.is_empty(), "{what} appears in: {leaks:?}");
    }
    let total: usize = searched.iter().map(|(_, text)| text.len()).sum();
    assert!(
        total > 10_000,
        "too little output to mean anything: {total} bytes"
    );
}
