//! SGIP 1.2 PDUs as Rust values, with exact byte layouts [SGIP §4.2.3].
//!
//! `Pdu::decode` turns one complete frame (header included) into a value and `Pdu::encode` does
//! the reverse. Decoding checks every length against the bytes actually present before reading,
//! never panics and never allocates more than the (already bounded) frame. Fixed-width text
//! fields are NUL-padded on the right on the wire and trimmed when decoded. Every body ends in an
//! 8-byte Reserve field: it is written as zeros and ignored when read, so it is not modelled.
//! This module knows nothing about sockets or sessions.

use bytes::{BufMut, BytesMut};

use super::header::{command, Header, SequenceNumber, SgipError, HEADER_LEN, MAX_PDU_LEN};

/// Width of a phone number field (UserNumber, SPNumber, ChargeNumber).
pub const NUMBER_LEN: usize = 21;
/// Width of the Reserve field closing every body.
pub const RESERVE_LEN: usize = 8;
/// UserCount ranges over 1..=100 [SGIP §4.2.3.3].
pub const MAX_USERS: usize = 100;
/// Body length of Bind: LoginType 1, LoginName 16, LoginPassword 16, Reserve 8.
pub const BIND_LEN: usize = 41;
/// Body length of every *_Resp but Unbind_Resp: Result 1, Reserve 8.
pub const RESP_LEN: usize = 9;
/// Body length of Report: SubmitSequenceNumber 12, ReportType 1, UserNumber 21, State 1,
/// ErrorCode 1, Reserve 8.
pub const REPORT_LEN: usize = 44;

/// Bind LoginType values [SGIP §4.2.3.1].
pub mod login_type {
    /// SP → SMG: the SP's connection for Submit.
    pub const SP_TO_SMG: u8 = 1;
    /// SMG → SP: the gateway's connection for Deliver and Report.
    pub const SMG_TO_SP: u8 = 2;
}

/// Report State values [SGIP §4.2.3.6].
pub mod report_state {
    pub const DELIVERED: u8 = 0;
    /// Not final: the gateway is still trying.
    pub const WAITING: u8 = 1;
    pub const FAILED: u8 = 2;
}

/// Submit ReportFlag values [SGIP §4.2.3.3].
pub mod report_flag {
    /// The default: a report only when the message finally fails.
    pub const ON_FAILURE: u8 = 0;
    pub const ALWAYS: u8 = 1;
    pub const NEVER: u8 = 2;
}

/// One SGIP PDU: the sequence number from the header and a typed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    pub sequence: SequenceNumber,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Bind(Bind),
    BindResp(Resp),
    Unbind,
    UnbindResp,
    Submit(Box<Submit>),
    SubmitResp(Resp),
    Deliver(Box<Deliver>),
    DeliverResp(Resp),
    Report(Report),
    ReportResp(Resp),
}

/// Bind: LoginType 1, LoginName 16, LoginPassword 16 (plain text), Reserve 8. `Debug` leaves
/// the password out: a PDU logged while debugging a session must not carry it into the log.
#[derive(Clone, PartialEq, Eq)]
pub struct Bind {
    pub login_type: u8,
    pub login_name: String,
    pub login_password: String,
}

impl std::fmt::Debug for Bind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bind")
            .field("login_type", &self.login_type)
            .field("login_name", &self.login_name)
            .field("login_password", &"[REDACTED]")
            .finish()
    }
}

/// The body shared by Bind_Resp, Submit_Resp, Deliver_Resp and Report_Resp: Result 1, Reserve 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resp {
    /// 0 success; error codes in [`super::result_meaning`].
    pub result: u8,
}

/// Submit, field for field (UserCount is `user_numbers.len()`, MessageLength is the content's).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Submit {
    pub sp_number: String,
    /// Who pays; 21 '0's means the SP.
    pub charge_number: String,
    /// Recipients, with the "86" country prefix.
    pub user_numbers: Vec<String>,
    pub corp_id: String,
    pub service_type: String,
    pub fee_type: u8,
    pub fee_value: String,
    pub given_value: String,
    pub agent_flag: u8,
    pub morelate_to_mt_flag: u8,
    pub priority: u8,
    pub expire_time: String,
    pub schedule_time: String,
    pub report_flag: u8,
    pub tp_pid: u8,
    pub tp_udhi: u8,
    pub message_coding: u8,
    pub message_type: u8,
    /// Raw content, UDH included when TP_udhi is set.
    pub message_content: Vec<u8>,
}

