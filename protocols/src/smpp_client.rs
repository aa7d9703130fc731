//! The SMPP ESME-side client (3.3, 3.4, 5.0): one bind — or, for 3.3 and on request, a
//! transmitter + receiver pair — to an SMSC that submits segments and hands delivery receipts and
//! mobile-originated messages to the application as events. Same public shape as
//! [`CmppClient`](crate::CmppClient), so [`crate::link::LinkClient`] routes to either.
//!
//! Connection handling (window, enquire_link heartbeats, reconnects) is the generic
//! [`crate::session`] engine; this module supplies the SMPP PDUs, maps command_status to
//! accepted / retryable / permanent, and turns receipts into [`DeliveryReport`]s whose
//! `carrier_id` matches the submit's (see [`SmppOptions`] for the hex/decimal id pitfall). It does
//! not retry. Each MO part (concatenated by a UDH or sar_* TLVs) is handed over on its own
//! ([`crate::mo`]); the node joins them.
//!
//! `LinkSettings` mapping: `account` = system_id, `secret` = password, `service_id` =
//! system_type, `src_id` = source_addr (empty: `account`).

use std::collections::BTreeMap;

use bytes::BytesMut;
use secrecy::ExposeSecret;
use tokio::sync::mpsc;

use crate::client::{
    ClientEvent, DeliveryReport, LinkSettings, OutboundSegment, SendError, SubmitOutcome,
};
use crate::gsm7;
use crate::mo::{self, MoPart, Scheme};
use crate::session::{Engine, EngineSettings, Inbound, LinkProtocol, LinkState};
use crate::signature::Signature;
use crate::smpp::{
    self, bind_status, convert_id, esm, message_state, parse_receipt, pdu::max, status,
    submit_status, tag, tlv, Bind, BindKind, Body, IdFormat, Pdu, Sm, SmResp, SmppCodec, SmppError,
    Tlv, VERSION_3_3, VERSION_3_4, VERSION_5_0,
};
use crate::text::Segment;
use crate::trace::Submitted;

/// Code reported in [`SubmitOutcome::Rejected`] for a segment refused before sending (a field
/// does not fit, or the link is bound as a receiver) or answered with an unexpected PDU.
pub const LOCAL_REJECT: u32 = u32::MAX;

/// How the link binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    Transceiver,
    Transmitter,
    Receiver,
    /// Two connections: a transmitter for submits and a receiver for receipts and MO (the only
    /// way to get both in SMPP 3.3).
    Pair,
}

/// The SMPP link options (`LinkSettings::options`).
///
/// - `bind`: `transceiver` (default from 3.4) | `transmitter` | `receiver` | `pair`
///   (`transmitter+receiver`; the default for 3.3, which has no transceiver).
/// - `version`: `3.4` (default) | `3.3` | `5.0`.
/// - `message_id`: how the SMSC writes ids in submit_sm_resp: `as-is` (default) | `hex` |
///   `decimal`. `receipt_id`: how it writes the receipt text's `id:` (default: like
///   `message_id`). When they differ, the receipt's id is converted, and both are reported in
///   one canonical form (hex: uppercase, no leading zeros; decimal: no leading zeros).
/// - `long_message`: how a part of a long message says where it belongs: `udh` (default: a User
///   Data Header in short_message, esm_class UDHI), `sar` (the sar_msg_ref_num,
///   sar_total_segments and sar_segment_seqnum TLVs, short_message without UDH) or `payload` (the
///   content in the message_payload TLV; [`SmppClient::split`] then keeps a long text whole, in
///   one submit_sm). `sar` and `payload` need TLVs: refused for SMPP 3.3.
/// - `source_ton`, `source_npi`, `dest_ton`, `dest_npi`: address type and plan (0–255). By
///   default an alphanumeric source is 5/0, a numeric one 0/1; a destination with `+` is 1/1
///   (the `+` is dropped), otherwise 0/1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmppOptions {
    pub bind: BindMode,
    pub version: u8,
    pub message_id: IdFormat,
    pub receipt_id: IdFormat,
    pub long_message: LongMessage,
    pub source_ton: Option<u8>,
    pub source_npi: Option<u8>,
    pub dest_ton: Option<u8>,
    pub dest_npi: Option<u8>,
}

const OPTION_NAMES: &str = "bind, version, message_id, receipt_id, long_message, source_ton, \
     source_npi, dest_ton, dest_npi";

/// How the parts of a long message are marked (the `long_message` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LongMessage {
    /// A concatenation UDH at the start of short_message, esm_class UDHI.
    #[default]
    Udh,
    /// The sar_* TLVs; short_message holds only text.
    Sar,
    /// The whole content in message_payload (one submit for a long text).
    Payload,
}

/// message_payload holds at most this many octets [SMPP34 §5.3.2.32].
const MAX_PAYLOAD: usize = 64 * 1024 - 1;

