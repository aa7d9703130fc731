//! Framing of SMPP PDUs on a TCP stream for `tokio_util::codec::Framed`.
//!
//! The decoder validates command_length against [`MAX_PDU_LEN`](super::MAX_PDU_LEN) before it
//! reserves buffer space, so a hostile length cannot make it allocate. Any error is fatal to the
//! stream: after a bad frame the byte stream cannot be trusted, and the session reconnects.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::header::{Header, SmppError};
use super::pdu::Pdu;
use crate::framing;

#[derive(Debug, Default, Clone, Copy)]
pub struct SmppCodec;

impl Decoder for SmppCodec {
    type Item = Pdu;
    type Error = SmppError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Pdu>, SmppError> {
        framing::split_frame::<Header>(src)?
            .map(|frame| Pdu::decode(&frame))
            .transpose()
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Pdu>, SmppError> {
        match self.decode(src)? {
            Some(pdu) => Ok(Some(pdu)),
            None => framing::eof_leftover::<Header>(src).map(|()| None),
        }
    }
}

impl Encoder<Pdu> for SmppCodec {
    type Error = SmppError;

    fn encode(&mut self, pdu: Pdu, dst: &mut BytesMut) -> Result<(), SmppError> {
        pdu.encode(dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smpp::pdu::Body;

    #[test]
    fn waits_for_a_whole_frame_then_yields_it() {
        let mut codec = SmppCodec;
        let bytes = Pdu::new(9, Body::EnquireLink).to_bytes().expect("encodes");
        let mut buf = BytesMut::from(&bytes[..7]);
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
        buf.extend_from_slice(&bytes[7..]);
        buf.extend_from_slice(&bytes[..5]);
        let pdu = codec.decode(&mut buf).expect("valid").expect("complete");
        assert_eq!(pdu, Pdu::new(9, Body::EnquireLink));
        assert_eq!(buf.len(), 5);
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
    }

    #[test]
    fn huge_length_is_rejected_without_allocating() {
        let mut codec = SmppCodec;
        let mut buf =
            BytesMut::from(&[0x7F, 0xFF, 0xFF, 0xF0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(SmppError::BadCommandLength(_))
        ));
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn eof_inside_a_frame_is_an_error() {
        let mut codec = SmppCodec;
        let bytes = Pdu::new(1, Body::UnbindResp).to_bytes().expect("encodes");
        let mut buf = BytesMut::from(&bytes[..10]);
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(SmppError::Truncated { .. })
        ));
    }
}
