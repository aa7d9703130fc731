//! Message text on the wire: choosing an encoding, splitting long text into concatenated parts
//! with a User Data Header, and decoding received content back into text.
//!
//! ASCII-only text goes out as data_coding 0 (CMPP Msg_Fmt 0 must stay below 160 bytes, so one
//! part holds 159 characters and a concatenated part 153 + a 6-byte UDH); anything else goes out
//! as UCS2 (data_coding 8, UTF-16BE: 70 units in one part, 67 per concatenated part), never
//! splitting a surrogate pair. The codes are shared by CMPP, SGIP and SMGP; SMPP maps its own.
//! This module does not count carrier-added signatures: callers that know of one must reserve room.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// data_coding / Msg_Fmt values.
pub const DC_ASCII: u8 = 0;
pub const DC_BINARY: u8 = 4;
pub const DC_UCS2: u8 = 8;
pub const DC_GBK: u8 = 15;

const ASCII_SINGLE: usize = 159;
const ASCII_PART: usize = 153;
const UCS2_SINGLE: usize = 70;
const UCS2_PART: usize = 67;
/// Pk_total is one byte.
pub const MAX_PARTS: usize = 255;

/// One part of a message, ready to be put in a SUBMIT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub data_coding: u8,
    /// Message content bytes, UDH included when `udhi` is set.
    pub payload: Vec<u8>,
    pub udhi: bool,
    pub total: u8,
    /// 1-based.
    pub number: u8,
}

#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum TextError {
    #[error("text needs {parts} parts, more than the {max} a message can have", max = MAX_PARTS)]
    TooManyParts { parts: usize },
}

/// The concatenation header of a received part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concat {
    pub reference: u16,
    pub total: u8,
    pub number: u8,
}

/// Splits text into parts. Text needing more than [`MAX_PARTS`] parts is cut after the 255th
/// part (with a warning); use [`try_split_text`] to refuse it instead.
pub fn split_text(text: &str) -> Vec<Segment> {
    match try_split_text(text) {
        Ok(segments) => segments,
        Err(e) => {
            tracing::warn!(error = %e, "message text truncated to {MAX_PARTS} parts");
            split_units(text, MAX_PARTS)
        }
    }
}

pub fn try_split_text(text: &str) -> Result<Vec<Segment>, TextError> {
    let parts = part_count(text);
    if parts > MAX_PARTS {
        return Err(TextError::TooManyParts { parts });
    }
    Ok(split_units(text, MAX_PARTS))
}

/// Octets one part may hold in protocols that cap every coding at 140 (SMGP, CNGP).
pub const MAX_OCTETS_140: usize = 140;

/// Like [`split_text`], for protocols whose parts hold at most 140 octets whatever the coding
/// (SMGP "MT ≤ 140 bytes", CNGP): ASCII goes 140 to a single part and 134 (+ 6-byte UDH) to a
/// concatenated one. UCS2 parts already fit, so other text splits exactly as [`split_text`].
pub fn split_text_140(text: &str) -> Vec<Segment> {
    if !text.is_ascii() {
        return split_text(text);
    }
    let bytes = text.as_bytes();
    if bytes.len() <= MAX_OCTETS_140 {
        return vec![single(DC_ASCII, bytes.to_vec())];
    }
    let chunks: Vec<Vec<u8>> = bytes
        .chunks(MAX_OCTETS_140 - 6)
        .take(MAX_PARTS)
        .map(<[u8]>::to_vec)
        .collect();
    concatenated(DC_ASCII, chunks)
}

fn part_count(text: &str) -> usize {
    if text.is_ascii() {
        let n = text.len();
        if n <= ASCII_SINGLE {
            1
        } else {
            n.div_ceil(ASCII_PART)
        }
    } else {
        ucs2_chunks(&text.encode_utf16().collect::<Vec<_>>(), usize::MAX).len()
    }
}

fn split_units(text: &str, max_parts: usize) -> Vec<Segment> {
    if text.is_ascii() {
        let bytes = text.as_bytes();
        if bytes.len() <= ASCII_SINGLE {
            return vec![single(DC_ASCII, bytes.to_vec())];
        }
        let chunks: Vec<Vec<u8>> = bytes
            .chunks(ASCII_PART)
            .take(max_parts)
            .map(<[u8]>::to_vec)
            .collect();
        return concatenated(DC_ASCII, chunks);
    }
    let units: Vec<u16> = text.encode_utf16().collect();
    if units.len() <= UCS2_SINGLE {
        return vec![single(DC_UCS2, ucs2_bytes(&units))];
    }
    let chunks = ucs2_chunks(&units, max_parts)
        .into_iter()
        .map(ucs2_bytes)
        .collect();
    concatenated(DC_UCS2, chunks)
}

/// Cuts UTF-16 units into parts of at most 67, moving a high surrogate that would end a part
/// into the next one.
fn ucs2_chunks(units: &[u16], max_parts: usize) -> Vec<&[u16]> {
    let mut out = Vec::new();
    let mut rest = units;
    while !rest.is_empty() && out.len() < max_parts {
        let mut take = rest.len().min(UCS2_PART);
        if take < rest.len() && is_high_surrogate(rest[take - 1]) {
            take -= 1;
        }
        let (head, tail) = rest.split_at(take);
        out.push(head);
        rest = tail;
    }
    out
}

