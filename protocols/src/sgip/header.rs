//! The 20-byte SGIP message header, its 12-byte sequence number, the command ids this crate
//! speaks, and the codec's error type.
//!
//! Every SGIP PDU starts with Message Length (header included) and Command ID, both big-endian
//! u32, then the Sequence Number: three u32 — the sender's node id, the time it was made
//! (MMDDhhmmss read as a decimal number) and a counter [SGIP §4.2.1]. The header is validated
//! before anything reads a body, so no later step trusts a length it has not checked.

use std::fmt;

use bytes::{Buf, BufMut};
use chrono::{Datelike, Timelike};

use crate::framing::{self, LengthPrefixed};

/// Size of the SGIP header in bytes.
pub const HEADER_LEN: usize = 20;

/// Largest PDU this crate accepts. The largest PDU Herald meets is a Submit to 100 numbers
/// (143 + 100 × 21 bytes with the header) plus its content; a single SMS payload is at most
/// 160 bytes, so 4 KiB leaves room for gateways that accept longer content and rejects garbage.
pub const MAX_PDU_LEN: usize = 4096;

/// SGIP command ids [SGIP §4.2.2].
pub mod command {
    pub const BIND: u32 = 0x0000_0001;
    pub const BIND_RESP: u32 = 0x8000_0001;
    pub const UNBIND: u32 = 0x0000_0002;
    pub const UNBIND_RESP: u32 = 0x8000_0002;
    pub const SUBMIT: u32 = 0x0000_0003;
    pub const SUBMIT_RESP: u32 = 0x8000_0003;
    pub const DELIVER: u32 = 0x0000_0004;
    pub const DELIVER_RESP: u32 = 0x8000_0004;
    pub const REPORT: u32 = 0x0000_0005;
    pub const REPORT_RESP: u32 = 0x8000_0005;
}

/// Why bytes could not be turned into a PDU, or a PDU into bytes.
#[derive(thiserror::Error, Debug)]
pub enum SgipError {
    #[error("Message Length {0} is outside the accepted range {min}..={max}", min = HEADER_LEN, max = MAX_PDU_LEN)]
    BadLength(u32),
    #[error("PDU needs {needed} bytes but only {available} are present")]
    Truncated { needed: usize, available: usize },
    #[error("unknown Command ID {0:#010x}")]
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

/// SGIP's 12-byte Sequence Number. A response carries the sequence number of its request, and a
/// Report names the Submit it is about by the Submit's sequence number: that is SGIP's only
/// message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SequenceNumber {
    /// The sender's node id: 3AAAAQQQQQ for an SP (area code, corporation id), 4… for a gateway.
    pub node_id: u32,
    /// MMDDhhmmss as a decimal number.
    pub time: u32,
    pub number: u32,
}

impl SequenceNumber {
    pub fn new(node_id: u32, time: u32, number: u32) -> SequenceNumber {
        SequenceNumber {
            node_id,
            time,
            number,
        }
    }

    /// A sequence number stamped with `now`.
    pub fn at<T: Datelike + Timelike>(node_id: u32, now: &T, number: u32) -> Self {
        SequenceNumber::new(node_id, mmddhhmmss(now), number)
    }
}

/// MMDDhhmmss read as a decimal number (at most 1231235959, so it fits a u32).
pub fn mmddhhmmss<T: Datelike + Timelike>(t: &T) -> u32 {
    // A leap second reads as second 60 in chrono; keep the field a valid time.
    t.month() * 100_000_000
        + t.day() * 1_000_000
        + t.hour() * 10_000
        + t.minute() * 100
        + t.second().min(59)
}

/// `node-MMDDhhmmss-number`: how Herald writes an SGIP message id (a submit's carrier id).
impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:010}-{}", self.node_id, self.time, self.number)
    }
}

/// A decoded SGIP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub length: u32,
    pub command_id: u32,
    pub sequence: SequenceNumber,
}

impl Header {
    /// Reads and validates a header from the front of `bytes` without consuming anything.
    ///
    /// Returns `Ok(None)` when fewer than [`HEADER_LEN`] bytes are present; a length outside
    /// `HEADER_LEN..=MAX_PDU_LEN` is an error even before the rest of the PDU arrives.
    pub fn peek(bytes: &[u8]) -> Result<Option<Header>, SgipError> {
        if framing::frame_len::<Header>(bytes)?.is_none() {
            return Ok(None);
        }
        let mut b = &bytes[..HEADER_LEN];
        Ok(Some(Header {
            length: b.get_u32(),
            command_id: b.get_u32(),
            sequence: SequenceNumber {
                node_id: b.get_u32(),
                time: b.get_u32(),
                number: b.get_u32(),
            },
        }))
    }

    pub fn write(&self, out: &mut impl BufMut) {
        out.put_u32(self.length);
        out.put_u32(self.command_id);
        out.put_u32(self.sequence.node_id);
        out.put_u32(self.sequence.time);
        out.put_u32(self.sequence.number);
    }
}

impl LengthPrefixed for Header {
    type Error = SgipError;
    const PEEK_LEN: usize = HEADER_LEN;
    const MIN_LEN: usize = HEADER_LEN;
    const MAX_LEN: usize = MAX_PDU_LEN;

    fn bad_length(len: u32) -> SgipError {
        SgipError::BadLength(len)
    }

    fn truncated(needed: usize, available: usize) -> SgipError {
        SgipError::Truncated { needed, available }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_needs_twenty_bytes() {
        assert!(matches!(Header::peek(&[0, 0, 0, 20, 0, 0, 0, 2]), Ok(None)));
    }

    #[test]
    fn peek_reads_the_three_part_sequence() {
        let mut bytes = vec![0, 0, 0, 20, 0, 0, 0, 2];
        bytes.extend_from_slice(&3_020_012_345u32.to_be_bytes());
        bytes.extend_from_slice(&1_125_070_100u32.to_be_bytes());
        bytes.extend_from_slice(&7u32.to_be_bytes());
        let h = Header::peek(&bytes).ok().flatten();
        assert_eq!(
            h,
            Some(Header {
                length: 20,
                command_id: command::UNBIND,
                sequence: SequenceNumber::new(3_020_012_345, 1_125_070_100, 7),
            })
        );
    }

    #[test]
    fn peek_rejects_bad_lengths() {
        for len in [0u32, 19, 4097, u32::MAX] {
            let mut bytes = len.to_be_bytes().to_vec();
            bytes.extend_from_slice(&[0; 16]);
            assert!(
                matches!(Header::peek(&bytes), Err(SgipError::BadLength(l)) if l == len),
                "length {len}"
            );
        }
    }

    #[test]
    fn sequence_display_and_time() {
        let s = SequenceNumber::new(3_020_012_345, 125_070_100, 42);
        assert_eq!(s.to_string(), "3020012345-0125070100-42");
        let t = chrono::NaiveDate::from_ymd_opt(2025, 12, 31)
            .and_then(|d| d.and_hms_opt(23, 59, 58))
            .expect("valid date");
        assert_eq!(mmddhhmmss(&t), 1_231_235_958);
    }
}
