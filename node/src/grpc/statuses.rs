//! `Messaging.GetMessages`: where many messages stand, in one call. A system that submitted a
//! batch follows it with one call per batch instead of one per message (each call costs the
//! node a request, a response and a write on the socket, which for small answers is most of the
//! work). Unknown ids are answered too, as not found, so the answer lines up with the question.

use herald_api::v1::{GetMessagesRequest, GetMessagesResponse, MessageStatus};
use herald_raft::records::MessageRecord;
use std::time::Duration;
use tonic::Status;

use crate::context::Ctx;

/// Most ids in one `GetMessages` call (as many as one `SubmitBatch` creates).
pub const MAX_IDS: usize = 1000;

/// How long a node waits to apply what it knows is committed before it calls an id unknown.
const CATCH_UP: Duration = Duration::from_secs(2);

/// Validates the ids (all or nothing: a malformed id refuses the call, naming it).
fn parse_ids(raw: &[String]) -> Result<Vec<u64>, Status> {
    if raw.is_empty() {
        return Err(Status::invalid_argument(
            "message_ids: at least one message id is required",
        ));
    }
    if raw.len() > MAX_IDS {
        return Err(Status::invalid_argument(format!(
            "message_ids: at most {MAX_IDS} ids per call, got {}",
            raw.len()
        )));
    }
    raw.iter()
        .enumerate()
        .map(|(i, id)| {
            id.trim().parse::<u64>().map_err(|_| {
                Status::invalid_argument(format!(
                    "message_ids[{i}]: {id:?} is not a message id (digits)"
                ))
            })
        })
        .collect()
}

fn read_all(ctx: &Ctx, ids: &[u64]) -> Result<Vec<Option<MessageRecord>>, Status> {
    ids.iter()
        .map(|id| {
            ctx.reader
                .message(*id)
                .map_err(|e| Status::internal(format!("reading message {id}: {e}")))
        })
        .collect()
}

fn status_of(id: u64, record: Option<&MessageRecord>) -> MessageStatus {
    let Some(m) = record else {
        return MessageStatus {
            message_id: id.to_string(),
            found: false,
            ..Default::default()
        };
    };
    MessageStatus {
        message_id: id.to_string(),
        found: true,
        state: m.state as i32,
        submitted_at_ms: m.submitted_at_ms,
        updated_at_ms: m.timeline.last().map_or(m.submitted_at_ms, |e| e.at_ms),
        attempts: m.attempts,
        link: m.link.clone(),
        client_ref: m.client_ref.clone(),
        last_error: m.last_error.clone(),
        last_code: m.last_code,
    }
}

/// Answers a `GetMessages` call from this node's projection. An id not found is looked up again
/// once the node has applied what it knows is committed (a message acknowledged by the leader a
/// moment ago may not be applied here yet).
pub async fn answer(ctx: &Ctx, req: GetMessagesRequest) -> Result<GetMessagesResponse, Status> {
    let ids = parse_ids(&req.message_ids)?;
    let mut records = read_all(ctx, &ids)?;
    if records.iter().any(Option::is_none) {
        ctx.catch_up(CATCH_UP).await;
        // Only the ids not found are read again.
        for (id, record) in ids.iter().zip(records.iter_mut()) {
            if record.is_none() {
                *record = read_all(ctx, std::slice::from_ref(id))?.pop().flatten();
            }
        }
    }
    let applied = *ctx.applied.borrow();
    Ok(GetMessagesResponse {
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
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(
            err.message().starts_with("message_ids[1]:"),
            "{}",
            err.message()
        );
        let err = parse_ids(&[]).unwrap_err();
        assert!(err.message().contains("at least one"), "{}", err.message());
        let many = vec!["1".to_string(); MAX_IDS + 1];
        let err = parse_ids(&many).unwrap_err();
        assert!(err.message().contains("at most 1000"), "{}", err.message());
    }

    #[test]
    fn an_unknown_id_is_answered_as_not_found() {
        let status = status_of(5, None);
        assert!(!status.found);
        assert_eq!(status.message_id, "5");
    }
}
