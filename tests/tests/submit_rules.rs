//! Submission rules over gRPC against a real cluster — an idempotency key reused for other
//! content is refused and creates nothing, duplicate recipients, an over-long validity and a
//! past send time are refused naming the field — and what an operator finds on disk: node
//! logs in plain text with repeated warnings counted, and a read-only `herald debug` that
//! creates nothing.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use herald_api::v1::{SubmitBatchRequest, SubmitRequest};
use herald_tests::{herald_bin, wait_for, Cluster, Options};

fn request(key: &str, recipients: &[&str], text: &str) -> SubmitRequest {
    SubmitRequest {
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        text: text.into(),
        idempotency_key: key.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_reused_for_other_content_is_refused_and_bad_submissions_name_the_field() {
    let cluster = Cluster::start(Options::default());
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let follower = cluster
        .running()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");

    // The first submission creates the message; the same request again (recipients in another
    // order, on another node) is a retry of it.
    let first = request(
        "order-17",
        &["13800138000", "13900139000"],
        "Your order shipped",
    );
    let mut on_leader = cluster.messaging(leader).await.expect("leader");
    let created = on_leader
        .submit(first.clone())
        .await
        .expect("submit")
        .into_inner();
    assert!(created.created);
    let mut on_follower = cluster.messaging(follower).await.expect("follower");
    let retry = on_follower
        .submit(request(
            "order-17",
            &["+8613900139000", "13800138000"],
            "Your order shipped",
        ))
        .await
        .expect("a retry is answered")
        .into_inner();
    assert_eq!(retry.message_id, created.message_id);
    assert!(!retry.created, "a retry creates nothing");

    // Other text, or other recipients, under the same key: refused, naming the key, the
    // earlier message and what differs — forwarded from a follower as from the leader.
    for (client, other, differs) in [
        (
            &mut on_follower,
            request(
                "order-17",
                &["13800138000", "13900139000"],
                "Your order was canceled",
            ),
            "text",
        ),
        (
            &mut on_leader,
            request("order-17", &["13800138000"], "Your order shipped"),
            "recipients",
        ),
    ] {
        let status = client
            .submit(other)
            .await
            .expect_err("a key reused for other content");
        assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status}");
        let expected = format!(
            "idempotency_key: \"order-17\" already belongs to message {}, whose {differs} differs",
            created.message_id
        );
        assert!(status.message().starts_with(&expected), "{status}");
    }
    // In a batch, per item: the retry answers the message, the conflict is refused.
    let batch = on_follower
        .submit_batch(SubmitBatchRequest {
            messages: vec![
                first.clone(),
                request("order-17", &["13800138000"], "Something else"),
            ],
        })
        .await
        .expect("batch")
        .into_inner()
        .results;
    assert_eq!(batch[0].message_id, created.message_id);
    assert!(!batch[0].created);
    assert_eq!(batch[1].message_id, "");
    assert_eq!(batch[1].error_code, tonic::Code::FailedPrecondition as i32);
    assert!(
        batch[1]
            .error
            .starts_with("messages[1].idempotency_key: \"order-17\" already belongs to message"),
        "{}",
        batch[1].error
    );
    // Nothing was created: the next message takes the next id, and the first is unchanged.
    let next = on_leader
        .submit(request("order-18", &["13800138000"], "Next"))
        .await
        .expect("submit")
        .into_inner();
    let first_id: u64 = created.message_id.parse().expect("numeric id");
    assert_eq!(next.message_id, (first_id + 1).to_string());
    // A follower learns of a commit with the leader's next append: read it once it has.
    let stored = wait_for(
        "the follower to show the first message",
        Duration::from_secs(10),
        || cluster.get_message(follower, &created.message_id),
    )
    .await;
    assert_eq!(stored.text, "Your order shipped");
    assert_eq!(stored.recipients, ["13800138000", "13900139000"]);

    // Bad submissions are refused naming the field, the value and the rule.
    let now_ms = chrono::Utc::now().timestamp_millis() as u64;
    let cases = [
        (
            request("", &["13800138000", "+8613800138000"], "twice"),
            "recipients[1]: \"+8613800138000\" is the same number as recipients[0]",
        ),
        (
            SubmitRequest {
                validity_seconds: u32::MAX,
                ..request("", &["13800138000"], "forever")
            },
            "validity_seconds: 4294967295 is above the cap of 31622400 seconds",
        ),
        (
            SubmitRequest {
                send_at_ms: now_ms - 3_600_000,
                ..request("", &["13800138000"], "an hour late")
            },
            "send_at_ms: ",
        ),
    ];
    for (bad, expected) in cases {
        let status = on_follower.submit(bad).await.expect_err("bad input");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");
        assert!(status.message().starts_with(expected), "{status}");
    }
    let late = on_follower
        .submit(SubmitRequest {
            send_at_ms: now_ms - 3_600_000,
            ..request("", &["13800138000"], "late")
        })
        .await
        .expect_err("a past send time");
    assert!(
        late.message().contains("at most 60 s earlier than now"),
        "{late}"
    );

    // The node logs are plain text: written to a file, no terminal colour codes.
    for id in cluster.running() {
        let log = cluster.log_of(id);
        assert!(log.contains(" INFO "), "node {id} logged nothing:\n{log}");
        assert!(
            !log.contains('\u{1b}'),
            "node {id}'s log has escape codes:\n{log}"
        );
    }
}

/// The lines of `log` that openraft writes for each failed heartbeat to a down peer.
fn heartbeat_failures(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("failed to send a heartbeat"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_peer_is_counted_not_logged_six_times_a_second_and_debug_reads_without_writing() {
    let cluster = Cluster::start(Options {
        nodes: 3,
        ..Options::default()
    });
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let down = cluster
        .running()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    cluster.kill_node(down);

    // Ten seconds after the first warning about the down peer, the leader writes how many it
    // left out, instead of about a hundred lines (heartbeats every 150 ms, and replication).
    wait_for(
        "the leader to count the warnings it left out",
        Duration::from_secs(40),
        || async {
            let log = cluster.log_of(leader);
            log.lines()
                .any(|l| l.contains("more like this") && l.contains("not written"))
                .then_some(())
        },
    )
    .await;
    let log = cluster.log_of(leader);
    let written = heartbeat_failures(&log);
    assert!(
        (1..=3).contains(&written),
        "{written} heartbeat warnings written:\n{log}"
    );

    // `herald debug log-hashes` on the stopped node's data reads it and writes nothing.
    let data = cluster.dir.path().join(format!("node{down}"));
    let db = data.join("db");
    let before = listing(&db);
    let out = Command::new(herald_bin())
        .args(["debug", "log-hashes", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run herald debug");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(digest.is_object(), "{digest}");
    assert_eq!(listing(&db), before, "the database directory is unchanged");
}

fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            let e = e.expect("entry");
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            (e.file_name().to_string_lossy().into_owned(), len)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn debug_log_hashes_refuses_a_missing_or_empty_directory_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nonexistent");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    for (data_dir, says) in [
        (&missing, "no such directory"),
        (&empty, "not a node's data directory"),
    ] {
        let out = Command::new(herald_bin())
            .args(["debug", "log-hashes", "--data-dir"])
            .arg(data_dir)
            .output()
            .expect("run herald debug");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains(&format!("--data-dir {}", data_dir.display())) && stderr.contains(says),
            "{stderr}"
        );
    }
    assert!(!missing.exists(), "the missing directory was created");
    assert_eq!(
        std::fs::read_dir(&empty).expect("read dir").count(),
        0,
        "something was created in the empty directory"
    );
}
