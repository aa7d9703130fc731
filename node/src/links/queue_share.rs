//! Which queued messages a connection slot of a link takes first.
//!
//! Every slot of a link reads the same queues. Without shares, the slots — often on different
//! nodes — picked the same messages at the head of a queue and each proposed their dispatch: only
//! the first applies (the dispatch is a compare-and-set on the attempt), so the others were
//! wasted Raft events and held window slots until their refusal came back. A link with three
//! connections moved fewer messages than one with a single connection.
//!
//! So each slot takes its own share first (message id modulo the link's connections). A message
//! of another slot's share that has waited [`SHARE_GRACE_MS`] is anyone's: a slot that is down,
//! throttled by its gateway or on a node that died holds nothing up for longer than that. Alarms
//! are not shared out: they are few, and any slot should send one at once.

/// How long a queued message is left to the slot whose share it is.
pub const SHARE_GRACE_MS: u64 = 1_000;

/// One slot's share of a link's queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueShare {
    index: u64,
    count: u64,
}

impl QueueShare {
    /// The share of `slot` (`name#k`) on a link of `connections` slots; `None` for a link with
    /// one connection, whose only slot takes everything.
    pub fn of(slot: &str, connections: u32) -> Option<QueueShare> {
        if connections <= 1 {
            return None;
        }
        let (_, index) = slot.rsplit_once('#')?;
        let index: u64 = index.parse().ok()?;
        let count = u64::from(connections);
        (index < count).then_some(QueueShare { index, count })
    }

    /// Whether message `id` is in this slot's share.
    pub fn owns(&self, id: u64) -> bool {
        id % self.count == self.index
    }

    /// How many queued ids to read to find about `wanted` of this slot's own.
    pub fn ids_to_read(&self, wanted: usize) -> usize {
        wanted.saturating_mul(self.count as usize)
    }
}

/// Whether a message of another slot's share, queued since `queued_since_ms`, may be taken now.
pub fn left_waiting(queued_since_ms: u64, now_ms: u64) -> bool {
    now_ms.saturating_sub(queued_since_ms) >= SHARE_GRACE_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_of_one_connection_has_no_shares() {
        assert_eq!(QueueShare::of("cmpp", 1), None);
        assert_eq!(QueueShare::of("cmpp", 0), None);
    }

    #[test]
    fn the_slots_of_a_link_share_every_id_exactly_once() {
        let shares: Vec<QueueShare> = (0..3)
            .map(|k| QueueShare::of(&format!("smpp#{k}"), 3).unwrap())
            .collect();
        for id in 0..300u64 {
            assert_eq!(shares.iter().filter(|s| s.owns(id)).count(), 1, "id {id}");
        }
        assert_eq!(shares[1].ids_to_read(64), 192);
    }

    #[test]
    fn a_slot_name_that_does_not_fit_the_link_takes_no_share() {
        assert_eq!(QueueShare::of("smpp", 3), None);
        assert_eq!(QueueShare::of("smpp#x", 3), None);
        assert_eq!(QueueShare::of("smpp#3", 3), None);
    }

    #[test]
    fn another_slots_message_is_anyones_after_the_grace() {
        assert!(!left_waiting(10_000, 10_000 + SHARE_GRACE_MS - 1));
        assert!(left_waiting(10_000, 10_000 + SHARE_GRACE_MS));
        // A clock that went back never makes a message look old.
        assert!(!left_waiting(10_000, 9_000));
    }
}
