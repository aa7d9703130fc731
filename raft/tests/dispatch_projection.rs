//! The projection's rules for dispatch: routes' shared queues, scheduling and release, retry
//! decisions taken by a policy, requeues, the attempt compare-and-set between connections, link
//! status, drained nodes, policy versions and the per-client pending count.

use herald_raft::db::{CF_QUEUE, CF_SCHEDULED};
use herald_raft::events::{
    event::Kind, CarrierAccepted, CarrierRejected, DeliveryReported, Event, LinkAssigned,
    LinkStatusChanged, MessageCanceled, MessageDispatched, MessageReleased, MessageRequeued,
    MessageSubmitted, NodeDrainChanged, PolicyChanged,
};
use herald_raft::keys;
use herald_raft::projection::{
    apply_event, load_links, load_message, load_policy, pending_of, MemKv,
};
use herald_raft::records::{queue_name, MessageState};
use herald_raft::types::EventOutcome;

const NOW: u64 = 1_000;

fn apply(kv: &mut MemKv, at_ms: u64, kind: Kind) -> EventOutcome {
    apply_event(kv, &Event::new(at_ms, kind)).expect("a MemKv never fails")
}

fn applied(kv: &mut MemKv, kind: Kind) {
    let outcome = apply(kv, NOW, kind);
    assert!(
        !matches!(outcome, EventOutcome::Ignored { .. }),
        "expected the event to apply: {outcome:?}"
    );
}

fn ignored(kv: &mut MemKv, kind: Kind) -> String {
    match apply(kv, NOW, kind) {
        EventOutcome::Ignored { reason } => reason,
        other => panic!("expected the event to be ignored, got {other:?}"),
    }
}

fn routed(client: &str, send_at_ms: u64) -> Kind {
    Kind::Submitted(MessageSubmitted {
        client_id: client.into(),
        recipients: vec!["13800138000".into()],
        text: "hi".into(),
        priority: 3,
        route: "mobile".into(),
        send_at_ms,
        ..Default::default()
    })
}

fn assign(slot: &str, node: u64, epoch: u64) -> Kind {
    Kind::LinkAssigned(LinkAssigned {
        link: slot.into(),
        node,
        epoch,
    })
}

fn dispatch(id: u64, link: &str, slot: &str, node: u64, attempt: u32) -> Kind {
    Kind::Dispatched(MessageDispatched {
        message_id: id,
        link: link.into(),
        slot: slot.into(),
        node,
        epoch: 1,
        attempt,
        segments: 1,
    })
}

fn state(kv: &MemKv, id: u64) -> MessageState {
    load_message(kv, id).unwrap().unwrap().state()
}

fn in_cf(kv: &MemKv, cf: &str, id: u64) -> bool {
    kv.data
        .keys()
        .any(|(c, key)| *c == cf && keys::id_suffix(key) == Some(id))
}

fn route_queue_holds(kv: &MemKv, id: u64) -> bool {
    let prefix = keys::queue_prefix(&queue_name("mobile", ""));
    kv.data.keys().any(|(c, key)| {
        *c == CF_QUEUE && key.starts_with(&prefix) && keys::id_suffix(key) == Some(id)
    })
}

#[test]
fn a_routed_message_waits_in_its_route_queue_and_any_link_of_the_route_takes_it() {
    let mut kv = MemKv::default();
    applied(&mut kv, routed("erp", 0));
    assert!(route_queue_holds(&kv, 1));
    applied(&mut kv, assign("backup", 2, 1));
    applied(&mut kv, dispatch(1, "backup", "", 2, 1));
    let m = load_message(&kv, 1).unwrap().unwrap();
    assert_eq!(
        (m.state(), m.link.as_str(), m.route.as_str()),
        (MessageState::Sending, "backup", "mobile")
    );
    assert!(!route_queue_holds(&kv, 1));
}

