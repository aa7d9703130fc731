//! The projection's rules, driven through its public API over an in-memory [`MemKv`].
//!
//! Most tests are data-driven: a list of events goes in through [`outcomes`], a compact verdict per
//! event comes out ("new 1", "dup 1", "applied", "ignored"), and the resulting message record is
//! checked. No RocksDB here: the projection is pure, and that is what these tests rely on.

use herald_raft::db::{CF_INFLIGHT, CF_ORPHAN_REPORTS, CF_QUEUE, CF_SCHEDULED, CF_SM_META};
use herald_raft::events::{
    event::Kind, CarrierAccepted, CarrierRejected, CarrierUnanswered, DeliveryReported, Event,
    LinkAssigned, MessageCanceled, MessageDispatched, MessageExpired, MessageReleased,
    MessageRequeued, MessageSubmitted, MoAssemblyClosed, MoConcat, MoReceived,
};
use herald_raft::idempotency::{request_digest, RequestContent};
use herald_raft::keys;
use herald_raft::projection::{
    apply_event, load_links, load_message, pending_of, MemKv, MAX_ATTEMPTS,
};
use herald_raft::records::{MessageRecord, MessageState, SegmentStatus};
use herald_raft::types::EventOutcome;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Event builders: the fields a test does not care about get plain defaults.

const LINK: &str = "acme";

fn submit(client: &str, key: &str, recipients: &[&str]) -> Kind {
    submit_on(client, key, recipients, LINK)
}

fn submit_on(client: &str, key: &str, recipients: &[&str], link: &str) -> Kind {
    Kind::Submitted(MessageSubmitted {
        client_id: client.into(),
        idempotency_key: key.into(),
        client_ref: String::new(),
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        text: "hello".into(),
        priority: 1,
        link: link.into(),
        expires_at_ms: 0,
        ..Default::default()
    })
}

fn assign(link: &str, node: u64, epoch: u64) -> Kind {
    Kind::LinkAssigned(LinkAssigned {
        link: link.into(),
        node,
        epoch,
    })
}

fn dispatch(id: u64, node: u64, epoch: u64, attempt: u32, segments: u32) -> Kind {
    Kind::Dispatched(MessageDispatched {
        message_id: id,
        link: LINK.into(),
        node,
        epoch,
        attempt,
        segments,
        ..Default::default()
    })
}

fn accepted(id: u64, segment: u32, carrier_id: &str) -> Kind {
    Kind::CarrierAccepted(CarrierAccepted {
        message_id: id,
        link: LINK.into(),
        segment,
        carrier_id: carrier_id.into(),
        ..Default::default()
    })
}

fn rejected(id: u64, code: u32, retryable: bool) -> Kind {
    Kind::CarrierRejected(CarrierRejected {
        message_id: id,
        link: LINK.into(),
        segment: 0,
        code,
        retryable,
        description: "refused".into(),
        ..Default::default()
    })
}

fn report(carrier_id: &str, delivered: bool) -> Kind {
    Kind::DeliveryReported(DeliveryReported {
        link: LINK.into(),
        carrier_id: carrier_id.into(),
        dest: "+4917000000".into(),
        status: if delivered { "DELIVRD" } else { "UNDELIV" }.into(),
        delivered,
        carrier_time: "2501011200".into(),
        ..Default::default()
    })
}

fn expire(id: u64) -> Kind {
    Kind::Expired(MessageExpired { message_id: id })
}

fn cancel(id: u64) -> Kind {
    Kind::Canceled(MessageCanceled { message_id: id })
}

// ---------------------------------------------------------------------------------------------
// Driving and inspecting the projection.

/// Applies `events` in order (stamped 1000, 1001, …) and returns one verdict per event.
fn outcomes(kv: &mut MemKv, events: &[Kind]) -> Vec<String> {
    events
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let event = Event::new(1000 + i as u64, kind.clone());
            verdict(&apply_event(kv, &event).expect("a MemKv never fails to read"))
        })
        .collect()
}

fn verdict(outcome: &EventOutcome) -> String {
    match outcome {
        EventOutcome::Submitted {
            message_id,
            created: true,
        } => format!("new {message_id}"),
        EventOutcome::Submitted {
            message_id,
            created: false,
        } => format!("dup {message_id}"),
        EventOutcome::Applied => "applied".into(),
        EventOutcome::Ignored { .. } => "ignored".into(),
        EventOutcome::IdempotencyConflict {
            message_id,
            differs,
        } => format!("conflict {message_id}: {}", differs.join(",")),
    }
}

/// A fresh projection after `events`, whose verdicts must all be "applied" or "new …".
fn after(events: &[Kind]) -> MemKv {
    let mut kv = MemKv::default();
    let verdicts = outcomes(&mut kv, events);
    assert!(
        verdicts
            .iter()
            .all(|v| v != "ignored" && !v.starts_with("dup")),
        "setup events were not all applied: {verdicts:?}"
    );
    kv
}

fn msg(kv: &MemKv, id: u64) -> MessageRecord {
    load_message(kv, id)
        .expect("readable")
        .unwrap_or_else(|| panic!("message {id} exists"))
}

fn state(kv: &MemKv, id: u64) -> MessageState {
    msg(kv, id).state()
}

/// Whether message `id` has an entry in `cf` (queue and in-flight keys end in the message id).
fn indexed_in(kv: &MemKv, cf: &str, id: u64) -> bool {
    kv.data
        .keys()
        .any(|(c, key)| *c == cf && keys::id_suffix(key) == Some(id))
}

fn queued(kv: &MemKv, id: u64) -> bool {
    indexed_in(kv, CF_QUEUE, id)
}

fn inflight(kv: &MemKv, id: u64) -> bool {
    indexed_in(kv, CF_INFLIGHT, id)
}

fn segment_statuses(kv: &MemKv, id: u64) -> Vec<SegmentStatus> {
    msg(kv, id).segments.iter().map(|s| s.status()).collect()
}

fn timeline(kv: &MemKv, id: u64) -> Vec<&'static str> {
    msg(kv, id).timeline.iter().map(|e| e.name()).collect()
}

