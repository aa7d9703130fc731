//! SMPP PDUs as Rust values, with exact byte layouts [SMPP34 §4], valid for 3.3, 3.4 and 5.0.
//!
//! `Pdu::decode` turns one complete frame (header included) into a value and `Pdu::encode` does
//! the reverse. Decoding checks every length against the bytes present before reading, never
//! panics and never allocates more than the (already bounded) frame. C-Octet Strings are
//! NUL-terminated with a maximum size that includes the NUL. The layouts are the same in every
//! version; a 3.3 peer simply never sends TLVs. This module knows nothing about sessions.

use bytes::{BufMut, BytesMut};

use super::header::{command, Header, SmppError, HEADER_LEN, MAX_PDU_LEN};
use super::tlv::{self, Tlv};

/// C-Octet String maximum sizes, NUL included [SMPP34 §4].
pub mod max {
    pub const SYSTEM_ID: usize = 16;
    pub const PASSWORD: usize = 9;
    pub const SYSTEM_TYPE: usize = 13;
    pub const ADDRESS_RANGE: usize = 41;
    pub const SERVICE_TYPE: usize = 6;
    pub const ADDR: usize = 21;
    pub const DATA_SM_ADDR: usize = 65;
    pub const TIME: usize = 17;
    pub const MESSAGE_ID: usize = 65;
    /// sm_length is one byte; 255 is reserved.
    pub const SHORT_MESSAGE: usize = 254;
}

/// One SMPP PDU: header fields and a typed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    /// Zero in requests; the result in responses.
    pub command_status: u32,
    pub sequence_number: u32,
    pub body: Body,
}

/// Which of the three binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindKind {
    Transmitter,
    Receiver,
    /// SMPP 3.4 and later.
    Transceiver,
}

impl BindKind {
    pub fn can_send(self) -> bool {
        self != BindKind::Receiver
    }

    pub fn can_receive(self) -> bool {
        self != BindKind::Transmitter
    }

    pub fn name(self) -> &'static str {
        match self {
            BindKind::Transmitter => "transmitter",
            BindKind::Receiver => "receiver",
            BindKind::Transceiver => "transceiver",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    GenericNack,
    Bind(Bind),
    BindResp(BindResp),
    Outbind(Outbind),
    Unbind,
    UnbindResp,
    SubmitSm(Box<Sm>),
    SubmitSmResp(SmResp),
    DeliverSm(Box<Sm>),
    DeliverSmResp(SmResp),
    DataSm(Box<DataSm>),
    DataSmResp(SmResp),
    EnquireLink,
    EnquireLinkResp,
}

/// bind_transmitter / bind_receiver / bind_transceiver. `Debug` leaves the password out: a
/// PDU logged while debugging a session must not carry the account's secret into the log.
#[derive(Clone, PartialEq, Eq)]
pub struct Bind {
    pub kind: BindKind,
    pub system_id: String,
    pub password: String,
    pub system_type: String,
    pub interface_version: u8,
    pub addr_ton: u8,
    pub addr_npi: u8,
    pub address_range: String,
}

/// bind_*_resp: system_id, then (3.4+) the sc_interface_version TLV. Error responses may come
/// without a body; they decode with an empty system_id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindResp {
    pub kind: BindKind,
    pub system_id: String,
    pub tlvs: Vec<Tlv>,
}

/// outbind; `Debug` leaves the password out, as [`Bind`]'s does.
#[derive(Clone, PartialEq, Eq)]
pub struct Outbind {
    pub system_id: String,
    pub password: String,
}

impl std::fmt::Debug for Bind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bind")
            .field("kind", &self.kind)
            .field("system_id", &self.system_id)
            .field("password", &REDACTED)
            .field("system_type", &self.system_type)
            .field("interface_version", &self.interface_version)
            .field("addr_ton", &self.addr_ton)
            .field("addr_npi", &self.addr_npi)
            .field("address_range", &self.address_range)
            .finish()
    }
}

impl std::fmt::Debug for Outbind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbind")
            .field("system_id", &self.system_id)
            .field("password", &REDACTED)
            .finish()
    }
}

/// What `Debug` shows in place of a password.
const REDACTED: &str = "[REDACTED]";

