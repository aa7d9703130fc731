//! The 16-byte SMPP header, the command ids and command_status values this crate knows, and the
//! codec's error type.
//!
//! Every SMPP PDU starts with command_length (header included), command_id, command_status and
//! sequence_number, all big-endian u32 [SMPP34 §3.2]. The header is validated before any body is
//! read, so no later step trusts a length it has not checked. This module knows nothing about
//! sessions.

use bytes::{Buf, BufMut};

use crate::framing::{self, LengthPrefixed};

/// Size of the SMPP header in bytes.
pub const HEADER_LEN: usize = 16;

/// Largest PDU this crate accepts: a submit_sm whose message_payload TLV is at its 64 KiB limit,
/// plus the fixed fields and a few other TLVs. Anything longer is garbage or an attack.
pub const MAX_PDU_LEN: usize = 66_560;

/// interface_version values carried in binds and in the sc_interface_version TLV.
pub const VERSION_3_3: u8 = 0x33;
pub const VERSION_3_4: u8 = 0x34;
pub const VERSION_5_0: u8 = 0x50;

/// SMPP command ids [SMPP34 §5.1.2.1].
pub mod command {
    pub const GENERIC_NACK: u32 = 0x8000_0000;
    pub const BIND_RECEIVER: u32 = 0x0000_0001;
    pub const BIND_RECEIVER_RESP: u32 = 0x8000_0001;
    pub const BIND_TRANSMITTER: u32 = 0x0000_0002;
    pub const BIND_TRANSMITTER_RESP: u32 = 0x8000_0002;
    pub const SUBMIT_SM: u32 = 0x0000_0004;
    pub const SUBMIT_SM_RESP: u32 = 0x8000_0004;
    pub const DELIVER_SM: u32 = 0x0000_0005;
    pub const DELIVER_SM_RESP: u32 = 0x8000_0005;
    pub const UNBIND: u32 = 0x0000_0006;
    pub const UNBIND_RESP: u32 = 0x8000_0006;
    pub const BIND_TRANSCEIVER: u32 = 0x0000_0009;
    pub const BIND_TRANSCEIVER_RESP: u32 = 0x8000_0009;
    pub const OUTBIND: u32 = 0x0000_000B;
    pub const ENQUIRE_LINK: u32 = 0x0000_0015;
    pub const ENQUIRE_LINK_RESP: u32 = 0x8000_0015;
    pub const DATA_SM: u32 = 0x0000_0103;
    pub const DATA_SM_RESP: u32 = 0x8000_0103;
}

/// command_status values [SMPP34 §5.1.3] that Herald sends or treats specially.
pub mod status {
    pub const ESME_ROK: u32 = 0x0000_0000;
    pub const ESME_RINVMSGLEN: u32 = 0x0000_0001;
    pub const ESME_RINVCMDLEN: u32 = 0x0000_0002;
    pub const ESME_RINVCMDID: u32 = 0x0000_0003;
    pub const ESME_RINVBNDSTS: u32 = 0x0000_0004;
    pub const ESME_RALYBND: u32 = 0x0000_0005;
    pub const ESME_RSYSERR: u32 = 0x0000_0008;
    pub const ESME_RINVSRCADR: u32 = 0x0000_000A;
    pub const ESME_RINVDSTADR: u32 = 0x0000_000B;
    pub const ESME_RINVMSGID: u32 = 0x0000_000C;
    pub const ESME_RBINDFAIL: u32 = 0x0000_000D;
    pub const ESME_RINVPASWD: u32 = 0x0000_000E;
    pub const ESME_RINVSYSID: u32 = 0x0000_000F;
    pub const ESME_RMSGQFUL: u32 = 0x0000_0014;
    pub const ESME_RINVSERTYP: u32 = 0x0000_0015;
    pub const ESME_RSUBMITFAIL: u32 = 0x0000_0045;
    pub const ESME_RINVESMCLASS: u32 = 0x0000_0043;
    pub const ESME_RTHROTTLED: u32 = 0x0000_0058;
    pub const ESME_RINVSCHED: u32 = 0x0000_0061;
    pub const ESME_RINVEXPIRY: u32 = 0x0000_0062;
    pub const ESME_RX_T_APPN: u32 = 0x0000_0064;
    pub const ESME_RX_P_APPN: u32 = 0x0000_0065;
    pub const ESME_RX_R_APPN: u32 = 0x0000_0066;
    pub const ESME_RINVOPTPARSTREAM: u32 = 0x0000_00C0;
    pub const ESME_ROPTPARNOTALLWD: u32 = 0x0000_00C1;
    pub const ESME_RINVPARLEN: u32 = 0x0000_00C2;
    pub const ESME_RMISSINGOPTPARAM: u32 = 0x0000_00C3;
    pub const ESME_RINVOPTPARAMVAL: u32 = 0x0000_00C4;
    pub const ESME_RDELIVERYFAILURE: u32 = 0x0000_00FE;
    pub const ESME_RUNKNOWNERR: u32 = 0x0000_00FF;
}

