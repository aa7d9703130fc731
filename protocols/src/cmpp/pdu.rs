//! CMPP 3.0 and 2.0 PDUs as Rust values, with exact byte layouts [CMPP3 §7, §8.4, §12].
//!
//! `Pdu::decode_as` turns one complete frame (header included) into a value and `Pdu::encode_as`
//! does the reverse, in the layouts of the given [`Version`]; `decode` and `encode` are the 3.0
//! shorthands. Both versions share one set of types: the fields 3.0 added (terminal types, LinkID)
//! are not on the 2.0 wire, so 2.0 encoding ignores them and 2.0 decoding leaves them 0 / empty,
//! and 2.0's 8-byte Reserve fields are written as zeros and ignored when read. Decoding checks every length against the bytes actually present before reading,
//! never panics and never allocates more than the (already bounded) frame. Fixed-width Octet
//! String fields are NUL-padded on the right on the wire and trimmed when decoded. This module
//! knows nothing about sockets or sessions.

use bytes::{BufMut, BytesMut};

use super::header::{command, CmppError, Header, Version, HEADER_LEN, MAX_PDU_LEN};

/// Body length of a CMPP 3.0 status report carried in a DELIVER's Msg_Content (60 in 2.0).
pub const REPORT_LEN: usize = 71;
/// Width of a CMPP 3.0 terminal id field (Dest_terminal_Id, Src_terminal_Id, Fee_terminal_Id);
/// 21 in 2.0.
pub const TERMINAL_ID_LEN: usize = 32;
/// Width of 2.0's Reserve field at the end of SUBMIT and DELIVER.
const RESERVE_2_0_LEN: usize = 8;
/// DestUsr_tl must stay below 100 [CMPP3 §8.4.3].
pub const MAX_DESTINATIONS: usize = 99;

/// One CMPP PDU: the sequence id from the header and a typed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    pub sequence_id: u32,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Connect(Connect),
    ConnectResp(ConnectResp),
    Terminate,
    TerminateResp,
    Submit(Box<Submit>),
    SubmitResp(SubmitResp),
    Deliver(Box<Deliver>),
    DeliverResp(DeliverResp),
    ActiveTest,
    ActiveTestResp,
}

/// CMPP_CONNECT: Source_Addr 6, AuthenticatorSource 16, Version 1, Timestamp 4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub source_addr: String,
    pub authenticator_source: [u8; 16],
    pub version: u8,
    /// MMDDHHMMSS read as a decimal number.
    pub timestamp: u32,
}

/// CMPP_CONNECT_RESP: Status 4 (1 in 2.0), AuthenticatorISMG 16, Version 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResp {
    /// 0 ok, 1 structure error, 2 illegal source address, 3 authentication error, 4 version too high.
    pub status: u32,
    pub authenticator_ismg: [u8; 16],
    pub version: u8,
}

/// CMPP_SUBMIT, field for field (3.0 names; see the module note for 2.0).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Submit {
    pub msg_id: u64,
    pub pk_total: u8,
    pub pk_number: u8,
    pub registered_delivery: u8,
    pub msg_level: u8,
    pub service_id: String,
    pub fee_user_type: u8,
    pub fee_terminal_id: String,
    pub fee_terminal_type: u8,
    pub tp_pid: u8,
    pub tp_udhi: u8,
    pub msg_fmt: u8,
    pub msg_src: String,
    pub fee_type: String,
    pub fee_code: String,
    pub valid_time: String,
    pub at_time: String,
    pub src_id: String,
    pub dest_terminal_ids: Vec<String>,
    pub dest_terminal_type: u8,
    pub msg_content: Vec<u8>,
    pub link_id: String,
}

/// CMPP_SUBMIT_RESP: Msg_Id 8, Result 4 (1 in 2.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmitResp {
    pub msg_id: u64,
    pub result: u32,
}

