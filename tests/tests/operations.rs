//! Operations whose answers must be honest, against real `herald` processes: a caller is the
//! client of its key (a bad key creates nothing), a status of a message to many recipients says how many
//! events it left out, `cluster status` says when the answering node cannot know a link's
//! connection, and draining refuses to leave the links to nobody unless forced.

use std::time::Duration;

use herald_api::v1::{
    DrainNodeRequest, LinkConnection, MessageState, SubmitRequest, SubmitResponse,
};
use herald_tests::{text, wait_for, Cluster, Options};
use secrecy::SecretString;

async fn submit_as(
    cluster: &Cluster,
    key: &SecretString,
    request: SubmitRequest,
) -> Result<SubmitResponse, tonic::Status> {
    let mut messaging = cluster.messaging_as(1, key).await.expect("node 1");
    messaging.submit(request).await.map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_names_itself_properly_and_a_long_status_says_what_it_left_out() {
    let cluster = Cluster::start(Options {
        nodes: 1,
        ..Options::default()
    });
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let endpoint = cluster.node(1).grpc.clone();
    let one = || SubmitRequest {
        recipients: vec!["13800138000".into()],
        text: "who is asking".into(),
        idempotency_key: "same-key".into(),
        ..Default::default()
    };

    // The caller is its key's client: the bootstrap admin and a sender each have their own
    // idempotency keys.
    let admin = submit_as(&cluster, cluster.admin_key(), one())
        .await
        .expect("the admin submits");
    // A key that is malformed or unknown is refused and writes nothing.
    let unknown = SecretString::from(format!("hrd_0123456789ab_{}", "A".repeat(43)));
    for (key, says) in [
        (SecretString::from("not-a-key".to_string()), "malformed"),
        (unknown, "unknown key id 0123456789ab"),
    ] {
        let refused = submit_as(&cluster, &key, one())
            .await
            .expect_err("a bad key is refused");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused}");
        assert!(refused.message().contains(says), "{refused}");
    }
    // Message ids are sequential, so the next one shows that the refused submissions created
    // nothing. (The commit index is no measure here: the link's own events may commit meanwhile.)
    let erp = cluster.create_client(1, "erp", "sender").await;
    let named = submit_as(&cluster, &erp, one())
        .await
        .expect("the sender submits");
    let next: u64 = admin.message_id.parse::<u64>().expect("an id") + 1;
    assert!(named.created, "{named:?}");
    assert_eq!(
        named.message_id,
        next.to_string(),
        "a refused caller created a message"
    );

    // The command line says so too, without echoing the key.
    let out = cluster.herald(&[
        "send",
        "--endpoint",
        &endpoint,
        "--api-key",
        "hrd_secretsecret",
        "--to",
        "13800138000",
        "--text",
        "hi",
    ]);
    assert!(!out.status.success(), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("Unauthenticated") && stderr.contains("the key is malformed"),
        "{stderr}"
    );
    assert!(!stderr.contains("secretsecret"), "{stderr}");

    // A message to 100 recipients: its submission, dispatch, 100 acceptances and 100 reports
    // are more events than a record keeps; the status says how many were left out.
    let many = SubmitRequest {
        recipients: (0..100).map(|i| format!("138001{i:05}")).collect(),
        text: "to many".into(),
        ..Default::default()
    };
    let id = submit_as(&cluster, &erp, many)
        .await
        .expect("a submission to 100 recipients")
        .message_id;
    let m = wait_for("the message delivered", Duration::from_secs(60), || async {
        cluster
            .get_message(1, &id)
            .await
            .filter(|m| m.state == MessageState::Delivered as i32)
    })
    .await;
    assert_eq!(m.timeline.len(), 64, "the record keeps 64 events");
    assert_eq!(m.timeline[0].kind, "MessageSubmitted");
    // At least: submitted, dispatched, 100 accepted, 100 reported.
    assert!(
        m.dropped_events >= 202 - 64,
        "{} events said to be left out",
        m.dropped_events
    );

    let out = cluster.herald(&["status", "--endpoint", &endpoint, &id]);
    assert!(out.status.success(), "{out:?}");
    let printed = text(&out.stdout);
    let lines: Vec<&str> = printed.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.contains("MessageSubmitted"))
        .expect("the submission line");
    assert_eq!(
        lines[first + 1].trim(),
        format!("… {} older events not kept", m.dropped_events),
        "{printed}"
    );
    let out = cluster.herald(&["status", "--endpoint", &endpoint, "--json", &id]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["dropped_events"], m.dropped_events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_says_what_it_knows_of_a_link_and_the_last_holder_is_not_drained() {
    let cluster = Cluster::start(Options::default());
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;

    // The holder sees its connection; the others say they cannot know, naming the holder.
    let holder = wait_for("the link connected", Duration::from_secs(30), || async {
        for node in cluster.running() {
            let status = cluster.status(node).await?;
            let link = status.links.first()?;
            if link.node == node && link.connection == LinkConnection::Connected as i32 {
                return Some(node);
            }
        }
        None
    })
    .await;
    for node in cluster.running() {
        let status = cluster.status(node).await.expect("status");
        let link = &status.links[0];
        assert_eq!(link.node, holder, "node {node}: {link:?}");
        if node == holder {
            assert!(link.connected, "{link:?}");
        } else {
            assert_eq!(
                link.connection,
                LinkConnection::UnknownHere as i32,
                "node {node}: {link:?}"
            );
            assert!(!link.connected);
        }
        let endpoint = &cluster.node(node).grpc;
        let out = cluster.herald(&["cluster", "status", "--endpoint", endpoint]);
        let printed = text(&out.stdout);
        let want = if node == holder {
            "connected".to_string()
        } else {
            format!("connection known only to node {holder}")
        };
        assert!(
            printed
                .lines()
                .any(|l| l.trim_start().starts_with("link cmpp-sim") && l.ends_with(&want)),
            "node {node}: {printed}"
        );
        let out = cluster.herald(&["cluster", "status", "--endpoint", endpoint, "--json"]);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let connected = &json["links"][0]["connected"];
        if node == holder {
            assert_eq!(connected, &serde_json::Value::Bool(true));
        } else {
            assert!(connected.is_null(), "node {node}: {json}");
        }
    }

    // Two of three drained: fine. The third would leave the link to nobody: refused, naming the
    // node and the rule, unless forced.
    let mut admin = cluster.admin(leader).await.expect("admin API");
    for node in [1, 2] {
        admin
            .drain_node(DrainNodeRequest {
                node,
                drained: true,
                force: false,
            })
            .await
            .unwrap_or_else(|e| panic!("draining node {node}: {e}"));
    }
    let refused = admin
        .drain_node(DrainNodeRequest {
            node: 3,
            drained: true,
            force: false,
        })
        .await
        .expect_err("draining the last node is refused");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused}");
    assert!(
        refused
            .message()
            .starts_with("node: draining node 3 would leave no undrained live member")
            && refused.message().contains("force"),
        "{refused}"
    );
    let endpoint = cluster.node(3).grpc.clone();
    let out = cluster.herald(&["cluster", "drain", "--endpoint", &endpoint, "3"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        text(&out.stderr).contains("FailedPrecondition: node: draining node 3"),
        "{out:?}"
    );
    let status = cluster.status(3).await.expect("status");
    assert_eq!(status.drained, [1, 2], "a refused drain changed nothing");
    let out = cluster.herald(&["cluster", "drain", "--endpoint", &endpoint, "--force", "3"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout).trim(), "drained nodes: [1, 2, 3]");
}
