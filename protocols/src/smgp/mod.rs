//! SMGP 3.0.3 (China Telecom's Short Message Gateway Protocol) on the wire: the 12-byte header,
//! the PDUs an SP exchanges with a gateway (Login, Submit, Deliver, Active_Test, Exit and their
//! responses), the 3.0.3 TLVs and stream framing [SMGP].
//!
//! This module only turns bytes into values and back. Sessions are [`crate::smgp_client`] on the
//! shared [`crate::session`] engine; the MsgID, authentication, TLV framing and report text it
//! shares with CNGP live in [`crate::telecom`].

pub mod pdu;

#[cfg(test)]
mod tests;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

pub use crate::telecom::{CodecError as SmgpError, MsgId10, Receipt, Tlvs};
pub use pdu::{
    Body, Deliver, DeliverContent, DeliverResp, Login, LoginResp, Pdu, Submit, SubmitResp,
};

use crate::framing;
use crate::telecom::{wire, TlvKind, TlvSpec};

/// PacketLength 4, RequestID 4, SequenceID 4.
pub const HEADER_LEN: usize = 12;
/// Largest PDU accepted. The largest legal one is a Submit to 100 numbers with 255 bytes of
/// content and every TLV (about 2.6 KiB).
pub const MAX_PDU_LEN: usize = 4096;
/// ClientVersion / ServerVersion for SMGP 3.0.
pub const VERSION_3_0: u8 = 0x30;
/// DestTermIDCount may not exceed 100.
pub const MAX_DESTINATIONS: usize = 100;
/// Width of SrcTermID, ChargeTermID and DestTermID.
pub const TERM_ID_LEN: usize = 21;

/// LoginMode values.
pub mod login_mode {
    /// The SP only sends (MT).
    pub const SEND: u8 = 0;
    /// The SP only receives (MO and reports).
    pub const RECEIVE: u8 = 1;
    /// Both on one connection.
    pub const TRANSMIT: u8 = 2;
}

/// RequestID values.
pub mod command {
    pub const LOGIN: u32 = 0x0000_0001;
    pub const LOGIN_RESP: u32 = 0x8000_0001;
    pub const SUBMIT: u32 = 0x0000_0002;
    pub const SUBMIT_RESP: u32 = 0x8000_0002;
    pub const DELIVER: u32 = 0x0000_0003;
    pub const DELIVER_RESP: u32 = 0x8000_0003;
    pub const ACTIVE_TEST: u32 = 0x0000_0004;
    pub const ACTIVE_TEST_RESP: u32 = 0x8000_0004;
    pub const EXIT: u32 = 0x0000_0006;
    pub const EXIT_RESP: u32 = 0x8000_0006;
}

/// TLV tags of SMGP 3.0.3.
pub mod tag {
    pub const TP_PID: u16 = 0x0001;
    pub const TP_UDHI: u16 = 0x0002;
    pub const LINK_ID: u16 = 0x0003;
    pub const CHARGE_USER_TYPE: u16 = 0x0004;
    pub const CHARGE_TERM_TYPE: u16 = 0x0005;
    pub const CHARGE_TERM_PSEUDO: u16 = 0x0006;
    pub const DEST_TERM_TYPE: u16 = 0x0007;
    pub const DEST_TERM_PSEUDO: u16 = 0x0008;
    pub const PK_TOTAL: u16 = 0x0009;
    pub const PK_NUMBER: u16 = 0x000A;
    pub const SUBMIT_MSG_TYPE: u16 = 0x000B;
    pub const SP_DEAL_RESULT: u16 = 0x000C;
    pub const SRC_TERM_TYPE: u16 = 0x000D;
    pub const SRC_TERM_PSEUDO: u16 = 0x000E;
    pub const NODES_COUNT: u16 = 0x000F;
    pub const MSG_SRC: u16 = 0x0010;
    pub const SRC_TYPE: u16 = 0x0011;
    pub const M_SERVICE_ID: u16 = 0x0012;
}

const fn one(tag: u16, name: &'static str) -> TlvSpec {
    TlvSpec {
        tag,
        name,
        kind: TlvKind::U8,
    }
}

const fn text(tag: u16, name: &'static str, max: usize, fixed: bool) -> TlvSpec {
    TlvSpec {
        tag,
        name,
        kind: TlvKind::Text { max, fixed },
    }
}

