//! Replies over gRPC: `Messaging.ListReplies` and `Messaging.SubscribeReplies` for client
//! systems (each sees only the replies routed to it, by its `x-herald-client`), and
//! `Admin.ListReplies` for operators (any client's, or the unrouted ones). Any node answers from
//! its own projection; reply ids are sequential over the cluster, so a client resumes after the
//! last id it saw.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use herald_api::v1::{ListRepliesResponse, Reply, ReplyPart};
use herald_raft::records::ReplyRecord;
use tonic::Status;

use crate::context::Ctx;

/// Replies per answer when the caller gives no limit, and the most it may ask for.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;
/// How long a subscription waits for a newly applied entry before looking again anyway.
const IDLE_RECHECK: Duration = Duration::from_secs(1);

pub type ReplyStream = Pin<Box<dyn Stream<Item = Result<Reply, Status>> + Send>>;

fn limit(requested: u32) -> Result<usize, Status> {
    match requested {
        0 => Ok(DEFAULT_LIMIT as usize),
        n if n <= MAX_LIMIT => Ok(n as usize),
        n => Err(Status::invalid_argument(format!(
            "limit: at most {MAX_LIMIT} replies per call, got {n}"
        ))),
    }
}

fn read(ctx: &Ctx, client_id: &str, after_id: u64, limit: usize) -> Result<Vec<Reply>, Status> {
    let records = ctx
        .reader
        .replies_of(client_id, after_id, limit)
        .map_err(|e| Status::internal(format!("reading replies: {e}")))?;
    Ok(records.iter().map(reply).collect())
}

/// Up to `requested` (see [`limit`]) replies of `client_id` after `after_id`.
pub fn list(
    ctx: &Ctx,
    client_id: &str,
    after_id: u64,
    requested: u32,
) -> Result<ListRepliesResponse, Status> {
    let replies = read(ctx, client_id, after_id, limit(requested)?)?;
    Ok(ListRepliesResponse {
        replies,
        answered_by: ctx.id(),
        applied_index: *ctx.applied.borrow(),
    })
}

struct Subscription {
    ctx: Ctx,
    client_id: String,
    last_id: u64,
    waiting: VecDeque<Reply>,
}

/// The client's stored replies after `after_id`, then each new one as this node applies it.
/// The stream ends when the client goes away (tonic drops it).
pub fn subscribe(ctx: Ctx, client_id: String, after_id: u64) -> ReplyStream {
    let start = Subscription {
        ctx,
        client_id,
        last_id: after_id,
        waiting: VecDeque::new(),
    };
    Box::pin(futures::stream::unfold(start, |mut sub| async move {
        loop {
            if let Some(next) = sub.waiting.pop_front() {
                return Some((Ok(next), sub));
            }
            // Subscribed before reading: an entry applied in between still wakes the wait.
            let mut applied = sub.ctx.applied.clone();
            applied.mark_unchanged();
            match read(
                &sub.ctx,
                &sub.client_id,
                sub.last_id,
                DEFAULT_LIMIT as usize,
            ) {
                Ok(replies) if !replies.is_empty() => {
                    sub.last_id = replies.last().map_or(sub.last_id, |r| r.reply_id);
                    sub.waiting.extend(replies);
                    continue;
                }
                Ok(_) => {}
                Err(status) => return Some((Err(status), sub)),
            }
            let _ = tokio::time::timeout(IDLE_RECHECK, applied.changed()).await;
        }
    }))
}

fn reply(r: &ReplyRecord) -> Reply {
    Reply {
        reply_id: r.id,
        from: r.src.clone(),
        to: r.dest.clone(),
        text: r.text.clone(),
        complete: r.complete,
        total_parts: r.total,
        received_parts: r.parts.len() as u32,
        received_at_ms: r.received_at_ms,
        completed_at_ms: r.completed_at_ms,
        client_id: r.client_id.clone(),
        routed_by: r.routed_by.clone(),
        parts: r
            .parts
            .iter()
            .map(|p| ReplyPart {
                number: p.number,
                link: p.link.clone(),
                slot: p.slot.clone(),
                node: p.node,
                encoding: p.encoding.clone(),
                carrier_id: p.carrier_id.clone(),
                at_ms: p.at_ms,
                carrier_time: p.carrier_time.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::limit;

    #[test]
    fn the_limit_defaults_and_is_bounded_naming_the_field() {
        assert_eq!(limit(0).unwrap(), 100);
        assert_eq!(limit(1000).unwrap(), 1000);
        let e = limit(1001).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().starts_with("limit:"), "{}", e.message());
    }
}
