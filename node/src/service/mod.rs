//! The operations Herald offers to every transport, with their validation. Nothing here names a
//! wire type: no tonic, axum, protobuf or protocol PDU. A transport decodes its request into the
//! types here, calls the operation with the [`Caller`] and maps the answer and the
//! [`ServiceError`] to its own wire: a rule written in a transport is a rule the others miss.
//!
//! - `submit`: one submission or a batch; `validate` checks them, `quota` admits them.
//! - `messages`: one message with its copies, many at once, a trace, a cancellation.
//! - `view`: how a message and its timeline read (the wording every transport shows).
//! - `replies`: subscribers' replies, listed or followed.
//! - `admin`: the dispatch policy and draining nodes; `cluster`: the cluster's status.

pub mod admin;
pub mod caller;
pub mod cluster;
pub mod error;
pub mod messages;
pub mod quota;
pub mod replies;
pub mod submit;
pub mod validate;
pub mod view;

pub use caller::Caller;
pub use error::ServiceError;