impl SmppOptions {
    /// Reads the options. `fixed` is the interface_version the protocol name already chose
    /// (`smpp33`, `smpp34`, `smpp50`); an explicit `version` contradicting it is refused, as is
    /// any unknown option name or value.
    pub fn parse(
        options: &BTreeMap<String, String>,
        fixed: Option<u8>,
    ) -> Result<SmppOptions, String> {
        let mut version = fixed.unwrap_or(VERSION_3_4);
        let mut bind = None;
        let mut message_id = IdFormat::AsIs;
        let mut receipt_id = None;
        let mut long_message = LongMessage::Udh;
        let mut addr = [None; 4];
        for (name, value) in options {
            let v = value.trim();
            match name.as_str() {
                "version" => {
                    let asked = match v {
                        "3.3" | "33" => VERSION_3_3,
                        "3.4" | "34" => VERSION_3_4,
                        "5.0" | "50" | "5" => VERSION_5_0,
                        _ => {
                            return Err(format!(
                                "option version = {value:?}: the SMPP version must be 3.3, 3.4 or 5.0"
                            ))
                        }
                    };
                    if let Some(f) = fixed.filter(|f| *f != asked) {
                        return Err(format!(
                            "option version = {value:?} contradicts the protocol, which is SMPP {}",
                            version_name(f)
                        ));
                    }
                    version = asked;
                }
                "bind" => {
                    bind = Some(match v.to_ascii_lowercase().as_str() {
                        "transceiver" | "trx" => BindMode::Transceiver,
                        "transmitter" | "tx" => BindMode::Transmitter,
                        "receiver" | "rx" => BindMode::Receiver,
                        "pair" | "transmitter+receiver" => BindMode::Pair,
                        _ => {
                            return Err(format!(
                                "option bind = {value:?}: must be transceiver, transmitter, receiver or pair"
                            ))
                        }
                    })
                }
                "message_id" => {
                    message_id = v.parse().map_err(|e| format!("option message_id: {e}"))?
                }
                "receipt_id" => {
                    receipt_id = Some(
                        v.parse::<IdFormat>()
                            .map_err(|e| format!("option receipt_id: {e}"))?,
                    )
                }
                "long_message" => {
                    long_message = match v.to_ascii_lowercase().as_str() {
                        "udh" => LongMessage::Udh,
                        "sar" => LongMessage::Sar,
                        "payload" | "message_payload" => LongMessage::Payload,
                        _ => {
                            return Err(format!(
                                "option long_message = {value:?}: must be udh, sar or payload"
                            ))
                        }
                    }
                }
                "source_ton" | "source_npi" | "dest_ton" | "dest_npi" => {
                    let n: u8 = v
                        .parse()
                        .map_err(|_| format!("option {name} = {value:?}: must be 0..=255"))?;
                    let i = ["source_ton", "source_npi", "dest_ton", "dest_npi"]
                        .iter()
                        .position(|k| k == name)
                        .unwrap_or(0);
                    addr[i] = Some(n);
                }
                other => {
                    return Err(format!(
                        "unknown option {other:?}: SMPP links take {OPTION_NAMES}"
                    ))
                }
            }
        }
        let bind = match (bind, version) {
            (Some(BindMode::Transceiver), VERSION_3_3) => {
                return Err(
                    "option bind = transceiver: SMPP 3.3 has no bind_transceiver \
                            (use pair, transmitter or receiver)"
                        .into(),
                )
            }
            (Some(b), _) => b,
            (None, VERSION_3_3) => BindMode::Pair,
            (None, _) => BindMode::Transceiver,
        };
        if version == VERSION_3_3 && long_message != LongMessage::Udh {
            return Err(format!(
                "option long_message = {:?}: SMPP 3.3 has no TLVs (use udh)",
                options.get("long_message").map_or("", |v| v.trim())
            ));
        }
        Ok(SmppOptions {
            bind,
            version,
            message_id,
            receipt_id: receipt_id.unwrap_or(message_id),
            long_message,
            source_ton: addr[0],
            source_npi: addr[1],
            dest_ton: addr[2],
            dest_npi: addr[3],
        })
    }
}

fn version_name(v: u8) -> &'static str {
    match v {
        VERSION_3_3 => "3.3",
        VERSION_5_0 => "5.0",
        _ => "3.4",
    }
}

/// An SMPP client link. Cloning shares the link.
#[derive(Clone)]
pub struct SmppClient {
    /// Carries submits (for a receiver-only bind, the receiver: submits are refused).
    main: Engine<SmppLink>,
    /// The receiver of a transmitter + receiver pair.
    receiver: Option<Engine<SmppLink>>,
}

impl SmppClient {
    /// Spawns the connection task(s) (bind, reconnect with backoff until shutdown). Must be
    /// called within a Tokio runtime. Dropping every clone also stops the link. Read the events
    /// promptly: while the queue (1024) is full the link stops reading.
    ///
    /// Options that do not parse leave the link down: every attempt fails before connecting and
    /// reports why in [`ClientEvent::Disconnected`].
    pub fn start(settings: LinkSettings) -> (SmppClient, mpsc::Receiver<ClientEvent>) {
        SmppClient::start_as(settings, None)
    }