/// submit_sm and deliver_sm share this layout [SMPP34 §4.4.1, §4.6.1].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sm {
    pub service_type: String,
    pub source_addr_ton: u8,
    pub source_addr_npi: u8,
    pub source_addr: String,
    pub dest_addr_ton: u8,
    pub dest_addr_npi: u8,
    pub destination_addr: String,
    pub esm_class: u8,
    pub protocol_id: u8,
    pub priority_flag: u8,
    pub schedule_delivery_time: String,
    pub validity_period: String,
    pub registered_delivery: u8,
    pub replace_if_present_flag: u8,
    pub data_coding: u8,
    pub sm_default_msg_id: u8,
    pub short_message: Vec<u8>,
    pub tlvs: Vec<Tlv>,
}

/// submit_sm_resp / deliver_sm_resp / data_sm_resp: message_id and (5.0) TLVs. Error
/// responses may come without a body; they decode with an empty message_id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SmResp {
    pub message_id: String,
    pub tlvs: Vec<Tlv>,
}

/// data_sm (3.4+): addresses up to 64 characters, the message itself in TLVs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataSm {
    pub service_type: String,
    pub source_addr_ton: u8,
    pub source_addr_npi: u8,
    pub source_addr: String,
    pub dest_addr_ton: u8,
    pub dest_addr_npi: u8,
    pub destination_addr: String,
    pub esm_class: u8,
    pub registered_delivery: u8,
    pub data_coding: u8,
    pub tlvs: Vec<Tlv>,
}

/// esm_class bits [SMPP34 §5.2.12].
pub mod esm {
    /// Message type mask (bits 5–2).
    pub const TYPE_MASK: u8 = 0x3C;
    pub const DELIVERY_RECEIPT: u8 = 0x04;
    pub const INTERMEDIATE_NOTIFICATION: u8 = 0x20;
    /// UDHI: short_message starts with a User Data Header.
    pub const UDHI: u8 = 0x40;
}

impl Body {
    pub fn command_id(&self) -> u32 {
        use command::*;
        match self {
            Body::GenericNack => GENERIC_NACK,
            Body::Bind(b) => bind_command(b.kind),
            Body::BindResp(b) => bind_command(b.kind) | 0x8000_0000,
            Body::Outbind(_) => OUTBIND,
            Body::Unbind => UNBIND,
            Body::UnbindResp => UNBIND_RESP,
            Body::SubmitSm(_) => SUBMIT_SM,
            Body::SubmitSmResp(_) => SUBMIT_SM_RESP,
            Body::DeliverSm(_) => DELIVER_SM,
            Body::DeliverSmResp(_) => DELIVER_SM_RESP,
            Body::DataSm(_) => DATA_SM,
            Body::DataSmResp(_) => DATA_SM_RESP,
            Body::EnquireLink => ENQUIRE_LINK,
            Body::EnquireLinkResp => ENQUIRE_LINK_RESP,
        }
    }

    /// Responses (generic_nack included) have the top bit of the command id set.
    pub fn is_response(&self) -> bool {
        self.command_id() & 0x8000_0000 != 0
    }
}

fn bind_command(kind: BindKind) -> u32 {
    match kind {
        BindKind::Transmitter => command::BIND_TRANSMITTER,
        BindKind::Receiver => command::BIND_RECEIVER,
        BindKind::Transceiver => command::BIND_TRANSCEIVER,
    }
}

impl Pdu {
    /// A request (command_status 0).
    pub fn new(sequence_number: u32, body: Body) -> Pdu {
        Pdu {
            command_status: 0,
            sequence_number,
            body,
        }
    }

    /// A response with a command_status.
    pub fn response(sequence_number: u32, command_status: u32, body: Body) -> Pdu {
        Pdu {
            command_status,
            sequence_number,
            body,
        }
    }

