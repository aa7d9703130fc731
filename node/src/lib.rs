//! Herald's node: the library behind the `herald` binary, laid out by role. Tests and fuzz
//! targets reach the service layer through it.
//!
//! - `service/`: the operations every transport offers, their validation and their errors; it
//!   names no wire type (no tonic, axum, protobuf or protocol PDU).
//! - `grpc/`: the gRPC transport — decode a request, call the service, map its error.
//! - `policy/`: the dispatch policy (classes, routes, quotas, reply rules) and routing by number.
//! - `cluster/`: what keeps the cluster's writes and timers going (proposer, placement, timers).
//! - `links/`: the carrier links this node runs.
//! - `cli/`: the command line (a node, the dev cluster, simulators, client commands).
//! - `tls/`: certificates, the reloadable TLS listener, peer and client connectors;
//!   `transport_limits.rs`: the ports' ceilings (sizes, streams, connections, timeouts).
//! - `node.rs` starts a node; `config.rs` reads its file; `context.rs` is what every part shares.

pub mod build_info;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod context;
pub mod disk_space;
pub mod grpc;
pub mod health;
pub mod http;
pub mod links;
pub mod log_sync;
pub mod metrics;
pub mod node;
pub mod policy;
pub mod service;
pub mod tls;
pub mod transport_limits;
pub mod version;