    /// Like [`SmppClient::start`], with the interface_version fixed by the protocol name.
    pub fn start_as(
        settings: LinkSettings,
        fixed: Option<u8>,
    ) -> (SmppClient, mpsc::Receiver<ClientEvent>) {
        let parsed = SmppOptions::parse(&settings.options, fixed);
        let (options, error) = match parsed {
            Ok(o) => (o, None),
            Err(e) => {
                tracing::error!(link = %settings.name, "link options refused: {e}");
                let fallback = SmppOptions {
                    bind: BindMode::Transceiver,
                    version: fixed.unwrap_or(VERSION_3_4),
                    message_id: IdFormat::AsIs,
                    receipt_id: IdFormat::AsIs,
                    long_message: LongMessage::Udh,
                    source_ton: None,
                    source_npi: None,
                    dest_ton: None,
                    dest_npi: None,
                };
                (fallback, Some(e))
            }
        };
        let engine_settings = |suffix: &str| EngineSettings {
            name: format!("{}{suffix}", settings.name),
            ..settings.engine_settings()
        };
        let link = |bind: BindKind| SmppLink {
            settings: settings.clone(),
            bind,
            options,
            options_error: error.clone(),
        };
        match options.bind {
            BindMode::Pair => {
                let (tx, tx_events) =
                    Engine::start(engine_settings("/tx"), link(BindKind::Transmitter));
                let (rx, rx_events) =
                    Engine::start(engine_settings("/rx"), link(BindKind::Receiver));
                let events = merge_pair_events(tx_events, rx_events);
                (
                    SmppClient {
                        main: tx,
                        receiver: Some(rx),
                    },
                    events,
                )
            }
            mode => {
                let kind = match mode {
                    BindMode::Transmitter => BindKind::Transmitter,
                    BindMode::Receiver => BindKind::Receiver,
                    _ => BindKind::Transceiver,
                };
                let (main, events) = Engine::start(engine_settings(""), link(kind));
                (
                    SmppClient {
                        main,
                        receiver: None,
                    },
                    events,
                )
            }
        }
    }

    /// The options in force (defaults filled in).
    pub fn options(&self) -> SmppOptions {
        self.main.protocol().options
    }

    /// Splits a message's text into the segments this link submits: the SMPP split (GSM 7-bit
    /// 160/153 or UCS2 70/67), except with `long_message = payload`, where a long text stays
    /// one segment (up to message_payload's 64 KB) sent in one submit_sm.
    pub fn split(&self, text: &str) -> Vec<Segment> {
        self.split_signed(text, None)
    }

    /// [`SmppClient::split`] for a link with a signature, which counts toward the length of the
    /// part it lands in (see [`gsm7::split_smpp_signed`]). A long text kept whole in
    /// message_payload needs no room reserved: it carries the signature only when Herald adds it.
    pub fn split_signed(&self, text: &str, signature: Option<&Signature>) -> Vec<Segment> {
        split_for(self.options().long_message, text, signature)
    }

    /// Waits for a window slot (and for a live connection, up to response_timeout), sends
    /// submit_sm, awaits submit_sm_resp (or a generic_nack).
    pub async fn submit(&self, seg: OutboundSegment) -> Result<SubmitOutcome, SendError> {
        self.submit_traced(seg).await.result
    }

    /// [`SmppClient::submit`], with the PDUs' facts for the protocol trace.
    pub async fn submit_traced(&self, seg: OutboundSegment) -> Submitted {
        let link = self.main.protocol();
        if !link.bind.can_send() {
            return Submitted::refused(
                "submit_sm",
                SubmitOutcome::Rejected {
                    code: LOCAL_REJECT,
                    retryable: false,
                    description: "not sent: the link is bound as a receiver".into(),
                },
            );
        }
        let sm = match link.build_submit(&seg) {
            Ok(sm) => sm,
            Err(e) => return Submitted::refused("submit_sm", SubmitOutcome::not_sent(e)),
        };
        let exchange = self
            .main
            .request_traced(|seq| Pdu::new(seq, Body::SubmitSm(Box::new(sm))))
            .await;
        crate::client::traced("submit_sm", exchange, |response| {
            let name = match &response.body {
                Body::SubmitSmResp(_) => "submit_sm_resp".to_string(),
                Body::GenericNack => "generic_nack".to_string(),
                other => format!("{:#010x}", other.command_id()),
            };
            let status = response.command_status;
            (name, status, link.submit_outcome(response))
        })
    }

    pub fn is_connected(&self) -> bool {
        self.main.is_connected() && self.receiver.as_ref().is_none_or(Engine::is_connected)
    }

    /// Sends unbind, waits briefly for unbind_resp, stops reconnecting.
    pub async fn shutdown(&self) {
        match &self.receiver {
            Some(rx) => {
                futures::future::join(self.main.shutdown(), rx.shutdown()).await;
            }
            None => self.main.shutdown().await,
        }
    }
}

/// One event stream for a transmitter + receiver pair: `Connected` once both are bound,
/// every `Disconnected` of either (named), reports and MO as they come.
fn merge_pair_events(
    mut tx: mpsc::Receiver<ClientEvent>,
    mut rx: mpsc::Receiver<ClientEvent>,
) -> mpsc::Receiver<ClientEvent> {
    let (out, events) = mpsc::channel(1024);
    tokio::spawn(async move {
        let mut up = [false, false];
        let mut open = [true, true];
        loop {
            let (side, event) = tokio::select! {
                e = tx.recv(), if open[0] => (0, e),
                e = rx.recv(), if open[1] => (1, e),
                else => break,
            };
            let Some(event) = event else {
                open[side] = false;
                continue;
            };
            let forward = match event {
                ClientEvent::Connected => {
                    up[side] = true;
                    (up[0] && up[1]).then_some(ClientEvent::Connected)
                }
                ClientEvent::Disconnected { reason } => {
                    up[side] = false;
                    let name = ["transmitter", "receiver"][side];
                    Some(ClientEvent::Disconnected {
                        reason: format!("{name}: {reason}"),
                    })
                }
                other => Some(other),
            };
            if let Some(e) = forward {
                if out.send(e).await.is_err() {
                    break;
                }
            }
        }
    });
    events
}

