//! The CNGP 2.0 SP-side client: one long-lived link to a China Netcom gateway that submits
//! segments and hands status reports and mobile-originated messages to the application as
//! events, with the same shape as [`crate::CmppClient`] and [`crate::smgp_client::SmgpClient`].
//!
//! Connection handling is the shared [`crate::session`] engine; this module supplies the CNGP
//! PDUs and reads results from the header's Command_Status. It does not retry.
//!
//! Carrier ids are the 10-byte MsgID as 20 lowercase hex digits, in Submit_Resp and in reports
//! alike. CNGP 2.0 has no TP_udhi flag (*unconfirmed*): a segment's UDH simply leads its content,
//! and received content is checked for one.

use std::sync::Mutex;

use bytes::BytesMut;
use secrecy::ExposeSecret;
use tokio::sync::mpsc;

use crate::cngp::{
    self, tag, Body, CngpCodec, CngpError, Deliver, DeliverContent, DeliverResp, Login, Pdu,
    Submit, Tlvs,
};
use crate::mo::{self, MoPart};
use crate::session::{Engine, Inbound, LinkProtocol, LinkState};
pub use crate::smgp_client::{
    ClientEvent, LinkSettings, OutboundSegment, SendError, SubmitOutcome, LOCAL_REJECT,
};
use crate::telecom::{auth, link};
use crate::trace::Submitted;

/// SubType of an MT message sent on the SP's own account (点播下发); *unconfirmed*.
const SUB_TYPE_MT: u8 = 2;
/// FeeUserType: charge the SP, so subscribers pay nothing.
const FEE_USER_SP: u8 = 2;

/// The CNGP link options (`LinkSettings::options`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CngpOptions {
    /// LoginMode: 0 send, 1 receive, 2 transmit (default).
    pub login_mode: u8,
}

impl CngpOptions {
    /// Accepts only `login-mode` (`send`, `receive`, `transmit` or 0/1/2).
    pub fn parse(options: &std::collections::BTreeMap<String, String>) -> Result<Self, String> {
        link::parse_login_mode(options, "CNGP").map(|login_mode| CngpOptions { login_mode })
    }
}

/// A CNGP 2.0 client link. Cloning shares the link.
#[derive(Clone)]
pub struct CngpClient {
    engine: Engine<CngpLink>,
}

impl CngpClient {
    /// Spawns the connection task (connect + Login, reconnect with backoff until shutdown). Must
    /// be called within a Tokio runtime; dropping every clone also stops the link.
    ///
    /// `account` is the ClientID and SPID (10 characters), `src_id` the SrcTermID (empty:
    /// `account`). Options that do not parse leave the link down, reporting why.
    pub fn start(settings: LinkSettings) -> (CngpClient, mpsc::Receiver<ClientEvent>) {
        let options = CngpOptions::parse(&settings.options);
        if let Err(e) = &options {
            tracing::error!(link = %settings.name, "link options refused: {e}");
        }
        let engine_settings = settings.engine_settings();
        let link = CngpLink {
            login_mode: options
                .as_ref()
                .map_or(link::DEFAULT_LOGIN_MODE, |o| o.login_mode),
            options_error: options.err(),
            settings,
            last_authenticator: Mutex::new([0; 16]),
        };
        let (engine, events) = Engine::start(engine_settings, link);
        (CngpClient { engine }, events)
    }

    /// Waits for a window slot (and a live connection, up to response_timeout), sends Submit,
    /// awaits Submit_Resp.
    pub async fn submit(&self, seg: OutboundSegment) -> Result<SubmitOutcome, SendError> {
        self.submit_traced(seg).await.result
    }

    /// [`CngpClient::submit`], with the PDUs' facts for the protocol trace.
    pub async fn submit_traced(&self, seg: OutboundSegment) -> Submitted {
        let submit = match self.build_submit(&seg) {
            Ok(s) => s,
            Err(e) => return Submitted::refused("CNGP_SUBMIT", SubmitOutcome::not_sent(e)),
        };
        let exchange = self
            .engine
            .request_traced(|seq| Pdu::new(seq, Body::Submit(Box::new(submit))))
            .await;
        let link = &self.engine.protocol().settings.name;
        crate::client::traced("CNGP_SUBMIT", exchange, |response| {
            let status = response.command_status;
            match response.body {
                Body::SubmitResp(r) => {
                    if let Some(load) = r.tlvs.u8(tag::CONGESTION_STATE) {
                        tracing::debug!(%link, load, "gateway CongestionState");
                    }
                    (
                        "CNGP_SUBMIT_RESP".to_string(),
                        status,
                        SubmitOutcome::answered(status, || r.msg_id.to_string(), cngp::status),
                    )
                }
                other => (
                    format!("{:#010x}", other.command_id()),
                    status,
                    SubmitOutcome::unexpected(other.command_id(), "Submit"),
                ),
            }
        })
    }