/// Message 1 on `LINK`, dispatched by node 7 at epoch 1 with `segments` segments.
fn sending(recipients: &[&str], segments: u32) -> MemKv {
    after(&[
        submit("c", "", recipients),
        assign(LINK, 7, 1),
        dispatch(1, 7, 1, 1, segments),
    ])
}

// ---------------------------------------------------------------------------------------------
// 1. Submission and idempotency.

#[test]
fn submissions_get_consecutive_ids_and_wait_in_the_queue() {
    let mut kv = MemKv::default();
    assert_eq!(
        outcomes(
            &mut kv,
            &[
                submit("c", "", &["+1"]),
                submit("c", "", &["+2"]),
                submit("d", "k", &["+3"])
            ]
        ),
        ["new 1", "new 2", "new 3"]
    );
    for id in 1..=3 {
        let m = msg(&kv, id);
        assert_eq!(m.id, id);
        assert_eq!(m.state(), MessageState::Accepted);
        assert!(m.segments.is_empty());
        assert_eq!(m.attempts, 0);
        assert_eq!(timeline(&kv, id), ["MessageSubmitted"]);
        assert!(queued(&kv, id), "message {id} is queued");
        assert!(!inflight(&kv, id));
    }
    let m = msg(&kv, 2);
    assert_eq!(m.recipients, ["+2"]);
    assert_eq!(m.client_id, "c");
    assert_eq!(m.link, LINK);
    assert_eq!(m.submitted_at_ms, m.timeline[0].at_ms);
}

#[test]
fn the_queue_key_orders_by_priority_then_id() {
    let mut urgent = submit("c", "", &["+1"]);
    if let Kind::Submitted(s) = &mut urgent {
        s.priority = 0;
    }
    let kv = after(&[submit("c", "", &["+1"]), urgent]);
    let queue: Vec<u64> = kv
        .data
        .keys()
        .filter(|(cf, _)| *cf == CF_QUEUE)
        .filter_map(|(_, key)| keys::id_suffix(key))
        .collect();
    assert_eq!(
        queue,
        [2, 1],
        "the priority-0 message is first in key order"
    );
}

#[test]
fn a_repeated_idempotency_key_returns_the_first_message() {
    let mut kv = after(&[submit("c", "k", &["+1"])]);
    let before = kv.clone();
    assert_eq!(outcomes(&mut kv, &[submit("c", "k", &["+999"])]), ["dup 1"]);
    assert_eq!(kv, before, "a duplicate submission writes nothing");
    assert_eq!(msg(&kv, 1).recipients, ["+1"]);
    assert_eq!(timeline(&kv, 1), ["MessageSubmitted"]);
    // The id counter did not move: the next new message is 2.
    assert_eq!(
        outcomes(&mut kv, &[submit("c", "other", &["+1"])]),
        ["new 2"]
    );
}

/// A submission as a node of this version proposes it: with the digest of what the client sent.
fn submit_digested(key: &str, recipients: &[&str], text: &str, client_ref: &str) -> Kind {
    let recipients: Vec<String> = recipients.iter().map(|r| r.to_string()).collect();
    let request_digest = request_digest(&RequestContent {
        recipients: &recipients,
        text,
        priority: 1,
        named_link: "",
        client_ref,
        urgent: false,
    });
    Kind::Submitted(MessageSubmitted {
        client_id: "c".into(),
        idempotency_key: key.into(),
        client_ref: client_ref.into(),
        recipients,
        text: text.into(),
        priority: 1,
        link: LINK.into(),
        request_digest,
        ..Default::default()
    })
}

#[test]
fn a_key_reused_with_the_same_request_returns_the_first_message() {
    let mut kv = after(&[submit_digested("k", &["+1", "+2"], "hello", "r")]);
    let before = kv.clone();
    // Same content, recipients in another order: a retry.
    assert_eq!(
        outcomes(
            &mut kv,
            &[submit_digested("k", &["+2", "+1"], "hello", "r")]
        ),
        ["dup 1"]
    );
    assert_eq!(kv, before, "a retry writes nothing");
}

#[test]
fn a_key_reused_with_other_content_is_refused_and_changes_nothing() {
    let mut kv = after(&[submit_digested("k", &["+1"], "hello", "r")]);
    let before = kv.clone();
    assert_eq!(
        outcomes(
            &mut kv,
            &[
                submit_digested("k", &["+1"], "hello again", "r"),
                submit_digested("k", &["+1", "+2"], "hello", "r"),
                submit_digested("k", &["+3"], "bye", "other"),
            ]
        ),
        [
            "conflict 1: text",
            "conflict 1: recipients",
            "conflict 1: recipients,text,client_ref",
        ]
    );
    assert_eq!(kv, before, "a refused submission writes nothing");
    // The same request is still a retry of message 1, and a new key a new message.
    assert_eq!(
        outcomes(
            &mut kv,
            &[
                submit_digested("k", &["+1"], "hello", "r"),
                submit_digested("k2", &["+1"], "hello again", "r"),
            ]
        ),
        ["dup 1", "new 2"]
    );
}

#[test]
fn a_difference_the_record_cannot_show_is_named_link_or_urgent() {
    let Kind::Submitted(mut urgent) = submit_digested("k", &["+1"], "hello", "") else {
        unreachable!()
    };
    urgent.request_digest = request_digest(&RequestContent {
        recipients: &urgent.recipients,
        text: &urgent.text,
        priority: 1,
        named_link: "",
        client_ref: "",
        urgent: true,
    });
    let mut kv = after(&[submit_digested("k", &["+1"], "hello", "")]);
    assert_eq!(
        outcomes(&mut kv, &[Kind::Submitted(urgent)]),
        ["conflict 1: link or urgent"]
    );
}

#[test]
fn without_a_digest_on_either_side_the_key_alone_decides_as_before() {
    // An entry an older node wrote (no digest), then a new node's submission with other text;
    // and a new entry, then an older node's submission (no digest) with other text.
    let mut kv = after(&[submit("c", "old", &["+1"])]);
    assert_eq!(
        outcomes(&mut kv, &[submit_digested("old", &["+1"], "other", "")]),
        ["dup 1"]
    );
    let mut kv = after(&[submit_digested("new", &["+1"], "hello", "")]);
    assert_eq!(outcomes(&mut kv, &[submit("c", "new", &["+9"])]), ["dup 1"]);
}

