//! The bytes of a snapshot's data (format 1): a format byte, then records of
//! `column family index u8, key length u32, key, value length u32, value` (lengths big-endian),
//! one per key of every projection column family.
//!
//! Written and read one record at a time, so neither building nor installing a snapshot holds
//! more than one record in memory. A snapshot arrives from another node, so the reader checks
//! every length against the bytes that are left (and against [`MAX_FIELD_LEN`]) before it
//! allocates, and reports every malformed input as [`io::ErrorKind::InvalidData`], never a panic.

use std::io::{self, BufRead, Read, Write};

use crate::db::PROJECTION_CFS;

/// Format version written at the head of every snapshot's data.
pub const SNAPSHOT_FORMAT_V1: u8 = 1;

/// Longest key or value a snapshot may carry. The projection's largest values (a policy document,
/// at most 256 KiB; a message record with its bounded timeline) are far below it; the bound keeps
/// a corrupt length in a snapshot of many gigabytes from allocating that much.
pub const MAX_FIELD_LEN: usize = 64 << 20;

pub(crate) fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Writes records after the format byte.
pub struct RecordWriter<W: Write> {
    out: W,
    written: u64,
}

impl<W: Write> RecordWriter<W> {
    /// Writes the format byte.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(&[SNAPSHOT_FORMAT_V1])?;
        Ok(RecordWriter { out, written: 1 })
    }

    pub fn write(&mut self, cf_index: usize, key: &[u8], value: &[u8]) -> io::Result<()> {
        let cf = u8::try_from(cf_index)
            .ok()
            .filter(|&cf| (cf as usize) < PROJECTION_CFS.len())
            .ok_or_else(|| invalid(format!("unknown column family {cf_index}")))?;
        // Refused here rather than written: a snapshot every node would refuse to read is worse
        // than a build that fails loudly.
        for (what, field) in [("key", key), ("value", value)] {
            if field.len() > MAX_FIELD_LEN {
                return Err(invalid(format!(
                    "a {what} of {} bytes in column family {} exceeds the snapshot limit of {MAX_FIELD_LEN}",
                    field.len(),
                    PROJECTION_CFS[cf_index]
                )));
            }
        }
        self.out.write_all(&[cf])?;
        self.out.write_all(&(key.len() as u32).to_be_bytes())?;
        self.out.write_all(key)?;
        self.out.write_all(&(value.len() as u32).to_be_bytes())?;
        self.out.write_all(value)?;
        self.written += 1 + 4 + key.len() as u64 + 4 + value.len() as u64;
        Ok(())
    }

    /// The data's length so far (format byte included).
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Reads records from `len` bytes of snapshot data.
pub struct RecordReader<R: BufRead> {
    input: R,
    left: u64,
}

impl<R: BufRead> RecordReader<R> {
    /// Reads and checks the format byte. `len` is the data's length: every length read is
    /// checked against what is left of it.
    pub fn new(mut input: R, len: u64) -> io::Result<Self> {
        if len == 0 {
            return Err(invalid("empty snapshot"));
        }
        let mut version = [0u8];
        read_exact(&mut input, &mut version)?;
        if version[0] != SNAPSHOT_FORMAT_V1 {
            return Err(invalid(format!("unknown snapshot format {}", version[0])));
        }
        Ok(RecordReader {
            input,
            left: len - 1,
        })
    }

    /// Reads the next record into `key` and `value` (reused between calls); returns its column
    /// family index, or None at the end of the data.
    pub fn next_into(
        &mut self,
        key: &mut Vec<u8>,
        value: &mut Vec<u8>,
    ) -> io::Result<Option<usize>> {
        if self.left == 0 {
            return Ok(None);
        }
        let mut cf = [0u8];
        self.take(&mut cf)?;
        let cf_index = cf[0] as usize;
        if cf_index >= PROJECTION_CFS.len() {
            return Err(invalid(format!("unknown column family {cf_index}")));
        }
        self.take_field(key)?;
        self.take_field(value)?;
        Ok(Some(cf_index))
    }

    fn take(&mut self, buf: &mut [u8]) -> io::Result<()> {
        if self.left < buf.len() as u64 {
            return Err(invalid("snapshot truncated"));
        }
        read_exact(&mut self.input, buf)?;
        self.left -= buf.len() as u64;
        Ok(())
    }