/// Deliver (mobile-originated message): UserNumber 21, SPNumber 21, TP_pid 1, TP_udhi 1,
/// MessageCoding 1, MessageLength 4, MessageContent, Reserve 8.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Deliver {
    /// The sender, with the "86" country prefix.
    pub user_number: String,
    pub sp_number: String,
    pub tp_pid: u8,
    pub tp_udhi: u8,
    pub message_coding: u8,
    pub message_content: Vec<u8>,
}

/// Report (status report), 44 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The sequence number of the Submit this report is about.
    pub submit_sequence: SequenceNumber,
    /// 0: about a Submit; 1: about a forwarded Deliver.
    pub report_type: u8,
    pub user_number: String,
    /// See [`report_state`].
    pub state: u8,
    /// Why it failed, when `state` is FAILED.
    pub error_code: u8,
}

impl Body {
    pub fn command_id(&self) -> u32 {
        match self {
            Body::Bind(_) => command::BIND,
            Body::BindResp(_) => command::BIND_RESP,
            Body::Unbind => command::UNBIND,
            Body::UnbindResp => command::UNBIND_RESP,
            Body::Submit(_) => command::SUBMIT,
            Body::SubmitResp(_) => command::SUBMIT_RESP,
            Body::Deliver(_) => command::DELIVER,
            Body::DeliverResp(_) => command::DELIVER_RESP,
            Body::Report(_) => command::REPORT,
            Body::ReportResp(_) => command::REPORT_RESP,
        }
    }

    /// Responses have the top bit of the command id set.
    pub fn is_response(&self) -> bool {
        self.command_id() & 0x8000_0000 != 0
    }
}

impl Pdu {
    pub fn new(sequence: SequenceNumber, body: Body) -> Pdu {
        Pdu { sequence, body }
    }

    /// Decodes one complete PDU. `frame` must hold exactly Message Length bytes.
    pub fn decode(frame: &[u8]) -> Result<Pdu, SgipError> {
        let header = Header::peek(frame)?.ok_or(SgipError::Truncated {
            needed: HEADER_LEN,
            available: frame.len(),
        })?;
        let total = header.length as usize;
        if frame.len() < total {
            return Err(SgipError::Truncated {
                needed: total,
                available: frame.len(),
            });
        }
        if frame.len() > total {
            return Err(SgipError::BadBodyLength {
                command: header.command_id,
                expected: total - HEADER_LEN,
                actual: frame.len() - HEADER_LEN,
            });
        }
        let body = &frame[HEADER_LEN..total];
        let cmd = header.command_id;
        let mut r = Reader::new(body, cmd);
        let decoded = match cmd {
            command::BIND => {
                r.expect_len(BIND_LEN)?;
                let bind = Bind {
                    login_type: r.u8()?,
                    login_name: r.octets(16)?,
                    login_password: r.octets(16)?,
                };
                r.take(RESERVE_LEN)?;
                Body::Bind(bind)
            }
            command::UNBIND => {
                r.expect_len(0)?;
                Body::Unbind
            }
            command::UNBIND_RESP => {
                r.expect_len(0)?;
                Body::UnbindResp
            }
            command::BIND_RESP => Body::BindResp(decode_resp(&mut r)?),
            command::SUBMIT_RESP => Body::SubmitResp(decode_resp(&mut r)?),
            command::DELIVER_RESP => Body::DeliverResp(decode_resp(&mut r)?),
            command::REPORT_RESP => Body::ReportResp(decode_resp(&mut r)?),
            command::SUBMIT => Body::Submit(Box::new(decode_submit(&mut r)?)),
            command::DELIVER => Body::Deliver(Box::new(decode_deliver(&mut r)?)),
            command::REPORT => {
                r.expect_len(REPORT_LEN)?;
                let report = Report {
                    submit_sequence: SequenceNumber::new(r.u32()?, r.u32()?, r.u32()?),
                    report_type: r.u8()?,
                    user_number: r.octets(NUMBER_LEN)?,
                    state: r.u8()?,
                    error_code: r.u8()?,
                };
                r.take(RESERVE_LEN)?;
                Body::Report(report)
            }
            other => return Err(SgipError::UnknownCommand(other)),
        };
        r.finish()?;
        Ok(Pdu {
            sequence: header.sequence,
            body: decoded,
        })
    }

