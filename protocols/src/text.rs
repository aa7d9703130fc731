//! Message text on the wire: choosing an encoding, splitting long text into concatenated parts
//! with a User Data Header, and decoding received content back into text.
//!
//! ASCII-only text goes out as data_coding 0 (CMPP Msg_Fmt 0 must stay below 160 bytes, so one
//! part holds 159 characters and a concatenated part 153 + a 6-byte UDH); anything else goes out
//! as UCS2 (data_coding 8, UTF-16BE: 70 units in one part, 67 per concatenated part), never
//! splitting a surrogate pair. The codes are shared by CMPP, SGIP and SMGP; SMPP maps its own.
//! A link's signature ([`Signature`]) counts toward the length whoever adds it: see
//! [`split_signed`].

use std::ops::Range;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use crate::signature::{AddedBy, Position, Signature};

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
    split_signed(text, AsciiParts::CMPP, None)
}

pub fn try_split_text(text: &str) -> Result<Vec<Segment>, TextError> {
    try_split_signed(text, AsciiParts::CMPP, None)
}

/// Octets one part may hold in protocols that cap every coding at 140 (SMGP, CNGP).
pub const MAX_OCTETS_140: usize = 140;

/// Like [`split_text`], for protocols whose parts hold at most 140 octets whatever the coding
/// (SMGP "MT ≤ 140 bytes", CNGP): ASCII goes 140 to a single part and 134 (+ 6-byte UDH) to a
/// concatenated one. UCS2 parts already fit, so other text splits exactly as [`split_text`].
pub fn split_text_140(text: &str) -> Vec<Segment> {
    split_signed(text, AsciiParts::OCTETS_140, None)
}

/// How many ASCII characters one part holds, which differs between protocols (UCS2 parts hold
/// 70 units alone and 67 concatenated everywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsciiParts {
    /// A message that fits in one part, without UDH.
    pub single: usize,
    /// One part of a concatenated message, after its 6-byte UDH.
    pub part: usize,
}

impl AsciiParts {
    /// CMPP and SGIP: Msg_Fmt 0 content must stay below 160 bytes.
    pub const CMPP: AsciiParts = AsciiParts {
        single: ASCII_SINGLE,
        part: ASCII_PART,
    };
    /// SMGP and CNGP: 140 octets in every coding.
    pub const OCTETS_140: AsciiParts = AsciiParts {
        single: MAX_OCTETS_140,
        part: MAX_OCTETS_140 - 6,
    };
}

/// Splits text for a link with an optional [`Signature`]: the signature counts toward the
/// length of the part it lands in (the first for a prefix, the last for a suffix) and is never
/// cut, nor left alone in a part. When Herald adds it, the parts carry it exactly once; when the
/// carrier adds it, the parts carry only the text but leave the room. The coding is chosen for
/// the delivered text, so a Chinese signature on ASCII text makes the message UCS2, as the
/// carrier's gateway will. Text needing more than [`MAX_PARTS`] parts is cut after the 255th
/// (with a warning); [`try_split_signed`] refuses it instead.
pub fn split_signed(text: &str, ascii: AsciiParts, signature: Option<&Signature>) -> Vec<Segment> {
    let (data_coding, mut chunks) = chunks(text, ascii, signature);
    if chunks.len() > MAX_PARTS {
        tracing::warn!(
            parts = chunks.len(),
            "message text truncated to {MAX_PARTS} parts"
        );
        chunks.truncate(MAX_PARTS);
    }
    assemble(data_coding, chunks)
}

pub fn try_split_signed(
    text: &str,
    ascii: AsciiParts,
    signature: Option<&Signature>,
) -> Result<Vec<Segment>, TextError> {
    let (data_coding, chunks) = chunks(text, ascii, signature);
    if chunks.len() > MAX_PARTS {
        return Err(TextError::TooManyParts {
            parts: chunks.len(),
        });
    }
    Ok(assemble(data_coding, chunks))
}

/// The coding and the content of each part, UDH not yet added.
fn chunks(text: &str, ascii: AsciiParts, signature: Option<&Signature>) -> (u8, Vec<Vec<u8>>) {
    let delivered_ascii = text.is_ascii() && signature.is_none_or(|s| s.text().is_ascii());
    if delivered_ascii {
        let units = Units::join(text.as_bytes().to_vec(), signature, |s| {
            s.as_bytes().to_vec()
        });
        let chunks = units
            .cut(ascii.single, ascii.part, |_| true)
            .into_iter()
            .map(|range| units.sent(range))
            .collect();
        return (DC_ASCII, chunks);
    }
    let units = Units::join(text.encode_utf16().collect(), signature, |s| {
        s.encode_utf16().collect()
    });
    let chunks = units
        .cut(UCS2_SINGLE, UCS2_PART, |before| !is_high_surrogate(before))
        .into_iter()
        .map(|range| ucs2_bytes(&units.sent(range)))
        .collect();
    (DC_UCS2, chunks)
}