fn is_high_surrogate(u: u16) -> bool {
    (0xD800..0xDC00).contains(&u)
}

fn ucs2_bytes(units: &[u16]) -> Vec<u8> {
    units.iter().flat_map(|u| u.to_be_bytes()).collect()
}

fn single(data_coding: u8, payload: Vec<u8>) -> Segment {
    Segment {
        data_coding,
        payload,
        udhi: false,
        total: 1,
        number: 1,
    }
}

fn concatenated(data_coding: u8, chunks: Vec<Vec<u8>>) -> Vec<Segment> {
    let reference = next_reference();
    let total = chunks.len().min(MAX_PARTS) as u8;
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let number = (i + 1) as u8;
            let mut payload = Vec::with_capacity(6 + chunk.len());
            payload.extend_from_slice(&[0x05, 0x00, 0x03, reference, total, number]);
            payload.extend_from_slice(&chunk);
            Segment {
                data_coding,
                payload,
                udhi: true,
                total,
                number,
            }
        })
        .collect()
}

/// A process-wide counter starting at a random value, so two processes restarting together do
/// not reuse each other's references for the same recipient.
fn next_reference() -> u8 {
    static COUNTER: OnceLock<AtomicU8> = OnceLock::new();
    COUNTER
        .get_or_init(|| AtomicU8::new(rand::random()))
        .fetch_add(1, Ordering::Relaxed)
}

/// Splits a received payload with TP_udhi set into its concatenation info (if the UDH carries
/// one) and the text bytes. A UDH longer than the payload yields `None` and the whole payload.
pub fn strip_udh(payload: &[u8]) -> (Option<Concat>, &[u8]) {
    let (concat, body) = strip_udh_with_width(payload);
    (concat.map(|(c, _)| c), body)
}

/// Like [`strip_udh`], also telling whether the concatenation header had a 16-bit reference
/// (IEI 0x08) rather than an 8-bit one (IEI 0x00).
pub fn strip_udh_with_width(payload: &[u8]) -> (Option<(Concat, bool)>, &[u8]) {
    let Some((&udhl, rest)) = payload.split_first() else {
        return (None, payload);
    };
    let udhl = udhl as usize;
    if rest.len() < udhl {
        return (None, payload);
    }
    let (mut ies, body) = rest.split_at(udhl);
    let mut concat = None;
    while let [iei, len, tail @ ..] = ies {
        let len = *len as usize;
        if tail.len() < len {
            break;
        }
        let (data, next) = tail.split_at(len);
        match (iei, data) {
            (0x00, [r, t, n]) => {
                concat = Some((
                    Concat {
                        reference: u16::from(*r),
                        total: *t,
                        number: *n,
                    },
                    false,
                ))
            }
            (0x08, [rh, rl, t, n]) => {
                concat = Some((
                    Concat {
                        reference: u16::from_be_bytes([*rh, *rl]),
                        total: *t,
                        number: *n,
                    },
                    true,
                ))
            }
            _ => {}
        }
        ies = next;
    }
    (concat, body)
}

/// The name of a Chinese protocol's data coding, as replies record it.
pub fn encoding_name(data_coding: u8) -> &'static str {
    match data_coding {
        DC_ASCII => "ascii",
        DC_UCS2 => "ucs2",
        DC_GBK => "gbk",
        DC_BINARY => "binary",
        _ => "utf8",
    }
}

