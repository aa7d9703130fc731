//! The operations Herald offers to every transport, with their validation. Nothing here names a
//! wire type: no tonic, axum, protobuf or protocol PDU. A transport decodes its request into the
//! types here, calls the operation with the [`Caller`] and maps the answer and the
//! [`ServiceError`] to its own wire: a rule written in a transport is a rule the others miss.
//!
//! - `submit`: one submission or a batch; `validate` checks them, `quota` admits them.
//! - `messages`: one message with its copies, many at once, a trace, a cancellation.
//! - `view`: how a message and its timeline read (the wording every transport shows).
//! - `replies`: subscribers' replies, listed or followed.
//! - `admin`: the dispatch policy and draining nodes; `cluster`: the cluster's status;
//!   `membership`: adding and removing Raft members; `backup`: a backup of the whole state.
//! - `auth`: who a call is (its API key); `caller`: the authenticated caller; `permissions`:
//!   what each role may do (every operation names the permission it needs).
//! - `clients`: client systems and their keys; `audit`: the audit trail.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod caller;
pub mod clients;
pub mod cluster;
pub mod error;
pub mod membership;
pub mod messages;
pub mod permissions;
pub mod quota;
pub mod replies;
pub mod submit;
pub mod validate;
pub mod view;

pub use caller::Caller;
pub use error::ServiceError;
