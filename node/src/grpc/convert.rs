//! The one place where protobuf meets the service layer: requests into domain types, answers and
//! [`ServiceError`]s out, with the gRPC codes and messages clients have always seen.

use herald_api::v1 as pb;
use tonic::{Request, Status};

use crate::service::cluster::{ClusterView, Connection};
use crate::service::error::retry_after_ms;
use crate::service::messages::{MessageStatus, Statuses, TraceView};
use crate::service::replies::ReplyPage;
use crate::service::submit::{Priority, Submission, Submitted};
use crate::service::view::MessageView;
use crate::service::{Caller, ServiceError};
use herald_raft::records::ReplyRecord;

/// The metadata key of the retry hint on a refused submission, in milliseconds.
pub const RETRY_AFTER_KEY: &str = "retry-after-ms";

/// The gRPC status of a service error: its [`code`], its text and, over a quota, the retry hint.
pub fn status(e: ServiceError) -> Status {
    let mut status = Status::new(code(&e), e.to_string());
    if let ServiceError::Exhausted { retry_after, .. } = e {
        if let Ok(value) = retry_after_ms(retry_after).to_string().parse() {
            status.metadata_mut().insert(RETRY_AFTER_KEY, value);
        }
    }
    status
}

/// The gRPC code of a service error (a whole call's, and each item's of a batch).
pub fn code(e: &ServiceError) -> tonic::Code {
    match e {
        ServiceError::InvalidArgument { .. } => tonic::Code::InvalidArgument,
        ServiceError::NotFound(_) => tonic::Code::NotFound,
        ServiceError::FailedPrecondition(_) => tonic::Code::FailedPrecondition,
        ServiceError::Conflict(_) => tonic::Code::Aborted,
        ServiceError::Exhausted { .. } => tonic::Code::ResourceExhausted,
        ServiceError::Unavailable(_) | ServiceError::NotCaughtUp(_) => tonic::Code::Unavailable,
        ServiceError::Internal(_) => tonic::Code::Internal,
        ServiceError::Unauthenticated { .. } => tonic::Code::Unauthenticated,
        ServiceError::PermissionDenied { .. } => tonic::Code::PermissionDenied,
    }
}

