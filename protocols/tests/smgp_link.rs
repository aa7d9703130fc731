//! The SMGP client against the SMGP simulator (and a scripted gateway) over real TCP on
//! 127.0.0.1. Every wait has a deadline; no sleep is used as an assertion.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use herald_protocols::link::{LinkClient, Protocol};
use herald_protocols::sim::smgp::{run_on, SimConfig, SimFaults};
use herald_protocols::smgp::{
    login_mode, tag, Body, Deliver, DeliverContent, LoginResp, MsgId10, Pdu, SmgpCodec, Tlvs,
    VERSION_3_0,
};
use herald_protocols::smgp_client::SmgpClient;
use herald_protocols::text::split_text_140;
use herald_protocols::{ClientEvent, LinkSettings, OutboundSegment, SendError, SubmitOutcome};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::codec::Framed;

const ACCOUNT: &str = "10690001";
const SECRET: &str = "s3cret";
const DEADLINE: Duration = Duration::from_secs(20);

struct Sim {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Sim {
    async fn start(record: Option<&Path>, faults: SimFaults) -> Sim {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let config = SimConfig {
            listen: addr.to_string(),
            accounts: vec![(ACCOUNT.into(), SECRET.into())],
            report_delay: Duration::from_millis(50),
            delivered_ratio: 0.7,
            record: record.map(Path::to_path_buf),
            gateway_id: 10061,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run_on(listener, config, faults, async move {
            let _ = stopped.await;
        }));
        Sim {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = timeout(DEADLINE, &mut self.task).await;
        assert!(
            matches!(result, Ok(Ok(Ok(())))),
            "simulator ended badly: {result:?}"
        );
    }
}

fn settings(addr: SocketAddr, secret: &str, window: usize) -> LinkSettings {
    LinkSettings {
        name: "smgp-test".into(),
        addr: addr.to_string(),
        account: ACCOUNT.into(),
        secret: secret.into(),
        service_id: "HERALD".into(),
        src_id: "106900011234".into(),
        window,
        heartbeat_interval: Duration::from_secs(30),
        response_timeout: Duration::from_secs(5),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(400),
        options: Default::default(),
    }
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn wait_event(
    events: &mut mpsc::Receiver<ClientEvent>,
    what: &str,
    pred: impl Fn(&ClientEvent) -> bool,
) -> Vec<ClientEvent> {
    within(what, async {
        let mut skipped = Vec::new();
        loop {
            match events.recv().await {
                Some(ev) if pred(&ev) => return skipped,
                Some(ev) => skipped.push(ev),
                None => panic!("event channel closed while waiting for {what}"),
            }
        }
    })
    .await
}

/// 20 single ASCII parts + 10 three-part Chinese messages = 50 segments.
fn fifty_segments() -> Vec<OutboundSegment> {
    let mut out = Vec::new();
    for i in 0..20 {
        for segment in split_text_140(&format!("verification code {i:04}")) {
            out.push(OutboundSegment {
                dest: format!("1330013{i:04}"),
                segment,
                registered_delivery: true,
            });
        }
    }
    for i in 0..10 {
        let text = format!("{i}号通知：").repeat(30);
        for segment in split_text_140(&text) {
            assert_eq!(segment.total, 3);
            out.push(OutboundSegment {
                dest: format!("1891234{i:04}"),
                segment,
                registered_delivery: true,
            });
        }
    }
    assert_eq!(out.len(), 50);
    out
}

#[tokio::test]
async fn fifty_submits_are_accepted_and_all_reports_arrive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = dir.path().join("sim.jsonl");
    let sim = Sim::start(Some(&record), SimFaults::default()).await;
    let (client, mut events) = LinkClient::start(Protocol::Smgp, settings(sim.addr, SECRET, 16));
    assert!(matches!(client, LinkClient::Smgp(_)));
    wait_event(&mut events, "Connected", |e| *e == ClientEvent::Connected).await;
    assert!(client.is_connected());

    let segments = fifty_segments();
    let submits = segments.iter().cloned().map(|seg| {
        let client = client.clone();
        tokio::spawn(async move { client.submit(seg).await })
    });
    let results = within("50 submits", futures::future::join_all(submits)).await;
    let mut carrier_ids = HashMap::new();
    for (seg, result) in segments.iter().zip(results) {
        match result.expect("submit task") {
            Ok(SubmitOutcome::Accepted { carrier_id }) => {
                let id: MsgId10 = carrier_id.parse().expect("20 hex digits");
                // BCD: gateway code 010061 leads every id.
                assert!(carrier_id.starts_with("010061"), "{carrier_id}");
                assert_eq!(id.to_string(), carrier_id);
                assert!(carrier_ids.insert(carrier_id, seg.dest.clone()).is_none());
            }
            other => panic!("submit not accepted: {other:?}"),
        }
    }
    assert_eq!(carrier_ids.len(), 50);

    let mut reported = HashSet::new();
    within("50 reports", async {
        while reported.len() < 50 {
            match events.recv().await {
                Some(ClientEvent::Report(r)) => {
                    // Recorded, as far as this test is concerned: let the carrier have its acknowledgement.
                    let r = {
                        let mut r = r;
                        std::mem::take(&mut r.ack).done();
                        r
                    };
                    let dest = carrier_ids
                        .get(&r.carrier_id)
                        .unwrap_or_else(|| panic!("report for unknown id {}", r.carrier_id));
                    assert_eq!(&r.dest, dest);
                    assert!(r.stat == "DELIVRD" || r.stat == "UNDELIV", "{}", r.stat);
                    assert_eq!(r.delivered, r.stat == "DELIVRD");
                    assert_eq!(r.submit_time.len(), 10);
                    assert_eq!(r.done_time.len(), 10);
                    assert!(reported.insert(r.carrier_id), "duplicate report");
                }
                Some(ClientEvent::Disconnected { reason }) => panic!("link dropped: {reason}"),
                Some(_) => {}
                None => panic!("events closed"),
            }
        }
    })
    .await;

    let lines = std::fs::read_to_string(&record).expect("record file");
    let records: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let submits: Vec<_> = records.iter().filter(|r| r["kind"] == "submit").collect();
    assert_eq!(submits.len(), 50);
    for s in &submits {
        let id = s["msg_id"].as_str().expect("msg_id string");
        assert_eq!(carrier_ids.get(id).map(String::as_str), s["dest"].as_str());
        assert_eq!(s["account"], ACCOUNT);
        assert!(s["at_ms"].as_i64().is_some());
    }
    assert!(submits
        .iter()
        .any(|s| s["text"] == "verification code 0007" && s["pk_total"] == 1));
    let chinese: Vec<_> = submits.iter().filter(|s| s["pk_total"] == 3).collect();
    assert_eq!(chinese.len(), 30);
    assert!(chinese
        .iter()
        .all(|s| s["text"].as_str().is_some_and(|t| t.contains("号通知"))));
    let numbers: HashSet<_> = chinese.iter().map(|s| s["pk_number"].clone()).collect();
    assert_eq!(numbers.len(), 3, "PkNumber TLV carried 1..=3");
    let reports = records.iter().filter(|r| r["kind"] == "report").count();
    assert_eq!(reports, 50);

    within("client shutdown", client.shutdown()).await;
    assert!(!client.is_connected());
    let after = client.submit(fifty_segments().remove(0)).await;
    assert_eq!(after, Err(SendError::Closed));
    sim.stop().await;
}

#[tokio::test]
async fn window_bounds_outstanding_submits() {
    // Each Submit_Resp takes 200 ms: with a window of 2, six submits need three rounds.
    let faults = SimFaults {
        submit_resp_delay: Duration::from_millis(200),
        ..SimFaults::default()
    };
    let sim = Sim::start(None, faults).await;
    let (client, mut events) = SmgpClient::start(settings(sim.addr, SECRET, 2));
    wait_event(&mut events, "Connected", |e| *e == ClientEvent::Connected).await;
    let started = tokio::time::Instant::now();
    let submits = fifty_segments().into_iter().take(6).map(|seg| {
        let client = client.clone();
        tokio::spawn(async move { client.submit(seg).await })
    });
    let results = within("6 submits", futures::future::join_all(submits)).await;
    assert!(started.elapsed() >= Duration::from_millis(600));
    for r in results {
        assert!(matches!(
            r.expect("task"),
            Ok(SubmitOutcome::Accepted { .. })
        ));
    }
    within("client shutdown", client.shutdown()).await;
    sim.stop().await;
}

#[tokio::test]
async fn wrong_secret_fails_login_and_keeps_retrying() {
    let sim = Sim::start(None, SimFaults::default()).await;
    let mut s = settings(sim.addr, "not-the-secret", 16);
    s.response_timeout = Duration::from_millis(300);
    let (client, mut events) = SmgpClient::start(s);
    for attempt in 0..3 {
        let skipped = wait_event(
            &mut events,
            "a refused login",
            |e| matches!(e, ClientEvent::Disconnected { reason } if reason.contains("Status 21")),
        )
        .await;
        assert!(
            !skipped.contains(&ClientEvent::Connected),
            "attempt {attempt} connected"
        );
        assert!(!client.is_connected());
    }
    assert_eq!(
        client.submit(fifty_segments().remove(0)).await,
        Err(SendError::NotConnected)
    );
    within("client shutdown", client.shutdown()).await;
    sim.stop().await;
}

#[tokio::test]
async fn unknown_option_keeps_the_link_down_and_says_why() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut s = settings(listener.local_addr().expect("addr"), SECRET, 16);
    s.options.insert("bind".into(), "transceiver".into());
    let (client, mut events) = SmgpClient::start(s);
    wait_event(&mut events, "the refusal", |e| {
        matches!(e, ClientEvent::Disconnected { reason } if reason.contains("unknown option \"bind\""))
    })
    .await;
    // It never connected.
    assert!(timeout(Duration::from_millis(200), listener.accept())
        .await
        .is_err());
    within("client shutdown", client.shutdown()).await;
}

/// A hand-driven gateway: LoginMode option, heartbeats, MO delivery, Exit from the gateway.
#[tokio::test]
async fn client_answers_the_gateway_and_heartbeats_when_idle() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut s = settings(addr, SECRET, 16);
    s.heartbeat_interval = Duration::from_millis(100);
    s.response_timeout = Duration::from_millis(300);
    s.options.insert("login-mode".into(), "receive".into());
    let (client, mut events) = SmgpClient::start(s);

