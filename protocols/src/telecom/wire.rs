//! Byte-level helpers both SMGP and CNGP codecs use: the error type, a bounds-checked reader over
//! one frame, fixed-width Octet String writing and the bounds of stream framing.
//!
//! Nothing here knows a PDU layout; each codec lays out its own fields with these tools.

use bytes::{BufMut, BytesMut};

use crate::framing::LengthPrefixed;

/// Why bytes could not be turned into a PDU, or a PDU into bytes (SMGP and CNGP alike).
#[derive(thiserror::Error, Debug)]
pub enum CodecError {
    #[error("packet length {len} is outside the accepted range {min}..={max}")]
    BadLength { len: u32, min: usize, max: usize },
    #[error("PDU needs {needed} bytes but only {available} are present")]
    Truncated { needed: usize, available: usize },
    #[error("unknown command id {0:#010x}")]
    UnknownCommand(u32),
    #[error("command {command:#010x}: body is {actual} bytes, expected {expected}")]
    BadBodyLength {
        command: u32,
        expected: usize,
        actual: usize,
    },
    #[error("TLV {tag:#06x} ({name}): length {len} is not allowed ({rule})")]
    BadTlvLength {
        tag: u16,
        name: &'static str,
        len: usize,
        rule: String,
    },
    #[error("field {field}: {reason}")]
    BadField { field: &'static str, reason: String },
    #[error("field {field} is {len} bytes, the maximum is {max}")]
    FieldTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Stream framing (see [`crate::framing`]) of a protocol whose header is `HEADER` bytes and
/// whose frames are at most `MAX` bytes. The length is judged as soon as its own 4 bytes are
/// buffered.
pub struct Frames<const HEADER: usize, const MAX: usize>;

impl<const HEADER: usize, const MAX: usize> LengthPrefixed for Frames<HEADER, MAX> {
    type Error = CodecError;
    const PEEK_LEN: usize = 4;
    const MIN_LEN: usize = HEADER;
    const MAX_LEN: usize = MAX;

    fn bad_length(len: u32) -> CodecError {
        CodecError::BadLength {
            len,
            min: HEADER,
            max: MAX,
        }
    }

    fn truncated(needed: usize, available: usize) -> CodecError {
        CodecError::Truncated { needed, available }
    }
}

/// Writes `value` into a fixed-width field, NUL-padded on the right.
pub fn put_octets(
    out: &mut BytesMut,
    field: &'static str,
    value: &str,
    width: usize,
) -> Result<(), CodecError> {
    let bytes = value.as_bytes();
    if bytes.len() > width {
        return Err(CodecError::FieldTooLong {
            field,
            len: bytes.len(),
            max: width,
        });
    }
    out.put_slice(bytes);
    out.put_bytes(0, width - bytes.len());
    Ok(())
}

/// The one-byte length of a message content field.
pub fn content_len(field: &'static str, content: &[u8]) -> Result<u8, CodecError> {
    u8::try_from(content.len()).map_err(|_| CodecError::FieldTooLong {
        field,
        len: content.len(),
        max: 255,
    })
}

/// Text of a fixed-width Octet String: everything from the first NUL on is padding.
pub fn trim_octets(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// Bounds-checked cursor over a PDU body. `offset` is the header length, so errors count bytes
/// from the start of the frame.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    command: u32,
    offset: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], command: u32, offset: usize) -> Self {
        Reader {
            buf,
            pos: 0,
            command,
            offset,
        }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn expect_len(&self, len: usize) -> Result<(), CodecError> {
        if self.buf.len() != len {
            return Err(CodecError::BadBodyLength {
                command: self.command,
                expected: len,
                actual: self.buf.len(),
            });
        }
        Ok(())
    }

    pub fn ensure(&self, n: usize) -> Result<(), CodecError> {
        let needed = self.pos.saturating_add(n);
        if needed > self.buf.len() {
            return Err(CodecError::Truncated {
                needed: needed.saturating_add(self.offset),
                available: self.buf.len() + self.offset,
            });
        }
        Ok(())
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        self.ensure(n)?;
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, CodecError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Result<u32, CodecError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn octets(&mut self, width: usize) -> Result<String, CodecError> {
        Ok(trim_octets(self.take(width)?))
    }

    /// The rest of the body.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    /// Fixed-layout bodies must be consumed exactly.
    pub fn finish(&self) -> Result<(), CodecError> {
        if self.pos != self.buf.len() {
            return Err(CodecError::BadBodyLength {
                command: self.command,
                expected: self.pos,
                actual: self.buf.len(),
            });
        }
        Ok(())
    }
}
