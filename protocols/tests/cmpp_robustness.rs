//! CMPP 2.0 links, and the simulator's strictness and fault modes, against the client over real
//! TCP on 127.0.0.1. The client must surface every failure as an error or event, never panic, and
//! reconnect. Every wait has a deadline; no sleep is used as an assertion.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{connected, local_listener, wait_event, within, SimTask, DEADLINE};
use herald_protocols::cmpp::Version;
use herald_protocols::link::{LinkClient, Protocol};
use herald_protocols::sim::cmpp::{run_on, SimConfig, SimFaults, RESULT_FLOW_CONTROL};
use herald_protocols::{
    split_text, ClientEvent, CmppClient, LinkSettings, OutboundSegment, SendError, SubmitOutcome,
};

const ACCOUNT: &str = "901234";
const SECRET: &str = "s3cret";

/// A simulator that only speaks `version` (2 or 3), or both.
async fn start_sim(
    version: Option<u8>,
    record: Option<&Path>,
    faults: SimFaults,
) -> (SimTask, SocketAddr) {
    let (listener, addr) = local_listener().await;
    let config = SimConfig {
        listen: addr.to_string(),
        accounts: vec![(ACCOUNT.into(), SECRET.into())],
        report_delay: Duration::from_millis(50),
        delivered_ratio: 1.0,
        record: record.map(Path::to_path_buf),
        gateway_id: 7,
        version,
    };
    let sim = SimTask::spawn(|shutdown| run_on(listener, config, faults, shutdown));
    (sim, addr)
}

fn settings(addr: SocketAddr, window: usize, options: &[(&str, &str)]) -> LinkSettings {
    LinkSettings {
        reconnect_max: Duration::from_millis(200),
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..common::link_settings("robust-link", addr, ACCOUNT, SECRET, "1065901234", window)
    }
}

/// A one-part segment asking for a report.
fn segment(i: usize) -> OutboundSegment {
    OutboundSegment {
        dest: format!("1380013{i:04}"),
        segment: split_text(&format!("code {i:04}")).remove(0),
        registered_delivery: true,
    }
}

/// A one-part segment without a report, so the fault tests know every PDU on the connection
/// (the DELIVER_RESP a report causes would count towards the fault's N).
fn quiet(i: usize) -> OutboundSegment {
    OutboundSegment {
        registered_delivery: false,
        ..segment(i)
    }
}

async fn submit_all(
    client: &CmppClient,
    segments: Vec<OutboundSegment>,
) -> Vec<Result<SubmitOutcome, SendError>> {
    common::submit_each(client, &segments).await
}

fn records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn is_flow_control(r: &Result<SubmitOutcome, SendError>) -> bool {
    matches!(r, Ok(SubmitOutcome::Rejected { code, retryable: true, .. }) if *code == RESULT_FLOW_CONTROL)
}

