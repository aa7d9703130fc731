//! Optional parameters as Tag 2 + Length 2 + Value, the way SMGP 3.0.3 and CNGP 2.0 append them
//! after a PDU's fixed fields.
//!
//! The framing is shared; which tags exist and how long each may be is not, so every codec passes
//! its own table of [`TlvSpec`]s. Known tags are checked against their table entry (a one-byte
//! parameter with length 2 is an error); unknown tags are kept as raw bytes so a newer gateway's
//! extras survive a decode and re-encode.

use bytes::{BufMut, BytesMut};

use super::wire::{trim_octets, CodecError, Reader};

/// How a known tag's value is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlvKind {
    /// Exactly one byte (Integer 1).
    U8,
    /// An Octet String of at most `max` bytes. `fixed`: written NUL-padded to `max`, as the
    /// spec gives the parameter a fixed length; shorter values are still accepted when read.
    Text { max: usize, fixed: bool },
}

/// One row of a protocol's TLV table.
#[derive(Debug, Clone, Copy)]
pub struct TlvSpec {
    pub tag: u16,
    pub name: &'static str,
    pub kind: TlvKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlvValue {
    U8(u8),
    Text(String),
    /// A tag the table does not know.
    Raw(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    pub tag: u16,
    pub value: TlvValue,
}

/// The TLVs of one PDU, in wire order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tlvs(pub Vec<Tlv>);

fn spec(table: &[TlvSpec], tag: u16) -> Option<&TlvSpec> {
    table.iter().find(|s| s.tag == tag)
}

impl Tlvs {
    /// Decodes everything left in `r` as TLVs.
    pub fn decode(r: &mut Reader<'_>, table: &[TlvSpec]) -> Result<Tlvs, CodecError> {
        let mut out = Vec::new();
        while r.remaining() > 0 {
            let tag = r.u16()?;
            let len = r.u16()? as usize;
            let raw = r.take(len)?;
            let value = match spec(table, tag) {
                None => TlvValue::Raw(raw.to_vec()),
                Some(s) => match s.kind {
                    TlvKind::U8 => {
                        if len != 1 {
                            return Err(CodecError::BadTlvLength {
                                tag,
                                name: s.name,
                                len,
                                rule: "must be 1".into(),
                            });
                        }
                        TlvValue::U8(raw[0])
                    }
                    TlvKind::Text { max, .. } => {
                        if len > max {
                            return Err(CodecError::BadTlvLength {
                                tag,
                                name: s.name,
                                len,
                                rule: format!("at most {max}"),
                            });
                        }
                        TlvValue::Text(trim_octets(raw))
                    }
                },
            };
            out.push(Tlv { tag, value });
        }
        Ok(Tlvs(out))
    }

    /// Appends the TLVs; fails (possibly after writing some) when a value does not fit its
    /// table entry, so callers encode into a scratch buffer.
    pub fn encode(&self, table: &[TlvSpec], out: &mut BytesMut) -> Result<(), CodecError> {
        for tlv in &self.0 {
            let known = spec(table, tlv.tag);
            let name = known.map_or("unknown", |s| s.name);
            let mismatch = || CodecError::BadField {
                field: name,
                reason: format!("value {:?} does not fit TLV {:#06x}", tlv.value, tlv.tag),
            };
            match (known.map(|s| s.kind), &tlv.value) {
                (Some(TlvKind::U8), TlvValue::U8(v)) => {
                    out.put_u16(tlv.tag);
                    out.put_u16(1);
                    out.put_u8(*v);
                }
                (Some(TlvKind::Text { max, fixed }), TlvValue::Text(t)) => {
                    let bytes = t.as_bytes();
                    if bytes.len() > max || bytes.contains(&0) {
                        return Err(mismatch());
                    }
                    let len = if fixed { max } else { bytes.len() };
                    out.put_u16(tlv.tag);
                    out.put_u16(len as u16);
                    out.put_slice(bytes);
                    out.put_bytes(0, len - bytes.len());
                }
                (None, TlvValue::Raw(v)) => {
                    let len = u16::try_from(v.len()).map_err(|_| mismatch())?;
                    out.put_u16(tlv.tag);
                    out.put_u16(len);
                    out.put_slice(v);
                }
                _ => return Err(mismatch()),
            }
        }
        Ok(())
    }

    /// The first one-byte value under `tag`.
    pub fn u8(&self, tag: u16) -> Option<u8> {
        self.0.iter().find_map(|t| match t.value {
            TlvValue::U8(v) if t.tag == tag => Some(v),
            _ => None,
        })
    }

    /// The first text value under `tag`.
    pub fn text(&self, tag: u16) -> Option<&str> {
        self.0.iter().find_map(|t| match &t.value {
            TlvValue::Text(v) if t.tag == tag => Some(v.as_str()),
            _ => None,
        })
    }

    pub fn with_u8(mut self, tag: u16, value: u8) -> Tlvs {
        self.0.push(Tlv {
            tag,
            value: TlvValue::U8(value),
        });
        self
    }

    pub fn with_text(mut self, tag: u16, value: impl Into<String>) -> Tlvs {
        self.0.push(Tlv {
            tag,
            value: TlvValue::Text(value.into()),
        });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[TlvSpec] = &[
        TlvSpec {
            tag: 1,
            name: "One",
            kind: TlvKind::U8,
        },
        TlvSpec {
            tag: 3,
            name: "Fixed",
            kind: TlvKind::Text {
                max: 4,
                fixed: true,
            },
        },
        TlvSpec {
            tag: 6,
            name: "Var",
            kind: TlvKind::Text {
                max: 4,
                fixed: false,
            },
        },
    ];

    fn decode(bytes: &[u8]) -> Result<Tlvs, CodecError> {
        Tlvs::decode(&mut Reader::new(bytes, 0, 0), TABLE)
    }

    #[test]
    fn layout_both_ways() {
        let tlvs = Tlvs::default()
            .with_u8(1, 7)
            .with_text(3, "ab")
            .with_text(6, "xy");
        let mut out = BytesMut::new();
        tlvs.encode(TABLE, &mut out).expect("encodes");
        let expected = [
            0, 1, 0, 1, 7, // One = 7
            0, 3, 0, 4, b'a', b'b', 0, 0, // Fixed, padded
            0, 6, 0, 2, b'x', b'y', // Var, as long as it is
        ];
        assert_eq!(&out[..], &expected[..]);
        assert_eq!(decode(&expected).expect("decodes"), tlvs);
    }

    #[test]
    fn unknown_tags_survive_and_bad_lengths_fail() {
        let t = decode(&[0x12, 0x34, 0, 2, 9, 9]).expect("decodes");
        assert_eq!(
            t.0,
            vec![Tlv {
                tag: 0x1234,
                value: TlvValue::Raw(vec![9, 9])
            }]
        );
        assert!(matches!(
            decode(&[0, 1, 0, 2, 7, 7]),
            Err(CodecError::BadTlvLength { tag: 1, .. })
        ));
        assert!(matches!(
            decode(&[0, 6, 0, 5, 1, 2, 3, 4, 5]),
            Err(CodecError::BadTlvLength { tag: 6, .. })
        ));
        // Length beyond the bytes present, and a header cut short.
        assert!(matches!(
            decode(&[0, 1, 0, 9, 7]),
            Err(CodecError::Truncated { .. })
        ));
        assert!(decode(&[0, 1, 0]).is_err());
    }

    #[test]
    fn values_must_fit_their_table_entry() {
        let mut out = BytesMut::new();
        for bad in [
            Tlvs::default().with_text(1, "x"),
            Tlvs::default().with_u8(3, 1),
            Tlvs::default().with_text(6, "toolong"),
            Tlvs(vec![Tlv {
                tag: 1,
                value: TlvValue::Raw(vec![1]),
            }]),
        ] {
            assert!(bad.encode(TABLE, &mut out).is_err(), "{bad:?}");
        }
    }
}
