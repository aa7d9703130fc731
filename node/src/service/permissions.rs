//! Roles and permissions: what each kind of caller may do. Deny by default — a role grants
//! exactly the permissions listed in [`Role::grants`], and every operation of the service layer
//! names the one it needs before it reads or proposes anything.
//!
//! This module only answers "may this role do that"; who the caller is comes from
//! [`super::auth`], and whether a message or reply is the caller's own is decided by the
//! operation that reads it.

use std::fmt;

/// One thing an operation may need. The names (`messages.submit`, …) are what a refusal and the
/// documentation show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// Submit messages (single or batch).
    Submit,
    /// Read the caller's own messages (status, many statuses, trace).
    ReadOwnMessages,
    /// Read any client's messages.
    ReadAllMessages,
    /// Cancel the caller's own messages.
    CancelOwnMessages,
    /// Cancel any client's messages.
    CancelAllMessages,
    /// List or follow the replies routed to the caller.
    ReadOwnReplies,
    /// List any client's replies and the unrouted ones.
    ReadAllReplies,
    /// Read the dispatch policy.
    ReadPolicy,
    /// Replace the dispatch policy.
    SetPolicy,
    /// Drain or undrain a node (which moves its carrier links).
    DrainNode,
    /// Read the cluster's status (members, leader, links).
    ReadCluster,
    /// Raise the cluster version at the end of a rolling upgrade (no way back after it).
    FinalizeUpgrade,
    /// Create, list, show and delete clients; add and revoke their keys.
    ManageClients,
    /// Read the audit trail.
    ReadAudit,
    /// Add, promote, demote and remove Raft members (`herald cluster add-node | remove-node`).
    ChangeMembership,
    /// Take a backup of the whole cluster state (every client's messages, keys' hashes).
    Backup,
}

impl Permission {
    pub const ALL: [Permission; 16] = [
        Permission::Submit,
        Permission::ReadOwnMessages,
        Permission::ReadAllMessages,
        Permission::CancelOwnMessages,
        Permission::CancelAllMessages,
        Permission::ReadOwnReplies,
        Permission::ReadAllReplies,
        Permission::ReadPolicy,
        Permission::SetPolicy,
        Permission::DrainNode,
        Permission::ReadCluster,
        Permission::FinalizeUpgrade,
        Permission::ManageClients,
        Permission::ReadAudit,
        Permission::ChangeMembership,
        Permission::Backup,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Permission::Submit => "messages.submit",
            Permission::ReadOwnMessages => "messages.read-own",
            Permission::ReadAllMessages => "messages.read-all",
            Permission::CancelOwnMessages => "messages.cancel-own",
            Permission::CancelAllMessages => "messages.cancel-all",
            Permission::ReadOwnReplies => "replies.read-own",
            Permission::ReadAllReplies => "replies.read-all",
            Permission::ReadPolicy => "policy.read",
            Permission::SetPolicy => "policy.set",
            Permission::DrainNode => "nodes.drain",
            Permission::ReadCluster => "cluster.status",
            Permission::FinalizeUpgrade => "cluster.finalize",
            Permission::ManageClients => "clients.manage",
            Permission::ReadAudit => "audit.read",
            Permission::ChangeMembership => "cluster.membership",
            Permission::Backup => "cluster.backup",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a client system is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything, including clients and keys.
    Admin,
    /// Runs the platform: policy, drains, links, every client's messages and replies, the audit
    /// trail. Sends nothing and manages no clients.
    Operator,
    /// A system that sends: submits, reads and cancels its own messages, reads its own replies.
    Sender,
    /// Read-only, within its own scope: its own messages and replies.
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Sender, Role::Viewer];

    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Sender => "sender",
            Role::Viewer => "viewer",
        }
    }

    /// The role named `name`, as `--role` and the log write it.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The permissions the role grants; everything else is denied.
    pub fn grants(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Admin => &Permission::ALL,
            Role::Operator => &[
                ReadOwnMessages,
                ReadAllMessages,
                ReadOwnReplies,
                ReadAllReplies,
                ReadPolicy,
                SetPolicy,
                DrainNode,
                ReadCluster,
                FinalizeUpgrade,
                ReadAudit,
            ],
            Role::Sender => &[
                Submit,
                ReadOwnMessages,
                CancelOwnMessages,
                ReadOwnReplies,
                ReadCluster,
            ],
            Role::Viewer => &[ReadOwnMessages, ReadOwnReplies, ReadCluster],
        }
    }

    pub fn may(self, permission: Permission) -> bool {
        self.grants().contains(&permission)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;

    /// The whole table, written out: a change to a role is a change to this test.
    #[test]
    fn each_role_grants_exactly_its_permissions() {
        let table = |role: Role| -> Vec<&'static str> {
            Permission::ALL
                .into_iter()
                .filter(|p| role.may(*p))
                .map(Permission::name)
                .collect()
        };
        assert_eq!(table(Role::Admin).len(), Permission::ALL.len());
        assert_eq!(
            table(Role::Operator),
            [
                "messages.read-own",
                "messages.read-all",
                "replies.read-own",
                "replies.read-all",
                "policy.read",
                "policy.set",
                "nodes.drain",
                "cluster.status",
                "cluster.finalize",
                "audit.read"
            ]
        );
        assert_eq!(
            table(Role::Sender),
            [
                "messages.submit",
                "messages.read-own",
                "messages.cancel-own",
                "replies.read-own",
                "cluster.status"
            ]
        );
        assert_eq!(
            table(Role::Viewer),
            ["messages.read-own", "replies.read-own", "cluster.status"]
        );
    }

    #[test]
    fn only_admins_manage_clients_and_every_role_reads_the_cluster_status() {
        for role in Role::ALL {
            assert_eq!(role.may(ManageClients), role == Role::Admin, "{role}");
            assert!(role.may(ReadCluster), "{role}");
        }
        assert!(!Role::Sender.may(SetPolicy));
        assert!(!Role::Sender.may(DrainNode));
        assert!(!Role::Viewer.may(Submit));
        assert!(!Role::Operator.may(Submit));
    }

    #[test]
    fn a_role_is_known_by_its_name_only() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.name()), Some(role));
        }
        assert_eq!(Role::parse("Admin"), None);
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn permission_names_are_unique() {
        let mut names: Vec<_> = Permission::ALL.iter().map(|p| p.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Permission::ALL.len());
    }
}