/// Decodes received message content (no UDH) into text: 0 ASCII, 8 UCS2, 15 GBK/GB18030.
/// Never fails: undecodable bytes become U+FFFD; unknown codings are read as UTF-8, binary (4)
/// as lowercase hex.
pub fn decode_text(data_coding: u8, bytes: &[u8]) -> String {
    match data_coding {
        DC_UCS2 => {
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| match c {
                    [hi, lo] => u16::from_be_bytes([*hi, *lo]),
                    _ => 0xFFFD,
                })
                .collect();
            String::from_utf16_lossy(&units)
        }
        DC_GBK => encoding_rs::GBK
            .decode_without_bom_handling(bytes)
            .0
            .into_owned(),
        DC_BINARY => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Decodes a whole received payload: strips the UDH when `udhi` is set, then [`decode_text`].
pub fn decode_payload(data_coding: u8, udhi: bool, payload: &[u8]) -> (Option<Concat>, String) {
    let (concat, body) = if udhi {
        strip_udh(payload)
    } else {
        (None, payload)
    };
    (concat, decode_text(data_coding, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rejoin(segments: &[Segment]) -> String {
        segments
            .iter()
            .map(|s| decode_payload(s.data_coding, s.udhi, &s.payload).1)
            .collect()
    }

    #[test]
    fn short_ascii_is_one_part() {
        let s = split_text("hello");
        assert_eq!(s, vec![single(DC_ASCII, b"hello".to_vec())]);
        assert_eq!(split_text("").len(), 1);
        assert_eq!(split_text(&"a".repeat(159)).len(), 1);
    }

    #[test]
    fn long_ascii_is_153_per_part_with_udh() {
        let text = "x".repeat(160);
        let s = split_text(&text);
        assert_eq!(s.len(), 2);
        assert!(s
            .iter()
            .all(|p| p.udhi && p.total == 2 && p.data_coding == DC_ASCII));
        assert_eq!(s[0].payload.len(), 6 + 153);
        assert_eq!(s[1].payload.len(), 6 + 7);
        assert_eq!(&s[0].payload[..3], &[0x05, 0x00, 0x03]);
        assert_eq!(s[0].payload[3], s[1].payload[3], "same reference");
        assert_eq!((s[0].payload[4], s[0].payload[5]), (2, 1));
        assert_eq!((s[1].payload[4], s[1].payload[5]), (2, 2));
        assert_eq!(rejoin(&s), text);
    }

    #[test]
    fn split_140_keeps_every_part_within_140_octets() {
        assert_eq!(split_text_140(&"a".repeat(140)).len(), 1);
        let s = split_text_140(&"a".repeat(141));
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].payload.len(), 140);
        assert_eq!(rejoin(&s), "a".repeat(141));
        assert_eq!(split_text_140("你好"), split_text("你好").clone());
        for text in ["x".repeat(1000), "好".repeat(300)] {
            assert!(split_text_140(&text).iter().all(|p| p.payload.len() <= 140));
        }
    }

    #[test]
    fn chinese_is_ucs2() {
        let s = split_text("你好");
        assert_eq!(s, vec![single(DC_UCS2, vec![0x4F, 0x60, 0x59, 0x7D])]);
        assert_eq!(split_text(&"好".repeat(70)).len(), 1);
        let long = split_text(&"好".repeat(71));
        assert_eq!(long.len(), 2);
        assert_eq!(long[0].payload.len(), 6 + 134);
        assert_eq!(long[1].payload.len(), 6 + 8);
    }

    #[test]
    fn surrogate_pair_is_never_split() {
        // 66 BMP characters then an emoji: units 67 and 68 are a pair.
        let text = format!("{}😀{}", "好".repeat(66), "好".repeat(10));
        let s = split_text(&text);
        assert_eq!(s[0].payload.len(), 6 + 66 * 2);
        assert_eq!(rejoin(&s), text);
    }

    #[test]
    fn too_many_parts() {
        let text = "a".repeat(153 * 255 + 1);
        assert_eq!(
            try_split_text(&text),
            Err(TextError::TooManyParts { parts: 256 })
        );
        assert_eq!(split_text(&text).len(), 255);
        assert!(try_split_text(&"a".repeat(153 * 255)).is_ok());
    }

    #[test]
    fn decodes_each_coding() {
        assert_eq!(decode_text(DC_ASCII, b"TD"), "TD");
        assert_eq!(decode_text(DC_UCS2, &[0x4F, 0x60, 0x59, 0x7D]), "你好");
        assert_eq!(decode_text(DC_GBK, &[0xC4, 0xE3, 0xBA, 0xC3]), "你好");
        assert_eq!(decode_text(DC_BINARY, &[0xAB, 0x01]), "ab01");
        // Odd UCS2 length does not panic.
        assert_eq!(decode_text(DC_UCS2, &[0x00, 0x41, 0x00]), "A\u{FFFD}");
    }

    #[test]
    fn strips_both_udh_forms() {
        let (c, body) = strip_udh(&[5, 0, 3, 9, 2, 1, b'h', b'i']);
        assert_eq!(
            c,
            Some(Concat {
                reference: 9,
                total: 2,
                number: 1
            })
        );
        assert_eq!(body, b"hi");
        let (c, body) = strip_udh(&[6, 8, 4, 1, 2, 3, 3, b'!']);
        assert_eq!(
            c,
            Some(Concat {
                reference: 0x0102,
                total: 3,
                number: 3
            })
        );
        assert_eq!(body, b"!");
        assert_eq!(strip_udh(&[9, 1]), (None, &[9u8, 1][..]));
        assert_eq!(strip_udh(&[]), (None, &[][..]));
    }

    proptest! {
        #[test]
        fn split_then_decode_gives_the_text_back(text in "\\PC{0,400}") {
            let segments = split_text(&text);
            let total = segments.len();
            for (i, s) in segments.iter().enumerate() {
                prop_assert_eq!(s.total as usize, total);
                prop_assert_eq!(s.number as usize, i + 1);
                prop_assert_eq!(s.udhi, total > 1);
                let limit = if s.data_coding == DC_ASCII { 159 } else { 140 };
                prop_assert!(s.payload.len() <= limit);
            }
            prop_assert_eq!(rejoin(&segments), text);
        }

        #[test]
        fn decoders_never_panic(dc in any::<u8>(), udhi in any::<bool>(),
                                bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_payload(dc, udhi, &bytes);
        }
    }
}
