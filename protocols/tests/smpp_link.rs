//! The SMPP client against the SMPP simulator (and a hand-driven SMSC) over real TCP on
//! 127.0.0.1, for 3.3, 3.4 and 5.0. Every wait has a deadline; no sleep is used as an assertion.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{
    accept_framed, check_fifty_submit_records, expect_reports, local_listener, next_pdu,
    read_records, shutdown_and_refuse, skip_to, submit_all_accepted, take_mo, wait_connected,
    wait_event, within, SimTask,
};
use futures::{SinkExt, StreamExt};
use herald_protocols::gsm7::split_smpp;
use herald_protocols::link::{CarrierClient, LinkClient, Protocol};
use herald_protocols::sim::smpp::{run_on, SimConfig, SimFaults};
use herald_protocols::smpp::{esm, status, BindKind, BindResp, Body, IdFormat, Pdu, Sm, SmppCodec};
use herald_protocols::smpp_client::SmppClient;
use herald_protocols::{ClientEvent, LinkSettings, OutboundSegment, SendError, SubmitOutcome};

const SYSTEM_ID: &str = "herald";
const PASSWORD: &str = "s3cret";

async fn start_sim(
    record: Option<&Path>,
    tune: impl FnOnce(&mut SimConfig),
    faults: SimFaults,
) -> (SimTask, SocketAddr) {
    let (listener, addr) = local_listener().await;
    let mut config = SimConfig::new(addr.to_string(), SYSTEM_ID, PASSWORD);
    config.delivered_ratio = 0.7;
    config.record = record.map(Path::to_path_buf);
    tune(&mut config);
    let sim = SimTask::spawn(|shutdown| run_on(listener, config, faults, shutdown));
    (sim, addr)
}

fn settings(
    addr: SocketAddr,
    password: &str,
    window: usize,
    options: &[(&str, &str)],
) -> LinkSettings {
    LinkSettings {
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..common::link_settings("smpp-test", addr, SYSTEM_ID, password, "Herald", window)
    }
}

/// 20 single GSM parts + 10 three-part Chinese (UCS2) messages = 50 segments.
fn fifty_segments() -> Vec<OutboundSegment> {
    common::fifty_segments(
        split_smpp,
        |i| format!("Your code is {i:04} {{ok}}"),
        ["+861380013", "1391234"],
    )
}

/// Submits every segment concurrently (the window bounds how many are in flight) and returns
/// carrier id → destination as the receipts name it (without the `+`).
async fn submit_all(client: &SmppClient, segments: &[OutboundSegment]) -> HashMap<String, String> {
    submit_all_accepted(client, segments, |_| {})
        .await
        .into_iter()
        .map(|(id, dest)| (id, dest.trim_start_matches('+').to_string()))
        .collect()
}

#[tokio::test]
async fn fifty_submits_with_a_window_and_every_receipt_matches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = dir.path().join("sim.jsonl");
    let (sim, addr) = start_sim(Some(&record), |_| {}, SimFaults::default()).await;
    let (client, mut events) = SmppClient::start(settings(addr, PASSWORD, 8, &[]));
    wait_connected(&mut events).await;
    assert!(client.is_connected());

    let segments = fifty_segments();
    let ids = submit_all(&client, &segments).await;
    assert_eq!(ids.len(), 50);
    assert!(
        ids.keys().all(|id| id.parse::<u64>().is_ok()),
        "decimal ids"
    );
    expect_reports(&mut events, &ids).await;

    let records = read_records(&record);
    // GSM 7-bit with an extension character survived the trip.
    check_fifty_submit_records(&records, &ids, SYSTEM_ID, "Your code is 0007 {ok}");
    assert_eq!(records.iter().filter(|r| r["kind"] == "report").count(), 50);

    shutdown_and_refuse(&client, segments[0].clone()).await;
    sim.stop().await;
}

/// One version/bind/id-format combination: ten submits, every receipt matched.
async fn round_trip(
    protocol: Protocol,
    options: &[(&str, &str)],
    sim_ids: (IdFormat, Option<IdFormat>),
) {
    let (sim, addr) = start_sim(
        None,
        |c| {
            c.id_format = sim_ids.0;
            c.receipt_id_format = sim_ids.1;
        },
        SimFaults::default(),
    )
    .await;
    let (client, mut events) = LinkClient::start(protocol, settings(addr, PASSWORD, 4, options));
    let CarrierClient::Smpp(smpp) = client.carrier() else {
        panic!("not an SMPP link")
    };
    let smpp = smpp.clone();
    wait_connected(&mut events).await;
    let segments: Vec<_> = fifty_segments().into_iter().take(10).collect();
    // The link's own split is the SMPP one.
    assert_eq!(client.split("hi €").first().map(|s| s.data_coding), Some(0));
    let ids = submit_all(&smpp, &segments).await;
    expect_reports(&mut events, &ids).await;
    within("client shutdown", client.shutdown()).await;
    sim.stop().await;
}

#[tokio::test]
async fn smpp_3_3_binds_a_transmitter_receiver_pair() {
    round_trip(Protocol::Smpp33, &[], (IdFormat::Decimal, None)).await;
}

