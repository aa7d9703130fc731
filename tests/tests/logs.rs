//! Logs an operator's pipeline can read: a node started with `--log-format json` writes one JSON
//! object per stderr line, and the line about a message's dispatch names the message, the link
//! and the node as fields, not only in its text.

use std::time::Duration;

use herald_api::v1::SubmitRequest;
use herald_tests::{Cluster, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_log_is_one_object_per_line_and_a_dispatch_names_its_message_and_link() {
    let cluster = Cluster::start(Options {
        nodes: 1,
        node_args: vec!["--log-format".into(), "json".into()],
        // Each dispatch is a debug line (one per message would flood an info log).
        log_filter: "info,herald_node::links=debug,herald_node::service=debug,openraft=warn,h2=warn,tower=warn".into(),
        ..Default::default()
    });
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let request = SubmitRequest {
        recipients: vec!["13800138000".into()],
        text: "json log".into(),
        idempotency_key: "json-log-1".into(),
        ..Default::default()
    };
    let id = cluster
        .submit_until_acked(&request, 0, Duration::from_secs(30))
        .await
        .expect("acknowledged");
    cluster
        .wait_all_delivered(1, std::slice::from_ref(&id), Duration::from_secs(60))
        .await;

    let log = cluster.log_of(1);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(lines.len() >= 3, "{log}");
    for line in &lines {
        assert!(
            line["level"].is_string() && line["message"].is_string(),
            "a line without level or message: {line}"
        );
        assert!(line["timestamp"].is_string(), "{line}");
    }
    let numeric: u64 = id.parse().expect("a numeric message id");
    let dispatch = lines
        .iter()
        .find(|l| {
            l["message_id"].as_u64() == Some(numeric)
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("dispatched"))
        })
        .unwrap_or_else(|| panic!("no dispatch line for message {id}: {log}"));
    let submitted = lines
        .iter()
        .find(|l| l["message_id"].as_u64() == Some(numeric) && l["message"] == "submitted")
        .unwrap_or_else(|| panic!("no submission line for message {id}: {log}"));
    assert_eq!(submitted["node"], 1, "{submitted}");
    assert!(
        !log.contains("13800138000") && !log.contains("json log\""),
        "a log line names the recipient or the text: {log}"
    );
    assert_eq!(dispatch["link"], "cmpp-sim", "{dispatch}");
    assert_eq!(dispatch["node"], 1, "{dispatch}");
    assert_eq!(dispatch["level"], "DEBUG", "{dispatch}");
}