    /// A length, then that many bytes: checked against what is left before anything is reserved.
    fn take_field(&mut self, field: &mut Vec<u8>) -> io::Result<()> {
        let mut len = [0u8; 4];
        self.take(&mut len)?;
        let len = u32::from_be_bytes(len) as u64;
        if len > self.left {
            return Err(invalid("snapshot truncated"));
        }
        if len > MAX_FIELD_LEN as u64 {
            return Err(invalid(format!(
                "a snapshot field of {len} bytes exceeds the limit of {MAX_FIELD_LEN}"
            )));
        }
        field.clear();
        field.resize(len as usize, 0);
        self.take(field)
    }
}

/// `read_exact`, with a short read reported as a truncated snapshot (the file ended before the
/// length it claimed).
fn read_exact(input: &mut impl Read, buf: &mut [u8]) -> io::Result<()> {
    input.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            invalid("snapshot truncated")
        } else {
            e
        }
    })
}

/// Reads every record of `len` bytes of data; returns how many there are. The first pass of an
/// install: nothing is changed until the whole snapshot is known to be well formed.
pub fn validate(input: impl BufRead, len: u64) -> io::Result<u64> {
    let mut reader = RecordReader::new(input, len)?;
    let (mut key, mut value) = (Vec::new(), Vec::new());
    let mut records = 0;
    while reader.next_into(&mut key, &mut value)?.is_some() {
        records += 1;
    }
    Ok(records)
}

#[cfg(test)]
pub(crate) mod tests {
    //! `RecordReader` refuses every malformed input with an error (a snapshot arrives from another
    //! node), and reads back what `RecordWriter` wrote.

    use proptest::prelude::*;

    use super::*;