    /// Decodes one complete PDU. `frame` must hold exactly command_length bytes.
    pub fn decode(frame: &[u8]) -> Result<Pdu, SmppError> {
        let header = Header::peek(frame)?.ok_or(SmppError::Truncated {
            needed: HEADER_LEN,
            available: frame.len(),
        })?;
        let total = header.command_length as usize;
        if frame.len() < total {
            return Err(SmppError::Truncated {
                needed: total,
                available: frame.len(),
            });
        }
        let cmd = header.command_id;
        if frame.len() > total {
            return Err(SmppError::TrailingBytes {
                command: cmd,
                extra: frame.len() - total,
            });
        }
        let mut r = Reader {
            buf: &frame[HEADER_LEN..total],
            pos: 0,
            command: cmd,
        };
        use command::*;
        let body = match cmd {
            GENERIC_NACK => Body::GenericNack,
            BIND_TRANSMITTER => Body::Bind(decode_bind(&mut r, BindKind::Transmitter)?),
            BIND_RECEIVER => Body::Bind(decode_bind(&mut r, BindKind::Receiver)?),
            BIND_TRANSCEIVER => Body::Bind(decode_bind(&mut r, BindKind::Transceiver)?),
            BIND_TRANSMITTER_RESP => {
                Body::BindResp(decode_bind_resp(&mut r, BindKind::Transmitter)?)
            }
            BIND_RECEIVER_RESP => Body::BindResp(decode_bind_resp(&mut r, BindKind::Receiver)?),
            BIND_TRANSCEIVER_RESP => {
                Body::BindResp(decode_bind_resp(&mut r, BindKind::Transceiver)?)
            }
            OUTBIND => Body::Outbind(Outbind {
                system_id: r.cstring("system_id", max::SYSTEM_ID)?,
                password: r.cstring("password", max::PASSWORD)?,
            }),
            UNBIND => Body::Unbind,
            UNBIND_RESP => Body::UnbindResp,
            ENQUIRE_LINK => Body::EnquireLink,
            ENQUIRE_LINK_RESP => Body::EnquireLinkResp,
            SUBMIT_SM => Body::SubmitSm(Box::new(decode_sm(&mut r)?)),
            DELIVER_SM => Body::DeliverSm(Box::new(decode_sm(&mut r)?)),
            SUBMIT_SM_RESP => Body::SubmitSmResp(decode_sm_resp(&mut r)?),
            DELIVER_SM_RESP => Body::DeliverSmResp(decode_sm_resp(&mut r)?),
            DATA_SM_RESP => Body::DataSmResp(decode_sm_resp(&mut r)?),
            DATA_SM => Body::DataSm(Box::new(DataSm {
                service_type: r.cstring("service_type", max::SERVICE_TYPE)?,
                source_addr_ton: r.u8()?,
                source_addr_npi: r.u8()?,
                source_addr: r.cstring("source_addr", max::DATA_SM_ADDR)?,
                dest_addr_ton: r.u8()?,
                dest_addr_npi: r.u8()?,
                destination_addr: r.cstring("destination_addr", max::DATA_SM_ADDR)?,
                esm_class: r.u8()?,
                registered_delivery: r.u8()?,
                data_coding: r.u8()?,
                tlvs: r.tlvs()?,
            })),
            other => return Err(SmppError::UnknownCommand(other)),
        };
        r.finish()?;
        Ok(Pdu {
            command_status: header.command_status,
            sequence_number: header.sequence_number,
            body,
        })
    }

    /// Appends the encoded PDU to `out`. Fails (writing nothing) when a field does not fit.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), SmppError> {
        let mut body = BytesMut::new();
        encode_body(&self.body, &mut body)?;
        let total = HEADER_LEN + body.len();
        if total > MAX_PDU_LEN {
            return Err(SmppError::FieldTooLong {
                field: "PDU",
                len: total,
                max: MAX_PDU_LEN,
            });
        }
        out.reserve(total);
        Header {
            command_length: total as u32,
            command_id: self.body.command_id(),
            command_status: self.command_status,
            sequence_number: self.sequence_number,
        }
        .write(out);
        out.put_slice(&body);
        Ok(())
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, SmppError> {
        let mut out = BytesMut::new();
        self.encode(&mut out)?;
        Ok(out.to_vec())
    }
}

fn decode_bind(r: &mut Reader<'_>, kind: BindKind) -> Result<Bind, SmppError> {
    Ok(Bind {
        kind,
        system_id: r.cstring("system_id", max::SYSTEM_ID)?,
        password: r.cstring("password", max::PASSWORD)?,
        system_type: r.cstring("system_type", max::SYSTEM_TYPE)?,
        interface_version: r.u8()?,
        addr_ton: r.u8()?,
        addr_npi: r.u8()?,
        address_range: r.cstring("address_range", max::ADDRESS_RANGE)?,
    })
}

