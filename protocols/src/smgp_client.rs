//! The SMGP 3.0.3 SP-side client: one long-lived link to a China Telecom gateway that submits
//! segments and hands status reports and mobile-originated messages to the application as
//! events, with the same shape as [`crate::CmppClient`].
//!
//! Connection handling (window, heartbeats, reconnects) is the shared [`crate::session`] engine;
//! this module supplies the SMGP PDUs and maps Status codes. It does not retry: the caller decides,
//! guided by `retryable` in [`SubmitOutcome::Rejected`] and by [`SendError`].
//!
//! Carrier ids are the 10-byte MsgID as 20 lowercase hex digits, in Submit_Resp and in reports
//! alike, so a report always finds its submit.

use std::sync::Mutex;

use bytes::BytesMut;
use secrecy::ExposeSecret;
use tokio::sync::mpsc;

pub use crate::client::{
    ClientEvent, LinkSettings, OutboundSegment, SendError, SubmitOutcome, LOCAL_REJECT,
};
use crate::mo::{self, MoPart};
use crate::session::{Engine, Inbound, LinkProtocol, LinkState};
use crate::smgp::{
    self, tag, Body, Deliver, DeliverContent, DeliverResp, Login, Pdu, SmgpCodec, SmgpError,
    Submit, Tlvs,
};
use crate::telecom::{auth, link};
use crate::trace::Submitted;

/// MsgType of an SP's mobile-terminated message.
const MSG_TYPE_MT: u8 = 6;

/// The SMGP link options (`LinkSettings::options`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmgpOptions {
    /// LoginMode: 0 send, 1 receive, 2 transmit (default).
    pub login_mode: u8,
}

impl SmgpOptions {
    /// Accepts only `login-mode` (`send`, `receive`, `transmit` or 0/1/2).
    pub fn parse(options: &std::collections::BTreeMap<String, String>) -> Result<Self, String> {
        link::parse_login_mode(options, "SMGP").map(|login_mode| SmgpOptions { login_mode })
    }
}

/// An SMGP 3.0.3 client link. Cloning shares the link.
#[derive(Clone)]
pub struct SmgpClient {
    engine: Engine<SmgpLink>,
}

impl SmgpClient {
    /// Spawns the connection task (connect + Login, reconnect with backoff until shutdown). Must
    /// be called within a Tokio runtime; dropping every clone also stops the link.
    ///
    /// `account` is the ClientID (8 characters), `src_id` the SrcTermID (empty: `account`).
    /// Options that do not parse leave the link down: every attempt fails before connecting and
    /// reports why in [`ClientEvent::Disconnected`].
    pub fn start(settings: LinkSettings) -> (SmgpClient, mpsc::Receiver<ClientEvent>) {
        let options = SmgpOptions::parse(&settings.options);
        if let Err(e) = &options {
            tracing::error!(link = %settings.name, "link options refused: {e}");
        }
        let engine_settings = settings.engine_settings();
        let link = SmgpLink {
            login_mode: options
                .as_ref()
                .map_or(link::DEFAULT_LOGIN_MODE, |o| o.login_mode),
            options_error: options.err(),
            settings,
            last_authenticator: Mutex::new([0; 16]),
        };
        let (engine, events) = Engine::start(engine_settings, link);
        (SmgpClient { engine }, events)
    }

    /// Waits for a window slot (and a live connection, up to response_timeout), sends Submit,
    /// awaits Submit_Resp.
    pub async fn submit(&self, seg: OutboundSegment) -> Result<SubmitOutcome, SendError> {
        self.submit_traced(seg).await.result
    }

    /// [`SmgpClient::submit`], with the PDUs' facts for the protocol trace.
    pub async fn submit_traced(&self, seg: OutboundSegment) -> Submitted {
        let submit = match self.build_submit(&seg) {
            Ok(s) => s,
            Err(e) => return Submitted::refused("SMGP_SUBMIT", SubmitOutcome::not_sent(e)),
        };
        let exchange = self
            .engine
            .request_traced(|seq| Pdu::new(seq, Body::Submit(Box::new(submit))))
            .await;
        crate::client::traced("SMGP_SUBMIT", exchange, |response| match response.body {
            Body::SubmitResp(r) => (
                "SMGP_SUBMIT_RESP".to_string(),
                r.status,
                SubmitOutcome::answered(r.status, || r.msg_id.to_string(), smgp::status),
            ),
            other => (
                format!("{:#010x}", other.command_id()),
                0,
                SubmitOutcome::unexpected(other.command_id(), "Submit"),
            ),
        })
    }

