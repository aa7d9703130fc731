//! The CMPP SP-side client (3.0, or 2.0 with the link option `version = 2`): one long-lived link to a carrier gateway that submits segments
//! and hands status reports and mobile-originated messages to the application as events.
//!
//! Connection handling (window, heartbeats, reconnects) is the generic [`crate::session`]
//! engine; this module supplies the CMPP-specific PDUs and maps results. It does not retry:
//! deciding whether and when to resend a segment is the caller's job, guided by
//! the `retryable` flag of [`SubmitOutcome::Rejected`] and [`SendError`].

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use bytes::BytesMut;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::mpsc;

use crate::cmpp::{
    self, auth, Body, CmppCodec, CmppError, Connect, Deliver, DeliverContent, DeliverResp, Pdu,
    Submit, Version,
};
use crate::mo::{self, MoPart};
pub use crate::session::SendError;
use crate::session::{Engine, EngineSettings, Inbound, LinkProtocol, LinkState};
use crate::text::Segment;
pub use crate::trace::{SubmitTrace, Submitted};

/// Result code reported in [`SubmitOutcome::Rejected`] for a segment refused before sending
/// (a field does not fit its CMPP width) or answered with an unexpected PDU.
pub const LOCAL_REJECT: u32 = u32::MAX;

#[derive(Clone)]
pub struct LinkSettings {
    /// Link name, for logs.
    pub name: String,
    /// "127.0.0.1:7890".
    pub addr: String,
    /// Source_Addr (SP id, 6 chars).
    pub account: String,
    /// The account's password: it leaves memory only in the login PDU (or its authenticator).
    pub secret: SecretString,
    /// May be empty.
    pub service_id: String,
    /// SP number used as Src_Id; empty means `account`.
    pub src_id: String,
    /// Maximum unacknowledged submits.
    pub window: usize,
    /// ACTIVE_TEST is sent after this long without inbound traffic.
    pub heartbeat_interval: Duration,
    pub response_timeout: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Protocol-specific options by name (e.g. SMPP `bind = transceiver`); unknown names are
    /// refused by the protocol's client when it starts.
    pub options: std::collections::BTreeMap<String, String>,
}

impl fmt::Debug for LinkSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkSettings")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .field("account", &self.account)
            .field("secret", &self.secret)
            .field("service_id", &self.service_id)
            .field("src_id", &self.src_id)
            .field("window", &self.window)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("response_timeout", &self.response_timeout)
            .field("reconnect_min", &self.reconnect_min)
            .field("reconnect_max", &self.reconnect_max)
            .field("options", &self.options)
            .finish()
    }
}

impl LinkSettings {
    /// The session engine's part of the settings.
    pub(crate) fn engine_settings(&self) -> EngineSettings {
        EngineSettings {
            name: self.name.clone(),
            addr: self.addr.clone(),
            window: self.window,
            heartbeat_interval: self.heartbeat_interval,
            response_timeout: self.response_timeout,
            reconnect_min: self.reconnect_min,
            reconnect_max: self.reconnect_max,
        }
    }

