//! Subscribers' replies: a client system reads (or follows) the replies routed to it, operators
//! read any client's or the unrouted ones. Any node answers from its own projection; reply ids
//! are sequential over the cluster, so a client resumes after the last id it saw.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use herald_raft::records::ReplyRecord;

use super::auth::still_authenticated;
use super::caller::Caller;
use super::error::ServiceError;
use super::permissions::Permission;
use crate::context::Ctx;

/// Replies per answer when the caller gives no limit, and the most it may ask for.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;
/// How long a subscription waits for a newly applied entry before looking again anyway.
const IDLE_RECHECK: Duration = Duration::from_secs(1);

/// Replies, oldest first, as one node had applied them.
pub struct ReplyPage {
    pub replies: Vec<ReplyRecord>,
    pub answered_by: u64,
    pub applied_index: u64,
}

pub type ReplyStream = Pin<Box<dyn Stream<Item = Result<ReplyRecord, ServiceError>> + Send>>;

fn limit(requested: u32) -> Result<usize, ServiceError> {
    match requested {
        0 => Ok(DEFAULT_LIMIT as usize),
        n if n <= MAX_LIMIT => Ok(n as usize),
        n => Err(ServiceError::invalid(
            "limit",
            format!("at most {MAX_LIMIT} replies per call, got {n}"),
        )),
    }
}

fn read(
    ctx: &Ctx,
    client_id: &str,
    after_id: u64,
    limit: usize,
) -> Result<Vec<ReplyRecord>, ServiceError> {
    ctx.reader
        .replies_of(client_id, after_id, limit)
        .map_err(|e| ServiceError::Internal(format!("reading replies: {e}")))
}

/// Up to `requested` (0: 100, at most 1000) replies of `client_id` ("": the unrouted ones)
/// after `after_id`.
fn list(
    ctx: &Ctx,
    client_id: &str,
    after_id: u64,
    requested: u32,
) -> Result<ReplyPage, ServiceError> {
    let replies = read(ctx, client_id, after_id, limit(requested)?)?;
    Ok(ReplyPage {
        replies,
        answered_by: ctx.id(),
        applied_index: *ctx.applied.borrow(),
    })
}

/// The caller's own replies after `after_id`: a client sees only the replies routed to it.
pub fn list_own(
    ctx: &Ctx,
    caller: &Caller,
    after_id: u64,
    requested: u32,
) -> Result<ReplyPage, ServiceError> {
    caller.require(Permission::ReadOwnReplies)?;
    list(ctx, caller.name(), after_id, requested)
}

/// Whose replies an operator asks for.
pub enum Addressee<'a> {
    Client(&'a str),
    /// The replies no rule routed and nobody had written to the subscriber.
    Unrouted,
}

/// Any client's replies, or the unrouted ones (for operators).
pub fn list_for(
    ctx: &Ctx,
    caller: &Caller,
    whose: Addressee<'_>,
    after_id: u64,
    requested: u32,
) -> Result<ReplyPage, ServiceError> {
    match whose {
        Addressee::Client(c) => {
            caller.require_scope(c, Permission::ReadOwnReplies, Permission::ReadAllReplies)?
        }
        Addressee::Unrouted => caller.require(Permission::ReadAllReplies)?,
    }
    list(ctx, addressee(whose)?, after_id, requested)
}

/// The client id the replies are stored under ("": the unrouted ones).
fn addressee(whose: Addressee<'_>) -> Result<&str, ServiceError> {
    match whose {
        Addressee::Unrouted => Ok(""),
        Addressee::Client("") => Err(ServiceError::invalid(
            "client_id",
            "name a client, or ask for the unrouted replies",
        )),
        Addressee::Client(client) => Ok(client),
    }
}

struct Subscription {
    ctx: Ctx,
    caller: Caller,
    client_id: String,
    last_id: u64,
    waiting: VecDeque<ReplyRecord>,
    /// Set once the stream has reported its end (a revoked key): the next poll ends it.
    ended: bool,
}

/// The caller's stored replies after `after_id`, then each new one as this node applies it.
/// The stream ends when the transport drops it (the client went away).
pub fn subscribe(ctx: Ctx, caller: &Caller, after_id: u64) -> Result<ReplyStream, ServiceError> {
    caller.require(Permission::ReadOwnReplies)?;
    let start = Subscription {
        ctx,
        caller: caller.clone(),
        client_id: caller.name().to_string(),
        last_id: after_id,
        waiting: VecDeque::new(),
        ended: false,
    };
    Ok(Box::pin(futures::stream::unfold(
        start,
        |mut sub| async move {
            loop {
                // A key revoked while the stream is open ends it (checked at every wake-up, so
                // within an applied entry or IDLE_RECHECK of the revocation), instead of
                // serving its replies for as long as the connection lasts.
                if let Err(e) = still_authenticated(&sub.ctx.reader, &sub.caller) {
                    if sub.ended {
                        return None;
                    }
                    sub.ended = true;
                    return Some((Err(e), sub));
                }
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
                        sub.last_id = replies.last().map_or(sub.last_id, |r| r.id);
                        sub.waiting.extend(replies);
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => return Some((Err(e), sub)),
                }
                let _ = tokio::time::timeout(IDLE_RECHECK, applied.changed()).await;
            }
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_defaults_and_is_bounded_naming_the_field() {
        assert_eq!(limit(0).unwrap(), 100);
        assert_eq!(limit(1000).unwrap(), 1000);
        let e = limit(1001).unwrap_err();
        assert!(matches!(e, ServiceError::InvalidArgument { .. }));
        assert!(e.to_string().starts_with("limit:"), "{e}");
    }

    #[test]
    fn an_operator_names_a_client_or_asks_for_the_unrouted() {
        assert_eq!(addressee(Addressee::Client("crm")).unwrap(), "crm");
        assert_eq!(addressee(Addressee::Unrouted).unwrap(), "");
        let e = addressee(Addressee::Client("")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "client_id: name a client, or ask for the unrouted replies"
        );
    }
}