#[test]
fn a_scheduled_message_waits_until_released_then_joins_its_queue() {
    let mut kv = MemKv::default();
    applied(&mut kv, routed("erp", NOW + 60_000));
    assert_eq!(state(&kv, 1), MessageState::Scheduled);
    assert!(in_cf(&kv, CF_SCHEDULED, 1));
    assert!(!route_queue_holds(&kv, 1));
    // Not dispatchable while scheduled.
    applied(&mut kv, assign("primary", 1, 1));
    ignored(&mut kv, dispatch(1, "primary", "", 1, 1));
    applied(&mut kv, Kind::Released(MessageReleased { message_id: 1 }));
    assert_eq!(state(&kv, 1), MessageState::Accepted);
    assert!(!in_cf(&kv, CF_SCHEDULED, 1));
    assert!(route_queue_holds(&kv, 1));
    // A second release is a no-op.
    ignored(&mut kv, Kind::Released(MessageReleased { message_id: 1 }));
}

#[test]
fn a_send_time_already_past_queues_at_once() {
    let mut kv = MemKv::default();
    applied(&mut kv, routed("erp", NOW - 1));
    assert_eq!(state(&kv, 1), MessageState::Accepted);
    assert!(route_queue_holds(&kv, 1));
}

#[test]
fn a_scheduled_message_can_be_canceled_and_leaves_the_schedule() {
    let mut kv = MemKv::default();
    applied(&mut kv, routed("erp", NOW + 60_000));
    applied(&mut kv, Kind::Canceled(MessageCanceled { message_id: 1 }));
    assert_eq!(state(&kv, 1), MessageState::Canceled);
    assert!(!in_cf(&kv, CF_SCHEDULED, 1));
    assert_eq!(pending_of(&kv, "erp").unwrap(), 0);
}

fn reject(retry_at_ms: u64, code: u32) -> Kind {
    Kind::CarrierRejected(CarrierRejected {
        message_id: 1,
        link: "primary".into(),
        code,
        retryable: true,
        description: "busy".into(),
        retry_at_ms,
        policy_decided: true,
        ..Default::default()
    })
}

#[test]
fn a_policy_retry_backs_off_through_the_schedule_and_a_policy_give_up_fails_with_the_code() {
    let mut kv = MemKv::default();
    applied(&mut kv, routed("erp", 0));
    applied(&mut kv, assign("primary", 1, 1));
    applied(&mut kv, dispatch(1, "primary", "", 1, 1));
    applied(&mut kv, reject(NOW + 5_000, 8));
    let m = load_message(&kv, 1).unwrap().unwrap();
    assert_eq!(
        (m.state(), m.not_before_ms, m.last_code),
        (MessageState::Scheduled, NOW + 5_000, 8)
    );
    applied(&mut kv, Kind::Released(MessageReleased { message_id: 1 }));
    applied(&mut kv, dispatch(1, "primary", "", 1, 2));
    // Retryable by the carrier, but the policy says no more attempts.
    applied(&mut kv, reject(0, 9));
    let m = load_message(&kv, 1).unwrap().unwrap();
    assert_eq!(
        (m.state(), m.last_code, m.attempts),
        (MessageState::Failed, 9, 2)
    );
    assert_eq!(pending_of(&kv, "erp").unwrap(), 0);
}

#[test]
fn of_two_connections_dispatching_the_same_attempt_only_the_first_counts() {
    let mut kv = MemKv::default();
    applied(&mut kv, routed("erp", 0));
    applied(&mut kv, assign("primary#0", 1, 1));
    applied(&mut kv, assign("primary#1", 2, 1));
    applied(&mut kv, dispatch(1, "primary", "primary#0", 1, 1));
    let reason = ignored(&mut kv, dispatch(1, "primary", "primary#1", 2, 1));
    assert!(reason.contains("attempt"), "{reason}");
    let m = load_message(&kv, 1).unwrap().unwrap();
    assert_eq!((m.slot.as_str(), m.node), ("primary#0", 1));
}

#[test]
fn a_dispatch_on_a_slot_held_by_another_node_is_fenced() {
    let mut kv = MemKv::default();
    applied(&mut kv, routed("erp", 0));
    applied(&mut kv, assign("primary#0", 1, 1));
    ignored(&mut kv, dispatch(1, "primary", "primary#0", 2, 1));
}

fn requeue(slot: &str, epoch: u64) -> Kind {
    Kind::Requeued(MessageRequeued {
        message_id: 1,
        link: "primary".into(),
        slot: slot.into(),
        epoch,
        reason: "link down".into(),
    })
}

