//! The 12-byte CMPP message header, the command ids this crate speaks, and the codec's error type.
//!
//! Every CMPP PDU starts with Total_Length (header included), Command_Id and Sequence_Id, all
//! big-endian u32 [CMPP3 §6]. This module validates the header before anything reads a body, so no
//! later step ever trusts a length it has not checked.

use bytes::{Buf, BufMut};

use crate::framing::{self, LengthPrefixed};

/// Size of the CMPP header in bytes.
pub const HEADER_LEN: usize = 12;

/// Largest PDU this crate accepts. The largest legal CMPP 3.0 PDU is a SUBMIT to 99 numbers with a
/// 255-byte content (about 3.5 KiB), so anything longer is garbage or an attack.
pub const MAX_PDU_LEN: usize = 4096;

/// CMPP protocol version 3.0 as carried in CONNECT / CONNECT_RESP.
pub const VERSION_3_0: u8 = 0x30;
/// CMPP protocol version 2.0 as carried in CONNECT / CONNECT_RESP.
pub const VERSION_2_0: u8 = 0x20;

/// The two CMPP versions this crate speaks. They share the header, the command ids and the
/// CONNECT body, and differ in field widths elsewhere [CMPP3 §12]: 2.0 has 1-byte status and
/// result fields, 21-byte terminal ids, no terminal types, and an 8-byte Reserve where 3.0 has
/// the 20-byte LinkID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Version {
    V2,
    #[default]
    V3,
}

impl Version {
    /// The Version byte sent in CONNECT and CONNECT_RESP.
    pub fn wire(self) -> u8 {
        match self {
            Version::V2 => VERSION_2_0,
            Version::V3 => VERSION_3_0,
        }
    }

    /// The layouts a CONNECT's Version byte asks for: any 0x2x is 2.0 (some 2.0 clients send 0x21),
    /// 0x30 is 3.0; anything else is unknown.
    pub fn from_wire(byte: u8) -> Option<Version> {
        match byte {
            0x20..=0x2F => Some(Version::V2),
            VERSION_3_0 => Some(Version::V3),
            _ => None,
        }
    }

    /// Width of Fee_terminal_Id, Dest_terminal_Id and Src_terminal_Id.
    pub fn terminal_id_len(self) -> usize {
        match self {
            Version::V2 => 21,
            Version::V3 => 32,
        }
    }

    /// Length of a status report carried in a DELIVER's Msg_Content.
    pub fn report_len(self) -> usize {
        match self {
            Version::V2 => 60,
            Version::V3 => 71,
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Version::V2 => "2.0",
            Version::V3 => "3.0",
        })
    }
}

/// CMPP command ids [CMPP3 §7].
pub mod command {
    pub const CONNECT: u32 = 0x0000_0001;
    pub const CONNECT_RESP: u32 = 0x8000_0001;
    pub const TERMINATE: u32 = 0x0000_0002;
    pub const TERMINATE_RESP: u32 = 0x8000_0002;
    pub const SUBMIT: u32 = 0x0000_0004;
    pub const SUBMIT_RESP: u32 = 0x8000_0004;
    pub const DELIVER: u32 = 0x0000_0005;
    pub const DELIVER_RESP: u32 = 0x8000_0005;
    pub const ACTIVE_TEST: u32 = 0x0000_0008;
    pub const ACTIVE_TEST_RESP: u32 = 0x8000_0008;
}

/// Why bytes could not be turned into a PDU, or a PDU into bytes.
#[derive(thiserror::Error, Debug)]
pub enum CmppError {
    #[error("Total_Length {0} is outside the accepted range {min}..={max}", min = HEADER_LEN, max = MAX_PDU_LEN)]
    BadTotalLength(u32),
    #[error("PDU needs {needed} bytes but only {available} are present")]
    Truncated { needed: usize, available: usize },
    #[error("unknown Command_Id {0:#010x}")]
    UnknownCommand(u32),
    #[error("command {command:#010x}: body is {actual} bytes, expected {expected}")]
    BadBodyLength {
        command: u32,
        expected: usize,
        actual: usize,
    },
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

/// A decoded CMPP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub total_length: u32,
    pub command_id: u32,
    pub sequence_id: u32,
}

impl Header {
    /// Reads and validates a header from the front of `bytes` without consuming anything.
    ///
    /// Returns `Ok(None)` when fewer than [`HEADER_LEN`] bytes are present; a length outside
    /// `HEADER_LEN..=MAX_PDU_LEN` is an error even before the rest of the PDU arrives.
    pub fn peek(bytes: &[u8]) -> Result<Option<Header>, CmppError> {
        if framing::frame_len::<Header>(bytes)?.is_none() {
            return Ok(None);
        }
        let mut b = &bytes[..HEADER_LEN];
        Ok(Some(Header {
            total_length: b.get_u32(),
            command_id: b.get_u32(),
            sequence_id: b.get_u32(),
        }))
    }

    pub fn write(&self, out: &mut impl BufMut) {
        out.put_u32(self.total_length);
        out.put_u32(self.command_id);
        out.put_u32(self.sequence_id);
    }
}

impl LengthPrefixed for Header {
    type Error = CmppError;
    const PEEK_LEN: usize = HEADER_LEN;
    const MIN_LEN: usize = HEADER_LEN;
    const MAX_LEN: usize = MAX_PDU_LEN;

    fn bad_length(len: u32) -> CmppError {
        CmppError::BadTotalLength(len)
    }

    fn truncated(needed: usize, available: usize) -> CmppError {
        CmppError::Truncated { needed, available }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_needs_twelve_bytes() {
        assert!(matches!(Header::peek(&[0, 0, 0, 12, 0, 0]), Ok(None)));
    }

    #[test]
    fn peek_reads_fields() {
        let bytes = [0, 0, 0, 12, 0, 0, 0, 8, 0, 0, 0, 7];
        let h = Header::peek(&bytes).ok().flatten();
        assert_eq!(
            h,
            Some(Header {
                total_length: 12,
                command_id: command::ACTIVE_TEST,
                sequence_id: 7
            })
        );
    }

    #[test]
    fn peek_rejects_bad_lengths() {
        for len in [0u32, 11, 4097, u32::MAX] {
            let mut bytes = len.to_be_bytes().to_vec();
            bytes.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 1]);
            assert!(
                matches!(Header::peek(&bytes), Err(CmppError::BadTotalLength(l)) if l == len),
                "length {len}"
            );
        }
    }
}
