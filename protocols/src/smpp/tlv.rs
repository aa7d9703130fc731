//! SMPP optional parameters (TLVs: tag 2, length 2, value) [SMPP34 §5.3], introduced in 3.4.
//!
//! A TLV keeps its raw value, so tags Herald does not interpret (vendor tags 0x1400–0x3FFF
//! included) pass through decoding and encoding unchanged. Typed constructors and readers exist
//! for the tags the client and simulator use. Whether TLVs may be sent at all (not to a 3.3 peer)
//! is the session's decision, not this module's.

use bytes::BufMut;

use super::header::SmppError;

/// Tags Herald interprets [SMPP34 §5.3.2; 5.0 for congestion_state].
pub mod tag {
    pub const DEST_ADDR_SUBUNIT: u16 = 0x0005;
    pub const RECEIPTED_MESSAGE_ID: u16 = 0x001E;
    pub const USER_MESSAGE_REFERENCE: u16 = 0x0204;
    pub const SAR_MSG_REF_NUM: u16 = 0x020C;
    pub const SAR_TOTAL_SEGMENTS: u16 = 0x020E;
    pub const SAR_SEGMENT_SEQNUM: u16 = 0x020F;
    pub const SC_INTERFACE_VERSION: u16 = 0x0210;
    pub const NETWORK_ERROR_CODE: u16 = 0x0423;
    pub const MESSAGE_PAYLOAD: u16 = 0x0424;
    pub const MESSAGE_STATE: u16 = 0x0427;
    /// SMPP 5.0: 0 idle … 100 congested.
    pub const CONGESTION_STATE: u16 = 0x0428;
}

/// message_state values [SMPP34 §5.2.28].
pub mod message_state {
    pub const ENROUTE: u8 = 1;
    pub const DELIVERED: u8 = 2;
    pub const EXPIRED: u8 = 3;
    pub const DELETED: u8 = 4;
    pub const UNDELIVERABLE: u8 = 5;
    pub const ACCEPTED: u8 = 6;
    pub const UNKNOWN: u8 = 7;
    pub const REJECTED: u8 = 8;
    pub const SKIPPED: u8 = 9;

    /// The receipt-text stat word for a message_state value.
    pub fn stat_word(state: u8) -> &'static str {
        match state {
            ENROUTE => "ENROUTE",
            DELIVERED => "DELIVRD",
            EXPIRED => "EXPIRED",
            DELETED => "DELETED",
            UNDELIVERABLE => "UNDELIV",
            ACCEPTED => "ACCEPTD",
            REJECTED => "REJECTD",
            SKIPPED => "SKIPPED",
            _ => "UNKNOWN",
        }
    }
}

/// One optional parameter with its raw value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    pub tag: u16,
    pub value: Vec<u8>,
}

impl Tlv {
    pub fn new(tag: u16, value: Vec<u8>) -> Tlv {
        Tlv { tag, value }
    }

    pub fn u8(tag: u16, v: u8) -> Tlv {
        Tlv::new(tag, vec![v])
    }

    pub fn u16(tag: u16, v: u16) -> Tlv {
        Tlv::new(tag, v.to_be_bytes().to_vec())
    }

    /// A C-Octet String value (NUL-terminated), as receipted_message_id is.
    pub fn cstring(tag: u16, s: &str) -> Tlv {
        let mut value = s.as_bytes().to_vec();
        value.push(0);
        Tlv::new(tag, value)
    }

    /// The value as an unsigned integer of 1, 2 or 4 bytes.
    pub fn as_uint(&self) -> Option<u32> {
        match self.value.as_slice() {
            [a] => Some(u32::from(*a)),
            [a, b] => Some(u32::from(u16::from_be_bytes([*a, *b]))),
            [a, b, c, d] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
            _ => None,
        }
    }

    /// The value as text, up to the first NUL (peers differ on whether they send one).
    pub fn as_text(&self) -> String {
        let end = self
            .value
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.value.len());
        String::from_utf8_lossy(&self.value[..end]).into_owned()
    }
}

/// The first TLV with `tag`.
pub fn find(tlvs: &[Tlv], tag: u16) -> Option<&Tlv> {
    tlvs.iter().find(|t| t.tag == tag)
}

/// Reads TLVs until `bytes` is exhausted; a TLV whose length runs past the end is an error.
pub fn decode_all(mut bytes: &[u8]) -> Result<Vec<Tlv>, SmppError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let [t0, t1, l0, l1, rest @ ..] = bytes else {
            return Err(SmppError::BadField {
                field: "TLV",
                reason: format!("{} bytes left, a TLV header needs 4", bytes.len()),
            });
        };
        let tag = u16::from_be_bytes([*t0, *t1]);
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        if rest.len() < len {
            return Err(SmppError::BadField {
                field: "TLV",
                reason: format!("tag {tag:#06x} declares {len} bytes, {} remain", rest.len()),
            });
        }
        let (value, next) = rest.split_at(len);
        out.push(Tlv::new(tag, value.to_vec()));
        bytes = next;
    }
    Ok(out)
}

pub fn encode_all(tlvs: &[Tlv], out: &mut impl BufMut) -> Result<(), SmppError> {
    for t in tlvs {
        let len = u16::try_from(t.value.len()).map_err(|_| SmppError::FieldTooLong {
            field: "TLV value",
            len: t.value.len(),
            max: u16::MAX as usize,
        })?;
        out.put_u16(t.tag);
        out.put_u16(len);
        out.put_slice(&t.value);
    }
    Ok(())
}

/// Encoded size of `tlvs`.
pub fn encoded_len(tlvs: &[Tlv]) -> usize {
    tlvs.iter().map(|t| 4 + t.value.len()).sum()
}