#[test]
fn a_requeue_by_the_dispatching_connection_returns_the_message_to_its_route() {
    let mut kv = MemKv::default();
    applied(&mut kv, routed("erp", 0));
    applied(&mut kv, assign("primary", 1, 1));
    applied(&mut kv, dispatch(1, "primary", "", 1, 1));
    // A stale epoch or another slot cannot give it back.
    ignored(&mut kv, requeue("", 7));
    ignored(&mut kv, requeue("primary#3", 1));
    applied(&mut kv, requeue("", 1));
    assert_eq!(state(&kv, 1), MessageState::Accepted);
    assert!(route_queue_holds(&kv, 1));
    // The backup takes it with the next attempt number, and a late carrier answer still counts.
    applied(&mut kv, assign("backup", 2, 1));
    applied(&mut kv, dispatch(1, "backup", "", 2, 2));
    applied(
        &mut kv,
        Kind::CarrierAccepted(CarrierAccepted {
            message_id: 1,
            link: "backup".into(),
            segment: 0,
            carrier_id: "x".into(),
            ..Default::default()
        }),
    );
    applied(
        &mut kv,
        Kind::DeliveryReported(DeliveryReported {
            link: "backup".into(),
            carrier_id: "x".into(),
            delivered: true,
            status: "DELIVRD".into(),
            ..Default::default()
        }),
    );
    assert_eq!(state(&kv, 1), MessageState::Delivered);
    assert_eq!(pending_of(&kv, "erp").unwrap(), 0);
}

#[test]
fn link_status_comes_only_from_the_current_holder_and_survives_reassignment() {
    let mut kv = MemKv::default();
    applied(&mut kv, assign("primary", 1, 1));
    let status = |epoch, up| {
        Kind::LinkStatus(LinkStatusChanged {
            link: "primary".into(),
            epoch,
            up,
            reason: "connection refused".into(),
            ..Default::default()
        })
    };
    assert!(load_links(&kv).unwrap().link_up("primary"));
    ignored(&mut kv, status(9, false));
    applied(&mut kv, status(1, false));
    assert!(!load_links(&kv).unwrap().link_up("primary"));
    applied(&mut kv, assign("primary", 2, 2));
    assert!(
        !load_links(&kv).unwrap().link_up("primary"),
        "until the new holder says otherwise"
    );
    ignored(&mut kv, status(1, true));
    applied(&mut kv, status(2, true));
    assert!(load_links(&kv).unwrap().link_up("primary"));
}

#[test]
fn a_link_with_several_slots_is_up_while_one_is_and_congested_only_when_all_are() {
    let mut kv = MemKv::default();
    applied(&mut kv, assign("sms#0", 1, 1));
    applied(&mut kv, assign("sms#1", 2, 1));
    let status = |slot: &str, up, congested| {
        Kind::LinkStatus(LinkStatusChanged {
            link: "sms".into(),
            slot: slot.into(),
            epoch: 1,
            up,
            congested,
            ..Default::default()
        })
    };
    applied(&mut kv, status("sms#0", false, false));
    let table = load_links(&kv).unwrap();
    assert!(table.link_up("sms"));
    applied(&mut kv, status("sms#1", true, true));
    assert!(load_links(&kv).unwrap().link_congested("sms"));
    applied(&mut kv, status("sms#0", true, false));
    assert!(!load_links(&kv).unwrap().link_congested("sms"));
}

#[test]
fn drained_nodes_are_recorded_and_undrained() {
    let mut kv = MemKv::default();
    let drain = |node, drained| Kind::NodeDrain(NodeDrainChanged { node, drained });
    applied(&mut kv, drain(3, true));
    applied(&mut kv, drain(3, true));
    assert_eq!(load_links(&kv).unwrap().drained, vec![3]);
    applied(&mut kv, drain(3, false));
    assert!(load_links(&kv).unwrap().drained.is_empty());
}

