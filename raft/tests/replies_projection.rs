//! The projection's rules for replies (mobile-originated messages): parts joined wherever they
//! were received, in any order; resends recognised; incomplete messages closed by the leader;
//! routing by rule, by last sender, or unrouted; bounded storage.

use herald_raft::db::{CF_MO_AGE, CF_MO_ASSEMBLY};
use herald_raft::events::{
    event::Kind, Event, MessageSubmitted, MoAssemblyClosed, MoConcat, MoReceived,
};
use herald_raft::projection::{apply_event, MemKv};
use herald_raft::records::{MoAssemblyRecord, ReplyRecord};
use herald_raft::replies::{load_reply, MAX_PART_TEXT};
use herald_raft::types::EventOutcome;
use proptest::prelude::*;

const SUBSCRIBER: &str = "13800138000";
const SP: &str = "106900019";

fn apply(kv: &mut MemKv, at_ms: u64, kind: Kind) -> EventOutcome {
    apply_event(kv, &Event::new(at_ms, kind)).expect("a MemKv never fails")
}

/// Part `number` of `total` of the message with `reference`, as slot `slot` received it.
fn part(reference: u32, total: u32, number: u32, text: &str, slot: &str) -> MoReceived {
    MoReceived {
        link: "cmpp".into(),
        slot: slot.into(),
        node: 1,
        src: SUBSCRIBER.into(),
        dest: SP.into(),
        text: text.into(),
        encoding: "ucs2".into(),
        carrier_id: format!("{reference}-{number}"),
        concat: Some(MoConcat {
            reference,
            total,
            number,
            scheme: "udh8".into(),
        }),
        carrier_time: String::new(),
        rule_client: String::new(),
    }
}

fn whole(text: &str, carrier_id: &str) -> MoReceived {
    MoReceived {
        concat: None,
        carrier_id: carrier_id.into(),
        text: text.into(),
        ..part(0, 1, 1, "", "")
    }
}

fn received(kv: &mut MemKv, at_ms: u64, mo: &MoReceived) -> EventOutcome {
    apply(kv, at_ms, Kind::MoReceived(mo.clone()))
}

fn replies(kv: &MemKv) -> Vec<ReplyRecord> {
    (1..)
        .map_while(|id| load_reply(kv, id).expect("readable"))
        .collect()
}

fn assemblies(kv: &MemKv) -> Vec<MoAssemblyRecord> {
    use prost::Message as _;
    kv.data
        .iter()
        .filter(|((cf, _), _)| *cf == CF_MO_ASSEMBLY)
        .map(|(_, v)| MoAssemblyRecord::decode(v.as_slice()).expect("decodes"))
        .collect()
}

fn ages(kv: &MemKv) -> usize {
    kv.data.keys().filter(|(cf, _)| *cf == CF_MO_AGE).count()
}

/// What the leader's timer would propose for every assembly (the reader does this over RocksDB).
fn close_all(kv: &mut MemKv, at_ms: u64) -> Vec<EventOutcome> {
    assemblies(kv)
        .iter()
        .map(|a| apply(kv, at_ms, Kind::MoAssemblyClosed(a.closing_event())))
        .collect()
}

#[test]
fn parts_received_on_different_connections_make_one_reply_in_part_order() {
    let mut kv = MemKv::default();
    assert_eq!(
        received(&mut kv, 10, &part(7, 3, 3, "c", "cmpp#1")),
        EventOutcome::Applied
    );
    assert_eq!(
        received(&mut kv, 11, &part(7, 3, 1, "a", "cmpp#0")),
        EventOutcome::Applied
    );
    assert!(replies(&kv).is_empty(), "two of three parts make no reply");
    received(&mut kv, 12, &part(7, 3, 2, "b", "cmpp#1"));
    let all = replies(&kv);
    assert_eq!(all.len(), 1);
    let r = &all[0];
    assert_eq!(
        (r.id, r.text.as_str(), r.total, r.complete),
        (1, "abc", 3, true)
    );
    assert_eq!((r.received_at_ms, r.completed_at_ms), (10, 12));
    let slots: Vec<&str> = r.parts.iter().map(|p| p.slot.as_str()).collect();
    assert_eq!(slots, ["cmpp#0", "cmpp#1", "cmpp#1"]);
    assert_eq!(r.scheme, "udh8");
}

