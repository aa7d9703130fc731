//! Stream framing shared by every codec: each protocol's PDU starts with its total length
//! (header included) as a big-endian u32, so cutting a TCP stream into frames is the same job for
//! all of them once the header's size, the largest accepted frame and the error type are known.
//!
//! The length is checked against the protocol's bounds before any buffer space is reserved, so a
//! hostile length cannot make a decoder allocate. Decoding the body of a frame stays with each
//! protocol's `Pdu`.

use bytes::{Buf, BytesMut};

/// What framing needs to know of one protocol's header layout.
pub trait LengthPrefixed {
    type Error;
    /// Bytes that must be buffered before the length is judged: the whole header where the
    /// protocol's header type reads it at once, or just the length field.
    const PEEK_LEN: usize;
    /// The header's size, the shortest frame.
    const MIN_LEN: usize;
    /// The longest frame accepted.
    const MAX_LEN: usize;
    /// The error for a length outside `MIN_LEN..=MAX_LEN`.
    fn bad_length(len: u32) -> Self::Error;
    /// The error for a stream that ends inside a frame.
    fn truncated(needed: usize, available: usize) -> Self::Error;
}

/// The total length at the front of `bytes`, checked against `F`'s bounds, or `None` while fewer
/// than `F::PEEK_LEN` bytes are present.
pub fn frame_len<F: LengthPrefixed>(bytes: &[u8]) -> Result<Option<usize>, F::Error> {
    if bytes.len() < F::PEEK_LEN.max(4) {
        return Ok(None);
    }
    let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let total = len as usize;
    if !(F::MIN_LEN..=F::MAX_LEN).contains(&total) {
        return Err(F::bad_length(len));
    }
    Ok(Some(total))
}

/// Splits one whole frame off the front of `src`, or reserves room for the rest of it (at most
/// `F::MAX_LEN` bytes, checked first) and returns `None`.
pub fn split_frame<F: LengthPrefixed>(src: &mut BytesMut) -> Result<Option<BytesMut>, F::Error> {
    let Some(total) = frame_len::<F>(src)? else {
        return Ok(None);
    };
    if src.len() < total {
        src.reserve(total - src.len());
        return Ok(None);
    }
    Ok(Some(src.split_to(total)))
}

/// At end of stream, after [`split_frame`] found no whole frame: an empty buffer is a clean end,
/// a partial frame is an error (and is discarded).
pub fn eof_leftover<F: LengthPrefixed>(src: &mut BytesMut) -> Result<(), F::Error> {
    if src.is_empty() {
        return Ok(());
    }
    let available = src.len();
    let needed = frame_len::<F>(src)?.unwrap_or(F::MIN_LEN);
    src.advance(available);
    Err(F::truncated(needed, available))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 12-byte header read whole, frames of at most 64 bytes.
    struct Twelve;

    impl LengthPrefixed for Twelve {
        type Error = (u32, usize, usize);
        const PEEK_LEN: usize = 12;
        const MIN_LEN: usize = 12;
        const MAX_LEN: usize = 64;
        fn bad_length(len: u32) -> Self::Error {
            (len, 0, 0)
        }
        fn truncated(needed: usize, available: usize) -> Self::Error {
            (0, needed, available)
        }
    }

    #[test]
    fn waits_for_the_header_then_the_frame() {
        let mut frame = 14u32.to_be_bytes().to_vec();
        frame.extend_from_slice(&[0; 10]);
        let mut buf = BytesMut::from(&frame[..11]);
        assert_eq!(split_frame::<Twelve>(&mut buf), Ok(None));
        buf.extend_from_slice(&frame[11..13]);
        assert_eq!(split_frame::<Twelve>(&mut buf), Ok(None));
        buf.extend_from_slice(&frame[13..]);
        buf.extend_from_slice(&[0, 0]);
        assert_eq!(
            split_frame::<Twelve>(&mut buf).map(|f| f.map(|f| f.len())),
            Ok(Some(14))
        );
        assert_eq!(buf.len(), 2);
    }

    #[test]
    fn a_length_out_of_bounds_is_refused_before_reserving() {
        for len in [0u32, 11, 65, u32::MAX] {
            let mut bytes = len.to_be_bytes().to_vec();
            bytes.extend_from_slice(&[0; 8]);
            let mut buf = BytesMut::from(&bytes[..]);
            assert_eq!(split_frame::<Twelve>(&mut buf), Err((len, 0, 0)));
            assert!(buf.capacity() < 64, "length {len}");
        }
    }

    #[test]
    fn end_of_stream_inside_a_frame_is_an_error() {
        let mut buf = BytesMut::new();
        assert_eq!(eof_leftover::<Twelve>(&mut buf), Ok(()));
        let mut buf = BytesMut::from(&[0, 0, 0][..]);
        assert_eq!(eof_leftover::<Twelve>(&mut buf), Err((0, 12, 3)));
        assert!(buf.is_empty());
        let mut bytes = 20u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0; 11]);
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(eof_leftover::<Twelve>(&mut buf), Err((0, 20, 15)));
    }
}