/// A message's text in wire units (octets, septets or UTF-16 units) as the recipient gets it,
/// the signature joined on its side, and where the signature sits among them.
pub(crate) struct Units<U> {
    units: Vec<U>,
    /// The signature's units, and whether Herald sends them (else the carrier adds them).
    signature: Option<(Range<usize>, AddedBy)>,
}

impl<U: Copy> Units<U> {
    /// Joins the text's units and the signature's (encoded by `encode`) in delivery order.
    pub(crate) fn join(
        text: Vec<U>,
        signature: Option<&Signature>,
        encode: impl Fn(&str) -> Vec<U>,
    ) -> Units<U> {
        let Some(sig) = signature else {
            return Units {
                units: text,
                signature: None,
            };
        };
        let sig_units = encode(sig.text());
        let n = sig_units.len();
        let (units, range) = match sig.position() {
            Position::Prefix => ([sig_units, text].concat(), 0..n),
            Position::Suffix => {
                let start = text.len();
                ([text, sig_units].concat(), start..start + n)
            }
        };
        Units {
            units,
            signature: Some((range, sig.added_by())),
        }
    }

    /// Cuts the units into parts: one when they all fit in `single`, else parts of at most
    /// `part`. A part that would end before a unit the coding cannot cut before (`cut_ok` sees
    /// the unit the part would end on), or inside the signature, or so that the signature stands
    /// alone in its part, ends earlier instead.
    pub(crate) fn cut(
        &self,
        single: usize,
        part: usize,
        cut_ok: impl Fn(U) -> bool,
    ) -> Vec<Range<usize>> {
        let len = self.units.len();
        if len <= single {
            let whole = 0..len;
            return vec![whole];
        }
        let may_end_at = |end: usize| {
            end == len
                || (cut_ok(self.units[end - 1])
                    && self
                        .signature
                        .as_ref()
                        .is_none_or(|(sig, _)| end < sig.start || end > sig.end))
        };
        let mut parts = Vec::new();
        let mut start = 0;
        while start < len {
            let full = (start + part).min(len);
            let end = (start + 1..=full)
                .rev()
                .find(|&end| may_end_at(end))
                // Capacities far below the signature's length leave no allowed cut: cut anyway.
                .unwrap_or(full);
            parts.push(start..end);
            start = end;
        }
        parts
    }

    /// The units of one part that go on the wire: the signature's only when Herald adds it.
    pub(crate) fn sent(&self, range: Range<usize>) -> Vec<U> {
        match &self.signature {
            Some((sig, AddedBy::Carrier)) => range
                .filter(|i| !sig.contains(i))
                .map(|i| self.units[i])
                .collect(),
            _ => self.units[range].to_vec(),
        }
    }
}

fn is_high_surrogate(u: u16) -> bool {
    (0xD800..0xDC00).contains(&u)
}

fn ucs2_bytes(units: &[u16]) -> Vec<u8> {
    units.iter().flat_map(|u| u.to_be_bytes()).collect()
}