#[test]
fn a_resent_part_never_makes_a_second_reply() {
    let mut kv = MemKv::default();
    received(&mut kv, 10, &part(7, 2, 1, "a", ""));
    // Resent while the message waits for its other part.
    assert!(matches!(
        received(&mut kv, 11, &part(7, 2, 1, "a", "")),
        EventOutcome::Ignored { .. }
    ));
    received(&mut kv, 12, &part(7, 2, 2, "b", ""));
    // Resent after the reply was made (the carrier missed our acknowledgement).
    for n in [1, 2] {
        let outcome = received(&mut kv, 13, &part(7, 2, n, "x", ""));
        assert!(
            matches!(outcome, EventOutcome::Ignored { ref reason } if reason.contains("repeats reply 1")),
            "{outcome:?}"
        );
    }
    // A whole message resent with its carrier id.
    received(&mut kv, 14, &whole("TD", "w1"));
    assert!(matches!(
        received(&mut kv, 15, &whole("TD", "w1")),
        EventOutcome::Ignored { .. }
    ));
    let texts: Vec<String> = replies(&kv).into_iter().map(|r| r.text).collect();
    assert_eq!(texts, ["ab", "TD"]);
}

#[test]
fn a_reused_reference_with_new_carrier_ids_is_a_new_message() {
    let mut kv = MemKv::default();
    received(&mut kv, 10, &part(7, 2, 1, "a", ""));
    received(&mut kv, 11, &part(7, 2, 2, "b", ""));
    let mut again = part(7, 2, 1, "c", "");
    again.carrier_id = "new-1".into();
    assert_eq!(received(&mut kv, 20, &again), EventOutcome::Applied);
    let mut rest = part(7, 2, 2, "d", "");
    rest.carrier_id = "new-2".into();
    received(&mut kv, 21, &rest);
    let texts: Vec<String> = replies(&kv).into_iter().map(|r| r.text).collect();
    assert_eq!(texts, ["ab", "cd"]);
    assert_eq!(ages(&kv), 1, "one age entry per assembly");
}

#[test]
fn the_leader_closes_an_incomplete_message_with_the_parts_present() {
    let mut kv = MemKv::default();
    received(&mut kv, 10, &part(9, 4, 3, "c", ""));
    received(&mut kv, 11, &part(9, 4, 1, "a", ""));
    let closing = assemblies(&kv)[0].closing_event();
    assert_eq!(
        (closing.reference, closing.total, closing.since_ms),
        (9, 4, 10)
    );
    assert_eq!(
        apply(&mut kv, 500, Kind::MoAssemblyClosed(closing.clone())),
        EventOutcome::Applied
    );
    let all = replies(&kv);
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].text.as_str(), all[0].complete, all[0].parts.len()),
        ("ac", false, 2)
    );
    assert_eq!(all[0].completed_at_ms, 500);
    assert!(
        assemblies(&kv).is_empty() && ages(&kv) == 0,
        "nothing left behind"
    );
    // The same close proposed twice (a re-proposed batch) changes nothing.
    assert!(matches!(
        apply(&mut kv, 501, Kind::MoAssemblyClosed(closing)),
        EventOutcome::Ignored { .. }
    ));
    // A straggler after the close starts over rather than joining a message already replied.
    received(&mut kv, 600, &part(9, 4, 2, "b", ""));
    assert_eq!(replies(&kv).len(), 1);
}

#[test]
fn a_close_of_an_assembly_that_restarted_since_is_ignored() {
    let mut kv = MemKv::default();
    received(&mut kv, 10, &part(3, 2, 1, "a", ""));
    let stale = MoAssemblyClosed {
        since_ms: 9,
        ..assemblies(&kv)[0].closing_event()
    };
    assert!(matches!(
        apply(&mut kv, 20, Kind::MoAssemblyClosed(stale)),
        EventOutcome::Ignored { .. }
    ));
    assert_eq!(assemblies(&kv).len(), 1);
}

#[test]
fn closing_a_finished_message_forgets_its_guard() {
    let mut kv = MemKv::default();
    received(&mut kv, 10, &part(3, 2, 1, "a", ""));
    received(&mut kv, 11, &part(3, 2, 2, "b", ""));
    received(&mut kv, 12, &whole("hi", "w9"));
    assert_eq!(assemblies(&kv).len(), 2);
    assert_eq!(close_all(&mut kv, 400), vec![EventOutcome::Applied; 2]);
    assert!(assemblies(&kv).is_empty() && ages(&kv) == 0);
    assert_eq!(replies(&kv).len(), 2, "closing a guard makes no reply");
}

#[test]
fn unusable_headers_make_an_incomplete_reply_of_their_own() {
    let mut kv = MemKv::default();
    let mut bad = part(1, 2, 5, "lost", "");
    received(&mut kv, 10, &bad);
    bad.concat = Some(MoConcat {
        total: 0,
        number: 0,
        ..bad.concat.clone().unwrap()
    });
    bad.carrier_id = "other".into();
    received(&mut kv, 11, &bad);
    let one_of_one = part(4, 1, 1, "solo", "");
    received(&mut kv, 12, &one_of_one);
    let all: Vec<(String, bool)> = replies(&kv)
        .into_iter()
        .map(|r| (r.text, r.complete))
        .collect();
    assert_eq!(
        all,
        [
            ("lost".to_string(), false),
            ("lost".to_string(), false),
            ("solo".to_string(), true)
        ]
    );
}

