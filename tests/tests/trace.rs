//! The protocol trace with real processes: three `herald` nodes and CMPP simulators over TCP. A
//! message the carrier refuses, one it delivers and one whose connection the simulator drops
//! each show, on a node other than the one that sent them, the PDUs exchanged — with the very
//! sequence numbers the simulator recorded — and why the message ended where it did. The refused
//! one is also read through the `herald trace` command.

use std::time::Duration;

use herald_api::v1::{GetTraceRequest, GetTraceResponse, MessageState, SubmitRequest, TraceLine};
use herald_tests::{herald_bin, wait_for, Cluster, LinkSpec, Options, SimSpec};

fn sim(name: &str, args: &[&str]) -> SimSpec {
    SimSpec {
        name: name.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
    }
}

fn link(name: &str, sim: &str) -> LinkSpec {
    LinkSpec {
        name: name.into(),
        sim: sim.into(),
        max_window: 16,
        max_per_second: 200,
        connections: 1,
    }
}

async fn submit(cluster: &Cluster, to: &str, link: &str, validity_seconds: u32) -> String {
    let request = SubmitRequest {
        recipients: vec![to.into()],
        text: format!("trace me via {link}"),
        link: link.into(),
        validity_seconds,
        ..Default::default()
    };
    cluster
        .submit_until_acked(&request, 0, Duration::from_secs(30))
        .await
        .expect("a submission is acknowledged")
}

async fn trace_from(cluster: &Cluster, node: u64, id: &str) -> Option<GetTraceResponse> {
    let mut client = cluster.messaging(node).await?;
    client
        .get_trace(GetTraceRequest {
            message_id: id.into(),
        })
        .await
        .ok()
        .map(|r| r.into_inner())
}

/// The trace once the message is in `state`, read from whichever node answers.
async fn trace_in_state(cluster: &Cluster, id: &str, state: MessageState) -> GetTraceResponse {
    wait_for(
        &format!("message {id} to be {state:?}"),
        Duration::from_secs(60),
        || async {
            for node in cluster.running() {
                if let Some(t) = trace_from(cluster, node, id).await {
                    return (t.state == state as i32).then_some(t);
                }
            }
            None
        },
    )
    .await
}

/// The node that sent the message's submits, and another one to ask.
fn sender_and_other(trace: &GetTraceResponse) -> (u64, u64) {
    let sender = trace
        .lines
        .iter()
        .find(|l| l.command == "CMPP_SUBMIT")
        .map(|l| l.node)
        .expect("a CMPP_SUBMIT line");
    assert_ne!(sender, 0, "the submit names its node");
    (sender, sender % 3 + 1)
}

fn lines<'a>(trace: &'a GetTraceResponse, direction: &str, command: &str) -> Vec<&'a TraceLine> {
    trace
        .lines
        .iter()
        .filter(|l| l.direction == direction && l.command == command)
        .collect()
}

