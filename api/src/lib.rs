//! Herald's wire contract: the protobuf messages and gRPC services clients and nodes speak.
//!
//! This is the only crate that knows the generated types; the node converts them to and from the
//! domain types of `herald-raft` at its API boundary.

pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("herald.v1");
}
