//! SMPP message text: the GSM 03.38 default alphabet (with its extension table) and the SMPP
//! long-message split, plus decoding of received SMPP content.
//!
//! Text that the GSM alphabet can hold goes out as data_coding 0, one septet per octet
//! (unpacked, as SMPP carries it; the SMSC packs for the air interface): 160 septets in one part,
//! 153 per concatenated part after a 6-byte UDH, an extension character (`€ [ ] { } ~ ^ \ |`,
//! form feed) counting two septets and never split from its escape. Other text goes out as UCS2
//! (data_coding 8): 70 UTF-16 units in one part, 67 per concatenated part, never splitting a
//! surrogate pair. CMPP's split (ASCII/UCS2) lives in [`crate::text`] and is not affected.
//! A link's signature counts toward the length whoever adds it: see [`split_smpp_signed`].

use crate::signature::Signature;
use crate::text::{self, Segment, TextError, Units, MAX_PARTS};

/// data_coding values SMPP uses [SMPP34 §5.2.19].
pub const DC_DEFAULT: u8 = 0;
pub const DC_IA5: u8 = 1;
pub const DC_BINARY: u8 = 2;
pub const DC_LATIN1: u8 = 3;
pub const DC_BINARY_8BIT: u8 = 4;
pub const DC_UCS2: u8 = 8;

const GSM_SINGLE: usize = 160;
const GSM_PART: usize = 153;
const UCS2_SINGLE: usize = 70;
const UCS2_PART: usize = 67;
const ESC: u8 = 0x1B;

/// The basic table, indexed by septet. 0x1B is the escape to the extension table.
const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table: (septet after ESC, character).
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// The septets for one character: one from the basic table, or ESC + one from the extension.
fn septets(c: char) -> Option<&'static [u8]> {
    // Static slices for every septet value, so the encoder needs no allocation per character.
    static ONE: [u8; 128] = {
        let mut a = [0u8; 128];
        let mut i = 0;
        while i < 128 {
            a[i] = i as u8;
            i += 1;
        }
        a
    };
    static ESCAPED: [[u8; 2]; 10] = [
        [ESC, 0x0A],
        [ESC, 0x14],
        [ESC, 0x28],
        [ESC, 0x29],
        [ESC, 0x2F],
        [ESC, 0x3C],
        [ESC, 0x3D],
        [ESC, 0x3E],
        [ESC, 0x40],
        [ESC, 0x65],
    ];
    if c == '\u{1B}' {
        return None;
    }
    if let Some(i) = BASIC.iter().position(|&b| b == c) {
        return Some(&ONE[i..=i]);
    }
    EXTENSION
        .iter()
        .position(|&(_, e)| e == c)
        .map(|i| &ESCAPED[i][..])
}

/// Whether every character of `text` is in the GSM default alphabet or its extension.
pub fn fits_gsm7(text: &str) -> bool {
    text.chars().all(|c| septets(c).is_some())
}

/// Encodes text as unpacked septets (one per octet); `None` if a character is not in the alphabet.
pub fn encode_gsm7(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        out.extend_from_slice(septets(c)?);
    }
    Some(out)
}

/// Decodes unpacked septets. An escape before an unknown code yields the basic character (as
/// GSM 03.38 asks), a trailing escape a space; bytes above 0x7F lose their top bit.
pub fn decode_gsm7(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut iter = bytes.iter().map(|b| b & 0x7F);
    while let Some(b) = iter.next() {
        if b == ESC {
            match iter.next() {
                Some(x) => out.push(
                    EXTENSION
                        .iter()
                        .find(|&&(code, _)| code == x)
                        .map_or(BASIC[usize::from(x)], |&(_, c)| c),
                ),
                None => out.push(' '),
            }
        } else {
            out.push(BASIC[usize::from(b)]);
        }
    }
    out
}

