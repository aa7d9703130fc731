//! The status report text SMGP 3.0.3 and CNGP 2.0 carry in a Deliver's MsgContent when IsReport
//! is 1: the SMPP 3.4 receipt format with the MsgID as ten raw bytes,
//! `id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD
//! err:EEE text:…` (122 bytes when written with a 20-byte text).
//!
//! Writing follows that fixed layout. Reading is lenient, because gateways differ in label case
//! and spelling (`Submit_date`, `done_Date`, `Txt`) and in padding: only `id:` with its ten bytes
//! and a `stat:` are required.

use bytes::{BufMut, BytesMut};

use super::msgid::MsgId10;
use super::wire::{put_octets, CodecError};

/// Length of a report written by [`Receipt::encode`].
pub const RECEIPT_LEN: usize = 122;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Receipt {
    /// The MsgID of the Submit_Resp this report is about.
    pub msg_id: MsgId10,
    pub sub: String,
    pub dlvrd: String,
    /// YYMMDDhhmm.
    pub submit_date: String,
    /// YYMMDDhhmm.
    pub done_date: String,
    /// DELIVRD, EXPIRED, DELETED, UNDELIV, ACCEPTD, UNKNOWN, REJECTD, or a gateway code.
    pub stat: String,
    pub err: String,
    pub text: String,
}

/// Labels after the id, in the written order, with the width each value gets when written.
const FIELDS: [(&str, usize); 7] = [
    (" sub:", 3),
    (" dlvrd:", 3),
    (" submit date:", 10),
    (" done date:", 10),
    (" stat:", 7),
    (" err:", 3),
    (" text:", 20),
];

impl Receipt {
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), CodecError> {
        out.put_slice(b"id:");
        out.put_slice(&self.msg_id.0);
        let values = [
            ("sub", &self.sub),
            ("dlvrd", &self.dlvrd),
            ("submit date", &self.submit_date),
            ("done date", &self.done_date),
            ("stat", &self.stat),
            ("err", &self.err),
            ("text", &self.text),
        ];
        for ((label, width), (field, value)) in FIELDS.iter().zip(values) {
            out.put_slice(label.as_bytes());
            put_octets(out, field, value, *width)?;
        }
        Ok(())
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        let mut out = BytesMut::with_capacity(RECEIPT_LEN);
        self.encode(&mut out)?;
        Ok(out.to_vec())
    }

    pub fn decode(bytes: &[u8]) -> Result<Receipt, CodecError> {
        let bad = |reason: &str| CodecError::BadField {
            field: "MsgContent",
            reason: format!("status report {reason}"),
        };
        if bytes.len() < 13 || !bytes[..3].eq_ignore_ascii_case(b"id:") {
            return Err(bad("does not start with id: and a 10-byte MsgID"));
        }
        let mut id = [0u8; 10];
        id.copy_from_slice(&bytes[3..13]);
        // Label search on a lowercased copy with '_' read as ' ': positions stay the same, so the
        // values are cut from the original bytes.
        let tail = &bytes[13..];
        let folded: Vec<u8> = tail
            .iter()
            .map(|b| match b.to_ascii_lowercase() {
                b'_' => b' ',
                other => other,
            })
            .collect();
        let value = |labels: &[&str], to_end: bool| -> Option<String> {
            let (start, label) = labels
                .iter()
                .find_map(|l| find(&folded, l.as_bytes()).map(|p| (p, l.len())))?;
            let from = start + label;
            let rest = &tail[from..];
            let end = if to_end {
                rest.len()
            } else {
                rest.iter()
                    .position(|&b| b == b' ' || b == 0)
                    .unwrap_or(rest.len())
            };
            let raw = &rest[..end];
            let raw = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
            Some(String::from_utf8_lossy(raw).trim_end().to_string())
        };
        let stat = value(&["stat:"], false).ok_or_else(|| bad("has no stat:"))?;
        Ok(Receipt {
            msg_id: MsgId10(id),
            sub: value(&["sub:"], false).unwrap_or_default(),
            dlvrd: value(&["dlvrd:"], false).unwrap_or_default(),
            submit_date: value(&["submit date:"], false).unwrap_or_default(),
            done_date: value(&["done date:"], false).unwrap_or_default(),
            stat,
            err: value(&["err:"], false).unwrap_or_default(),
            text: value(&["text:", "txt:"], true).unwrap_or_default(),
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Receipt {
        Receipt {
            msg_id: MsgId10([0x01, 0x00, 0x61, 0x01, 0x16, 0x17, 0x00, 0x01, 0x23, 0x45]),
            sub: "001".into(),
            dlvrd: "001".into(),
            submit_date: "2401161700".into(),
            done_date: "2401161701".into(),
            stat: "DELIVRD".into(),
            err: "000".into(),
            text: "hello".into(),
        }
    }

    #[test]
    fn writes_the_fixed_layout() {
        let bytes = sample().to_bytes().expect("encodes");
        assert_eq!(bytes.len(), RECEIPT_LEN);
        let mut expected = b"id:".to_vec();
        expected.extend_from_slice(&sample().msg_id.0);
        expected.extend_from_slice(
            b" sub:001 dlvrd:001 submit date:2401161700 done date:2401161701 stat:DELIVRD err:000 text:hello",
        );
        expected.resize(RECEIPT_LEN, 0);
        assert_eq!(bytes, expected);
        assert_eq!(Receipt::decode(&bytes).expect("decodes"), sample());
    }

    #[test]
    fn reads_other_spellings() {
        let mut bytes = b"ID:".to_vec();
        bytes.extend_from_slice(&sample().msg_id.0);
        bytes.extend_from_slice(
            b" Sub:001 Dlvrd:001 Submit_Date:2401161700 done_date:2401161701 Stat:UNDELIV Err:12 Txt:",
        );
        let r = Receipt::decode(&bytes).expect("decodes");
        assert_eq!(r.stat, "UNDELIV");
        assert_eq!(r.err, "12");
        assert_eq!(r.submit_date, "2401161700");
        assert_eq!(r.done_date, "2401161701");
        assert_eq!(r.text, "");
    }

    #[test]
    fn refuses_reports_without_id_or_stat() {
        assert!(Receipt::decode(b"").is_err());
        assert!(Receipt::decode(b"id:123").is_err());
        assert!(Receipt::decode(b"xx:0123456789 stat:DELIVRD").is_err());
        assert!(Receipt::decode(b"id:0123456789 sub:001").is_err());
        assert!(Receipt::decode(b"id:0123456789 stat:DELIVRD").is_ok());
    }
}