fn decode_bind_resp(r: &mut Reader<'_>, kind: BindKind) -> Result<BindResp, SmppError> {
    if r.is_empty() {
        return Ok(BindResp {
            kind,
            system_id: String::new(),
            tlvs: Vec::new(),
        });
    }
    Ok(BindResp {
        kind,
        system_id: r.cstring("system_id", max::SYSTEM_ID)?,
        tlvs: r.tlvs()?,
    })
}

fn decode_sm_resp(r: &mut Reader<'_>) -> Result<SmResp, SmppError> {
    if r.is_empty() {
        return Ok(SmResp::default());
    }
    Ok(SmResp {
        message_id: r.cstring("message_id", max::MESSAGE_ID)?,
        tlvs: r.tlvs()?,
    })
}

fn decode_sm(r: &mut Reader<'_>) -> Result<Sm, SmppError> {
    let mut sm = Sm {
        service_type: r.cstring("service_type", max::SERVICE_TYPE)?,
        source_addr_ton: r.u8()?,
        source_addr_npi: r.u8()?,
        source_addr: r.cstring("source_addr", max::ADDR)?,
        dest_addr_ton: r.u8()?,
        dest_addr_npi: r.u8()?,
        destination_addr: r.cstring("destination_addr", max::ADDR)?,
        esm_class: r.u8()?,
        protocol_id: r.u8()?,
        priority_flag: r.u8()?,
        schedule_delivery_time: r.cstring("schedule_delivery_time", max::TIME)?,
        validity_period: r.cstring("validity_period", max::TIME)?,
        registered_delivery: r.u8()?,
        replace_if_present_flag: r.u8()?,
        data_coding: r.u8()?,
        sm_default_msg_id: r.u8()?,
        ..Sm::default()
    };
    let len = usize::from(r.u8()?);
    if len > max::SHORT_MESSAGE {
        return Err(SmppError::BadField {
            field: "sm_length",
            reason: format!("{len} is above the maximum {}", max::SHORT_MESSAGE),
        });
    }
    sm.short_message = r.take(len)?.to_vec();
    sm.tlvs = r.tlvs()?;
    Ok(sm)
}

fn encode_body(body: &Body, out: &mut BytesMut) -> Result<(), SmppError> {
    match body {
        Body::GenericNack
        | Body::Unbind
        | Body::UnbindResp
        | Body::EnquireLink
        | Body::EnquireLinkResp => {}
        Body::Bind(b) => {
            put_cstring(out, "system_id", &b.system_id, max::SYSTEM_ID)?;
            put_cstring(out, "password", &b.password, max::PASSWORD)?;
            put_cstring(out, "system_type", &b.system_type, max::SYSTEM_TYPE)?;
            out.put_u8(b.interface_version);
            out.put_u8(b.addr_ton);
            out.put_u8(b.addr_npi);
            put_cstring(out, "address_range", &b.address_range, max::ADDRESS_RANGE)?;
        }
        Body::BindResp(b) => {
            put_cstring(out, "system_id", &b.system_id, max::SYSTEM_ID)?;
            tlv::encode_all(&b.tlvs, out)?;
        }
        Body::Outbind(o) => {
            put_cstring(out, "system_id", &o.system_id, max::SYSTEM_ID)?;
            put_cstring(out, "password", &o.password, max::PASSWORD)?;
        }
        Body::SubmitSm(sm) | Body::DeliverSm(sm) => encode_sm(sm, out)?,
        Body::SubmitSmResp(r) | Body::DeliverSmResp(r) | Body::DataSmResp(r) => {
            put_cstring(out, "message_id", &r.message_id, max::MESSAGE_ID)?;
            tlv::encode_all(&r.tlvs, out)?;
        }
        Body::DataSm(d) => {
            put_cstring(out, "service_type", &d.service_type, max::SERVICE_TYPE)?;
            out.put_u8(d.source_addr_ton);
            out.put_u8(d.source_addr_npi);
            put_cstring(out, "source_addr", &d.source_addr, max::DATA_SM_ADDR)?;
            out.put_u8(d.dest_addr_ton);
            out.put_u8(d.dest_addr_npi);
            put_cstring(
                out,
                "destination_addr",
                &d.destination_addr,
                max::DATA_SM_ADDR,
            )?;
            out.put_u8(d.esm_class);
            out.put_u8(d.registered_delivery);
            out.put_u8(d.data_coding);
            tlv::encode_all(&d.tlvs, out)?;
        }
    }
    Ok(())
}