#[test]
fn policy_versions_must_follow_each_other() {
    let mut kv = MemKv::default();
    let change = |version, doc: &str| {
        Kind::PolicyChanged(PolicyChanged {
            version,
            document: doc.into(),
            changed_by: "ops".into(),
        })
    };
    let reason = ignored(&mut kv, change(2, "{}"));
    assert!(reason.contains("current version is 0"), "{reason}");
    applied(&mut kv, change(1, "{\"a\":1}"));
    // Two operators editing version 1: the second loses.
    ignored(&mut kv, change(1, "{\"b\":1}"));
    let p = load_policy(&kv).unwrap();
    assert_eq!(
        (p.version, p.document.as_str(), p.changed_at_ms),
        (1, "{\"a\":1}", NOW)
    );
}

#[test]
fn the_pending_count_follows_each_client_to_terminal_states() {
    let mut kv = MemKv::default();
    for _ in 0..3 {
        applied(&mut kv, routed("erp", 0));
    }
    applied(&mut kv, routed("crm", 0));
    assert_eq!(pending_of(&kv, "erp").unwrap(), 3);
    applied(&mut kv, Kind::Canceled(MessageCanceled { message_id: 2 }));
    // A second terminal event changes nothing.
    ignored(&mut kv, Kind::Canceled(MessageCanceled { message_id: 2 }));
    assert_eq!(pending_of(&kv, "erp").unwrap(), 2);
    assert_eq!(pending_of(&kv, "crm").unwrap(), 1);
}

#[test]
fn a_replayed_dispatch_stays_applied_and_changes_nothing() {
    let mut kv = MemKv::default();
    applied(&mut kv, routed("erp", 0));
    applied(&mut kv, assign("primary", 1, 1));
    applied(&mut kv, dispatch(1, "primary", "", 1, 1));
    let before = kv.clone();
    // The proposer re-proposes a batch whose answer was lost: its sender must still be told to send.
    assert_eq!(
        apply(&mut kv, NOW, dispatch(1, "primary", "", 1, 1)),
        EventOutcome::Applied
    );
    assert!(kv == before, "a replay changes nothing");
    // Another slot's dispatch of the same attempt is still refused.
    applied(&mut kv, assign("primary#1", 2, 1));
    ignored(&mut kv, dispatch(1, "primary", "primary#1", 2, 1));
}

#[test]
fn a_replayed_policy_change_stays_applied_but_a_different_one_of_that_version_is_refused() {
    let mut kv = MemKv::default();
    let change = |doc: &str| {
        Kind::PolicyChanged(PolicyChanged {
            version: 1,
            document: doc.into(),
            changed_by: "ops".into(),
        })
    };
    applied(&mut kv, change("{\"a\":1}"));
    assert_eq!(
        apply(&mut kv, NOW, change("{\"a\":1}")),
        EventOutcome::Applied
    );
    ignored(&mut kv, change("{\"b\":1}"));
    assert_eq!(
        herald_raft::projection::load_policy_version(&kv).unwrap(),
        1
    );
}

fn queue_len(kv: &MemKv, route: &str, link: &str) -> u64 {
    herald_raft::projection::queue_len(kv, &queue_name(route, link)).unwrap()
}

#[test]
fn queue_lengths_are_counted_as_messages_join_and_leave() {
    let mut kv = MemKv::default();
    for _ in 0..3 {
        applied(&mut kv, routed("erp", 0));
    }
    applied(&mut kv, routed("erp", NOW + 60_000));
    assert_eq!(
        queue_len(&kv, "mobile", ""),
        3,
        "the scheduled one waits elsewhere"
    );
    applied(&mut kv, assign("primary", 1, 1));
    applied(&mut kv, dispatch(1, "primary", "", 1, 1));
    assert_eq!(queue_len(&kv, "mobile", ""), 2);
    applied(&mut kv, Kind::Canceled(MessageCanceled { message_id: 2 }));
    assert_eq!(queue_len(&kv, "mobile", ""), 1);
    applied(&mut kv, Kind::Released(MessageReleased { message_id: 4 }));
    assert_eq!(queue_len(&kv, "mobile", ""), 2);
    // A retry comes back to the queue.
    applied(&mut kv, reject(NOW, 8));
    assert_eq!(queue_len(&kv, "mobile", ""), 3);
    // Only the two older messages that went back (the release and the retry) count as rewinds:
    // readers that skip a class's head by id look from its start again.
    let rewinds = herald_raft::projection::queue_rewinds(&kv, &queue_name("mobile", "")).unwrap();
    assert_eq!(rewinds, 2);
}