#[test]
fn an_idempotency_key_is_scoped_to_its_client() {
    let mut kv = MemKv::default();
    assert_eq!(
        outcomes(
            &mut kv,
            &[
                submit("alice", "k", &["+1"]),
                submit("bob", "k", &["+1"]),
                submit("alice", "k", &["+1"]),
                submit("bob", "k", &["+1"]),
            ]
        ),
        ["new 1", "new 2", "dup 1", "dup 2"]
    );
}

#[test]
fn submissions_without_a_key_are_never_deduplicated() {
    let mut kv = MemKv::default();
    assert_eq!(
        outcomes(
            &mut kv,
            &[submit("c", "", &["+1"]), submit("c", "", &["+1"])]
        ),
        ["new 1", "new 2"]
    );
}

#[test]
fn events_for_unknown_messages_are_ignored_and_unknown_kinds_stop_apply() {
    let mut kv = after(&[assign(LINK, 7, 1)]);
    let before = kv.clone();
    assert_eq!(
        outcomes(
            &mut kv,
            &[
                dispatch(42, 7, 1, 1, 1),
                accepted(42, 0, "x"),
                rejected(42, 8, true),
                expire(42),
                cancel(42),
            ]
        ),
        ["ignored"; 5]
    );
    assert_eq!(kv, before);
    // An event of a kind this build does not know was written by a newer version: skipping it
    // would diverge from the nodes that apply it, so apply fails (the node stops).
    let unknown = Event {
        at_ms: 1,
        kind: None,
        principal: None,
    };
    let e = apply_event(&mut kv, &unknown).unwrap_err().to_string();
    assert!(
        e.contains("cannot apply an event of a kind it does not know"),
        "{e}"
    );
    assert_eq!(kv, before);
}

// ---------------------------------------------------------------------------------------------
// 2. Link assignment and epochs.

#[test]
fn link_assignment_moves_forward_only() {
    let mut kv = MemKv::default();
    assert_eq!(
        outcomes(
            &mut kv,
            &[
                assign(LINK, 1, 1),
                assign("other", 5, 9),
                assign(LINK, 2, 3),
                assign(LINK, 3, 3), // same epoch: stale
                assign(LINK, 4, 2), // older epoch: stale
            ]
        ),
        ["applied", "applied", "applied", "ignored", "ignored"]
    );
    let links = load_links(&kv).unwrap();
    let holder = links.holder(LINK).unwrap();
    assert_eq!((holder.node, holder.epoch), (2, 3));
    let other = links.holder("other").unwrap();
    assert_eq!((other.node, other.epoch), (5, 9));
    assert!(links.holder("nowhere").is_none());
}

#[test]
fn an_empty_projection_has_no_links() {
    assert!(load_links(&MemKv::default()).unwrap().links.is_empty());
}

// ---------------------------------------------------------------------------------------------
// 3. Dispatch and fencing.

#[test]
fn dispatch_by_the_holder_starts_sending() {
    let kv = sending(&["+1", "+2"], 2);
    let m = msg(&kv, 1);
    assert_eq!(m.state(), MessageState::Sending);
    assert_eq!((m.node, m.epoch, m.attempts), (7, 1, 1));
    assert_eq!(
        segment_statuses(&kv, 1),
        [SegmentStatus::Pending, SegmentStatus::Pending]
    );
    assert!(m.segments.iter().all(|s| s.carrier_id.is_empty()));
    assert!(!queued(&kv, 1));
    assert!(inflight(&kv, 1));
    assert_eq!(timeline(&kv, 1), ["MessageSubmitted", "MessageDispatched"]);
}

#[test]
fn dispatch_from_a_node_without_the_link_is_fenced() {
    let mut kv = after(&[submit("c", "", &["+1"]), assign(LINK, 7, 2)]);
    let before = kv.clone();
    assert_eq!(
        outcomes(
            &mut kv,
            &[
                dispatch(1, 8, 2, 1, 1), // wrong node
                dispatch(1, 7, 1, 1, 1), // right node, old epoch
                dispatch(1, 7, 3, 1, 1), // epoch from the future
            ]
        ),
        ["ignored"; 3]
    );
    assert_eq!(kv, before, "a fenced dispatch changes nothing");
    assert_eq!(state(&kv, 1), MessageState::Accepted);
    assert!(queued(&kv, 1));
}

#[test]
fn dispatch_on_a_link_nobody_holds_is_fenced() {
    let mut kv = after(&[submit("c", "", &["+1"])]);
    assert_eq!(outcomes(&mut kv, &[dispatch(1, 7, 0, 1, 1)]), ["ignored"]);
    assert_eq!(state(&kv, 1), MessageState::Accepted);
}

#[test]
fn the_old_holder_is_fenced_after_failover() {
    let mut kv = sending(&["+1"], 1);
    assert_eq!(
        outcomes(&mut kv, &[assign(LINK, 8, 2), dispatch(1, 7, 1, 2, 1)]),
        ["applied", "ignored"]
    );
    let m = msg(&kv, 1);
    assert_eq!((m.node, m.epoch, m.attempts), (7, 1, 1));
}

#[test]
fn failover_redispatch_keeps_acknowledged_segments() {
    let mut kv = sending(&["+1", "+2"], 2);
    assert_eq!(
        outcomes(
            &mut kv,
            &[
                accepted(1, 0, "c-0"),
                assign(LINK, 8, 2),
                dispatch(1, 8, 2, 2, 2)
            ]
        ),
        ["applied"; 3]
    );
    let m = msg(&kv, 1);
    assert_eq!(m.state(), MessageState::Sending);
    assert_eq!((m.node, m.epoch), (8, 2));
    assert_eq!(
        segment_statuses(&kv, 1),
        [SegmentStatus::Accepted, SegmentStatus::Pending],
        "the new holder must not resend what the carrier already took"
    );
    assert_eq!(m.segments[0].carrier_id, "c-0");
    assert!(inflight(&kv, 1));
    assert!(!queued(&kv, 1));
    // The new holder finishes the message.
    assert_eq!(outcomes(&mut kv, &[accepted(1, 1, "c-1")]), ["applied"]);
    assert_eq!(state(&kv, 1), MessageState::Sent);
}

