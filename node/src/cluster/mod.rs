//! What keeps the cluster's writes going: the proposer (group commit and forwarding to the
//! leader), link placement on the leader, draining, and the leader's timers. It knows no transport.

pub mod drain;
pub mod placement;
pub mod proposer;
pub mod timers;
pub mod versions;
