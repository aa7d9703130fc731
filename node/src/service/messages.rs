//! Reading and canceling messages: one with its copies, many at once, a protocol trace, a
//! cancellation. Any node answers from its own projection; a message committed but not yet
//! applied here is looked up again once the node has caught up with what it knows is committed.
//!
//! Many at once (`get_many`) serves a system following a batch it submitted: one call per batch
//! instead of one per message (each call costs the node a request, a response and a write on the
//! socket, which for small answers is most of the work). Unknown ids are answered too, as not
//! found, so the answer lines up with the question.

use std::time::Duration;

use herald_raft::events::{event::Kind, Event, MessageCanceled};
use herald_raft::records::{MessageRecord, MessageState};
use herald_raft::trace::Trace;
use herald_raft::types::EventOutcome;

use super::caller::Caller;
use super::error::ServiceError;
use super::permissions::Permission;
use super::view::{copy_view, message_view, MessageView};
use crate::context::Ctx;

/// Most ids in one `get_many` call (as many as one batch submission creates).
pub const MAX_IDS: usize = 1000;

/// How long a node waits to apply what it knows is committed before it calls an id unknown.
const CATCH_UP: Duration = Duration::from_secs(2);

/// A message id as a client writes it (digits, surrounding blanks ignored).
pub fn parse_message_id(raw: &str) -> Result<u64, ServiceError> {
    raw.trim().parse().map_err(|_| {
        ServiceError::invalid(
            "message_id",
            format!("{raw:?} is not a message id (digits)"),
        )
    })
}

fn read(ctx: &Ctx, id: u64) -> Result<Option<MessageRecord>, ServiceError> {
    ctx.reader
        .message(id)
        .map_err(|e| ServiceError::Internal(e.to_string()))
}

/// The message, or not found. It may be committed but not applied here yet: the node first
/// catches up with the leader's commit index, then looks again; a node that cannot catch up
/// says so rather than "not found".
async fn read_known(ctx: &Ctx, id: u64) -> Result<MessageRecord, ServiceError> {
    if let Some(record) = read(ctx, id)? {
        return Ok(record);
    }
    ctx.catch_up(CATCH_UP)
        .await
        .map_err(ServiceError::NotCaughtUp)?;
    read(ctx, id)?.ok_or_else(|| ServiceError::NotFound(format!("message_id: no message {id}")))
}

/// One message, with its copies when it was sent as several.
pub async fn get(ctx: &Ctx, caller: &Caller, raw_id: &str) -> Result<MessageView, ServiceError> {
    caller.require(Permission::ReadOwnMessages)?;
    let id = parse_message_id(raw_id)?;
    let record = read_known(ctx, id).await?;
    caller.require_scope(
        &record.client_id,
        Permission::ReadOwnMessages,
        Permission::ReadAllMessages,
    )?;
    let mut view = message_view(&record, ctx.id(), *ctx.applied.borrow());
    for copy_id in &record.copies {
        if let Some(copy) = read(ctx, *copy_id)? {
            view.copies.push(copy_view(&record, &copy));
        }
    }
    Ok(view)
}

/// A message's protocol trace, as `node` reads it.
pub struct TraceView {
    pub id: u64,
    pub state: MessageState,
    pub trace: Trace,
    pub attempts: u32,
    pub last_code: u32,
    pub expires_at_ms: u64,
    pub answered_by: u64,
}

/// The protocol trace of one message: every PDU exchanged for it and every decision taken.
pub async fn trace(ctx: &Ctx, caller: &Caller, raw_id: &str) -> Result<TraceView, ServiceError> {
    caller.require(Permission::ReadOwnMessages)?;
    let id = parse_message_id(raw_id)?;
    let m = read_known(ctx, id).await?;
    caller.require_scope(
        &m.client_id,
        Permission::ReadOwnMessages,
        Permission::ReadAllMessages,
    )?;
    Ok(TraceView {
        id: m.id,
        state: m.state(),
        trace: herald_raft::trace::trace_of(&m),
        attempts: m.attempts,
        last_code: m.last_code,
        expires_at_ms: m.expires_at_ms,
        answered_by: ctx.id(),
    })
}

/// Cancels a message not yet handed to a carrier. Canceling a canceled message is no error.
pub async fn cancel(
    ctx: &Ctx,
    caller: &Caller,
    raw_id: &str,
) -> Result<MessageState, ServiceError> {
    caller.require(Permission::CancelOwnMessages)?;
    let id = parse_message_id(raw_id)?;
    let record = read_known(ctx, id).await?;
    caller.require_scope(
        &record.client_id,
        Permission::CancelOwnMessages,
        Permission::CancelAllMessages,
    )?;
    if record.state() == MessageState::Canceled {
        return Ok(MessageState::Canceled);
    }
    let event = Event::new(
        ctx.clock.now_ms(),
        Kind::Canceled(MessageCanceled { message_id: id }),
    )
    .by(caller.principal());
    let outcomes = ctx.propose(vec![event]).await?;
    match outcomes.first() {
        Some(EventOutcome::Applied) => {
            tracing::info!(
                node = ctx.id(),
                message_id = id,
                link = %record.link,
                by = caller.name(),
                "message canceled"
            );
            Ok(MessageState::Canceled)
        }
        Some(EventOutcome::Ignored { reason }) => {
            // A re-proposed cancellation whose first copy applied is ignored the second time:
            // the message is canceled all the same. The leader applied it; this node may not
            // have yet.
            let canceled =
                || read(ctx, id).ok().flatten().map(|m| m.state()) == Some(MessageState::Canceled);
            if ctx.applied_until(CATCH_UP, canceled).await {
                return Ok(MessageState::Canceled);
            }
            Err(ServiceError::FailedPrecondition(format!(
                "message_id: message {id} cannot be canceled: {reason}"
            )))
        }
        other => Err(ServiceError::Internal(format!(
            "unexpected outcome of a cancellation: {other:?}"
        ))),
    }
}

