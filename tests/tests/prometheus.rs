//! A real Prometheus (Debian's `prometheus`, started on loopback) scrapes a three-node cluster's
//! `/metrics` over TLS while `herald bench` sends a light load through the simulator; then every
//! expression of the Grafana dashboard (template variables substituted as Grafana would) and of
//! the alert rules must evaluate through Prometheus's HTTP API, and the core panels (submit
//! rate, delivered rate, queue depth, leader) must show data. So a dashboard that parses but
//! shows nothing on a real cluster fails here.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald_tests::{free_port, herald_bin, ops, wait_for, Cluster, Options, SimSpec};

/// The `cluster` target label the scrape config gives every node (the dashboard's `$cluster`).
const CLUSTER_LABEL: &str = "itest";

/// Numbers the simulator refuses.
const REFUSED_PREFIX: &str = "1340000";

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GET `path` from the Prometheus at `addr` (HTTP/1.0: one response, no chunking, then close),
/// returning the JSON body; None while it does not answer.
fn get_json(addr: &str, path: &str) -> Option<serde_json::Value> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response);
    let (_, body) = text.split_once("\r\n\r\n")?;
    serde_json::from_str(body).ok()
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Evaluates `expr` now: Ok(result vector) or Err(Prometheus's error).
fn query(addr: &str, expr: &str) -> Result<Vec<serde_json::Value>, String> {
    let answer = get_json(addr, &format!("/api/v1/query?query={}", encode(expr)))
        .ok_or_else(|| "no JSON answer".to_string())?;
    if answer["status"] != "success" {
        return Err(format!(
            "{}: {}",
            answer["errorType"].as_str().unwrap_or("?"),
            answer["error"].as_str().unwrap_or("?")
        ));
    }
    Ok(answer["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| vec![answer["data"]["result"].clone()]))
}

/// The value of a result sample (`[time, "value"]`).
fn value_of(sample: &serde_json::Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn start_prometheus(dir: &Path, cluster: &Cluster) -> (Killed, String) {
    let ca = cluster.tls.expect("a TLS cluster (the default)").ca_path();
    let targets: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("\"{}\"", n.http))
        .collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {rules}\n\
         scrape_configs:\n  - job_name: herald\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n\
         \x20   static_configs:\n      - targets: [{targets}]\n        labels:\n          cluster: {CLUSTER_LABEL}\n",
        rules = ops::rules_file().display(),
        ca = ca.display(),
        targets = targets.join(", "),
    );
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).expect("writing prometheus.yml");
    let addr = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
    let child = Command::new(ops::tool("prometheus"))
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting prometheus");
    (Killed(child), addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_expression_evaluates_against_a_real_prometheus() {
    // The simulator refuses one prefix (CMPP result 13), so the carrier-refusal panel has a
    // series: its `code` label exists only once a carrier has refused something.
    let cluster = Cluster::start(Options {
        sims: vec![SimSpec {
            name: "cmpp".into(),
            args: vec!["--reject-dest".into(), format!("{REFUSED_PREFIX}=13")],
        }],
        ..Options::default()
    });
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (_prometheus, prom) = start_prometheus(dir.path(), &cluster);
    let prometheus_log = dir.path().join("prometheus.log");

    // A light load on every node, through the simulator to DELIVERED, for the whole test.
    let mut bench = Command::new(herald_bin());
    bench.arg("bench");
    for n in &cluster.nodes {
        bench.args(["--endpoint", &n.grpc]);
    }
    bench
        .args([
            "--rate",
            "20",
            "--duration-secs",
            "120",
            "--messages",
            "2400",
        ])
        .arg("--no-wait")
        .envs(cluster.client_env())
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _bench = Killed(bench.spawn().expect("starting herald bench"));
    for n in 0..2 {
        let out = Command::new(herald_bin())
            .args(["send", "--endpoint", &cluster.node(1).grpc])
            .args([
                "--to",
                &format!("{REFUSED_PREFIX}{n:04}"),
                "--text",
                "refused",
            ])
            .envs(cluster.client_env())
            .current_dir(dir.path())
            .output()
            .expect("herald send");
        assert!(out.status.success(), "herald send: {out:?}");
    }

    let log_tail = || std::fs::read_to_string(&prometheus_log).unwrap_or_default();
    wait_for(
        "Prometheus to scrape all three nodes (targets up)",
        Duration::from_secs(60),
        || async {
            let targets = get_json(&prom, "/api/v1/targets")?;
            let active = targets["data"]["activeTargets"].as_array()?.clone();
            let up = active.iter().filter(|t| t["health"] == "up").count();
            (active.len() == 3 && up == 3).then_some(())
        },
    )
    .await;

    // The dashboard's variables: `cluster` from the target label.
    let values = get_json(
        &prom,
        &format!(
            "/api/v1/label/cluster/values?match[]={}",
            encode("herald_build_info")
        ),
    )
    .expect("label values");
    assert_eq!(
        values["data"],
        serde_json::json!([CLUSTER_LABEL]),
        "label_values(herald_build_info, cluster)"
    );

    let vars = ops::Variables {
        cluster: CLUSTER_LABEL.into(),
        link: ".*".into(),
        rate_interval: "10s".into(),
    };
    let panels = ops::dashboard_expressions().expect("dashboard");
    let expr_of = |title: &str| -> String {
        let e = panels
            .iter()
            .find(|e| e.origin.contains(&format!("{title:?}")))
            .unwrap_or_else(|| panic!("no dashboard panel {title:?}"));
        vars.substitute(&e.expr)
    };

    // The core panels show data once the load has run a few scrapes.
    let submitted = expr_of("Submitted messages /s by class");
    let outcomes = expr_of("Outcomes /s by terminal state");
    let waiting = expr_of("Waiting messages by class");
    let refused = expr_of("Carrier refusals by code");
    let leaders = vars.substitute(
        &panels
            .iter()
            .find(|e| e.origin.contains("\"Nodes with a leader\" query B"))
            .expect("the leaders query")
            .expr,
    );
    wait_for(
        "the core panels (submit rate, delivered rate, queue depth, leader) and the carrier \
         refusals to show data",
        Duration::from_secs(90),
        || async {
            let submit_rate: f64 = query(&prom, &submitted).ok()?.iter().map(value_of).sum();
            let delivered = query(&prom, &outcomes)
                .ok()?
                .iter()
                .filter(|s| s["metric"]["state"] == "delivered")
                .map(value_of)
                .sum::<f64>();
            let queue = query(&prom, &waiting).ok()?;
            let leader = query(&prom, &leaders).ok()?;
            let refusals = query(&prom, &refused).ok()?;
            let ok = submit_rate > 0.0
                && refusals.iter().any(|s| s["metric"]["code"].is_string())
                && delivered > 0.0
                && !queue.is_empty()
                && leader.len() == 1
                && value_of(&leader[0]) == 1.0;
            if !ok {
                eprintln!(
                    "waiting: submit rate {submit_rate}, delivered rate {delivered}, \
                     queue series {}, leaders {:?}, refusal series {}",
                    queue.len(),
                    leader.first().map(value_of),
                    refusals.len()
                );
            }
            ok.then_some(())
        },
    )
    .await;

    // Every panel query and every rule expression evaluates; say which came back empty (a
    // histogram of snapshot installs is legitimately empty on a young cluster).
    let mut errors = Vec::new();
    let mut empty = Vec::new();
    let mut all = panels.clone();
    all.extend(ops::dashboard_variable_selectors().expect("variables"));
    all.extend(ops::rule_expressions().expect("rules"));
    for e in &all {
        let expr = vars.substitute(&e.expr);
        match query(&prom, &expr) {
            Err(err) => errors.push(format!("{}: {expr}: {err}", e.origin)),
            Ok(result) if result.is_empty() => empty.push(e.origin.clone()),
            Ok(_) => {}
        }
    }
    eprintln!("{} expressions evaluated; empty now: {empty:#?}", all.len());
    assert!(
        errors.is_empty(),
        "expressions Prometheus refused:\n{}\nprometheus log:\n{}",
        errors.join("\n"),
        log_tail()
    );
    // Every family the dashboard's panels select exists in Prometheus (a panel may be empty
    // because nothing happened, not because its metric is missing).
    for e in &panels {
        for name in ops::metric_names(&vars.substitute(&e.expr)).expect("parses") {
            let series = query(
                &prom,
                &format!("count({{__name__=\"{name}\", cluster=\"{CLUSTER_LABEL}\"}})"),
            )
            .expect("count query");
            assert!(
                !series.is_empty(),
                "{}: Prometheus has no series {name} from the cluster",
                e.origin
            );
        }
    }
    // The rules loaded, and none fires on this healthy cluster but the ones a test cluster
    // legitimately trips (none expected).
    let rules = get_json(&prom, "/api/v1/rules").expect("rules");
    let loaded: usize = rules["data"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["rules"].as_array().map_or(0, |r| r.len()))
        .sum();
    assert_eq!(
        loaded,
        ops::rules().expect("rules").len(),
        "every rule loaded"
    );
    for group in rules["data"]["groups"].as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            assert_eq!(
                rule["health"], "ok",
                "rule {} evaluates with an error: {}",
                rule["name"], rule["lastError"]
            );
        }
    }
}
