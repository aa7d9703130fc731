//! Reads on any node see every write acknowledged before them. A follower learns that an entry is
//! committed only with the leader's next append, so a read it cannot answer from its projection
//! first asks the leader for its read index and applies that far; a node that cannot reach a
//! leader must not call an acknowledged message missing (UNAVAILABLE, never NOT_FOUND).

use std::time::Duration;

use herald_api::v1::{CancelMessageRequest, GetMessageRequest, GetMessagesRequest, SubmitRequest};
use herald_tests::{wait_for, Cluster, Options};

fn request(i: usize) -> SubmitRequest {
    SubmitRequest {
        recipients: vec![format!("1380013{i:04}")],
        text: format!("read after write {i}"),
        idempotency_key: format!("read-{i}"),
        // Far enough ahead that a cancel finds it still waiting.
        send_at_ms: now_ms() + 3_600_000,
        ..Default::default()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_follower_reads_a_message_the_moment_the_leader_acknowledged_it() {
    let cluster = Cluster::start(Options::default());
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let followers: Vec<u64> = cluster
        .running()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    let mut on_leader = cluster
        .messaging(leader)
        .await
        .expect("a client of the leader");
    let mut on_followers = Vec::new();
    for f in &followers {
        on_followers.push(cluster.messaging(*f).await.expect("a client of a follower"));
    }
    // Each message is read on a follower right after its acknowledgement, with no pause between:
    // the window in which the follower has not heard of the commit yet is hit many times over.
    for i in 0..60 {
        let id = on_leader
            .submit(request(i))
            .await
            .expect("submitting on the leader")
            .into_inner()
            .message_id;
        let n = on_followers.len();
        let follower = &mut on_followers[i % n];
        match i % 3 {
            0 => {
                let got = follower
                    .get_message(GetMessageRequest {
                        message_id: id.clone(),
                    })
                    .await
                    .unwrap_or_else(|s| panic!("message {i} ({id}) read on a follower: {s:?}"));
                assert_eq!(got.into_inner().message_id, id);
            }
            1 => {
                let got = follower
                    .get_messages(GetMessagesRequest {
                        message_ids: vec![id.clone()],
                    })
                    .await
                    .unwrap_or_else(|s| panic!("message {i} ({id}) read on a follower: {s:?}"))
                    .into_inner();
                assert!(
                    got.messages[0].found,
                    "message {i} ({id}) reported missing by a follower"
                );
            }
            _ => {
                follower
                    .cancel_message(CancelMessageRequest {
                        message_id: id.clone(),
                    })
                    .await
                    .unwrap_or_else(|s| panic!("message {i} ({id}) canceled on a follower: {s:?}"));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_leader_never_calls_an_acknowledged_message_missing() {
    let cluster = Cluster::start(Options::default());
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let behind = cluster
        .running()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");

    // The message is acknowledged while `behind` is down: it never stored it.
    cluster.kill_node(behind);
    let mut client = cluster
        .messaging(leader)
        .await
        .expect("a client of the leader");
    let id = client
        .submit(request(0))
        .await
        .expect("submitting with two of three nodes")
        .into_inner()
        .message_id;

    // `behind` comes back alone: the two that hold the message are down.
    for other in cluster.running() {
        cluster.kill_node(other);
    }
    cluster.start_node(behind);
    let mut alone = cluster
        .messaging(behind)
        .await
        .expect("a client of the lone node");
    let status = alone
        .get_message(GetMessageRequest {
            message_id: id.clone(),
        })
        .await
        .expect_err("the lone node cannot know the message");
    assert_eq!(
        status.code(),
        tonic::Code::Unavailable,
        "an acknowledged message read on a node that cannot reach a leader: {status:?}"
    );
    assert!(
        status.message().contains("not caught up"),
        "the answer says why: {status:?}"
    );
    let status = alone
        .get_messages(GetMessagesRequest {
            message_ids: vec![id.clone()],
        })
        .await
        .expect_err("the lone node cannot know the message");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");

    // With the others back, the same node answers the message.
    for other in cluster.nodes.iter().map(|n| n.id).filter(|n| *n != behind) {
        cluster.start_node(other);
    }
    wait_for(
        "the message read on the node that was behind",
        Duration::from_secs(60),
        || {
            let mut alone = alone.clone();
            let id = id.clone();
            async move {
                alone
                    .get_message(GetMessageRequest { message_id: id })
                    .await
                    .ok()
                    .map(|_| ())
            }
        },
    )
    .await;
}
