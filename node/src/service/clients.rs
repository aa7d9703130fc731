//! Client systems and their keys: create one with a role (its first key is returned once), list
//! and show them, add a second key (rotation), revoke a key, delete a client. Each change is an
//! event in the log, decided at apply against the replicated client list; only the SHA-256 of a
//! key is proposed. Every operation needs [`Permission::ManageClients`] (admins).
//!
//! Not here: checking a key on a call (`auth`), what roles grant (`permissions`).

use std::time::Duration;

use herald_raft::events::{
    event::Kind, ClientCreated, ClientDeleted, ClientKeyAdded, ClientKeyRevoked, Event,
};
use herald_raft::records::ClientRecord;
use herald_raft::types::EventOutcome;

use super::auth::NewKey;
use super::caller::{check_client_name, Caller};
use super::error::ServiceError;
use super::permissions::{Permission, Role};
use crate::context::Ctx;

/// How long a change waits to be applied on the answering node, so that the next call to it
/// (with the new key, say) finds the change.
const APPLIED_HERE: Duration = Duration::from_secs(3);

/// A client as listed: never a key, only key ids.
pub struct ClientView {
    pub name: String,
    pub role: String,
    pub created_at_ms: u64,
    pub keys: Vec<KeyView>,
}

pub struct KeyView {
    pub key_id: String,
    pub added_at_ms: u64,
    /// 0: live.
    pub revoked_at_ms: u64,
}

fn view(r: ClientRecord) -> ClientView {
    ClientView {
        name: r.name,
        role: r.role,
        created_at_ms: r.created_at_ms,
        keys: r
            .keys
            .into_iter()
            .map(|k| KeyView {
                key_id: k.key_id,
                added_at_ms: k.added_at_ms,
                revoked_at_ms: k.revoked_at_ms,
            })
            .collect(),
    }
}

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(e.to_string())
}

/// Proposes `events` for `caller` and maps the first refusal to `refused`.
async fn propose(
    ctx: &Ctx,
    caller: &Caller,
    kinds: Vec<Kind>,
    refused: impl Fn(String) -> ServiceError,
) -> Result<(), ServiceError> {
    let now = ctx.clock.now_ms();
    let events: Vec<Event> = kinds
        .into_iter()
        .map(|k| Event::new(now, k).by(caller.principal()))
        .collect();
    let outcomes = ctx.propose(events).await?;
    for outcome in outcomes {
        match outcome {
            EventOutcome::Applied => {}
            EventOutcome::Ignored { reason } => return Err(refused(reason)),
            other => {
                return Err(ServiceError::Internal(format!(
                    "unexpected outcome of a client change: {other:?}"
                )))
            }
        }
    }
    Ok(())
}

/// Creates client `name` with `role` and its first key; returns the key (shown once).
pub async fn create(
    ctx: &Ctx,
    caller: &Caller,
    name: &str,
    role: &str,
) -> Result<NewKey, ServiceError> {
    caller.require(Permission::ManageClients)?;
    check_client_name("name", name)?;
    if Role::parse(role).is_none() {
        let names: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
        return Err(ServiceError::invalid(
            "role",
            format!("{role:?} is not a role (one of {})", names.join(", ")),
        ));
    }
    let key = NewKey::generate();
    // One event: a creation refused (the name exists) must not add its key to that client.
    let kinds = vec![Kind::ClientCreated(ClientCreated {
        name: name.to_string(),
        role: role.to_string(),
        key_id: key.key_id.clone(),
        key_sha256: key.sha256(),
    })];
    propose(ctx, caller, kinds, ServiceError::Conflict).await?;
    let key_id = key.key_id.clone();
    ctx.applied_until(APPLIED_HERE, || {
        ctx.reader.client_of_key(&key_id).is_ok_and(|c| c.is_some())
    })
    .await;
    Ok(key)
}

pub fn list(ctx: &Ctx, caller: &Caller) -> Result<Vec<ClientView>, ServiceError> {
    caller.require(Permission::ManageClients)?;
    Ok(ctx
        .reader
        .clients()
        .map_err(internal)?
        .into_iter()
        .map(view)
        .collect())
}

async fn known(ctx: &Ctx, name: &str) -> Result<ClientRecord, ServiceError> {
    check_client_name("name", name)?;
    if let Some(r) = ctx.reader.client(name).map_err(internal)? {
        return Ok(r);
    }
    ctx.catch_up(APPLIED_HERE)
        .await
        .map_err(ServiceError::NotCaughtUp)?;
    ctx.reader
        .client(name)
        .map_err(internal)?
        .ok_or_else(|| ServiceError::NotFound(format!("name: no client {name:?}")))
}

pub async fn get(ctx: &Ctx, caller: &Caller, name: &str) -> Result<ClientView, ServiceError> {
    caller.require(Permission::ManageClients)?;
    Ok(view(known(ctx, name).await?))
}

/// Adds a key to `name` (it may then hold two): the new key, shown once.
pub async fn rotate_key(ctx: &Ctx, caller: &Caller, name: &str) -> Result<NewKey, ServiceError> {
    caller.require(Permission::ManageClients)?;
    known(ctx, name).await?;
    let key = NewKey::generate();
    let kind = Kind::ClientKeyAdded(ClientKeyAdded {
        client: name.to_string(),
        key_id: key.key_id.clone(),
        key_sha256: key.sha256(),
    });
    propose(ctx, caller, vec![kind], ServiceError::FailedPrecondition).await?;
    let key_id = key.key_id.clone();
    ctx.applied_until(APPLIED_HERE, || {
        ctx.reader.client_of_key(&key_id).is_ok_and(|c| c.is_some())
    })
    .await;
    Ok(key)
}

pub async fn revoke_key(
    ctx: &Ctx,
    caller: &Caller,
    name: &str,
    key_id: &str,
) -> Result<(), ServiceError> {
    caller.require(Permission::ManageClients)?;
    let record = known(ctx, name).await?;
    if record.key(key_id).is_none() {
        return Err(ServiceError::NotFound(format!(
            "key_id: client {name:?} has no key {key_id:?}"
        )));
    }
    let kind = Kind::ClientKeyRevoked(ClientKeyRevoked {
        client: name.to_string(),
        key_id: key_id.to_string(),
    });
    propose(ctx, caller, vec![kind], ServiceError::FailedPrecondition).await?;
    ctx.applied_until(APPLIED_HERE, || {
        ctx.reader
            .client(name)
            .is_ok_and(|c| c.is_none_or(|c| c.key(key_id).is_none_or(|k| !k.is_live())))
    })
    .await;
    Ok(())
}

pub async fn delete(ctx: &Ctx, caller: &Caller, name: &str) -> Result<(), ServiceError> {
    caller.require(Permission::ManageClients)?;
    known(ctx, name).await?;
    let kind = Kind::ClientDeleted(ClientDeleted {
        name: name.to_string(),
    });
    propose(ctx, caller, vec![kind], ServiceError::NotFound).await?;
    ctx.applied_until(APPLIED_HERE, || {
        ctx.reader.client(name).is_ok_and(|c| c.is_none())
    })
    .await;
    Ok(())
}
