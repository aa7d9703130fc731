//! The public API against a real three-node cluster: bad input is refused with the field and the
//! rule and changes nothing; an idempotency key never creates a second message; any node answers.

use std::time::Duration;

use herald_api::v1::{MessageState, Priority, SubmitRequest};
use herald_tests::{wait_for, Cluster, Options};

fn valid() -> SubmitRequest {
    SubmitRequest {
        recipients: vec!["13800138000".into()],
        text: "API test".into(),
        priority: Priority::Alarm as i32,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_writes_nothing_and_keys_are_idempotent() {
    let cluster = Cluster::start(Options::default());
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    // Let the initial link assignment commit so the log is quiet.
    wait_for("the link assigned", Duration::from_secs(30), || async {
        cluster
            .status(leader)
            .await
            .and_then(|s| s.links.first().map(|l| l.node))
            .filter(|n| *n != 0)
    })
    .await;
    let before = cluster.status(leader).await.expect("status").commit_index;

    let long_text = "x".repeat(1001);
    let cases: Vec<(SubmitRequest, &str)> = vec![
        (
            SubmitRequest {
                recipients: vec![],
                ..valid()
            },
            "recipients:",
        ),
        (
            SubmitRequest {
                recipients: vec!["12345".into()],
                ..valid()
            },
            "recipients[0]:",
        ),
        (
            SubmitRequest {
                recipients: vec!["13800138000".into(), "1380013800x".into()],
                ..valid()
            },
            "recipients[1]:",
        ),
        (
            SubmitRequest {
                text: "".into(),
                ..valid()
            },
            "text:",
        ),
        (
            SubmitRequest {
                text: "   ".into(),
                ..valid()
            },
            "text:",
        ),
        (
            SubmitRequest {
                text: long_text,
                ..valid()
            },
            "text: at most 1000 characters",
        ),
        (
            SubmitRequest {
                link: "no-such-link".into(),
                ..valid()
            },
            "link: unknown link",
        ),
        (
            SubmitRequest {
                priority: 42,
                ..valid()
            },
            "priority:",
        ),
    ];
    for node in cluster.running() {
        let mut client = cluster.messaging(node).await.expect("client");
        for (request, field) in &cases {
            let status = client
                .submit(request.clone())
                .await
                .expect_err("bad input accepted");
            assert_eq!(
                status.code(),
                tonic::Code::InvalidArgument,
                "{field}: {status}"
            );
            assert!(
                status.message().starts_with(field),
                "{:?} does not name {field}",
                status.message()
            );
        }
    }
    let after = cluster.status(leader).await.expect("status").commit_index;
    assert_eq!(before, after, "refused submissions reached the log");

    // The same idempotency key on every node: one message.
    let keyed = SubmitRequest {
        idempotency_key: "api-key-1".into(),
        ..valid()
    };
    let mut ids = Vec::new();
    for node in cluster.running() {
        let mut client = cluster.messaging(node).await.expect("client");
        let resp = client
            .submit(keyed.clone())
            .await
            .expect("submit")
            .into_inner();
        ids.push((resp.message_id, resp.created));
    }
    assert!(ids[0].1, "the first submission creates the message");
    assert!(
        ids[1..]
            .iter()
            .all(|(id, created)| *id == ids[0].0 && !created),
        "{ids:?}"
    );

    // Any node answers, with the same record.
    let id = ids[0].0.clone();
    cluster
        .wait_all_delivered(leader, std::slice::from_ref(&id), Duration::from_secs(30))
        .await;
    let reference = cluster.get_message(leader, &id).await.expect("message");
    assert_eq!(reference.state, MessageState::Delivered as i32);
    assert_eq!(reference.priority, Priority::Alarm as i32);
    for node in cluster.running() {
        cluster
            .wait_all_delivered(node, std::slice::from_ref(&id), Duration::from_secs(30))
            .await;
        let other = cluster.get_message(node, &id).await.expect("message");
        assert_eq!(other.timeline, reference.timeline);
    }
    let kinds: Vec<&str> = reference.timeline.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "MessageSubmitted",
            "MessageDispatched",
            "CarrierAccepted",
            "DeliveryReported"
        ]
    );

    // Unknown and malformed ids.
    let mut client = cluster.messaging(leader).await.expect("client");
    let missing = client
        .get_message(herald_api::v1::GetMessageRequest {
            message_id: "999999".into(),
        })
        .await
        .expect_err("no such message");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let malformed = client
        .get_message(herald_api::v1::GetMessageRequest {
            message_id: "abc".into(),
        })
        .await
        .expect_err("malformed id");
    assert_eq!(malformed.code(), tonic::Code::InvalidArgument);
    assert!(malformed.message().starts_with("message_id:"));

    // Many at once, from every node: in the order asked, unknown ids answered as not found.
    let delivered_at = reference.timeline.last().expect("timeline").at_ms;
    for node in cluster.running() {
        let mut client = cluster.messaging(node).await.expect("client");
        let answer = client
            .get_messages(herald_api::v1::GetMessagesRequest {
                message_ids: vec!["999999".into(), id.clone()],
            })
            .await
            .expect("get messages")
            .into_inner();
        assert_eq!(answer.answered_by, node);
        let [unknown, known] = answer.messages.as_slice() else {
            panic!("two answers expected: {answer:?}");
        };
        assert!(
            !unknown.found && unknown.message_id == "999999",
            "{unknown:?}"
        );
        assert!(known.found && known.message_id == id, "{known:?}");
        assert_eq!(known.state, MessageState::Delivered as i32);
        assert_eq!(known.submitted_at_ms, reference.submitted_at_ms);
        assert_eq!(known.updated_at_ms, delivered_at);
    }
    let malformed = client
        .get_messages(herald_api::v1::GetMessagesRequest {
            message_ids: vec![id.clone(), "12a".into()],
        })
        .await
        .expect_err("malformed id");
    assert_eq!(malformed.code(), tonic::Code::InvalidArgument);
    assert!(
        malformed.message().starts_with("message_ids[1]:"),
        "{malformed}"
    );
    let too_many = client
        .get_messages(herald_api::v1::GetMessagesRequest {
            message_ids: vec![id.clone(); 1001],
        })
        .await
        .expect_err("over the limit");
    assert_eq!(too_many.code(), tonic::Code::InvalidArgument);
}