#[tokio::test]
async fn cmpp2_client_submits_and_receives_reports_and_mo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = dir.path().join("sim.jsonl");
    let faults = SimFaults {
        mo_every: Some(Duration::from_millis(100)),
        ..SimFaults::default()
    };
    let (sim, addr) = start_sim(None, Some(&record), faults).await;
    let (client, mut events) = CmppClient::start(settings(addr, 8, &[("version", "2")]));
    assert_eq!(client.version(), Version::V2);
    wait_event(&mut events, "Connected", connected).await;

    // Five single parts and one three-part Chinese text (UDH + UCS2).
    let mut segments: Vec<_> = (0..5).map(segment).collect();
    for seg in split_text(&"二点零通知：".repeat(25)) {
        segments.push(OutboundSegment {
            dest: "13912340000".into(),
            segment: seg,
            registered_delivery: true,
        });
    }
    let n = segments.len();
    assert_eq!(n, 8);
    let mut ids = std::collections::HashMap::new();
    for (seg, r) in segments
        .iter()
        .zip(submit_all(&client, segments.clone()).await)
    {
        match r {
            Ok(SubmitOutcome::Accepted { carrier_id }) => {
                ids.insert(carrier_id, seg.dest.clone());
            }
            other => panic!("2.0 submit not accepted: {other:?}"),
        }
    }
    let mut reports = 0;
    let mut mo = 0;
    within("reports and MO over 2.0", async {
        while reports < n || mo < 2 {
            match events.recv().await {
                Some(ClientEvent::Report(r)) => {
                    // Recorded, as far as this test is concerned: let the carrier have its acknowledgement.
                    let r = {
                        let mut r = r;
                        std::mem::take(&mut r.ack).done();
                        r
                    };
                    assert_eq!(ids.get(&r.carrier_id), Some(&r.dest), "{r:?}");
                    assert!(r.delivered);
                    reports += 1;
                }
                Some(ClientEvent::Mo(mut m)) => {
                    std::mem::take(&mut m.ack).done();
                    assert_eq!(m.src, "13800138000");
                    assert_eq!(m.dest, "1065901234");
                    assert!(m.text.starts_with("MO "), "{m:?}");
                    mo += 1;
                }
                Some(ClientEvent::Disconnected { reason }) => panic!("link dropped: {reason}"),
                Some(ClientEvent::Connected) => {}
                None => panic!("events closed"),
            }
        }
    })
    .await;

    let recs = records(&record);
    let logins: Vec<_> = recs.iter().filter(|r| r["kind"] == "login").collect();
    assert_eq!(logins.len(), 1);
    assert_eq!(logins[0]["version"], "2.0");
    assert_eq!(logins[0]["version_byte"], 0x20);
    assert_eq!(logins[0]["status"], 0);
    let texts: Vec<_> = recs
        .iter()
        .filter(|r| r["kind"] == "submit")
        .filter_map(|r| r["text"].as_str())
        .collect();
    assert_eq!(texts.len(), n);
    assert!(texts.contains(&"code 0003"));
    assert_eq!(texts.iter().filter(|t| t.contains("二点零")).count(), 3);
    assert!(recs.iter().filter(|r| r["kind"] == "mo").count() >= 2);

    within("client shutdown", client.shutdown()).await;
    sim.stop().await;
}

#[tokio::test]
async fn protocol_cmpp2_logs_in_at_a_2_0_only_gateway_and_3_0_is_refused_there() {
    let (sim, addr) = start_sim(Some(2), None, SimFaults::default()).await;
    let protocol: Protocol = "cmpp20".parse().expect("known name");
    assert_eq!(protocol, Protocol::Cmpp2);
    let (link, mut events) = LinkClient::start(protocol, settings(addr, 4, &[]));
    wait_event(&mut events, "2.0 Connected", connected).await;
    let r = link.submit(segment(1)).await;
    assert!(matches!(r, Ok(SubmitOutcome::Accepted { .. })), "{r:?}");
    within("shutdown", link.shutdown()).await;

    // A 3.0 client is told the version is too high, in a CONNECT_RESP it can read.
    let (v3, mut events) = LinkClient::start(Protocol::Cmpp3, settings(addr, 4, &[]));
    let skipped = wait_event(
        &mut events,
        "refused 3.0 login",
        |e| matches!(e, ClientEvent::Disconnected { reason } if reason.contains("Status 4")),
    )
    .await;
    assert!(!skipped.contains(&ClientEvent::Connected));
    within("shutdown", v3.shutdown()).await;
    sim.stop().await;

    // And a 2.0 client at a 3.0-only gateway is refused too.
    let (sim, addr) = start_sim(Some(3), None, SimFaults::default()).await;
    let (v2, mut events) = LinkClient::start(Protocol::Cmpp2, settings(addr, 4, &[]));
    wait_event(
        &mut events,
        "refused 2.0 login",
        |e| matches!(e, ClientEvent::Disconnected { reason } if reason.contains("Status 1")),
    )
    .await;
    within("shutdown", v2.shutdown()).await;
    sim.stop().await;
}

