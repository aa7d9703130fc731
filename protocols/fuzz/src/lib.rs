//! The fuzz harnesses for Herald's protocol decoders, as plain functions: the libFuzzer targets in
//! `fuzz_targets/` call them, and so do the stable-toolchain tests in `tests/`, which run them over
//! the committed corpora and generated inputs. A harness panics only on a real bug: a decoder
//! that panics, or (CMPP) a decoded PDU that does not survive encoding and decoding again.

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use herald_protocols::cmpp::{self, Version};
use herald_protocols::{cngp, sgip, smgp, smpp};

/// Every target, by name (the corpus directory under `corpus/`).
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("cmpp_decode", cmpp_decode),
    ("smpp_decode", smpp_decode),
    ("sgip_decode", sgip_decode),
    ("smgp_decode", smgp_decode),
    ("cngp_decode", cngp_decode),
];

/// Feeds `data` to a stream decoder as one chunk, taking frames until it stops, then at EOF.
fn drain<D: Decoder>(mut codec: D, data: &[u8]) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = codec.decode(&mut buf) {}
    let _ = codec.decode_eof(&mut buf);
}

/// CMPP in both versions: one-frame decoding, stream decoding, and for anything that decodes,
/// encode → decode gives the same value back.
pub fn cmpp_decode(data: &[u8]) {
    for version in [Version::V2, Version::V3] {
        if let Ok(pdu) = cmpp::Pdu::decode_as(data, version) {
            // Decoding is lossy only where a field cannot be written back (invalid UTF-8 grown
            // past its width): then encoding refuses, which is fine.
            if let Ok(bytes) = pdu.to_bytes_as(version) {
                match cmpp::Pdu::decode_as(&bytes, version) {
                    Ok(again) => {
                        assert_eq!(again, pdu, "CMPP {version} round trip changed the PDU")
                    }
                    Err(e) => panic!("CMPP {version}: re-encoded PDU does not decode: {e}"),
                }
            }
        }
        drain(cmpp::CmppCodec::new(version), data);
    }
}

pub fn smpp_decode(data: &[u8]) {
    let _ = smpp::Pdu::decode(data);
    drain(smpp::SmppCodec, data);
}

pub fn sgip_decode(data: &[u8]) {
    let _ = sgip::Pdu::decode(data);
    drain(sgip::SgipCodec, data);
}

pub fn smgp_decode(data: &[u8]) {
    let _ = smgp::Pdu::decode(data);
    drain(smgp::SmgpCodec, data);
}

pub fn cngp_decode(data: &[u8]) {
    let _ = cngp::Pdu::decode(data);
    drain(cngp::CngpCodec, data);
}