/// The whole text in one coding, unsplit (for SMPP's message_payload): GSM 7-bit unpacked
/// (data_coding 0) when the alphabet holds it, else UCS2 (8).
pub fn encode_smpp(text: &str) -> (u8, Vec<u8>) {
    match encode_gsm7(text) {
        Some(septets) => (DC_DEFAULT, septets),
        None => (
            DC_UCS2,
            ucs2_bytes(&text.encode_utf16().collect::<Vec<_>>()),
        ),
    }
}

/// Splits text into SMPP parts. Text needing more than [`MAX_PARTS`] parts is cut after the
/// 255th part (with a warning); use [`try_split_smpp`] to refuse it instead.
pub fn split_smpp(text: &str) -> Vec<Segment> {
    split_smpp_signed(text, None)
}

pub fn try_split_smpp(text: &str) -> Result<Vec<Segment>, TextError> {
    try_split_smpp_signed(text, None)
}

/// [`split_smpp`] for a link with an optional [`Signature`], which counts toward the length of
/// the part it lands in whoever adds it (see [`text::split_signed`]); the alphabet is chosen for
/// the delivered text, signature included.
pub fn split_smpp_signed(text: &str, signature: Option<&Signature>) -> Vec<Segment> {
    let (data_coding, mut chunks) = chunks_for(text, signature);
    if chunks.len() > MAX_PARTS {
        tracing::warn!(
            parts = chunks.len(),
            "message text truncated to {MAX_PARTS} parts"
        );
        chunks.truncate(MAX_PARTS);
    }
    text::assemble(data_coding, chunks)
}

pub fn try_split_smpp_signed(
    text: &str,
    signature: Option<&Signature>,
) -> Result<Vec<Segment>, TextError> {
    let (data_coding, chunks) = chunks_for(text, signature);
    if chunks.len() > MAX_PARTS {
        return Err(TextError::TooManyParts {
            parts: chunks.len(),
        });
    }
    Ok(text::assemble(data_coding, chunks))
}

/// The data_coding and the content of each part (without UDH).
fn chunks_for(text: &str, signature: Option<&Signature>) -> (u8, Vec<Vec<u8>>) {
    let gsm = encode_gsm7(text).zip(signature.map_or(Some(Vec::new()), |s| encode_gsm7(s.text())));
    if let Some((septets, _)) = gsm {
        let units = Units::join(septets, signature, |s| encode_gsm7(s).unwrap_or_default());
        // An escape ending a part would separate it from its character. Every escape in our
        // encoding starts a two-septet character, so a part may not end on one.
        let chunks = units
            .cut(GSM_SINGLE, GSM_PART, |last| last != ESC)
            .into_iter()
            .map(|range| units.sent(range))
            .collect();
        return (DC_DEFAULT, chunks);
    }
    let units = Units::join(text.encode_utf16().collect(), signature, |s| {
        s.encode_utf16().collect()
    });
    let chunks = units
        .cut(UCS2_SINGLE, UCS2_PART, |last| {
            !(0xD800..0xDC00).contains(&last)
        })
        .into_iter()
        .map(|range| ucs2_bytes(&units.sent(range)))
        .collect();
    (DC_UCS2, chunks)
}

fn ucs2_bytes(units: &[u16]) -> Vec<u8> {
    units.iter().flat_map(|u| u.to_be_bytes()).collect()
}

/// Decodes received SMPP content (no UDH): 0 GSM 7-bit unpacked, 1 IA5/ASCII, 3 Latin-1,
/// 8 UCS2, 2/4 binary as lowercase hex; anything else as [`text::decode_text`] reads it.
/// Never fails.
pub fn decode_smpp_text(data_coding: u8, bytes: &[u8]) -> String {
    match data_coding {
        DC_DEFAULT => decode_gsm7(bytes),
        DC_IA5 => String::from_utf8_lossy(bytes).into_owned(),
        DC_LATIN1 => bytes.iter().map(|&b| char::from(b)).collect(),
        DC_BINARY | DC_BINARY_8BIT => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        other => text::decode_text(other, bytes),
    }
}

