//! The ceilings a node puts on what its two gRPC ports accept, so that no single client or peer
//! can make it allocate without bound or hold all its connections. Each constant says why it is
//! what it is. The listener that enforces the connection ceilings and the handshake timeout is
//! [`crate::tls::acceptor`]; the message sizes and stream counts are set on the tonic servers in
//! `node.rs`.

use std::time::Duration;

use crate::config::MessageLimits;
use crate::service::submit::MAX_BATCH;

/// The floor of the public port's request size: what the issue asks for unless a valid call needs
/// more (see [`public_max_request`]).
pub const PUBLIC_MIN_REQUEST: usize = 1 << 20;

/// Bytes one `SubmitRequest` inside a batch can take at most when valid, beyond its text and
/// recipients: idempotency key and client ref (128 bytes each, validate.rs), a link name, the
/// scalar fields and protobuf's tags and length prefixes.
const SUBMIT_FIXED_BYTES: usize = 128 + 128 + 256 + 64;

/// Bytes one recipient takes at most when valid: `+` and 15 digits, with room for the
/// whitespace `trim` forgives, plus its tag and length.
const RECIPIENT_BYTES: usize = 16 + 16 + 2;

/// The public port's largest request: the largest valid call is a `SubmitBatch` of
/// [`MAX_BATCH`] messages, each with `max-text-chars` characters of 4 UTF-8 bytes and
/// `max-recipients` recipients. With the default limits (1,000 characters, 100 recipients) that
/// is 1,000 × (4,000 + 3,400 + 576 + 8) ≈ 7.98 MB, so 1 MiB would refuse valid batches: the
/// limit is computed from the node's own `[messages]` limits, rounded up to a whole MiB and
/// never below [`PUBLIC_MIN_REQUEST`].
pub fn public_max_request(limits: &MessageLimits) -> usize {
    let per_message = limits.max_text_chars.saturating_mul(4)
        + limits.max_recipients.saturating_mul(RECIPIENT_BYTES)
        + SUBMIT_FIXED_BYTES
        + 8;
    let batch = MAX_BATCH.saturating_mul(per_message);
    let mib = 1 << 20;
    batch
        .div_ceil(mib)
        .saturating_mul(mib)
        .max(PUBLIC_MIN_REQUEST)
}

/// The public port's largest answer: a `GetMessages`/`ListMessages` page is bounded by the
/// service's page sizes, far below this; it only stops a runaway answer from being encoded.
pub const PUBLIC_MAX_RESPONSE: usize = 64 << 20;

/// The internal port's largest message, both ways. Snapshots travel in chunks of 1 MiB
/// (`raft/src/snapshot/transfer.rs`), so they no longer need a large bound; what does is
/// AppendEntries: openraft sends up to 300 log entries in one call, and one entry is a proposer
/// batch of up to 4,096 events, so a lagging follower's catch-up call can legitimately be hundreds
/// of MiB. A lower bound could leave a follower that can never catch up, which is worse than the
/// memory a peer can make the node allocate — and only a peer holding a member's certificate
/// from the cluster CA reaches this port (mTLS, checked before any call). So the bound stays the
/// Raft crate's `MAX_INTERNAL_MESSAGE` (1 GiB), which also covers a snapshot sent whole.
pub const INTERNAL_MAX_MESSAGE: usize = herald_raft::network::MAX_INTERNAL_MESSAGE;

/// HTTP/2 streams one connection may have open at once. A client that opens more waits for one
/// to finish (its own connection is throttled) instead of taking the node's memory and tasks.
/// The load generator's default concurrency (64) and a node's peer traffic fit well below it.
pub const MAX_CONCURRENT_STREAMS: u32 = 256;

/// How often an idle HTTP/2 connection is pinged, and how long the answer may take before the
/// connection is closed: a client that vanished (power off, partition) stops holding a
/// connection slot within a minute.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a TLS handshake may take. A connection that has not finished it by then is closed,
/// so connections that never speak hold a slot for at most this long.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections the public port holds at once (handshaking or open). Sized for hundreds of
/// client systems with a few connections each, below the process's file limit; excess
/// connections are closed at accept.
pub const PUBLIC_MAX_CONNECTIONS: usize = 4096;

/// Connections the internal port holds at once: a few per peer (Raft, forwarded writes,
/// snapshots). Nine nodes need a few dozen; the ceiling stops a flood from taking the public
/// port's file descriptors.
pub const INTERNAL_MAX_CONNECTIONS: usize = 512;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_limit_holds_the_largest_valid_batch_of_the_default_limits() {
        let limit = public_max_request(&MessageLimits::default());
        assert_eq!(limit, 8 << 20);
        let small = MessageLimits {
            max_text_chars: 70,
            max_recipients: 1,
            ..MessageLimits::default()
        };
        assert_eq!(public_max_request(&small), PUBLIC_MIN_REQUEST);
    }
}
