//! Framing of SGIP PDUs on a TCP stream for `tokio_util::codec::Framed`.
//!
//! The decoder validates Message Length against [`MAX_PDU_LEN`](super::MAX_PDU_LEN) before it
//! reserves buffer space, so a hostile length cannot make it allocate. Any error is fatal to the
//! stream: after a bad frame the byte stream cannot be trusted.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::header::{Header, SgipError};
use super::pdu::Pdu;
use crate::framing;

#[derive(Debug, Default, Clone, Copy)]
pub struct SgipCodec;

impl Decoder for SgipCodec {
    type Item = Pdu;
    type Error = SgipError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Pdu>, SgipError> {
        framing::split_frame::<Header>(src)?
            .map(|frame| Pdu::decode(&frame))
            .transpose()
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Pdu>, SgipError> {
        match self.decode(src)? {
            Some(pdu) => Ok(Some(pdu)),
            None => framing::eof_leftover::<Header>(src).map(|()| None),
        }
    }
}

impl Encoder<Pdu> for SgipCodec {
    type Error = SgipError;

    fn encode(&mut self, pdu: Pdu, dst: &mut BytesMut) -> Result<(), SgipError> {
        pdu.encode(dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sgip::{Body, SequenceNumber};

    #[test]
    fn waits_for_a_whole_frame_then_yields_it() {
        let mut codec = SgipCodec;
        let pdu = Pdu::new(SequenceNumber::new(1, 2, 3), Body::Unbind);
        let bytes = pdu.to_bytes().expect("encodes");
        let mut buf = BytesMut::from(&bytes[..7]);
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
        buf.extend_from_slice(&bytes[7..]);
        buf.extend_from_slice(&bytes[..5]); // start of the next frame
        let decoded = codec.decode(&mut buf).expect("valid").expect("complete");
        assert_eq!(decoded, pdu);
        assert_eq!(buf.len(), 5);
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
    }

    #[test]
    fn huge_length_is_rejected_without_allocating() {
        let mut codec = SgipCodec;
        let mut bytes = vec![0xFF, 0xFF, 0xFF, 0xF0, 0, 0, 0, 3];
        bytes.extend_from_slice(&[0; 12]);
        let mut buf = BytesMut::from(&bytes[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(SgipError::BadLength(_))
        ));
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn eof_inside_a_frame_is_an_error() {
        let mut codec = SgipCodec;
        let bytes = Pdu::new(SequenceNumber::new(1, 2, 3), Body::UnbindResp)
            .to_bytes()
            .expect("encodes");
        let mut buf = BytesMut::from(&bytes[..15]);
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(SgipError::Truncated { .. })
        ));
    }
}
