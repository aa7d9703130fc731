//! The facts a protocol trace keeps about the PDUs of one segment: which request went out under
//! which sequence number and when, and what came back (the response's command and raw status, or
//! why nothing did). Every client reports them with its submit outcome and its delivery reports,
//! so the node can record them in the events it writes anyway — this crate only names them.
//!
//! Command names are the protocol's own spelling (`CMPP_SUBMIT`, `submit_sm`, `SGIP_SUBMIT`…), so
//! an operator can hold a trace line against the carrier's specification or its logs.

use crate::client::SubmitOutcome;
use crate::session::SendError;

/// One submit request and its answer, as they passed on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitTrace {
    /// The request's command name; empty when no request could be built (refused before sending).
    pub command: &'static str,
    /// The request's sequence number; 0 when it was never written to a connection.
    pub sequence: u32,
    /// When the request was handed to the connection (ms since the Unix epoch); 0 = never.
    pub sent_at_ms: u64,
    /// The response's command name; empty without a response.
    pub response: String,
    /// The response's raw status or result code (0 = success in every protocol).
    pub status: u32,
}

impl SubmitTrace {
    /// A request named `command` that never reached the wire.
    pub fn unsent(command: &'static str) -> SubmitTrace {
        SubmitTrace {
            command,
            ..SubmitTrace::default()
        }
    }
}

/// What one submit came to: its trace, and the outcome the caller acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub trace: SubmitTrace,
    pub result: Result<SubmitOutcome, SendError>,
}

impl Submitted {
    /// A segment refused before anything was sent (see [`SubmitOutcome::not_sent`]).
    pub(crate) fn refused(command: &'static str, outcome: SubmitOutcome) -> Submitted {
        Submitted {
            trace: SubmitTrace::unsent(command),
            result: Ok(outcome),
        }
    }
}

/// The request PDU a delivery report arrived in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboundPdu {
    /// The command name (`CMPP_DELIVER`, `deliver_sm`, `SGIP_REPORT`…); empty when unknown.
    pub command: &'static str,
    pub sequence: u32,
    /// When it was read (ms since the Unix epoch).
    pub received_at_ms: u64,
}

impl InboundPdu {
    pub fn now(command: &'static str, sequence: u32) -> InboundPdu {
        InboundPdu {
            command,
            sequence,
            received_at_ms: now_ms(),
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