/// Why bytes could not be turned into a PDU, or a PDU into bytes.
#[derive(thiserror::Error, Debug)]
pub enum SmppError {
    #[error("command_length {0} is outside the accepted range {min}..={max}", min = HEADER_LEN, max = MAX_PDU_LEN)]
    BadCommandLength(u32),
    #[error("PDU needs {needed} bytes but only {available} are present")]
    Truncated { needed: usize, available: usize },
    #[error("unknown command_id {0:#010x}")]
    UnknownCommand(u32),
    #[error("command {command:#010x}: {extra} bytes after the last field")]
    TrailingBytes { command: u32, extra: usize },
    #[error("field {field}: {reason}")]
    BadField { field: &'static str, reason: String },
    #[error("field {field} is {len} bytes, the maximum is {max}")]
    FieldTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// A decoded SMPP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub command_length: u32,
    pub command_id: u32,
    pub command_status: u32,
    pub sequence_number: u32,
}

impl Header {
    /// Reads and validates a header from the front of `bytes` without consuming anything.
    ///
    /// Returns `Ok(None)` when fewer than [`HEADER_LEN`] bytes are present; a length outside
    /// `HEADER_LEN..=MAX_PDU_LEN` is an error even before the rest of the PDU arrives.
    pub fn peek(bytes: &[u8]) -> Result<Option<Header>, SmppError> {
        if framing::frame_len::<Header>(bytes)?.is_none() {
            return Ok(None);
        }
        let mut b = &bytes[..HEADER_LEN];
        Ok(Some(Header {
            command_length: b.get_u32(),
            command_id: b.get_u32(),
            command_status: b.get_u32(),
            sequence_number: b.get_u32(),
        }))
    }

    pub fn write(&self, out: &mut impl BufMut) {
        out.put_u32(self.command_length);
        out.put_u32(self.command_id);
        out.put_u32(self.command_status);
        out.put_u32(self.sequence_number);
    }
}

impl LengthPrefixed for Header {
    type Error = SmppError;
    const PEEK_LEN: usize = HEADER_LEN;
    const MIN_LEN: usize = HEADER_LEN;
    const MAX_LEN: usize = MAX_PDU_LEN;

    fn bad_length(len: u32) -> SmppError {
        SmppError::BadCommandLength(len)
    }

