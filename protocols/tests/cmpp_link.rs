//! The CMPP client against the CMPP simulator (and a scripted peer) over real TCP on 127.0.0.1.
//! Every wait has a deadline; no sleep is used as an assertion.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{
    accept_framed, check_fifty_submit_records, expect_reports, local_listener, next_pdu,
    read_records, refused_logins_keep_the_link_down, shutdown_and_refuse,
    six_submits_take_three_rounds, skip_to, submit_all_accepted, submit_each, take_mo,
    wait_connected, wait_event, within, SimTask,
};
use futures::{SinkExt, StreamExt};
use herald_protocols::cmpp::{
    Body, CmppCodec, ConnectResp, Deliver, DeliverContent, Pdu, VERSION_3_0,
};
use herald_protocols::sim::cmpp::{run_on, SimConfig, SimFaults};
use herald_protocols::{
    split_text, ClientEvent, CmppClient, LinkSettings, OutboundSegment, SendError, SubmitOutcome,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

const ACCOUNT: &str = "901234";
const SECRET: &str = "s3cret";

async fn start_sim(record: Option<&Path>, faults: SimFaults) -> (SimTask, SocketAddr) {
    let (listener, addr) = local_listener().await;
    let config = SimConfig {
        listen: addr.to_string(),
        accounts: vec![(ACCOUNT.into(), SECRET.into())],
        report_delay: Duration::from_millis(50),
        delivered_ratio: 0.7,
        record: record.map(Path::to_path_buf),
        gateway_id: 7,
        version: None,
    };
    let sim = SimTask::spawn(|shutdown| run_on(listener, config, faults, shutdown));
    (sim, addr)
}

fn settings(addr: SocketAddr, secret: &str, window: usize) -> LinkSettings {
    common::link_settings("test-link", addr, ACCOUNT, secret, "1065901234", window)
}

fn fifty_segments() -> Vec<OutboundSegment> {
    common::fifty_segments(
        split_text,
        |i| format!("verification code {i:04}"),
        ["1380013", "1391234"],
    )
}

#[tokio::test]
async fn fifty_submits_are_accepted_and_all_reports_arrive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = dir.path().join("sim.jsonl");
    let (sim, addr) = start_sim(Some(&record), SimFaults::default()).await;
    let (client, mut events) = CmppClient::start(settings(addr, SECRET, 16));
    wait_connected(&mut events).await;
    assert!(client.is_connected());

    let carrier_ids = submit_all_accepted(&client, &fifty_segments(), |carrier_id| {
        assert!(carrier_id.parse::<u64>().is_ok(), "decimal id {carrier_id}");
    })
    .await;
    assert_eq!(carrier_ids.len(), 50);
    expect_reports(&mut events, &carrier_ids).await;

    // The simulator's record holds one submit line per segment, with the decoded text.
    let records = read_records(&record);
    check_fifty_submit_records(&records, &carrier_ids, ACCOUNT, "verification code 0007");
    let reports = records.iter().filter(|r| r["kind"] == "report").count();
    assert_eq!(reports, 50);

    shutdown_and_refuse(&client, fifty_segments().remove(0)).await;
    sim.stop().await;
}

#[tokio::test]
async fn window_bounds_outstanding_submits() {
    // Each SUBMIT_RESP takes 200 ms: with a window of 2, six submits need three rounds.
    let faults = SimFaults {
        submit_resp_delay: Duration::from_millis(200),
        ..SimFaults::default()
    };
    let (sim, addr) = start_sim(None, faults).await;
    let (client, mut events) = CmppClient::start(settings(addr, SECRET, 2));
    six_submits_take_three_rounds(&client, &mut events, fifty_segments()).await;
    sim.stop().await;
}

#[tokio::test]
async fn wrong_secret_fails_login_and_keeps_retrying() {
    let (sim, addr) = start_sim(None, SimFaults::default()).await;
    let mut s = settings(addr, "not-the-secret", 16);
    s.response_timeout = Duration::from_millis(300);
    let (client, mut events) = CmppClient::start(s);
    let seg = fifty_segments().remove(0);
    refused_logins_keep_the_link_down(&client, &mut events, "a refused login", "Status 3", 3, seg)
        .await;
    sim.stop().await;
}

#[tokio::test]
async fn dropped_connection_fails_pending_submits_and_reconnects() {
    // Answers are held back, and the connection closes on the third SUBMIT: the submits in
    // flight at that moment can only end in ConnectionLost.
    let faults = SimFaults {
        drop_at_submit: Some(3),
        submit_resp_delay: Duration::from_millis(500),
        ..SimFaults::default()
    };
    let (sim, addr) = start_sim(None, faults).await;
    let (client, mut events) = CmppClient::start(settings(addr, SECRET, 16));
    wait_connected(&mut events).await;

    let five: Vec<_> = fifty_segments().into_iter().take(5).collect();
    let mut lost = 0;
    for r in submit_each(&client, &five).await {
        match r {
            Err(SendError::ConnectionLost) => lost += 1,
            // A submit that reached the link only after the reconnect is fine.
            Ok(SubmitOutcome::Accepted { .. }) => {}
            other => panic!("unexpected result {other:?}"),
        }
    }
    assert!(lost >= 3, "only {lost} submits failed with ConnectionLost");

    wait_event(&mut events, "Connected again", |e| {
        *e == ClientEvent::Connected
    })
    .await;
    let outcome = within("a submit after reconnecting", async {
        client.submit(fifty_segments().remove(0)).await
    })
    .await;
    assert!(
        matches!(outcome, Ok(SubmitOutcome::Accepted { .. })),
        "{outcome:?}"
    );
    within("client shutdown", client.shutdown()).await;
    sim.stop().await;
}

