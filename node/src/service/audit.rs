//! The audit trail as operators read it: who changed the policy, clients, keys, drains and
//! cancels, from this node's projection (every node holds the whole trail). Needs
//! [`Permission::ReadAudit`].

use herald_raft::events::PrincipalKind;
use herald_raft::records::AuditRecord;

use super::caller::Caller;
use super::error::ServiceError;
use super::permissions::Permission;
use crate::context::Ctx;

/// Records per answer when the caller gives no limit, and the most it may ask for.
pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

/// Which records to list.
#[derive(Debug, Default, Clone)]
pub struct AuditQuery {
    /// Only this principal's (its name); empty: everyone's.
    pub principal: String,
    /// Only records at or after this time (ms since the epoch); 0: all.
    pub since_ms: u64,
    /// Only records after this sequence number (paging).
    pub after_seq: u64,
    /// 0: [`DEFAULT_LIMIT`].
    pub limit: u32,
}

/// One record, as shown.
pub struct AuditEntry {
    pub seq: u64,
    pub at_ms: u64,
    /// The principal's name ("" for a change the node made itself).
    pub principal: String,
    pub key_id: String,
    /// `client`, `bootstrap-admin`, `anonymous`.
    pub principal_kind: String,
    pub action: String,
    pub detail: String,
}

fn entry(r: AuditRecord) -> AuditEntry {
    let p = r.principal.unwrap_or_default();
    let kind = PrincipalKind::try_from(p.kind).unwrap_or(PrincipalKind::Unspecified);
    AuditEntry {
        seq: r.seq,
        at_ms: r.at_ms,
        principal: p.name,
        key_id: p.key_id,
        principal_kind: kind.name().to_string(),
        action: r.action,
        detail: r.detail,
    }
}

pub fn list(ctx: &Ctx, caller: &Caller, q: &AuditQuery) -> Result<Vec<AuditEntry>, ServiceError> {
    caller.require(Permission::ReadAudit)?;
    if q.limit > MAX_LIMIT {
        return Err(ServiceError::invalid(
            "limit",
            format!("{} is more than {MAX_LIMIT}", q.limit),
        ));
    }
    let limit = if q.limit == 0 { DEFAULT_LIMIT } else { q.limit };
    let records = ctx
        .reader
        .audit(q.after_seq, limit as usize, |r| {
            r.at_ms >= q.since_ms
                && (q.principal.is_empty()
                    || r.principal.as_ref().is_some_and(|p| p.name == q.principal))
        })
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(records.into_iter().map(entry).collect())
}
