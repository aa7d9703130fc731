//! Framing of CMPP PDUs on a TCP stream for `tokio_util::codec::Framed`.
//!
//! The decoder validates Total_Length against [`MAX_PDU_LEN`](super::MAX_PDU_LEN) before it reserves buffer space, so a
//! hostile length cannot make it allocate. Any error is fatal to the stream: after a bad frame the
//! byte stream cannot be trusted, and the session reconnects.
//!
//! The codec speaks one [`Version`]'s layouts at a time. CONNECT is the same in both versions,
//! so a gateway can read it with either and then switch with [`CmppCodec::set_version`].

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::header::{CmppError, Header, Version};
use super::pdu::Pdu;
use crate::framing;

/// Frames CMPP PDUs; `Default` is CMPP 3.0.
#[derive(Debug, Default, Clone, Copy)]
pub struct CmppCodec {
    version: Version,
}

impl CmppCodec {
    pub fn new(version: Version) -> CmppCodec {
        CmppCodec { version }
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Switches layouts for the PDUs after this point (a gateway does this after CONNECT).
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
    }
}

impl Decoder for CmppCodec {
    type Item = Pdu;
    type Error = CmppError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Pdu>, CmppError> {
        framing::split_frame::<Header>(src)?
            .map(|frame| Pdu::decode_as(&frame, self.version))
            .transpose()
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Pdu>, CmppError> {
        match self.decode(src)? {
            Some(pdu) => Ok(Some(pdu)),
            None => framing::eof_leftover::<Header>(src).map(|()| None),
        }
    }
}

impl Encoder<Pdu> for CmppCodec {
    type Error = CmppError;

    fn encode(&mut self, pdu: Pdu, dst: &mut BytesMut) -> Result<(), CmppError> {
        pdu.encode_as(dst, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmpp::pdu::Body;

    #[test]
    fn waits_for_a_whole_frame_then_yields_it() {
        let mut codec = CmppCodec::default();
        let bytes = Pdu::new(9, Body::ActiveTest).to_bytes().expect("encodes");
        let mut buf = BytesMut::from(&bytes[..7]);
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
        buf.extend_from_slice(&bytes[7..]);
        buf.extend_from_slice(&bytes[..5]); // start of the next frame
        let pdu = codec.decode(&mut buf).expect("valid").expect("complete");
        assert_eq!(pdu, Pdu::new(9, Body::ActiveTest));
        assert_eq!(buf.len(), 5);
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
    }

    #[test]
    fn huge_length_is_rejected_without_allocating() {
        let mut codec = CmppCodec::default();
        let mut buf = BytesMut::from(&[0xFF, 0xFF, 0xFF, 0xF0, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CmppError::BadTotalLength(_))
        ));
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn eof_inside_a_frame_is_an_error() {
        let mut codec = CmppCodec::default();
        let bytes = Pdu::new(1, Body::TerminateResp)
            .to_bytes()
            .expect("encodes");
        let mut buf = BytesMut::from(&bytes[..10]);
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(CmppError::Truncated { .. })
        ));
    }
}
