//! Key layouts of the projection's column families. Big-endian integers keep RocksDB's byte order
//! equal to numeric order, which is what makes the queue a priority queue.

pub fn message(id: u64) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

pub fn idempotency(client_id: &str, key: &str) -> Vec<u8> {
    join(&[client_id.as_bytes(), key.as_bytes()])
}

/// An idempotency entry's value: the request's digest (empty for entries written before digests
/// existed), then the message id. The id stays in the last 8 bytes, where older nodes read it.
pub fn idempotency_value(id: u64, request_digest: &[u8]) -> Vec<u8> {
    let mut value = request_digest.to_vec();
    value.extend_from_slice(&id.to_be_bytes());
    value
}

/// The message id and the request digest (possibly empty) of an idempotency entry.
pub fn idempotency_entry(value: &[u8]) -> Option<(u64, &[u8])> {
    let digest_len = value.len().checked_sub(8)?;
    Some((id_suffix(value)?, &value[..digest_len]))
}

pub fn carrier_id(link: &str, carrier_id: &str) -> Vec<u8> {
    join(&[link.as_bytes(), carrier_id.as_bytes()])
}

/// Prefix of every queue key of `link`.
pub fn queue_prefix(link: &str) -> Vec<u8> {
    let mut key = link.as_bytes().to_vec();
    key.push(0);
    key
}

