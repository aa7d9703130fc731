//! Client systems and their keys in the projection, and the audit trail: how the client events
//! change the replicated client list, and how every change an authenticated caller made is
//! recorded for `herald audit`.
//!
//! Pure logic over the [`Kv`] trait, like [`crate::projection`]. The rules here (a name is
//! created once, at most [`MAX_LIVE_KEYS`] live keys, a key id names one key) are decided against
//! replicated state only, so every node reaches the same outcome. Permissions are not judged
//! here: the node that received the request did that before proposing.

use prost::Message as _;

use crate::db::{CF_AUDIT, CF_CLIENTS, CF_CLIENT_KEYS};
use crate::events::{ClientCreated, ClientDeleted, ClientKeyAdded, ClientKeyRevoked, Event};
use crate::keys;
use crate::projection::{decode, ignored, load_counter, store_counter, Kv, ProjectionError};
use crate::records::{AuditRecord, ClientRecord, KeyRecord};
use crate::types::EventOutcome;

/// Live keys a client may hold at once: one in use and its successor during a rotation.
pub const MAX_LIVE_KEYS: usize = 2;

/// Revoked keys a client's record remembers (the newest), so that a call with one is told the
/// key was revoked rather than unknown; older ones are forgotten.
pub const REVOKED_KEPT: usize = 4;

pub fn load_client(kv: &impl Kv, name: &str) -> Result<Option<ClientRecord>, ProjectionError> {
    kv.get(CF_CLIENTS, &keys::client(name))?
        .map(|bytes| decode(&format!("client {name}"), &bytes))
        .transpose()
}

/// The client holding the key with `key_id` (live or recently revoked), if any.
pub fn client_of_key(kv: &impl Kv, key_id: &str) -> Result<Option<ClientRecord>, ProjectionError> {
    let Some(name) = kv.get(CF_CLIENT_KEYS, &keys::client_key(key_id))? else {
        return Ok(None);
    };
    let name = String::from_utf8(name).map_err(|e| ProjectionError::Corrupt {
        what: format!("key index entry {key_id}"),
        detail: e.to_string(),
    })?;
    load_client(kv, &name)
}

fn save_client(kv: &mut impl Kv, record: &ClientRecord) {
    kv.put(
        CF_CLIENTS,
        keys::client(&record.name),
        record.encode_to_vec(),
    );
}

/// Appends one record to the audit trail.
pub(crate) fn audit(
    kv: &mut impl Kv,
    event: &Event,
    action: &str,
    detail: String,
) -> Result<(), ProjectionError> {
    let seq = load_counter(kv, keys::META_AUDIT_SEQ, "audit sequence")?.unwrap_or(0) + 1;
    store_counter(kv, keys::META_AUDIT_SEQ.to_vec(), seq);
    let record = AuditRecord {
        seq,
        at_ms: event.at_ms,
        principal: event.principal.clone(),
        action: action.to_string(),
        detail,
    };
    kv.put(CF_AUDIT, keys::audit(seq), record.encode_to_vec());
    Ok(())
}

pub(crate) fn created(
    kv: &mut impl Kv,
    event: &Event,
    c: &ClientCreated,
) -> Result<EventOutcome, ProjectionError> {
    if let Some(existing) = load_client(kv, &c.name)? {
        // The same event applied again (a batch re-proposed after a leader change).
        let same_key = c.key_id.is_empty() || existing.key(&c.key_id).is_some();
        if existing.role == c.role && existing.created_at_ms == event.at_ms && same_key {
            return Ok(EventOutcome::Applied);
        }
        return Ok(ignored(format!("client {:?} already exists", c.name)));
    }
    if !c.key_id.is_empty()
        && kv
            .get(CF_CLIENT_KEYS, &keys::client_key(&c.key_id))?
            .is_some()
    {
        return Ok(ignored(format!("key id {} is already in use", c.key_id)));
    }
    let mut record = ClientRecord {
        name: c.name.clone(),
        role: c.role.clone(),
        created_at_ms: event.at_ms,
        keys: Vec::new(),
    };
    if !c.key_id.is_empty() {
        record.keys.push(KeyRecord {
            key_id: c.key_id.clone(),
            sha256: c.key_sha256.clone(),
            added_at_ms: event.at_ms,
            revoked_at_ms: 0,
        });
        kv.put(
            CF_CLIENT_KEYS,
            keys::client_key(&c.key_id),
            c.name.as_bytes().to_vec(),
        );
    }
    save_client(kv, &record);
    let key = if c.key_id.is_empty() {
        String::new()
    } else {
        format!(" key {}", c.key_id)
    };
    audit(
        kv,
        event,
        "client.create",
        format!("client {} role {}{key}", c.name, c.role),
    )?;
    Ok(EventOutcome::Applied)
}