/// CMPP_DELIVER (3.0 names; see the module note for 2.0). `Registered_Delivery` on the wire is 1 exactly when `content` is a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deliver {
    pub msg_id: u64,
    pub dest_id: String,
    pub service_id: String,
    pub tp_pid: u8,
    pub tp_udhi: u8,
    pub msg_fmt: u8,
    pub src_terminal_id: String,
    pub src_terminal_type: u8,
    pub content: DeliverContent,
    pub link_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliverContent {
    /// A mobile-originated message: raw Msg_Content (UDH included when TP_udhi is set).
    Message(Vec<u8>),
    /// A status report (Registered_Delivery = 1).
    Report(StatusReport),
}

/// The CMPP status report: Msg_Id 8, Stat 7, Submit_time 10, Done_time 10,
/// Dest_terminal_Id 32 (21 in 2.0), SMSC_sequence 4: 71 bytes in 3.0, 60 in 2.0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// The Msg_Id returned in SUBMIT_RESP for the message this report is about.
    pub msg_id: u64,
    /// DELIVRD, EXPIRED, DELETED, UNDELIV, ACCEPTD, UNKNOWN, REJECTD or a vendor code such as MA:0001.
    pub stat: String,
    /// YYMMDDHHMM.
    pub submit_time: String,
    /// YYMMDDHHMM.
    pub done_time: String,
    pub dest_terminal_id: String,
    pub smsc_sequence: u32,
}

/// CMPP_DELIVER_RESP: Msg_Id 8, Result 4 (1 in 2.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliverResp {
    pub msg_id: u64,
    pub result: u32,
}

impl Body {
    pub fn command_id(&self) -> u32 {
        match self {
            Body::Connect(_) => command::CONNECT,
            Body::ConnectResp(_) => command::CONNECT_RESP,
            Body::Terminate => command::TERMINATE,
            Body::TerminateResp => command::TERMINATE_RESP,
            Body::Submit(_) => command::SUBMIT,
            Body::SubmitResp(_) => command::SUBMIT_RESP,
            Body::Deliver(_) => command::DELIVER,
            Body::DeliverResp(_) => command::DELIVER_RESP,
            Body::ActiveTest => command::ACTIVE_TEST,
            Body::ActiveTestResp => command::ACTIVE_TEST_RESP,
        }
    }

    /// Responses have the top bit of the command id set.
    pub fn is_response(&self) -> bool {
        self.command_id() & 0x8000_0000 != 0
    }
}

impl Pdu {
    pub fn new(sequence_id: u32, body: Body) -> Pdu {
        Pdu { sequence_id, body }
    }

    /// Decodes one complete CMPP 3.0 PDU. `frame` must hold exactly Total_Length bytes.
    pub fn decode(frame: &[u8]) -> Result<Pdu, CmppError> {
        Pdu::decode_as(frame, Version::V3)
    }

