//! The replicated core, end to end, with real processes: three nodes and a CMPP simulator;
//! 500 messages submitted across all nodes while the leader is SIGKILLed mid-stream. Every
//! acknowledged message must reach DELIVERED and read the same from every surviving node; the
//! simulator must have seen every message; the killed node restarts on its data dir and catches up
//! from a snapshot (the log it missed was purged).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_api::v1::{MessageState, SubmitRequest};
use herald_tests::{wait_for, Cluster, Options};

const MESSAGES: usize = 500;
const CLIENTS: usize = 8;

/// Submits message `i` until some node acknowledges it, like a real client: on errors it retries
/// with the same idempotency key on the next node. Returns the message id, or None if it gave up.
async fn submit_with_retries(cluster: &Cluster, nodes: &[u64], i: usize) -> Option<String> {
    let request = SubmitRequest {
        recipients: vec![format!("1380013{:04}", i)],
        text: format!("core test message {i}"),
        idempotency_key: format!("core-{i}"),
        client_ref: format!("ref-{i}"),
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut attempt = 0usize;
    while tokio::time::Instant::now() < deadline {
        let node = nodes[(i + attempt) % nodes.len()];
        attempt += 1;
        let Some(mut client) = cluster.messaging(node).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        match client.submit(request.clone()).await {
            Ok(resp) => return Some(resp.into_inner().message_id),
            Err(status) => {
                assert_ne!(
                    status.code(),
                    tonic::Code::InvalidArgument,
                    "a valid submission was refused: {status}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_mid_stream_loses_nothing() {
    let cluster = Cluster::start(Options {
        snapshot_logs: 64,
        keep_logs: 8,
        ..Options::default()
    });
    let first_leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let all_nodes: Vec<u64> = cluster.running();

    // Submit from CLIENTS concurrent clients across all nodes; kill the leader after a third.
    let acked: Arc<Mutex<BTreeMap<usize, String>>> = Arc::default();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let shared = Arc::new(cluster);
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (acked, next, cluster, nodes) = (
            acked.clone(),
            next.clone(),
            shared.clone(),
            all_nodes.clone(),
        );
        clients.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= MESSAGES {
                    return;
                }
                if let Some(id) = submit_with_retries(&cluster, &nodes, i).await {
                    acked.lock().unwrap().insert(i, id);
                }
            }
        }));
    }
    wait_for(
        "a third of the messages acknowledged",
        Duration::from_secs(60),
        || async { (acked.lock().unwrap().len() >= MESSAGES / 3).then_some(()) },
    )
    .await;
    shared.kill_node(first_leader);
    for c in clients {
        c.await.expect("a client task panicked");
    }
    let cluster = shared;

    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= MESSAGES * 9 / 10,
        "only {} of {MESSAGES} submissions were acknowledged within their deadline",
        acked.len()
    );
    let ids: HashSet<&String> = acked.values().collect();
    assert_eq!(ids.len(), acked.len(), "two submissions share a message id");

    let survivors = cluster.running();
    assert_eq!(survivors.len(), 2);
    let new_leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    assert_ne!(
        new_leader, first_leader,
        "the killed node cannot still lead"
    );

    // Every acknowledged message reaches DELIVERED, identically on every surviving node.
    for node in &survivors {
        wait_all_delivered(&cluster, *node, &acked, Duration::from_secs(180)).await;
    }
    for (i, id) in &acked {
        let a = cluster
            .get_message(survivors[0], id)
            .await
            .expect("message readable");
        let b = cluster
            .get_message(survivors[1], id)
            .await
            .expect("message readable");
        assert_eq!(a.state, b.state, "message {i} ({id}) differs between nodes");
        assert_eq!(
            a.segments, b.segments,
            "message {i} ({id}) differs between nodes"
        );
        assert_eq!(
            a.timeline, b.timeline,
            "message {i} ({id}) differs between nodes"
        );
        assert_eq!(a.text, format!("core test message {i}"));
    }

    // At least once at the carrier: every acknowledged message's text reached the simulator.
    let seen: HashSet<String> = cluster.sim_submits().into_iter().map(|(t, _)| t).collect();
    for i in acked.keys() {
        assert!(
            seen.contains(&format!("core test message {i}")),
            "message {i} was acknowledged but never reached the carrier"
        );
    }
    let submits = cluster.sim_submits().len();
    eprintln!(
        "{} acknowledged, {} submits at the simulator ({} duplicates)",
        acked.len(),
        submits,
        submits.saturating_sub(acked.len())
    );

    // The killed node restarts on its data dir and catches up; the log it missed was purged, so it
    // must have been sent a snapshot.
    cluster.start_node(first_leader);
    wait_all_delivered(&cluster, first_leader, &acked, Duration::from_secs(120)).await;
    assert!(
        cluster.log_of(first_leader).contains("installed snapshot"),
        "the restarted node caught up without a snapshot; log:\n{}",
        cluster.log_of(first_leader)
    );
    let status = cluster
        .status(first_leader)
        .await
        .expect("restarted node answers");
    assert_eq!(status.members.len(), 3);
}

async fn wait_all_delivered(
    cluster: &Cluster,
    node: u64,
    acked: &BTreeMap<usize, String>,
    limit: Duration,
) {
    let start = std::time::Instant::now();
    let mut pending: Vec<(usize, String)> = acked.iter().map(|(i, id)| (*i, id.clone())).collect();
    loop {
        let mut still = Vec::new();
        for (i, id) in pending {
            let state = cluster.get_message(node, &id).await.map(|m| m.state);
            if state != Some(MessageState::Delivered as i32) {
                still.push((i, id));
            }
        }
        if still.is_empty() {
            return;
        }
        if start.elapsed() > limit {
            panic!(
                "node {node}: {} acknowledged messages not DELIVERED after {limit:?}, e.g. {:?}",
                still.len(),
                cluster.get_message(node, &still[0].1).await
            );
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