#[tokio::test]
async fn link_options_are_checked() {
    let opts = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert!(Protocol::Cmpp3.check_options(&opts(&[])).is_ok());
    assert!(Protocol::Cmpp3
        .check_options(&opts(&[("version", "2")]))
        .is_ok());
    assert!(Protocol::Cmpp3
        .check_options(&opts(&[("version", "3")]))
        .is_ok());
    assert!(Protocol::Cmpp2
        .check_options(&opts(&[("version", "2")]))
        .is_ok());
    let bad_value = Protocol::Cmpp3
        .check_options(&opts(&[("version", "4")]))
        .expect_err("version 4");
    assert!(
        bad_value.contains("version") && bad_value.contains("\"4\""),
        "{bad_value}"
    );
    let contradiction = Protocol::Cmpp2
        .check_options(&opts(&[("version", "3")]))
        .expect_err("contradiction");
    assert!(contradiction.contains("2.0"), "{contradiction}");
    let unknown = Protocol::Cmpp3
        .check_options(&opts(&[("bind", "transceiver")]))
        .expect_err("unknown option");
    assert!(unknown.contains("\"bind\""), "{unknown}");

    // A client started with refused options never touches the gateway and keeps saying why.
    let dir = tempfile::tempdir().expect("tempdir");
    let record = dir.path().join("sim.jsonl");
    let (sim, addr) = start_sim(None, Some(&record), SimFaults::default()).await;
    let (client, mut events) = CmppClient::start(settings(addr, 4, &[("versoin", "2")]));
    for _ in 0..2 {
        wait_event(&mut events, "options refusal", |e| {
            matches!(e, ClientEvent::Disconnected { reason } if reason.contains("unknown option \"versoin\""))
        })
        .await;
    }
    assert!(!client.is_connected());
    within("shutdown", client.shutdown()).await;
    sim.stop().await;
    assert!(records(&record).is_empty(), "the simulator saw a login");
}

#[tokio::test]
async fn rate_limit_answers_flow_control_beyond_max_per_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = dir.path().join("sim.jsonl");
    let faults = SimFaults {
        max_per_second: Some(5),
        ..SimFaults::default()
    };
    let (sim, addr) = start_sim(None, Some(&record), faults).await;
    let (client, mut events) = CmppClient::start(settings(addr, 16, &[]));
    wait_event(&mut events, "Connected", connected).await;

    let started = tokio::time::Instant::now();
    let results = submit_all(&client, (0..20).map(segment).collect()).await;
    let elapsed = started.elapsed();
    let accepted = results
        .iter()
        .filter(|r| matches!(r, Ok(SubmitOutcome::Accepted { .. })))
        .count();
    let throttled = results.iter().filter(|r| is_flow_control(r)).count();
    assert_eq!(accepted + throttled, 20, "{results:?}");
    // At most 5 in any second: the burst cannot have more than 5 per started second.
    let seconds = elapsed.as_secs() as usize + 1;
    assert!(
        accepted >= 5 && accepted <= 5 * seconds,
        "{accepted} accepted in {elapsed:?}"
    );
    assert!(throttled >= 1);
    let recs = records(&record);
    assert_eq!(
        recs.iter().filter(|r| r["kind"] == "throttled").count(),
        throttled
    );
    assert!(recs
        .iter()
        .filter(|r| r["kind"] == "throttled")
        .all(|r| r["reason"] == "rate" && r["result"] == 8));

    // The limit is a rate, not a quota: a second later submits are accepted again.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match client.submit(segment(99)).await {
            Ok(SubmitOutcome::Accepted { .. }) => break,
            r if is_flow_control(&r) => {
                assert!(tokio::time::Instant::now() < deadline, "still throttled");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(client.is_connected());
    within("shutdown", client.shutdown()).await;
    sim.stop().await;
}

