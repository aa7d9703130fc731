//! CNGP 2.0 (China Netcom's gateway protocol) on the wire: the 16-byte header with its
//! Command_Status, the PDUs an SP exchanges with a gateway (Login, Submit, Deliver, Active_Test,
//! Exit and their responses), the TLVs ProtocolID and CongestionState, and stream framing.
//!
//! No official CNGP specification is public; the layouts follow third-party codecs (see
//! PROTOCOLS.md), and what they leave open is marked *unconfirmed*. This module only turns bytes
//! into values and back: sessions are [`crate::cngp_client`], and what CNGP shares with SMGP
//! (MsgID, authentication, TLV framing, report text) is in [`crate::telecom`].
//!
//! What the public codecs agree on, checked on 2026-11-25 (protocol-laboratory/netty-codec-sms,
//! protocol-laboratory/cngp-zig, and Huawei's `com.huawei.insa2.comm.cngp` SP client as
//! republished in several repositories): the command ids above; a 16-byte header whose third
//! word is the status; Login 16 + 32 bytes, Login_Resp 16 + 17 (AuthenticatorServer 16,
//! Version 1); Submit_Resp 31 bytes in Huawei's client, i.e. MsgID 10 followed by the 5-byte
//! CongestionState TLV, as [`pdu::SubmitResp`] reads it.
//!
//! **Default port: unconfirmed, and Herald has none.** The only port found is 9890, in
//! cngp-zig's login example against 127.0.0.1, which is no evidence of what gateways use. A
//! link's `address` must therefore name its port (the carrier gives it with the account), and
//! `herald sim cngp` listens only where `--listen` says.

pub mod pdu;

#[cfg(test)]
mod tests;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

pub use crate::telecom::{CodecError as CngpError, MsgId10, Receipt, Tlvs};
pub use pdu::{
    Body, Deliver, DeliverContent, DeliverResp, Login, LoginResp, Pdu, Submit, SubmitResp,
};

use crate::framing;
use crate::telecom::{wire, TlvKind, TlvSpec};

/// Total_Length 4, Command_Id 4, Command_Status 4, Sequence_Id 4.
pub const HEADER_LEN: usize = 16;
/// Largest PDU accepted; a Submit to 100 numbers with 255 bytes of content is about 2.5 KiB.
pub const MAX_PDU_LEN: usize = 4096;
/// Version in Login / Login_Resp for CNGP 2.0.
pub const VERSION_2_0: u8 = 0x20;
/// DestTermIDCount may not exceed 100.
pub const MAX_DESTINATIONS: usize = 100;
/// Width of SrcTermID, ChargeTermID and DestTermID.
pub const TERM_ID_LEN: usize = 21;

/// LoginMode values (as in SMGP).
pub mod login_mode {
    pub const SEND: u8 = 0;
    pub const RECEIVE: u8 = 1;
    pub const TRANSMIT: u8 = 2;
}

/// Command_Id values.
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

/// TLV tags of CNGP 2.0.
pub mod tag {
    /// GSM TP-Protocol-Identifier, in Submit and Deliver.
    pub const PROTOCOL_ID: u16 = 0x0100;
    /// The gateway's load, 0 (idle) … 100 (congested), in Submit_Resp and Deliver_Resp.
    pub const CONGESTION_STATE: u16 = 0x0428;
}

/// The CNGP 2.0 TLV table.
pub const TLVS: &[TlvSpec] = &[
    TlvSpec {
        tag: tag::PROTOCOL_ID,
        name: "ProtocolID",
        kind: TlvKind::U8,
    },
    TlvSpec {
        tag: tag::CONGESTION_STATE,
        name: "CongestionState",
        kind: TlvKind::U8,
    },
];

/// What a Command_Status means, and whether resending the same message may succeed.
///
/// **Unconfirmed.** No public source tables CNGP's status codes: Huawei's SP client only tells 0
/// (success) from anything else ("Fail to login, the status code is N"), and the two
/// third-party codecs define no codes at all. CNGP derives from SMGP, so the codes SMGP 3.0.3
/// defines for the login and the header (1–22) are read with SMGP's meaning. Why that is safe:
/// 0 is the only success, as every source agrees; only 1 (system busy, the gateway's throttle)
/// and 12 (duplicate sequence, which cannot recur because a retry carries a new Sequence_Id)
/// are retried; every other code, named here or not, is permanent, so a misread code fails one
/// message rather than starting a resend storm. SMGP's submit-field codes (30–49) and its 75
/// (sending limit) are deliberately not carried over.
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
        _ => (false, "other error"),
    }
}

/// Framing of CNGP PDUs on a TCP stream for `tokio_util::codec::Framed`. Any error is fatal to
/// the stream.
#[derive(Debug, Default, Clone, Copy)]
pub struct CngpCodec;

type Frames = wire::Frames<HEADER_LEN, MAX_PDU_LEN>;

impl Decoder for CngpCodec {
    type Item = Pdu;
    type Error = CngpError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Pdu>, CngpError> {
        framing::split_frame::<Frames>(src)?
            .map(|frame| Pdu::decode(&frame))
            .transpose()
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Pdu>, CngpError> {
        match self.decode(src)? {
            Some(pdu) => Ok(Some(pdu)),
            None => framing::eof_leftover::<Frames>(src).map(|()| None),
        }
    }
}

impl Encoder<Pdu> for CngpCodec {
    type Error = CngpError;

    fn encode(&mut self, pdu: Pdu, dst: &mut BytesMut) -> Result<(), CngpError> {
        pdu.encode(dst)
    }
}