    fn truncated(needed: usize, available: usize) -> SmppError {
        SmppError::Truncated { needed, available }
    }
}

/// How a submit's command_status should be handled: (retryable, meaning).
///
/// Retryable are the statuses that describe the SMSC's momentary state rather than the message:
/// throttling, a full queue, a system error, a temporary application error, a generic submit
/// failure, and a bind-state mismatch (the link is rebinding). Everything else describes the
/// message or the account, so resending the same bytes would fail the same way.
pub fn submit_status(code: u32) -> (bool, &'static str) {
    use status::*;
    match code {
        ESME_ROK => (false, "accepted"),
        ESME_RTHROTTLED => (true, "throttling error (ESME_RTHROTTLED)"),
        ESME_RMSGQFUL => (true, "message queue full (ESME_RMSGQFUL)"),
        ESME_RSYSERR => (true, "system error (ESME_RSYSERR)"),
        ESME_RX_T_APPN => (true, "temporary application error (ESME_RX_T_APPN)"),
        ESME_RSUBMITFAIL => (true, "submit_sm failed (ESME_RSUBMITFAIL)"),
        ESME_RINVBNDSTS => (true, "incorrect bind status (ESME_RINVBNDSTS)"),
        ESME_RINVMSGLEN => (false, "message length is invalid (ESME_RINVMSGLEN)"),
        ESME_RINVCMDLEN => (false, "command length is invalid (ESME_RINVCMDLEN)"),
        ESME_RINVCMDID => (false, "invalid command id (ESME_RINVCMDID)"),
        ESME_RINVSRCADR => (false, "invalid source address (ESME_RINVSRCADR)"),
        ESME_RINVDSTADR => (false, "invalid destination address (ESME_RINVDSTADR)"),
        ESME_RINVSERTYP => (false, "invalid service type (ESME_RINVSERTYP)"),
        ESME_RINVESMCLASS => (false, "invalid esm_class (ESME_RINVESMCLASS)"),
        ESME_RINVSCHED => (false, "invalid scheduled delivery time (ESME_RINVSCHED)"),
        ESME_RINVEXPIRY => (false, "invalid validity period (ESME_RINVEXPIRY)"),
        ESME_RX_P_APPN => (false, "permanent application error (ESME_RX_P_APPN)"),
        ESME_RX_R_APPN => (false, "application rejected the message (ESME_RX_R_APPN)"),
        ESME_RINVOPTPARSTREAM..=ESME_RINVOPTPARAMVAL => (false, "optional parameter error"),
        ESME_RDELIVERYFAILURE => (false, "delivery failure (ESME_RDELIVERYFAILURE)"),
        _ => (false, "SMSC error"),
    }
}

/// A short description of a bind_*_resp command_status, for the link's Disconnected reason.
pub fn bind_status(code: u32) -> &'static str {
    use status::*;
    match code {
        ESME_RINVPASWD => "invalid password (ESME_RINVPASWD)",
        ESME_RINVSYSID => "invalid system_id (ESME_RINVSYSID)",
        ESME_RBINDFAIL => "bind failed (ESME_RBINDFAIL)",
        ESME_RALYBND => "already bound (ESME_RALYBND)",
        ESME_RINVCMDID => "bind type not supported (ESME_RINVCMDID)",
        ESME_RSYSERR => "system error (ESME_RSYSERR)",
        ESME_RTHROTTLED => "throttled (ESME_RTHROTTLED)",
        _ => "SMSC refused the bind",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_needs_sixteen_bytes() {
        assert!(matches!(
            Header::peek(&[0, 0, 0, 16, 0, 0, 0, 0x15]),
            Ok(None)
        ));
    }

    #[test]
    fn peek_reads_fields() {
        let bytes = [0, 0, 0, 16, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 7];
        assert_eq!(
            Header::peek(&bytes).ok().flatten(),
            Some(Header {
                command_length: 16,
                command_id: command::ENQUIRE_LINK,
                command_status: 0,
                sequence_number: 7
            })
        );
    }

    #[test]
    fn peek_rejects_bad_lengths() {
        for len in [0u32, 15, MAX_PDU_LEN as u32 + 1, u32::MAX] {
            let mut bytes = len.to_be_bytes().to_vec();
            bytes.extend_from_slice(&[0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 1]);
            assert!(
                matches!(Header::peek(&bytes), Err(SmppError::BadCommandLength(l)) if l == len),
                "length {len}"
            );
        }
    }

    #[test]
    fn throttling_statuses_are_retryable() {
        for code in [0x58, 0x14, 0x08, 0x64] {
            assert!(submit_status(code).0, "{code:#x}");
        }
        for code in [0x0B, 0x0A, 0x01, 0x65, 0x66, 0xC4, 0x1234] {
            assert!(!submit_status(code).0, "{code:#x}");
        }
    }
}
