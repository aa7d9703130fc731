//! Snapshots of the projection, on disk and on the wire, with memory bounded whatever the
//! projection holds: a snapshot is built from a RocksDB view into a file record by record
//! ([`build`]), moved to a follower in chunks ([`transfer`]) and installed from the file in
//! bounded batches, crash safe ([`install`]). Its bytes are described in [`format`], its files in
//! [`file`].
//!
//! Why files and streams: a projection of 700,000 messages made a 532 MB snapshot, and a node that
//! held it in one buffer (to build, send, receive or install it) peaked near 0.9 GB resident; the
//! goal is ten million messages under 1 GiB.

pub mod backup;
pub mod build;
pub mod file;
pub mod format;
pub mod install;
pub mod transfer;

pub use file::{SnapshotDir, SnapshotFile};
