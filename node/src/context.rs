//! What every part of a running node shares: its configuration, its Raft handle, the proposer,
//! read access to the projection, the dispatch policy in force, and the cluster clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use herald_raft::reader::ProjectionReader;
use herald_raft::types::{NodeId, Raft};
use openraft::async_runtime::WatchReceiver as _;
use tokio::sync::watch;

use crate::cluster::proposer::Proposer;
use crate::config::NodeConfig;
use crate::policy::DispatchPolicy;
use crate::service::quota::ClientRates;

pub struct NodeContext {
    pub config: NodeConfig,
    pub raft: Raft,
    pub proposer: Proposer,
    pub reader: ProjectionReader,
    /// Last log index applied to the local projection.
    pub applied: watch::Receiver<u64>,
    /// Whether each link slot this node runs is connected to its carrier now.
    pub link_connected: Mutex<HashMap<String, bool>>,
    /// The parsed policy of the version last read from the projection.
    pub policy_cache: Mutex<(u64, Arc<DispatchPolicy>)>,
    pub client_rates: ClientRates,
    /// Who each call is (its API key), and the throttle on failed authentications.
    pub auth: crate::service::auth::Authenticator,
    /// The TLS configuration in force (None: an insecure node).
    pub tls: Option<Arc<crate::tls::store::TlsStore>>,
    /// This node's metric families.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Set once the node was told to stop (it drains itself, then exits).
    pub stopping: std::sync::atomic::AtomicBool,
    /// Channels to peers' internal service (to ask them their build: `cluster/versions.rs`).
    pub network: herald_raft::network::NetworkFactory,
    /// The cluster clock: the "now" of every decision and event stamp (`cluster/clock.rs`).
    pub clock: crate::cluster::clock::ClusterClock,
    /// The data directory's free space against `min-free-space`: below it, writes are refused.
    pub disk: Arc<crate::disk_space::DiskSpace>,
}

pub type Ctx = Arc<NodeContext>;

impl NodeContext {
    pub fn id(&self) -> NodeId {
        self.config.node_id
    }

    /// The cluster version in force: the log format level every member may write. Check it
    /// before writing a new kind of event: `ctx.cluster_level() >= N` (N the level that
    /// introduced it); below N, keep the old behaviour. An unreadable level counts as the base
    /// level (nothing new is written), loudly.
    pub fn cluster_level(&self) -> u32 {
        self.reader.cluster_level().unwrap_or_else(|e| {
            tracing::error!("reading the cluster version: {e}");
            herald_raft::events::BASE_FORMAT_LEVEL
        })
    }

    /// Marks the node as stopping: it reads as draining from then on.
    pub fn set_stopping(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether this node is draining or drained: told to stop, or drained in the log (by an
    /// operator or by itself before a stop). A draining node is not ready for new work.
    pub fn is_draining(&self) -> bool {
        self.is_stopping() || self.reader.links().is_ok_and(|t| t.is_drained(self.id()))
    }

    /// The service layer's one way to write: proposes `events`, unless this node's disk is below
    /// its reserve (`crate::disk_space`), in which case nothing is proposed and the caller is told
    /// why (UNAVAILABLE naming the node, the free bytes and the reserve). Every operation that
    /// writes goes through here, so none can forget the check.
    pub async fn propose(
        &self,
        events: Vec<herald_raft::events::Event>,
    ) -> Result<Vec<herald_raft::types::EventOutcome>, crate::service::error::ServiceError> {
        self.disk
            .check()
            .map_err(|low| crate::service::error::ServiceError::Unavailable(low.to_string()))?;
        Ok(self.proposer.propose(events).await?)
    }

    pub fn set_link_connected(&self, link: &str, connected: bool) {
        if let Ok(mut map) = self.link_connected.lock() {
            map.insert(link.to_string(), connected);
        }
    }

    pub fn is_link_connected(&self, link: &str) -> bool {
        self.link_connected
            .lock()
            .map(|m| m.get(link).copied().unwrap_or(false))
            .unwrap_or(false)
    }

    /// The dispatch policy as of this node's projection. Parsed once per version; a stored policy
    /// this node cannot read (a newer format) leaves the last one it could in force, loudly.
    pub fn policy(&self) -> Arc<DispatchPolicy> {
        let cached = match self.policy_cache.lock() {
            Ok(c) => c.clone(),
            Err(_) => return Arc::new(DispatchPolicy::default()),
        };
        match self.reader.policy_version() {
            Ok(version) if version == cached.0 => return cached.1,
            Ok(_) => {}
            Err(e) => {
                tracing::error!("reading the dispatch policy's version: {e}");
                return cached.1;
            }
        }
        let record = match self.reader.policy() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("reading the dispatch policy: {e}");
                return cached.1;
            }
        };
        match DispatchPolicy::from_stored(&record.document) {
            Ok(policy) => {
                let policy = Arc::new(policy);
                if let Ok(mut c) = self.policy_cache.lock() {
                    *c = (record.version, policy.clone());
                }
                policy
            }
            Err(e) => {
                tracing::error!(version = record.version, "dispatch policy not applied: {e}");
                cached.1
            }
        }
    }

    /// Waits (at most `limit`) until this node has applied every write acknowledged anywhere
    /// before the call, so that what it does not find it may call missing. A follower learns
    /// that an entry is committed only with the leader's next append, so its own commit index
    /// can miss a write another node acknowledged a moment ago: the target is the leader's read
    /// index instead (etcd's ReadIndex). An error says why the node could not catch up: no
    /// leader confirmed an index in time, or applying that far took too long.
    pub async fn catch_up(&self, limit: std::time::Duration) -> Result<(), String> {
        let start = std::time::Instant::now();
        let target = match self.proposer.read_index(limit).await {
            Ok(index) => index,
            Err(herald_raft::network::ProposeError::Unsupported(why)) => {
                // A leader that predates read indexes (a rolling upgrade): the best this node
                // can do is apply what it knows is committed, as nodes of that version did.
                tracing::debug!("no read index from the leader ({why}); using the local commit");
                self.raft
                    .metrics()
                    .borrow_watched()
                    .local_committed
                    .map(|l| l.index)
                    .unwrap_or(0)
            }
            Err(e) => return Err(format!("no leader confirmed what is committed: {e}")),
        };
        let mut applied = self.applied.clone();
        let left = limit.saturating_sub(start.elapsed());
        let reached = tokio::time::timeout(left, applied.wait_for(|a| *a >= target))
            .await
            .is_ok_and(|r| r.is_ok());
        if reached {
            Ok(())
        } else {
            Err(format!(
                "applied up to entry {} of the {target} committed",
                *self.applied.borrow()
            ))
        }
    }

    /// Waits (at most `limit`) until `seen` holds on this node's projection: after a write the
    /// leader applied, a follower that forwarded it learns of the commit only a moment later.
    /// Returns whether it holds.
    pub async fn applied_until(
        &self,
        limit: std::time::Duration,
        mut seen: impl FnMut() -> bool,
    ) -> bool {
        let mut applied = self.applied.clone();
        let waited = tokio::time::timeout(limit, async {
            loop {
                if seen() {
                    return;
                }
                if applied.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        waited.is_ok() && seen()
    }

    /// The names of the links configured on this node.
    pub fn link_names(&self) -> Vec<&str> {
        self.config.links.iter().map(|l| l.name.as_str()).collect()
    }
}