    /// Appends the encoded PDU to `out`. Fails (writing nothing) when a field does not fit.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), SgipError> {
        let mut body = BytesMut::with_capacity(256);
        match &self.body {
            Body::Bind(b) => {
                body.put_u8(b.login_type);
                put_octets(&mut body, "LoginName", &b.login_name, 16)?;
                put_octets(&mut body, "LoginPassword", &b.login_password, 16)?;
                body.put_bytes(0, RESERVE_LEN);
            }
            Body::Unbind | Body::UnbindResp => {}
            Body::BindResp(r)
            | Body::SubmitResp(r)
            | Body::DeliverResp(r)
            | Body::ReportResp(r) => {
                body.put_u8(r.result);
                body.put_bytes(0, RESERVE_LEN);
            }
            Body::Submit(s) => encode_submit(s, &mut body)?,
            Body::Deliver(d) => {
                put_octets(&mut body, "UserNumber", &d.user_number, NUMBER_LEN)?;
                put_octets(&mut body, "SPNumber", &d.sp_number, NUMBER_LEN)?;
                body.put_u8(d.tp_pid);
                body.put_u8(d.tp_udhi);
                body.put_u8(d.message_coding);
                put_content(&mut body, &d.message_content)?;
                body.put_bytes(0, RESERVE_LEN);
            }
            Body::Report(r) => {
                body.put_u32(r.submit_sequence.node_id);
                body.put_u32(r.submit_sequence.time);
                body.put_u32(r.submit_sequence.number);
                body.put_u8(r.report_type);
                put_octets(&mut body, "UserNumber", &r.user_number, NUMBER_LEN)?;
                body.put_u8(r.state);
                body.put_u8(r.error_code);
                body.put_bytes(0, RESERVE_LEN);
            }
        }
        let total = HEADER_LEN + body.len();
        if total > MAX_PDU_LEN {
            return Err(SgipError::FieldTooLong {
                field: "PDU",
                len: total,
                max: MAX_PDU_LEN,
            });
        }
        out.reserve(total);
        Header {
            length: total as u32,
            command_id: self.body.command_id(),
            sequence: self.sequence,
        }
        .write(out);
        out.put_slice(&body);
        Ok(())
    }

    /// Convenience for tests and one-off writes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, SgipError> {
        let mut out = BytesMut::new();
        self.encode(&mut out)?;
        Ok(out.to_vec())
    }
}

fn decode_resp(r: &mut Reader<'_>) -> Result<Resp, SgipError> {
    r.expect_len(RESP_LEN)?;
    let result = r.u8()?;
    r.take(RESERVE_LEN)?;
    Ok(Resp { result })
}

fn decode_submit(r: &mut Reader<'_>) -> Result<Submit, SgipError> {
    let sp_number = r.octets(NUMBER_LEN)?;
    let charge_number = r.octets(NUMBER_LEN)?;
    let count = r.u8()? as usize;
    if count == 0 || count > MAX_USERS {
        return Err(SgipError::BadField {
            field: "UserCount",
            reason: format!("{count} is outside 1..={MAX_USERS}"),
        });
    }
    // Check the whole block is present before allocating the vector for it.
    r.ensure(count * NUMBER_LEN)?;
    let mut user_numbers = Vec::with_capacity(count);
    for _ in 0..count {
        user_numbers.push(r.octets(NUMBER_LEN)?);
    }
    let s = Submit {
        sp_number,
        charge_number,
        user_numbers,
        corp_id: r.octets(5)?,
        service_type: r.octets(10)?,
        fee_type: r.u8()?,
        fee_value: r.octets(6)?,
        given_value: r.octets(6)?,
        agent_flag: r.u8()?,
        morelate_to_mt_flag: r.u8()?,
        priority: r.u8()?,
        expire_time: r.octets(16)?,
        schedule_time: r.octets(16)?,
        report_flag: r.u8()?,
        tp_pid: r.u8()?,
        tp_udhi: r.u8()?,
        message_coding: r.u8()?,
        message_type: r.u8()?,
        message_content: r.content()?,
    };
    r.take(RESERVE_LEN)?;
    Ok(s)
}

