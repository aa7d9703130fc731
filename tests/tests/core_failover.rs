//! The replicated core, end to end, with real processes: three nodes and a CMPP simulator, messages
//! submitted across all nodes while a node is SIGKILLed mid-stream. Every acknowledged message must
//! reach DELIVERED and read the same from every surviving node, and the simulator must have seen it.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_api::v1::SubmitRequest;
use herald_tests::{wait_for, Cluster, Options};

const CLIENTS: usize = 8;

fn request(tag: &str, i: usize) -> SubmitRequest {
    SubmitRequest {
        recipients: vec![format!("1380013{:04}", i)],
        text: format!("{tag} message {i}"),
        idempotency_key: format!("{tag}-{i}"),
        client_ref: format!("ref-{i}"),
        ..Default::default()
    }
}

/// Submits `total` messages from concurrent clients; calls `kill` once a third are acknowledged.
/// Returns message number → id for every acknowledged one.
async fn submit_stream(
    cluster: Arc<Cluster>,
    tag: &'static str,
    total: usize,
    kill: impl FnOnce(&Cluster),
) -> BTreeMap<usize, String> {
    let acked: Arc<Mutex<BTreeMap<usize, String>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    // The whole stream has a deadline too: a cluster that lost its majority must fail the test in
    // minutes, not once per message.
    let stream_deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (acked, next, cluster) = (acked.clone(), next.clone(), cluster.clone());
        clients.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= total {
                    return;
                }
                let req = request(tag, i);
                let left = stream_deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    return;
                }
                if let Some(id) = cluster
                    .submit_until_acked(&req, i, left.min(Duration::from_secs(60)))
                    .await
                {
                    acked.lock().unwrap().insert(i, id);
                }
            }
        }));
    }
    wait_for(
        "a third of the messages acknowledged",
        Duration::from_secs(60),
        || async { (acked.lock().unwrap().len() >= total / 3).then_some(()) },
    )
    .await;
    kill(&cluster);
    for c in clients {
        c.await.expect("a client task panicked");
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= total * 9 / 10,
        "only {} of {total} submissions were acknowledged within their deadline",
        acked.len()
    );
    let ids: HashSet<&String> = acked.values().collect();
    assert_eq!(ids.len(), acked.len(), "two submissions share a message id");
    acked
}

/// Every acknowledged message DELIVERED and identical on every running node; every one seen by the
/// simulator. Returns the number of duplicate submits the simulator received.
async fn check_delivered_everywhere(
    cluster: &Cluster,
    tag: &str,
    acked: &BTreeMap<usize, String>,
) -> usize {
    let ids: Vec<String> = acked.values().cloned().collect();
    let nodes = cluster.running();
    for node in &nodes {
        cluster
            .wait_all_delivered(*node, &ids, Duration::from_secs(180))
            .await;
    }
    for (i, id) in acked {
        let first = cluster
            .get_message(nodes[0], id)
            .await
            .expect("message readable");
        assert_eq!(first.text, format!("{tag} message {i}"));
        for node in &nodes[1..] {
            let other = cluster
                .get_message(*node, id)
                .await
                .expect("message readable");
            assert_eq!(
                first.state, other.state,
                "message {i} ({id}) differs on node {node}"
            );
            assert_eq!(
                first.segments, other.segments,
                "message {i} ({id}) differs on node {node}"
            );
            assert_eq!(
                first.timeline, other.timeline,
                "message {i} ({id}) differs on node {node}"
            );
        }
    }
    let submits: Vec<String> = cluster
        .sim_submits()
        .into_iter()
        .map(|(t, _)| t)
        .filter(|t| t.starts_with(tag))
        .collect();
    let seen: HashSet<&String> = submits.iter().collect();
    for i in acked.keys() {
        assert!(
            seen.contains(&format!("{tag} message {i}")),
            "message {i} was acknowledged but never reached the carrier"
        );
    }
    let duplicates = submits.len() - seen.len();
    eprintln!(
        "{tag}: {} acknowledged, {} submits at the simulator, {duplicates} duplicates",
        acked.len(),
        submits.len()
    );
    duplicates
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_mid_stream_loses_nothing_and_restart_catches_up_from_snapshot() {
    let cluster = Arc::new(Cluster::start(Options {
        snapshot_logs: 64,
        keep_logs: 8,
        ..Options::default()
    }));
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let acked = submit_stream(cluster.clone(), "leader-kill", 500, |c| c.kill_node(leader)).await;
    assert_eq!(cluster.running().len(), 2);
    let new_leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    assert_ne!(new_leader, leader, "the killed node cannot still lead");
    check_delivered_everywhere(&cluster, "leader-kill", &acked).await;

    // The killed node restarts on its data dir and catches up. The log it missed was purged behind
    // snapshots (every 64 entries), so it must be sent a snapshot.
    cluster.start_node(leader);
    let ids: Vec<String> = acked.values().cloned().collect();
    cluster
        .wait_all_delivered(leader, &ids, Duration::from_secs(120))
        .await;
    assert!(
        cluster.log_of(leader).contains("installed snapshot"),
        "the restarted node caught up without a snapshot; its log:\n{}",
        cluster.log_of(leader)
    );
    assert!(
        cluster.log_of(leader).contains("received snapshot"),
        "the snapshot did not arrive as a stream of chunks; its log:\n{}",
        cluster.log_of(leader)
    );
    check_delivered_everywhere(&cluster, "leader-kill", &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_holder_killed_mid_stream_its_link_moves_and_nothing_is_lost() {
    let window = 16;
    let cluster = Arc::new(Cluster::start(Options {
        max_window: window,
        // A slow carrier keeps a window of messages in flight when the holder dies.
        max_per_second: 150,
        ..Options::default()
    }));
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let (holder, epoch) = wait_for("the link assigned", Duration::from_secs(30), || async {
        let s = cluster.status(leader).await?;
        let l = s.links.first()?;
        (l.node != 0).then_some((l.node, l.epoch))
    })
    .await;
    let acked = submit_stream(cluster.clone(), "holder-kill", 400, |c| c.kill_node(holder)).await;

    let survivor = cluster.running()[0];
    let (new_holder, new_epoch) =
        wait_for("the link reassigned", Duration::from_secs(30), || async {
            let s = cluster.status(survivor).await?;
            let l = s.links.first()?;
            (l.node != holder && l.node != 0).then_some((l.node, l.epoch))
        })
        .await;
    assert!(
        new_epoch > epoch,
        "reassignment must raise the epoch ({epoch} → {new_epoch})"
    );
    assert_ne!(new_holder, holder);
    let duplicates = check_delivered_everywhere(&cluster, "holder-kill", &acked).await;
    assert!(
        duplicates <= window,
        "{duplicates} duplicates at the carrier exceed the window of {window}"
    );
}