/// Where one message stands, for `get_many`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageStatus {
    pub id: u64,
    /// None: no such message is known (even after this node caught up with the commits).
    pub found: Option<StatusOf>,
}

/// The state of a message found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusOf {
    pub state: MessageState,
    pub submitted_at_ms: u64,
    /// When the latest event recorded for it happened.
    pub updated_at_ms: u64,
    pub attempts: u32,
    pub link: String,
    pub client_ref: String,
    pub last_error: String,
    pub last_code: u32,
}

/// Where many messages stand, in the order asked.
pub struct Statuses {
    pub messages: Vec<MessageStatus>,
    pub answered_by: u64,
    pub applied_index: u64,
}

/// Validates the ids (all or nothing: a malformed id refuses the call, naming it).
fn parse_ids(raw: &[String]) -> Result<Vec<u64>, ServiceError> {
    if raw.is_empty() {
        return Err(ServiceError::invalid(
            "message_ids",
            "at least one message id is required",
        ));
    }
    if raw.len() > MAX_IDS {
        return Err(ServiceError::invalid(
            "message_ids",
            format!("at most {MAX_IDS} ids per call, got {}", raw.len()),
        ));
    }
    raw.iter()
        .enumerate()
        .map(|(i, id)| {
            id.trim().parse::<u64>().map_err(|_| {
                ServiceError::invalid(
                    format!("message_ids[{i}]"),
                    format!("{id:?} is not a message id (digits)"),
                )
            })
        })
        .collect()
}

fn read_all(ctx: &Ctx, ids: &[u64]) -> Result<Vec<Option<MessageRecord>>, ServiceError> {
    ids.iter()
        .map(|id| {
            ctx.reader
                .message(*id)
                .map_err(|e| ServiceError::Internal(format!("reading message {id}: {e}")))
        })
        .collect()
}

fn status_of(id: u64, record: Option<&MessageRecord>) -> MessageStatus {
    MessageStatus {
        id,
        found: record.map(|m| StatusOf {
            state: m.state(),
            submitted_at_ms: m.submitted_at_ms,
            updated_at_ms: m.timeline.last().map_or(m.submitted_at_ms, |e| e.at_ms),
            attempts: m.attempts,
            link: m.link.clone(),
            client_ref: m.client_ref.clone(),
            last_error: m.last_error.clone(),
            last_code: m.last_code,
        }),
    }
}

/// Where each of `raw_ids` stands, from this node's projection. An id not found is looked up
/// again once the node has caught up with the leader's commit index (a message acknowledged a
/// moment ago may not be applied here yet); a node that cannot catch up fails the call.
pub async fn get_many(
    ctx: &Ctx,
    caller: &Caller,
    raw_ids: &[String],
) -> Result<Statuses, ServiceError> {
    caller.require(Permission::ReadOwnMessages)?;
    let ids = parse_ids(raw_ids)?;
    let mut records = read_all(ctx, &ids)?;
    if records.iter().any(Option::is_none) {
        ctx.catch_up(CATCH_UP)
            .await
            .map_err(ServiceError::NotCaughtUp)?;
        // Only the ids not found are read again.
        for (id, record) in ids.iter().zip(records.iter_mut()) {
            if record.is_none() {
                *record = read_all(ctx, std::slice::from_ref(id))?.pop().flatten();
            }
        }
    }
    for record in records.iter().flatten() {
        caller.require_scope(
            &record.client_id,
            Permission::ReadOwnMessages,
            Permission::ReadAllMessages,
        )?;
    }
    let applied = *ctx.applied.borrow();
    Ok(Statuses {
        messages: ids
            .iter()
            .zip(&records)
            .map(|(id, r)| status_of(*id, r.as_ref()))
            .collect(),
        answered_by: ctx.id(),
        applied_index: applied,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_one_by_one_and_the_bad_one_is_named() {
        assert_eq!(
            parse_ids(&["12".into(), " 7 ".into()]).unwrap(),
            vec![12, 7]
        );
        let err = parse_ids(&["12".into(), "x7".into()]).unwrap_err();
        assert!(matches!(err, ServiceError::InvalidArgument { .. }));
        assert!(err.to_string().starts_with("message_ids[1]:"), "{err}");
        let err = parse_ids(&[]).unwrap_err();
        assert!(err.to_string().contains("at least one"), "{err}");
        let many = vec!["1".to_string(); MAX_IDS + 1];
        let err = parse_ids(&many).unwrap_err();
        assert!(err.to_string().contains("at most 1000"), "{err}");
    }

    #[test]
    fn an_unknown_id_is_answered_as_not_found() {
        let status = status_of(5, None);
        assert!(status.found.is_none());
        assert_eq!(status.id, 5);
    }

    #[test]
    fn a_message_id_is_digits_and_the_error_names_the_field_and_value() {
        assert_eq!(parse_message_id(" 42 ").unwrap(), 42);
        let err = parse_message_id("abc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "message_id: \"abc\" is not a message id (digits)"
        );
    }
}
