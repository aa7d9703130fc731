//! Who is calling, once authenticated: the principal (a client system by one of its keys, a
//! bootstrap admin key of the node config, or anyone on an insecure node) and its role. Every
//! transport gets a [`Caller`] from [`super::auth::Authenticator`] and passes it to every
//! operation, which checks the permission it needs here. Idempotency keys, quotas, replies and a
//! message's `client_id` are scoped by the caller's name.
//!
//! This module does not read keys or headers (that is `auth`), and does not decide what a role
//! grants (that is `permissions`).

use herald_raft::events::{Principal, PrincipalKind};

use super::error::ServiceError;
use super::permissions::{Permission, Role};

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    name: String,
    key_id: String,
    kind: PrincipalKind,
    role: Role,
}

/// The name under which every caller of an insecure node is served.
pub const ANONYMOUS: &str = "anonymous";

/// The name of a caller presenting a key listed in the node config's `[auth] admin-key-sha256`.
pub const BOOTSTRAP_ADMIN: &str = "bootstrap-admin";

/// The longest client name (policy client quotas and reply rules use the same bound).
pub const MAX_CLIENT_LEN: usize = 64;

impl Caller {
    /// A client system of the replicated client list, authenticated by its key `key_id`.
    pub fn client(name: &str, key_id: &str, role: Role) -> Caller {
        Caller {
            name: name.to_string(),
            key_id: key_id.to_string(),
            kind: PrincipalKind::Client,
            role,
        }
    }

    /// A caller presenting one of the node config's bootstrap admin keys.
    pub fn bootstrap_admin(key_id: &str) -> Caller {
        Caller {
            name: BOOTSTRAP_ADMIN.to_string(),
            key_id: key_id.to_string(),
            kind: PrincipalKind::BootstrapAdmin,
            role: Role::Admin,
        }
    }

    /// Any caller of an insecure node, and callers inside the node (timers, tests): an admin.
    pub fn anonymous() -> Caller {
        Caller {
            name: ANONYMOUS.to_string(),
            key_id: String::new(),
            kind: PrincipalKind::Anonymous,
            role: Role::Admin,
        }
    }

    /// The caller's name: idempotency keys, quotas and replies are scoped by it.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The principal recorded on every event this caller's request creates.
    pub fn principal(&self) -> Principal {
        Principal {
            name: self.name.clone(),
            key_id: self.key_id.clone(),
            kind: self.kind as i32,
        }
    }

    pub fn may(&self, permission: Permission) -> bool {
        self.role.may(permission)
    }

    /// Refuses the call unless the caller's role grants `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), ServiceError> {
        if self.may(permission) {
            Ok(())
        } else {
            Err(ServiceError::denied(permission))
        }
    }

    /// Refuses access to something `owner` holds unless the caller may reach everyone's
    /// (`all`), or it is the caller's own and it may reach its own (`own`). The refusal names
    /// the permission that would have allowed it: `all` for someone else's.
    ///
    /// Another client's message is answered PERMISSION_DENIED rather than NOT_FOUND: the
    /// message ids are sequential, so hiding that one exists would hide nothing.
    pub fn require_scope(
        &self,
        owner: &str,
        own: Permission,
        all: Permission,
    ) -> Result<(), ServiceError> {
        if self.may(all) {
            return Ok(());
        }
        self.require(own)?;
        if owner == self.name {
            Ok(())
        } else {
            Err(ServiceError::denied(all))
        }
    }
}

/// Checks a client name: 1 to 64 characters of `a-z`, `0-9`, `.`, `_`, `-`, starting with a
/// letter or digit, and not a name Herald gives callers itself.
pub fn check_client_name(field: &str, name: &str) -> Result<(), ServiceError> {
    let refuse = |rule: String| Err(ServiceError::invalid(field, rule));
    if name.is_empty() || name.len() > MAX_CLIENT_LEN {
        return refuse(format!(
            "{:?} is {} characters long: a client name has 1 to {MAX_CLIENT_LEN}",
            name.chars().take(16).collect::<String>(),
            name.len()
        ));
    }
    let first_ok = name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !first_ok || !rest_ok {
        return refuse(format!(
            "{name:?}: a client name is lowercase letters, digits, '.', '_' and '-', starting \
             with a letter or digit"
        ));
    }
    if name == ANONYMOUS || name == BOOTSTRAP_ADMIN {
        return refuse(format!("{name:?} is reserved for callers without a client"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_reaches_its_own_messages_only() {
        let erp = Caller::client("erp", "0123456789ab", Role::Sender);
        let own = Permission::ReadOwnMessages;
        let all = Permission::ReadAllMessages;
        assert!(erp.require_scope("erp", own, all).is_ok());
        let e = erp.require_scope("crm", own, all).unwrap_err();
        assert_eq!(
            e,
            ServiceError::PermissionDenied {
                permission: "messages.read-all".into()
            }
        );
        let ops = Caller::client("ops", "0123456789ab", Role::Operator);
        assert!(ops.require_scope("crm", own, all).is_ok());
        // Without even its own permission, the refusal names that one.
        let e = erp
            .require_scope("erp", Permission::ReadPolicy, Permission::SetPolicy)
            .unwrap_err();
        assert!(e.to_string().contains("policy.read"), "{e}");
    }

    #[test]
    fn the_principal_names_the_caller_and_its_key_id() {
        let p = Caller::bootstrap_admin("a1b2c3d4e5f6").principal();
        assert_eq!(p.name, BOOTSTRAP_ADMIN);
        assert_eq!(p.key_id, "a1b2c3d4e5f6");
        assert_eq!(p.kind, PrincipalKind::BootstrapAdmin as i32);
        assert_eq!(Caller::anonymous().role(), Role::Admin);
    }

    #[test]
    fn a_client_name_is_lowercase_and_not_reserved() {
        for ok in ["erp", "erp-01", "billing.eu_2", "9lives"] {
            assert!(check_client_name("name", ok).is_ok(), "{ok}");
        }
        for (bad, says) in [
            ("", "1 to 64"),
            ("ERP", "lowercase letters"),
            ("-erp", "starting with"),
            ("erp billing", "lowercase letters"),
            ("anonymous", "reserved"),
            ("bootstrap-admin", "reserved"),
        ] {
            let e = check_client_name("name", bad).unwrap_err().to_string();
            assert!(e.starts_with("name: "), "{e}");
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        let e = check_client_name("name", &"c".repeat(65)).unwrap_err();
        assert!(e.to_string().contains("65 characters"), "{e}");
    }
}
