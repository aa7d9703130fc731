//! A link's signature — 【国网】, sometimes followed by "回复TD退订" — and who puts it in the
//! message. Chinese carriers require one on every message: either the carrier adds it, or the
//! sender must. Either way the recipient's phone receives it as part of the text, so it takes
//! room in a part: a splitter that ignores it sends a part 1 that overflows once the carrier adds
//! the signature (PROTOCOLS.md §5, SMSGate #17).
//!
//! This module only reads the link options that describe the signature and answers what the
//! delivered text is; the room is reserved where text is cut into parts ([`crate::text`] and
//! [`crate::gsm7`]), and the node counts it against its text length limit.

use std::collections::BTreeMap;

/// The link option holding the signature's text.
pub const OPTION: &str = "signature";
/// The link option saying who adds it: `carrier` or `herald`.
pub const ADDED_BY_OPTION: &str = "signature-added-by";
/// The link option saying where it goes: `prefix` or `suffix`.
pub const POSITION_OPTION: &str = "signature-position";
/// Every signature option, for lists of accepted names.
pub const OPTIONS: [&str; 3] = [OPTION, ADDED_BY_OPTION, POSITION_OPTION];

/// Longest signature accepted, in characters: a registered 【…】 signature is at most a dozen
/// characters, and 20 leaves room for "回复TD退订" while keeping text in every part.
pub const MAX_CHARS: usize = 20;

/// Who writes the signature into the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddedBy {
    /// The carrier's gateway adds it: Herald sends the text alone but leaves room for it.
    Carrier,
    /// Herald adds it: the text sent carries it exactly once, in the first or the last part.
    Herald,
}

/// Where the signature sits in the delivered text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Before the text, so in the first part of a long message.
    Prefix,
    /// After the text, so in the last part of a long message.
    Suffix,
}

/// A link's signature, checked: non-empty, at most [`MAX_CHARS`] characters, no control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    text: String,
    added_by: AddedBy,
    position: Position,
}

impl Signature {
    pub fn new(
        text: impl Into<String>,
        added_by: AddedBy,
        position: Position,
    ) -> Result<Signature, String> {
        let text = text.into();
        let chars = text.chars().count();
        if chars == 0 {
            return Err(format!(
                "option {OPTION} = \"\": must not be empty (leave the option out for no signature)"
            ));
        }
        if chars > MAX_CHARS {
            return Err(format!(
                "option {OPTION} = {text:?}: at most {MAX_CHARS} characters, got {chars}"
            ));
        }
        if text.chars().any(char::is_control) {
            return Err(format!(
                "option {OPTION} = {text:?}: must not contain control characters"
            ));
        }
        Ok(Signature {
            text,
            added_by,
            position,
        })
    }

    /// Reads the signature options of a link. `None` when the link has no `signature`; the
    /// other two options are then refused, and with a signature both are required, because
    /// guessing either wrong puts the signature in twice, or leaves a part without room for it.
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<Option<Signature>, String> {
        let added_by = options.get(ADDED_BY_OPTION).map(|v| v.trim());
        let position = options.get(POSITION_OPTION).map(|v| v.trim());
        let Some(text) = options.get(OPTION) else {
            if let Some(name) = [(ADDED_BY_OPTION, added_by), (POSITION_OPTION, position)]
                .iter()
                .find_map(|(name, v)| v.map(|_| name))
            {
                return Err(format!(
                    "option {name} needs option {OPTION} (the signature's text)"
                ));
            }
            return Ok(None);
        };
        let added_by = match added_by.map(str::to_ascii_lowercase).as_deref() {
            Some("carrier") => AddedBy::Carrier,
            Some("herald") => AddedBy::Herald,
            Some(_) => {
                return Err(format!(
                    "option {ADDED_BY_OPTION} = {:?}: must be carrier or herald",
                    options[ADDED_BY_OPTION]
                ))
            }
            None => {
                return Err(format!(
                    "option {ADDED_BY_OPTION} is required with {OPTION}: carrier (the gateway \
                     adds it) or herald (Herald sends it)"
                ))
            }
        };
        let position = match position.map(str::to_ascii_lowercase).as_deref() {
            Some("prefix") => Position::Prefix,
            Some("suffix") => Position::Suffix,
            Some(_) => {
                return Err(format!(
                    "option {POSITION_OPTION} = {:?}: must be prefix or suffix",
                    options[POSITION_OPTION]
                ))
            }
            None => {
                return Err(format!(
                    "option {POSITION_OPTION} is required with {OPTION}: prefix or suffix"
                ))
            }
        };
        Signature::new(text.clone(), added_by, position).map(Some)
    }

