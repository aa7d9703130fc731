//! The gRPC transport: `herald.v1.Messaging`, `Cluster` and `Admin`. Each handler decodes its
//! request, calls the service layer and maps the answer to protobuf; it holds no business rule.
//! `convert.rs` is the one place protobuf and service types meet, including the gRPC code and
//! message of every service error.

pub mod admin;
pub mod cluster;
pub mod convert;
pub mod health;
pub mod messaging;
pub mod replies;
