//! What the codec unit tests share: padded fields for writing layouts out by hand, proptest
//! strategies for wire text and for the status report CNGP and SMGP share, and the two
//! properties every codec must have (a PDU survives encoding, alone and as two frames in a
//! stream; no input makes decoding panic). Test code only (`#[cfg(test)]` in `lib.rs`), used by the
//! `tests.rs` of `cmpp`, `cngp`, `sgip` and `smgp`; link options from pairs for the client and
//! signature tests.

use bytes::BytesMut;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

use crate::telecom::{MsgId10, Receipt};

/// `s` in a field of `width` bytes, NUL-padded.
pub fn octets(s: &str, width: usize) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.resize(width, 0);
    v
}

/// Field text of up to `width` characters.
pub fn text(width: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[0-9A-Za-z:]{{0,{width}}}")).expect("valid regex")
}

/// Receipt values without ':' so no value can pose as a label.
pub fn word(width: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[0-9A-Za-z]{{0,{width}}}")).expect("valid regex")
}

/// The status report CNGP and SMGP carry in a Deliver.
pub fn arb_receipt() -> impl Strategy<Value = Receipt> {
    (
        any::<[u8; 10]>(),
        (word(3), word(3), word(10), word(10)),
        (
            proptest::string::string_regex("[A-Z]{1,7}").expect("valid regex"),
            word(3),
            word(20),
        ),
    )
        .prop_map(|(id, a, b)| Receipt {
            msg_id: MsgId10(id),
            sub: a.0,
            dlvrd: a.1,
            submit_date: a.2,
            done_date: a.3,
            stat: b.0,
            err: b.1,
            text: b.2,
        })
}

/// `pdu` encodes, decodes to itself, and two of its frames back to back come out of the stream
/// codec (a fresh one from `codec` for each frame) as two PDUs, leaving nothing behind.
pub fn round_trips<P, E, D, C>(
    pdu: P,
    encode: impl Fn(&P) -> Result<Vec<u8>, E>,
    decode: impl Fn(&[u8]) -> Result<P, D>,
    codec: impl Fn() -> C,
) -> Result<(), TestCaseError>
where
    P: Clone + PartialEq + std::fmt::Debug,
    E: std::fmt::Display,
    C: Decoder<Item = P>,
{
    let bytes = encode(&pdu).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(decode(&bytes).ok(), Some(pdu.clone()));
    let mut buf = BytesMut::from(&bytes[..]);
    buf.extend_from_slice(&bytes);
    prop_assert_eq!(codec().decode(&mut buf).ok().flatten(), Some(pdu.clone()));
    prop_assert_eq!(codec().decode(&mut buf).ok().flatten(), Some(pdu));
    prop_assert!(buf.is_empty());
    Ok(())
}

/// Decoding `bytes`, as one frame and as a stream, returns (an error or PDUs) without panicking.
pub fn decode_garbage<P, D, C: Decoder>(
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<P, D>,
    mut codec: C,
) {
    let _ = decode(bytes);
    let mut buf = BytesMut::from(bytes);
    while let Ok(Some(_)) = codec.decode(&mut buf) {}
}

/// A link's options (as a config file gives them) from pairs.
pub(crate) fn options(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
