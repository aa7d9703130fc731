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