/// The SMPP side of the session engine, for one bind.
struct SmppLink {
    settings: LinkSettings,
    bind: BindKind,
    options: SmppOptions,
    /// Why the link options were refused; the link then never connects.
    options_error: Option<String>,
}

impl SmppLink {
    fn source_addr(&self) -> &str {
        self.settings.source_id()
    }

    /// Builds the submit_sm and checks that it encodes, so a field that does not fit is refused
    /// here instead of breaking the connection when the writer meets it.
    fn build_submit(&self, seg: &OutboundSegment) -> Result<Sm, SmppError> {
        let o = &self.options;
        let source = self.source_addr();
        let (auto_ton, auto_npi) = if source.bytes().all(|b| b.is_ascii_digit()) {
            (0, 1)
        } else {
            (5, 0)
        };
        let (dest, dest_auto) = match seg.dest.strip_prefix('+') {
            Some(international) => (international, (1, 1)),
            None => (seg.dest.as_str(), (0, 1)),
        };
        let segment = &seg.segment;
        let udh_form = || {
            let esm_class = if segment.udhi { esm::UDHI } else { 0 };
            (esm_class, segment.payload.clone(), Vec::new())
        };
        let (esm_class, short_message, tlvs) = match o.long_message {
            LongMessage::Udh => udh_form(),
            LongMessage::Sar => match segment
                .udhi
                .then(|| crate::text::strip_udh(&segment.payload))
            {
                Some((Some(c), body)) => (
                    0,
                    body.to_vec(),
                    vec![
                        Tlv::u16(tag::SAR_MSG_REF_NUM, c.reference),
                        Tlv::u8(tag::SAR_TOTAL_SEGMENTS, c.total),
                        Tlv::u8(tag::SAR_SEGMENT_SEQNUM, c.number),
                    ],
                ),
                // Not a concatenated part (or a UDH without one): nothing to say in TLVs.
                _ => udh_form(),
            },
            LongMessage::Payload => {
                let (esm_class, payload, _) = udh_form();
                (
                    esm_class,
                    Vec::new(),
                    vec![Tlv::new(tag::MESSAGE_PAYLOAD, payload)],
                )
            }
        };
        let sm = Sm {
            source_addr_ton: o.source_ton.unwrap_or(auto_ton),
            source_addr_npi: o.source_npi.unwrap_or(auto_npi),
            source_addr: source.to_string(),
            dest_addr_ton: o.dest_ton.unwrap_or(dest_auto.0),
            dest_addr_npi: o.dest_npi.unwrap_or(dest_auto.1),
            destination_addr: dest.to_string(),
            esm_class,
            registered_delivery: u8::from(seg.registered_delivery),
            data_coding: segment.data_coding,
            short_message,
            tlvs,
            ..Sm::default()
        };
        Pdu::new(0, Body::SubmitSm(Box::new(sm.clone()))).encode(&mut BytesMut::new())?;
        Ok(sm)
    }

    fn submit_outcome(&self, response: Pdu) -> SubmitOutcome {
        let code = response.command_status;
        match response.body {
            Body::SubmitSmResp(r) if code == status::ESME_ROK => {
                let fmt = self.options.message_id;
                let carrier_id = convert_id(&r.message_id, fmt, fmt);
                if carrier_id.is_empty() {
                    // Reports cannot be matched to it (PROTOCOLS.md §5: all-zero ids).
                    tracing::warn!(link = %self.settings.name, "submit_sm_resp without a message_id");
                }
                SubmitOutcome::Accepted { carrier_id }
            }
            Body::SubmitSmResp(_) | Body::GenericNack if code != status::ESME_ROK => {
                SubmitOutcome::rejected(code, submit_status(code))
            }
            other => SubmitOutcome::Rejected {
                code: LOCAL_REJECT,
                retryable: true,
                description: format!(
                    "unexpected response {:#010x} (status {code:#x}) to submit_sm",
                    other.command_id()
                ),
            },
        }
    }

    /// Turns a deliver_sm (or data_sm) into a report or an MO part; `None` for a receipt that
    /// names no message id (nothing could be matched to it).
    fn deliver_event(&self, sm: &Sm) -> Option<ClientEvent> {
        let payload = if sm.short_message.is_empty() {
            smpp::tlv::find(&sm.tlvs, tag::MESSAGE_PAYLOAD)
                .map(|t| t.value.as_slice())
                .unwrap_or_default()
        } else {
            sm.short_message.as_slice()
        };
        let receipted = smpp::tlv::find(&sm.tlvs, tag::RECEIPTED_MESSAGE_ID);
        let kind = sm.esm_class & esm::TYPE_MASK;
        let is_receipt = kind == esm::DELIVERY_RECEIPT
            || kind == esm::INTERMEDIATE_NOTIFICATION
            || receipted.is_some();
        if !is_receipt {
            return Some(ClientEvent::Mo(mo_part(sm, payload)));
        }
        // Receipt text is ASCII whatever data_coding says, except from SMSCs that really send
        // it as UCS2 (node-smpp #68); reading it through the GSM table would turn '_' into '§'.
        let text = if sm.data_coding == gsm7::DC_UCS2 {
            gsm7::decode_smpp_text(gsm7::DC_UCS2, payload)
        } else {
            payload.iter().map(|&b| char::from(b)).collect()
        };
        let parsed = parse_receipt(&text);
        let fmt = self.options.message_id;
        // receipted_message_id carries the id as submit_sm_resp gave it; the text may not.
        let carrier_id = match (receipted, &parsed) {
            (Some(t), _) => convert_id(&t.as_text(), fmt, fmt),
            (None, Some(p)) => convert_id(&p.id, self.options.receipt_id, fmt),
            (None, None) => {
                tracing::warn!(link = %self.settings.name, %text, "receipt without a message id");
                return None;
            }
        };
        let state = smpp::tlv::find(&sm.tlvs, tag::MESSAGE_STATE)
            .and_then(tlv::Tlv::as_uint)
            .map(|s| message_state::stat_word(s as u8));
        let stat = match (&parsed, state) {
            (Some(p), _) if !p.stat.is_empty() => p.stat.to_ascii_uppercase(),
            (_, Some(word)) => word.to_string(),
            _ => "UNKNOWN".to_string(),
        };
        let (submit_time, done_time, err) = parsed
            .map(|p| (p.submit_date, p.done_date, p.err))
            .unwrap_or_default();
        Some(ClientEvent::Report(
            DeliveryReport::new(
                carrier_id,
                sm.source_addr.clone(),
                stat,
                submit_time,
                done_time,
            )
            .with_error_code(err),
        ))
    }
}