    pub(crate) fn record(cf: u8, key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut out = vec![cf];
        out.extend_from_slice(&(key.len() as u32).to_be_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
        out
    }

    pub(crate) fn snapshot_of(records: &[Vec<u8>]) -> Vec<u8> {
        let mut data = vec![SNAPSHOT_FORMAT_V1];
        for r in records {
            data.extend_from_slice(r);
        }
        data
    }

    type Record = (usize, Vec<u8>, Vec<u8>);

    /// Every record of in-memory snapshot data, read through the streaming reader.
    pub(crate) fn parse_snapshot(data: &[u8]) -> io::Result<Vec<Record>> {
        let mut reader = RecordReader::new(data, data.len() as u64)?;
        let mut records = Vec::new();
        let (mut key, mut value) = (Vec::new(), Vec::new());
        while let Some(cf) = reader.next_into(&mut key, &mut value)? {
            records.push((cf, key.clone(), value.clone()));
        }
        // What `validate` says agrees with reading every record.
        assert_eq!(validate(data, data.len() as u64)?, records.len() as u64);
        Ok(records)
    }

    fn parse_err(data: &[u8]) -> String {
        match parse_snapshot(data) {
            Ok(records) => panic!("parsed {} records from malformed input", records.len()),
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::InvalidData);
                e.to_string()
            }
        }
    }

    fn owned(cf: usize, key: &[u8], value: &[u8]) -> Record {
        (cf, key.to_vec(), value.to_vec())
    }

    #[test]
    fn parses_records_in_order() {
        let last = (PROJECTION_CFS.len() - 1) as u8;
        let data = snapshot_of(&[
            record(0, b"k1", b"v1"),
            record(last, b"", b""),
            record(3, b"k", b""),
        ]);
        let records = parse_snapshot(&data).unwrap();
        assert_eq!(
            records,
            vec![
                owned(0, b"k1", b"v1"),
                owned(last as usize, b"", b""),
                owned(3, b"k", b""),
            ]
        );
    }

    #[test]
    fn a_header_alone_is_an_empty_projection() {
        assert!(parse_snapshot(&[SNAPSHOT_FORMAT_V1]).unwrap().is_empty());
    }

    #[test]
    fn empty_input_is_refused() {
        assert!(parse_err(&[]).contains("empty"));
    }

    #[test]
    fn an_unknown_format_is_refused() {
        for version in [0u8, 2, 255] {
            let mut data = snapshot_of(&[record(0, b"k", b"v")]);
            data[0] = version;
            assert!(parse_err(&data).contains(&format!("format {version}")));
        }
    }

    #[test]
    fn an_unknown_column_family_is_refused() {
        for cf in [PROJECTION_CFS.len() as u8, 200, 255] {
            let data = snapshot_of(&[record(0, b"k", b"v"), record(cf, b"k", b"v")]);
            assert!(parse_err(&data).contains(&format!("column family {cf}")));
        }
    }

    #[test]
    fn every_truncation_is_refused_except_at_a_record_boundary() {
        let records = [record(0, b"key-1", b"value-1"), record(2, b"k2", b"")];
        let data = snapshot_of(&records);
        let boundaries = [1, 1 + records[0].len(), data.len()];
        for cut in 0..=data.len() {
            let result = parse_snapshot(&data[..cut]);
            if boundaries.contains(&cut) {
                assert!(result.is_ok(), "cut at {cut}: {result:?}");
            } else {
                assert!(result.is_err(), "cut at {cut} parsed: {result:?}");
            }
        }
    }

    /// A file shorter than the length its reader was given (a file cut after its size was read)
    /// is refused too, at every cut.
    #[test]
    fn input_shorter_than_its_announced_length_is_refused() {
        let data = snapshot_of(&[record(0, b"key-1", b"value-1"), record(2, b"k2", b"")]);
        for cut in 0..data.len() {
            let result = validate(&data[..cut], data.len() as u64);
            let err = result.expect_err("a short read parsed");
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "cut at {cut}");
        }
    }

    #[test]
    fn a_length_beyond_the_end_is_refused() {
        // Key length (after the format byte and the column family byte).
        let mut data = snapshot_of(&[record(0, b"k", b"v")]);
        data[2..6].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_err(&data).contains("truncated"));
        // Value length, one more than what is left.
        let mut data = snapshot_of(&[record(0, b"k", b"v")]);
        let value_len_at = 1 + 1 + 4 + 1;
        data[value_len_at..value_len_at + 4].copy_from_slice(&2u32.to_be_bytes());
        assert!(parse_err(&data).contains("truncated"));
        // Value length at its maximum.
        data[value_len_at..value_len_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_err(&data).contains("truncated"));
    }

    /// A length that fits in what is left but passes the field limit is refused before anything
    /// is reserved for it (a reader given a huge announced length over a short input).
    #[test]
    fn a_length_beyond_the_field_limit_is_refused() {
        let mut data = snapshot_of(&[record(0, b"k", b"v")]);
        data[2..6].copy_from_slice(&(MAX_FIELD_LEN as u32 + 1).to_be_bytes());
        let err = validate(&data[..], u64::MAX).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
    }

    #[test]
    fn the_writer_refuses_what_the_reader_would() {
        let mut writer = RecordWriter::new(Vec::new()).unwrap();
        assert!(writer.write(PROJECTION_CFS.len(), b"k", b"v").is_err());
        let big = vec![0u8; MAX_FIELD_LEN + 1];
        assert!(writer.write(0, &big, b"v").is_err());
        assert!(writer.write(0, b"k", &big).is_err());
        assert_eq!(writer.written(), 1);
        assert_eq!(writer.into_inner(), vec![SNAPSHOT_FORMAT_V1]);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_snapshot(&data);
        }

        #[test]
        fn arbitrary_bytes_after_a_valid_header_never_panic(
            tail in prop::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut data = vec![SNAPSHOT_FORMAT_V1];
            data.extend_from_slice(&tail);
            let _ = parse_snapshot(&data);
        }

        #[test]
        fn encoded_records_parse_back(
            records in prop::collection::vec(
                (
                    0..PROJECTION_CFS.len() as u8,
                    prop::collection::vec(any::<u8>(), 0..20),
                    prop::collection::vec(any::<u8>(), 0..40),
                ),
                0..20,
            ),
        ) {
            let data = snapshot_of(
                &records.iter().map(|(cf, k, v)| record(*cf, k, v)).collect::<Vec<_>>(),
            );
            let parsed = parse_snapshot(&data).unwrap();
            let expected: Vec<Record> = records
                .iter()
                .map(|(cf, k, v)| (*cf as usize, k.clone(), v.clone()))
                .collect();
            prop_assert_eq!(parsed, expected);

            // The writer produces the same bytes.
            let mut writer = RecordWriter::new(Vec::new()).unwrap();
            for (cf, k, v) in &records {
                writer.write(*cf as usize, k, v).unwrap();
            }
            prop_assert_eq!(writer.written(), data.len() as u64);
            prop_assert_eq!(writer.into_inner(), data);
        }
    }
}
