//! The expiry index: a message waits in it from submission until it reaches a terminal state, so
//! the leader can expire exactly the messages whose validity ran out.

use herald_raft::db::CF_EXPIRY;
use herald_raft::events::{event::Kind, Event, MessageExpired, MessageSubmitted};
use herald_raft::keys;
use herald_raft::projection::{apply_event, load_message, Kv, MemKv};
use herald_raft::records::MessageState;

fn submit(expires_at_ms: u64) -> Event {
    Event::new(
        1,
        Kind::Submitted(MessageSubmitted {
            client_id: "c".into(),
            recipients: vec!["13800138000".into()],
            text: "t".into(),
            link: "l".into(),
            expires_at_ms,
            ..Default::default()
        }),
    )
}

#[test]
fn a_message_is_indexed_until_it_is_terminal() {
    let mut kv = MemKv::default();
    apply_event(&mut kv, &submit(5_000)).unwrap();
    apply_event(&mut kv, &submit(0)).unwrap();
    assert!(kv
        .get(CF_EXPIRY, &keys::expiry(5_000, 1))
        .unwrap()
        .is_some());
    // A message without validity never expires.
    assert_eq!(kv.data.keys().filter(|(cf, _)| *cf == CF_EXPIRY).count(), 1);

    let expired = Event::new(6_000, Kind::Expired(MessageExpired { message_id: 1 }));
    apply_event(&mut kv, &expired).unwrap();
    assert_eq!(
        load_message(&kv, 1).unwrap().unwrap().state(),
        MessageState::Expired
    );
    assert!(kv
        .get(CF_EXPIRY, &keys::expiry(5_000, 1))
        .unwrap()
        .is_none());
    // Expiring again changes nothing.
    let before = kv.clone();
    apply_event(&mut kv, &expired).unwrap();
    assert_eq!(before, kv);
}
