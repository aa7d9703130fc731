//! Herald's carrier protocols: wire codecs, text encoding and client sessions for the operators'
//! SMS gateways (CMPP 3.0 today), plus carrier simulators for tests.
//!
//! This crate knows bytes and sessions, never Raft: it does not persist anything, does not know
//! about messages' lifecycle beyond one submit and its report, and does not retry on its own.
//! The node crate wires its events into the replicated log.
//!
//! - [`cmpp`]: CMPP 3.0 PDUs, framing, authentication and Msg_Id packing.
//! - [`text`]: choosing an encoding, splitting long text, decoding received content.
//! - [`session`]: the protocol-independent link engine (window, heartbeat, reconnect).
//! - [`client`]: the CMPP client built on that engine.
//! - [`sim`]: gateway simulators speaking the server side over real TCP.

pub mod client;
pub mod cmpp;
pub mod link;
pub mod session;
pub mod sim;
pub mod text;

pub use client::{
    ClientEvent, CmppClient, DeliveryReport, LinkSettings, MoMessage, OutboundSegment, SendError,
    SubmitOutcome,
};
pub use text::{decode_text, split_text, Segment};