/// An MO deliver_sm or data_sm as a part: concatenated by a UDH (esm_class UDHI), or by the
/// three sar_* TLVs (all three needed: any one alone says nothing usable).
fn mo_part(sm: &Sm, payload: &[u8]) -> MoPart {
    let udhi = sm.esm_class & esm::UDHI != 0;
    let mut part = MoPart::from_payload(
        mo::SMPP,
        sm.source_addr.clone(),
        sm.destination_addr.clone(),
        String::new(),
        sm.data_coding,
        udhi,
        payload,
    );
    if part.concat.is_none() {
        let field = |t| smpp::tlv::find(&sm.tlvs, t).and_then(tlv::Tlv::as_uint);
        if let (Some(reference), Some(total), Some(number)) = (
            field(tag::SAR_MSG_REF_NUM),
            field(tag::SAR_TOTAL_SEGMENTS),
            field(tag::SAR_SEGMENT_SEQNUM),
        ) {
            let concat = crate::text::Concat {
                reference: reference as u16,
                total: total.min(255) as u8,
                number: number.min(255) as u8,
            };
            part.concat = Some((concat, Scheme::Sar));
        }
    }
    part
}

fn split_for(long_message: LongMessage, text: &str, signature: Option<&Signature>) -> Vec<Segment> {
    if long_message == LongMessage::Payload {
        let sent = signature.map_or_else(|| text.to_string(), |s| s.sent(text));
        let (data_coding, payload) = gsm7::encode_smpp(&sent);
        if payload.len() <= MAX_PAYLOAD {
            return vec![Segment {
                data_coding,
                payload,
                udhi: false,
                total: 1,
                number: 1,
            }];
        }
    }
    gsm7::split_smpp_signed(text, signature)
}

impl LinkProtocol for SmppLink {
    fn defer_reply(&self, event: &mut ClientEvent) -> Option<crate::ack::AckWaiter> {
        crate::client::defer_delivery_ack(event)
    }

    type Pdu = Pdu;
    type Event = ClientEvent;
    type Error = SmppError;
    type Codec = SmppCodec;

    fn codec(&self) -> SmppCodec {
        SmppCodec
    }

    fn preflight(&self) -> Result<(), String> {
        if let Some(e) = &self.options_error {
            return Err(format!("link options refused: {e}"));
        }
        let s = &self.settings;
        for (field, value, limit) in [
            ("account (system_id)", s.account.as_str(), max::SYSTEM_ID),
            ("secret (password)", s.secret.expose_secret(), max::PASSWORD),
            (
                "service_id (system_type)",
                s.service_id.as_str(),
                max::SYSTEM_TYPE,
            ),
        ] {
            if value.len() >= limit {
                return Err(format!(
                    "{field} is {} bytes, SMPP allows at most {}",
                    value.len(),
                    limit - 1
                ));
            }
        }
        Ok(())
    }

    fn login_request(&self, sequence: u32) -> Pdu {
        Pdu::new(
            sequence,
            Body::Bind(Bind {
                kind: self.bind,
                system_id: self.settings.account.clone(),
                password: self.settings.secret.expose_secret().to_string(),
                system_type: self.settings.service_id.clone(),
                interface_version: self.options.version,
                addr_ton: 0,
                addr_npi: 0,
                address_range: String::new(),
            }),
        )
    }

    fn check_login(&self, response: Pdu) -> Result<(), String> {
        let code = response.command_status;
        match response.body {
            Body::BindResp(r) if r.kind == self.bind && code == status::ESME_ROK => {
                let sc_version =
                    smpp::tlv::find(&r.tlvs, tag::SC_INTERFACE_VERSION).and_then(tlv::Tlv::as_uint);
                tracing::debug!(link = %self.settings.name, smsc = %r.system_id, ?sc_version, "bound");
                Ok(())
            }
            Body::BindResp(r) if r.kind == self.bind => Err(format!(
                "bind_{}_resp command_status {code:#x} ({})",
                self.bind.name(),
                bind_status(code)
            )),
            Body::GenericNack => Err(format!(
                "generic_nack command_status {code:#x} ({})",
                bind_status(code)
            )),
            other => Err(format!(
                "expected bind_{}_resp, got command {:#010x}",
                self.bind.name(),
                other.command_id()
            )),
        }
    }