/// Turns the parts' contents into segments: one without UDH, or several each behind an 8-bit
/// reference concatenation UDH (`05 00 03 ref total number`).
pub(crate) fn assemble(data_coding: u8, chunks: Vec<Vec<u8>>) -> Vec<Segment> {
    if chunks.len() <= 1 {
        return vec![Segment {
            data_coding,
            payload: chunks.into_iter().next().unwrap_or_default(),
            udhi: false,
            total: 1,
            number: 1,
        }];
    }
    let reference = next_reference();
    let total = chunks.len().min(MAX_PARTS) as u8;
    chunks
        .into_iter()
        .take(MAX_PARTS)
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
pub(crate) fn next_reference() -> u8 {
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

    fn single(data_coding: u8, payload: Vec<u8>) -> Segment {
        Segment {
            data_coding,
            payload,
            udhi: false,
            total: 1,
            number: 1,
        }
    }

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
        // GB18030 beyond GBK: a four-byte sequence (U+20000), and the euro sign and ǹ at the
        // two-byte places GB18030 gave them.
        assert_eq!(
            decode_text(DC_GBK, &[0x95, 0x32, 0x82, 0x36, 0xA2, 0xE3, 0xA8, 0xBF]),
            "\u{20000}\u{20AC}\u{01F9}"
        );
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

    /// A six-character signature, as carriers register them.
    const SIG6: &str = "【国家电网】";

    fn sig(added_by: AddedBy, position: Position) -> Signature {
        Signature::new(SIG6, added_by, position).unwrap()
    }

    /// The UTF-16 units each part carries after its UDH.
    fn ucs2_units(segments: &[Segment]) -> Vec<usize> {
        segments
            .iter()
            .map(|s| (s.payload.len() - if s.udhi { 6 } else { 0 }) / 2)
            .collect()
    }

    fn cmpp(text: &str, signature: &Signature) -> Vec<Segment> {
        split_signed(text, AsciiParts::CMPP, Some(signature))
    }

    #[test]
    fn ucs2_boundaries_without_a_signature() {
        assert_eq!(ucs2_units(&split_text(&"电".repeat(67))), vec![67]);
        assert_eq!(ucs2_units(&split_text(&"电".repeat(70))), vec![70]);
        assert_eq!(ucs2_units(&split_text(&"电".repeat(71))), vec![67, 4]);
        assert_eq!(ucs2_units(&split_text(&"电".repeat(134))), vec![67, 67]);
        assert_eq!(ucs2_units(&split_text(&"电".repeat(135))), vec![67, 67, 1]);
    }

    #[test]
    fn a_carrier_added_signature_takes_room_in_the_first_part() {
        let s = sig(AddedBy::Carrier, Position::Prefix);
        // 64 + 6 = 70 still fits one part; the carrier's signature makes 67 or 70 overflow it.
        assert_eq!(ucs2_units(&cmpp(&"电".repeat(64), &s)), vec![64]);
        assert_eq!(ucs2_units(&cmpp(&"电".repeat(65), &s)), vec![61, 4]);
        assert_eq!(ucs2_units(&cmpp(&"电".repeat(67), &s)), vec![61, 6]);
        assert_eq!(ucs2_units(&cmpp(&"电".repeat(70), &s)), vec![61, 9]);
        // Two full parts hold 134 units, 128 of them text.
        assert_eq!(ucs2_units(&cmpp(&"电".repeat(128), &s)), vec![61, 67]);
        assert_eq!(ucs2_units(&cmpp(&"电".repeat(129), &s)), vec![61, 67, 1]);
        // What goes out is the text alone.
        let text = "电".repeat(70);
        assert_eq!(rejoin(&cmpp(&text, &s)), text);
    }

    #[test]
    fn a_carrier_added_suffix_takes_room_in_the_last_part() {
        let s = sig(AddedBy::Carrier, Position::Suffix);
        assert_eq!(ucs2_units(&cmpp(&"电".repeat(64), &s)), vec![64]);
        // 67 text units would fill part 1, leaving the signature alone in part 2: one moves.
        assert_eq!(ucs2_units(&cmpp(&"电".repeat(67), &s)), vec![66, 1]);
        assert_eq!(ucs2_units(&cmpp(&"电".repeat(70), &s)), vec![67, 3]);
        assert_eq!(ucs2_units(&cmpp(&"电".repeat(128), &s)), vec![67, 61]);
        assert_eq!(ucs2_units(&cmpp(&"电".repeat(129), &s)), vec![67, 61, 1]);
    }

    #[test]
    fn a_herald_added_signature_is_sent_once_in_the_first_or_last_part() {
        let text = "电".repeat(70);
        let prefix = cmpp(&text, &sig(AddedBy::Herald, Position::Prefix));
        assert_eq!(ucs2_units(&prefix), vec![67, 9]);
        assert!(decode_payload(DC_UCS2, true, &prefix[0].payload)
            .1
            .starts_with(SIG6));
        assert_eq!(rejoin(&prefix), format!("{SIG6}{text}"));

        let suffix = cmpp(&text, &sig(AddedBy::Herald, Position::Suffix));
        assert_eq!(ucs2_units(&suffix), vec![67, 9]);
        assert!(decode_payload(DC_UCS2, true, &suffix[1].payload)
            .1
            .ends_with(SIG6));
        assert_eq!(rejoin(&suffix), format!("{text}{SIG6}"));

        // Fits one part with the signature: 64 + 6.
        let one = cmpp(&"电".repeat(64), &sig(AddedBy::Herald, Position::Suffix));
        assert_eq!(ucs2_units(&one), vec![70]);
        assert_eq!(rejoin(&one), format!("{}{SIG6}", "电".repeat(64)));
    }

    #[test]
    fn ascii_signatures_count_in_ascii_parts_and_chinese_ones_make_the_text_ucs2() {
        let acme = |by| Signature::new("[ACME]", by, Position::Prefix).unwrap();
        let carrier = acme(AddedBy::Carrier);
        assert_eq!(cmpp(&"a".repeat(153), &carrier).len(), 1);
        let two = cmpp(&"a".repeat(154), &carrier);
        assert_eq!(two.len(), 2);
        assert_eq!(two[0].payload.len(), 6 + 153 - 6);
        assert_eq!(two[0].data_coding, DC_ASCII);
        let herald = split_signed("hi", AsciiParts::OCTETS_140, Some(&acme(AddedBy::Herald)));
        assert_eq!(herald, vec![single(DC_ASCII, b"[ACME]hi".to_vec())]);
        assert_eq!(
            split_signed(&"a".repeat(135), AsciiParts::OCTETS_140, Some(&carrier)).len(),
            2,
            "140-octet parts: 134 + 6 fit one, 135 do not"
        );
        // The carrier will send ASCII text with a Chinese signature as UCS2: count it so.
        let chinese = cmpp("hello", &sig(AddedBy::Carrier, Position::Suffix));
        assert_eq!(
            chinese,
            vec![single(
                DC_UCS2,
                ucs2_bytes(&"hello".encode_utf16().collect::<Vec<_>>())
            )]
        );
        assert_eq!(
            cmpp(&"a".repeat(65), &sig(AddedBy::Carrier, Position::Suffix)).len(),
            2
        );
    }

    #[test]
    fn a_signature_never_splits_a_surrogate_pair() {
        // Part 1 holds 61 text units after the signature; unit 61 and 62 are an emoji.
        let text = format!("{}😀{}", "电".repeat(60), "电".repeat(10));
        let s = cmpp(&text, &sig(AddedBy::Herald, Position::Prefix));
        assert_eq!(ucs2_units(&s), vec![66, 12]);
        assert_eq!(rejoin(&s), format!("{SIG6}{text}"));
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
        fn a_signature_lands_whole_once_and_every_part_keeps_its_room(
            text in "\\PC{1,300}",
            signature in "[a-z【】国网]{1,20}",
            herald in any::<bool>(),
            prefix in any::<bool>(),
            octets_140 in any::<bool>(),
        ) {
            let added_by = if herald { AddedBy::Herald } else { AddedBy::Carrier };
            let position = if prefix { Position::Prefix } else { Position::Suffix };
            let sig = Signature::new(signature.clone(), added_by, position).unwrap();
            let ascii = if octets_140 { AsciiParts::OCTETS_140 } else { AsciiParts::CMPP };
            let segments = split_signed(&text, ascii, Some(&sig));
            prop_assert_eq!(rejoin(&segments), sig.sent(&text));
            let last = segments.len() - 1;
            let (home, others) = if prefix { (0, 1..=last) } else { (last, 0..=last.saturating_sub(1)) };
            // The part the carrier writes the signature into, with it, fits that part.
            let (limit_single, limit_part) = if segments[0].data_coding == DC_ASCII {
                (ascii.single, ascii.part)
            } else {
                (UCS2_SINGLE * 2, UCS2_PART * 2)
            };
            let limit = if segments.len() == 1 { limit_single } else { limit_part };
            let body = |s: &Segment| s.payload.len() - if s.udhi { 6 } else { 0 };
            let sig_octets = if segments[0].data_coding == DC_ASCII {
                signature.len()
            } else {
                signature.encode_utf16().count() * 2
            };
            let home_len = body(&segments[home]) + if herald { 0 } else { sig_octets };
            prop_assert!(home_len <= limit, "part {} holds {} > {}", home + 1, home_len, limit);
            let home_text = decode_payload(segments[home].data_coding, segments[home].udhi, &segments[home].payload).1;
            prop_assert!(home_text.chars().count() > if herald { sig.chars() } else { 0 }, "text beside the signature");
            if herald {
                let placed = if prefix {
                    home_text.starts_with(&signature)
                } else {
                    home_text.ends_with(&signature)
                };
                prop_assert!(placed, "signature at the {position:?} of part {}", home + 1);
            }
            if segments.len() > 1 {
                for i in others {
                    prop_assert!(body(&segments[i]) <= limit);
                }
            }
        }

        #[test]
        fn decoders_never_panic(dc in any::<u8>(), udhi in any::<bool>(),
                                bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_payload(dc, udhi, &bytes);
        }
    }
}
