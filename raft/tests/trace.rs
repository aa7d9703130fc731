//! The protocol trace as the projection keeps it: PDU facts carried in the exchange events become
//! trace lines in log order, failures without an answer are recorded without moving the message,
//! the timeline stays bounded, and the closing reason names the code and the attempts.

use herald_raft::events::{
    event::Kind, CarrierAccepted, CarrierRejected, CarrierUnanswered, DeliveryReported, Event,
    LinkAssigned, MessageDispatched, MessageSubmitted, SubmitPdus,
};
use herald_raft::projection::{apply_event, load_message, MemKv, TIMELINE_LIMIT};
use herald_raft::records::{MessageRecord, MessageState};
use herald_raft::trace::{trace_of, Direction, TraceLine};
use herald_raft::types::EventOutcome;

const LINK: &str = "cmpp-a";

fn apply(kv: &mut MemKv, at_ms: u64, kind: Kind) -> EventOutcome {
    apply_event(kv, &Event::new(at_ms, kind)).expect("in-memory apply")
}

fn message(kv: &MemKv) -> MessageRecord {
    load_message(kv, 1).unwrap().expect("message 1")
}

/// Message 1, submitted at 1000 and dispatched at 1010 by node 2 on `cmpp-a#1`.
fn dispatched() -> MemKv {
    let mut kv = MemKv::default();
    apply(
        &mut kv,
        1,
        Kind::LinkAssigned(LinkAssigned {
            link: format!("{LINK}#1"),
            node: 2,
            epoch: 1,
        }),
    );
    apply(
        &mut kv,
        1000,
        Kind::Submitted(MessageSubmitted {
            client_id: "erp".into(),
            recipients: vec!["13900001111".into()],
            text: "breaker trip".into(),
            link: LINK.into(),
            ..Default::default()
        }),
    );
    let outcome = apply(
        &mut kv,
        1010,
        Kind::Dispatched(MessageDispatched {
            message_id: 1,
            link: LINK.into(),
            node: 2,
            epoch: 1,
            attempt: 1,
            segments: 1,
            slot: format!("{LINK}#1"),
        }),
    );
    assert_eq!(outcome, EventOutcome::Applied);
    kv
}

/// A CMPP_SUBMIT sent `sent_ms_before` the event and answered by its own response.
fn pdus(sequence: u32, sent_ms_before: u32, status: u32) -> Option<SubmitPdus> {
    Some(SubmitPdus {
        command: "CMPP_SUBMIT".into(),
        sequence,
        sent_ms_before,
        response: String::new(),
        status,
    })
}

/// The lines as `(at, direction, command, sequence, status)`, the shape these tests compare.
fn shape(lines: &[TraceLine]) -> Vec<(u64, &'static str, String, u32, String)> {
    lines
        .iter()
        .map(|l| {
            (
                l.at_ms,
                l.direction.as_str(),
                l.command.clone(),
                l.sequence,
                l.status.clone(),
            )
        })
        .collect()
}

fn line(
    at: u64,
    direction: &'static str,
    command: &str,
    sequence: u32,
    status: &str,
) -> (u64, &'static str, String, u32, String) {
    (at, direction, command.into(), sequence, status.into())
}

#[test]
fn a_refused_message_shows_the_submit_the_response_and_why_it_failed() {
    let mut kv = dispatched();
    apply(
        &mut kv,
        1030,
        Kind::CarrierRejected(CarrierRejected {
            message_id: 1,
            link: LINK.into(),
            segment: 0,
            code: 13,
            retryable: false,
            description: "destination barred".into(),
            retry_at_ms: 0,
            policy_decided: true,
            pdus: pdus(41, 10, 13),
            slot: format!("{LINK}#1"),
            node: 2,
            retry_link: String::new(),
        }),
    );
    let m = message(&kv);
    assert_eq!(m.state(), MessageState::Failed);
    let trace = trace_of(&m);
    assert_eq!(
        shape(&trace.lines),
        [
            line(1000, "", "", 0, ""),
            line(1010, "", "", 0, ""),
            line(1020, "out", "CMPP_SUBMIT", 41, ""),
            line(1030, "in", "CMPP_SUBMIT_RESP", 41, "13"),
            line(1030, "", "", 0, ""),
        ]
    );
    let response = &trace.lines[3];
    assert_eq!(response.link, "cmpp-a#1");
    assert_eq!(response.node, 2);
    assert_eq!(response.segment, 1);
    assert!(
        response.meaning.contains("destination barred"),
        "{response:?}"
    );
    assert!(trace.lines[4].meaning.contains("fails with code 13"));
    assert!(
        trace.reason.contains("code 13") && trace.reason.contains("1 attempt"),
        "{}",
        trace.reason
    );
}

#[test]
fn a_delivered_message_shows_submit_response_and_report() {
    let mut kv = dispatched();
    apply(
        &mut kv,
        1030,
        Kind::CarrierAccepted(CarrierAccepted {
            message_id: 1,
            link: LINK.into(),
            segment: 0,
            carrier_id: "777".into(),
            pdus: pdus(42, 10, 0),
            slot: format!("{LINK}#1"),
            node: 2,
        }),
    );
    apply(
        &mut kv,
        1200,
        Kind::DeliveryReported(DeliveryReported {
            link: LINK.into(),
            carrier_id: "777".into(),
            dest: "13900001111".into(),
            status: "DELIVRD".into(),
            delivered: true,
            carrier_time: "2611251200".into(),
            command: "CMPP_DELIVER".into(),
            sequence: 9,
            carrier_submit_time: "2611251159".into(),
            ..Default::default()
        }),
    );
    let m = message(&kv);
    assert_eq!(m.state(), MessageState::Delivered);
    let trace = trace_of(&m);
    assert_eq!(
        shape(&trace.lines[2..]),
        [
            line(1020, "out", "CMPP_SUBMIT", 42, ""),
            line(1030, "in", "CMPP_SUBMIT_RESP", 42, "0"),
            line(1200, "in", "CMPP_DELIVER", 9, "DELIVRD"),
        ]
    );
    assert_eq!(trace.lines[3].carrier_id, "777");
    assert_eq!(trace.lines[4].carrier_id, "777");
    assert!(trace.lines[4].meaning.contains("delivered"));
    assert_eq!(trace.reason, "the carrier reported it delivered");
}