    /// Decodes one complete PDU in the layouts of `version`. `frame` must hold exactly
    /// Total_Length bytes.
    pub fn decode_as(frame: &[u8], version: Version) -> Result<Pdu, CmppError> {
        let header = Header::peek(frame)?.ok_or(CmppError::Truncated {
            needed: HEADER_LEN,
            available: frame.len(),
        })?;
        let total = header.total_length as usize;
        if frame.len() < total {
            return Err(CmppError::Truncated {
                needed: total,
                available: frame.len(),
            });
        }
        if frame.len() > total {
            return Err(CmppError::BadBodyLength {
                command: header.command_id,
                expected: total - HEADER_LEN,
                actual: frame.len() - HEADER_LEN,
            });
        }
        let body = &frame[HEADER_LEN..total];
        let cmd = header.command_id;
        let mut r = Reader::new(body, cmd);
        let decoded = match cmd {
            command::CONNECT => {
                r.expect_len(27)?;
                Body::Connect(Connect {
                    source_addr: r.octets(6)?,
                    authenticator_source: r.array16()?,
                    version: r.u8()?,
                    timestamp: r.u32()?,
                })
            }
            command::CONNECT_RESP => {
                r.expect_len(17 + status_len(version))?;
                Body::ConnectResp(ConnectResp {
                    status: r.status(version)?,
                    authenticator_ismg: r.array16()?,
                    version: r.u8()?,
                })
            }
            command::TERMINATE => {
                r.expect_len(0)?;
                Body::Terminate
            }
            command::TERMINATE_RESP => {
                r.expect_len(0)?;
                Body::TerminateResp
            }
            command::ACTIVE_TEST => {
                r.expect_len(0)?;
                Body::ActiveTest
            }
            command::ACTIVE_TEST_RESP => {
                // The spec has one Reserved byte; some gateways omit it. Both are harmless.
                if body.len() > 1 {
                    return Err(CmppError::BadBodyLength {
                        command: cmd,
                        expected: 1,
                        actual: body.len(),
                    });
                }
                r.take(body.len())?;
                Body::ActiveTestResp
            }
            command::SUBMIT_RESP => {
                r.expect_len(8 + status_len(version))?;
                Body::SubmitResp(SubmitResp {
                    msg_id: r.u64()?,
                    result: r.status(version)?,
                })
            }
            command::DELIVER_RESP => {
                r.expect_len(8 + status_len(version))?;
                Body::DeliverResp(DeliverResp {
                    msg_id: r.u64()?,
                    result: r.status(version)?,
                })
            }
            command::SUBMIT => Body::Submit(Box::new(decode_submit(&mut r, version)?)),
            command::DELIVER => Body::Deliver(Box::new(decode_deliver(&mut r, version)?)),
            other => return Err(CmppError::UnknownCommand(other)),
        };
        r.finish()?;
        Ok(Pdu {
            sequence_id: header.sequence_id,
            body: decoded,
        })
    }

    /// Appends the encoded CMPP 3.0 PDU to `out`. Fails (writing nothing) when a field does not
    /// fit.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), CmppError> {
        self.encode_as(out, Version::V3)
    }

    /// Appends the PDU encoded in the layouts of `version` to `out`. Fails (writing nothing) when
    /// a field does not fit.
    pub fn encode_as(&self, out: &mut BytesMut, version: Version) -> Result<(), CmppError> {
        let mut body = BytesMut::with_capacity(256);
        match &self.body {
            Body::Connect(c) => {
                put_octets(&mut body, "Source_Addr", &c.source_addr, 6)?;
                body.put_slice(&c.authenticator_source);
                body.put_u8(c.version);
                body.put_u32(c.timestamp);
            }
            Body::ConnectResp(c) => {
                put_status(&mut body, "Status", c.status, version)?;
                body.put_slice(&c.authenticator_ismg);
                body.put_u8(c.version);
            }
            Body::Terminate | Body::TerminateResp | Body::ActiveTest => {}
            Body::ActiveTestResp => body.put_u8(0),
            Body::SubmitResp(r) => {
                body.put_u64(r.msg_id);
                put_status(&mut body, "Result", r.result, version)?;
            }
            Body::DeliverResp(r) => {
                body.put_u64(r.msg_id);
                put_status(&mut body, "Result", r.result, version)?;
            }
            Body::Submit(s) => encode_submit(s, &mut body, version)?,
            Body::Deliver(d) => encode_deliver(d, &mut body, version)?,
        }
        let total = HEADER_LEN + body.len();
        if total > MAX_PDU_LEN {
            return Err(CmppError::FieldTooLong {
                field: "PDU",
                len: total,
                max: MAX_PDU_LEN,
            });
        }
        out.reserve(total);
        Header {
            total_length: total as u32,
            command_id: self.body.command_id(),
            sequence_id: self.sequence_id,
        }
        .write(out);
        out.put_slice(&body);
        Ok(())
    }

    /// Convenience for tests and one-off writes (3.0).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CmppError> {
        self.to_bytes_as(Version::V3)
    }

    /// Convenience for tests and one-off writes in the layouts of `version`.
    pub fn to_bytes_as(&self, version: Version) -> Result<Vec<u8>, CmppError> {
        let mut out = BytesMut::new();
        self.encode_as(&mut out, version)?;
        Ok(out.to_vec())
    }
}

