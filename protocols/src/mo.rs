//! Mobile-originated (MO) messages as a client receives them: one [`MoPart`] per deliver, whole
//! or one part of a long message (concatenated by an 8- or 16-bit UDH, or SMPP's sar_* TLVs),
//! its text decoded with the deliver's data coding.
//!
//! Parts are not joined here. Each one travels to the application with an [`Ack`] (see
//! [`crate::ack`]), like a delivery report: the carrier's response is sent only once the
//! application has recorded the part. The node records every part in its replicated log and joins
//! them there, so the parts of one message meet even when they arrive on different connections
//! or nodes, and a restart loses none (a part not yet recorded is not acknowledged, and the
//! carrier sends it again).
//!
//! Each part is decoded on its own. Herald's own splitter never cuts a character, but a foreign
//! sender that cut a UCS2 surrogate pair (or a GBK character) between two parts gets a U+FFFD on
//! each side of the cut.

use crate::ack::Ack;
use crate::text::Concat;

/// How a protocol reads message content: its decoder and its names for data codings.
#[derive(Clone, Copy)]
pub struct Coding {
    pub decode: fn(u8, &[u8]) -> String,
    pub name: fn(u8) -> &'static str,
}

/// CMPP, SGIP, SMGP and CNGP: ASCII, UCS2, GBK, binary.
pub const CHINESE: Coding = Coding {
    decode: crate::text::decode_text,
    name: crate::text::encoding_name,
};

/// SMPP: GSM 7-bit, IA5, Latin-1, UCS2, binary.
pub const SMPP: Coding = Coding {
    decode: crate::gsm7::decode_smpp_text,
    name: crate::gsm7::smpp_encoding_name,
};

/// Where a part's concatenation information came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Udh8,
    Udh16,
    /// SMPP's sar_msg_ref_num, sar_total_segments and sar_segment_seqnum.
    Sar,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Udh8 => "udh8",
            Scheme::Udh16 => "udh16",
            Scheme::Sar => "sar",
        }
    }
}

/// One received MO deliver: a whole message, or one part of a long one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoPart {
    /// The subscriber's number.
    pub src: String,
    /// The SP number (with any extension) the subscriber wrote to.
    pub dest: String,
    /// The deliver's id as the protocol names it (may be empty): a resend carries the same.
    pub carrier_id: String,
    pub text: String,
    /// The data coding's name (`ucs2`, `gbk`, `gsm7`, …).
    pub encoding: &'static str,
    /// `None` for a message that came whole. Not checked here: the projection treats an
    /// impossible header (total 0, number outside 1..=total) as a fragment of its own.
    pub concat: Option<(Concat, Scheme)>,
    /// The carrier's own time of receipt, as it wrote it (empty when the protocol has none).
    pub carrier_time: String,
    /// Complete it once the part is durably recorded: only then does the carrier get its
    /// response.
    pub ack: Ack,
}

impl MoPart {
    /// A part from received content: with `udhi` set, its UDH is stripped and read for a
    /// concatenation header (a UDH without one leaves a single message).
    pub fn from_payload(
        coding: Coding,
        src: String,
        dest: String,
        carrier_id: String,
        data_coding: u8,
        udhi: bool,
        payload: &[u8],
    ) -> MoPart {
        let (concat, body) = if udhi {
            crate::text::strip_udh_with_width(payload)
        } else {
            (None, payload)
        };
        MoPart {
            src,
            dest,
            carrier_id,
            text: (coding.decode)(data_coding, body),
            encoding: (coding.name)(data_coding),
            concat: concat.map(|(c, wide)| (c, if wide { Scheme::Udh16 } else { Scheme::Udh8 })),
            carrier_time: String::new(),
            ack: Ack::none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{split_text, Segment};

    fn read(segment: &Segment) -> MoPart {
        MoPart::from_payload(
            CHINESE,
            "13800138000".into(),
            "10690001".into(),
            String::new(),
            segment.data_coding,
            segment.udhi,
            &segment.payload,
        )
    }

    #[test]
    fn each_part_of_a_long_message_carries_its_text_and_place() {
        let text = "您好，退订本服务请回复TD。".repeat(10);
        let segments = split_text(&text);
        assert!(segments.len() >= 2);
        let parts: Vec<MoPart> = segments.iter().map(read).collect();
        let joined: String = parts.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(joined, text);
        for (i, p) in parts.iter().enumerate() {
            let (c, scheme) = p.concat.expect("a part of a long message");
            assert_eq!((c.number as usize, c.total as usize), (i + 1, parts.len()));
            assert_eq!((scheme, p.encoding), (Scheme::Udh8, "ucs2"));
        }
    }

    #[test]
    fn a_sixteen_bit_reference_is_told_apart() {
        let payload = [6, 8, 4, 0x12, 0x34, 2, 1, b'h', b'i'];
        let p = MoPart::from_payload(
            CHINESE,
            "1".into(),
            "2".into(),
            "id".into(),
            0,
            true,
            &payload,
        );
        let (c, scheme) = p.concat.expect("concatenated");
        assert_eq!(
            (c.reference, c.total, c.number, scheme),
            (0x1234, 2, 1, Scheme::Udh16)
        );
        assert_eq!((p.text.as_str(), p.encoding), ("hi", "ascii"));
    }

    #[test]
    fn a_whole_message_has_no_concatenation() {
        let p = MoPart::from_payload(
            SMPP,
            "1".into(),
            "2".into(),
            String::new(),
            0,
            false,
            b"@hi",
        );
        assert_eq!((p.concat, p.encoding), (None, "gsm7"));
    }
}