/// The sequence numbers the simulator recorded for `kind` lines to `dest` (or any, if empty).
fn sim_seqs(cluster: &Cluster, sim: &str, kind: &str, key: &str, value: &str) -> Vec<u64> {
    cluster
        .sim_lines(sim)
        .iter()
        .filter(|v| v["kind"] == kind && v[key] == value)
        .filter_map(|v| v["seq"].as_u64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn traces_show_the_pdus_of_refused_delivered_and_dropped_messages_on_any_node() {
    let cluster = Cluster::start(Options {
        sims: vec![
            sim("gw", &["--reject-dest", "1390000=13"]),
            // Answers the login (not counted), then closes the connection at the first PDU after
            // it — the SUBMIT — every time.
            sim("flaky", &["--drop-after", "0"]),
        ],
        links: vec![link("gw", "gw"), link("flaky", "flaky")],
        ..Options::default()
    });
    cluster.wait_for_leader(Duration::from_secs(30)).await;

    let refused = submit(&cluster, "13900001234", "gw", 0).await;
    let delivered = submit(&cluster, "13800138000", "gw", 0).await;
    let dropped = submit(&cluster, "13800138001", "flaky", 6).await;

    // Refused: CMPP_SUBMIT out, CMPP_SUBMIT_RESP in with Result 13, and the reason it failed.
    let t = trace_in_state(&cluster, &refused, MessageState::Failed).await;
    let (sender, other) = sender_and_other(&t);
    let t = trace_from(&cluster, other, &refused)
        .await
        .expect("another node answers");
    assert_eq!(t.answered_by, other);
    let submits = lines(&t, "out", "CMPP_SUBMIT");
    let responses = lines(&t, "in", "CMPP_SUBMIT_RESP");
    assert_eq!((submits.len(), responses.len()), (1, 1), "{t:#?}");
    let (submit, response) = (submits[0], responses[0]);
    assert_eq!(response.sequence, submit.sequence);
    assert_eq!(response.status, "13");
    assert!(
        response.meaning.contains("Dest_terminal_Id error"),
        "{response:?}"
    );
    assert_eq!((submit.link.as_str(), submit.node), ("gw", sender));
    assert!(submit.at_ms > 0 && submit.at_ms <= response.at_ms);
    assert_eq!(
        sim_seqs(&cluster, "gw", "refused", "dest", "13900001234"),
        [u64::from(submit.sequence)],
        "the sequence the carrier saw"
    );
    assert_eq!(t.last_code, 13);
    assert!(
        t.reason.contains("code 13") && t.reason.contains("1 attempt"),
        "{}",
        t.reason
    );

    // The same through the command line.
    let printed = herald_trace(&cluster, other, &refused);
    let seq = format!("seq {}", submit.sequence);
    assert!(
        printed
            .lines()
            .any(|l| l.contains("-> CMPP_SUBMIT ") && l.contains(&seq)),
        "{printed}"
    );
    assert!(
        printed.lines().any(|l| l.contains("<- CMPP_SUBMIT_RESP")
            && l.contains(&seq)
            && l.contains("status 13")),
        "{printed}"
    );
    let last = printed.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("FAILED: ") && last.contains("code 13"),
        "{printed}"
    );

    // Delivered: the submit, its response with the carrier's id, and the report naming that id.
    let t = trace_in_state(&cluster, &delivered, MessageState::Delivered).await;
    let (_, other) = sender_and_other(&t);
    let t = trace_from(&cluster, other, &delivered)
        .await
        .expect("another node answers");
    let submit = lines(&t, "out", "CMPP_SUBMIT")[0].clone();
    let response = lines(&t, "in", "CMPP_SUBMIT_RESP")[0].clone();
    let report = lines(&t, "in", "CMPP_DELIVER")[0].clone();
    assert_eq!(
        (response.sequence, response.status.as_str()),
        (submit.sequence, "0")
    );
    assert!(!response.carrier_id.is_empty());
    assert_eq!(report.carrier_id, response.carrier_id);
    assert_eq!(report.status, "DELIVRD");
    assert_eq!(
        sim_seqs(&cluster, "gw", "submit", "msg_id", &response.carrier_id),
        [u64::from(submit.sequence)]
    );
    assert_eq!(
        sim_seqs(&cluster, "gw", "report", "msg_id", &report.carrier_id),
        [u64::from(report.sequence)],
        "the DELIVER's sequence as the carrier sent it"
    );
    assert_eq!(t.reason, "the carrier reported it delivered");

    // Dropped: every submit lost with its connection, until the validity ran out.
    let t = trace_in_state(&cluster, &dropped, MessageState::Expired).await;
    let (_, other) = sender_and_other(&t);
    let t = trace_from(&cluster, other, &dropped)
        .await
        .expect("another node answers");
    let lost: Vec<&TraceLine> = t
        .lines
        .iter()
        .filter(|l| l.direction.is_empty() && l.meaning.contains("connection lost"))
        .collect();
    assert!(!lost.is_empty(), "{t:#?}");
    let sent: Vec<u32> = lines(&t, "out", "CMPP_SUBMIT")
        .iter()
        .map(|l| l.sequence)
        .collect();
    for l in &lost {
        assert_eq!(l.command, "CMPP_SUBMIT");
        assert!(
            sent.contains(&l.sequence),
            "{l:?} answers no submit in {sent:?}"
        );
    }
    assert!(lines(&t, "in", "CMPP_SUBMIT_RESP").is_empty(), "{t:#?}");
    assert!(t.reason.contains("validity ran out"), "{}", t.reason);
    let printed = herald_trace(&cluster, other, &dropped);
    assert!(
        printed
            .lines()
            .any(|l| l.contains("CMPP_SUBMIT") && l.contains("no answer: connection lost")),
        "{printed}"
    );
    assert!(
        printed
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("EXPIRED: "),
        "{printed}"
    );
}

/// What `herald trace ID` prints, asking `node`.
fn herald_trace(cluster: &Cluster, node: u64, id: &str) -> String {
    let output = std::process::Command::new(herald_bin())
        .envs(cluster.client_env())
        .args(["trace", "--endpoint", &cluster.node(node).grpc, id])
        .env("HERALD_API_KEY", cluster.admin_key_text())
        .output()
        .expect("herald trace runs");
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8_lossy(&output.stdout).to_string();
    eprintln!("{printed}");
    printed
}
