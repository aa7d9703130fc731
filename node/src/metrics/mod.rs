//! Prometheus metrics of one node: the families ([`families`]), the values read from state at
//! scrape time ([`scrape`]), and the Raft gauges kept current by watching openraft's metrics
//! ([`raft_watch`]). Hot-path counters and histograms are recorded where things happen through
//! the handles of [`Metrics`]; nothing here decides anything about messages.

pub mod families;
pub mod link;
pub mod observer;
pub mod raft_watch;
pub mod scrape;

pub use families::{class_label, Labels, Metrics};
