//! The one error every operation answers with. It says what the caller can do about the failure
//! (fix the input, look elsewhere, wait and retry, give up) and nothing about a wire: each
//! transport maps it to its own codes (gRPC status today; HTTP status with `Retry-After`, an SMPP
//! or CMPP result tomorrow) in one place (`grpc/convert.rs` for gRPC).

use std::time::Duration;

use herald_raft::network::ProposeError;

/// Why an operation did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The input breaks a rule: `field` names what was wrong (`recipients[1]`, `message_id`,
    /// `name`) and `rule` the value and the rule. Nothing was written.
    #[error("{field}: {rule}")]
    InvalidArgument { field: String, rule: String },
    /// What the request names does not exist (even after this node caught up with the commits).
    #[error("{0}")]
    NotFound(String),
    /// The request is well formed but the cluster's state does not allow it now (a message
    /// already being sent, no link configured, a drain that would leave no node for the links).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A change based on a version that is no longer current: read again, reapply.
    #[error("{0}")]
    Conflict(String),
    /// The caller is over a quota or a rate; nothing was written. `retry_after`: when trying
    /// again may succeed.
    #[error("{rule}; retry after {} ms", retry_after_ms(*.retry_after))]
    Exhausted { rule: String, retry_after: Duration },
    /// Not committed, and may succeed if tried again (on this node or another): nothing was
    /// acknowledged.
    #[error("not committed: {0}; nothing was acknowledged, retry (with the same idempotency key)")]
    Unavailable(String),
    /// A read this node cannot answer yet: it may not have applied a write acknowledged
    /// elsewhere (it could not learn the leader's commit index, or apply that far, in time), so
    /// it cannot say "not found". Nothing was written.
    #[error("not caught up: {0}; this node cannot yet rule out that it exists, retry (here or on another node)")]
    NotCaughtUp(String),
    /// A failure of the node itself (storage, an unexpected outcome): not the caller's doing.
    #[error("{0}")]
    Internal(String),
    /// The call carries no usable key: none, malformed, unknown, wrong or revoked. `reason` says
    /// which, naming the key's public id at most, never the key.
    #[error("unauthenticated: {reason}")]
    Unauthenticated { reason: String },
    /// The caller is known but its role does not grant `permission` (a name such as
    /// `policy.set`). Nothing was read or written.
    #[error("permission denied: this call needs the permission {permission}, which the caller's role does not grant")]
    PermissionDenied { permission: String },
}

impl ServiceError {
    /// The `reason` label of `herald_submissions_refused_total` for this refusal (a fixed set:
    /// see `metrics::families::REFUSAL_REASONS`).
    pub fn refusal_reason(&self) -> &'static str {
        match self {
            ServiceError::InvalidArgument { .. } | ServiceError::NotFound(_) => "invalid",
            ServiceError::FailedPrecondition(_) | ServiceError::Conflict(_) => "conflict",
            ServiceError::Exhausted { .. } => "quota",
            ServiceError::Unavailable(_) | ServiceError::NotCaughtUp(_) => "unavailable",
            ServiceError::Internal(_) => "internal",
            ServiceError::Unauthenticated { .. } => "unauthenticated",
            ServiceError::PermissionDenied { .. } => "permission_denied",
        }
    }
}

/// A retry hint in whole milliseconds, never 0 (0 would read as "at once, as often as you like").
pub fn retry_after_ms(retry_after: Duration) -> u64 {
    (retry_after.as_millis().max(1)).min(u128::from(u64::MAX)) as u64
}

impl ServiceError {
    /// A known caller without `permission`.
    pub fn denied(permission: super::permissions::Permission) -> ServiceError {
        ServiceError::PermissionDenied {
            permission: permission.name().to_string(),
        }
    }

    /// Bad input: `field` and the rule it breaks (with the value given).
    pub fn invalid(field: impl Into<String>, rule: impl std::fmt::Display) -> ServiceError {
        ServiceError::InvalidArgument {
            field: field.into(),
            rule: rule.to_string(),
        }
    }

    /// The same error about one item of a request of several (`messages[3]`): the field is
    /// named within the item, and an error without a field says which item it concerns.
    pub fn within(self, item: &str) -> ServiceError {
        match self {
            ServiceError::InvalidArgument { field, rule } => ServiceError::InvalidArgument {
                field: format!("{item}.{field}"),
                rule,
            },
            ServiceError::NotFound(m) => ServiceError::NotFound(format!("{item}.{m}")),
            ServiceError::FailedPrecondition(m) => {
                ServiceError::FailedPrecondition(format!("{item}.{m}"))
            }
            ServiceError::Conflict(m) => ServiceError::Conflict(format!("{item}.{m}")),
            ServiceError::Exhausted { rule, retry_after } => ServiceError::Exhausted {
                rule: format!("{item}.{rule}"),
                retry_after,
            },
            ServiceError::Unavailable(m) => ServiceError::Unavailable(format!("{item}.{m}")),
            ServiceError::NotCaughtUp(m) => ServiceError::NotCaughtUp(format!("{item}.{m}")),
            ServiceError::Internal(m) => ServiceError::Internal(format!("{item}.{m}")),
            e @ (ServiceError::Unauthenticated { .. } | ServiceError::PermissionDenied { .. }) => e,
        }
    }

    /// Whether the same request may succeed if sent again unchanged.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ServiceError::Unavailable(_)
                | ServiceError::NotCaughtUp(_)
                | ServiceError::Exhausted { .. }
        )
    }
}

impl From<ProposeError> for ServiceError {
    /// A proposal that failed: retryable ones (no leader, a leader change) are `Unavailable`.
    fn from(e: ProposeError) -> ServiceError {
        if e.is_retryable() {
            ServiceError::Unavailable(e.to_string())
        } else {
            ServiceError::Internal(format!("not committed: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_error_names_the_item_and_its_field() {
        let e = ServiceError::invalid("text", "must not be empty").within("messages[2]");
        assert_eq!(e.to_string(), "messages[2].text: must not be empty");
        let e = ServiceError::FailedPrecondition("no link".into()).within("messages[0]");
        assert_eq!(e.to_string(), "messages[0].no link");
    }

    #[test]
    fn a_refusal_for_a_rate_carries_its_hint_in_whole_milliseconds() {
        let e = ServiceError::Exhausted {
            rule: "over".into(),
            retry_after: Duration::from_micros(10),
        };
        assert_eq!(e.to_string(), "over; retry after 1 ms");
        assert!(e.is_retryable());
    }

    #[test]
    fn a_proposal_that_may_commit_elsewhere_is_retryable() {
        let e = ServiceError::from(ProposeError::NoLeader);
        assert!(matches!(e, ServiceError::Unavailable(_)));
        assert!(e
            .to_string()
            .starts_with("not committed: no leader is known"));
        let e = ServiceError::from(ProposeError::Failed("disk".into()));
        assert_eq!(e.to_string(), "not committed: the proposal failed: disk");
    }
}