#[test]
fn a_lost_response_is_recorded_without_moving_the_message() {
    let mut kv = dispatched();
    let outcome = apply(
        &mut kv,
        1040,
        Kind::CarrierUnanswered(CarrierUnanswered {
            message_id: 1,
            link: LINK.into(),
            slot: format!("{LINK}#1"),
            node: 2,
            segment: 0,
            pdus: pdus(43, 20, 0),
            failure: "connection lost before the response arrived".into(),
        }),
    );
    assert_eq!(outcome, EventOutcome::Applied);
    let m = message(&kv);
    assert_eq!(
        m.state(),
        MessageState::Sending,
        "still in flight, sent again"
    );
    let trace = trace_of(&m);
    let last = trace.lines.last().unwrap();
    assert_eq!(last.direction, Direction::Note);
    assert_eq!((last.command.as_str(), last.sequence), ("CMPP_SUBMIT", 43));
    assert!(last.meaning.contains("connection lost"), "{last:?}");
    assert!(trace.reason.contains("connection lost"), "{}", trace.reason);
}

#[test]
fn an_unanswered_submit_of_a_finished_message_is_ignored() {
    let mut kv = dispatched();
    apply(
        &mut kv,
        1030,
        Kind::CarrierRejected(CarrierRejected {
            message_id: 1,
            link: LINK.into(),
            code: 13,
            policy_decided: true,
            ..Default::default()
        }),
    );
    let before = kv.clone();
    let outcome = apply(
        &mut kv,
        1040,
        Kind::CarrierUnanswered(CarrierUnanswered {
            message_id: 1,
            link: LINK.into(),
            failure: "timeout".into(),
            ..Default::default()
        }),
    );
    assert!(matches!(outcome, EventOutcome::Ignored { .. }));
    assert_eq!(kv, before);
}

#[test]
fn the_timeline_keeps_the_submission_and_the_latest_events() {
    let mut kv = dispatched();
    let extra = TIMELINE_LIMIT as u64 + 10;
    for i in 0..extra {
        apply(
            &mut kv,
            2000 + i,
            Kind::CarrierUnanswered(CarrierUnanswered {
                message_id: 1,
                link: LINK.into(),
                pdus: pdus(100 + i as u32, 0, 0),
                failure: "no response within the response timeout".into(),
                ..Default::default()
            }),
        );
    }
    let m = message(&kv);
    assert_eq!(m.timeline.len(), TIMELINE_LIMIT);
    assert_eq!(m.timeline[0].name(), "MessageSubmitted");
    assert_eq!(m.timeline.last().unwrap().at_ms, 2000 + extra - 1);
    // The dispatch and the oldest unanswered submits made room.
    assert_eq!(m.timeline_dropped as u64 + TIMELINE_LIMIT as u64, 2 + extra);
    assert_eq!(trace_of(&m).dropped_events, m.timeline_dropped);
}

#[test]
fn events_of_older_nodes_without_pdu_facts_still_trace() {
    let mut kv = dispatched();
    apply(
        &mut kv,
        1030,
        Kind::CarrierAccepted(CarrierAccepted {
            message_id: 1,
            link: LINK.into(),
            segment: 0,
            carrier_id: "5".into(),
            ..Default::default()
        }),
    );
    let trace = trace_of(&message(&kv));
    assert_eq!(
        shape(&trace.lines[2..]),
        [line(1030, "in", "", 0, "0")],
        "the answer without its PDUs"
    );
}

#[test]
fn the_usual_response_is_implied_and_an_unusual_one_is_kept() {
    assert_eq!(SubmitPdus::own_response("CMPP_SUBMIT"), "CMPP_SUBMIT_RESP");
    assert_eq!(SubmitPdus::own_response("submit_sm"), "submit_sm_resp");
    let mut kv = dispatched();
    apply(
        &mut kv,
        1030,
        Kind::CarrierRejected(CarrierRejected {
            message_id: 1,
            link: LINK.into(),
            code: 3,
            retryable: true,
            description: "invalid command".into(),
            retry_at_ms: 5000,
            policy_decided: true,
            pdus: Some(SubmitPdus {
                command: "submit_sm".into(),
                sequence: 7,
                sent_ms_before: 4,
                response: "generic_nack".into(),
                status: 3,
            }),
            ..Default::default()
        }),
    );
    let trace = trace_of(&message(&kv));
    assert_eq!(
        shape(&trace.lines[2..4]),
        [
            line(1026, "out", "submit_sm", 7, ""),
            line(1030, "in", "generic_nack", 7, "3"),
        ]
    );
    assert!(trace.lines[4]
        .meaning
        .starts_with("retry at 1970-01-01 00:00:05.000 UTC"));
    assert_eq!(message(&kv).state(), MessageState::Scheduled);
}