fn encode_submit(s: &Submit, out: &mut BytesMut) -> Result<(), SgipError> {
    if s.user_numbers.is_empty() || s.user_numbers.len() > MAX_USERS {
        return Err(SgipError::BadField {
            field: "UserCount",
            reason: format!(
                "{} recipients is outside 1..={MAX_USERS}",
                s.user_numbers.len()
            ),
        });
    }
    put_octets(out, "SPNumber", &s.sp_number, NUMBER_LEN)?;
    put_octets(out, "ChargeNumber", &s.charge_number, NUMBER_LEN)?;
    out.put_u8(s.user_numbers.len() as u8);
    for n in &s.user_numbers {
        put_octets(out, "UserNumber", n, NUMBER_LEN)?;
    }
    put_octets(out, "CorpId", &s.corp_id, 5)?;
    put_octets(out, "ServiceType", &s.service_type, 10)?;
    out.put_u8(s.fee_type);
    put_octets(out, "FeeValue", &s.fee_value, 6)?;
    put_octets(out, "GivenValue", &s.given_value, 6)?;
    out.put_u8(s.agent_flag);
    out.put_u8(s.morelate_to_mt_flag);
    out.put_u8(s.priority);
    put_octets(out, "ExpireTime", &s.expire_time, 16)?;
    put_octets(out, "ScheduleTime", &s.schedule_time, 16)?;
    out.put_u8(s.report_flag);
    out.put_u8(s.tp_pid);
    out.put_u8(s.tp_udhi);
    out.put_u8(s.message_coding);
    out.put_u8(s.message_type);
    put_content(out, &s.message_content)?;
    out.put_bytes(0, RESERVE_LEN);
    Ok(())
}

fn decode_deliver(r: &mut Reader<'_>) -> Result<Deliver, SgipError> {
    let d = Deliver {
        user_number: r.octets(NUMBER_LEN)?,
        sp_number: r.octets(NUMBER_LEN)?,
        tp_pid: r.u8()?,
        tp_udhi: r.u8()?,
        message_coding: r.u8()?,
        message_content: r.content()?,
    };
    r.take(RESERVE_LEN)?;
    Ok(d)
}

/// MessageLength (4 bytes) then the content. The frame bound keeps the length meaningful.
fn put_content(out: &mut BytesMut, content: &[u8]) -> Result<(), SgipError> {
    if content.len() > MAX_PDU_LEN {
        return Err(SgipError::FieldTooLong {
            field: "MessageContent",
            len: content.len(),
            max: MAX_PDU_LEN,
        });
    }
    out.put_u32(content.len() as u32);
    out.put_slice(content);
    Ok(())
}

/// Writes `value` into a fixed-width field, NUL-padded on the right.
fn put_octets(
    out: &mut BytesMut,
    field: &'static str,
    value: &str,
    width: usize,
) -> Result<(), SgipError> {
    let bytes = value.as_bytes();
    if bytes.len() > width {
        return Err(SgipError::FieldTooLong {
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

    fn expect_len(&self, len: usize) -> Result<(), SgipError> {
        if self.buf.len() != len {
            return Err(SgipError::BadBodyLength {
                command: self.command,
                expected: len,
                actual: self.buf.len(),
            });
        }
        Ok(())
    }

    fn ensure(&self, n: usize) -> Result<(), SgipError> {
        let needed = self.pos.saturating_add(n);
        if needed > self.buf.len() {
            return Err(SgipError::Truncated {
                needed: needed.saturating_add(HEADER_LEN),
                available: self.buf.len() + HEADER_LEN,
            });
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SgipError> {
        self.ensure(n)?;
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, SgipError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, SgipError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(a))
    }

    /// MessageLength then MessageContent; the length is checked against the bytes present
    /// before anything is copied.
    fn content(&mut self) -> Result<Vec<u8>, SgipError> {
        let len = self.u32()? as usize;
        Ok(self.take(len)?.to_vec())
    }

    /// A fixed-width text field: everything from the first NUL on is padding.
    fn octets(&mut self, width: usize) -> Result<String, SgipError> {
        let raw = self.take(width)?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        Ok(String::from_utf8_lossy(&raw[..end]).into_owned())
    }

    /// Variable-length bodies must be consumed exactly.
    fn finish(&self) -> Result<(), SgipError> {
        if self.pos != self.buf.len() {
            return Err(SgipError::BadBodyLength {
                command: self.command,
                expected: self.pos,
                actual: self.buf.len(),
            });
        }
        Ok(())
    }
}
