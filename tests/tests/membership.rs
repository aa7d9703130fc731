//! Scaling membership and safe bootstrap, with real processes: a node that lost its data
//! directory restarts without `--bootstrap`, forms no cluster of its own and does not vote until
//! `herald cluster add-node` has re-added it; nodes added under load catch up and vote; a removed
//! node's links move; no acknowledged message is lost on the way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_api::v1::{ListAuditRequest, SubmitRequest};
use herald_tests::{text, wait_for, Cluster, Options};

fn request(tag: &str, i: usize) -> SubmitRequest {
    SubmitRequest {
        recipients: vec![format!("1390013{:04}", i % 10_000)],
        text: format!("{tag} {i}"),
        idempotency_key: format!("{tag}-{i}"),
        ..Default::default()
    }
}

fn add_node(cluster: &Cluster, endpoint_node: u64, id: u64) -> std::process::Output {
    let spec = cluster.node(id);
    let endpoint = cluster.node(endpoint_node).grpc.clone();
    cluster.herald(&[
        "cluster",
        "add-node",
        "--endpoint",
        &endpoint,
        &id.to_string(),
        "--raft",
        &spec.raft,
        "--grpc",
        &spec.grpc,
        "--timeout-secs",
        "120",
    ])
}

async fn audit_actions(cluster: &Cluster, node: u64) -> Vec<(String, String)> {
    let mut admin = cluster.admin(node).await.expect("an admin client");
    admin
        .list_audit(ListAuditRequest {
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("the audit trail")
        .into_inner()
        .entries
        .into_iter()
        .map(|e| (e.action, e.detail))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_data_dir_was_wiped_does_not_vote_until_added_again() {
    let cluster = Cluster::start(Options::default());
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let (wiped, other) = (followers[0], followers[1]);
    let mut acked = Vec::new();
    for i in 0..20 {
        let id = cluster
            .submit_until_acked(&request("before", i), i, Duration::from_secs(30))
            .await
            .expect("acknowledged");
        acked.push(id);
    }

    // The follower loses its data directory and restarts as the same node, without bootstrap.
    cluster.kill_node(wiped);
    std::fs::remove_dir_all(cluster.dir.path().join(format!("node{wiped}")))
        .expect("wiping the data dir");
    cluster.start_node(wiped);
    let log = wait_for(
        "the wiped node to say it waits to be added",
        Duration::from_secs(30),
        || async {
            let log = cluster.log_of(wiped);
            log.contains("waiting to be added").then_some(log)
        },
    )
    .await;
    assert!(
        log.contains(&format!("herald cluster add-node {wiped}")),
        "{log}"
    );
    let lower = log.to_lowercase();
    assert!(
        !lower.contains("delete") && !lower.contains("rm -rf") && !lower.contains("remove the"),
        "a log line advises deleting data: {log}"
    );
    // It formed no cluster of its own: it never leads, and the others keep serving.
    for i in 20..30 {
        let id = cluster
            .submit_until_acked(&request("before", i), i, Duration::from_secs(30))
            .await
            .expect("acknowledged while the wiped node is back");
        acked.push(id);
    }
    let s = cluster.status(leader).await.expect("leader status");
    assert_eq!(s.leader, leader, "{s:?}");
    assert_eq!(s.members.len(), 3, "{s:?}");

    // It refuses to vote: with the leader gone, the other follower cannot be elected with its
    // vote, so nobody leads for several election timeouts (at most 2 s each here).
    cluster.kill_node(leader);
    let watch_until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < watch_until {
        for id in [other, wiped] {
            if let Some(s) = cluster.status(id).await {
                assert_ne!(
                    s.state, "Leader",
                    "node {id} became leader with the vote of a node that forgot its log: {s:?}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The leader comes back; add-node demotes the wiped node to a learner, catches it up and
    // makes it a voter again. Called on a follower: the CLI finds the leader.
    cluster.start_node(leader);
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let endpoint = if leader == other { wiped } else { other };
    let out = add_node(&cluster, endpoint, wiped);
    assert!(
        out.status.success(),
        "add-node: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains(&format!("node {wiped} is a voter")),
        "{}",
        text(&out.stdout)
    );
    let s = cluster.status(leader).await.expect("status");
    let member = s
        .members
        .iter()
        .find(|m| m.id == wiped)
        .expect("still a member");
    assert!(member.voter, "{s:?}");
    wait_for(
        "the re-added node to log its admission",
        Duration::from_secs(10),
        || async {
            cluster
                .log_of(wiped)
                .contains("added to the cluster")
                .then_some(())
        },
    )
    .await;
    for id in &acked {
        let m = cluster.get_message(wiped, id).await;
        assert!(
            m.is_some(),
            "acknowledged message {id} missing on node {wiped}"
        );
    }
    let actions = audit_actions(&cluster, leader).await;
    for action in ["member.demote", "member.promote"] {
        assert!(
            actions
                .iter()
                .any(|(a, d)| a == action && d == &format!("node {wiped}")),
            "{action} not audited: {actions:?}"
        );
    }

    // It votes again: without the leader, the two others elect one.
    cluster.kill_node(leader);
    let new_leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    assert_ne!(new_leader, leader);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_added_under_load_catch_up_and_vote_and_a_removed_one_loses_nothing() {
    let cluster = Arc::new(Cluster::start(Options {
        spare_nodes: 2,
        ..Default::default()
    }));
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;

    // Light load all along: one client submitting every 20 ms, keeping what was acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (cluster, stop) = (cluster.clone(), stop.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let id = cluster
                    .submit_until_acked(&request("load", i), i, Duration::from_secs(30))
                    .await
                    .unwrap_or_else(|| panic!("submission {i} not acknowledged in 30 s"));
                acked.push(id);
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            acked
        })
    };
    wait_for("some load", Duration::from_secs(30), || async {
        let s = cluster.status(leader).await?;
        (s.commit_index > 20).then_some(())
    })
    .await;

    for new in [4, 5] {
        cluster.start_node(new);
        wait_for(
            "the new node to wait to be added",
            Duration::from_secs(30),
            || async {
                cluster
                    .log_of(new)
                    .contains("waiting to be added")
                    .then_some(())
            },
        )
        .await;
        let out = add_node(&cluster, 1, new);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "add-node {new}: {stdout}{}",
            text(&out.stderr)
        );
        assert!(
            stdout.contains(&format!("node {new} is a learner")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("node {new} is a voter")),
            "{stdout}"
        );
    }
    let s = cluster.status(1).await.expect("status");
    assert_eq!(s.members.len(), 5, "{s:?}");
    assert!(s.members.iter().all(|m| m.voter), "{s:?}");

    // Remove a founding follower (asked of a node that may not be the leader).
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let removed = (1..=3).find(|id| *id != leader).expect("a follower");
    let out = cluster.herald(&[
        "cluster",
        "remove-node",
        "--endpoint",
        &cluster.node(removed).grpc,
        &removed.to_string(),
    ]);
    assert!(
        out.status.success(),
        "remove-node: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let s = cluster.status(leader).await.expect("status");
    assert!(s.members.iter().all(|m| m.id != removed), "{s:?}");
    assert_eq!(s.members.len(), 4, "{s:?}");

    stop.store(true, Ordering::SeqCst);
    let acked = writer.await.expect("the writer");
    assert!(acked.len() > 20, "only {} submissions", acked.len());
    cluster.kill_node(removed);

    // The new nodes vote: of the four voters one more goes (the leader), and the three left,
    // both new nodes among them, must elect a leader.
    cluster.kill_node(leader);
    let new_leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    assert!(![leader, removed].contains(&new_leader));

    // No acknowledged message lost: every one is on both new nodes, and every one is delivered
    // (the links of the removed and the stopped node moved to the nodes left).
    for node in [4, 5] {
        for id in &acked {
            assert!(
                cluster.get_message(node, id).await.is_some(),
                "acknowledged message {id} missing on node {node}"
            );
        }
    }
    cluster
        .wait_all_delivered(new_leader, &acked, Duration::from_secs(120))
        .await;
    let actions = audit_actions(&cluster, new_leader).await;
    for (action, node) in [
        ("member.add", 4),
        ("member.promote", 5),
        ("member.remove", removed),
    ] {
        assert!(
            actions
                .iter()
                .any(|(a, d)| a == action && d.starts_with(&format!("node {node}"))),
            "{action} of node {node} not audited: {actions:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_address_or_an_unknown_node_is_refused_and_changes_nothing() {
    let cluster = Cluster::start(Options::default());
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let endpoint = cluster.node(leader).grpc.clone();
    let out = cluster.herald(&[
        "cluster",
        "add-node",
        "--endpoint",
        &endpoint,
        "4",
        "--raft",
        "no-port",
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("raft_addr: \"no-port\": must be HOST:PORT"),
        "{stderr}"
    );
    let out = cluster.herald(&["cluster", "remove-node", "--endpoint", &endpoint, "9"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("node: 9 is not a member (members: [1, 2, 3])"),
        "{stderr}"
    );
    let s = cluster.status(leader).await.expect("status");
    assert_eq!(s.members.len(), 3, "nothing changed: {s:?}");
}
