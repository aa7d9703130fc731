//! Herald's carrier protocols: wire codecs, text encoding and client sessions for the operators'
//! SMS gateways (CMPP 3.0 today), plus carrier simulators for tests.
//!
//! This crate knows bytes and sessions, never Raft: it does not persist anything, does not know
//! about messages' lifecycle beyond one submit and its report, and does not retry on its own.
//! The node crate wires its events into the replicated log.
//!
//! - [`cmpp`]: CMPP 3.0 and 2.0 PDUs, framing, authentication and Msg_Id packing.
//! - [`text`]: choosing an encoding, splitting long text, decoding received content.
//! - [`signature`]: a link's signature (【…】), who adds it and where; the splitters count it.
//! - [`session`]: the protocol-independent link engine (window, heartbeat, reconnect).
//! - [`client`]: the CMPP client built on that engine.
//! - [`sgip`], [`sgip_client`]: SGIP 1.2 PDUs and framing; the SGIP client with its listener for
//!   the gateway's own connection.
//! - [`smgp`], [`smgp_client`]: SMGP 3.0.3 (China Telecom) PDUs, TLVs and framing; its client.
//! - [`cngp`], [`cngp_client`]: CNGP 2.0 (China Netcom) PDUs, TLVs and framing; its client.
//! - [`mo`]: mobile-originated messages as received, one part per deliver, for every client
//!   (the node joins long messages' parts in its replicated log).
//! - [`framing`]: cutting a byte stream into length-prefixed frames, for every codec.
//! - [`telecom`]: what SMGP and CNGP share (10-byte MsgID, login MD5, TLV framing, report text).
//! - [`trace`]: the PDU facts (command, sequence, status, time) each submit and report carries,
//!   for the node's protocol trace.
//! - [`sim`]: gateway simulators speaking the server side over real TCP.

pub mod ack;
pub mod client;
pub mod cmpp;
pub mod cngp;
pub mod cngp_client;
/// Test helpers the codecs' unit tests share.
#[cfg(test)]
mod codec_tests;
pub mod framing;
pub mod gsm7;
pub mod link;
pub mod mo;
pub mod session;
pub mod sgip;
pub mod sgip_client;
pub mod signature;
pub mod sim;
pub mod smgp;
pub mod smgp_client;
pub mod smpp;
pub mod smpp_client;
pub mod telecom;
pub mod text;
pub mod trace;

pub use client::{
    ClientEvent, CmppClient, DeliveryReport, LinkSettings, OutboundSegment, SendError,
    SubmitOutcome,
};
pub use mo::MoPart;
pub use text::{decode_text, split_text, Segment};