pub(crate) fn key_added(
    kv: &mut impl Kv,
    event: &Event,
    k: &ClientKeyAdded,
) -> Result<EventOutcome, ProjectionError> {
    let Some(mut record) = load_client(kv, &k.client)? else {
        return Ok(ignored(format!("no client {:?}", k.client)));
    };
    if let Some(holder) = kv.get(CF_CLIENT_KEYS, &keys::client_key(&k.key_id))? {
        let replay = holder == k.client.as_bytes()
            && record
                .key(&k.key_id)
                .is_some_and(|key| key.sha256 == k.key_sha256 && key.is_live());
        if replay {
            return Ok(EventOutcome::Applied);
        }
        return Ok(ignored(format!("key id {} is already in use", k.key_id)));
    }
    let live = record.live_keys().count();
    if live >= MAX_LIVE_KEYS {
        return Ok(ignored(format!(
            "client {:?} already holds {live} live keys (at most {MAX_LIVE_KEYS}): revoke one first",
            k.client
        )));
    }
    // Live keys stay ahead of revoked ones, in the order they were added.
    let at = record.live_keys().count();
    record.keys.insert(
        at,
        KeyRecord {
            key_id: k.key_id.clone(),
            sha256: k.key_sha256.clone(),
            added_at_ms: event.at_ms,
            revoked_at_ms: 0,
        },
    );
    save_client(kv, &record);
    kv.put(
        CF_CLIENT_KEYS,
        keys::client_key(&k.key_id),
        k.client.as_bytes().to_vec(),
    );
    audit(
        kv,
        event,
        "client.key.add",
        format!("client {} key {}", k.client, k.key_id),
    )?;
    Ok(EventOutcome::Applied)
}

pub(crate) fn key_revoked(
    kv: &mut impl Kv,
    event: &Event,
    k: &ClientKeyRevoked,
) -> Result<EventOutcome, ProjectionError> {
    let Some(mut record) = load_client(kv, &k.client)? else {
        return Ok(ignored(format!("no client {:?}", k.client)));
    };
    let Some(pos) = record.keys.iter().position(|key| key.key_id == k.key_id) else {
        return Ok(ignored(format!(
            "client {:?} has no key {}",
            k.client, k.key_id
        )));
    };
    if !record.keys[pos].is_live() {
        // Revoked already (or the same revocation applied again): nothing changes.
        return Ok(EventOutcome::Applied);
    }
    let mut key = record.keys.remove(pos);
    key.revoked_at_ms = event.at_ms.max(1);
    let first_revoked = record.live_keys().count();
    record.keys.insert(first_revoked, key);
    // The newest revoked keys are kept; older ones are forgotten (their id becomes unknown).
    while record.keys.len() - first_revoked > REVOKED_KEPT {
        if let Some(old) = record.keys.pop() {
            kv.delete(CF_CLIENT_KEYS, keys::client_key(&old.key_id));
        }
    }
    save_client(kv, &record);
    audit(
        kv,
        event,
        "client.key.revoke",
        format!("client {} key {}", k.client, k.key_id),
    )?;
    Ok(EventOutcome::Applied)
}

