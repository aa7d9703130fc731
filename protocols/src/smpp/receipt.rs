//! SMPP delivery receipts: the de-facto receipt text of [SMPP34 Appendix B]
//! (`id:… sub:… dlvrd:… submit date:… done date:… stat:… err:… text:…`) and the message-id
//! formats SMSCs use.
//!
//! The receipt text is vendor specific, so parsing is lenient: keys in any case and order,
//! `submit_date` as well as `submit date`, unknown keys skipped; only `id` and `stat` are
//! required. Message ids are the classic trap (PROTOCOLS.md §5, "DLR for unknown message id"):
//! some SMSCs answer submit_sm with a hex id and write the receipt's id in decimal, or the
//! reverse. [`IdFormat`] and [`convert_id`] put both into one canonical form so they match.

use std::fmt;
use std::str::FromStr;

/// How an SMSC writes a message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdFormat {
    /// An opaque string, compared as given (trimmed).
    #[default]
    AsIs,
    /// A hexadecimal number; canonical form uppercase without leading zeros.
    Hex,
    /// A decimal number; canonical form without leading zeros.
    Decimal,
}

impl FromStr for IdFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "as-is" | "asis" | "text" | "string" => Ok(IdFormat::AsIs),
            "hex" | "hexadecimal" => Ok(IdFormat::Hex),
            "decimal" | "dec" => Ok(IdFormat::Decimal),
            _ => Err(format!("{s:?} is not one of as-is, hex, decimal")),
        }
    }
}

impl fmt::Display for IdFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdFormat::AsIs => "as-is",
            IdFormat::Hex => "hex",
            IdFormat::Decimal => "decimal",
        })
    }
}

impl IdFormat {
    fn parse(self, id: &str) -> Option<u128> {
        match self {
            IdFormat::AsIs => None,
            IdFormat::Hex => u128::from_str_radix(id, 16).ok(),
            IdFormat::Decimal => id.parse().ok(),
        }
    }

    /// Writes `n` in this format (as-is writes decimal).
    pub fn format(self, n: u128) -> String {
        match self {
            IdFormat::Hex => format!("{n:X}"),
            IdFormat::AsIs | IdFormat::Decimal => n.to_string(),
        }
    }
}

/// Rewrites an id written in `from` into the canonical form of `to`. With `as-is` on either side,
/// or an id that does not parse in `from`, the trimmed id is returned unchanged, so a mismatch
/// surfaces as an unmatched report rather than a wrong match.
pub fn convert_id(id: &str, from: IdFormat, to: IdFormat) -> String {
    let id = id.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if to == IdFormat::AsIs {
        return id.to_string();
    }
    match from.parse(id) {
        Some(n) => to.format(n),
        None => id.to_string(),
    }
}

/// The fields of a receipt text. Absent fields are empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiptText {
    pub id: String,
    pub sub: String,
    pub dlvrd: String,
    /// YYMMDDhhmm (some SMSCs add seconds).
    pub submit_date: String,
    pub done_date: String,
    pub stat: String,
    pub err: String,
    pub text: String,
}

#[derive(Clone, Copy)]
enum Key {
    Id,
    Sub,
    Dlvrd,
    SubmitDate,
    DoneDate,
    Stat,
    Err,
    Text,
}

/// Longer keys first, so `submit date` is not read as an unknown word.
const KEYS: &[(&str, Key)] = &[
    ("submit date", Key::SubmitDate),
    ("submit_date", Key::SubmitDate),
    ("done date", Key::DoneDate),
    ("done_date", Key::DoneDate),
    ("dlvrd", Key::Dlvrd),
    ("stat", Key::Stat),
    ("text", Key::Text),
    ("sub", Key::Sub),
    ("err", Key::Err),
    ("id", Key::Id),
];