fn encode_sm(sm: &Sm, out: &mut BytesMut) -> Result<(), SmppError> {
    put_cstring(out, "service_type", &sm.service_type, max::SERVICE_TYPE)?;
    out.put_u8(sm.source_addr_ton);
    out.put_u8(sm.source_addr_npi);
    put_cstring(out, "source_addr", &sm.source_addr, max::ADDR)?;
    out.put_u8(sm.dest_addr_ton);
    out.put_u8(sm.dest_addr_npi);
    put_cstring(out, "destination_addr", &sm.destination_addr, max::ADDR)?;
    out.put_u8(sm.esm_class);
    out.put_u8(sm.protocol_id);
    out.put_u8(sm.priority_flag);
    put_cstring(
        out,
        "schedule_delivery_time",
        &sm.schedule_delivery_time,
        max::TIME,
    )?;
    put_cstring(out, "validity_period", &sm.validity_period, max::TIME)?;
    out.put_u8(sm.registered_delivery);
    out.put_u8(sm.replace_if_present_flag);
    out.put_u8(sm.data_coding);
    out.put_u8(sm.sm_default_msg_id);
    if sm.short_message.len() > max::SHORT_MESSAGE {
        return Err(SmppError::FieldTooLong {
            field: "short_message",
            len: sm.short_message.len(),
            max: max::SHORT_MESSAGE,
        });
    }
    out.put_u8(sm.short_message.len() as u8);
    out.put_slice(&sm.short_message);
    tlv::encode_all(&sm.tlvs, out)
}

/// Writes a C-Octet String; `max` includes the terminating NUL.
fn put_cstring(
    out: &mut BytesMut,
    field: &'static str,
    s: &str,
    max: usize,
) -> Result<(), SmppError> {
    if s.len() + 1 > max {
        return Err(SmppError::FieldTooLong {
            field,
            len: s.len(),
            max: max - 1,
        });
    }
    if s.as_bytes().contains(&0) {
        return Err(SmppError::BadField {
            field,
            reason: "contains a NUL byte".into(),
        });
    }
    out.put_slice(s.as_bytes());
    out.put_u8(0);
    Ok(())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    command: u32,
}

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SmppError> {
        let end = self.pos.saturating_add(n);
        if end > self.buf.len() {
            return Err(SmppError::Truncated {
                needed: end + HEADER_LEN,
                available: self.buf.len() + HEADER_LEN,
            });
        }
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, SmppError> {
        Ok(self.take(1)?[0])
    }

    /// A C-Octet String of at most `max` bytes including its NUL.
    fn cstring(&mut self, field: &'static str, max: usize) -> Result<String, SmppError> {
        let rest = &self.buf[self.pos.min(self.buf.len())..];
        let window = &rest[..rest.len().min(max)];
        let Some(nul) = window.iter().position(|&b| b == 0) else {
            return Err(if rest.len() < max {
                SmppError::Truncated {
                    needed: self.pos + rest.len() + 1 + HEADER_LEN,
                    available: self.buf.len() + HEADER_LEN,
                }
            } else {
                SmppError::BadField {
                    field,
                    reason: format!("no NUL terminator within {max} bytes"),
                }
            });
        };
        let s = String::from_utf8_lossy(&window[..nul]).into_owned();
        self.pos += nul + 1;
        Ok(s)
    }

    fn tlvs(&mut self) -> Result<Vec<Tlv>, SmppError> {
        let rest = &self.buf[self.pos.min(self.buf.len())..];
        self.pos = self.buf.len();
        tlv::decode_all(rest)
    }

    fn finish(&self) -> Result<(), SmppError> {
        if self.pos < self.buf.len() {
            return Err(SmppError::TrailingBytes {
                command: self.command,
                extra: self.buf.len() - self.pos,
            });
        }
        Ok(())
    }
}
