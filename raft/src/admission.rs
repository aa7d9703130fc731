//! Whether this node may vote yet. A node that started on an empty data directory without the
//! explicit bootstrap switch has forgotten (or never had) the entries and votes it may once have
//! acknowledged, so it must not help elect a leader until the cluster has admitted it again as a
//! learner (`herald cluster add-node`): until then it refuses vote requests and asks nobody for
//! votes. It still accepts the leader's appends and snapshots, so it catches up meanwhile.
//!
//! The state is a marker file in the data directory, so a node that crashes while waiting is
//! still waiting when it restarts. This module decides nothing about membership: the node clears
//! the marker when its membership shows it as a learner.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The marker's file name in the data directory.
pub const MARKER: &str = "awaiting-admission";

/// Shared by the node's Raft network (outgoing vote requests) and internal service (incoming
/// ones).
#[derive(Debug)]
pub struct Admission {
    awaiting: AtomicBool,
    marker: PathBuf,
}

#[derive(Debug, thiserror::Error)]
#[error("{action} the admission marker {}: {source}", path.display())]
pub struct AdmissionError {
    action: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

impl Admission {
    /// The state recorded in `data_dir` (awaiting when the marker is there).
    pub fn open(data_dir: &Path) -> Arc<Admission> {
        let marker = data_dir.join(MARKER);
        Arc::new(Admission {
            awaiting: AtomicBool::new(marker.exists()),
            marker,
        })
    }

    /// A node that is a voter by construction (tests, tools): never awaiting, no file.
    pub fn admitted_always() -> Arc<Admission> {
        Arc::new(Admission {
            awaiting: AtomicBool::new(false),
            marker: PathBuf::new(),
        })
    }

    pub fn is_awaiting(&self) -> bool {
        self.awaiting.load(Ordering::SeqCst)
    }

    /// Records (durably, before returning) that this node waits to be added.
    pub fn begin_waiting(&self) -> Result<(), AdmissionError> {
        let err = |action, source| AdmissionError {
            action,
            path: self.marker.clone(),
            source,
        };
        let file = std::fs::File::create(&self.marker).map_err(|e| err("creating", e))?;
        file.sync_all().map_err(|e| err("syncing", e))?;
        sync_parent(&self.marker).map_err(|e| err("syncing the folder of", e))?;
        self.awaiting.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// The cluster has admitted this node (as a learner): it votes from now on.
    pub fn admitted(&self) -> Result<(), AdmissionError> {
        if !self.is_awaiting() {
            return Ok(());
        }
        match std::fs::remove_file(&self.marker) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(AdmissionError {
                    action: "removing",
                    path: self.marker.clone(),
                    source: e,
                })
            }
        }
        sync_parent(&self.marker).map_err(|e| AdmissionError {
            action: "syncing the folder of",
            path: self.marker.clone(),
            source: e,
        })?;
        self.awaiting.store(false, Ordering::SeqCst);
        Ok(())
    }
}

use crate::durable_fs::sync_parent;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_survives_a_restart_until_admitted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = Admission::open(dir.path());
        assert!(!a.is_awaiting());
        a.begin_waiting().expect("marker written");
        assert!(a.is_awaiting());
        let reopened = Admission::open(dir.path());
        assert!(reopened.is_awaiting(), "a restart keeps waiting");
        reopened.admitted().expect("marker removed");
        assert!(!reopened.is_awaiting());
        assert!(!Admission::open(dir.path()).is_awaiting());
    }
}
