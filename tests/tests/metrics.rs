//! Metrics and health on a real three-node cluster: every node serves `/metrics` over TLS, the
//! families served are exactly the ones OPERATIONS.md documents, the counters move when messages
//! go through the simulator to DELIVERED, the Raft gauges agree on one leader, no label value
//! looks like a phone number or a message id, `promtool check metrics` is clean, `/livez` is 200,
//! and `/readyz` is 200 on a healthy node and 503 with a reason on a node that lost its majority.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use herald_api::v1::SubmitRequest;
use herald_tests::{wait_for, Cluster, Options, SimSpec};

/// Destinations the simulator refuses, with CMPP result 13: one refusal moves
/// `herald_carrier_refusals_total`, whose `code` series exist only once a code was seen.
const REFUSED: &str = "1340000";

/// The families OPERATIONS.md's "Metrics" table lists (first column), `process_*` left out.
fn documented_families() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../OPERATIONS.md");
    let text = std::fs::read_to_string(path).expect("reading OPERATIONS.md");
    let section = text
        .split("\n## Metrics")
        .nth(1)
        .expect("OPERATIONS.md has a \"Metrics\" section");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|name| name.starts_with("herald_"))
        .map(str::to_string)
        .collect()
}

/// One sample of the text format: family-less name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples and the `# TYPE` families of a scrape (the text format 0.0.4, as the node writes
/// it: label values without escaped quotes, which no Herald label contains).
fn parse(text: &str) -> (Vec<Sample>, BTreeSet<String>) {
    let mut samples = Vec::new();
    let mut families = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            families.extend(rest.split_whitespace().next().map(str::to_string));
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample line has a value");
        let value: f64 = value.parse().expect("a sample's value is a number");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').expect("labels end with }");
                let labels = inner
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once("=\"").expect("label k=\"v\"");
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    (samples, families)
}

/// The sum of `name`'s samples whose labels include every pair of `with`.
fn total(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

async fn scrape(cluster: &Cluster, id: u64) -> String {
    let reply = cluster
        .http_get(id, "/metrics")
        .await
        .unwrap_or_else(|e| panic!("node {id}: GET /metrics: {e}"));
    assert_eq!(reply.status, 200, "node {id}: /metrics: {}", reply.body);
    reply.body
}

/// `promtool check metrics` on `text`: clean, or the test fails with promtool's findings.
fn promtool_check(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!(
            "promtool is not installed ({e}): scripts/install-deps installs the Debian package \
             `prometheus`, which holds it"
        ),
    };
    child
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(text.as_bytes())
        .expect("writing to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && findings.trim().is_empty(),
        "promtool check metrics: {findings}"
    );
}

/// A label value that could be a phone number or a message id: a long run of digits.
/// The gRPC health service's status of `service` on node `id` (None: no answer).
async fn grpc_health(cluster: &Cluster, id: u64, service: &str) -> Option<i32> {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let channel = cluster.channel(&cluster.node(id).grpc).await?;
    let mut client = HealthClient::new(channel);
    let reply = client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .ok()?;
    Some(reply.into_inner().status)
}