pub(crate) fn deleted(
    kv: &mut impl Kv,
    event: &Event,
    d: &ClientDeleted,
) -> Result<EventOutcome, ProjectionError> {
    let Some(record) = load_client(kv, &d.name)? else {
        return Ok(ignored(format!("no client {:?}", d.name)));
    };
    for key in &record.keys {
        kv.delete(CF_CLIENT_KEYS, keys::client_key(&key.key_id));
    }
    kv.delete(CF_CLIENTS, keys::client(&d.name));
    audit(kv, event, "client.delete", format!("client {}", d.name))?;
    Ok(EventOutcome::Applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{event::Kind, Principal, PrincipalKind};
    use crate::projection::{apply_event, MemKv};

    fn admin() -> Principal {
        Principal {
            name: "bootstrap-admin".into(),
            key_id: "0123456789ab".into(),
            kind: PrincipalKind::BootstrapAdmin as i32,
        }
    }

    fn apply(kv: &mut MemKv, at_ms: u64, kind: Kind) -> EventOutcome {
        apply_event(kv, &Event::new(at_ms, kind).by(admin())).expect("storage")
    }

    fn create(name: &str, role: &str) -> Kind {
        Kind::ClientCreated(ClientCreated {
            name: name.into(),
            role: role.into(),
            ..Default::default()
        })
    }

    fn create_with_key(name: &str, role: &str, key_id: &str) -> Kind {
        Kind::ClientCreated(ClientCreated {
            name: name.into(),
            role: role.into(),
            key_id: key_id.into(),
            key_sha256: key_id.as_bytes().to_vec(),
        })
    }

    fn add(client: &str, key_id: &str) -> Kind {
        Kind::ClientKeyAdded(ClientKeyAdded {
            client: client.into(),
            key_id: key_id.into(),
            key_sha256: key_id.as_bytes().to_vec(),
        })
    }

    fn revoke(client: &str, key_id: &str) -> Kind {
        Kind::ClientKeyRevoked(ClientKeyRevoked {
            client: client.into(),
            key_id: key_id.into(),
        })
    }

    fn is_ignored(outcome: &EventOutcome, containing: &str) -> bool {
        matches!(outcome, EventOutcome::Ignored { reason } if reason.contains(containing))
    }

    fn audit_trail(kv: &MemKv) -> Vec<(String, String)> {
        kv.data
            .iter()
            .filter(|((cf, _), _)| *cf == CF_AUDIT)
            .map(|(_, v)| {
                let r = AuditRecord::decode(v.as_slice()).expect("audit record");
                (r.action, r.detail)
            })
            .collect()
    }

    #[test]
    fn a_client_is_created_once_and_a_replayed_creation_changes_nothing() {
        let mut kv = MemKv::default();
        assert_eq!(
            apply(&mut kv, 10, create("erp", "sender")),
            EventOutcome::Applied
        );
        let after = kv.clone();
        assert_eq!(
            apply(&mut kv, 10, create("erp", "sender")),
            EventOutcome::Applied
        );
        assert_eq!(kv, after, "a replay writes nothing, not even audit");
        assert!(is_ignored(
            &apply(&mut kv, 11, create("erp", "admin")),
            "already exists"
        ));
        assert_eq!(kv, after);
        let record = load_client(&kv, "erp").unwrap().expect("created");
        assert_eq!((record.role.as_str(), record.created_at_ms), ("sender", 10));
    }

    #[test]
    fn a_creation_carries_its_first_key_and_a_refused_one_adds_no_key() {
        let mut kv = MemKv::default();
        assert_eq!(
            apply(&mut kv, 1, create_with_key("erp", "sender", "aaaaaaaaaaaa")),
            EventOutcome::Applied
        );
        let record = client_of_key(&kv, "aaaaaaaaaaaa")
            .unwrap()
            .expect("its key");
        assert_eq!(record.name, "erp");
        // Replayed: applied, nothing changes.
        let after = kv.clone();
        assert_eq!(
            apply(&mut kv, 1, create_with_key("erp", "sender", "aaaaaaaaaaaa")),
            EventOutcome::Applied
        );
        assert_eq!(kv, after);
        // Creating it again (another admin, another key): refused, and the key is not added.
        assert!(is_ignored(
            &apply(&mut kv, 2, create_with_key("erp", "sender", "bbbbbbbbbbbb")),
            "already exists"
        ));
        assert_eq!(kv, after);
        assert!(client_of_key(&kv, "bbbbbbbbbbbb").unwrap().is_none());
        // A key id already in use is refused for a new client too.
        assert!(is_ignored(
            &apply(&mut kv, 3, create_with_key("crm", "viewer", "aaaaaaaaaaaa")),
            "already in use"
        ));
        assert!(load_client(&kv, "crm").unwrap().is_none());
        assert_eq!(
            audit_trail(&kv),
            [(
                "client.create".to_string(),
                "client erp role sender key aaaaaaaaaaaa".to_string()
            )]
        );
    }

    #[test]
    fn at_most_two_live_keys_and_a_key_id_names_one_key() {
        let mut kv = MemKv::default();
        apply(&mut kv, 1, create("erp", "sender"));
        apply(&mut kv, 1, create("crm", "viewer"));
        assert!(is_ignored(
            &apply(&mut kv, 2, add("nobody", "aaaaaaaaaaaa")),
            "no client"
        ));
        assert_eq!(
            apply(&mut kv, 2, add("erp", "aaaaaaaaaaaa")),
            EventOutcome::Applied
        );
        // Replayed: applied, nothing added.
        assert_eq!(
            apply(&mut kv, 2, add("erp", "aaaaaaaaaaaa")),
            EventOutcome::Applied
        );
        assert!(is_ignored(
            &apply(&mut kv, 3, add("crm", "aaaaaaaaaaaa")),
            "already in use"
        ));
        assert_eq!(
            apply(&mut kv, 3, add("erp", "bbbbbbbbbbbb")),
            EventOutcome::Applied
        );
        let before = kv.clone();
        assert!(is_ignored(
            &apply(&mut kv, 4, add("erp", "cccccccccccc")),
            "already holds 2 live keys (at most 2)"
        ));
        assert_eq!(kv, before, "a refused third key changes nothing");
        // Revoking one makes room for the next.
        assert_eq!(
            apply(&mut kv, 5, revoke("erp", "aaaaaaaaaaaa")),
            EventOutcome::Applied
        );
        assert_eq!(
            apply(&mut kv, 6, add("erp", "cccccccccccc")),
            EventOutcome::Applied
        );
        let record = client_of_key(&kv, "aaaaaaaaaaaa")
            .unwrap()
            .expect("revoked key kept");
        let ids: Vec<(&str, bool)> = record
            .keys
            .iter()
            .map(|k| (k.key_id.as_str(), k.is_live()))
            .collect();
        assert_eq!(
            ids,
            [
                ("bbbbbbbbbbbb", true),
                ("cccccccccccc", true),
                ("aaaaaaaaaaaa", false)
            ]
        );
    }

    #[test]
    fn revoking_is_idempotent_and_old_revoked_keys_are_forgotten() {
        let mut kv = MemKv::default();
        apply(&mut kv, 1, create("erp", "sender"));
        assert!(is_ignored(
            &apply(&mut kv, 2, revoke("erp", "ffffffffffff")),
            "has no key"
        ));
        for i in 0..(REVOKED_KEPT + 2) {
            let id = format!("{i:012x}");
            assert_eq!(
                apply(&mut kv, 10 + i as u64, add("erp", &id)),
                EventOutcome::Applied
            );
            assert_eq!(
                apply(&mut kv, 10 + i as u64, revoke("erp", &id)),
                EventOutcome::Applied
            );
            let after = kv.clone();
            assert_eq!(
                apply(&mut kv, 99, revoke("erp", &id)),
                EventOutcome::Applied
            );
            assert_eq!(kv, after, "revoking again changes nothing");
        }
        let record = load_client(&kv, "erp").unwrap().expect("client");
        assert_eq!(record.keys.len(), REVOKED_KEPT);
        assert_eq!(record.keys[0].key_id, format!("{:012x}", REVOKED_KEPT + 1));
        assert!(client_of_key(&kv, &format!("{:012x}", 0))
            .unwrap()
            .is_none());
        assert!(client_of_key(&kv, &format!("{:012x}", 2))
            .unwrap()
            .is_some());
    }

    #[test]
    fn deleting_a_client_forgets_its_keys() {
        let mut kv = MemKv::default();
        apply(&mut kv, 1, create("erp", "sender"));
        apply(&mut kv, 2, add("erp", "aaaaaaaaaaaa"));
        let deleted = Kind::ClientDeleted(ClientDeleted { name: "erp".into() });
        assert_eq!(apply(&mut kv, 3, deleted.clone()), EventOutcome::Applied);
        assert!(load_client(&kv, "erp").unwrap().is_none());
        assert!(client_of_key(&kv, "aaaaaaaaaaaa").unwrap().is_none());
        assert!(is_ignored(&apply(&mut kv, 4, deleted), "no client"));
        // The name may be used again, and the trail kept every change in order.
        assert_eq!(
            apply(&mut kv, 5, create("erp", "viewer")),
            EventOutcome::Applied
        );
        let trail = audit_trail(&kv);
        let actions: Vec<&str> = trail.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(
            actions,
            [
                "client.create",
                "client.key.add",
                "client.delete",
                "client.create"
            ]
        );
        assert_eq!(trail[1].1, "client erp key aaaaaaaaaaaa");
    }

    #[test]
    fn policy_changes_and_drains_are_audited_with_their_principal() {
        use crate::events::{NodeDrainChanged, PolicyChanged};
        let mut kv = MemKv::default();
        let policy = |version| {
            Kind::PolicyChanged(PolicyChanged {
                version,
                document: "{}".into(),
                changed_by: "bootstrap-admin".into(),
            })
        };
        assert_eq!(apply(&mut kv, 1, policy(1)), EventOutcome::Applied);
        // Replayed or stale changes change nothing and are not audited.
        apply(&mut kv, 1, policy(1));
        apply(&mut kv, 2, policy(5));
        let drain = |drained| Kind::NodeDrain(NodeDrainChanged { node: 2, drained });
        apply(&mut kv, 3, drain(true));
        apply(&mut kv, 4, drain(false));
        assert_eq!(
            audit_trail(&kv),
            [
                ("policy.set".to_string(), "version 1".to_string()),
                ("node.drain".into(), "node 2".into()),
                ("node.undrain".into(), "node 2".into()),
            ]
        );
        let first = kv
            .data
            .iter()
            .find(|((cf, _), _)| *cf == CF_AUDIT)
            .map(|(_, v)| AuditRecord::decode(v.as_slice()).expect("record"))
            .expect("a record");
        assert_eq!((first.seq, first.at_ms), (1, 1));
        assert_eq!(first.principal, Some(admin()));
    }

    #[test]
    fn two_stores_given_the_same_events_hold_the_same_bytes() {
        let events = [
            create("erp", "sender"),
            add("erp", "aaaaaaaaaaaa"),
            add("erp", "bbbbbbbbbbbb"),
            add("erp", "cccccccccccc"),
            revoke("erp", "aaaaaaaaaaaa"),
            Kind::ClientDeleted(ClientDeleted { name: "erp".into() }),
        ];
        let (mut a, mut b) = (MemKv::default(), MemKv::default());
        for (i, kind) in events.iter().enumerate() {
            assert_eq!(
                apply(&mut a, i as u64, kind.clone()),
                apply(&mut b, i as u64, kind.clone())
            );
        }
        assert_eq!(a, b);
    }
}