/// Accepts the client's connection and answers its CONNECT; `check` sees the CONNECT first.
async fn accept_login(
    listener: &TcpListener,
    check: impl FnOnce(&Pdu),
) -> Framed<TcpStream, CmppCodec> {
    let mut peer = accept_framed(listener, CmppCodec::default()).await;
    let login = next_pdu(&mut peer, "CONNECT").await;
    check(&login);
    peer.send(Pdu::new(
        login.sequence_id,
        Body::ConnectResp(ConnectResp {
            status: 0,
            authenticator_ismg: [0; 16],
            version: VERSION_3_0,
        }),
    ))
    .await
    .expect("send");
    peer
}

/// A hand-driven gateway: checks heartbeats, MO delivery, and TERMINATE from the gateway.
#[tokio::test]
async fn client_answers_the_gateway_and_heartbeats_when_idle() {
    let (listener, addr) = local_listener().await;
    let mut s = settings(addr, SECRET, 16);
    s.heartbeat_interval = Duration::from_millis(100);
    s.response_timeout = Duration::from_millis(300);
    let (client, mut events) = CmppClient::start(s);

    let mut peer = accept_login(&listener, |login| {
        assert!(matches!(login.body, Body::Connect(ref c) if c.source_addr == ACCOUNT));
    })
    .await;
    wait_connected(&mut events).await;

    // Idle link: the client probes with ACTIVE_TEST.
    let probe = next_pdu(&mut peer, "ACTIVE_TEST").await;
    assert_eq!(probe.body, Body::ActiveTest);
    peer.send(Pdu::new(probe.sequence_id, Body::ActiveTestResp))
        .await
        .expect("send");

    // The gateway's own ACTIVE_TEST and an MO message are answered.
    peer.send(Pdu::new(900, Body::ActiveTest))
        .await
        .expect("send");
    let mo = Deliver {
        msg_id: 4242,
        dest_id: "1065901234".into(),
        service_id: String::new(),
        tp_pid: 0,
        tp_udhi: 0,
        msg_fmt: 8,
        src_terminal_id: "13800138000".into(),
        src_terminal_type: 0,
        content: DeliverContent::Message(vec![0x90, 0x00, 0x8B, 0xA2]), // 退订
        link_id: String::new(),
    };
    peer.send(Pdu::new(901, Body::Deliver(Box::new(mo))))
        .await
        .expect("send");
    // The DELIVER is answered once the application has recorded the MO.
    let mo = take_mo(&mut events).await;
    assert_eq!(
        (mo.text.as_str(), mo.src.as_str(), mo.carrier_id.as_str()),
        ("退订", "13800138000", "4242")
    );
    let mut answered = HashSet::new();
    within("answers to ACTIVE_TEST and DELIVER", async {
        while answered.len() < 2 {
            let pdu = peer.next().await.expect("open").expect("valid");
            match pdu.body {
                Body::ActiveTestResp => assert!(answered.insert(pdu.sequence_id)),
                Body::DeliverResp(r) => {
                    assert_eq!((r.msg_id, r.result), (4242, 0));
                    assert!(answered.insert(pdu.sequence_id));
                }
                Body::ActiveTest => {
                    peer.send(Pdu::new(pdu.sequence_id, Body::ActiveTestResp))
                        .await
                        .expect("send");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(answered, HashSet::from([900, 901]));

    // Silence: after three unanswered probes the client gives up on the connection.
    let skipped = wait_event(
        &mut events,
        "Disconnected for silence",
        |e| matches!(e, ClientEvent::Disconnected { reason } if reason.contains("heartbeats")),
    )
    .await;
    assert!(skipped.is_empty(), "{skipped:?}");
    assert!(!client.is_connected());

    // It reconnects; this time the gateway sends TERMINATE and expects TERMINATE_RESP.
    let mut peer = accept_login(&listener, |_| {}).await;
    wait_connected(&mut events).await;
    peer.send(Pdu::new(77, Body::Terminate))
        .await
        .expect("send");
    let resp = skip_to(&mut peer, "TERMINATE_RESP", |p| {
        p.body == Body::TerminateResp
    })
    .await;
    assert_eq!(resp.sequence_id, 77);
    wait_event(&mut events, "Disconnected after TERMINATE", |e| {
        matches!(e, ClientEvent::Disconnected { .. })
    })
    .await;
    within("client shutdown", client.shutdown()).await;
}