/// The caller, authenticated from the request's `authorization: Bearer <key>` metadata; the
/// peer's address throttles failures.
pub async fn caller<T>(ctx: &crate::context::Ctx, request: &Request<T>) -> Result<Caller, Status> {
    let authorization = request
        .metadata()
        .get(crate::service::auth::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let source = request.remote_addr().map(|a| a.ip());
    ctx.auth
        .authenticate(&ctx.reader, authorization, source)
        .await
        .map_err(status)
}

pub fn submission(req: pb::SubmitRequest) -> Submission {
    let priority = match pb::Priority::try_from(req.priority) {
        Ok(pb::Priority::Unspecified) => Priority::Unspecified,
        Ok(pb::Priority::Alarm) => Priority::Alarm,
        Ok(pb::Priority::Notification) => Priority::Notification,
        Ok(pb::Priority::CustomerService) => Priority::CustomerService,
        Ok(pb::Priority::Bulk) => Priority::Bulk,
        Err(_) => Priority::Unknown(req.priority.to_string()),
    };
    Submission {
        recipients: req.recipients,
        text: req.text,
        priority,
        idempotency_key: req.idempotency_key,
        client_ref: req.client_ref,
        link: req.link,
        validity_seconds: req.validity_seconds,
        send_at_ms: req.send_at_ms,
        urgent: req.urgent,
    }
}

pub fn submit_response(s: Submitted) -> pb::SubmitResponse {
    pb::SubmitResponse {
        message_id: s.message_id.to_string(),
        created: s.created,
    }
}

pub fn submit_result(result: Result<Submitted, ServiceError>) -> pb::SubmitResult {
    match result {
        Ok(s) => pb::SubmitResult {
            message_id: s.message_id.to_string(),
            created: s.created,
            ..Default::default()
        },
        Err(e) => pb::SubmitResult {
            error_code: code(&e) as i32,
            error: e.to_string(),
            ..Default::default()
        },
    }
}

pub fn message(m: MessageView) -> pb::GetMessageResponse {
    pb::GetMessageResponse {
        message_id: m.id.to_string(),
        state: m.state as i32,
        recipients: m.recipients,
        text: m.text,
        priority: m.class as i32 + 1,
        link: m.link,
        client_ref: m.client_ref,
        attempts: m.attempts,
        last_error: m.last_error,
        submitted_at_ms: m.submitted_at_ms,
        segments: m
            .segments
            .into_iter()
            .map(|s| pb::Segment {
                recipient: s.recipient,
                part: s.part,
                carrier_id: s.carrier_id,
                status: s.status.to_string(),
                report_status: s.report_status,
            })
            .collect(),
        timeline: m
            .timeline
            .into_iter()
            .map(|e| pb::TimelineEvent {
                at_ms: e.at_ms,
                kind: e.kind.to_string(),
                detail: e.detail,
            })
            .collect(),
        answered_by: m.answered_by,
        applied_index: m.applied_index,
        route: m.route,
        not_before_ms: m.not_before_ms,
        last_code: m.last_code,
        copies: m
            .copies
            .into_iter()
            .map(|c| pb::FanOutCopy {
                message_id: c.id.to_string(),
                link: c.link,
                state: c.state as i32,
                won: c.won,
                duplicate: c.duplicate,
            })
            .collect(),
        copy_of: m.copy_of.map(|id| id.to_string()).unwrap_or_default(),
        duplicate_deliveries: m.duplicate_deliveries,
        dropped_events: m.timeline_dropped,
    }
}

fn message_status(s: MessageStatus) -> pb::MessageStatus {
    let Some(m) = s.found else {
        return pb::MessageStatus {
            message_id: s.id.to_string(),
            found: false,
            ..Default::default()
        };
    };
    pb::MessageStatus {
        message_id: s.id.to_string(),
        found: true,
        state: m.state as i32,
        submitted_at_ms: m.submitted_at_ms,
        updated_at_ms: m.updated_at_ms,
        attempts: m.attempts,
        link: m.link,
        client_ref: m.client_ref,
        last_error: m.last_error,
        last_code: m.last_code,
    }
}

pub fn statuses(s: Statuses) -> pb::GetMessagesResponse {
    pb::GetMessagesResponse {
        messages: s.messages.into_iter().map(message_status).collect(),
        answered_by: s.answered_by,
        applied_index: s.applied_index,
    }
}

pub fn trace(t: TraceView) -> pb::GetTraceResponse {
    pb::GetTraceResponse {
        message_id: t.id.to_string(),
        state: t.state as i32,
        lines: t
            .trace
            .lines
            .into_iter()
            .map(|l| pb::TraceLine {
                at_ms: l.at_ms,
                link: l.link,
                node: l.node,
                direction: l.direction.as_str().to_string(),
                command: l.command,
                sequence: l.sequence,
                segment: l.segment,
                status: l.status,
                meaning: l.meaning,
                carrier_id: l.carrier_id,
            })
            .collect(),
        reason: t.trace.reason,
        attempts: t.attempts,
        last_code: t.last_code,
        expires_at_ms: t.expires_at_ms,
        dropped_events: t.trace.dropped_events,
        answered_by: t.answered_by,
    }
}

pub fn reply(r: ReplyRecord) -> pb::Reply {
    pb::Reply {
        reply_id: r.id,
        received_parts: r.parts.len() as u32,
        from: r.src,
        to: r.dest,
        text: r.text,
        complete: r.complete,
        total_parts: r.total,
        received_at_ms: r.received_at_ms,
        completed_at_ms: r.completed_at_ms,
        client_id: r.client_id,
        routed_by: r.routed_by,
        parts: r
            .parts
            .into_iter()
            .map(|p| pb::ReplyPart {
                number: p.number,
                link: p.link,
                slot: p.slot,
                node: p.node,
                encoding: p.encoding,
                carrier_id: p.carrier_id,
                at_ms: p.at_ms,
                carrier_time: p.carrier_time,
            })
            .collect(),
    }
}

pub fn replies(page: ReplyPage) -> pb::ListRepliesResponse {
    pb::ListRepliesResponse {
        replies: page.replies.into_iter().map(reply).collect(),
        answered_by: page.answered_by,
        applied_index: page.applied_index,
    }
}

pub fn cluster(c: ClusterView) -> pb::ClusterStatusResponse {
    pb::ClusterStatusResponse {
        tls_not_after_ms: c.tls_not_after_ms.unwrap_or(0),
        cluster_version: c.cluster_version,
        finalizable_version: c.finalizable_version,
        node_id: c.node_id,
        leader: c.leader,
        term: c.term,
        commit_index: c.commit_index,
        applied_index: c.applied_index,
        members: c
            .members
            .into_iter()
            .map(|m| pb::Member {
                id: m.id,
                grpc_addr: m.grpc_addr,
                raft_addr: m.raft_addr,
                voter: m.voter,
                version: m.version,
                format_level: m.format_level,
            })
            .collect(),
        links: c
            .links
            .into_iter()
            .map(|l| pb::LinkPlacement {
                link: l.slot,
                node: l.node,
                epoch: l.epoch,
                connected: l.connection == Connection::Connected,
                connection: match l.connection {
                    Connection::Connected => pb::LinkConnection::Connected,
                    Connection::NotConnected => pb::LinkConnection::NotConnected,
                    Connection::UnknownHere => pb::LinkConnection::UnknownHere,
                } as i32,
                down: l.down,
                congested: l.congested,
                status_reason: l.status_reason,
            })
            .collect(),
        state: c.state,
        drained: c.drained,
    }
}

/// A new key's answer: the only place a whole key goes out, once.
pub fn new_key(client: &str, key: crate::service::auth::NewKey) -> pb::NewKeyResponse {
    use secrecy::ExposeSecret as _;
    pb::NewKeyResponse {
        client: client.to_string(),
        key: key.key.expose_secret().to_string(),
        key_id: key.key_id,
    }
}

pub fn client_info(c: crate::service::clients::ClientView) -> pb::ClientInfo {
    pb::ClientInfo {
        name: c.name,
        role: c.role,
        created_at_ms: c.created_at_ms,
        keys: c
            .keys
            .into_iter()
            .map(|k| pb::KeyInfo {
                key_id: k.key_id,
                added_at_ms: k.added_at_ms,
                revoked_at_ms: k.revoked_at_ms,
            })
            .collect(),
    }
}

pub fn audit_entry(e: crate::service::audit::AuditEntry) -> pb::AuditEntry {
    pb::AuditEntry {
        seq: e.seq,
        at_ms: e.at_ms,
        principal: e.principal,
        key_id: e.key_id,
        principal_kind: e.principal_kind,
        action: e.action,
        detail: e.detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_error_keeps_the_code_and_message_clients_see() {
        let s = status(ServiceError::invalid("text", "must not be empty"));
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert_eq!(s.message(), "text: must not be empty");
        let s = status(ServiceError::Exhausted {
            rule: "client \"erp\" is over its rate".into(),
            retry_after: Duration::from_millis(250),
        });
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            s.message(),
            "client \"erp\" is over its rate; retry after 250 ms"
        );
        assert_eq!(
            s.metadata()
                .get(RETRY_AFTER_KEY)
                .and_then(|v| v.to_str().ok()),
            Some("250")
        );
        let s = status(ServiceError::Unavailable("no leader".into()));
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert_eq!(
            s.message(),
            "not committed: no leader; nothing was acknowledged, retry (with the same idempotency key)"
        );
        assert_eq!(
            status(ServiceError::Conflict("x".into())).code(),
            tonic::Code::Aborted
        );
    }

    #[test]
    fn an_unknown_priority_reaches_validation_as_given() {
        let s = submission(pb::SubmitRequest {
            priority: 42,
            ..Default::default()
        });
        assert_eq!(s.priority, Priority::Unknown("42".into()));
    }
}