#[tokio::test]
async fn smpp_5_0_transceiver() {
    round_trip(Protocol::Smpp50, &[], (IdFormat::Decimal, None)).await;
}

#[tokio::test]
async fn smpp_3_4_pair_on_request() {
    round_trip(Protocol::Smpp, &[("bind", "pair")], (IdFormat::Hex, None)).await;
}

#[tokio::test]
async fn hex_submit_ids_match_decimal_receipts_when_configured() {
    round_trip(
        Protocol::Smpp34,
        &[("message_id", "hex"), ("receipt_id", "decimal")],
        (IdFormat::Hex, Some(IdFormat::Decimal)),
    )
    .await;
}

#[tokio::test]
async fn throttling_is_retryable_and_bad_credentials_keep_the_link_down() {
    let faults = SimFaults {
        throttle_at: Some(1),
        ..SimFaults::default()
    };
    let (sim, addr) = start_sim(None, |_| {}, faults).await;
    let (client, mut events) = SmppClient::start(settings(addr, PASSWORD, 4, &[]));
    wait_connected(&mut events).await;
    let seg = fifty_segments().remove(0);
    let first = within("throttled submit", client.submit(seg.clone())).await;
    assert!(
        matches!(
            first,
            Ok(SubmitOutcome::Rejected {
                code: 0x58,
                retryable: true,
                ..
            })
        ),
        "{first:?}"
    );
    let second = within("second submit", client.submit(seg.clone())).await;
    assert!(
        matches!(second, Ok(SubmitOutcome::Accepted { .. })),
        "{second:?}"
    );
    within("client shutdown", client.shutdown()).await;

    let mut s = settings(addr, "wrong", 4, &[]);
    s.response_timeout = Duration::from_millis(300);
    let (client, mut events) = SmppClient::start(s);
    for _ in 0..2 {
        let skipped = wait_event(&mut events, "a refused bind", |e| {
            matches!(e, ClientEvent::Disconnected { reason } if reason.contains("ESME_RINVPASWD"))
        })
        .await;
        assert!(!skipped.contains(&ClientEvent::Connected));
    }
    assert_eq!(client.submit(seg).await, Err(SendError::NotConnected));
    within("client shutdown", client.shutdown()).await;

    // Options that do not parse: the link stays down and says why, without connecting.
    let (client, mut events) =
        SmppClient::start(settings(addr, PASSWORD, 4, &[("bindd", "transceiver")]));
    wait_event(&mut events, "options refused", |e| {
        matches!(e, ClientEvent::Disconnected { reason } if reason.contains("unknown option \"bindd\""))
    })
    .await;
    within("client shutdown", client.shutdown()).await;
    sim.stop().await;
}