/// The name of an SMPP data coding, as replies record it (what [`decode_smpp_text`] read).
pub fn smpp_encoding_name(data_coding: u8) -> &'static str {
    match data_coding {
        DC_DEFAULT => "gsm7",
        DC_IA5 => "ia5",
        DC_LATIN1 => "latin1",
        DC_BINARY | DC_BINARY_8BIT => "binary",
        other => text::encoding_name(other),
    }
}

/// Decodes a whole received payload: strips the UDH when `udhi` is set, then
/// [`decode_smpp_text`].
pub fn decode_smpp_payload(
    data_coding: u8,
    udhi: bool,
    payload: &[u8],
) -> (Option<text::Concat>, String) {
    let (concat, body) = if udhi {
        text::strip_udh(payload)
    } else {
        (None, payload)
    };
    (concat, decode_smpp_text(data_coding, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rejoin(segments: &[Segment]) -> String {
        segments
            .iter()
            .map(|s| decode_smpp_payload(s.data_coding, s.udhi, &s.payload).1)
            .collect()
    }

    #[test]
    fn table_is_a_bijection() {
        for (i, &c) in BASIC.iter().enumerate() {
            if i as u8 != ESC {
                assert_eq!(encode_gsm7(&c.to_string()), Some(vec![i as u8]), "{c:?}");
            }
        }
        for &(code, c) in &EXTENSION {
            assert_eq!(encode_gsm7(&c.to_string()), Some(vec![ESC, code]));
        }
        assert_eq!(encode_gsm7("@$_"), Some(vec![0x00, 0x02, 0x11]));
        assert_eq!(encode_gsm7("中"), None);
        assert_eq!(encode_gsm7("`"), None, "backtick is not in GSM 03.38");
        assert_eq!(decode_gsm7(&[0x1B, 0x65, 0x1B, 0x41, 0x1B]), "€A ");
    }

    #[test]
    fn gsm_limits_are_160_and_153() {
        assert_eq!(split_smpp(&"a".repeat(160)).len(), 1);
        let s = split_smpp(&"a".repeat(161));
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].payload.len(), 6 + 153);
        assert!(s.iter().all(|p| p.udhi && p.data_coding == DC_DEFAULT));
        assert_eq!(&s[0].payload[..3], &[0x05, 0x00, 0x03]);
        assert_eq!(s[0].payload[3], s[1].payload[3]);
        // Extension characters count two: 80 of them fill a single part.
        assert_eq!(split_smpp(&"€".repeat(80)).len(), 1);
        assert_eq!(split_smpp(&"€".repeat(81)).len(), 2);
        assert_eq!(split_smpp("").len(), 1);
    }

    #[test]
    fn escape_is_never_split_from_its_character() {
        // 152 plain septets then '{': the escape would be septet 153.
        let text = format!("{}{{tail{}", "a".repeat(152), "b".repeat(10));
        let s = split_smpp(&text);
        assert_eq!(s[0].payload.len(), 6 + 152);
        assert_eq!(&s[1].payload[6..8], &[ESC, 0x28]);
        assert_eq!(rejoin(&s), text);
    }

    #[test]
    fn non_gsm_is_ucs2_70_67() {
        assert_eq!(split_smpp(&"好".repeat(70)).len(), 1);
        let s = split_smpp(&"好".repeat(71));
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].payload.len(), 6 + 134);
        assert_eq!(s[0].data_coding, DC_UCS2);
        let text = format!("{}😀{}", "好".repeat(66), "好".repeat(10));
        let s = split_smpp(&text);
        assert_eq!(s[0].payload.len(), 6 + 66 * 2);
        assert_eq!(rejoin(&s), text);
    }

    #[test]
    fn too_many_parts_is_refused_or_cut() {
        let text = "a".repeat(153 * 255 + 1);
        assert_eq!(
            try_split_smpp(&text),
            Err(TextError::TooManyParts { parts: 256 })
        );
        assert_eq!(split_smpp(&text).len(), 255);
    }

    #[test]
    fn decodes_each_smpp_coding() {
        assert_eq!(decode_smpp_text(0, &[0x00, 0x02, 0x48, 0x69]), "@$Hi");
        assert_eq!(decode_smpp_text(1, b"Hi"), "Hi");
        assert_eq!(decode_smpp_text(3, &[0xE9]), "é");
        assert_eq!(decode_smpp_text(8, &[0x4F, 0x60]), "你");
        assert_eq!(decode_smpp_text(4, &[0xAB]), "ab");
    }

    #[test]
    fn a_signature_counts_in_gsm_septets_or_makes_the_text_ucs2() {
        use crate::signature::{AddedBy, Position, Signature};
        // '[' and ']' are extension characters: "[ACME]" is 8 septets.
        let carrier = Signature::new("[ACME]", AddedBy::Carrier, Position::Suffix).unwrap();
        assert_eq!(split_smpp_signed(&"a".repeat(152), Some(&carrier)).len(), 1);
        let two = split_smpp_signed(&"a".repeat(153), Some(&carrier));
        assert_eq!(two.len(), 2);
        // The suffix may not stand alone in the last part: one character keeps it company.
        assert_eq!(two[0].payload.len(), 6 + 152);
        assert_eq!(&two[1].payload[6..], b"a");
        let herald = Signature::new("[ACME]", AddedBy::Herald, Position::Prefix).unwrap();
        let sent = split_smpp_signed(&"a".repeat(153), Some(&herald));
        assert_eq!(sent.len(), 2);
        assert_eq!(
            &sent[0].payload[6..14],
            &[ESC, 0x3C, b'A', b'C', b'M', b'E', ESC, 0x3E]
        );
        assert_eq!(rejoin(&sent), format!("[ACME]{}", "a".repeat(153)));
        // A Chinese signature cannot be written in GSM: the message goes as UCS2, 70/67.
        let chinese = Signature::new("【国家电网】", AddedBy::Carrier, Position::Prefix).unwrap();
        let s = split_smpp_signed(&"a".repeat(65), Some(&chinese));
        assert!(s.iter().all(|p| p.data_coding == DC_UCS2));
        assert_eq!(s.len(), 2);
        assert_eq!(split_smpp_signed(&"a".repeat(64), Some(&chinese)).len(), 1);
    }

    /// Whether `part` ends in an escape that starts a two-septet character (an odd run of
    /// trailing escapes), i.e. a cut between an escape and its character.
    fn ends_with_escape(part: &[u8]) -> bool {
        part.iter().rev().take_while(|&&b| b == ESC).count() % 2 == 1
    }

    proptest! {
        #[test]
        fn split_then_decode_gives_the_text_back(
            text in prop_oneof!["[ -_a-~€£¥èéΔΩ{}\\[\\]|^~\\\\]{0,500}", "\\PC{0,300}"]
        ) {
            let segments = split_smpp(&text);
            let total = segments.len();
            for (i, s) in segments.iter().enumerate() {
                prop_assert_eq!(s.total as usize, total);
                prop_assert_eq!(s.number as usize, i + 1);
                prop_assert_eq!(s.udhi, total > 1);
                let limit = if s.data_coding == DC_DEFAULT { 160 } else { 140 };
                prop_assert!(s.payload.len() <= limit);
                if s.data_coding == DC_DEFAULT {
                    let body = if s.udhi { &s.payload[6..] } else { &s.payload[..] };
                    prop_assert!(!ends_with_escape(body), "part ends in an escape");
                }
            }
            prop_assert_eq!(rejoin(&segments), text);
        }

        #[test]
        fn decoders_never_panic(dc in any::<u8>(), udhi in any::<bool>(),
                                bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_smpp_payload(dc, udhi, &bytes);
        }
    }
}