    pub fn is_connected(&self) -> bool {
        self.engine.is_connected()
    }

    /// Sends Exit, waits briefly for Exit_Resp, stops reconnecting.
    pub async fn shutdown(&self) {
        self.engine.shutdown().await;
    }

    fn build_submit(&self, seg: &OutboundSegment) -> Result<Submit, CngpError> {
        let s = &self.engine.protocol().settings;
        let submit = Submit {
            sp_id: s.account.clone(),
            sub_type: SUB_TYPE_MT,
            need_report: u8::from(seg.registered_delivery),
            priority: 1,
            service_id: s.service_id.clone(),
            fee_type: "00".into(),
            fee_user_type: FEE_USER_SP,
            fee_code: "000000".into(),
            msg_format: seg.segment.data_coding,
            valid_time: String::new(),
            at_time: String::new(),
            src_term_id: s.source_id().to_string(),
            charge_term_id: String::new(),
            dest_term_ids: vec![seg.dest.clone()],
            msg_content: seg.segment.payload.clone(),
            tlvs: Tlvs::default().with_u8(tag::PROTOCOL_ID, 0),
        };
        Pdu::new(0, Body::Submit(Box::new(submit.clone()))).encode(&mut BytesMut::new())?;
        Ok(submit)
    }
}

/// The CNGP side of the session engine.
struct CngpLink {
    settings: LinkSettings,
    login_mode: u8,
    options_error: Option<String>,
    last_authenticator: Mutex<[u8; 16]>,
}

impl LinkProtocol for CngpLink {
    fn defer_reply(&self, event: &mut ClientEvent) -> Option<crate::ack::AckWaiter> {
        crate::client::defer_delivery_ack(event)
    }

    type Pdu = Pdu;
    type Event = ClientEvent;
    type Error = CngpError;
    type Codec = CngpCodec;

    fn codec(&self) -> CngpCodec {
        CngpCodec
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
                version: cngp::VERSION_2_0,
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
        if response.command_status != 0 {
            let (_, meaning) = cngp::status(response.command_status);
            return Err(format!(
                "Login_Resp Status {} ({meaning})",
                response.command_status
            ));
        }
        let expected = self
            .last_authenticator
            .lock()
            .map(|a| auth::authenticator_server(0, &a, self.settings.secret.expose_secret()))
            .ok();
        if expected != Some(resp.authenticator_server) {
            // How CNGP gateways compute it is unconfirmed; never refuse a working link over it.
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
                        tlvs: Tlvs::default(),
                    }),
                )),
                event: deliver_event(*d).map(|e| e.received_in("CNGP_DELIVER", sequence)),
            },
            body if body.is_response() => Inbound::Response {
                sequence,
                pdu: Pdu::with_status(sequence, pdu.command_status, body),
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
            let udhi = link::sniff_concat(&content).is_some();
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
    use crate::cngp::{MsgId10, Receipt};

    fn deliver(content: DeliverContent, fmt: u8) -> Deliver {
        Deliver {
            msg_id: MsgId10([7; 10]),
            msg_format: fmt,
            recv_time: "20240116170001".into(),
            src_term_id: "13000000001".into(),
            dest_term_id: "10690002".into(),
            content,
            tlvs: Tlvs::default(),
        }
    }

    #[test]
    fn report_becomes_event_with_hex_id() {
        let ev = deliver_event(deliver(
            DeliverContent::Report(Receipt {
                msg_id: MsgId10([0x02, 0, 1, 1, 0x16, 0x17, 0, 0, 0, 7]),
                stat: "DELIVRD".into(),
                ..Receipt::default()
            }),
            0,
        ));
        assert!(matches!(ev, Some(ClientEvent::Report(ref r))
            if r.carrier_id == "02000101161700000007" && r.delivered && r.dest == "13000000001"));
    }

    #[test]
    fn mo_text_with_and_without_udh() {
        let ev = deliver_event(deliver(
            DeliverContent::Message(vec![5, 0, 3, 1, 2, 2, 0x59, 0x7D]),
            8,
        ));
        assert!(matches!(ev, Some(ClientEvent::Mo(ref m))
            if m.text == "好" && m.concat.is_some_and(|(c, _)| c.number == 2 && c.total == 2)));
        let ev = deliver_event(deliver(DeliverContent::Message(vec![0xC4, 0xE3]), 15));
        assert!(matches!(ev, Some(ClientEvent::Mo(ref m)) if m.text == "你"
            && m.carrier_id == "07070707070707070707" && m.concat.is_none() && m.encoding == "gbk"));
    }
}