impl StatusReport {
    /// Decodes a 3.0 (71-byte) report.
    pub fn decode(bytes: &[u8]) -> Result<StatusReport, CmppError> {
        StatusReport::decode_as(bytes, Version::V3)
    }

    pub fn decode_as(bytes: &[u8], version: Version) -> Result<StatusReport, CmppError> {
        let mut r = Reader::new(bytes, command::DELIVER);
        let expected = version.report_len();
        if bytes.len() != expected {
            return Err(CmppError::BadField {
                field: "Msg_Content",
                reason: format!(
                    "a CMPP {version} status report is {expected} bytes, got {}",
                    bytes.len()
                ),
            });
        }
        Ok(StatusReport {
            msg_id: r.u64()?,
            stat: r.octets(7)?,
            submit_time: r.octets(10)?,
            done_time: r.octets(10)?,
            dest_terminal_id: r.octets(version.terminal_id_len())?,
            smsc_sequence: r.u32()?,
        })
    }

    /// Encodes a 3.0 (71-byte) report.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), CmppError> {
        self.encode_as(out, Version::V3)
    }

    pub fn encode_as(&self, out: &mut BytesMut, version: Version) -> Result<(), CmppError> {
        out.put_u64(self.msg_id);
        put_octets(out, "Stat", &self.stat, 7)?;
        put_octets(out, "Submit_time", &self.submit_time, 10)?;
        put_octets(out, "Done_time", &self.done_time, 10)?;
        put_octets(
            out,
            "Dest_terminal_Id",
            &self.dest_terminal_id,
            version.terminal_id_len(),
        )?;
        out.put_u32(self.smsc_sequence);
        Ok(())
    }
}

fn decode_submit(r: &mut Reader<'_>, version: Version) -> Result<Submit, CmppError> {
    let v3 = version == Version::V3;
    let terminal_len = version.terminal_id_len();
    let mut s = Submit {
        msg_id: r.u64()?,
        pk_total: r.u8()?,
        pk_number: r.u8()?,
        registered_delivery: r.u8()?,
        msg_level: r.u8()?,
        service_id: r.octets(10)?,
        fee_user_type: r.u8()?,
        fee_terminal_id: r.octets(terminal_len)?,
        fee_terminal_type: if v3 { r.u8()? } else { 0 },
        tp_pid: r.u8()?,
        tp_udhi: r.u8()?,
        msg_fmt: r.u8()?,
        msg_src: r.octets(6)?,
        fee_type: r.octets(2)?,
        fee_code: r.octets(6)?,
        valid_time: r.octets(17)?,
        at_time: r.octets(17)?,
        src_id: r.octets(21)?,
        ..Submit::default()
    };
    let count = r.u8()? as usize;
    if count == 0 || count > MAX_DESTINATIONS {
        return Err(CmppError::BadField {
            field: "DestUsr_tl",
            reason: format!("{count} is outside 1..={MAX_DESTINATIONS}"),
        });
    }
    // Check the whole block is present before allocating the vector for it.
    r.ensure(count * terminal_len)?;
    let mut dests = Vec::with_capacity(count);
    for _ in 0..count {
        dests.push(r.octets(terminal_len)?);
    }
    s.dest_terminal_ids = dests;
    if v3 {
        s.dest_terminal_type = r.u8()?;
    }
    let len = r.u8()? as usize;
    s.msg_content = r.take(len)?.to_vec();
    if v3 {
        s.link_id = r.octets(20)?;
    } else {
        r.take(RESERVE_2_0_LEN)?;
    }
    Ok(s)
}