/// Parses a receipt text; `None` unless it has both an `id` and a `stat`.
pub fn parse_receipt(text: &str) -> Option<ReceiptText> {
    let bytes = text.as_bytes();
    let lower = text.to_ascii_lowercase();
    let lower = lower.as_bytes();
    let mut out = ReceiptText::default();
    let mut i = 0;
    'scan: while i < bytes.len() {
        if i == 0 || bytes[i - 1].is_ascii_whitespace() {
            for (name, key) in KEYS {
                let k = name.as_bytes();
                if lower[i..].starts_with(k) && lower.get(i + k.len()) == Some(&b':') {
                    let start = i + k.len() + 1;
                    let end = if matches!(key, Key::Text) {
                        bytes.len()
                    } else {
                        bytes[start..]
                            .iter()
                            .position(u8::is_ascii_whitespace)
                            .map_or(bytes.len(), |p| start + p)
                    };
                    // start and end sit next to ASCII bytes, so they are char boundaries.
                    let value = text.get(start..end).unwrap_or_default().to_string();
                    let slot = match key {
                        Key::Id => &mut out.id,
                        Key::Sub => &mut out.sub,
                        Key::Dlvrd => &mut out.dlvrd,
                        Key::SubmitDate => &mut out.submit_date,
                        Key::DoneDate => &mut out.done_date,
                        Key::Stat => &mut out.stat,
                        Key::Err => &mut out.err,
                        Key::Text => &mut out.text,
                    };
                    *slot = value;
                    i = end.max(i + 1);
                    continue 'scan;
                }
            }
        }
        i += 1;
    }
    (!out.id.is_empty() && !out.stat.is_empty()).then_some(out)
}

/// Writes the receipt text in the common layout (three-digit counts, `text:` last).
pub fn format_receipt(r: &ReceiptText) -> String {
    format!(
        "id:{} sub:{} dlvrd:{} submit date:{} done date:{} stat:{} err:{} text:{}",
        r.id, r.sub, r.dlvrd, r.submit_date, r.done_date, r.stat, r.err, r.text
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_appendix_b_layout() {
        let r = parse_receipt(
            "id:0123456789 sub:001 dlvrd:001 submit date:2511250701 done date:2511250702 \
             stat:DELIVRD err:000 text:Hello world",
        )
        .expect("parses");
        assert_eq!(
            r,
            ReceiptText {
                id: "0123456789".into(),
                sub: "001".into(),
                dlvrd: "001".into(),
                submit_date: "2511250701".into(),
                done_date: "2511250702".into(),
                stat: "DELIVRD".into(),
                err: "000".into(),
                text: "Hello world".into(),
            }
        );
    }

    #[test]
    fn parses_vendor_variants() {
        let r = parse_receipt("ID:A1B2 Stat:UNDELIV Err:0B Submit_Date:2511250701 Text:")
            .expect("parses");
        assert_eq!(
            (r.id.as_str(), r.stat.as_str(), r.err.as_str()),
            ("A1B2", "UNDELIV", "0B")
        );
        assert_eq!(r.submit_date, "2511250701");
        assert!(parse_receipt("hello, your code is 1234").is_none());
        assert!(parse_receipt("id:1 sub:001").is_none(), "no stat");
        // "text:" swallows the rest, even key-like words.
        let r = parse_receipt("id:9 stat:DELIVRD text:stat:FAKE id:0").expect("parses");
        assert_eq!((r.id.as_str(), r.stat.as_str()), ("9", "DELIVRD"));
        assert_eq!(r.text, "stat:FAKE id:0");
    }

    #[test]
    fn ids_convert_between_hex_and_decimal() {
        assert_eq!(convert_id("00A1", IdFormat::Hex, IdFormat::Decimal), "161");
        assert_eq!(convert_id("161", IdFormat::Decimal, IdFormat::Hex), "A1");
        assert_eq!(convert_id("00a1", IdFormat::Hex, IdFormat::Hex), "A1");
        assert_eq!(
            convert_id(" 00a1\0", IdFormat::AsIs, IdFormat::AsIs),
            "00a1"
        );
        assert_eq!(convert_id("zz", IdFormat::Hex, IdFormat::Decimal), "zz");
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(id in "[0-9A-F]{1,20}", stat in "[A-Z]{7}",
                                          text in "[ -~]{0,20}") {
            let r = ReceiptText {
                id, sub: "001".into(), dlvrd: "001".into(),
                submit_date: "2511250701".into(), done_date: "2511250702".into(),
                stat, err: "000".into(), text,
            };
            prop_assert_eq!(parse_receipt(&format_receipt(&r)), Some(r));
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,200}") {
            let _ = parse_receipt(&s);
        }

        #[test]
        fn hex_and_decimal_agree(n in any::<u64>()) {
            let hex = IdFormat::Hex.format(u128::from(n));
            let dec = IdFormat::Decimal.format(u128::from(n));
            prop_assert_eq!(convert_id(&hex, IdFormat::Hex, IdFormat::Decimal), dec.clone());
            prop_assert_eq!(convert_id(&dec, IdFormat::Decimal, IdFormat::Hex), hex);
        }
    }
}
