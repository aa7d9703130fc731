//! Herald's replicated core: the event log (openraft with a RocksDB log store), the state machine
//! that projects events into RocksDB, and the Raft network over gRPC.
//!
//! This crate knows the log and the projection, never a socket to a carrier: sending is the node's
//! job, which reads the projection and proposes events through [`proposer`]-style callers.

pub mod admission;
pub mod clients;
pub mod db;
pub mod durable_fs;
pub mod events;
mod fan_out;
pub mod idempotency;
pub mod keys;
pub mod log_store;
mod log_tail;
pub mod network;
pub mod observe;
pub mod projection;
pub mod reader;
mod record_cache;
pub mod records;
pub mod replies;
pub mod rocksdb_version;
pub mod snapshot;
pub mod state_machine;
pub mod trace;
pub mod types;