pub fn queue(link: &str, priority: u32, id: u64) -> Vec<u8> {
    let mut key = queue_prefix(link);
    key.push(priority.min(255) as u8);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// The message id at the end of a queue or in-flight key.
pub fn id_suffix(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

pub fn inflight_prefix(link: &str) -> Vec<u8> {
    queue_prefix(link)
}

/// The in-flight value: the dispatch's epoch, then its slot name.
pub fn inflight_value(epoch: u64, slot: &str) -> Vec<u8> {
    let mut value = epoch.to_be_bytes().to_vec();
    value.extend_from_slice(slot.as_bytes());
    value
}

pub fn inflight(link: &str, id: u64) -> Vec<u8> {
    let mut key = inflight_prefix(link);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// Orders messages by when they expire.
pub fn expiry(expires_at_ms: u64, id: u64) -> Vec<u8> {
    let mut key = expires_at_ms.to_be_bytes().to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// The expiry time at the head of an expiry key.
pub fn expiry_time(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(0..8)?.try_into().ok()?))
}

/// The first key after every key starting with `prefix` (None: no such key, the prefix is empty
/// or all 0xFF).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

pub const META_LAST_APPLIED: &[u8] = b"last_applied";
pub const META_MEMBERSHIP: &[u8] = b"membership";
pub const META_NEXT_ID: &[u8] = b"next_message_id";
pub const META_LINKS: &[u8] = b"links";
pub const META_POLICY: &[u8] = b"policy";
/// The policy's version alone (8 bytes), so the per-submission check for a new policy reads 8
/// bytes instead of the whole document.
pub const META_POLICY_VERSION: &[u8] = b"policy_version";

/// Counter of a client's messages not yet terminal (for its queued-messages quota).
pub fn pending_of(client_id: &str) -> Vec<u8> {
    join(&[b"pending", client_id.as_bytes()])
}

/// Counter of the messages waiting in a queue (a route's or a link's; see `records::queue_name`).
pub fn queue_len(queue: &str) -> Vec<u8> {
    join(&[b"queue_len", queue.as_bytes()])
}

/// Counter of the times a message older than the newest went back into a queue (a retry, a
/// requeue, a scheduled message released): readers that skip the head of a queue by id must look
/// from its start again when it changes.
pub fn queue_rewinds(queue: &str) -> Vec<u8> {
    join(&[b"queue_rewinds", queue.as_bytes()])
}

/// Orders scheduled messages by when they are due (same layout as [`expiry`]).
pub fn scheduled(due_ms: u64, id: u64) -> Vec<u8> {
    expiry(due_ms, id)
}

/// Prefix of one priority class within a queue.
pub fn queue_class_prefix(queue: &str, priority: u32) -> Vec<u8> {
    let mut key = queue_prefix(queue);
    key.push(priority.min(255) as u8);
    key
}

/// Where a long MO message's parts meet: the same message received over any link, connection or
/// node has the same key.
pub fn mo_concat(src: &str, dest: &str, reference: u32, total: u32) -> Vec<u8> {
    let mut key = join(&[src.as_bytes(), dest.as_bytes(), b"c"]);
    key.extend_from_slice(&reference.to_be_bytes());
    key.extend_from_slice(&total.to_be_bytes());
    key
}

/// The duplicate guard of a single MO message the carrier gave an id.
pub fn mo_single(src: &str, dest: &str, carrier_id: &str) -> Vec<u8> {
    join(&[src.as_bytes(), dest.as_bytes(), b"i", carrier_id.as_bytes()])
}

/// An assembly in the age index: its stamp first, so the old ones sort first.
pub fn mo_age(since_ms: u64, assembly: &[u8]) -> Vec<u8> {
    let mut key = since_ms.to_be_bytes().to_vec();
    key.extend_from_slice(assembly);
    key
}

pub fn reply(id: u64) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

/// Prefix of one client's reply index (the empty client: unrouted replies).
pub fn client_replies_prefix(client_id: &str) -> Vec<u8> {
    let mut key = client_id.as_bytes().to_vec();
    key.push(0);
    key
}

pub fn client_reply(client_id: &str, id: u64) -> Vec<u8> {
    let mut key = client_replies_prefix(client_id);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

pub const META_NEXT_REPLY_ID: &[u8] = b"next_reply_id";

/// The last audit record's sequence number.
pub const META_AUDIT_SEQ: &[u8] = b"audit_seq";
/// The cluster's format level (u32, big-endian); absent: level 1.
pub const META_CLUSTER_LEVEL: &[u8] = b"cluster_level";

pub fn client(name: &str) -> Vec<u8> {
    name.as_bytes().to_vec()
}

pub fn client_key(key_id: &str) -> Vec<u8> {
    key_id.as_bytes().to_vec()
}

/// Audit records in log order.
pub fn audit(seq: u64) -> Vec<u8> {
    seq.to_be_bytes().to_vec()
}

/// A subscriber's number as both directions write it: without `+` and without China's country
/// code before an 11-digit mobile number, so an MO from `8613800138000` finds the client that
/// sent to `+8613800138000` or `13800138000`.
pub fn subscriber(number: &str) -> Vec<u8> {
    let n = number.trim().trim_start_matches('+');
    let n = n.strip_prefix("00").unwrap_or(n);
    let national = n
        .strip_prefix("86")
        .filter(|rest| rest.len() == 11 && rest.starts_with('1'));
    national.unwrap_or(n).as_bytes().to_vec()
}

fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push(0);
        }
        key.extend_from_slice(part);
    }
    key
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn a_subscriber_number_has_one_form() {
        use super::subscriber;
        for n in [
            "13800138000",
            "+8613800138000",
            "8613800138000",
            "008613800138000",
        ] {
            assert_eq!(subscriber(n), b"13800138000", "{n}");
        }
        assert_eq!(subscriber("+4915112345678"), b"4915112345678");
        assert_eq!(subscriber("8612345"), b"8612345");
    }

    #[test]
    fn an_idempotency_entry_holds_the_digest_then_the_id() {
        use super::{idempotency_entry, idempotency_value};
        let value = idempotency_value(7, &[1, 2, 3]);
        assert_eq!(idempotency_entry(&value), Some((7, &[1u8, 2, 3][..])));
        // An entry written before digests existed: the id alone.
        let old = 7u64.to_be_bytes();
        assert_eq!(idempotency_entry(&old), Some((7, &[][..])));
        assert_eq!(idempotency_entry(&[1, 2]), None);
    }

    #[test]
    fn the_end_of_a_prefix_is_the_first_key_after_it() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_end(&[]), None);
    }
}
