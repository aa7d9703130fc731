//! CMPP 3.0 and 2.0 (China Mobile Peer to Peer) on the wire: header, PDUs, login authentication, Msg_Id
//! packing and stream framing. Sessions (windows, heartbeats, reconnects) live in
//! [`crate::session`] and [`crate::client`]; this module only turns bytes into values and back.

pub mod auth;
pub mod codec;
pub mod header;
pub mod msgid;
pub mod pdu;

#[cfg(test)]
mod tests;

pub use codec::CmppCodec;
pub use header::{
    command, CmppError, Header, Version, HEADER_LEN, MAX_PDU_LEN, VERSION_2_0, VERSION_3_0,
};
pub use msgid::{MsgId, MsgIdGenerator};
pub use pdu::{
    Body, Connect, ConnectResp, Deliver, DeliverContent, DeliverResp, Pdu, StatusReport, Submit,
    SubmitResp,
};

/// Whether a non-zero SUBMIT_RESP Result is worth retrying, and what it means [CMPP3 §8.4.3].
///
/// 8 (flow control) is the carrier asking us to slow down; 3 (duplicate sequence) cannot recur
/// because a retry carries a new Sequence_Id. Everything else describes the message itself or the
/// account's configuration, so resending the same bytes would fail the same way.
pub fn submit_result(code: u32) -> (bool, &'static str) {
    match code {
        0 => (false, "accepted"),
        1 => (false, "message structure error"),
        2 => (false, "command id error"),
        3 => (true, "duplicate sequence id"),
        4 => (false, "message length error"),
        5 => (false, "fee code error"),
        6 => (false, "message too long"),
        7 => (false, "service id error"),
        8 => (true, "flow control"),
        9 => (false, "gateway does not serve this fee terminal"),
        10 => (false, "Src_Id error"),
        11 => (false, "Msg_src error"),
        12 => (false, "Fee_terminal_Id error"),
        13 => (false, "Dest_terminal_Id error"),
        _ => (false, "other error"),
    }
}
