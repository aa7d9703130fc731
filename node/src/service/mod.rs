//! The operations Herald offers to every transport, with their validation. Nothing here names a
//! wire type: no tonic, axum, protobuf or protocol PDU. Transports decode, call and map errors.

pub mod quota;
pub mod validate;