    pub fn is_connected(&self) -> bool {
        self.engine.is_connected()
    }

    /// Sends Exit, waits briefly for Exit_Resp, stops reconnecting.
    pub async fn shutdown(&self) {
        self.engine.shutdown().await;
    }

    /// Builds the Submit and checks that it encodes, so a field that does not fit is refused
    /// here instead of breaking the connection when the writer meets it.
    fn build_submit(&self, seg: &OutboundSegment) -> Result<Submit, SmgpError> {
        let s = &self.engine.protocol().settings;
        let mut tlvs = Tlvs::default();
        if seg.segment.udhi {
            tlvs = tlvs.with_u8(tag::TP_UDHI, 1);
        }
        if seg.segment.total > 1 {
            tlvs = tlvs
                .with_u8(tag::PK_TOTAL, seg.segment.total)
                .with_u8(tag::PK_NUMBER, seg.segment.number);
        }
        let submit = Submit {
            msg_type: MSG_TYPE_MT,
            need_report: u8::from(seg.registered_delivery),
            priority: 1,
            service_id: s.service_id.clone(),
            // Free of charge (FeeType 00): Herald does not bill subscribers.
            fee_type: "00".into(),
            fee_code: "000000".into(),
            fixed_fee: "000000".into(),
            msg_format: seg.segment.data_coding,
            valid_time: String::new(),
            at_time: String::new(),
            src_term_id: s.source_id().to_string(),
            charge_term_id: String::new(),
            dest_term_ids: vec![seg.dest.clone()],
            msg_content: seg.segment.payload.clone(),
            reserve: String::new(),
            tlvs,
        };
        Pdu::new(0, Body::Submit(Box::new(submit.clone()))).encode(&mut BytesMut::new())?;
        Ok(submit)
    }
}

/// The SMGP side of the session engine.
struct SmgpLink {
    settings: LinkSettings,
    login_mode: u8,
    /// Why the link options were refused; the link then never connects.
    options_error: Option<String>,
    /// AuthenticatorClient of the last Login, to verify the gateway's AuthenticatorServer.
    last_authenticator: Mutex<[u8; 16]>,
}

/// Meaning of a Login_Resp Status.
fn login_status(status: u32) -> &'static str {
    match status {
        1 => "system busy",
        2 => "maximum number of connections exceeded",
        10 => "message structure error",
        20 => "IP address error",
        21 => "authentication error",
        22 => "version too high",
        _ => "other error",
    }
}

impl LinkProtocol for SmgpLink {
    fn defer_reply(&self, event: &mut ClientEvent) -> Option<crate::ack::AckWaiter> {
        crate::client::defer_delivery_ack(event)
    }

    type Pdu = Pdu;
    type Event = ClientEvent;
    type Error = SmgpError;
    type Codec = SmgpCodec;

    fn codec(&self) -> SmgpCodec {
        SmgpCodec
    }

    fn preflight(&self) -> Result<(), String> {
        match &self.options_error {
            Some(e) => Err(format!("link options refused: {e}")),
            None => Ok(()),
        }
    }

    fn login_request(&self, sequence: u32) -> Pdu {
        let timestamp = auth::timestamp(&chrono::Local::now());
        let authenticator = auth::authenticator_client(
            &self.settings.account,
            self.settings.secret.expose_secret(),
            timestamp,
        );
        if let Ok(mut last) = self.last_authenticator.lock() {
            *last = authenticator;
        }
        Pdu::new(
            sequence,
            Body::Login(Login {
                client_id: self.settings.account.clone(),
                authenticator_client: authenticator,
                login_mode: self.login_mode,
                timestamp,
                client_version: smgp::VERSION_3_0,
            }),
        )
    }

