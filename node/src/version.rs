//! What this build can do across versions: the newest log format level it applies, and how it
//! describes itself to its peers (`Internal.NodeInfo`) and operators. The build's version and
//! commit are in `build_info`; the cluster version (the level in force) is in the log
//! (`Ctx::cluster_level`).

use crate::build_info::{COMMIT, VERSION};

/// The newest log format level this build applies (see `herald_raft::events::FORMAT_LEVEL`).
pub const FORMAT_LEVEL: u32 = herald_raft::events::FORMAT_LEVEL;

/// How `herald --version`, the logs and `herald cluster status` show this build.
pub fn describe() -> String {
    format!("{VERSION} ({COMMIT})")
}

/// What this node answers to `Internal.NodeInfo`.
pub fn node_info(node_id: u64) -> herald_api::v1::NodeInfoReply {
    herald_api::v1::NodeInfoReply {
        node_id,
        version: VERSION.into(),
        commit: COMMIT.into(),
        format_level: FORMAT_LEVEL,
        // Filled in when answering (`InternalService::node_info`).
        wall_clock_ms: 0,
    }
}
