//! Byte-level helpers both SMGP and CNGP codecs use: the error type, a bounds-checked reader over
//! one frame, fixed-width Octet String writing, the header and
//! destination list both lay out the same way, and the bounds of stream framing.
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

/// The `N` big-endian u32 fields of a `4 × N`-byte header at the front of `frame`, the first
/// being the total length: it must lie in `4 × N..=max` and equal the frame's own length.
pub fn read_header<const N: usize>(frame: &[u8], max: usize) -> Result<[u32; N], CodecError> {
    let header_len = 4 * N;
    if frame.len() < header_len {
        return Err(CodecError::Truncated {
            needed: header_len,
            available: frame.len(),
        });
    }
    let mut h = Reader::new(&frame[..header_len], 0, 0);
    let mut fields = [0; N];
    for field in &mut fields {
        *field = h.u32()?;
    }
    let len = fields.first().copied().unwrap_or_default();
    let total = len as usize;
    if !(header_len..=max).contains(&total) {
        return Err(CodecError::BadLength {
            len,
            min: header_len,
            max,
        });
    }
    if frame.len() != total {
        return Err(CodecError::Truncated {
            needed: total,
            available: frame.len(),
        });
    }
    Ok(fields)
}

/// Appends one frame: its total length, the rest of the header (`fields`, big-endian u32s) and
/// `body`. Fails, writing nothing, when the frame would be longer than `max`.
pub fn put_frame(
    out: &mut BytesMut,
    fields: &[u32],
    body: &[u8],
    max: usize,
) -> Result<(), CodecError> {
    let total = 4 * (1 + fields.len()) + body.len();
    if total > max {
        return Err(CodecError::FieldTooLong {
            field: "PDU",
            len: total,
            max,
        });
    }
    out.reserve(total);
    out.put_u32(total as u32);
    for field in fields {
        out.put_u32(*field);
    }
    out.put_slice(body);
    Ok(())
}

/// Reads DestTermIDCount (1..=`max`) and that many DestTermIDs of `width` bytes. The whole block
/// must be present before the vector for it is allocated.
pub fn read_dest_ids(
    r: &mut Reader<'_>,
    max: usize,
    width: usize,
) -> Result<Vec<String>, CodecError> {
    let count = r.u8()? as usize;
    if count == 0 || count > max {
        return Err(CodecError::BadField {
            field: "DestTermIDCount",
            reason: format!("{count} is outside 1..={max}"),
        });
    }
    r.ensure(count * width)?;
    let mut dests = Vec::with_capacity(count);
    for _ in 0..count {
        dests.push(r.octets(width)?);
    }
    Ok(dests)
}

/// Refuses a destination list that DestTermIDCount cannot carry (outside 1..=`max`).
pub fn check_dest_count(dests: &[String], max: usize) -> Result<(), CodecError> {
    if dests.is_empty() || dests.len() > max {
        return Err(CodecError::BadField {
            field: "DestTermIDCount",
            reason: format!("{} destinations is outside 1..={max}", dests.len()),
        });
    }
    Ok(())
}

/// Writes DestTermIDCount and the DestTermIDs, `width` bytes each; the count was checked by
/// [`check_dest_count`].
pub fn put_dest_ids(out: &mut BytesMut, dests: &[String], width: usize) -> Result<(), CodecError> {
    out.put_u8(dests.len() as u8);
    for d in dests {
        put_octets(out, "DestTermID", d, width)?;
    }
    Ok(())
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
