//! The gRPC transport: `herald.v1.Messaging`, `Cluster` and `Admin`. Each handler decodes its
//! request, calls the service layer and maps the answer to protobuf; it holds no business rule.

pub mod admin;
pub mod messaging;
pub mod replies;
pub mod statuses;
