//! A link's signature through a real `herald node` and CMPP simulator: the node refuses a text
//! that would only fit without the signature, and a text that fits one part alone reaches the
//! gateway in two, the signature sent once at the end of the last.

use std::time::Duration;

use herald_api::v1::{MessageState, SubmitRequest};
use herald_tests::{wait_for, Cluster, Options};

const SIGNATURE: &str = "【国家电网】";

fn submit(text: String) -> SubmitRequest {
    SubmitRequest {
        recipients: vec!["13800138000".into()],
        text,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_herald_added_signature_counts_in_the_limit_and_reaches_the_gateway_once() {
    let cluster = Cluster::start(Options {
        nodes: 1,
        link_options: format!(
            "signature = \"{SIGNATURE}\", signature-added-by = \"herald\", \
             signature-position = \"suffix\""
        ),
        ..Options::default()
    });
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let mut client = cluster.messaging(leader).await.expect("client");

    // The default limit is 1000 characters, the signature's 6 included.
    let refused = client
        .submit(submit("电".repeat(995)))
        .await
        .expect_err("995 + 6 characters exceed 1000");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused
            .message()
            .starts_with("text: at most 1000 characters with the signature")
            && refused
                .message()
                .ends_with("so at most 994 for the text; got 995"),
        "{}",
        refused.message()
    );

    // 70 characters fill one UCS2 part alone; with the signature they take two.
    let text = "电".repeat(70);
    let id = client
        .submit(submit(text.clone()))
        .await
        .expect("70 characters + the signature fit")
        .into_inner()
        .message_id;
    cluster
        .wait_all_delivered(leader, std::slice::from_ref(&id), Duration::from_secs(30))
        .await;
    let message = cluster.get_message(leader, &id).await.expect("message");
    assert_eq!(message.state, MessageState::Delivered as i32);
    assert_eq!(message.text, text, "the stored text is the client's");
    assert_eq!(message.segments.len(), 2);

    let received = wait_for("both parts recorded", Duration::from_secs(10), || async {
        let texts: Vec<String> = cluster.sim_submits().into_iter().map(|(t, _)| t).collect();
        (texts.len() == 2).then_some(texts)
    })
    .await;
    let mut received = received;
    received.sort_by_key(|t| t.chars().count());
    assert_eq!(
        received,
        vec![format!("{}{SIGNATURE}", "电".repeat(3)), "电".repeat(67)]
    );
}