fn reject_to(retry_link: &str) -> Kind {
    Kind::CarrierRejected(CarrierRejected {
        message_id: 1,
        link: "primary".into(),
        code: 13,
        retryable: true,
        retry_at_ms: NOW,
        policy_decided: true,
        retry_link: retry_link.into(),
        ..Default::default()
    })
}

#[test]
fn a_retry_through_the_next_link_waits_in_that_links_queue_until_dispatched() {
    let mut kv = MemKv::default();
    applied(&mut kv, routed("erp", 0));
    applied(&mut kv, assign("primary", 1, 1));
    applied(&mut kv, assign("backup", 2, 1));
    applied(&mut kv, dispatch(1, "primary", "", 1, 1));
    applied(&mut kv, reject_to("backup"));
    assert_eq!(state(&kv, 1), MessageState::Accepted);
    assert!(!route_queue_holds(&kv, 1));
    assert_eq!(queue_len(&kv, "", "backup"), 1);
    applied(&mut kv, dispatch(1, "backup", "", 2, 2));
    let m = load_message(&kv, 1).unwrap().unwrap();
    assert_eq!((m.link.as_str(), m.retry_link.as_str()), ("backup", ""));
    assert_eq!(queue_len(&kv, "", "backup"), 0);
    // Given back by the backup (it went down): the route's queue again, for any of its links.
    applied(
        &mut kv,
        Kind::Requeued(MessageRequeued {
            message_id: 1,
            link: "backup".into(),
            epoch: 1,
            ..Default::default()
        }),
    );
    assert!(route_queue_holds(&kv, 1));
}

fn urgent(links: &[&str]) -> Kind {
    Kind::Submitted(MessageSubmitted {
        client_id: "scada".into(),
        idempotency_key: "alarm-1".into(),
        recipients: vec!["13800138000".into()],
        text: "breaker tripped".into(),
        priority: 0,
        link: links[0].into(),
        route: "mobile".into(),
        expires_at_ms: NOW + 60_000,
        fan_out_links: links.iter().map(|l| l.to_string()).collect(),
        ..Default::default()
    })
}

fn carrier_accepts(id: u64, link: &str, carrier_id: &str) -> Kind {
    Kind::CarrierAccepted(CarrierAccepted {
        message_id: id,
        link: link.into(),
        segment: 0,
        carrier_id: carrier_id.into(),
        ..Default::default()
    })
}

fn reported(link: &str, carrier_id: &str, delivered: bool) -> Kind {
    Kind::DeliveryReported(DeliveryReported {
        link: link.into(),
        carrier_id: carrier_id.into(),
        status: if delivered { "DELIVRD" } else { "UNDELIV" }.into(),
        delivered,
        ..Default::default()
    })
}

/// Message 1 is the group; 2 waits in the route's queue, 3 in link `backup`'s.
fn fanned_out() -> MemKv {
    let mut kv = MemKv::default();
    assert_eq!(
        apply(&mut kv, NOW, urgent(&["primary", "backup"])),
        EventOutcome::Submitted {
            message_id: 1,
            created: true
        }
    );
    applied(&mut kv, assign("primary", 1, 1));
    applied(&mut kv, assign("backup", 2, 1));
    let group = load_message(&kv, 1).unwrap().unwrap();
    assert_eq!(group.copies, vec![2, 3]);
    assert_eq!(group.state(), MessageState::Accepted);
    assert!(route_queue_holds(&kv, 2));
    assert_eq!(queue_len(&kv, "", "backup"), 1);
    assert!(!in_cf(&kv, CF_QUEUE, 1), "the group itself is never queued");
    assert_eq!(
        pending_of(&kv, "scada").unwrap(),
        1,
        "copies are not the client's"
    );
    kv
}