    fn classify(&self, pdu: Pdu) -> Inbound<Pdu, ClientEvent> {
        let seq = pdu.sequence_number;
        match pdu.body {
            Body::EnquireLink => Inbound::Request {
                reply: Some(Pdu::new(seq, Body::EnquireLinkResp)),
                event: None,
            },
            Body::Unbind => Inbound::Close {
                reply: Some(Pdu::new(seq, Body::UnbindResp)),
            },
            Body::DeliverSm(sm) => Inbound::Request {
                reply: Some(Pdu::new(seq, Body::DeliverSmResp(SmResp::default()))),
                event: self
                    .deliver_event(&sm)
                    .map(|e| e.received_in("deliver_sm", seq)),
            },
            Body::DataSm(d) => {
                let sm = Sm {
                    source_addr: d.source_addr,
                    destination_addr: d.destination_addr,
                    esm_class: d.esm_class,
                    data_coding: d.data_coding,
                    tlvs: d.tlvs,
                    ..Sm::default()
                };
                Inbound::Request {
                    reply: Some(Pdu::new(seq, Body::DataSmResp(SmResp::default()))),
                    event: self
                        .deliver_event(&sm)
                        .map(|e| e.received_in("data_sm", seq)),
                }
            }
            body if body.is_response() => Inbound::Response {
                sequence: seq,
                pdu: Pdu::response(seq, pdu.command_status, body),
            },
            other => {
                tracing::warn!(
                    link = %self.settings.name,
                    command = other.command_id(),
                    "answering a request the ESME side does not serve with generic_nack"
                );
                Inbound::Request {
                    reply: Some(Pdu::response(
                        seq,
                        status::ESME_RINVCMDID,
                        Body::GenericNack,
                    )),
                    event: None,
                }
            }
        }
    }

    fn heartbeat(&self, sequence: u32) -> Pdu {
        Pdu::new(sequence, Body::EnquireLink)
    }

    fn terminate(&self, sequence: u32) -> Pdu {
        Pdu::new(sequence, Body::Unbind)
    }

