//! CNGP 2.0 PDUs as Rust values, with exact byte layouts.
//!
//! Unlike SMGP, the result of a request travels in the header's Command_Status, and responses
//! carry no Status field of their own. `Pdu::decode` takes one complete frame; it checks every
//! length against the bytes present before reading, never panics and never allocates more than
//! the (already bounded) frame. Fixed-width Octet Strings are NUL-padded and trimmed.

use bytes::{BufMut, BytesMut};

use super::{command, HEADER_LEN, MAX_DESTINATIONS, MAX_PDU_LEN, TERM_ID_LEN, TLVS};
use crate::telecom::wire::{self, content_len, put_octets, CodecError, Reader};
use crate::telecom::{MsgId10, Receipt, Tlvs};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    /// 0 in requests; the result in responses.
    pub command_status: u32,
    pub sequence_id: u32,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Login(Login),
    LoginResp(LoginResp),
    Submit(Box<Submit>),
    SubmitResp(SubmitResp),
    Deliver(Box<Deliver>),
    DeliverResp(DeliverResp),
    ActiveTest,
    ActiveTestResp,
    Exit,
    ExitResp,
}

/// Login: ClientID 10, AuthenticatorClient 16, LoginMode 1, TimeStamp 4, Version 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub client_id: String,
    pub authenticator_client: [u8; 16],
    pub login_mode: u8,
    pub timestamp: u32,
    pub version: u8,
}

/// Login_Resp: AuthenticatorServer 16, Version 1 (the result is the header's Command_Status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginResp {
    pub authenticator_server: [u8; 16],
    pub version: u8,
}

/// Submit, field for field, then its TLVs (ProtocolID).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Submit {
    pub sp_id: String,
    pub sub_type: u8,
    pub need_report: u8,
    pub priority: u8,
    pub service_id: String,
    pub fee_type: String,
    pub fee_user_type: u8,
    pub fee_code: String,
    pub msg_format: u8,
    pub valid_time: String,
    pub at_time: String,
    pub src_term_id: String,
    pub charge_term_id: String,
    /// 1..=100 numbers.
    pub dest_term_ids: Vec<String>,
    pub msg_content: Vec<u8>,
    pub tlvs: Tlvs,
}

/// Submit_Resp: MsgID 10, then TLVs (CongestionState).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitResp {
    pub msg_id: MsgId10,
    pub tlvs: Tlvs,
}

/// Deliver. IsReport on the wire is 1 exactly when `content` is a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deliver {
    pub msg_id: MsgId10,
    pub msg_format: u8,
    /// YYYYMMDDhhmmss.
    pub recv_time: String,
    pub src_term_id: String,
    pub dest_term_id: String,
    pub content: DeliverContent,
    pub tlvs: Tlvs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliverContent {
    /// A mobile-originated message: raw content.
    Message(Vec<u8>),
    /// A status report (IsReport = 1), in the receipt text format shared with SMGP
    /// (*unconfirmed* for CNGP; read leniently).
    Report(Receipt),
}

/// Deliver_Resp: MsgID 10, then TLVs (CongestionState).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverResp {
    pub msg_id: MsgId10,
    pub tlvs: Tlvs,
}

impl Body {
    pub fn command_id(&self) -> u32 {
        match self {
            Body::Login(_) => command::LOGIN,
            Body::LoginResp(_) => command::LOGIN_RESP,
            Body::Submit(_) => command::SUBMIT,
            Body::SubmitResp(_) => command::SUBMIT_RESP,
            Body::Deliver(_) => command::DELIVER,
            Body::DeliverResp(_) => command::DELIVER_RESP,
            Body::ActiveTest => command::ACTIVE_TEST,
            Body::ActiveTestResp => command::ACTIVE_TEST_RESP,
            Body::Exit => command::EXIT,
            Body::ExitResp => command::EXIT_RESP,
        }
    }

    pub fn is_response(&self) -> bool {
        self.command_id() & 0x8000_0000 != 0
    }
}

