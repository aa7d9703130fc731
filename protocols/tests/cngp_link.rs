//! The CNGP client against the CNGP simulator (and a scripted gateway) over real TCP on
//! 127.0.0.1. Every wait has a deadline; no sleep is used as an assertion.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::telecom::{self, Gateway};
use common::{
    accept_framed, local_listener, next_pdu, skip_to, take_mo, wait_connected, wait_event, within,
};
use futures::future::BoxFuture;
use futures::{FutureExt, SinkExt, StreamExt};
use herald_protocols::cngp::{
    login_mode, tag, Body, CngpCodec, Deliver, DeliverContent, LoginResp, MsgId10, Pdu, Tlvs,
    VERSION_2_0,
};
use herald_protocols::cngp_client::CngpClient;
use herald_protocols::link::{CarrierClient, Protocol};
use herald_protocols::sim::cngp::{run_on, SimConfig, SimFaults};
use herald_protocols::{ClientEvent, SubmitOutcome};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

const ACCOUNT: &str = "SP00000001";
const SECRET: &str = telecom::SECRET;

/// The CNGP simulator is `sim::telecom`'s core with CNGP's PDUs.
fn run_sim(
    listener: TcpListener,
    config: SimConfig,
    faults: SimFaults,
    shutdown: BoxFuture<'static, ()>,
) -> BoxFuture<'static, std::io::Result<()>> {
    run_on(listener, config, faults, shutdown).boxed()
}

const CNGP: Gateway<CngpClient> = Gateway {
    protocol: Protocol::Cngp,
    name: "cngp-test",
    account: ACCOUNT,
    src_id: "106900021234",
    gateway_id: 20001,
    dests: ["1300013", "1561234"],
    start: CngpClient::start,
    run: run_sim,
};

#[tokio::test]
async fn fifty_submits_are_accepted_and_all_reports_arrive() {
    CNGP.fifty_submits_are_accepted_and_all_reports_arrive(
        |link| matches!(link.carrier(), CarrierClient::Cngp(_)),
        "the UDH carried parts 1..=3",
    )
    .await;
}

#[tokio::test]
async fn window_bounds_outstanding_submits() {
    CNGP.window_bounds_outstanding_submits().await;
}

#[tokio::test]
async fn wrong_secret_fails_login_and_keeps_retrying() {
    CNGP.wrong_secret_fails_login_and_keeps_retrying().await;
}

#[tokio::test]
async fn unknown_option_keeps_the_link_down_and_says_why() {
    CNGP.unknown_option_keeps_the_link_down_and_says_why().await;
}

/// Accepts the client's connection and answers its Login; `check` sees the Login first.
async fn accept_login(
    listener: &TcpListener,
    check: impl FnOnce(&Pdu),
) -> Framed<TcpStream, CngpCodec> {
    let mut peer = accept_framed(listener, CngpCodec).await;
    let login = next_pdu(&mut peer, "Login").await;
    check(&login);
    peer.send(Pdu::new(
        login.sequence_id,
        Body::LoginResp(LoginResp {
            authenticator_server: [0; 16],
            version: VERSION_2_0,
        }),
    ))
    .await
    .expect("send");
    peer
}

/// The next PDU other than an Active_Test, which is answered on the way (an idle client
/// probes). No deadline of its own: callers wait `within` one.
async fn next_answering_probes(peer: &mut Framed<TcpStream, CngpCodec>) -> Pdu {
    loop {
        let pdu = peer.next().await.expect("open").expect("valid");
        if pdu.body != Body::ActiveTest {
            return pdu;
        }
        peer.send(Pdu::new(pdu.sequence_id, Body::ActiveTestResp))
            .await
            .expect("send");
    }
}

