//! `herald debug …`: read-only diagnosis of a *stopped* node's data directory (RocksDB is locked
//! while the node runs). Used by the fault-injection checker to compare the nodes' Raft logs.
//!
//! Nothing here writes to the database.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct LogHashesArgs {
    /// The node's `data-dir` (as in its config file).
    #[arg(long)]
    pub data_dir: PathBuf,
}

/// Prints one JSON object: the committed and last purged indices and, for every stored entry, its
/// index, log id and a hash of its stored bytes. A directory that is missing or holds no node's
/// database is refused, and nothing is created in either case.
pub fn log_hashes(args: LogHashesArgs) -> anyhow::Result<()> {
    if !args.data_dir.is_dir() {
        anyhow::bail!(
            "--data-dir {}: no such directory (give a stopped node's data-dir)",
            args.data_dir.display()
        );
    }
    let path = args.data_dir.join("db");
    let db = herald_raft::db::open_read_only(&path).map_err(|e| {
        anyhow::anyhow!(
            "--data-dir {}: not a node's data directory: {e}",
            args.data_dir.display()
        )
    })?;
    let digest = herald_raft::log_store::log_digest(&db)?;
    println!("{}", serde_json::to_string(&digest)?);
    Ok(())
}
