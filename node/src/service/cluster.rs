//! The cluster as one node sees it: members, leader, term, commit and apply positions, where each
//! link's connections run and how they fare, the drained nodes, each member's build and the
//! cluster version.

use std::collections::BTreeSet;

use openraft::async_runtime::WatchReceiver as _;

use super::caller::Caller;
use super::error::ServiceError;
use super::permissions::Permission;
use crate::context::Ctx;

/// One member of the cluster.
pub struct MemberView {
    pub id: u64,
    pub grpc_addr: String,
    pub raft_addr: String,
    pub voter: bool,
    /// Its build as it reported it: "0.1.0 (abc1234)", "older" (predates the report), "" (not
    /// reachable).
    pub version: String,
    /// The newest log format level it applies; 0: unknown.
    pub format_level: u32,
}

/// Whether a slot's carrier connection is up, as far as the answering node can know: a node
/// sees only the connections it holds (the cluster learns only "down" from the holder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    Connected,
    /// This node holds the slot and is not connected, or nobody holds it.
    NotConnected,
    /// Another node holds the slot: ask it.
    UnknownHere,
}

impl Connection {
    /// The connection of a slot held by `holder` (0: nobody), as node `here` knows it;
    /// `connected_here` is asked only when `here` holds it.
    pub fn of(holder: u64, here: u64, connected_here: impl FnOnce() -> bool) -> Connection {
        if holder == here {
            if connected_here() {
                Connection::Connected
            } else {
                Connection::NotConnected
            }
        } else if holder == crate::cluster::placement::PARKED {
            Connection::NotConnected
        } else {
            Connection::UnknownHere
        }
    }
}

/// Where one connection slot of a link runs.
pub struct LinkView {
    /// The link's name, or `name#n` for a link of several connections.
    pub slot: String,
    /// 0: not assigned.
    pub node: u64,
    pub epoch: u64,
    /// Whether the carrier connection is up, as far as the answering node can know.
    pub connection: Connection,
    /// As the holder last reported it to the cluster.
    pub down: bool,
    pub congested: bool,
    pub status_reason: String,
}

pub struct ClusterView {
    /// The answering node.
    pub node_id: u64,
    /// 0: no leader known.
    pub leader: u64,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub members: Vec<MemberView>,
    pub links: Vec<LinkView>,
    /// Leader, Follower, Candidate, Learner.
    pub state: String,
    /// Nodes an operator drained.
    pub drained: Vec<u64>,
    /// When the answering node's public certificate expires (ms since the Unix epoch); None
    /// without TLS.
    pub tls_not_after_ms: Option<u64>,
    /// The cluster version in force (the log format level every member may write).
    pub cluster_version: u32,
    /// The level every member applies (the cluster version can be raised to it); 0 when some
    /// member could not be asked.
    pub finalizable_version: u32,
}

pub async fn status(ctx: &Ctx, caller: &Caller) -> Result<ClusterView, ServiceError> {
    caller.require(Permission::ReadCluster)?;
    let builds = crate::cluster::versions::member_builds(ctx).await;
    let finalizable_version = crate::cluster::versions::finalizable(&builds).unwrap_or(0);
    let m = ctx.raft.metrics().borrow_watched().clone();
    let membership = m.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let members = membership
        .nodes()
        .map(|(id, node)| {
            let build = builds.iter().find(|b| b.id == *id);
            MemberView {
                id: *id,
                grpc_addr: node.grpc_addr.clone(),
                raft_addr: node.raft_addr.clone(),
                voter: voters.contains(id),
                version: build.map(|b| b.version_text()).unwrap_or_default(),
                format_level: build.map(|b| b.format_level()).unwrap_or(0),
            }
        })
        .collect();
    let table = ctx
        .reader
        .links()
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    let links = ctx
        .config
        .links
        .iter()
        .flat_map(|l| l.slots())
        .map(|slot| {
            let holder = table.holder(&slot);
            let node = holder.map(|h| h.node).unwrap_or(0);
            LinkView {
                node,
                epoch: holder.map(|h| h.epoch).unwrap_or(0),
                connection: Connection::of(node, ctx.id(), || ctx.is_link_connected(&slot)),
                down: holder.is_some_and(|h| h.down),
                congested: holder.is_some_and(|h| h.congested),
                status_reason: holder.map(|h| h.status_reason.clone()).unwrap_or_default(),
                slot,
            }
        })
        .collect();
    Ok(ClusterView {
        node_id: ctx.id(),
        leader: m.current_leader.unwrap_or(0),
        term: m.current_term,
        commit_index: m
            .cluster_committed
            .or(m.local_committed)
            .map(|l| l.index)
            .unwrap_or(0),
        applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
        members,
        links,
        state: format!("{:?}", m.state),
        drained: table.drained.clone(),
        tls_not_after_ms: ctx
            .tls
            .as_ref()
            .map(|t| u64::try_from(t.current().public_not_after).unwrap_or(0) * 1000),
        cluster_version: ctx.cluster_level(),
        finalizable_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_holder_knows_its_connection() {
        assert_eq!(Connection::of(2, 2, || true), Connection::Connected);
        assert_eq!(Connection::of(2, 2, || false), Connection::NotConnected);
        let asked = std::cell::Cell::new(false);
        let elsewhere = Connection::of(3, 2, || {
            asked.set(true);
            true
        });
        assert_eq!(elsewhere, Connection::UnknownHere);
        assert!(!asked.get(), "another node's slot is not looked up here");
        assert_eq!(Connection::of(0, 2, || true), Connection::NotConnected);
    }
}
