//! The SGIP client against the SGIP simulator (and a scripted gateway) over real TCP on
//! 127.0.0.1: submits on the SP's connection, reports and MOs on the gateway's connection back to
//! the SP's listener, refused logins in both directions, and the idle close with reconnection on
//! demand. Every wait has a deadline; no sleep is used as an assertion.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{
    check_fifty_submit_records, expect_reports, next_pdu, read_records,
    refused_logins_keep_the_link_down, shutdown_and_refuse, six_submits_take_three_rounds,
    submit_all_accepted, take_mo, wait_connected, wait_event, within, SimTask,
};
use futures::{SinkExt, StreamExt};
use herald_protocols::sgip::{
    login_type, Bind, Body, Deliver, Pdu, Report, Resp, SequenceNumber, SgipCodec,
};
use herald_protocols::sgip_client::SgipClient;
use herald_protocols::sim::sgip::{run_with_mo, SimAccount, SimConfig, SimFaults, SimMo};
use herald_protocols::{
    split_text, ClientEvent, DeliveryReport, LinkSettings, OutboundSegment, SubmitOutcome,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

const LOGIN: &str = "herald";
const PASSWORD: &str = "s3cret";
const NODE_ID: u32 = 3_020_012_345;
const SP_NUMBER: &str = "10655012345";

/// The simulator, and the channel its MOs are sent on.
struct Sim {
    task: SimTask,
    mo: mpsc::Sender<SimMo>,
}

impl Sim {
    /// Starts the simulator on `listener`, reporting back to `sp_addr`.
    fn start(
        listener: TcpListener,
        sp_addr: SocketAddr,
        record: Option<&Path>,
        faults: SimFaults,
    ) -> Sim {
        let config = SimConfig {
            listen: String::new(),
            accounts: vec![SimAccount {
                login: LOGIN.into(),
                password: PASSWORD.into(),
                sp_addr: None,
            }],
            sp_addr: Some(sp_addr.to_string()),
            report_delay: Duration::from_millis(50),
            delivered_ratio: 0.7,
            record: record.map(Path::to_path_buf),
            node_id: 4_020_000_001,
            idle_timeout: Duration::from_secs(60),
        };
        let (mo, mo_rx) = mpsc::channel(16);
        let task =
            SimTask::spawn(|shutdown| run_with_mo(listener, config, faults, mo_rx, shutdown));
        Sim { task, mo }
    }

    async fn stop(self) {
        self.task.stop().await;
    }
}

fn settings(gateway: SocketAddr, secret: &str, window: usize) -> LinkSettings {
    LinkSettings {
        options: [
            ("node-id", NODE_ID.to_string()),
            ("listen", "127.0.0.1:0".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        ..common::link_settings("sgip-test", gateway, LOGIN, secret, SP_NUMBER, window)
    }
}

/// The simulator's listener, and a client started against it with `secret`.
async fn client_and_sim_listener(
    secret: &str,
    window: usize,
) -> (SgipClient, mpsc::Receiver<ClientEvent>, TcpListener) {
    let (listener, addr) = common::local_listener().await;
    let (client, events) = SgipClient::start(settings(addr, secret, window));
    (client, events, listener)
}

fn fifty_segments() -> Vec<OutboundSegment> {
    common::fifty_segments(
        split_text,
        |i| format!("verification code {i:04}"),
        ["1300013", "1861234"],
    )
}

#[tokio::test]
async fn fifty_submits_are_accepted_and_every_report_comes_back_over_the_gateway_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = dir.path().join("sim.jsonl");
    let (client, mut events, listener) = client_and_sim_listener(PASSWORD, 16).await;
    let sp_addr = client.listen_addr().expect("client listens");
    let sim = Sim::start(listener, sp_addr, Some(&record), SimFaults::default());
    wait_connected(&mut events).await;
    assert!(client.is_connected());

    let carrier_ids = submit_all_accepted(&client, &fifty_segments(), |carrier_id| {
        let parts: Vec<&str> = carrier_id.split('-').collect();
        assert_eq!(parts.len(), 3, "node-time-seq: {carrier_id}");
        assert_eq!(parts[0], NODE_ID.to_string());
        assert_eq!(parts[1].len(), 10, "MMDDhhmmss: {carrier_id}");
    })
    .await;
    assert_eq!(carrier_ids.len(), 50);
    expect_reports(&mut events, &carrier_ids).await;

    // An MO goes the same way as the reports: on the gateway's connection to the SP.
    sim.mo
        .send(SimMo {
            account: LOGIN.into(),
            from: "13000130000".into(),
            to: SP_NUMBER.into(),
            text: "退订".into(),
        })
        .await
        .expect("simulator takes the MO");
    wait_event(&mut events, "the MO", |e| {
        matches!(e, ClientEvent::Mo(m) if m.text == "退订" && m.src == "13000130000" && m.dest == SP_NUMBER)
    })
    .await;

    // The simulator's record: one submit line per segment with the decoded text, keyed by the
    // same id the client was given, and one report line per segment.
    let records = read_records(&record);
    check_fifty_submit_records(&records, &carrier_ids, LOGIN, "verification code 0007");
    let reports: HashSet<_> = records
        .iter()
        .filter(|r| r["kind"] == "report")
        .filter_map(|r| r["msg_id"].as_str())
        .collect();
    assert_eq!(reports.len(), 50);

    shutdown_and_refuse(&client, fifty_segments().remove(0)).await;
    sim.stop().await;
}

#[tokio::test]
async fn window_bounds_outstanding_submits() {
    // Each Submit_Resp takes 200 ms: with a window of 2, six submits need three rounds.
    let faults = SimFaults {
        submit_resp_delay: Duration::from_millis(200),
        ..SimFaults::default()
    };
    let (client, mut events, listener) = client_and_sim_listener(PASSWORD, 2).await;
    let sim = Sim::start(
        listener,
        client.listen_addr().expect("listens"),
        None,
        faults,
    );
    six_submits_take_three_rounds(&client, &mut events, fifty_segments()).await;
    sim.stop().await;
}

#[tokio::test]
async fn wrong_password_is_refused_by_the_gateway() {
    let (mut client_settings, listener) = {
        let (listener, addr) = common::local_listener().await;
        (settings(addr, "not-the-password", 16), listener)
    };
    client_settings.response_timeout = Duration::from_millis(300);
    let (client, mut events) = SgipClient::start(client_settings);
    let sim = Sim::start(
        listener,
        client.listen_addr().expect("listens"),
        None,
        SimFaults::default(),
    );
    let seg = fifty_segments().remove(0);
    refused_logins_keep_the_link_down(&client, &mut events, "a refused Bind", "Result 1", 2, seg)
        .await;
    sim.stop().await;
}

#[tokio::test]
async fn unknown_option_leaves_the_link_down_and_says_why() {
    let mut s = settings("127.0.0.1:9".parse().expect("addr"), PASSWORD, 16);
    s.options.insert("bind".into(), "transceiver".into());
    let (client, mut events) = SgipClient::start(s);
    wait_event(
        &mut events,
        "the refusal",
        |e| matches!(e, ClientEvent::Disconnected { reason } if reason.contains("unknown option \"bind\"")),
    )
    .await;
    assert!(!client.is_connected());
    assert_eq!(client.listen_addr(), None);
    within("client shutdown", client.shutdown()).await;
}

/// The next report event (with its ack still pending); link state events on the way are
/// skipped.
async fn next_report(events: &mut mpsc::Receiver<ClientEvent>) -> DeliveryReport {
    within("a report", async {
        loop {
            match events.recv().await {
                Some(ClientEvent::Report(r)) => return r,
                Some(ClientEvent::Connected | ClientEvent::Disconnected { .. }) => {}
                other => panic!("expected a report, got {other:?}"),
            }
        }
    })
    .await
}

/// Shows that the client has sent nothing else: an MO sent now is answered once recorded, and
/// its Deliver_Resp is the next PDU on the connection (a Report_Resp sent earlier would come
/// first).
async fn assert_nothing_else_sent(
    framed: &mut Framed<TcpStream, SgipCodec>,
    events: &mut mpsc::Receiver<ClientEvent>,
    counter: u32,
) {
    let sequence = SequenceNumber::new(4_020_000_001, 1_125_000_000, 900 + counter);
    framed
        .send(Pdu::new(
            sequence,
            Body::Deliver(Box::new(Deliver {
                user_number: "8613000130000".into(),
                sp_number: SP_NUMBER.into(),
                tp_pid: 0,
                tp_udhi: 0,
                message_coding: 0,
                message_content: b"PING".to_vec(),
            })),
        ))
        .await
        .expect("send Deliver");
    assert_eq!(take_mo(events).await.text, "PING");
    let next = next_pdu(framed, "Deliver_Resp").await;
    assert_eq!(
        (next.sequence, next.body),
        (sequence, Body::DeliverResp(Resp { result: 0 })),
        "the client answered something else first"
    );
}

fn report_about(counter: u32) -> Report {
    Report {
        submit_sequence: SequenceNumber::new(NODE_ID, 1_125_070_100, counter),
        report_type: 0,
        user_number: "8613000130000".into(),
        state: 0,
        error_code: 0,
    }
}

/// Report_Resp follows the application's ack, on the gateway's connection to the SP's listener
/// and on the SP's own connection alike; a dropped ack leaves the Report unanswered, and the
/// gateway's resend is answered once acked.
#[tokio::test]
async fn a_report_is_answered_only_after_its_ack_and_never_when_the_ack_is_dropped() {
    let (client, mut events, sim_listener) = client_and_sim_listener(PASSWORD, 16).await;
    let sp = client.listen_addr().expect("listens");
    let (mut gw, result) = gateway_bind(sp, login_type::SMG_TO_SP, PASSWORD).await;
    assert_eq!(result, 0);

    let first = SequenceNumber::new(4_020_000_001, 1_125_000_000, 20);
    gw.send(Pdu::new(first, Body::Report(report_about(1))))
        .await
        .expect("send Report");
    let report = next_report(&mut events).await;
    assert_eq!(report.carrier_id, format!("{NODE_ID}-1125070100-1"));
    // A second report is answered on its own ack, ahead of the first.
    let second = SequenceNumber::new(4_020_000_001, 1_125_000_000, 21);
    gw.send(Pdu::new(second, Body::Report(report_about(2))))
        .await
        .expect("send Report");
    let other = next_report(&mut events).await;
    assert_nothing_else_sent(&mut gw, &mut events, 2).await;
    other.ack.done();
    let resp = next_pdu(&mut gw, "Report_Resp").await;
    assert_eq!(
        (resp.sequence, resp.body),
        (second, Body::ReportResp(Resp { result: 0 }))
    );

    // The node lost the first report before recording it: no answer, ever.
    drop(report);
    assert_nothing_else_sent(&mut gw, &mut events, 3).await;
    // So the gateway sends it again, and this time it is recorded.
    let resent = SequenceNumber::new(4_020_000_001, 1_125_000_000, 22);
    gw.send(Pdu::new(resent, Body::Report(report_about(1))))
        .await
        .expect("send Report");
    let report = next_report(&mut events).await;
    assert_eq!(report.carrier_id, format!("{NODE_ID}-1125070100-1"));
    assert_nothing_else_sent(&mut gw, &mut events, 5).await;
    report.ack.done();
    let resp = next_pdu(&mut gw, "Report_Resp").await;
    assert_eq!(
        (resp.sequence, resp.body),
        (resent, Body::ReportResp(Resp { result: 0 }))
    );

    // A Report on the SP's own connection (the session engine's path) waits the same way.
    let mut sp_conn = accept_sp(&sim_listener).await;
    wait_connected(&mut events).await;
    let on_sp = SequenceNumber::new(4_020_000_001, 1_125_000_000, 23);
    sp_conn
        .send(Pdu::new(on_sp, Body::Report(report_about(3))))
        .await
        .expect("send Report");
    let report = next_report(&mut events).await;
    assert_eq!(report.carrier_id, format!("{NODE_ID}-1125070100-3"));
    assert_nothing_else_sent(&mut sp_conn, &mut events, 4).await;
    report.ack.done();
    let resp = next_pdu(&mut sp_conn, "Report_Resp on the SP connection").await;
    assert_eq!(
        (resp.sequence, resp.body),
        (on_sp, Body::ReportResp(Resp { result: 0 }))
    );
    within("client shutdown", client.shutdown()).await;
}

/// A hand-driven gateway (SMG) connection to the client's listener.
async fn gateway_bind(
    to: SocketAddr,
    kind: u8,
    password: &str,
) -> (Framed<TcpStream, SgipCodec>, u8) {
    let stream = within("connect to the SP", TcpStream::connect(to))
        .await
        .expect("connect");
    let mut framed = Framed::new(stream, SgipCodec);
    framed
        .send(Pdu::new(
            SequenceNumber::new(4_020_000_001, 1_125_000_000, 1),
            Body::Bind(Bind {
                login_type: kind,
                login_name: LOGIN.into(),
                login_password: password.into(),
            }),
        ))
        .await
        .expect("send Bind");
    let resp = next_pdu(&mut framed, "Bind_Resp").await;
    match resp.body {
        Body::BindResp(Resp { result }) => (framed, result),
        other => panic!("expected Bind_Resp, got {other:?}"),
    }
}

#[tokio::test]
async fn the_sp_listener_refuses_a_bad_gateway_bind_and_serves_a_good_one() {
    let (client, mut events, _sim_listener) = client_and_sim_listener(PASSWORD, 16).await;
    let sp = client.listen_addr().expect("listens");

    let (mut refused, result) = gateway_bind(sp, login_type::SMG_TO_SP, "wrong").await;
    assert_eq!(result, 1, "illegal login");
    assert!(
        matches!(
            within("close after refusal", refused.next()).await,
            None | Some(Err(_))
        ),
        "the refused connection is closed"
    );
    let (_, result) = gateway_bind(sp, login_type::SP_TO_SMG, PASSWORD).await;
    assert_eq!(result, 4, "login type error");

    let (mut gw, result) = gateway_bind(sp, login_type::SMG_TO_SP, PASSWORD).await;
    assert_eq!(result, 0);
    let report_seq = SequenceNumber::new(4_020_000_001, 1_125_000_000, 2);
    gw.send(Pdu::new(
        report_seq,
        Body::Report(Report {
            submit_sequence: SequenceNumber::new(NODE_ID, 1_125_070_100, 9),
            report_type: 0,
            user_number: "8613000130000".into(),
            state: 0,
            error_code: 0,
        }),
    ))
    .await
    .expect("send Report");
    let mo_seq = SequenceNumber::new(4_020_000_001, 1_125_000_000, 3);
    gw.send(Pdu::new(
        mo_seq,
        Body::Deliver(Box::new(Deliver {
            user_number: "8613000130000".into(),
            sp_number: SP_NUMBER.into(),
            tp_pid: 0,
            tp_udhi: 0,
            message_coding: 0,
            message_content: b"STOP".to_vec(),
        })),
    ))
    .await
    .expect("send Deliver");
    // Each is answered once the application has recorded it: the MO first here.
    let report = next_report(&mut events).await;
    assert_eq!(report.carrier_id, format!("{NODE_ID}-1125070100-9"));
    assert!(report.delivered);
    assert_eq!(report.dest, "13000130000");
    let mo = take_mo(&mut events).await;
    assert_eq!((mo.text.as_str(), mo.src.as_str()), ("STOP", "13000130000"));
    let resp = next_pdu(&mut gw, "Deliver_Resp").await;
    assert_eq!(
        (resp.sequence, resp.body),
        (mo_seq, Body::DeliverResp(Resp { result: 0 }))
    );
    assert_nothing_else_sent(&mut gw, &mut events, 1).await;
    report.ack.done();
    let resp = next_pdu(&mut gw, "Report_Resp").await;
    assert_eq!(
        (resp.sequence, resp.body),
        (report_seq, Body::ReportResp(Resp { result: 0 }))
    );
    gw.send(Pdu::new(report_seq, Body::Unbind))
        .await
        .expect("send Unbind");
    let resp = next_pdu(&mut gw, "Unbind_Resp").await;
    assert_eq!(resp.body, Body::UnbindResp);
    within("client shutdown", client.shutdown()).await;
}

/// A scripted gateway accepting the SP's connection: answers the Bind, returns the connection.
async fn accept_sp(listener: &TcpListener) -> Framed<TcpStream, SgipCodec> {
    let mut framed = common::accept_framed(listener, SgipCodec).await;
    let bind = next_pdu(&mut framed, "Bind").await;
    assert!(matches!(
        bind.body,
        Body::Bind(ref b) if b.login_type == login_type::SP_TO_SMG && b.login_name == LOGIN
            && b.login_password == PASSWORD
    ));
    assert_eq!(bind.sequence.node_id, NODE_ID);
    framed
        .send(Pdu::new(bind.sequence, Body::BindResp(Resp { result: 0 })))
        .await
        .expect("send Bind_Resp");
    framed
}

/// Answers the next Submit with `result`, checking the wire form; returns its sequence number.
async fn answer_submit(framed: &mut Framed<TcpStream, SgipCodec>, result: u8) -> SequenceNumber {
    let pdu = next_pdu(framed, "Submit").await;
    let Body::Submit(submit) = pdu.body else {
        panic!("expected Submit, got {pdu:?}");
    };
    assert_eq!(submit.user_numbers, vec!["8613000130000".to_string()]);
    assert_eq!(submit.sp_number, SP_NUMBER);
    assert_eq!(submit.corp_id, "12345", "default corp id from the node id");
    assert_eq!(submit.service_type, "HERALD");
    framed
        .send(Pdu::new(pdu.sequence, Body::SubmitResp(Resp { result })))
        .await
        .expect("send Submit_Resp");
    pdu.sequence
}

fn one_segment() -> OutboundSegment {
    OutboundSegment {
        dest: "13000130000".into(),
        segment: split_text("hello").remove(0),
        registered_delivery: true,
    }
}

#[tokio::test]
async fn idle_links_close_quietly_and_reopen_on_demand() {
    let (listener, addr) = common::local_listener().await;
    let mut s = settings(addr, PASSWORD, 16);
    s.heartbeat_interval = Duration::from_millis(200);
    let (client, mut events) = SgipClient::start(s);

    let mut gw = accept_sp(&listener).await;
    wait_connected(&mut events).await;
    let submit = tokio::spawn({
        let client = client.clone();
        async move { client.submit(one_segment()).await }
    });
    let sequence = answer_submit(&mut gw, 0).await;
    let outcome = within("the submit", submit).await.expect("task");
    assert_eq!(
        outcome,
        Ok(SubmitOutcome::Accepted {
            carrier_id: sequence.to_string()
        }),
        "the carrier id is the Submit's sequence number"
    );

    // Nothing to send: the client unbinds and closes, yet stays available, and says nothing.
    let unbind = next_pdu(&mut gw, "the client's Unbind").await;
    assert_eq!(unbind.body, Body::Unbind);
    gw.send(Pdu::new(unbind.sequence, Body::UnbindResp))
        .await
        .expect("send");
    assert!(
        matches!(within("the close", gw.next()).await, None | Some(Err(_))),
        "connection closed after Unbind"
    );
    assert!(
        client.is_connected(),
        "an idle-closed link is still available"
    );

    // The next submit opens a new connection.
    let submit = tokio::spawn({
        let client = client.clone();
        async move { client.submit(one_segment()).await }
    });
    let mut gw = accept_sp(&listener).await;
    let sequence = answer_submit(&mut gw, 11).await;
    // This time the gateway closes the link first (well within the client's idle time); that
    // too is quiet.
    gw.send(Pdu::new(
        SequenceNumber::new(4_020_000_001, 1_125_000_000, 5),
        Body::Unbind,
    ))
    .await
    .expect("send Unbind");
    let outcome = within("the second submit", submit).await.expect("task");
    assert_eq!(
        outcome,
        Ok(SubmitOutcome::Rejected {
            code: 11,
            retryable: true,
            description: "node busy".into()
        })
    );
    assert_eq!(sequence.node_id, NODE_ID);
    let resp = next_pdu(&mut gw, "the client's Unbind_Resp").await;
    assert_eq!(resp.body, Body::UnbindResp);
    let submit = tokio::spawn({
        let client = client.clone();
        async move { client.submit(one_segment()).await }
    });
    let mut gw = accept_sp(&listener).await;
    answer_submit(&mut gw, 0).await;
    assert!(matches!(
        within("the third submit", submit).await.expect("task"),
        Ok(SubmitOutcome::Accepted { .. })
    ));

    within("client shutdown", client.shutdown()).await;
    // Only the first connection was announced: idle closes are not failures. (Shutting down a
    // live connection may report it.)
    let mut rest = Vec::new();
    while let Ok(ev) = events.try_recv() {
        rest.push(ev);
    }
    assert!(
        !rest.iter().any(|e| match e {
            ClientEvent::Connected => true,
            ClientEvent::Disconnected { reason } => reason != "shut down",
            _ => false,
        }),
        "{rest:?}"
    );
}