fn looks_like_a_number_or_id(value: &str) -> bool {
    let digits = value.chars().filter(|c| c.is_ascii_digit()).count();
    digits >= 7 && digits * 2 > value.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_node_serves_the_documented_metrics_and_health() {
    let cluster = Cluster::start(Options {
        sims: vec![SimSpec {
            name: "cmpp".into(),
            args: vec!["--reject-dest".into(), format!("{REFUSED}=13")],
        }],
        ..Options::default()
    });
    cluster.wait_for_leader(Duration::from_secs(30)).await;

    // A few messages to DELIVERED through the simulator.
    let mut ids = Vec::new();
    for i in 0..5 {
        let req = SubmitRequest {
            recipients: vec![format!("1380013{i:04}")],
            text: format!("metrics {i}"),
            ..Default::default()
        };
        let id = cluster
            .submit_until_acked(&req, i, Duration::from_secs(30))
            .await
            .expect("a submission is acknowledged");
        ids.push(id);
    }
    cluster
        .wait_all_delivered(1, &ids, Duration::from_secs(60))
        .await;
    let refused = SubmitRequest {
        recipients: vec![format!("{REFUSED}1234")],
        text: "refused by the carrier".into(),
        ..Default::default()
    };
    cluster
        .submit_until_acked(&refused, 0, Duration::from_secs(30))
        .await
        .expect("the refused message is acknowledged");

    let documented = documented_families();
    assert!(
        documented.len() > 40,
        "OPERATIONS.md documents {} families",
        documented.len()
    );
    // Each node has applied every delivery (counters on apply move on all of them).
    let mut scrapes = BTreeMap::new();
    for id in 1..=3u64 {
        let text = wait_for(
            &format!("node {id} counting 5 delivered messages"),
            Duration::from_secs(30),
            || async {
                let text = scrape(&cluster, id).await;
                let (samples, _) = parse(&text);
                let delivered = total(
                    &samples,
                    "herald_messages_terminal_total",
                    &[("state", "delivered")],
                );
                let refusals = total(&samples, "herald_carrier_refusals_total", &[]);
                // The refusal is counted by the node holding the link, the others see its
                // outcome only: wait on the holder for the counter.
                let holds = total(&samples, "herald_link_held", &[]) > 0.0;
                (delivered >= 5.0 && (!holds || refusals >= 1.0)).then_some(text)
            },
        )
        .await;
        scrapes.insert(id, text);
    }

    let mut leaders = 0;
    let mut sums: BTreeMap<&str, f64> = BTreeMap::new();
    for (id, text) in &scrapes {
        let (samples, families) = parse(text);
        let served: BTreeSet<String> = families
            .iter()
            .filter(|f| f.starts_with("herald_"))
            .cloned()
            .collect();
        let is_leader = total(&samples, "herald_raft_is_leader", &[]) == 1.0;
        let holds_link = total(&samples, "herald_link_held", &[]) > 0.0;
        let undocumented: Vec<_> = served.difference(&documented).collect();
        // Two families have series only where they apply: follower lag on the leader, carrier
        // refusals (by code) on the node whose link was refused.
        let missing: Vec<_> = documented
            .difference(&served)
            .filter(|f| is_leader || f.as_str() != "herald_raft_follower_lag_entries")
            .filter(|f| holds_link || f.as_str() != "herald_carrier_refusals_total")
            .collect();
        assert!(
            undocumented.is_empty(),
            "node {id} serves families OPERATIONS.md does not document: {undocumented:?}"
        );
        assert!(
            missing.is_empty(),
            "node {id} does not serve documented families: {missing:?}"
        );
        assert!(
            families.iter().any(|f| f.starts_with("process_")),
            "node {id}: no process_* family"
        );
        assert_eq!(
            total(&samples, "herald_raft_has_leader", &[]),
            1.0,
            "node {id} knows a leader"
        );
        leaders += total(&samples, "herald_raft_is_leader", &[]) as u32;
        for s in &samples {
            for (k, v) in &s.labels {
                // The build's git commit is hex digits by nature (and may be all digits).
                if s.name == "herald_build_info" && k == "commit" {
                    continue;
                }
                assert!(
                    !looks_like_a_number_or_id(v),
                    "node {id}: {}{{{k}=\"{v}\"}} looks like a phone number or message id",
                    s.name
                );
            }
        }
        assert_eq!(
            total(&samples, "herald_build_info", &[]),
            1.0,
            "node {id}: build info"
        );
        assert!(
            total(
                &samples,
                "herald_tls_certificate_expiry_timestamp_seconds",
                &[("port", "public")]
            ) > chrono::Utc::now().timestamp() as f64,
            "node {id}: the public certificate's expiry is in the future"
        );
        assert!(total(&samples, "herald_disk_total_bytes", &[]) > 0.0);
        for name in [
            "herald_messages_submitted_total",
            "herald_link_submits_total",
            "herald_delivery_reports_total",
            "herald_submit_duration_seconds_count",
            "herald_carrier_refusals_total",
        ] {
            *sums.entry(name).or_default() += total(&samples, name, &[]);
        }
        promtool_check(text);
    }
    assert_eq!(leaders, 1, "exactly one node says it is the leader");
    // Intake, link submits and delivery reports happen on one node each: summed over nodes.
    for (name, sum) in &sums {
        let least = if name.contains("refusals") { 1.0 } else { 5.0 };
        assert!(
            *sum >= least,
            "{name} summed over the nodes is {sum}, expected at least {least}"
        );
    }

    use tonic_health::pb::health_check_response::ServingStatus;
    let serving = Some(ServingStatus::Serving as i32);
    for id in 1..=3 {
        assert_eq!(
            grpc_health(&cluster, id, "").await,
            serving,
            "node {id} gRPC liveness"
        );
        wait_for(
            &format!("node {id}: gRPC readiness SERVING"),
            Duration::from_secs(10),
            || async {
                (grpc_health(&cluster, id, "herald.v1.Messaging").await == serving).then_some(())
            },
        )
        .await;
        let live = cluster.http_get(id, "/livez").await.expect("GET /livez");
        assert_eq!(live.status, 200, "node {id} /livez: {}", live.body);
        let ready = cluster.http_get(id, "/readyz").await.expect("GET /readyz");
        assert_eq!(ready.status, 200, "node {id} /readyz: {}", ready.body);
    }

    // A node of a cluster that lost its majority is live but not ready.
    cluster.kill_node(2);
    cluster.kill_node(3);
    let reason = wait_for(
        "node 1 not ready without a majority",
        Duration::from_secs(30),
        || async {
            let r = cluster.http_get(1, "/readyz").await.ok()?;
            (r.status == 503).then_some(r.body)
        },
    )
    .await;
    assert!(reason.contains("no leader"), "the 503 says why: {reason:?}");
    let live = cluster.http_get(1, "/livez").await.expect("GET /livez");
    assert_eq!(live.status, 200, "/livez does not depend on quorum");
    let not_serving = Some(ServingStatus::NotServing as i32);
    wait_for(
        "node 1: gRPC readiness NOT_SERVING without a majority",
        Duration::from_secs(10),
        || async {
            (grpc_health(&cluster, 1, "herald.v1.Messaging").await == not_serving).then_some(())
        },
    )
    .await;
    assert_eq!(
        grpc_health(&cluster, 1, "").await,
        serving,
        "gRPC liveness does not depend on quorum"
    );
    let (samples, _) = parse(&scrape(&cluster, 1).await);
    assert_eq!(total(&samples, "herald_raft_has_leader", &[]), 0.0);
}