fn encode_submit(s: &Submit, out: &mut BytesMut, version: Version) -> Result<(), CmppError> {
    let v3 = version == Version::V3;
    let terminal_len = version.terminal_id_len();
    if s.dest_terminal_ids.is_empty() || s.dest_terminal_ids.len() > MAX_DESTINATIONS {
        return Err(CmppError::BadField {
            field: "DestUsr_tl",
            reason: format!(
                "{} destinations is outside 1..={MAX_DESTINATIONS}",
                s.dest_terminal_ids.len()
            ),
        });
    }
    let content_len = content_len(&s.msg_content)?;
    out.put_u64(s.msg_id);
    out.put_u8(s.pk_total);
    out.put_u8(s.pk_number);
    out.put_u8(s.registered_delivery);
    out.put_u8(s.msg_level);
    put_octets(out, "Service_Id", &s.service_id, 10)?;
    out.put_u8(s.fee_user_type);
    put_octets(out, "Fee_terminal_Id", &s.fee_terminal_id, terminal_len)?;
    if v3 {
        out.put_u8(s.fee_terminal_type);
    }
    out.put_u8(s.tp_pid);
    out.put_u8(s.tp_udhi);
    out.put_u8(s.msg_fmt);
    put_octets(out, "Msg_src", &s.msg_src, 6)?;
    put_octets(out, "FeeType", &s.fee_type, 2)?;
    put_octets(out, "FeeCode", &s.fee_code, 6)?;
    put_octets(out, "ValId_Time", &s.valid_time, 17)?;
    put_octets(out, "At_Time", &s.at_time, 17)?;
    put_octets(out, "Src_Id", &s.src_id, 21)?;
    out.put_u8(s.dest_terminal_ids.len() as u8);
    for d in &s.dest_terminal_ids {
        put_octets(out, "Dest_terminal_Id", d, terminal_len)?;
    }
    if v3 {
        out.put_u8(s.dest_terminal_type);
    }
    out.put_u8(content_len);
    out.put_slice(&s.msg_content);
    if v3 {
        put_octets(out, "LinkID", &s.link_id, 20)?;
    } else {
        out.put_bytes(0, RESERVE_2_0_LEN);
    }
    Ok(())
}

fn decode_deliver(r: &mut Reader<'_>, version: Version) -> Result<Deliver, CmppError> {
    let v3 = version == Version::V3;
    let msg_id = r.u64()?;
    let dest_id = r.octets(21)?;
    let service_id = r.octets(10)?;
    let tp_pid = r.u8()?;
    let tp_udhi = r.u8()?;
    let msg_fmt = r.u8()?;
    let src_terminal_id = r.octets(version.terminal_id_len())?;
    let src_terminal_type = if v3 { r.u8()? } else { 0 };
    let registered_delivery = r.u8()?;
    let len = r.u8()? as usize;
    let raw = r.take(len)?;
    let content = match registered_delivery {
        0 => DeliverContent::Message(raw.to_vec()),
        1 => DeliverContent::Report(StatusReport::decode_as(raw, version)?),
        other => {
            return Err(CmppError::BadField {
                field: "Registered_Delivery",
                reason: format!("{other} is neither 0 (message) nor 1 (report)"),
            })
        }
    };
    let link_id = if v3 {
        r.octets(20)?
    } else {
        r.take(RESERVE_2_0_LEN)?;
        String::new()
    };
    Ok(Deliver {
        msg_id,
        dest_id,
        service_id,
        tp_pid,
        tp_udhi,
        msg_fmt,
        src_terminal_id,
        src_terminal_type,
        content,
        link_id,
    })
}

fn encode_deliver(d: &Deliver, out: &mut BytesMut, version: Version) -> Result<(), CmppError> {
    let v3 = version == Version::V3;
    let (registered, content) = match &d.content {
        DeliverContent::Message(m) => (0u8, m.clone()),
        DeliverContent::Report(rep) => {
            let mut b = BytesMut::with_capacity(REPORT_LEN);
            rep.encode_as(&mut b, version)?;
            (1u8, b.to_vec())
        }
    };
    let len = content_len(&content)?;
    out.put_u64(d.msg_id);
    put_octets(out, "Dest_Id", &d.dest_id, 21)?;
    put_octets(out, "Service_Id", &d.service_id, 10)?;
    out.put_u8(d.tp_pid);
    out.put_u8(d.tp_udhi);
    out.put_u8(d.msg_fmt);
    put_octets(
        out,
        "Src_terminal_Id",
        &d.src_terminal_id,
        version.terminal_id_len(),
    )?;
    if v3 {
        out.put_u8(d.src_terminal_type);
    }
    out.put_u8(registered);
    out.put_u8(len);
    out.put_slice(&content);
    if v3 {
        put_octets(out, "LinkID", &d.link_id, 20)?;
    } else {
        out.put_bytes(0, RESERVE_2_0_LEN);
    }
    Ok(())
}