    /// The source number of submits: `src_id`, or `account` when that is empty.
    pub(crate) fn source_id(&self) -> &str {
        if self.src_id.is_empty() {
            &self.account
        } else {
            &self.src_id
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundSegment {
    pub dest: String,
    pub segment: Segment,
    pub registered_delivery: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// `carrier_id` is the CMPP Msg_Id in decimal, as in status reports.
    Accepted { carrier_id: String },
    Rejected {
        code: u32,
        retryable: bool,
        description: String,
    },
}

impl SubmitOutcome {
    /// A segment refused before sending, because a field does not fit the protocol's layout:
    /// resending the same segment would fail the same way.
    pub(crate) fn not_sent(reason: impl fmt::Display) -> SubmitOutcome {
        SubmitOutcome::Rejected {
            code: LOCAL_REJECT,
            retryable: false,
            description: format!("not sent: {reason}"),
        }
    }

    /// A submit the carrier answered with `code`: accepted (as `carrier_id`) when it is 0, else
    /// rejected with the protocol's `meaning` of the code, (retryable, description).
    pub(crate) fn answered(
        code: u32,
        carrier_id: impl FnOnce() -> String,
        meaning: impl FnOnce(u32) -> (bool, &'static str),
    ) -> SubmitOutcome {
        if code == 0 {
            SubmitOutcome::Accepted {
                carrier_id: carrier_id(),
            }
        } else {
            SubmitOutcome::rejected(code, meaning(code))
        }
    }

    /// A submit the carrier refused with `code`, which means (retryable, description).
    pub(crate) fn rejected(code: u32, (retryable, description): (bool, &str)) -> SubmitOutcome {
        SubmitOutcome::Rejected {
            code,
            retryable,
            description: description.to_string(),
        }
    }

    /// A submit answered by a PDU of another command (`command_id`): the segment may be resent.
    pub(crate) fn unexpected(command_id: u32, request: &str) -> SubmitOutcome {
        SubmitOutcome::Rejected {
            code: LOCAL_REJECT,
            retryable: true,
            description: format!("unexpected response {command_id:#010x} to {request}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    Connected,
    /// The link went down, or an attempt to connect or log in failed (sent after every failed
    /// attempt, so a link that cannot log in keeps reporting why).
    Disconnected {
        reason: String,
    },
    Report(DeliveryReport),
    /// One MO deliver (a whole message or one part of a long one), its acknowledgement held
    /// until the application completes `ack` (see [`defer_delivery_ack`]).
    Mo(MoPart),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// The Msg_Id in decimal, equal to the `carrier_id` of the accepted submit.
    pub carrier_id: String,
    pub dest: String,
    /// Raw Stat: DELIVRD, UNDELIV, EXPIRED, REJECTD, …
    pub stat: String,
    pub delivered: bool,
    pub submit_time: String,
    pub done_time: String,
    /// The carrier's raw error code beside `stat`, where the protocol has one (SMPP and SMGP/CNGP
    /// receipts' `err:`, SGIP's ErrorCode); empty otherwise.
    pub error_code: String,
    /// The PDU the report came in, for the protocol trace.
    pub pdu: crate::trace::InboundPdu,
    /// Complete it once the report is durably recorded: only then does the carrier get its
    /// acknowledgement (see [`crate::ack`]).
    pub ack: crate::ack::Ack,
}

impl From<LinkState> for ClientEvent {
    fn from(state: LinkState) -> ClientEvent {
        match state {
            LinkState::Up => ClientEvent::Connected,
            LinkState::Down { reason } => ClientEvent::Disconnected { reason },
        }
    }
}

impl DeliveryReport {
    /// A report as every client hands it over: delivered exactly when `stat` is DELIVRD, its
    /// acknowledgement not yet attached (see [`defer_report_ack`]).
    pub(crate) fn new(
        carrier_id: String,
        dest: String,
        stat: String,
        submit_time: String,
        done_time: String,
    ) -> DeliveryReport {
        DeliveryReport {
            carrier_id,
            dest,
            delivered: stat == "DELIVRD",
            stat,
            submit_time,
            done_time,
            error_code: String::new(),
            pdu: crate::trace::InboundPdu::default(),
            ack: crate::ack::Ack::none(),
        }
    }

    /// The same report with the carrier's raw error code.
    pub(crate) fn with_error_code(mut self, code: impl Into<String>) -> DeliveryReport {
        self.error_code = code.into();
        self
    }
}

impl ClientEvent {
    /// Notes, on a report, the PDU (`command`, `sequence`) it arrived in; other events pass.
    pub(crate) fn received_in(mut self, command: &'static str, sequence: u32) -> ClientEvent {
        if let ClientEvent::Report(report) = &mut self {
            report.pdu = crate::trace::InboundPdu::now(command, sequence);
        }
        self
    }
}

/// For [`crate::session::LinkProtocol::defer_reply`]: the acknowledgement of a delivery report
/// or of an MO part waits until the application has recorded it.
pub fn defer_delivery_ack(event: &mut ClientEvent) -> Option<crate::ack::AckWaiter> {
    let slot = match event {
        ClientEvent::Report(report) => &mut report.ack,
        ClientEvent::Mo(part) => &mut part.ack,
        _ => return None,
    };
    let (ack, waiter) = crate::ack::Ack::pair();
    *slot = ack;
    Some(waiter)
}

/// The CMPP link options (`LinkSettings::options`): only `version`, `3` (the default) or `2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CmppOptions {
    pub version: Version,
}

impl CmppOptions {
    /// Reads the options. `fixed` is the version the protocol name already chose (`cmpp2`); an
    /// explicit `version` that contradicts it is refused, as is any other option name or value.
    pub fn parse(
        options: &std::collections::BTreeMap<String, String>,
        fixed: Option<Version>,
    ) -> Result<CmppOptions, String> {
        let mut version = fixed.unwrap_or_default();
        for (name, value) in options {
            match name.as_str() {
                "version" => {
                    let asked = match value.trim() {
                        "3" | "3.0" => Version::V3,
                        "2" | "2.0" => Version::V2,
                        other => {
                            return Err(format!(
                                "option version = {other:?}: the CMPP version must be 3 or 2"
                            ))
                        }
                    };
                    if let Some(fixed) = fixed.filter(|f| *f != asked) {
                        return Err(format!(
                            "option version = {value:?} contradicts the protocol, which is CMPP {fixed}"
                        ));
                    }
                    version = asked;
                }
                other => {
                    return Err(format!(
                        "unknown option {other:?}: CMPP links take only \"version\" (3 or 2)"
                    ))
                }
            }
        }
        Ok(CmppOptions { version })
    }
}

/// A CMPP client link (3.0 or 2.0). Cloning shares the link.
#[derive(Clone)]
pub struct CmppClient {
    engine: Engine<CmppLink>,
}

impl CmppClient {
    /// Spawns the connection task (connect + login, reconnect with backoff forever until
    /// shutdown). Must be called within a Tokio runtime. Dropping every clone also stops the
    /// link. Read the events promptly: while the queue (1024) is full the link stops reading.
    ///
    /// The version comes from `settings.options` (default 3.0). Options that do not parse leave
    /// the link down: every attempt then fails before connecting and reports why.
    pub fn start(settings: LinkSettings) -> (CmppClient, mpsc::Receiver<ClientEvent>) {
        CmppClient::start_as(settings, None)
    }

    /// Like [`CmppClient::start`], with the version fixed by the caller (the `cmpp2` protocol).
    pub fn start_as(
        settings: LinkSettings,
        fixed: Option<Version>,
    ) -> (CmppClient, mpsc::Receiver<ClientEvent>) {
        let options = CmppOptions::parse(&settings.options, fixed);
        if let Err(e) = &options {
            tracing::error!(link = %settings.name, "link options refused: {e}");
        }
        let engine_settings = settings.engine_settings();
        let link = CmppLink {
            version: options
                .as_ref()
                .map(|o| o.version)
                .unwrap_or_else(|_| fixed.unwrap_or_default()),
            options_error: options.err(),
            settings,
            last_authenticator: Mutex::new([0; 16]),
        };
        let (engine, events) = Engine::start(engine_settings, link);
        (CmppClient { engine }, events)
    }

    /// Waits for a window slot (and for a live connection, up to response_timeout), sends
    /// SUBMIT, awaits SUBMIT_RESP.
    pub async fn submit(&self, seg: OutboundSegment) -> Result<SubmitOutcome, SendError> {
        self.submit_traced(seg).await.result
    }

    /// [`CmppClient::submit`], with the PDUs' facts for the protocol trace.
    pub async fn submit_traced(&self, seg: OutboundSegment) -> Submitted {
        let submit = match self.build_submit(&seg) {
            Ok(s) => s,
            Err(e) => return Submitted::refused("CMPP_SUBMIT", SubmitOutcome::not_sent(e)),
        };
        let exchange = self
            .engine
            .request_traced(|seq| Pdu::new(seq, Body::Submit(Box::new(submit))))
            .await;
        traced("CMPP_SUBMIT", exchange, |response| match response.body {
            Body::SubmitResp(r) => (
                "CMPP_SUBMIT_RESP".to_string(),
                r.result,
                SubmitOutcome::answered(r.result, || r.msg_id.to_string(), cmpp::submit_result),
            ),
            other => (
                format!("{:#010x}", other.command_id()),
                0,
                SubmitOutcome::unexpected(other.command_id(), "SUBMIT"),
            ),
        })
    }

    pub fn is_connected(&self) -> bool {
        self.engine.is_connected()
    }

    /// The CMPP version this link speaks.
    pub fn version(&self) -> Version {
        self.engine_link().version
    }

    /// Sends TERMINATE, waits briefly for TERMINATE_RESP, stops reconnecting.
    pub async fn shutdown(&self) {
        self.engine.shutdown().await;
    }

    /// Builds the SUBMIT and checks that it encodes, so a field that does not fit is refused
    /// here instead of breaking the connection when the writer meets it.
    fn build_submit(&self, seg: &OutboundSegment) -> Result<Submit, CmppError> {
        let s = &self.engine_link().settings;
        let submit = Submit {
            msg_id: 0,
            pk_total: seg.segment.total,
            pk_number: seg.segment.number,
            registered_delivery: u8::from(seg.registered_delivery),
            msg_level: 1,
            service_id: s.service_id.clone(),
            // Charge the SP (2), free of charge (FeeType 01): Herald does not bill subscribers.
            fee_user_type: 2,
            fee_terminal_id: String::new(),
            fee_terminal_type: 0,
            tp_pid: 0,
            tp_udhi: u8::from(seg.segment.udhi),
            msg_fmt: seg.segment.data_coding,
            msg_src: s.account.clone(),
            fee_type: "01".into(),
            fee_code: "000000".into(),
            valid_time: String::new(),
            at_time: String::new(),
            src_id: s.source_id().to_string(),
            dest_terminal_ids: vec![seg.dest.clone()],
            dest_terminal_type: 0,
            msg_content: seg.segment.payload.clone(),
            link_id: String::new(),
        };
        Pdu::new(0, Body::Submit(Box::new(submit.clone())))
            .encode_as(&mut BytesMut::new(), self.engine_link().version)?;
        Ok(submit)
    }

    fn engine_link(&self) -> &CmppLink {
        self.engine.protocol()
    }
}

/// The CMPP side of the session engine.
struct CmppLink {
    settings: LinkSettings,
    version: Version,
    /// Why the link options were refused; the link then never connects.
    options_error: Option<String>,
    /// AuthenticatorSource of the last CONNECT, to verify the gateway's AuthenticatorISMG.
    last_authenticator: Mutex<[u8; 16]>,
}

impl LinkProtocol for CmppLink {
    fn defer_reply(&self, event: &mut ClientEvent) -> Option<crate::ack::AckWaiter> {
        defer_delivery_ack(event)
    }

    type Pdu = Pdu;
    type Event = ClientEvent;
    type Error = CmppError;
    type Codec = CmppCodec;

    fn codec(&self) -> CmppCodec {
        CmppCodec::new(self.version)
    }

    fn preflight(&self) -> Result<(), String> {
        match &self.options_error {
            Some(e) => Err(format!("link options refused: {e}")),
            None => Ok(()),
        }
    }

    fn login_request(&self, sequence: u32) -> Pdu {
        let timestamp = auth::timestamp(&chrono::Local::now());
        let authenticator = auth::authenticator_source(
            &self.settings.account,
            self.settings.secret.expose_secret(),
            timestamp,
        );
        if let Ok(mut last) = self.last_authenticator.lock() {
            *last = authenticator;
        }
        Pdu::new(
            sequence,
            Body::Connect(Connect {
                source_addr: self.settings.account.clone(),
                authenticator_source: authenticator,
                version: self.version.wire(),
                timestamp,
            }),
        )
    }

    fn check_login(&self, response: Pdu) -> Result<(), String> {
        let Body::ConnectResp(resp) = response.body else {
            return Err(format!(
                "expected CONNECT_RESP, got command {:#010x}",
                response.body.command_id()
            ));
        };
        if resp.status != 0 {
            let meaning = match resp.status {
                1 => "message structure error",
                2 => "illegal source address",
                3 => "authentication failed",
                4 => "version too high",
                _ => "other error",
            };
            return Err(format!("CONNECT_RESP Status {} ({meaning})", resp.status));
        }
        let expected = self
            .last_authenticator
            .lock()
            .map(|a| auth::authenticator_ismg(0, &a, self.settings.secret.expose_secret()))
            .ok();
        if expected != Some(resp.authenticator_ismg) {
            // Gateways differ in how they compute it (1- or 4-byte Status); not worth a refusal.
            tracing::debug!(link = %self.settings.name, "AuthenticatorISMG does not match");
        }
        Ok(())
    }

    fn classify(&self, pdu: Pdu) -> Inbound<Pdu, ClientEvent> {
        let sequence = pdu.sequence_id;
        match pdu.body {
            Body::ActiveTest => Inbound::Request {
                reply: Some(Pdu::new(sequence, Body::ActiveTestResp)),
                event: None,
            },
            Body::Terminate => Inbound::Close {
                reply: Some(Pdu::new(sequence, Body::TerminateResp)),
            },
            Body::Deliver(d) => Inbound::Request {
                reply: Some(Pdu::new(
                    sequence,
                    Body::DeliverResp(DeliverResp {
                        msg_id: d.msg_id,
                        result: 0,
                    }),
                )),
                event: deliver_event(*d).map(|e| e.received_in("CMPP_DELIVER", sequence)),
            },
            body if body.is_response() => Inbound::Response {
                sequence,
                pdu: Pdu::new(sequence, body),
            },
            other => {
                tracing::warn!(
                    link = %self.settings.name,
                    command = other.command_id(),
                    "ignoring a request the SP side does not serve"
                );
                Inbound::Request {
                    reply: None,
                    event: None,
                }
            }
        }
    }

    fn heartbeat(&self, sequence: u32) -> Pdu {
        Pdu::new(sequence, Body::ActiveTest)
    }

    fn terminate(&self, sequence: u32) -> Pdu {
        Pdu::new(sequence, Body::Terminate)
    }

    fn link_event(&self, state: LinkState) -> ClientEvent {
        state.into()
    }
}

/// Turns the engine's account of one submit into a [`Submitted`]: `judge` reads the response
/// into (its command name, its raw status, the outcome).
pub(crate) fn traced<P>(
    command: &'static str,
    exchange: crate::session::Exchange<P>,
    judge: impl FnOnce(P) -> (String, u32, SubmitOutcome),
) -> Submitted {
    let mut trace = SubmitTrace {
        command,
        sequence: exchange.sequence,
        sent_at_ms: exchange.sent_at_ms,
        ..SubmitTrace::default()
    };
    let result = exchange.result.map(|response| {
        let (name, status, outcome) = judge(response);
        trace.response = name;
        trace.status = status;
        outcome
    });
    Submitted { trace, result }
}

/// A report or an MO part (joined with the others by the node, see [`crate::mo`]).
fn deliver_event(d: Deliver) -> Option<ClientEvent> {
    match d.content {
        DeliverContent::Report(r) => Some(ClientEvent::Report(DeliveryReport::new(
            r.msg_id.to_string(),
            r.dest_terminal_id,
            r.stat,
            r.submit_time,
            r.done_time,
        ))),
        DeliverContent::Message(content) => Some(ClientEvent::Mo(MoPart::from_payload(
            mo::CHINESE,
            d.src_terminal_id,
            d.dest_id,
            d.msg_id.to_string(),
            d.msg_fmt,
            d.tp_udhi != 0,
            &content,
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmpp::StatusReport;

    /// No configuration or login PDU that holds a carrier password shows it in `Debug`.
    #[test]
    fn carrier_passwords_are_redacted_in_debug() {
        const SECRET: &str = "Qv7-distinctive-secret";
        let settings = LinkSettings {
            name: "l".into(),
            addr: "127.0.0.1:1".into(),
            account: "900001".into(),
            secret: SECRET.into(),
            service_id: String::new(),
            src_id: String::new(),
            window: 1,
            heartbeat_interval: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(1),
            options: Default::default(),
        };
        let smpp_bind = crate::smpp::Bind {
            kind: crate::smpp::BindKind::Transceiver,
            system_id: "sys".into(),
            password: SECRET.into(),
            system_type: String::new(),
            interface_version: 0x34,
            addr_ton: 0,
            addr_npi: 0,
            address_range: String::new(),
        };
        let outbind = crate::smpp::Outbind {
            system_id: "sys".into(),
            password: SECRET.into(),
        };
        let sgip_bind = crate::sgip::Bind {
            login_type: 1,
            login_name: "sp".into(),
            login_password: SECRET.into(),
        };
        let sims = [
            format!(
                "{:?}",
                crate::sim::smpp::SimConfig::new("127.0.0.1:1", "sys", SECRET)
            ),
            format!(
                "{:?}",
                crate::sim::sgip::SimAccount {
                    login: "sp".into(),
                    password: SECRET.into(),
                    sp_addr: None,
                }
            ),
        ];
        for shown in [
            format!("{settings:?}"),
            format!("{smpp_bind:?}"),
            format!("{outbind:#?}"),
            format!("{sgip_bind:?}"),
        ]
        .iter()
        .chain(&sims)
        {
            assert!(!shown.contains(SECRET), "secret shown: {shown}");
            assert!(shown.contains("REDACTED"), "{shown}");
        }
    }

    fn deliver(content: DeliverContent, udhi: u8, fmt: u8) -> Deliver {
        Deliver {
            msg_id: 99,
            dest_id: "1065901234".into(),
            service_id: String::new(),
            tp_pid: 0,
            tp_udhi: udhi,
            msg_fmt: fmt,
            src_terminal_id: "13800138000".into(),
            src_terminal_type: 0,
            content,
            link_id: String::new(),
        }
    }

    #[test]
    fn report_becomes_event_with_decimal_id() {
        let ev = deliver_event(deliver(
            DeliverContent::Report(StatusReport {
                msg_id: 1234567890123,
                stat: "UNDELIV".into(),
                submit_time: "2511250701".into(),
                done_time: "2511250702".into(),
                dest_terminal_id: "13800138000".into(),
                smsc_sequence: 1,
            }),
            0,
            0,
        ));
        assert_eq!(
            ev,
            Some(ClientEvent::Report(DeliveryReport {
                carrier_id: "1234567890123".into(),
                dest: "13800138000".into(),
                stat: "UNDELIV".into(),
                delivered: false,
                submit_time: "2511250701".into(),
                done_time: "2511250702".into(),
                error_code: String::new(),
                pdu: Default::default(),
                ack: crate::ack::Ack::none(),
            }))
        );
    }

    #[test]
    fn each_mo_part_becomes_an_event_without_its_udh() {
        let part = |n: u8, content: &[u8]| {
            let mut body = vec![5, 0, 3, 1, 2, n];
            body.extend_from_slice(content);
            let mut d = deliver(DeliverContent::Message(body), 1, 8);
            d.msg_id = 98 + u64::from(n);
            d
        };
        let Some(ClientEvent::Mo(p)) = deliver_event(part(2, &[0x59, 0x7D])) else {
            panic!("an MO event");
        };
        assert_eq!(
            (
                p.src.as_str(),
                p.dest.as_str(),
                p.text.as_str(),
                p.carrier_id.as_str()
            ),
            ("13800138000", "1065901234", "好", "100")
        );
        let (concat, scheme) = p.concat.expect("part of a long message");
        assert_eq!((concat.reference, concat.total, concat.number), (1, 2, 2));
        assert_eq!((scheme, p.encoding), (mo::Scheme::Udh8, "ucs2"));
    }
}
