//! One handle for a carrier link of any protocol, so the node dispatches without knowing which
//! protocol a link speaks. Each protocol's client keeps the same shape (start, split, submit,
//! is_connected, shutdown); this enum only routes the calls.
//!
//! Adding a protocol: a [`Protocol`] variant with its names, a [`LinkClient`] variant, and one arm
//! in each method below.

use std::fmt;
use std::str::FromStr;

use tokio::sync::mpsc;

use crate::client::{
    ClientEvent, CmppClient, LinkSettings, OutboundSegment, SendError, SubmitOutcome,
};
use crate::text::{split_text, Segment};

/// A carrier protocol (and version) a link can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// CMPP 3.0 (China Mobile).
    Cmpp3,
}

impl Protocol {
    /// Every accepted spelling, for error messages.
    pub const NAMES: &'static [&'static str] = &["cmpp", "cmpp3"];
}

impl FromStr for Protocol {
    type Err = UnknownProtocol;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cmpp" | "cmpp3" | "cmpp30" | "cmpp-3.0" => Ok(Protocol::Cmpp3),
            _ => Err(UnknownProtocol(s.to_string())),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Cmpp3 => "cmpp3",
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown protocol {0:?} (known: {names})", names = Protocol::NAMES.join(", "))]
pub struct UnknownProtocol(pub String);

/// A running link of some protocol. Cloning shares the link.
#[derive(Clone)]
pub enum LinkClient {
    Cmpp(CmppClient),
}

impl LinkClient {
    /// Starts the link's connection task (connect, log in, reconnect with backoff until shutdown).
    pub fn start(
        protocol: Protocol,
        settings: LinkSettings,
    ) -> (LinkClient, mpsc::Receiver<ClientEvent>) {
        match protocol {
            Protocol::Cmpp3 => {
                let (client, events) = CmppClient::start(settings);
                (LinkClient::Cmpp(client), events)
            }
        }
    }

    /// Splits a message's text into the parts this protocol sends (encoding and part sizes differ
    /// between protocols). Deterministic in the number of parts, so a resend has the same segments.
    pub fn split(&self, text: &str) -> Vec<Segment> {
        match self {
            LinkClient::Cmpp(_) => split_text(text),
        }
    }

    pub async fn submit(&self, segment: OutboundSegment) -> Result<SubmitOutcome, SendError> {
        match self {
            LinkClient::Cmpp(c) => c.submit(segment).await,
        }
    }

    pub fn is_connected(&self) -> bool {
        match self {
            LinkClient::Cmpp(c) => c.is_connected(),
        }
    }

    pub async fn shutdown(&self) {
        match self {
            LinkClient::Cmpp(c) => c.shutdown().await,
        }
    }
}
