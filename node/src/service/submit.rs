//! Submitting messages: one, or a batch of up to [`MAX_BATCH`] with a result per message. A
//! submission is validated (`validate.rs`), admitted under the client's quota (`quota.rs`),
//! turned into a `MessageSubmitted` event and proposed; the answer comes once it is committed.

use herald_raft::events::{event::Kind, Event, MessageSubmitted};
use herald_raft::types::EventOutcome;
use std::time::Instant;

use super::caller::Caller;
use super::error::ServiceError;
use super::permissions::Permission;
use super::validate;
use crate::config::NodeConfig;
use crate::context::Ctx;
use crate::policy::DispatchPolicy;

/// Most messages in one batch.
pub const MAX_BATCH: usize = 1000;

/// The class a submission asks for, as the caller named it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Priority {
    /// None named: a notification.
    #[default]
    Unspecified,
    Alarm,
    Notification,
    CustomerService,
    Bulk,
    /// A value the caller's transport does not know, as given; validation refuses it.
    Unknown(String),
}

/// One message as a client submits it, whatever the transport.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Submission {
    /// Mobile numbers as given (normalised by validation).
    pub recipients: Vec<String>,
    pub text: String,
    pub priority: Priority,
    /// Empty: the node makes one, so its own retries of a forwarded write cannot duplicate.
    pub idempotency_key: String,
    pub client_ref: String,
    /// Empty: the policy's route for the recipients (or a default link).
    pub link: String,
    /// 0: the class's (or the node's) default.
    pub validity_seconds: u32,
    /// 0: at once.
    pub send_at_ms: u64,
    /// Send through at least two links of the route at once.
    pub urgent: bool,
}

/// A committed submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submitted {
    pub message_id: u64,
    /// False when the idempotency key matched an earlier submission.
    pub created: bool,
}

/// Validates, admits and commits one submission.
pub async fn submit(
    ctx: &Ctx,
    caller: &Caller,
    submission: Submission,
) -> Result<Submitted, ServiceError> {
    let started = Instant::now();
    let class = class_of(&submission.priority);
    let result = submit_one(ctx, caller, submission).await;
    observe(ctx, caller, class, &result);
    if result.is_ok() {
        ctx.metrics
            .submit_duration
            .observe(started.elapsed().as_secs_f64());
    }
    result
}

/// Counts one submission's outcome: accepted by client and class, or refused by reason.
fn observe(ctx: &Ctx, caller: &Caller, class: &str, result: &Result<Submitted, ServiceError>) {
    match result {
        Ok(s) if s.created => ctx
            .metrics
            .messages_submitted
            .with_label_values(&[caller.name(), class])
            .inc(),
        Ok(_) => {}
        Err(e) => ctx
            .metrics
            .submissions_refused
            .with_label_values(&[e.refusal_reason()])
            .inc(),
    }
}

/// The class label of a submission: a policy class name (an unknown priority is refused by
/// validation and counted as a refusal, never under its own name).
fn class_of(priority: &Priority) -> &'static str {
    let p = match priority {
        Priority::Alarm => 0,
        Priority::Unspecified | Priority::Notification | Priority::Unknown(_) => 1,
        Priority::CustomerService => 2,
        Priority::Bulk => 3,
    };
    crate::metrics::class_label(p)
}

async fn submit_one(
    ctx: &Ctx,
    caller: &Caller,
    submission: Submission,
) -> Result<Submitted, ServiceError> {
    caller.require(Permission::Submit)?;
    let policy = ctx.policy();
    let event = submitted_event(
        &submission,
        &ctx.config,
        &policy,
        caller.name(),
        ctx.clock.now_ms(),
    )?
    .by(caller.principal());
    admit(ctx, &policy, caller, 1)?;
    let (link, route) = match &event.kind {
        Some(Kind::Submitted(s)) => (s.link.clone(), s.route.clone()),
        _ => Default::default(),
    };
    let outcomes = ctx.propose(vec![event]).await?;
    let outcome = outcomes.into_iter().next().ok_or_else(|| {
        ServiceError::Internal("a committed submission came back without an outcome".into())
    })?;
    let done = submitted(outcome, &submission.idempotency_key)?;
    // A debug line: one per message would flood an info log. Never the recipients or text.
    tracing::debug!(
        node = ctx.id(),
        message_id = done.message_id,
        %link,
        %route,
        client = caller.name(),
        created = done.created,
        "submitted"
    );
    Ok(done)
}

/// Validates each submission on its own and commits the valid ones together (one Raft entry).
/// The call fails as a whole only for a batch size out of bounds, a quota that refuses the valid
/// ones, or a proposal that did not commit; otherwise each message has its own result, a refused
/// one naming itself (`messages[3].text: …`).
pub async fn submit_batch(
    ctx: &Ctx,
    caller: &Caller,
    submissions: Vec<Submission>,
) -> Result<Vec<Result<Submitted, ServiceError>>, ServiceError> {
    let started = Instant::now();
    let classes: Vec<&'static str> = submissions.iter().map(|s| class_of(&s.priority)).collect();
    let results = submit_many(ctx, caller, submissions).await;
    match &results {
        Ok(each) => {
            for (result, class) in each.iter().zip(classes) {
                observe(ctx, caller, class, result);
            }
            ctx.metrics
                .submit_duration
                .observe(started.elapsed().as_secs_f64());
        }
        Err(e) => ctx
            .metrics
            .submissions_refused
            .with_label_values(&[e.refusal_reason()])
            .inc_by(classes.len().max(1) as u64),
    }
    results
}