/// A hand-driven gateway: LoginMode option, heartbeats, MO delivery, Exit from the gateway.
#[tokio::test]
async fn client_answers_the_gateway_and_heartbeats_when_idle() {
    let (listener, addr) = local_listener().await;
    let mut s = CNGP.settings(addr, SECRET, 16);
    s.heartbeat_interval = Duration::from_millis(100);
    s.response_timeout = Duration::from_millis(300);
    s.options.insert("login-mode".into(), "receive".into());
    let (client, mut events) = CngpClient::start(s);

    let mut peer = accept_login(&listener, |login| {
        assert!(
            matches!(login.body, Body::Login(ref l) if l.client_id == ACCOUNT
                && l.login_mode == login_mode::RECEIVE && l.version == VERSION_2_0)
        );
    })
    .await;
    wait_connected(&mut events).await;

    let probe = next_pdu(&mut peer, "Active_Test").await;
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
        src_term_id: "13000000001".into(),
        dest_term_id: "10690002".into(),
        content: DeliverContent::Message(vec![0x90, 0x00, 0x8B, 0xA2]), // 退订
        tlvs: Tlvs::default().with_u8(tag::PROTOCOL_ID, 0),
    };
    peer.send(Pdu::new(901, Body::Deliver(Box::new(mo))))
        .await
        .expect("send");
    // The Deliver is answered once the application has recorded the MO.
    let mo = take_mo(&mut events).await;
    assert_eq!(
        (mo.text.as_str(), mo.src.as_str(), mo.carrier_id.as_str()),
        ("退订", "13000000001", "01006101161700000042")
    );
    let mut answered = HashSet::new();
    within("answers to Active_Test and Deliver", async {
        while answered.len() < 2 {
            let pdu = next_answering_probes(&mut peer).await;
            match pdu.body {
                Body::ActiveTestResp => assert!(answered.insert(pdu.sequence_id)),
                Body::DeliverResp(r) => {
                    assert_eq!((r.msg_id, pdu.command_status), (mo_id, 0));
                    assert!(answered.insert(pdu.sequence_id));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(answered, HashSet::from([900, 901]));

    // A busy gateway answers through Command_Status: retryable; a structure error is not.
    for (status, retryable) in [(1u32, true), (10, false)] {
        let submit = tokio::spawn({
            let client = client.clone();
            async move { client.submit(CNGP.fifty_segments().remove(0)).await }
        });
        let pdu = within("the Submit", next_answering_probes(&mut peer)).await;
        let Body::Submit(s) = pdu.body else {
            panic!("unexpected {:?}", pdu.body);
        };
        assert_eq!(s.sp_id, ACCOUNT);
        assert_eq!(s.tlvs.u8(tag::PROTOCOL_ID), Some(0));
        peer.send(Pdu::with_status(
            pdu.sequence_id,
            status,
            Body::SubmitResp(herald_protocols::cngp::SubmitResp {
                msg_id: mo_id,
                tlvs: Tlvs::default().with_u8(tag::CONGESTION_STATE, 90),
            }),
        ))
        .await
        .expect("send");
        let outcome = within("the outcome", submit).await.expect("task");
        assert!(
            matches!(outcome, Ok(SubmitOutcome::Rejected { code, retryable: r, .. })
                if code == status && r == retryable),
            "{outcome:?}"
        );
    }

    // The gateway ends the session with Exit and expects Exit_Resp.
    peer.send(Pdu::new(77, Body::Exit)).await.expect("send");
    let resp = skip_to(&mut peer, "Exit_Resp", |p| p.body == Body::ExitResp).await;
    assert_eq!(resp.sequence_id, 77);
    wait_event(&mut events, "Disconnected after Exit", |e| {
        matches!(e, ClientEvent::Disconnected { .. })
    })
    .await;

    // On shutdown the client sends Exit itself.
    let mut peer = accept_login(&listener, |_| {}).await;
    wait_connected(&mut events).await;
    let shutdown = tokio::spawn({
        let client = client.clone();
        async move { client.shutdown().await }
    });
    let exit = within("Exit from the client", next_answering_probes(&mut peer)).await;
    assert_eq!(exit.body, Body::Exit, "unexpected {exit:?}");
    peer.send(Pdu::new(exit.sequence_id, Body::ExitResp))
        .await
        .expect("send");
    within("client shutdown", shutdown).await.expect("task");
}
