//! What keeps the cluster's writes going: the proposer (group commit and forwarding to the
//! leader), link placement on the leader, draining, the leader's timers, and the cluster clock
//! they all read. It knows no transport.

pub mod clock;
pub mod drain;
pub mod placement;
pub mod proposer;
pub mod timers;
pub mod versions;
