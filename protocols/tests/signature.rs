//! A link's signature over real TCP: the link splits with room for it, and the simulator
//! records exactly the parts a gateway would receive — the signature once, whole, in the first
//! or last part when Herald adds it, and absent (but with its room kept) when the carrier does.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{local_listener, read_records, submit_each, wait_connected, SimTask};
use herald_protocols::link::{LinkClient, Protocol};
use herald_protocols::sim::{cmpp, smpp};
use herald_protocols::{LinkSettings, OutboundSegment, SubmitOutcome};

const ACCOUNT: &str = "901234";
const SECRET: &str = "s3cret";
/// Six characters, as carriers register them.
const SIGNATURE: &str = "【国家电网】";

async fn cmpp_sim(record: &Path) -> (SimTask, SocketAddr) {
    let (listener, addr) = local_listener().await;
    let config = cmpp::SimConfig {
        listen: addr.to_string(),
        accounts: vec![(ACCOUNT.into(), SECRET.into())],
        report_delay: Duration::from_millis(50),
        delivered_ratio: 1.0,
        record: Some(record.to_path_buf()),
        gateway_id: 7,
        version: None,
    };
    let sim = SimTask::spawn(|shutdown| {
        cmpp::run_on(listener, config, cmpp::SimFaults::default(), shutdown)
    });
    (sim, addr)
}

async fn smpp_sim(record: &Path) -> (SimTask, SocketAddr) {
    let (listener, addr) = local_listener().await;
    let mut config = smpp::SimConfig::new(addr.to_string(), ACCOUNT, SECRET);
    config.record = Some(record.to_path_buf());
    let sim = SimTask::spawn(|shutdown| {
        smpp::run_on(listener, config, smpp::SimFaults::default(), shutdown)
    });
    (sim, addr)
}

fn settings(addr: SocketAddr, signature: [(&str, &str); 3]) -> LinkSettings {
    LinkSettings {
        options: signature
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..common::link_settings("signed", addr, ACCOUNT, SECRET, "1065901234", 4)
    }
}

/// Splits `text` on the link, submits every part to one number, and returns the texts the
/// simulator recorded, in part order, after checking each carried its part number and total.
async fn parts_received(link: &LinkClient, text: &str, record: &Path) -> Vec<String> {
    let segments: Vec<_> = link
        .split(text)
        .into_iter()
        .map(|segment| OutboundSegment {
            dest: "13800138000".into(),
            segment,
            registered_delivery: false,
        })
        .collect();
    for outcome in submit_each(link, &segments).await {
        assert!(
            matches!(outcome, Ok(SubmitOutcome::Accepted { .. })),
            "{outcome:?}"
        );
    }
    let mut submits: Vec<_> = read_records(record)
        .into_iter()
        .filter(|r| r["kind"] == "submit")
        .collect();
    submits.sort_by_key(|r| r["pk_number"].as_u64());
    let total = segments.len() as u64;
    for (i, r) in submits.iter().enumerate() {
        assert_eq!(r["pk_total"].as_u64(), Some(total), "{r}");
        assert_eq!(r["pk_number"].as_u64(), Some(i as u64 + 1), "{r}");
    }
    submits
        .iter()
        .map(|r| r["text"].as_str().expect("text").to_string())
        .collect()
}

#[tokio::test]
async fn a_herald_added_suffix_reaches_the_gateway_once_in_the_last_part() {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = dir.path().join("sim.jsonl");
    let (sim, addr) = cmpp_sim(&record).await;
    let options = [
        ("signature", SIGNATURE),
        ("signature-added-by", "herald"),
        ("signature-position", "suffix"),
    ];
    let (link, mut events) = LinkClient::start(Protocol::Cmpp3, settings(addr, options));
    wait_connected(&mut events).await;

    // 70 characters fill one UCS2 part alone; with the signature they need two.
    let text = "电".repeat(70);
    let parts = parts_received(&link, &text, &record).await;
    assert_eq!(
        parts,
        vec!["电".repeat(67), format!("{}{SIGNATURE}", "电".repeat(3))]
    );
    assert_eq!(parts.concat().matches(SIGNATURE).count(), 1);

    link.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn a_carrier_added_prefix_leaves_room_in_the_first_part() {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = dir.path().join("sim.jsonl");
    let (sim, addr) = cmpp_sim(&record).await;
    let options = [
        ("signature", SIGNATURE),
        ("signature-added-by", "carrier"),
        ("signature-position", "prefix"),
    ];
    let (link, mut events) = LinkClient::start(Protocol::Cmpp3, settings(addr, options));
    wait_connected(&mut events).await;

    // 67 characters would fill a concatenated part; the carrier's 6 must fit into part 1.
    let parts = parts_received(&link, &"电".repeat(67), &record).await;
    assert_eq!(parts, vec!["电".repeat(61), "电".repeat(6)]);
    assert!(
        parts.iter().all(|p| !p.contains(SIGNATURE)),
        "the carrier adds it"
    );
    assert_eq!(
        parts[0].chars().count() + SIGNATURE.chars().count(),
        67,
        "part 1 full once the carrier adds the signature"
    );

    link.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn smpp_counts_a_gsm_signature_in_septets_and_sends_it_once_in_part_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = dir.path().join("sim.jsonl");
    let (sim, addr) = smpp_sim(&record).await;
    // '[' and ']' are GSM extension characters: the signature takes 8 of a part's 153 septets.
    let options = [
        ("signature", "[ACME]"),
        ("signature-added-by", "herald"),
        ("signature-position", "prefix"),
    ];
    let (link, mut events) = LinkClient::start(Protocol::Smpp34, settings(addr, options));
    wait_connected(&mut events).await;

    let text = "a".repeat(153);
    let parts = parts_received(&link, &text, &record).await;
    assert_eq!(
        parts,
        vec![format!("[ACME]{}", "a".repeat(145)), "a".repeat(8)]
    );

    link.shutdown().await;
    sim.stop().await;
}