#[tokio::test]
async fn gateway_window_answers_flow_control_when_the_client_overruns_it() {
    let faults = SimFaults {
        max_window: Some(2),
        submit_resp_delay: Duration::from_millis(300),
        ..SimFaults::default()
    };
    let (sim, addr) = start_sim(None, None, faults).await;

    // A client window wider than the gateway's: the excess is refused with Result = 8.
    let (wide, mut events) = CmppClient::start(settings(addr, 6, &[]));
    wait_event(&mut events, "Connected", connected).await;
    let results = submit_all(&wide, (0..6).map(segment).collect()).await;
    let throttled = results.iter().filter(|r| is_flow_control(r)).count();
    let accepted = results
        .iter()
        .filter(|r| matches!(r, Ok(SubmitOutcome::Accepted { .. })))
        .count();
    assert_eq!(accepted + throttled, 6, "{results:?}");
    assert!(throttled >= 1, "{results:?}");
    assert!(accepted >= 2, "{results:?}");
    within("shutdown", wide.shutdown()).await;

    // A client that keeps to the gateway's window is never refused.
    let (narrow, mut events) = CmppClient::start(settings(addr, 2, &[]));
    wait_event(&mut events, "Connected", connected).await;
    let results = submit_all(&narrow, (0..6).map(segment).collect()).await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(SubmitOutcome::Accepted { .. }))),
        "{results:?}"
    );
    within("shutdown", narrow.shutdown()).await;
    sim.stop().await;
}

#[tokio::test]
async fn drop_after_n_pdus_fails_the_pending_submit_and_the_client_reconnects() {
    let faults = SimFaults {
        drop_after: Some(2),
        ..SimFaults::default()
    };
    let (sim, addr) = start_sim(None, None, faults).await;
    let (client, mut events) = CmppClient::start(settings(addr, 1, &[("version", "2")]));
    for round in 0..2 {
        wait_event(&mut events, "Connected", connected).await;
        for i in 0..2 {
            let r = client.submit(quiet(i)).await;
            assert!(
                matches!(r, Ok(SubmitOutcome::Accepted { .. })),
                "round {round}: {r:?}"
            );
        }
        // The third PDU on the connection is never answered: the connection closes under it.
        assert_eq!(
            client.submit(quiet(2)).await,
            Err(SendError::ConnectionLost),
            "round {round}"
        );
        wait_event(
            &mut events,
            "Disconnected",
            |e| matches!(e, ClientEvent::Disconnected { reason } if reason.contains("peer closed")),
        )
        .await;
    }
    within("shutdown", client.shutdown()).await;
    sim.stop().await;
}

#[tokio::test]
async fn stalled_gateway_times_requests_out_and_heartbeats_bring_the_link_down() {
    let faults = SimFaults {
        stall_after: Some(1),
        ..SimFaults::default()
    };
    let (sim, addr) = start_sim(None, None, faults).await;
    let mut s = settings(addr, 4, &[]);
    s.response_timeout = Duration::from_millis(400);
    s.heartbeat_interval = Duration::from_millis(200);
    let (client, mut events) = CmppClient::start(s);
    for round in 0..2 {
        wait_event(&mut events, "Connected", connected).await;
        let r = client.submit(quiet(1)).await;
        assert!(
            matches!(r, Ok(SubmitOutcome::Accepted { .. })),
            "round {round}: {r:?}"
        );
        assert_eq!(client.submit(quiet(2)).await, Err(SendError::Timeout));
        wait_event(
            &mut events,
            "silent peer detected",
            |e| matches!(e, ClientEvent::Disconnected { reason } if reason.contains("peer silent")),
        )
        .await;
    }
    within("shutdown", client.shutdown()).await;
    sim.stop().await;
}

#[tokio::test]
async fn malformed_pdus_break_the_connection_cleanly_and_the_client_reconnects() {
    let faults = SimFaults {
        malformed_after: Some(1),
        ..SimFaults::default()
    };
    let (sim, addr) = start_sim(None, None, faults).await;
    let (client, mut events) = CmppClient::start(settings(addr, 4, &[]));
    // Three rounds: the simulator sends each kind of malformed frame once.
    for round in 0..3 {
        wait_event(&mut events, "Connected", connected).await;
        let r = client.submit(quiet(1)).await;
        assert!(
            matches!(r, Ok(SubmitOutcome::Accepted { .. })),
            "round {round}: {r:?}"
        );
        assert_eq!(
            client.submit(quiet(2)).await,
            Err(SendError::ConnectionLost),
            "round {round}"
        );
        wait_event(
            &mut events,
            "bad frame",
            |e| matches!(e, ClientEvent::Disconnected { reason } if reason.contains("bad frame")),
        )
        .await;
    }
    within("shutdown", client.shutdown()).await;
    sim.stop().await;
}
