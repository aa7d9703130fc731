//! `herald backup`'s operation: a consistent backup of the cluster's state taken on this node
//! once it has applied everything acknowledged before the call (the leader's read index), in the
//! snapshot layout with a header (`herald_raft::snapshot::backup`). The backup is written to a
//! temporary file in the data directory, removed once sent; audited; admins only.
//!
//! Not here: restoring (`herald restore` seeds a stopped node's data directory offline).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use herald_raft::events::{event::Kind, AdminAction, Event};
use herald_raft::snapshot::backup::{BackupHeader, FORMAT_LEVEL};

use super::caller::Caller;
use super::error::ServiceError;
use super::permissions::Permission;
use crate::context::Ctx;

/// How long the node may take to catch up with the leader before the backup.
const CATCH_UP: Duration = Duration::from_secs(10);

/// A backup's data on this node's disk, with its header; the file goes when this is dropped.
pub struct TakenBackup {
    pub header: BackupHeader,
    pub data: PathBuf,
}

impl Drop for TakenBackup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.data);
    }
}

pub async fn take(ctx: &Ctx, caller: &Caller) -> Result<TakenBackup, ServiceError> {
    caller.require(Permission::Backup)?;
    ctx.catch_up(CATCH_UP)
        .await
        .map_err(|why| ServiceError::Unavailable(format!("backup: not caught up: {why}")))?;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = ctx.config.data_dir.join(format!(
        "backup-{}-{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let ctx2 = ctx.clone();
    let target = path.clone();
    let exported = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::create(&target)?;
        let result = ctx2.reader.export_backup(&file)?;
        file.sync_all()?;
        Ok::<_, std::io::Error>(result)
    })
    .await
    .map_err(|e| ServiceError::Internal(format!("backup: {e}")))?;
    let (meta, data_len, sha256) = match exported {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(ServiceError::Internal(format!(
                "backup: writing {}: {e}",
                path.display()
            )));
        }
    };
    let (index, term) = meta
        .last_log_id
        .as_ref()
        .map(|l| (l.index, l.leader_id.term))
        .unwrap_or((0, 0));
    let taken = TakenBackup {
        header: BackupHeader {
            format_level: FORMAT_LEVEL,
            cluster: ctx
                .config
                .tls
                .as_ref()
                .map(|t| t.cluster.clone())
                .unwrap_or_default(),
            index,
            term,
            created_at_ms: ctx.clock.now_ms(),
            data_len,
            sha256,
        },
        data: path,
    };
    let event = Event::new(
        ctx.clock.now_ms(),
        Kind::AdminAction(AdminAction {
            action: "cluster.backup".into(),
            node: ctx.id(),
            detail: format!(
                "up to index {} taken on node {}",
                taken.header.index,
                ctx.id()
            ),
        }),
    )
    .by(caller.principal());
    ctx.propose(vec![event]).await?;
    Ok(taken)
}