impl Pdu {
    /// A request, or a successful response (Command_Status 0).
    pub fn new(sequence_id: u32, body: Body) -> Pdu {
        Pdu {
            command_status: 0,
            sequence_id,
            body,
        }
    }

    /// A response carrying `status`.
    pub fn with_status(sequence_id: u32, command_status: u32, body: Body) -> Pdu {
        Pdu {
            command_status,
            sequence_id,
            body,
        }
    }

    /// Decodes one complete PDU. `frame` must hold exactly Total_Length bytes.
    pub fn decode(frame: &[u8]) -> Result<Pdu, CodecError> {
        let [_, cmd, command_status, sequence_id] = wire::read_header::<4>(frame, MAX_PDU_LEN)?;
        let mut r = Reader::new(&frame[HEADER_LEN..], cmd, HEADER_LEN);
        let body = match cmd {
            command::LOGIN => {
                r.expect_len(32)?;
                Body::Login(Login {
                    client_id: r.octets(10)?,
                    authenticator_client: r.array()?,
                    login_mode: r.u8()?,
                    timestamp: r.u32()?,
                    version: r.u8()?,
                })
            }
            command::LOGIN_RESP => {
                r.expect_len(17)?;
                Body::LoginResp(LoginResp {
                    authenticator_server: r.array()?,
                    version: r.u8()?,
                })
            }
            command::SUBMIT_RESP => Body::SubmitResp(SubmitResp {
                msg_id: MsgId10(r.array()?),
                tlvs: Tlvs::decode(&mut r, TLVS)?,
            }),
            command::DELIVER_RESP => Body::DeliverResp(DeliverResp {
                msg_id: MsgId10(r.array()?),
                tlvs: Tlvs::decode(&mut r, TLVS)?,
            }),
            command::ACTIVE_TEST => empty(&r, Body::ActiveTest)?,
            command::ACTIVE_TEST_RESP => empty(&r, Body::ActiveTestResp)?,
            command::EXIT => empty(&r, Body::Exit)?,
            command::EXIT_RESP => empty(&r, Body::ExitResp)?,
            command::SUBMIT => Body::Submit(Box::new(decode_submit(&mut r)?)),
            command::DELIVER => Body::Deliver(Box::new(decode_deliver(&mut r)?)),
            other => return Err(CodecError::UnknownCommand(other)),
        };
        r.finish()?;
        Ok(Pdu {
            command_status,
            sequence_id,
            body,
        })
    }

    /// Appends the encoded PDU to `out`. Fails (writing nothing) when a field does not fit.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), CodecError> {
        let mut body = BytesMut::with_capacity(256);
        match &self.body {
            Body::Login(l) => {
                put_octets(&mut body, "ClientID", &l.client_id, 10)?;
                body.put_slice(&l.authenticator_client);
                body.put_u8(l.login_mode);
                body.put_u32(l.timestamp);
                body.put_u8(l.version);
            }
            Body::LoginResp(l) => {
                body.put_slice(&l.authenticator_server);
                body.put_u8(l.version);
            }
            Body::SubmitResp(SubmitResp { msg_id, tlvs })
            | Body::DeliverResp(DeliverResp { msg_id, tlvs }) => {
                body.put_slice(&msg_id.0);
                tlvs.encode(TLVS, &mut body)?;
            }
            Body::ActiveTest | Body::ActiveTestResp | Body::Exit | Body::ExitResp => {}
            Body::Submit(s) => encode_submit(s, &mut body)?,
            Body::Deliver(d) => encode_deliver(d, &mut body)?,
        }
        wire::put_frame(
            out,
            &[
                self.body.command_id(),
                self.command_status,
                self.sequence_id,
            ],
            &body,
            MAX_PDU_LEN,
        )
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        let mut out = BytesMut::new();
        self.encode(&mut out)?;
        Ok(out.to_vec())
    }
}

fn empty(r: &Reader<'_>, body: Body) -> Result<Body, CodecError> {
    r.expect_len(0)?;
    Ok(body)
}