#[test]
fn redispatch_with_a_different_segment_count_rebuilds_the_segments() {
    let mut kv = sending(&["+1"], 2);
    assert_eq!(
        outcomes(
            &mut kv,
            &[
                accepted(1, 0, "c-0"),
                assign(LINK, 8, 2),
                dispatch(1, 8, 2, 2, 3)
            ]
        ),
        ["applied"; 3]
    );
    assert_eq!(segment_statuses(&kv, 1), [SegmentStatus::Pending; 3]);
}

#[test]
fn a_sent_message_is_not_dispatched_again() {
    let mut kv = sending(&["+1"], 1);
    assert_eq!(
        outcomes(
            &mut kv,
            &[
                accepted(1, 0, "c-0"),
                assign(LINK, 8, 2),
                dispatch(1, 8, 2, 1, 1)
            ]
        ),
        ["applied", "applied", "ignored"]
    );
    assert_eq!(state(&kv, 1), MessageState::Sent);
}

// ---------------------------------------------------------------------------------------------
// 4. Carrier acknowledgements and delivery reports.

#[test]
fn acknowledged_then_delivered() {
    let mut kv = sending(&["+1"], 1);
    assert_eq!(outcomes(&mut kv, &[accepted(1, 0, "c-0")]), ["applied"]);
    assert_eq!(state(&kv, 1), MessageState::Sent);
    assert!(
        !inflight(&kv, 1),
        "a fully acknowledged message is no longer in flight"
    );
    assert_eq!(msg(&kv, 1).segments[0].carrier_id, "c-0");

    assert_eq!(outcomes(&mut kv, &[report("c-0", true)]), ["applied"]);
    let m = msg(&kv, 1);
    assert_eq!(m.state(), MessageState::Delivered);
    assert_eq!(m.segments[0].status(), SegmentStatus::Delivered);
    assert_eq!(m.segments[0].report_status, "DELIVRD");
    assert_eq!(
        timeline(&kv, 1),
        [
            "MessageSubmitted",
            "MessageDispatched",
            "CarrierAccepted",
            "DeliveryReported"
        ]
    );
}

#[test]
fn one_undelivered_segment_makes_the_message_undelivered() {
    let mut kv = sending(&["+1", "+2"], 2);
    outcomes(&mut kv, &[accepted(1, 0, "c-0"), accepted(1, 1, "c-1")]);
    assert_eq!(
        outcomes(&mut kv, &[report("c-0", true), report("c-1", false)]),
        ["applied", "applied"]
    );
    assert_eq!(state(&kv, 1), MessageState::Undelivered);
    assert_eq!(
        segment_statuses(&kv, 1),
        [SegmentStatus::Delivered, SegmentStatus::Undelivered]
    );
    assert_eq!(msg(&kv, 1).segments[1].report_status, "UNDELIV");
}

#[test]
fn two_recipients_by_two_parts_settle_only_when_all_four_segments_have() {
    let mut kv = sending(&["+1", "+2"], 4);
    for seg in 0..4 {
        assert_eq!(state(&kv, 1), MessageState::Sending, "before ack {seg}");
        assert!(inflight(&kv, 1));
        outcomes(&mut kv, &[accepted(1, seg, &format!("c-{seg}"))]);
    }
    assert_eq!(state(&kv, 1), MessageState::Sent);
    assert!(!inflight(&kv, 1));
    // Reports arrive out of order; the message stays SENT until the last one.
    for (n, seg) in [2, 0, 3].into_iter().enumerate() {
        assert_eq!(
            outcomes(&mut kv, &[report(&format!("c-{seg}"), true)]),
            ["applied"]
        );
        assert_eq!(state(&kv, 1), MessageState::Sent, "after {} reports", n + 1);
    }
    outcomes(&mut kv, &[report("c-1", true)]);
    assert_eq!(state(&kv, 1), MessageState::Delivered);
    assert_eq!(segment_statuses(&kv, 1), [SegmentStatus::Delivered; 4]);
}

#[test]
fn an_acknowledgement_for_a_segment_that_does_not_exist_is_ignored() {
    let mut kv = sending(&["+1"], 1);
    let before = kv.clone();
    assert_eq!(outcomes(&mut kv, &[accepted(1, 1, "c-x")]), ["ignored"]);
    assert_eq!(kv, before);
    // Before any dispatch there are no segments at all.
    let mut kv = after(&[submit("c", "", &["+1"])]);
    assert_eq!(outcomes(&mut kv, &[accepted(1, 0, "c-x")]), ["ignored"]);
}

#[test]
fn a_repeated_acknowledgement_does_not_undo_a_report() {
    let mut kv = sending(&["+1"], 1);
    outcomes(&mut kv, &[accepted(1, 0, "c-0"), report("c-0", true)]);
    assert_eq!(outcomes(&mut kv, &[accepted(1, 0, "c-0")]), ["applied"]);
    assert_eq!(state(&kv, 1), MessageState::Delivered);
    assert_eq!(segment_statuses(&kv, 1), [SegmentStatus::Delivered]);
}