    let (stream, _) = within("client connects", listener.accept())
        .await
        .expect("accept");
    let mut peer = Framed::new(stream, SmgpCodec);
    let login = within("Login", peer.next())
        .await
        .expect("stream open")
        .expect("valid PDU");
    assert!(
        matches!(login.body, Body::Login(ref l) if l.client_id == ACCOUNT
            && l.login_mode == login_mode::RECEIVE && l.client_version == VERSION_3_0)
    );
    peer.send(Pdu::new(
        login.sequence_id,
        Body::LoginResp(LoginResp {
            status: 0,
            authenticator_server: [0; 16],
            server_version: VERSION_3_0,
        }),
    ))
    .await
    .expect("send");
    wait_event(&mut events, "Connected", |e| *e == ClientEvent::Connected).await;

    let probe = within("Active_Test", peer.next())
        .await
        .expect("open")
        .expect("valid");
    assert_eq!(probe.body, Body::ActiveTest);
    peer.send(Pdu::new(probe.sequence_id, Body::ActiveTestResp))
        .await
        .expect("send");

    peer.send(Pdu::new(900, Body::ActiveTest))
        .await
        .expect("send");
    let mo_id = MsgId10([0x01, 0x00, 0x61, 0x01, 0x16, 0x17, 0x00, 0x00, 0x00, 0x42]);
    let mo = Deliver {
        msg_id: mo_id,
        msg_format: 8,
        recv_time: "20240116170001".into(),
        src_term_id: "13300000001".into(),
        dest_term_id: "10690001".into(),
        content: DeliverContent::Message(vec![0x90, 0x00, 0x8B, 0xA2]), // 退订
        reserve: String::new(),
        tlvs: Tlvs::default().with_u8(tag::TP_UDHI, 0),
    };
    peer.send(Pdu::new(901, Body::Deliver(Box::new(mo))))
        .await
        .expect("send");
    let mut answered = HashSet::new();
    within("answers to Active_Test and Deliver", async {
        while answered.len() < 2 {
            let pdu = peer.next().await.expect("open").expect("valid");
            match pdu.body {
                Body::ActiveTestResp => assert!(answered.insert(pdu.sequence_id)),
                Body::DeliverResp(r) => {
                    assert_eq!((r.msg_id, r.status), (mo_id, 0));
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
    wait_event(&mut events, "the MO event", |e| {
        matches!(e, ClientEvent::Mo(m) if m.text == "退订" && m.src == "13300000001"
            && m.carrier_id == "01006101161700000042")
    })
    .await;

    // The gateway ends the session with Exit and expects Exit_Resp.
    peer.send(Pdu::new(77, Body::Exit)).await.expect("send");
    within("Exit_Resp", async {
        loop {
            let pdu = peer.next().await.expect("open").expect("valid");
            if pdu.body == Body::ExitResp {
                assert_eq!(pdu.sequence_id, 77);
                return;
            }
        }
    })
    .await;
    wait_event(&mut events, "Disconnected after Exit", |e| {
        matches!(e, ClientEvent::Disconnected { .. })
    })
    .await;

    // On shutdown the client sends Exit itself.
    let (stream, _) = within("client reconnects", listener.accept())
        .await
        .expect("accept");
    let mut peer = Framed::new(stream, SmgpCodec);
    let login = within("Login", peer.next())
        .await
        .expect("open")
        .expect("valid");
    peer.send(Pdu::new(
        login.sequence_id,
        Body::LoginResp(LoginResp {
            status: 0,
            authenticator_server: [0; 16],
            server_version: VERSION_3_0,
        }),
    ))
    .await
    .expect("send");
    wait_event(&mut events, "Connected", |e| *e == ClientEvent::Connected).await;
    let shutdown = tokio::spawn({
        let client = client.clone();
        async move { client.shutdown().await }
    });
    within("Exit from the client", async {
        loop {
            let pdu = peer.next().await.expect("open").expect("valid");
            match pdu.body {
                Body::Exit => {
                    peer.send(Pdu::new(pdu.sequence_id, Body::ExitResp))
                        .await
                        .expect("send");
                    return;
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
    within("client shutdown", shutdown).await.expect("task");
}