fn decode_submit(r: &mut Reader<'_>) -> Result<Submit, CodecError> {
    let mut s = Submit {
        sp_id: r.octets(10)?,
        sub_type: r.u8()?,
        need_report: r.u8()?,
        priority: r.u8()?,
        service_id: r.octets(10)?,
        fee_type: r.octets(2)?,
        fee_user_type: r.u8()?,
        fee_code: r.octets(6)?,
        msg_format: r.u8()?,
        valid_time: r.octets(17)?,
        at_time: r.octets(17)?,
        src_term_id: r.octets(TERM_ID_LEN)?,
        charge_term_id: r.octets(TERM_ID_LEN)?,
        ..Submit::default()
    };
    s.dest_term_ids = wire::read_dest_ids(r, MAX_DESTINATIONS, TERM_ID_LEN)?;
    let len = r.u8()? as usize;
    s.msg_content = r.take(len)?.to_vec();
    s.tlvs = Tlvs::decode(r, TLVS)?;
    Ok(s)
}

fn encode_submit(s: &Submit, out: &mut BytesMut) -> Result<(), CodecError> {
    wire::check_dest_count(&s.dest_term_ids, MAX_DESTINATIONS)?;
    let len = content_len("MsgContent", &s.msg_content)?;
    put_octets(out, "SPID", &s.sp_id, 10)?;
    out.put_u8(s.sub_type);
    out.put_u8(s.need_report);
    out.put_u8(s.priority);
    put_octets(out, "ServiceID", &s.service_id, 10)?;
    put_octets(out, "FeeType", &s.fee_type, 2)?;
    out.put_u8(s.fee_user_type);
    put_octets(out, "FeeCode", &s.fee_code, 6)?;
    out.put_u8(s.msg_format);
    put_octets(out, "ValidTime", &s.valid_time, 17)?;
    put_octets(out, "AtTime", &s.at_time, 17)?;
    put_octets(out, "SrcTermID", &s.src_term_id, TERM_ID_LEN)?;
    put_octets(out, "ChargeTermID", &s.charge_term_id, TERM_ID_LEN)?;
    wire::put_dest_ids(out, &s.dest_term_ids, TERM_ID_LEN)?;
    out.put_u8(len);
    out.put_slice(&s.msg_content);
    s.tlvs.encode(TLVS, out)
}

fn decode_deliver(r: &mut Reader<'_>) -> Result<Deliver, CodecError> {
    let msg_id = MsgId10(r.array()?);
    let is_report = r.u8()?;
    let msg_format = r.u8()?;
    let recv_time = r.octets(14)?;
    let src_term_id = r.octets(TERM_ID_LEN)?;
    let dest_term_id = r.octets(TERM_ID_LEN)?;
    let len = r.u8()? as usize;
    let raw = r.take(len)?;
    let content = match is_report {
        0 => DeliverContent::Message(raw.to_vec()),
        1 => DeliverContent::Report(Receipt::decode(raw)?),
        other => {
            return Err(CodecError::BadField {
                field: "IsReport",
                reason: format!("{other} is neither 0 (message) nor 1 (report)"),
            })
        }
    };
    Ok(Deliver {
        msg_id,
        msg_format,
        recv_time,
        src_term_id,
        dest_term_id,
        content,
        tlvs: Tlvs::decode(r, TLVS)?,
    })
}

fn encode_deliver(d: &Deliver, out: &mut BytesMut) -> Result<(), CodecError> {
    let (is_report, content) = match &d.content {
        DeliverContent::Message(m) => (0u8, m.clone()),
        DeliverContent::Report(rep) => (1u8, rep.to_bytes()?),
    };
    let len = content_len("MsgContent", &content)?;
    out.put_slice(&d.msg_id.0);
    out.put_u8(is_report);
    out.put_u8(d.msg_format);
    put_octets(out, "RecvTime", &d.recv_time, 14)?;
    put_octets(out, "SrcTermID", &d.src_term_id, TERM_ID_LEN)?;
    put_octets(out, "DestTermID", &d.dest_term_id, TERM_ID_LEN)?;
    out.put_u8(len);
    out.put_slice(&content);
    d.tlvs.encode(TLVS, out)
}