#[test]
fn replies_go_to_the_rule_else_the_last_sender_else_nobody() {
    let mut kv = MemKv::default();
    received(&mut kv, 1, &whole("before anyone wrote", ""));
    for client in ["crm", "ops"] {
        apply(
            &mut kv,
            2,
            Kind::Submitted(MessageSubmitted {
                client_id: client.into(),
                recipients: vec!["+8613800138000".into()],
                text: "hello".into(),
                ..Default::default()
            }),
        );
    }
    received(&mut kv, 3, &whole("to the last sender", ""));
    let mut ruled = whole("by rule", "");
    ruled.rule_client = "billing".into();
    received(&mut kv, 4, &ruled);
    // A rule on any part of a long message routes the whole reply.
    let mut first = part(5, 2, 1, "x", "");
    first.rule_client = "billing".into();
    received(&mut kv, 5, &first);
    received(&mut kv, 6, &part(5, 2, 2, "y", ""));
    let routed: Vec<(String, String)> = replies(&kv)
        .into_iter()
        .map(|r| (r.client_id, r.routed_by))
        .collect();
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        routed,
        [
            s("", ""),
            s("ops", "last-sender"),
            s("billing", "rule"),
            s("billing", "rule")
        ]
    );
}

#[test]
fn storage_per_part_is_bounded() {
    let mut kv = MemKv::default();
    let huge = "汉".repeat(MAX_PART_TEXT);
    received(&mut kv, 1, &whole(&huge, ""));
    let r = &replies(&kv)[0];
    assert!(r.text.len() <= MAX_PART_TEXT && r.text.chars().all(|c| c == '汉'));
    // A part beyond 255 parts cannot be stored under a message's key.
    received(&mut kv, 2, &part(1, 300, 1, "x", ""));
    assert!(!replies(&kv)[1].complete);
    assert!(
        assemblies(&kv).iter().all(|a| a.total < 2),
        "only a single message's duplicate guard"
    );
}

/// A text cut into `n` parts of at most 3 characters.
fn cut(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(3).map(|c| c.iter().collect()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Parts in any order, each possibly delivered several times over any connection, make
    /// exactly one reply per message, with the whole text.
    #[test]
    fn any_order_and_any_resends_give_one_reply_per_message(
        texts in prop::collection::vec("[a-z你好]{4,30}", 1..4),
        order in prop::collection::vec(any::<u32>(), 0..200),
        copies in prop::collection::vec(1..=3usize, 0..200),
    ) {
        let mut deliveries = Vec::new();
        for (m, text) in texts.iter().enumerate() {
            let parts = cut(text);
            let total = parts.len() as u32;
            for (i, p) in parts.iter().enumerate() {
                let slot = if i % 2 == 0 { "cmpp#0" } else { "cmpp#1" };
                let mut mo = part(m as u32 + 1, total, i as u32 + 1, p, slot);
                if total == 1 {
                    mo.concat = None;
                }
                deliveries.push(mo);
            }
        }
        let mut all = Vec::new();
        for (i, d) in deliveries.into_iter().enumerate() {
            let n = copies.get(i).copied().unwrap_or(1);
            for c in 0..n {
                let key = order.get(all.len()).copied().unwrap_or(c as u32);
                all.push((key, d.clone()));
            }
        }
        all.sort_by_key(|(k, _)| *k);
        let mut kv = MemKv::default();
        for (t, (_, mo)) in all.iter().enumerate() {
            received(&mut kv, t as u64, mo);
        }
        let mut got: Vec<String> = replies(&kv).into_iter().map(|r| {
            assert!(r.complete);
            r.text
        }).collect();
        let mut want = texts.clone();
        got.sort();
        want.sort();
        prop_assert_eq!(got, want);
        let pending: Vec<_> = assemblies(&kv).into_iter().filter(|a| a.reply_id == 0).collect();
        prop_assert!(pending.is_empty());
    }

    /// Whatever arrived, closing every assembly leaves no assembly and no age entry behind, and
    /// every part received is in exactly one reply.
    #[test]
    fn closing_leaves_nothing_and_loses_no_part(
        picks in prop::collection::vec((1..=3u32, 1..=4u32), 0..30),
    ) {
        let mut kv = MemKv::default();
        let mut distinct = std::collections::BTreeSet::new();
        for (t, (reference, number)) in picks.iter().enumerate() {
            let text = format!("{reference}.{number} ");
            received(&mut kv, t as u64, &part(*reference, 4, *number, &text, ""));
            distinct.insert((*reference, *number));
        }
        let before: usize = replies(&kv).iter().map(|r| r.parts.len()).sum();
        close_all(&mut kv, 10_000);
        prop_assert!(assemblies(&kv).is_empty());
        prop_assert_eq!(ages(&kv), 0);
        let after: usize = replies(&kv).iter().map(|r| r.parts.len()).sum();
        prop_assert!(after >= before);
        prop_assert_eq!(after, distinct.len());
    }
}