    fn check_login(&self, response: Pdu) -> Result<(), String> {
        let Body::LoginResp(resp) = response.body else {
            return Err(format!(
                "expected Login_Resp, got command {:#010x}",
                response.body.command_id()
            ));
        };
        if resp.status != 0 {
            return Err(format!(
                "Login_Resp Status {} ({})",
                resp.status,
                login_status(resp.status)
            ));
        }
        let expected = self
            .last_authenticator
            .lock()
            .map(|a| auth::authenticator_server(0, &a, self.settings.secret.expose_secret()))
            .ok();
        if expected != Some(resp.authenticator_server) {
            // Gateways differ in how they compute it; not worth refusing a working link.
            tracing::debug!(link = %self.settings.name, "AuthenticatorServer does not match");
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
            Body::Exit => Inbound::Close {
                reply: Some(Pdu::new(sequence, Body::ExitResp)),
            },
            Body::Deliver(d) => Inbound::Request {
                reply: Some(Pdu::new(
                    sequence,
                    Body::DeliverResp(DeliverResp {
                        msg_id: d.msg_id,
                        status: 0,
                    }),
                )),
                event: deliver_event(*d).map(|e| e.received_in("SMGP_DELIVER", sequence)),
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
        Pdu::new(sequence, Body::Exit)
    }

    fn link_event(&self, state: LinkState) -> ClientEvent {
        state.into()
    }
}

/// A report or an MO part (joined with the others by the node, see [`crate::mo`]).
fn deliver_event(d: Deliver) -> Option<ClientEvent> {
    match d.content {
        DeliverContent::Report(r) => {
            Some(ClientEvent::Report(link::delivery_report(r, d.src_term_id)))
        }
        DeliverContent::Message(content) => {
            let udhi = d.tlvs.u8(tag::TP_UDHI).unwrap_or(0) != 0;
            let mut part = MoPart::from_payload(
                mo::CHINESE,
                d.src_term_id,
                d.dest_term_id,
                d.msg_id.to_string(),
                d.msg_format,
                udhi,
                &content,
            );
            part.carrier_time = d.recv_time;
            Some(ClientEvent::Mo(part))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::DeliveryReport;
    use crate::smgp::{MsgId10, Receipt};

    fn deliver(content: DeliverContent, tlvs: Tlvs, fmt: u8) -> Deliver {
        Deliver {
            msg_id: MsgId10([9; 10]),
            msg_format: fmt,
            recv_time: "20240116170001".into(),
            src_term_id: "13300000001".into(),
            dest_term_id: "10690001".into(),
            content,
            reserve: String::new(),
            tlvs,
        }
    }

    #[test]
    fn report_becomes_event_with_hex_id() {
        let id = MsgId10([0x01, 0x00, 0x61, 0x01, 0x16, 0x17, 0x00, 0x01, 0x23, 0x45]);
        let ev = deliver_event(deliver(
            DeliverContent::Report(Receipt {
                msg_id: id,
                stat: "UNDELIV".into(),
                submit_date: "2401161700".into(),
                done_date: "2401161701".into(),
                ..Receipt::default()
            }),
            Tlvs::default(),
            0,
        ));
        assert_eq!(
            ev,
            Some(ClientEvent::Report(DeliveryReport {
                carrier_id: "01006101161700012345".into(),
                dest: "13300000001".into(),
                stat: "UNDELIV".into(),
                delivered: false,
                submit_time: "2401161700".into(),
                done_time: "2401161701".into(),
                error_code: String::new(),
                pdu: Default::default(),
                ack: crate::ack::Ack::none(),
            }))
        );
    }

    #[test]
    fn each_mo_part_becomes_an_event_with_its_sixteen_bit_reference() {
        let part = |n: u8, content: &[u8]| {
            let mut body = vec![6, 8, 4, 0x12, 0x34, 2, n];
            body.extend_from_slice(content);
            let mut d = deliver(
                DeliverContent::Message(body),
                Tlvs::default().with_u8(tag::TP_UDHI, 1),
                8,
            );
            d.msg_id = MsgId10([n; 10]);
            d
        };
        let Some(ClientEvent::Mo(p)) = deliver_event(part(1, &[0x4F, 0x60])) else {
            panic!("an MO event");
        };
        assert_eq!(
            (
                p.src.as_str(),
                p.dest.as_str(),
                p.text.as_str(),
                p.carrier_id.as_str()
            ),
            ("13300000001", "10690001", "你", "01010101010101010101")
        );
        let (concat, scheme) = p.concat.expect("part of a long message");
        assert_eq!(
            (concat.reference, concat.total, concat.number),
            (0x1234, 2, 1)
        );
        assert_eq!(scheme, mo::Scheme::Udh16);
    }
}