    /// The options without the signature's, for the protocol's own option parser (which
    /// refuses names it does not know).
    pub fn other_options(options: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        options
            .iter()
            .filter(|(name, _)| !OPTIONS.contains(&name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Its length as the length limits count it: in characters.
    pub fn chars(&self) -> usize {
        self.text.chars().count()
    }

    pub fn added_by(&self) -> AddedBy {
        self.added_by
    }

    pub fn position(&self) -> Position {
        self.position
    }

    /// The text as the recipient receives it, signature included whoever adds it.
    pub fn delivered(&self, text: &str) -> String {
        match self.position {
            Position::Prefix => format!("{}{text}", self.text),
            Position::Suffix => format!("{text}{}", self.text),
        }
    }

    /// The text as Herald sends it: with the signature when Herald adds it, else unchanged.
    pub fn sent(&self, text: &str) -> String {
        match self.added_by {
            AddedBy::Herald => self.delivered(text),
            AddedBy::Carrier => text.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec_tests::options;

    #[test]
    fn reads_the_three_options() {
        let sig = Signature::from_options(&options(&[
            ("signature", "【国网】"),
            ("signature-added-by", "Herald"),
            ("signature-position", "suffix"),
            ("version", "2"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(sig.text(), "【国网】");
        assert_eq!(sig.chars(), 4);
        assert_eq!(sig.added_by(), AddedBy::Herald);
        assert_eq!(sig.position(), Position::Suffix);
        assert_eq!(sig.sent("停电通知"), "停电通知【国网】");
        assert_eq!(
            Signature::from_options(&options(&[("version", "2")])),
            Ok(None)
        );
    }

    #[test]
    fn carrier_added_signature_is_counted_but_not_sent() {
        let sig = Signature::new("【国网】", AddedBy::Carrier, Position::Prefix).unwrap();
        assert_eq!(sig.delivered("hi"), "【国网】hi");
        assert_eq!(sig.sent("hi"), "hi");
    }

    #[test]
    fn bad_options_name_the_option_and_the_rule() {
        for (pairs, needle) in [
            (
                vec![("signature", "【国网】"), ("signature-position", "prefix")],
                "signature-added-by is required",
            ),
            (
                vec![("signature", "【国网】"), ("signature-added-by", "carrier")],
                "signature-position is required",
            ),
            (
                vec![
                    ("signature", "【国网】"),
                    ("signature-added-by", "gateway"),
                    ("signature-position", "prefix"),
                ],
                "signature-added-by = \"gateway\": must be carrier or herald",
            ),
            (
                vec![
                    ("signature", "【国网】"),
                    ("signature-added-by", "carrier"),
                    ("signature-position", "middle"),
                ],
                "signature-position = \"middle\": must be prefix or suffix",
            ),
            (
                vec![("signature-added-by", "carrier")],
                "signature-added-by needs option signature",
            ),
            (
                vec![
                    ("signature", ""),
                    ("signature-added-by", "carrier"),
                    ("signature-position", "prefix"),
                ],
                "must not be empty",
            ),
            (
                vec![
                    ("signature", "【一二三四五六七八九十一二三四五六七八九】"),
                    ("signature-added-by", "carrier"),
                    ("signature-position", "prefix"),
                ],
                "at most 20 characters, got 21",
            ),
            (
                vec![
                    ("signature", "【国\n网】"),
                    ("signature-added-by", "carrier"),
                    ("signature-position", "prefix"),
                ],
                "control characters",
            ),
        ] {
            let err = Signature::from_options(&options(&pairs)).unwrap_err();
            assert!(err.contains(needle), "{err:?} should contain {needle:?}");
        }
    }

    #[test]
    fn other_options_drop_only_the_signature() {
        let rest = Signature::other_options(&options(&[
            ("signature", "【国网】"),
            ("signature-added-by", "carrier"),
            ("signature-position", "prefix"),
            ("bind", "pair"),
        ]));
        assert_eq!(rest, options(&[("bind", "pair")]));
    }
}