async fn submit_many(
    ctx: &Ctx,
    caller: &Caller,
    submissions: Vec<Submission>,
) -> Result<Vec<Result<Submitted, ServiceError>>, ServiceError> {
    caller.require(Permission::Submit)?;
    check_batch_size(submissions.len())?;
    let now = ctx.clock.now_ms();
    let policy = ctx.policy();
    let mut results: Vec<Result<Submitted, ServiceError>> = Vec::with_capacity(submissions.len());
    let mut events = Vec::with_capacity(submissions.len());
    let mut positions = Vec::with_capacity(submissions.len());
    for (i, submission) in submissions.iter().enumerate() {
        match submitted_event(submission, &ctx.config, &policy, caller.name(), now) {
            Ok(event) => {
                events.push(event.by(caller.principal()));
                positions.push(i);
                // Replaced by the outcome below.
                results.push(Err(ServiceError::Internal("not proposed".into())));
            }
            Err(e) => results.push(Err(e.within(&format!("messages[{i}]")))),
        }
    }
    if !events.is_empty() {
        admit(ctx, &policy, caller, events.len() as u32)?;
        let proposed = events.len();
        let outcomes = ctx.propose(events).await?;
        if outcomes.len() != proposed {
            // Committed, but which message is which cannot be told: the whole call fails, so
            // that no committed message reads as refused (and is retried without its key).
            return Err(ServiceError::Internal(format!(
                "{proposed} submissions committed with {} outcomes; retry with the same \
                 idempotency keys to learn their ids",
                outcomes.len()
            )));
        }
        for (i, outcome) in positions.into_iter().zip(outcomes) {
            results[i] = submitted(outcome, &submissions[i].idempotency_key)
                .map_err(|e| e.within(&format!("messages[{i}]")));
        }
    }
    Ok(results)
}

/// What a submission's applied event says to its caller: the message (new or the key's earlier
/// one), or the key's conflict with an earlier request.
fn submitted(outcome: EventOutcome, idempotency_key: &str) -> Result<Submitted, ServiceError> {
    match outcome {
        EventOutcome::Submitted {
            message_id,
            created,
        } => Ok(Submitted {
            message_id,
            created,
        }),
        EventOutcome::IdempotencyConflict {
            message_id,
            differs,
        } => Err(idempotency_conflict(idempotency_key, message_id, &differs)),
        other => Err(ServiceError::Internal(format!(
            "unexpected outcome of a submission: {other:?}"
        ))),
    }
}

/// A key reused for another request: nothing was created, and the client learns which message
/// holds the key and what its request changed.
fn idempotency_conflict(key: &str, message_id: u64, differs: &[String]) -> ServiceError {
    ServiceError::FailedPrecondition(format!(
        "idempotency_key: {key:?} already belongs to message {message_id}, whose {} differs \
         from this request's; a key may only be reused to retry the same request, so nothing \
         was created (use a new key for a new message)",
        if differs.is_empty() {
            "content".to_string()
        } else {
            differs.join(", ")
        }
    ))
}

/// A batch holds 1 to [`MAX_BATCH`] messages.
fn check_batch_size(len: usize) -> Result<(), ServiceError> {
    if len == 0 || len > MAX_BATCH {
        return Err(ServiceError::invalid(
            "messages",
            format!("between 1 and {MAX_BATCH} messages per call, got {len}"),
        ));
    }
    Ok(())
}

/// Admits `count` submissions of the caller under its quota, or refuses them all.
fn admit(
    ctx: &Ctx,
    policy: &DispatchPolicy,
    caller: &Caller,
    count: u32,
) -> Result<(), ServiceError> {
    let client = caller.name();
    ctx.client_rates.admit(policy, client, count, || {
        ctx.reader.pending_of(client).unwrap_or(0)
    })
}

/// Validates one submission and turns it into its event.
pub fn submitted_event(
    req: &Submission,
    config: &NodeConfig,
    policy: &DispatchPolicy,
    client: &str,
    now: u64,
) -> Result<Event, ServiceError> {
    let valid = validate::submission(req, config, policy, client, now)?;
    // Without a caller's key, the node makes one: a forwarded write that is retried after a lost
    // answer must not create the message twice. The client's own key carries a digest of what
    // it asked for, so that reusing it for another request is refused (a key the node made up
    // is never reused for another request).
    let (idempotency_key, request_digest) = if req.idempotency_key.is_empty() {
        (format!("auto:{}", uuid::Uuid::new_v4()), Vec::new())
    } else {
        let content = herald_raft::idempotency::RequestContent {
            recipients: &valid.recipients,
            text: &valid.text,
            priority: valid.priority,
            named_link: &req.link,
            client_ref: &req.client_ref,
            urgent: req.urgent,
        };
        let digest = herald_raft::idempotency::request_digest(&content);
        (req.idempotency_key.clone(), digest)
    };
    Ok(Event::new(
        now,
        Kind::Submitted(MessageSubmitted {
            client_id: client.to_string(),
            idempotency_key,
            client_ref: req.client_ref.clone(),
            recipients: valid.recipients,
            text: valid.text,
            priority: valid.priority,
            link: valid.link,
            // The validity counts from when the message may first be sent.
            expires_at_ms: now
                .max(valid.send_at_ms)
                .saturating_add(valid.validity_seconds.saturating_mul(1000)),
            route: valid.route,
            send_at_ms: valid.send_at_ms,
            deferred_because: valid.deferred_because,
            fan_out_links: valid.fan_out_links,
            split: valid.split,
            request_digest,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_holds_one_to_a_thousand_messages() {
        assert!(check_batch_size(1).is_ok());
        assert!(check_batch_size(MAX_BATCH).is_ok());
        assert_eq!(
            check_batch_size(0).unwrap_err().to_string(),
            "messages: between 1 and 1000 messages per call, got 0"
        );
        assert_eq!(
            check_batch_size(1001).unwrap_err().to_string(),
            "messages: between 1 and 1000 messages per call, got 1001"
        );
    }
}
