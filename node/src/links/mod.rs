//! The carrier links a node runs: the worker that takes queued messages and sends them, the
//! order classes are served in, each connection slot's share of the queues, the adaptive rate
//! under flow control, and link status. It knows no client transport.

pub mod adaptive_rate;
pub mod class_pick;
pub mod queue_share;
pub mod status;
pub mod worker;