#[test]
fn the_first_copy_delivered_wins_and_a_later_one_is_recorded_as_a_duplicate() {
    let mut kv = fanned_out();
    ignored(&mut kv, dispatch(1, "primary", "", 1, 1));
    applied(&mut kv, dispatch(2, "primary", "", 1, 1));
    applied(&mut kv, dispatch(3, "backup", "", 2, 1));
    assert_eq!(state(&kv, 1), MessageState::Sending);
    applied(&mut kv, carrier_accepts(3, "backup", "b-1"));
    applied(&mut kv, carrier_accepts(2, "primary", "p-1"));
    assert_eq!(state(&kv, 1), MessageState::Sent);
    applied(&mut kv, reported("backup", "b-1", true));
    let group = load_message(&kv, 1).unwrap().unwrap();
    assert_eq!(group.state(), MessageState::Delivered);
    assert_eq!((group.won_by, group.link.as_str()), (3, "backup"));
    assert_eq!(pending_of(&kv, "scada").unwrap(), 0);
    applied(&mut kv, reported("primary", "p-1", true));
    let group = load_message(&kv, 1).unwrap().unwrap();
    assert_eq!(
        (group.state(), group.duplicates),
        (MessageState::Delivered, 1)
    );
    assert!(load_message(&kv, 2).unwrap().unwrap().duplicate);
    assert_eq!(pending_of(&kv, "scada").unwrap(), 0);
}

#[test]
fn copies_not_sent_when_another_is_delivered_are_withdrawn() {
    let mut kv = fanned_out();
    applied(&mut kv, dispatch(2, "primary", "", 1, 1));
    applied(&mut kv, carrier_accepts(2, "primary", "p-1"));
    applied(&mut kv, reported("primary", "p-1", true));
    assert_eq!(state(&kv, 1), MessageState::Delivered);
    let withdrawn = load_message(&kv, 3).unwrap().unwrap();
    assert_eq!(withdrawn.state(), MessageState::Canceled);
    assert!(withdrawn.last_error.contains("withdrawn"));
    assert_eq!(queue_len(&kv, "", "backup"), 0);
    assert!(!in_cf(&kv, CF_QUEUE, 3));
}

#[test]
fn a_group_fails_only_when_every_copy_has_failed() {
    let mut kv = fanned_out();
    applied(&mut kv, dispatch(2, "primary", "", 1, 1));
    let Kind::CarrierRejected(mut refusal) = reject(0, 11) else {
        unreachable!()
    };
    refusal.message_id = 2;
    applied(&mut kv, Kind::CarrierRejected(refusal));
    // Message 2's rejection: the first copy failed, the second still waits.
    assert_eq!(state(&kv, 2), MessageState::Failed);
    assert_eq!(state(&kv, 1), MessageState::Accepted);
    applied(&mut kv, dispatch(3, "backup", "", 2, 1));
    applied(&mut kv, carrier_accepts(3, "backup", "b-1"));
    applied(&mut kv, reported("backup", "b-1", false));
    let group = load_message(&kv, 1).unwrap().unwrap();
    assert_eq!(group.state(), MessageState::Undelivered);
    assert_eq!(pending_of(&kv, "scada").unwrap(), 0);
}

#[test]
fn canceling_a_group_cancels_every_copy_and_an_idempotent_resubmission_finds_the_group() {
    let mut kv = fanned_out();
    assert_eq!(
        apply(&mut kv, NOW, urgent(&["primary", "backup"])),
        EventOutcome::Submitted {
            message_id: 1,
            created: false
        }
    );
    applied(&mut kv, Kind::Canceled(MessageCanceled { message_id: 1 }));
    for id in 1..=3 {
        assert_eq!(state(&kv, id), MessageState::Canceled, "message {id}");
    }
    assert_eq!(queue_len(&kv, "mobile", ""), 0);
    assert_eq!(queue_len(&kv, "", "backup"), 0);
    assert_eq!(pending_of(&kv, "scada").unwrap(), 0);
}