#[test]
fn reports_are_matched_per_link() {
    // The same carrier id on another link belongs to another message.
    let mut kv = sending(&["+1"], 1);
    outcomes(&mut kv, &[accepted(1, 0, "same")]);
    let mut foreign = report("same", true);
    if let Kind::DeliveryReported(r) = &mut foreign {
        r.link = "elsewhere".into();
    }
    assert_eq!(outcomes(&mut kv, &[foreign]), ["applied"]);
    assert_eq!(state(&kv, 1), MessageState::Sent);
    assert_eq!(
        kv.data
            .keys()
            .filter(|(cf, _)| *cf == CF_ORPHAN_REPORTS)
            .count(),
        1,
        "kept as an orphan of the other link"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. A report that overtakes its acknowledgement.

#[test]
fn an_early_report_waits_for_its_acknowledgement() {
    let mut kv = sending(&["+1"], 1);
    assert_eq!(outcomes(&mut kv, &[report("c-0", true)]), ["applied"]);
    assert_eq!(state(&kv, 1), MessageState::Sending, "nothing to match yet");
    assert_eq!(timeline(&kv, 1), ["MessageSubmitted", "MessageDispatched"]);
    assert!(kv.data.keys().any(|(cf, _)| *cf == CF_ORPHAN_REPORTS));

    assert_eq!(outcomes(&mut kv, &[accepted(1, 0, "c-0")]), ["applied"]);
    let m = msg(&kv, 1);
    assert_eq!(m.state(), MessageState::Delivered);
    assert_eq!(m.segments[0].report_status, "DELIVRD");
    assert_eq!(
        timeline(&kv, 1),
        [
            "MessageSubmitted",
            "MessageDispatched",
            "CarrierAccepted",
            "DeliveryReported"
        ]
    );
    assert!(
        !kv.data.keys().any(|(cf, _)| *cf == CF_ORPHAN_REPORTS),
        "a matched orphan is removed"
    );
    assert!(!inflight(&kv, 1));
}

#[test]
fn an_early_undelivered_report_on_one_of_two_segments() {
    let mut kv = sending(&["+1", "+2"], 2);
    outcomes(
        &mut kv,
        &[
            report("c-1", false),
            accepted(1, 0, "c-0"),
            accepted(1, 1, "c-1"),
        ],
    );
    assert_eq!(
        segment_statuses(&kv, 1),
        [SegmentStatus::Accepted, SegmentStatus::Undelivered]
    );
    assert_eq!(state(&kv, 1), MessageState::Sent);
    outcomes(&mut kv, &[report("c-0", true)]);
    assert_eq!(state(&kv, 1), MessageState::Undelivered);
}

// ---------------------------------------------------------------------------------------------
// 6. Rejections and retries.

#[test]
fn a_retryable_rejection_requeues_until_the_attempts_run_out() {
    let mut kv = after(&[submit("c", "", &["+1"]), assign(LINK, 7, 1)]);
    for attempt in 1..MAX_ATTEMPTS {
        assert_eq!(
            outcomes(
                &mut kv,
                &[dispatch(1, 7, 1, attempt, 1), rejected(1, 88, true)]
            ),
            ["applied", "applied"],
            "attempt {attempt}"
        );
        let m = msg(&kv, 1);
        assert_eq!(m.state(), MessageState::Accepted, "attempt {attempt}");
        assert_eq!(m.attempts, attempt);
        assert!(queued(&kv, 1), "requeued after attempt {attempt}");
        assert!(!inflight(&kv, 1));
        assert_eq!(m.last_error, "carrier code 88: refused");
    }
    assert_eq!(
        outcomes(
            &mut kv,
            &[dispatch(1, 7, 1, MAX_ATTEMPTS, 1), rejected(1, 88, true)]
        ),
        ["applied", "applied"]
    );
    let m = msg(&kv, 1);
    assert_eq!(m.state(), MessageState::Failed);
    assert_eq!(m.attempts, MAX_ATTEMPTS);
    assert!(!queued(&kv, 1));
    assert!(!inflight(&kv, 1));
    assert_eq!(
        m.timeline.len(),
        1 + 2 * MAX_ATTEMPTS as usize,
        "submission plus one dispatch and one rejection per attempt"
    );
}

#[test]
fn a_permanent_rejection_fails_at_once() {
    let mut kv = sending(&["+1"], 1);
    assert_eq!(outcomes(&mut kv, &[rejected(1, 11, false)]), ["applied"]);
    let m = msg(&kv, 1);
    assert_eq!(m.state(), MessageState::Failed);
    assert!(m.last_error.contains("11"), "{}", m.last_error);
    assert_eq!(m.last_error, "carrier code 11: refused");
    assert!(!queued(&kv, 1));
    assert!(!inflight(&kv, 1));
    assert_eq!(timeline(&kv, 1).last(), Some(&"CarrierRejected"));
}

#[test]
fn a_requeued_message_can_be_dispatched_again() {
    let mut kv = sending(&["+1"], 1);
    assert_eq!(
        outcomes(
            &mut kv,
            &[
                rejected(1, 88, true),
                dispatch(1, 7, 1, 2, 1),
                accepted(1, 0, "c-0")
            ]
        ),
        ["applied"; 3]
    );
    assert_eq!(state(&kv, 1), MessageState::Sent);
    assert!(!queued(&kv, 1));
}

// ---------------------------------------------------------------------------------------------
// 7. Expiry, cancellation and terminal states.

#[test]
fn cancel_only_while_waiting() {
    let mut kv = after(&[
        submit("c", "", &["+1"]),
        submit("c", "", &["+2"]),
        assign(LINK, 7, 1),
    ]);
    assert_eq!(
        outcomes(&mut kv, &[cancel(1), dispatch(2, 7, 1, 1, 1), cancel(2)]),
        ["applied", "applied", "ignored"]
    );
    assert_eq!(state(&kv, 1), MessageState::Canceled);
    assert!(!queued(&kv, 1));
    assert_eq!(timeline(&kv, 1), ["MessageSubmitted", "MessageCanceled"]);
    assert_eq!(state(&kv, 2), MessageState::Sending);
    assert!(inflight(&kv, 2));
}

#[test]
fn expiry_applies_while_waiting_sending_or_sent() {
    let mut kv = after(&[
        submit("c", "", &["+1"]),
        submit("c", "", &["+2"]),
        submit("c", "", &["+3"]),
        assign(LINK, 7, 1),
        dispatch(2, 7, 1, 1, 1),
        dispatch(3, 7, 1, 1, 1),
        accepted(3, 0, "c-3"),
    ]);
    assert_eq!(state(&kv, 3), MessageState::Sent);
    assert_eq!(
        outcomes(&mut kv, &[expire(1), expire(2), expire(3)]),
        ["applied"; 3]
    );
    for id in 1..=3 {
        assert_eq!(state(&kv, id), MessageState::Expired, "message {id}");
        assert!(!queued(&kv, id));
        assert!(!inflight(&kv, id));
        assert_eq!(timeline(&kv, id).last(), Some(&"MessageExpired"));
    }
}

/// Events that must not change the state of a message that reached a terminal state.
fn late_events() -> Vec<Kind> {
    vec![
        dispatch(1, 7, 1, 2, 1),
        rejected(1, 88, true),
        rejected(1, 11, false),
        expire(1),
        cancel(1),
    ]
}

#[test]
fn terminal_states_are_final() {
    let cases: Vec<(MessageState, Vec<Kind>)> = vec![
        (MessageState::Canceled, vec![cancel(1)]),
        (MessageState::Expired, vec![expire(1)]),
        (
            MessageState::Failed,
            vec![dispatch(1, 7, 1, 1, 1), rejected(1, 11, false)],
        ),
        (
            MessageState::Delivered,
            vec![
                dispatch(1, 7, 1, 1, 1),
                accepted(1, 0, "c-0"),
                report("c-0", true),
            ],
        ),
        (
            MessageState::Undelivered,
            vec![
                dispatch(1, 7, 1, 1, 1),
                accepted(1, 0, "c-0"),
                report("c-0", false),
            ],
        ),
    ];
    for (terminal, path) in cases {
        let mut setup = vec![submit("c", "", &["+1"]), assign(LINK, 7, 1)];
        setup.extend(path);
        let mut kv = after(&setup);
        assert_eq!(state(&kv, 1), terminal);
        let before = kv.clone();
        assert_eq!(
            outcomes(&mut kv, &late_events()),
            ["ignored"; 5],
            "late events on a {} message",
            terminal.name()
        );
        assert_eq!(kv, before, "{} changed", terminal.name());
        assert!(!queued(&kv, 1));
        assert!(!inflight(&kv, 1));
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Determinism and invariants over random event sequences.

const LINKS: [&str; 2] = ["acme", "zeta"];
const CARRIER_IDS: [&str; 4] = ["c0", "c1", "c2", "c3"];

fn arb_kind() -> impl Strategy<Value = Kind> {
    let id = 1..=4u64;
    let link = prop::sample::select(&LINKS[..]);
    let cid = prop::sample::select(&CARRIER_IDS[..]);
    prop_oneof![
        3 => (
            prop::sample::select(&["x", "y"][..]),
            prop::sample::select(&["", "k1", "k2"][..]),
            link.clone(),
            1..=2usize,
        )
            .prop_map(|(client, key, link, n)| {
                let recipients: Vec<&str> = ["+1", "+2"][..n].to_vec();
                submit_on(client, key, &recipients, link)
            }),
        2 => (link.clone(), 1..=3u64, 1..=4u64).prop_map(|(l, n, e)| assign(l, n, e)),
        3 => (id.clone(), link.clone(), 1..=3u64, 1..=4u64, 1..=6u32, 1..=3u32).prop_map(
            |(id, link, node, epoch, attempt, segments)| Kind::Dispatched(MessageDispatched {
                message_id: id,
                link: link.into(),
                node,
                epoch,
                attempt,
                segments,
                ..Default::default()
            })
        ),
        3 => (id.clone(), link.clone(), 0..3u32, cid.clone()).prop_map(|(id, link, segment, c)| {
            Kind::CarrierAccepted(CarrierAccepted {
                message_id: id,
                link: link.into(),
                segment,
                carrier_id: c.into(),
                ..Default::default()
            })
        }),
        2 => (id.clone(), link.clone(), any::<bool>()).prop_map(|(id, link, retryable)| {
            Kind::CarrierRejected(CarrierRejected {
                message_id: id,
                link: link.into(),
                segment: 0,
                code: 88,
                retryable,
                description: String::new(),
                ..Default::default()
            })
        }),
        3 => (link.clone(), cid, any::<bool>()).prop_map(|(link, c, delivered)| {
            Kind::DeliveryReported(DeliveryReported {
                link: link.into(),
                carrier_id: c.into(),
                dest: String::new(),
                status: String::new(),
                delivered,
                carrier_time: String::new(),
                ..Default::default()
            })
        }),
        1 => (id.clone(), link.clone(), 0..3u32).prop_map(|(message_id, link, segment)| {
            Kind::CarrierUnanswered(CarrierUnanswered {
                message_id,
                link: link.into(),
                segment,
                failure: "connection lost".into(),
                ..Default::default()
            })
        }),
        1 => id.clone().prop_map(expire),
        1 => id.clone().prop_map(cancel),
        1 => (prop::sample::select(&["x", "y"][..]), prop::sample::select(&[0u64, 5, 500][..]))
            .prop_map(|(client, send_at_ms)| Kind::Submitted(MessageSubmitted {
                client_id: client.into(),
                recipients: vec!["+1".into()],
                text: "later".into(),
                route: "r".into(),
                send_at_ms,
                ..Default::default()
            })),
        1 => id.clone().prop_map(|message_id| Kind::Released(MessageReleased { message_id })),
        1 => (id.clone(), link.clone(), 1..=4u64).prop_map(|(message_id, link, epoch)| {
            Kind::Requeued(MessageRequeued {
                message_id,
                link: link.into(),
                epoch,
                ..Default::default()
            })
        }),
        2 => (1..=2u32, 0..=3u32, 1..=3u32, prop::sample::select(&["", "m1", "m2"][..]), prop::sample::select(&["", "x"][..]))
            .prop_map(|(reference, total, number, carrier_id, rule_client)| {
                Kind::MoReceived(MoReceived {
                    link: "acme".into(),
                    src: "+2".into(),
                    dest: "106".into(),
                    text: format!("{reference}.{number}"),
                    carrier_id: carrier_id.into(),
                    concat: (total > 0).then(|| MoConcat { reference, total, number, scheme: "udh8".into() }),
                    rule_client: rule_client.into(),
                    ..Default::default()
                })
            }),
        1 => (1..=2u32, 0..=3u32, prop::sample::select(&["", "m1"][..]), 0..60u64)
            .prop_map(|(reference, total, carrier_id, since_ms)| {
                Kind::MoAssemblyClosed(MoAssemblyClosed {
                    src: "+2".into(),
                    dest: "106".into(),
                    reference,
                    total,
                    carrier_id: carrier_id.into(),
                    since_ms,
                })
            }),
        1 => (id, link, prop::sample::select(&[0u64, 3, 900][..]), prop::sample::select(&["", "zeta"][..])).prop_map(|(message_id, link, retry_at_ms, retry_link)| {
            Kind::CarrierRejected(CarrierRejected {
                message_id,
                link: link.into(),
                code: 8,
                retryable: true,
                retry_at_ms,
                policy_decided: true,
                retry_link: retry_link.into(),
                ..Default::default()
            })
        }),
        // Recipients on two routes: a split group and two copies.
        1 => prop::sample::select(&["x", "y"][..]).prop_map(|client| {
            let part = |route: &str, link: &str, number: &str| herald_raft::events::RecipientsRoute {
                route: route.into(),
                link: link.into(),
                recipients: vec![number.into()],
            };
            Kind::Submitted(MessageSubmitted {
                client_id: client.into(),
                recipients: vec!["+1".into(), "+2".into()],
                text: "split".into(),
                route: "r".into(),
                link: LINKS[0].into(),
                split: vec![part("r", LINKS[0], "+1"), part("", LINKS[1], "+2")],
                ..Default::default()
            })
        }),
        // An urgent message fanned out over both links: a group and two copies.
        1 => (prop::sample::select(&["x", "y"][..]), prop::sample::select(&[0u64, 500][..]))
            .prop_map(|(client, send_at_ms)| Kind::Submitted(MessageSubmitted {
                client_id: client.into(),
                recipients: vec!["+1".into()],
                text: "urgent".into(),
                route: "r".into(),
                link: LINKS[0].into(),
                send_at_ms,
                fan_out_links: LINKS.iter().map(|l| l.to_string()).collect(),
                ..Default::default()
            })),
    ]
}

fn run_all(kinds: &[Kind]) -> (MemKv, Vec<EventOutcome>) {
    let mut kv = MemKv::default();
    let outcomes = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| apply_event(&mut kv, &Event::new(i as u64, k.clone())).unwrap())
        .collect();
    (kv, outcomes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_same_events_give_the_same_bytes(kinds in prop::collection::vec(arb_kind(), 0..60)) {
        let (a, outcomes_a) = run_all(&kinds);
        let (b, outcomes_b) = run_all(&kinds);
        prop_assert_eq!(outcomes_a, outcomes_b);
        prop_assert!(a == b, "two replicas diverged");
    }

    #[test]
    fn created_ids_have_no_gaps(kinds in prop::collection::vec(arb_kind(), 0..60)) {
        let (kv, outcomes) = run_all(&kinds);
        let created: Vec<u64> = outcomes
            .iter()
            .filter_map(|o| match o {
                EventOutcome::Submitted { message_id, created: true } => Some(*message_id),
                _ => None,
            })
            .collect();
        // Every id is a submission or one of a fan-out group's copies, which follow their group.
        let mut expected = Vec::new();
        let mut next = 1;
        for id in &created {
            prop_assert_eq!(*id, next);
            expected.push(*id);
            let copies = load_message(&kv, *id).unwrap().unwrap().copies;
            prop_assert_eq!(&copies, &(id + 1..=id + copies.len() as u64).collect::<Vec<_>>());
            next = id + 1 + copies.len() as u64;
        }
        prop_assert_eq!(&created, &expected);
        for o in &outcomes {
            if let EventOutcome::Submitted { message_id, created: false } = o {
                prop_assert!(created.contains(message_id), "duplicate of an unknown id {}", message_id);
            }
        }
        prop_assert!(load_message(&kv, next).unwrap().is_none());
    }

    #[test]
    fn ignored_events_change_nothing(kinds in prop::collection::vec(arb_kind(), 0..60)) {
        let mut kv = MemKv::default();
        for (i, k) in kinds.iter().enumerate() {
            let before = kv.clone();
            let outcome = apply_event(&mut kv, &Event::new(i as u64, k.clone())).unwrap();
            if matches!(outcome, EventOutcome::Ignored { .. } | EventOutcome::Submitted { created: false, .. }) {
                prop_assert!(kv == before, "event {} ({:?}) was {:?} but changed state", i, k, outcome);
            }
        }
    }

    #[test]
    fn terminal_states_never_change(kinds in prop::collection::vec(arb_kind(), 0..60)) {
        let mut kv = MemKv::default();
        let mut terminal: std::collections::BTreeMap<u64, MessageState> = Default::default();
        for (i, k) in kinds.iter().enumerate() {
            apply_event(&mut kv, &Event::new(i as u64, k.clone())).unwrap();
            for id in 1..=4 {
                let Some(m) = load_message(&kv, id).unwrap() else { continue };
                match terminal.get(&id) {
                    Some(s) => prop_assert_eq!(m.state(), *s, "message {} left a terminal state", id),
                    None if m.state().is_terminal() => { terminal.insert(id, m.state()); }
                    None => {}
                }
            }
        }
    }
}

/// Checks the index invariants of every message after every event of `kinds`.
fn check_indexes(kinds: &[Kind]) -> Result<(), String> {
    let mut kv = MemKv::default();
    for (i, k) in kinds.iter().enumerate() {
        apply_event(&mut kv, &Event::new(i as u64, k.clone())).unwrap();
        for id in 1..=4 {
            let Some(m) = load_message(&kv, id).unwrap() else {
                continue;
            };
            let (q, f) = (queued(&kv, id), inflight(&kv, id));
            let s = m.state();
            if s.is_terminal() && (q || f) {
                return Err(format!(
                    "after event {i}: message {id} is {} yet queued={q} in_flight={f}",
                    s.name()
                ));
            }
            if q && s != MessageState::Accepted {
                return Err(format!(
                    "after event {i}: message {id} is {} yet queued",
                    s.name()
                ));
            }
            // A message is in the in-flight set exactly while SENDING (its group never is).
            if !m.is_group() && f != (s == MessageState::Sending) {
                return Err(format!(
                    "after event {i}: message {id} is {} and in_flight={f}",
                    s.name()
                ));
            }
            if !m.is_group() && q != (s == MessageState::Accepted) {
                return Err(format!(
                    "after event {i}: message {id} is {} and queued={q}",
                    s.name()
                ));
            }
            let scheduled = indexed_in(&kv, CF_SCHEDULED, id);
            // A fan-out group is never indexed itself: its copies are.
            if !m.is_group() && scheduled != (s == MessageState::Scheduled) {
                return Err(format!(
                    "after event {i}: message {id} is {} and scheduled={scheduled}",
                    s.name()
                ));
            }
        }
        let queued_entries = kv.data.keys().filter(|(cf, _)| *cf == CF_QUEUE).count() as u64;
        let counted: u64 = kv
            .data
            .iter()
            .filter(|((cf, key), _)| *cf == CF_SM_META && key.starts_with(b"queue_len\0"))
            .map(|(_, v)| u64::from_be_bytes(v.as_slice().try_into().unwrap()))
            .sum();
        if queued_entries != counted {
            return Err(format!(
                "after event {i}: {queued_entries} queue entries, counted {counted}"
            ));
        }
        for client in ["x", "y"] {
            // A fan-out submission takes three ids (the group and two copies).
            let open = (1..=3 * kinds.len() as u64)
                .filter_map(|id| load_message(&kv, id).unwrap())
                .filter(|m| m.client_id == client && m.copy_of == 0 && !m.state().is_terminal())
                .count() as u64;
            let counted = pending_of(&kv, client).unwrap();
            if open != counted {
                return Err(format!(
                    "after event {i}: client {client} has {open} open messages, counted {counted}"
                ));
            }
        }
    }
    Ok(())
}

/// Every MO assembly has exactly one age entry, stamped with its `since_ms`, and reply ids run
/// from 1 without gaps.
fn check_mo_indexes(kinds: &[Kind]) -> Result<(), String> {
    use herald_raft::db::{CF_MO_AGE, CF_MO_ASSEMBLY};
    use prost::Message as _;
    let mut kv = MemKv::default();
    for (i, k) in kinds.iter().enumerate() {
        apply_event(&mut kv, &Event::new(i as u64, k.clone())).unwrap();
        let mut expected: Vec<Vec<u8>> = kv
            .data
            .iter()
            .filter(|((cf, _), _)| *cf == CF_MO_ASSEMBLY)
            .map(|((_, key), v)| {
                let a = herald_raft::records::MoAssemblyRecord::decode(v.as_slice()).unwrap();
                keys::mo_age(a.since_ms, key)
            })
            .collect();
        let mut ages: Vec<Vec<u8>> = kv
            .data
            .keys()
            .filter(|(cf, _)| *cf == CF_MO_AGE)
            .map(|(_, key)| key.clone())
            .collect();
        expected.sort();
        ages.sort();
        if expected != ages {
            return Err(format!(
                "after event {i}: age index {ages:?}, assemblies say {expected:?}"
            ));
        }
        let ids: Vec<u64> = (1..)
            .map_while(|id| {
                herald_raft::replies::load_reply(&kv, id)
                    .unwrap()
                    .map(|r| r.id)
            })
            .collect();
        let stored = kv
            .data
            .keys()
            .filter(|(cf, _)| *cf == herald_raft::db::CF_REPLIES)
            .count();
        if ids.len() != stored {
            return Err(format!(
                "after event {i}: reply ids {ids:?} but {stored} replies stored"
            ));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn mo_assemblies_and_their_age_index_agree(kinds in prop::collection::vec(arb_kind(), 0..60)) {
        check_mo_indexes(&kinds).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn only_waiting_messages_are_queued(kinds in prop::collection::vec(arb_kind(), 0..60)) {
        check_indexes(&kinds).map_err(TestCaseError::fail)?;
    }
}

/// A message that a failover left requeued: node 7 dispatched it at epoch 1, node 8 took the link
/// and dispatched it again at epoch 2, and the carrier told node 8 "retry later".
fn requeued_after_failover() -> MemKv {
    let kv = after(&[
        submit("c", "", &["+1"]),
        assign(LINK, 7, 1),
        dispatch(1, 7, 1, 1, 1),
        assign(LINK, 8, 2),
        dispatch(1, 8, 2, 2, 1),
        rejected(1, 88, true),
    ]);
    assert_eq!(state(&kv, 1), MessageState::Accepted);
    assert!(queued(&kv, 1));
    kv
}

/// Shrunk by `only_waiting_messages_are_queued`: node 7's permanent rejection, proposed before it
/// lost the link, lands after the message was requeued. It answered an older dispatch, so it is
/// ignored: the message stays queued and waiting, never FAILED-but-queued.
#[test]
fn a_late_rejection_of_a_requeued_message_is_ignored() {
    let mut kv = requeued_after_failover();
    assert_eq!(outcomes(&mut kv, &[rejected(1, 11, false)]), ["ignored"]);
    assert_eq!(state(&kv, 1), MessageState::Accepted);
    assert!(queued(&kv, 1));
}

/// Node 7's acknowledgement of segment 0 (proposed persistently, so it may land late) arrives after
/// the message was requeued: the message settles to SENT, then DELIVERED, still in the queue.
#[test]
fn a_late_acknowledgement_of_a_requeued_message_leaves_no_queue_entry() {
    let mut kv = requeued_after_failover();
    assert_eq!(outcomes(&mut kv, &[accepted(1, 0, "c-0")]), ["applied"]);
    let s = state(&kv, 1);
    assert!(
        s == MessageState::Accepted || !queued(&kv, 1),
        "message is {} and still in the queue",
        s.name()
    );
    outcomes(&mut kv, &[report("c-0", true)]);
    let s = state(&kv, 1);
    assert!(
        s == MessageState::Accepted || !queued(&kv, 1),
        "message is {} and still in the queue",
        s.name()
    );
}