/// Width of the Status / Result fields of the responses.
fn status_len(version: Version) -> usize {
    match version {
        Version::V2 => 1,
        Version::V3 => 4,
    }
}

/// Writes a Status / Result field: 4 bytes in 3.0, 1 byte in 2.0 (where a code above 255 cannot
/// be expressed and is refused rather than truncated).
fn put_status(
    out: &mut BytesMut,
    field: &'static str,
    value: u32,
    version: Version,
) -> Result<(), CmppError> {
    match version {
        Version::V3 => out.put_u32(value),
        Version::V2 => {
            let byte = u8::try_from(value).map_err(|_| CmppError::BadField {
                field,
                reason: format!("{value} does not fit the 1-byte CMPP 2.0 field"),
            })?;
            out.put_u8(byte);
        }
    }
    Ok(())
}

fn content_len(content: &[u8]) -> Result<u8, CmppError> {
    u8::try_from(content.len()).map_err(|_| CmppError::FieldTooLong {
        field: "Msg_Content",
        len: content.len(),
        max: 255,
    })
}

/// Writes `value` into a fixed-width field, NUL-padded on the right.
fn put_octets(
    out: &mut BytesMut,
    field: &'static str,
    value: &str,
    width: usize,
) -> Result<(), CmppError> {
    let bytes = value.as_bytes();
    if bytes.len() > width {
        return Err(CmppError::FieldTooLong {
            field,
            len: bytes.len(),
            max: width,
        });
    }
    out.put_slice(bytes);
    out.put_bytes(0, width - bytes.len());
    Ok(())
}

/// Bounds-checked cursor over a PDU body.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    command: u32,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], command: u32) -> Self {
        Reader {
            buf,
            pos: 0,
            command,
        }
    }

    fn expect_len(&self, len: usize) -> Result<(), CmppError> {
        if self.buf.len() != len {
            return Err(CmppError::BadBodyLength {
                command: self.command,
                expected: len,
                actual: self.buf.len(),
            });
        }
        Ok(())
    }

    fn ensure(&self, n: usize) -> Result<(), CmppError> {
        let needed = self.pos.saturating_add(n);
        if needed > self.buf.len() {
            return Err(CmppError::Truncated {
                needed: needed + HEADER_LEN,
                available: self.buf.len() + HEADER_LEN,
            });
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CmppError> {
        self.ensure(n)?;
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, CmppError> {
        Ok(self.take(1)?[0])
    }

    fn status(&mut self, version: Version) -> Result<u32, CmppError> {
        match version {
            Version::V2 => self.u8().map(u32::from),
            Version::V3 => self.u32(),
        }
    }

    fn u32(&mut self) -> Result<u32, CmppError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(a))
    }

    fn u64(&mut self) -> Result<u64, CmppError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }

    fn array16(&mut self) -> Result<[u8; 16], CmppError> {
        let mut a = [0u8; 16];
        a.copy_from_slice(self.take(16)?);
        Ok(a)
    }

    /// A fixed-width Octet String: everything from the first NUL on is padding.
    fn octets(&mut self, width: usize) -> Result<String, CmppError> {
        let raw = self.take(width)?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        Ok(String::from_utf8_lossy(&raw[..end]).into_owned())
    }

    /// Variable-length bodies must be consumed exactly.
    fn finish(&self) -> Result<(), CmppError> {
        if self.pos != self.buf.len() {
            return Err(CmppError::BadBodyLength {
                command: self.command,
                expected: self.pos,
                actual: self.buf.len(),
            });
        }
        Ok(())
    }
}