/// Message 1 is split: copy 2 carries a China Mobile number on route `mobile`, copy 3 a China
/// Unicom number on route `unicom`.
fn split_over_two_routes() -> MemKv {
    let mut kv = MemKv::default();
    let part = |route: &str, link: &str, number: &str| herald_raft::events::RecipientsRoute {
        route: route.into(),
        link: link.into(),
        recipients: vec![number.into()],
    };
    applied(
        &mut kv,
        Kind::Submitted(MessageSubmitted {
            client_id: "crm".into(),
            recipients: vec!["13800138000".into(), "13012345678".into()],
            text: "planned outage".into(),
            priority: 1,
            route: "mobile".into(),
            link: "primary".into(),
            split: vec![
                part("mobile", "primary", "13800138000"),
                part("unicom", "backup", "13012345678"),
            ],
            ..Default::default()
        }),
    );
    applied(&mut kv, assign("primary", 1, 1));
    applied(&mut kv, assign("backup", 2, 1));
    let group = load_message(&kv, 1).unwrap().unwrap();
    assert!(group.split);
    assert_eq!(group.copies, vec![2, 3]);
    assert_eq!(
        load_message(&kv, 3).unwrap().unwrap().recipients,
        ["13012345678"]
    );
    assert_eq!(queue_len(&kv, "mobile", ""), 1);
    assert_eq!(queue_len(&kv, "unicom", ""), 1);
    kv
}

#[test]
fn a_split_message_is_delivered_only_when_every_route_has_delivered_it() {
    let mut kv = split_over_two_routes();
    applied(&mut kv, dispatch(2, "primary", "", 1, 1));
    applied(&mut kv, carrier_accepts(2, "primary", "p-1"));
    applied(&mut kv, reported("primary", "p-1", true));
    assert_eq!(state(&kv, 2), MessageState::Delivered);
    assert_eq!(
        state(&kv, 1),
        MessageState::Accepted,
        "the unicom part waits"
    );
    assert_eq!(
        state(&kv, 3),
        MessageState::Accepted,
        "nothing is withdrawn"
    );
    // Part of it is on its way: the message can no longer be canceled as a whole.
    applied(&mut kv, dispatch(3, "backup", "", 2, 1));
    assert_eq!(state(&kv, 1), MessageState::Sending);
    applied(&mut kv, carrier_accepts(3, "backup", "b-1"));
    applied(&mut kv, reported("backup", "b-1", true));
    assert_eq!(state(&kv, 1), MessageState::Delivered);
    assert_eq!(pending_of(&kv, "crm").unwrap(), 0);
}

#[test]
fn a_split_message_fails_when_one_route_fails_and_is_not_canceled_half_sent() {
    let mut kv = split_over_two_routes();
    applied(&mut kv, dispatch(3, "backup", "", 2, 1));
    let reason = ignored(&mut kv, Kind::Canceled(MessageCanceled { message_id: 1 }));
    assert!(reason.contains("already being sent"), "{reason}");
    assert_eq!(state(&kv, 2), MessageState::Accepted);
    applied(&mut kv, carrier_accepts(3, "backup", "b-1"));
    applied(&mut kv, reported("backup", "b-1", false));
    assert_eq!(
        state(&kv, 1),
        MessageState::Accepted,
        "the mobile part is alive"
    );
    applied(&mut kv, dispatch(2, "primary", "", 1, 1));
    applied(&mut kv, carrier_accepts(2, "primary", "p-1"));
    applied(&mut kv, reported("primary", "p-1", true));
    assert_eq!(state(&kv, 1), MessageState::Undelivered);
    assert_eq!(pending_of(&kv, "crm").unwrap(), 0);
}

#[test]
fn a_retry_waiting_for_a_link_that_went_down_goes_back_to_its_route() {
    let mut kv = MemKv::default();
    applied(&mut kv, routed("erp", 0));
    applied(&mut kv, assign("primary", 1, 1));
    applied(&mut kv, assign("backup", 2, 1));
    applied(&mut kv, dispatch(1, "primary", "", 1, 1));
    applied(&mut kv, reject_to("backup"));
    assert_eq!(queue_len(&kv, "", "backup"), 1);
    let give_back = |link: &str| {
        Kind::Requeued(MessageRequeued {
            message_id: 1,
            link: link.into(),
            epoch: 1,
            ..Default::default()
        })
    };
    // Only the link it waits for may give it back.
    ignored(&mut kv, give_back("primary"));
    applied(&mut kv, give_back("backup"));
    let m = load_message(&kv, 1).unwrap().unwrap();
    assert_eq!(
        (m.state(), m.retry_link.as_str()),
        (MessageState::Accepted, "")
    );
    assert!(route_queue_holds(&kv, 1));
    assert_eq!(queue_len(&kv, "", "backup"), 0);
    // Given back once: a replay changes nothing.
    ignored(&mut kv, give_back("backup"));
}