    fn link_event(&self, state: LinkState) -> ClientEvent {
        state.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn link(options: SmppOptions) -> SmppLink {
        SmppLink {
            settings: LinkSettings {
                name: "t".into(),
                addr: "127.0.0.1:1".into(),
                account: "esme".into(),
                secret: "pw".into(),
                service_id: String::new(),
                src_id: "Herald".into(),
                window: 1,
                heartbeat_interval: Duration::from_secs(30),
                response_timeout: Duration::from_secs(5),
                reconnect_min: Duration::from_millis(10),
                reconnect_max: Duration::from_millis(10),
                options: BTreeMap::new(),
            },
            bind: BindKind::Transceiver,
            options,
            options_error: None,
        }
    }

    #[test]
    fn options_defaults_and_refusals() {
        let o = SmppOptions::parse(&opts(&[]), None).expect("defaults");
        assert_eq!((o.bind, o.version), (BindMode::Transceiver, VERSION_3_4));
        let o = SmppOptions::parse(&opts(&[("version", "3.3")]), None).expect("3.3");
        assert_eq!(o.bind, BindMode::Pair);
        let o = SmppOptions::parse(&opts(&[]), Some(VERSION_5_0)).expect("5.0");
        assert_eq!(o.version, VERSION_5_0);
        let o = SmppOptions::parse(
            &opts(&[("message_id", "hex"), ("receipt_id", "decimal")]),
            None,
        )
        .expect("ids");
        assert_eq!(
            (o.message_id, o.receipt_id),
            (IdFormat::Hex, IdFormat::Decimal)
        );
        for bad in [
            opts(&[("bnd", "transceiver")]),
            opts(&[("bind", "both")]),
            opts(&[("version", "4.0")]),
            opts(&[("version", "3.3"), ("bind", "transceiver")]),
            opts(&[("dest_ton", "256")]),
        ] {
            assert!(SmppOptions::parse(&bad, None).is_err(), "{bad:?}");
        }
        let e = SmppOptions::parse(&opts(&[("version", "3.4")]), Some(VERSION_3_3)).unwrap_err();
        assert!(e.contains("contradicts"), "{e}");
    }

    fn receipt(text: &str, tlvs: Vec<Tlv>) -> Sm {
        Sm {
            source_addr: "8613800138000".into(),
            destination_addr: "Herald".into(),
            esm_class: esm::DELIVERY_RECEIPT,
            short_message: text.as_bytes().to_vec(),
            tlvs,
            ..Sm::default()
        }
    }

    #[test]
    fn receipt_text_becomes_a_report() {
        let l = link(SmppOptions::parse(&opts(&[]), None).expect("options"));
        let ev = l.deliver_event(&receipt(
            "id:ab12 sub:001 dlvrd:000 submit_date:2511250701 done_date:2511250702 stat:UNDELIV err:001 text:",
            vec![],
        ));
        assert_eq!(
            ev,
            Some(ClientEvent::Report(DeliveryReport {
                carrier_id: "ab12".into(),
                dest: "8613800138000".into(),
                stat: "UNDELIV".into(),
                delivered: false,
                submit_time: "2511250701".into(),
                done_time: "2511250702".into(),
                error_code: "001".into(),
                pdu: Default::default(),
                ack: crate::ack::Ack::none(),
            }))
        );
    }

    #[test]
    fn hex_submit_id_matches_a_decimal_receipt() {
        let l = link(
            SmppOptions::parse(
                &opts(&[("message_id", "hex"), ("receipt_id", "decimal")]),
                None,
            )
            .expect("options"),
        );
        let accepted = l.submit_outcome(Pdu::new(
            1,
            Body::SubmitSmResp(SmResp {
                message_id: "00ff".into(),
                tlvs: vec![],
            }),
        ));
        assert_eq!(
            accepted,
            SubmitOutcome::Accepted {
                carrier_id: "FF".into()
            }
        );
        let Some(ClientEvent::Report(r)) = l.deliver_event(&receipt("id:255 stat:DELIVRD", vec![]))
        else {
            panic!("not a report")
        };
        assert_eq!((r.carrier_id.as_str(), r.delivered), ("FF", true));
    }

    #[test]
    fn tlvs_alone_make_a_report() {
        let l = link(SmppOptions::parse(&opts(&[]), None).expect("options"));
        let mut sm = receipt(
            "",
            vec![
                Tlv::cstring(tag::RECEIPTED_MESSAGE_ID, "42"),
                Tlv::u8(tag::MESSAGE_STATE, message_state::DELIVERED),
            ],
        );
        sm.esm_class = 0;
        let Some(ClientEvent::Report(r)) = l.deliver_event(&sm) else {
            panic!("not a report")
        };
        assert_eq!((r.carrier_id.as_str(), r.stat.as_str()), ("42", "DELIVRD"));
    }

    #[test]
    fn mo_is_decoded_from_gsm7_and_ucs2() {
        let l = link(SmppOptions::parse(&opts(&[]), None).expect("options"));
        let mut sm = receipt("", vec![]);
        sm.esm_class = 0;
        sm.short_message = vec![0x00, b'h', b'i'];
        assert!(matches!(l.deliver_event(&sm), Some(ClientEvent::Mo(m)) if m.text == "@hi"));
        sm.data_coding = 8;
        sm.esm_class = esm::UDHI;
        sm.short_message = vec![5, 0, 3, 1, 2, 2, 0x8B, 0xA2];
        assert!(matches!(l.deliver_event(&sm),
            Some(ClientEvent::Mo(m)) if m.text == "订" && m.encoding == "ucs2"
                && m.concat.is_some_and(|(c, s)| c.number == 2 && s == Scheme::Udh8)));
    }

    #[test]
    fn mo_parts_by_sar_tlvs_and_message_payload_are_read() {
        let l = link(SmppOptions::parse(&opts(&[]), None).expect("options"));
        let part = |n: u8, tlvs: Vec<Tlv>, text: &[u8]| Sm {
            source_addr: "8613800138000".into(),
            destination_addr: "Herald".into(),
            short_message: text.to_vec(),
            tlvs: [
                vec![
                    Tlv::u16(tag::SAR_MSG_REF_NUM, 0x1234),
                    Tlv::u8(tag::SAR_TOTAL_SEGMENTS, 3),
                    Tlv::u8(tag::SAR_SEGMENT_SEQNUM, n),
                ],
                tlvs,
            ]
            .concat(),
            ..Sm::default()
        };
        let payload = vec![Tlv::new(tag::MESSAGE_PAYLOAD, b"lo".to_vec())];
        let ev = l.deliver_event(&part(2, payload, b""));
        assert!(
            matches!(ev, Some(ClientEvent::Mo(ref m))
            if m.text == "lo" && m.src == "8613800138000"
                && m.concat.is_some_and(|(c, s)| (c.reference, c.total, c.number, s) == (0x1234, 3, 2, Scheme::Sar))),
            "{ev:?}"
        );
        // One sar TLV alone is no concatenation: the message stands by itself.
        let mut alone = part(1, vec![], b"solo");
        alone.tlvs.truncate(1);
        assert!(matches!(l.deliver_event(&alone), Some(ClientEvent::Mo(m)) if m.text == "solo"));
    }

    #[test]
    fn statuses_map_to_outcomes() {
        let l = link(SmppOptions::parse(&opts(&[]), None).expect("options"));
        let throttled = l.submit_outcome(Pdu::response(
            1,
            status::ESME_RTHROTTLED,
            Body::SubmitSmResp(SmResp::default()),
        ));
        assert!(matches!(
            throttled,
            SubmitOutcome::Rejected {
                code: 0x58,
                retryable: true,
                ..
            }
        ));
        let nack = l.submit_outcome(Pdu::response(1, status::ESME_RINVDSTADR, Body::GenericNack));
        assert!(matches!(
            nack,
            SubmitOutcome::Rejected {
                code: 0x0B,
                retryable: false,
                ..
            }
        ));
    }

    fn submit_as_the_smsc_reads_it(l: &SmppLink, segment: &Segment) -> Sm {
        let sm = l
            .build_submit(&OutboundSegment {
                dest: "8613800138000".into(),
                segment: segment.clone(),
                registered_delivery: true,
            })
            .expect("builds");
        let mut wire = BytesMut::new();
        tokio_util::codec::Encoder::encode(
            &mut SmppCodec,
            Pdu::new(3, Body::SubmitSm(Box::new(sm))),
            &mut wire,
        )
        .expect("encodes");
        let decoded = tokio_util::codec::Decoder::decode(&mut SmppCodec, &mut wire)
            .expect("decodes")
            .expect("a whole PDU");
        assert!(wire.is_empty());
        match decoded.body {
            Body::SubmitSm(sm) => *sm,
            other => panic!("not a submit_sm: {other:?}"),
        }
    }

    fn long_message_link(mode: &str) -> SmppLink {
        link(SmppOptions::parse(&opts(&[("long_message", mode)]), None).expect("options"))
    }

    #[test]
    fn long_message_option_is_checked() {
        let o = SmppOptions::parse(&opts(&[]), None).expect("defaults");
        assert_eq!(o.long_message, LongMessage::Udh);
        for (value, mode) in [
            ("udh", LongMessage::Udh),
            ("SAR", LongMessage::Sar),
            (" payload ", LongMessage::Payload),
        ] {
            let o = SmppOptions::parse(&opts(&[("long_message", value)]), None).expect(value);
            assert_eq!(o.long_message, mode);
        }
        let e = SmppOptions::parse(&opts(&[("long_message", "tlv")]), None).unwrap_err();
        assert!(
            e.contains("long_message") && e.contains("udh, sar or payload"),
            "{e}"
        );
        for bad in [
            SmppOptions::parse(&opts(&[("long_message", "sar"), ("version", "3.3")]), None),
            SmppOptions::parse(&opts(&[("long_message", "payload")]), Some(VERSION_3_3)),
        ] {
            let e = bad.unwrap_err();
            assert!(e.contains("SMPP 3.3 has no TLVs"), "{e}");
        }
        assert!(SmppOptions::parse(&opts(&[("long_message", "udh")]), Some(VERSION_3_3)).is_ok());
    }

    #[test]
    fn udh_parts_carry_the_header_in_short_message() {
        let l = long_message_link("udh");
        let segments = split_for(LongMessage::Udh, &"x".repeat(200), None);
        let sm = submit_as_the_smsc_reads_it(&l, &segments[1]);
        assert_eq!(sm.esm_class, esm::UDHI);
        assert_eq!(sm.short_message, segments[1].payload);
        assert_eq!(&sm.short_message[..3], &[5, 0, 3]);
        assert!(sm.tlvs.is_empty());
    }

    #[test]
    fn sar_parts_carry_tlvs_and_read_back_in_order() {
        let l = long_message_link("sar");
        let text = format!("{}😀{}", "退订".repeat(40), "TD".repeat(30));
        let segments = split_for(LongMessage::Sar, &text, None);
        assert!(segments.len() >= 2);
        let mut parts = Vec::new();
        for segment in segments.iter().rev() {
            let sm = submit_as_the_smsc_reads_it(&l, segment);
            assert_eq!(sm.esm_class, 0, "no UDHI");
            assert_eq!(sm.short_message, segment.payload[6..].to_vec(), "no UDH");
            let field = |t| smpp::tlv::find(&sm.tlvs, t).and_then(tlv::Tlv::as_uint);
            assert_eq!(
                field(tag::SAR_MSG_REF_NUM),
                Some(u32::from(segment.payload[3]))
            );
            assert_eq!(
                field(tag::SAR_TOTAL_SEGMENTS),
                Some(u32::from(segment.total))
            );
            assert_eq!(
                field(tag::SAR_SEGMENT_SEQNUM),
                Some(u32::from(segment.number))
            );
            // Read back the way an MO with sar_* TLVs is read.
            let part = mo_part(&sm, &sm.short_message);
            let (concat, scheme) = part.concat.expect("sar TLVs read");
            assert_eq!(scheme, Scheme::Sar);
            parts.push((concat.number, part.text));
        }
        parts.sort();
        let joined: String = parts.into_iter().map(|(_, t)| t).collect();
        assert_eq!(joined, text);
        // A single-part message has nothing to say in sar TLVs.
        let single = split_for(LongMessage::Sar, "hi", None);
        let sm = submit_as_the_smsc_reads_it(&l, &single[0]);
        assert!(sm.tlvs.is_empty() && sm.short_message == single[0].payload);
    }

    #[test]
    fn payload_mode_sends_a_long_text_whole_in_message_payload() {
        let l = long_message_link("payload");
        let text = "Grüße {alle} ".repeat(40);
        let segments = split_for(LongMessage::Payload, &text, None);
        assert_eq!(segments.len(), 1, "one submit for the whole text");
        assert!(segments[0].payload.len() > max::SHORT_MESSAGE);
        let sm = submit_as_the_smsc_reads_it(&l, &segments[0]);
        assert!(sm.short_message.is_empty(), "message_payload replaces it");
        assert_eq!(sm.esm_class, 0);
        let payload = smpp::tlv::find(&sm.tlvs, tag::MESSAGE_PAYLOAD).expect("message_payload");
        assert_eq!(gsm7::decode_smpp_text(sm.data_coding, &payload.value), text);
        // Not GSM: UCS2, still whole.
        let chinese = "退订".repeat(100);
        let segments = split_for(LongMessage::Payload, &chinese, None);
        assert_eq!(segments.len(), 1);
        assert_eq!(segments[0].data_coding, gsm7::DC_UCS2);
        // Segments from the plain split (a caller that does not ask the client to split) still
        // go out in message_payload, their UDH flagged.
        let parts = split_for(LongMessage::Udh, &chinese, None);
        let sm = submit_as_the_smsc_reads_it(&l, &parts[0]);
        assert_eq!(sm.esm_class, esm::UDHI);
        let payload = smpp::tlv::find(&sm.tlvs, tag::MESSAGE_PAYLOAD).expect("message_payload");
        assert_eq!(payload.value, parts[0].payload);
    }
}
