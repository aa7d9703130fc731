//! What every part of a running node shares: its configuration, its Raft handle, the proposer, and
//! read access to the projection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use herald_raft::reader::ProjectionReader;
use herald_raft::types::{NodeId, Raft};
use tokio::sync::watch;

use crate::config::NodeConfig;
use crate::proposer::Proposer;

pub struct NodeContext {
    pub config: NodeConfig,
    pub raft: Raft,
    pub proposer: Proposer,
    pub reader: ProjectionReader,
    /// Last log index applied to the local projection.
    pub applied: watch::Receiver<u64>,
    /// Whether each link this node runs is connected to its carrier now.
    pub link_connected: Mutex<HashMap<String, bool>>,
}

pub type Ctx = Arc<NodeContext>;

impl NodeContext {
    pub fn id(&self) -> NodeId {
        self.config.node_id
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
}
