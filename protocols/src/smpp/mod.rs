//! SMPP 3.3, 3.4 and 5.0 (Short Message Peer-to-Peer) on the wire: header, PDUs, TLVs, stream
//! framing, receipt text and message-id formats. Sessions (windows, heartbeats, reconnects) live
//! in [`crate::session`] and [`crate::smpp_client`]; text encoding in [`crate::gsm7`]. This
//! module only turns bytes into values and back.
//!
//! The three versions share one layout: 3.3 has no TLVs and no bind_transceiver/data_sm, 5.0 adds
//! TLVs (congestion_state) on responses. The codec accepts the union; which PDUs and TLVs a
//! session may send to its peer is the client's and simulator's decision.

pub mod codec;
pub mod header;
pub mod pdu;
pub mod receipt;
pub mod tlv;

#[cfg(test)]
mod tests;

pub use codec::SmppCodec;
pub use header::{
    bind_status, command, status, submit_status, Header, SmppError, HEADER_LEN, MAX_PDU_LEN,
    VERSION_3_3, VERSION_3_4, VERSION_5_0,
};
pub use pdu::{esm, Bind, BindKind, BindResp, Body, DataSm, Outbind, Pdu, Sm, SmResp};
pub use receipt::{convert_id, format_receipt, parse_receipt, IdFormat, ReceiptText};
pub use tlv::{message_state, tag, Tlv};