/// The SMGP 3.0.3 TLV table. Pseudo terminal ids are variable-length in the spec; 255 bounds
/// them here.
pub const TLVS: &[TlvSpec] = &[
    one(tag::TP_PID, "TP_pid"),
    one(tag::TP_UDHI, "TP_udhi"),
    text(tag::LINK_ID, "LinkID", 20, true),
    one(tag::CHARGE_USER_TYPE, "ChargeUserType"),
    one(tag::CHARGE_TERM_TYPE, "ChargeTermType"),
    text(tag::CHARGE_TERM_PSEUDO, "ChargeTermPseudo", 255, false),
    one(tag::DEST_TERM_TYPE, "DestTermType"),
    text(tag::DEST_TERM_PSEUDO, "DestTermPseudo", 255, false),
    one(tag::PK_TOTAL, "PkTotal"),
    one(tag::PK_NUMBER, "PkNumber"),
    one(tag::SUBMIT_MSG_TYPE, "SubmitMsgType"),
    one(tag::SP_DEAL_RESULT, "SPDealResult"),
    one(tag::SRC_TERM_TYPE, "SrcTermType"),
    text(tag::SRC_TERM_PSEUDO, "SrcTermPseudo", 255, false),
    one(tag::NODES_COUNT, "NodesCount"),
    text(tag::MSG_SRC, "MsgSrc", 8, true),
    one(tag::SRC_TYPE, "SrcType"),
    text(tag::M_SERVICE_ID, "MServiceID", 21, true),
];

/// What an SMGP Status means, and whether resending the same message may succeed.
///
/// SMGP has no flow-control code: 1 (system busy) and 75 (over the account's sending limit) are
/// the gateway asking us to send less, and 12 (duplicate sequence) cannot recur because a retry
/// carries a new SequenceID. Everything else describes the message or the account.
pub fn status(code: u32) -> (bool, &'static str) {
    match code {
        0 => (false, "success"),
        1 => (true, "system busy"),
        2 => (false, "maximum number of connections exceeded"),
        10 => (false, "message structure error"),
        11 => (false, "command id error"),
        12 => (true, "duplicate sequence id"),
        20 => (false, "IP address error"),
        21 => (false, "authentication error"),
        22 => (false, "version too high"),
        30 => (false, "illegal MsgType"),
        31 => (false, "illegal Priority"),
        32 => (false, "illegal FeeType"),
        33 => (false, "illegal FeeCode"),
        34 => (false, "illegal MsgFormat"),
        35 => (false, "illegal time format"),
        36 => (false, "illegal MsgLength"),
        37 => (false, "validity period expired"),
        39 => (false, "routing error"),
        40 => (false, "illegal FixedFee"),
        43 => (false, "illegal ServiceID"),
        44 => (false, "illegal ValidTime"),
        45 => (false, "illegal AtTime"),
        46 => (false, "illegal SrcTermID"),
        47 => (false, "illegal DestTermID"),
        48 => (false, "illegal ChargeTermID"),
        49 => (false, "illegal SP code"),
        75 => (true, "sending limit exceeded"),
        _ => (false, "other error"),
    }
}

/// Framing of SMGP PDUs on a TCP stream for `tokio_util::codec::Framed`. Any error is fatal to
/// the stream: after a bad frame the byte stream cannot be trusted.
#[derive(Debug, Default, Clone, Copy)]
pub struct SmgpCodec;

type Frames = wire::Frames<HEADER_LEN, MAX_PDU_LEN>;

impl Decoder for SmgpCodec {
    type Item = Pdu;
    type Error = SmgpError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Pdu>, SmgpError> {
        framing::split_frame::<Frames>(src)?
            .map(|frame| Pdu::decode(&frame))
            .transpose()
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Pdu>, SmgpError> {
        match self.decode(src)? {
            Some(pdu) => Ok(Some(pdu)),
            None => framing::eof_leftover::<Frames>(src).map(|()| None),
        }
    }
}

impl Encoder<Pdu> for SmgpCodec {
    type Error = SmgpError;

    fn encode(&mut self, pdu: Pdu, dst: &mut BytesMut) -> Result<(), SmgpError> {
        pdu.encode(dst)
    }
}