/// A hand-driven SMSC: heartbeats, MO, a generic_nack for a submit, and unbind from the SMSC.
#[tokio::test]
async fn client_answers_the_smsc_and_heartbeats_when_idle() {
    let (listener, addr) = local_listener().await;
    let mut s = settings(addr, PASSWORD, 4, &[("version", "5.0")]);
    s.heartbeat_interval = Duration::from_millis(100);
    s.response_timeout = Duration::from_millis(500);
    let (client, mut events) = SmppClient::start(s);

    let mut peer = accept_framed(&listener, SmppCodec).await;
    let bind = next_pdu(&mut peer, "bind").await;
    let Body::Bind(b) = &bind.body else {
        panic!("expected a bind, got {bind:?}")
    };
    assert_eq!(
        (
            b.kind,
            b.system_id.as_str(),
            b.password.as_str(),
            b.system_type.as_str(),
            b.interface_version
        ),
        (BindKind::Transceiver, SYSTEM_ID, PASSWORD, "HERALD", 0x50)
    );
    peer.send(Pdu::new(
        bind.sequence_number,
        Body::BindResp(BindResp {
            kind: BindKind::Transceiver,
            system_id: "SMSC".into(),
            tlvs: vec![],
        }),
    ))
    .await
    .expect("send");
    wait_connected(&mut events).await;

    // Idle: the client probes with enquire_link.
    let probe = next_pdu(&mut peer, "enquire_link").await;
    assert_eq!(probe.body, Body::EnquireLink);
    peer.send(Pdu::new(probe.sequence_number, Body::EnquireLinkResp))
        .await
        .expect("send");

    // The SMSC's own enquire_link and an MO are answered.
    peer.send(Pdu::new(900, Body::EnquireLink))
        .await
        .expect("send");
    let mo = Sm {
        source_addr: "8613800138000".into(),
        destination_addr: "Herald".into(),
        data_coding: 8,
        short_message: vec![0x90, 0x00, 0x8B, 0xA2], // 退订
        ..Sm::default()
    };
    peer.send(Pdu::new(901, Body::DeliverSm(Box::new(mo))))
        .await
        .expect("send");
    // The deliver_sm is answered once the application has recorded the MO.
    let mo = take_mo(&mut events).await;
    assert_eq!(
        (mo.text.as_str(), mo.src.as_str()),
        ("退订", "8613800138000")
    );

    // A submit answered with generic_nack (throttled).
    let submitter = {
        let client = client.clone();
        tokio::spawn(async move { client.submit(fifty_segments().remove(0)).await })
    };
    let mut answered = HashSet::new();
    within("answers and the submit", async {
        while answered.len() < 3 {
            let pdu = peer.next().await.expect("open").expect("valid");
            match pdu.body {
                Body::EnquireLinkResp => assert!(answered.insert(pdu.sequence_number)),
                Body::DeliverSmResp(_) => {
                    assert_eq!(pdu.command_status, 0);
                    assert!(answered.insert(pdu.sequence_number));
                }
                Body::SubmitSm(sm) => {
                    assert_eq!(sm.destination_addr, "8613800130000");
                    assert_eq!((sm.dest_addr_ton, sm.dest_addr_npi), (1, 1));
                    assert_eq!((sm.source_addr.as_str(), sm.source_addr_ton), ("Herald", 5));
                    assert_eq!(sm.registered_delivery, 1);
                    assert_eq!(sm.esm_class & esm::UDHI, 0);
                    peer.send(Pdu::response(
                        pdu.sequence_number,
                        status::ESME_RTHROTTLED,
                        Body::GenericNack,
                    ))
                    .await
                    .expect("send");
                    assert!(answered.insert(pdu.sequence_number));
                }
                Body::EnquireLink => {
                    peer.send(Pdu::new(pdu.sequence_number, Body::EnquireLinkResp))
                        .await
                        .expect("send");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    assert!(answered.contains(&900) && answered.contains(&901));
    let outcome = within("submit outcome", submitter).await.expect("task");
    assert!(
        matches!(
            outcome,
            Ok(SubmitOutcome::Rejected {
                code: 0x58,
                retryable: true,
                ..
            })
        ),
        "{outcome:?}"
    );

    // The SMSC unbinds: the client answers and the link goes down, then reconnects.
    peer.send(Pdu::new(77, Body::Unbind)).await.expect("send");
    let resp = skip_to(&mut peer, "unbind_resp", |p| p.body == Body::UnbindResp).await;
    assert_eq!(resp.sequence_number, 77);
    wait_event(&mut events, "Disconnected after unbind", |e| {
        matches!(e, ClientEvent::Disconnected { .. })
    })
    .await;
    let mut peer = accept_framed(&listener, SmppCodec).await;
    let bind = next_pdu(&mut peer, "bind").await;
    assert!(matches!(bind.body, Body::Bind(_)));
    // Silence now: three unanswered probes and the client gives up on the connection.
    peer.send(Pdu::new(
        bind.sequence_number,
        Body::BindResp(BindResp {
            kind: BindKind::Transceiver,
            system_id: "SMSC".into(),
            tlvs: vec![],
        }),
    ))
    .await
    .expect("send");
    wait_connected(&mut events).await;
    wait_event(
        &mut events,
        "Disconnected for silence",
        |e| matches!(e, ClientEvent::Disconnected { reason } if reason.contains("heartbeats")),
    )
    .await;
    drop(peer);
    within("client shutdown", client.shutdown()).await;
}

/// The `long_message` option over TCP: with `sar` the SMSC sees each part's place in the TLVs
/// and text without a UDH; with `payload` it sees the whole text in one submit_sm.
#[tokio::test]
async fn long_messages_go_out_as_sar_parts_or_one_message_payload() {
    let text = "第十号通知：本周六系统维护，届时服务暂停，敬请谅解。".repeat(4);
    for mode in ["sar", "payload"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let record = dir.path().join("sim.jsonl");
        let (sim, addr) = start_sim(Some(&record), |_| {}, SimFaults::default()).await;
        let (client, mut events) =
            SmppClient::start(settings(addr, PASSWORD, 8, &[("long_message", mode)]));
        wait_connected(&mut events).await;
        let segments = client.split(&text);
        assert_eq!(segments.len() == 1, mode == "payload", "{mode}");
        for segment in segments.clone() {
            let outcome = within(
                "submit",
                client.submit(OutboundSegment {
                    dest: "+8613800138000".into(),
                    segment,
                    registered_delivery: false,
                }),
            )
            .await;
            assert!(
                matches!(outcome, Ok(SubmitOutcome::Accepted { .. })),
                "{mode}: {outcome:?}"
            );
        }
        within("client shutdown", client.shutdown()).await;
        sim.stop().await;

        let lines = std::fs::read_to_string(&record).expect("record file");
        let submits: Vec<serde_json::Value> = lines
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
            .filter(|r| r["kind"] == "submit")
            .collect();
        assert_eq!(submits.len(), segments.len(), "{mode}");
        let total = segments.len() as u64;
        let mut joined = String::new();
        for (i, s) in submits.iter().enumerate() {
            assert_eq!(s["pk_total"], total, "{mode}: from sar_total_segments");
            assert_eq!(
                s["pk_number"],
                i as u64 + 1,
                "{mode}: from sar_segment_seqnum"
            );
            joined.push_str(s["text"].as_str().expect("text"));
        }
        assert_eq!(joined, text, "{mode}: no UDH bytes in the text");
    }
}
