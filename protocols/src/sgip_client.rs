//! The SGIP 1.2 SP-side client: the SP's connection to a China Unicom gateway (SMG) that submits
//! segments, plus the listener on which the gateway connects back to the SP (Bind LoginType 2)
//! to push status reports and mobile-originated messages, which become [`ClientEvent`]s.
//!
//! The SP→SMG connection runs on the generic [`crate::session`] engine with
//! [`IdlePolicy::Disconnect`]: SGIP has no heartbeat, so a connection idle for
//! `heartbeat_interval` is unbound and the next submit reconnects. The engine's u32 sequence is
//! the counter part of SGIP's 12-byte sequence number; this module adds the node id and time.
//! Like the CMPP client it does not retry: the caller decides, guided by `retryable`.
//!
//! As with every other protocol, a Report or a Deliver (MO) is answered (Report_Resp,
//! Deliver_Resp) only once the application completes its [`crate::ack::Ack`]: one the node loses
//! before recording it stays unanswered, and the gateway sends it again.
//!
//! Link options (`LinkSettings::options`): `node-id` (required: the SP node number, 3AAAAQQQQQ),
//! `corp-id` (default: the last five digits of the node id), `listen` (required: the address on
//! which the gateway connects back). `account`/`secret` are the login name and password for both
//! directions; `src_id` is the SP number (SPNumber) and is required.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{SinkExt, StreamExt};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

pub use crate::client::{
    ClientEvent, DeliveryReport, LinkSettings, OutboundSegment, SendError, SubmitOutcome,
    LOCAL_REJECT,
};
use crate::mo::{self, MoPart};
use crate::session::{
    Engine, EngineSettings, IdlePolicy, Inbound, LinkProtocol, LinkState, DEFERRED_REPLY_WAIT,
};
use crate::sgip::{
    self, login_type, report_flag, report_state, Bind, Body, Deliver, Pdu, Report, Resp,
    SequenceNumber, SgipCodec, SgipError, Submit,
};
use crate::trace::Submitted;

/// SGIP allows at most this many requests awaiting a response on a connection [SGIP §4.1].
pub const MAX_WINDOW: usize = 32;
/// ChargeNumber of all zeros: the SP pays (Herald does not bill subscribers).
const SP_PAYS: &str = "000000000000000000000";
/// Events the client queues before the links stop reading (as the engine's queue).
const EVENT_QUEUE: usize = 1024;

/// The SGIP link options, read from `LinkSettings` (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgipOptions {
    pub node_id: u32,
    pub corp_id: String,
    /// Where the gateway's own connections (LoginType 2) are accepted.
    pub listen: String,
}

impl SgipOptions {
    pub const NAMES: &'static [&'static str] = &["node-id", "corp-id", "listen"];

    /// Reads and checks the options; the error names the option, the value and the rule.
    pub fn parse(options: &BTreeMap<String, String>) -> Result<SgipOptions, String> {
        let mut node_id = None;
        let mut corp_id = None;
        let mut listen = None;
        for (name, value) in options {
            let value = value.trim();
            match name.as_str() {
                "node-id" => {
                    let id = value
                        .parse::<u32>()
                        .ok()
                        .filter(|id| *id > 0)
                        .ok_or_else(|| {
                            format!(
                                "option node-id = {value:?}: the SP node id must be a number \
                             in 1..=4294967295 (3AAAAQQQQQ)"
                            )
                        })?;
                    node_id = Some(id);
                }
                "corp-id" => {
                    if value.is_empty()
                        || value.len() > 5
                        || !value.bytes().all(|b| b.is_ascii_digit())
                    {
                        return Err(format!(
                            "option corp-id = {value:?}: the corporation id is 1 to 5 digits"
                        ));
                    }
                    corp_id = Some(value.to_string());
                }
                "listen" => {
                    value.parse::<SocketAddr>().map_err(|_| {
                        format!(
                            "option listen = {value:?}: expected IP:PORT for the gateway's \
                             connections to the SP"
                        )
                    })?;
                    listen = Some(value.to_string());
                }
                other => {
                    return Err(format!(
                        "unknown option {other:?}: SGIP links take {}",
                        Self::NAMES.join(", ")
                    ))
                }
            }
        }
        let node_id = node_id.ok_or("option node-id is required for SGIP: the SP node id")?;
        let listen = listen.ok_or(
            "option listen is required for SGIP: the IP:PORT where the gateway delivers \
             reports and MO messages",
        )?;
        // The node id is 3AAAAQQQQQ, QQQQQ being the corporation id.
        let corp_id = corp_id.unwrap_or_else(|| format!("{:05}", node_id % 100_000));
        Ok(SgipOptions {
            node_id,
            corp_id,
            listen,
        })
    }

    /// Checks the options together with the settings SGIP needs.
    pub fn from_settings(settings: &LinkSettings) -> Result<SgipOptions, String> {
        let options = SgipOptions::parse(&settings.options)?;
        if settings.src_id.is_empty() {
            return Err("src_id is required for SGIP: the SP number (SPNumber)".into());
        }
        for (field, value, max) in [
            ("account", settings.account.as_str(), 16),
            ("secret", settings.secret.expose_secret(), 16),
            ("src_id", settings.src_id.as_str(), sgip::NUMBER_LEN),
            ("service_id", settings.service_id.as_str(), 10),
        ] {
            if value.len() > max {
                return Err(format!(
                    "{field} is {} bytes; SGIP allows at most {max}",
                    value.len()
                ));
            }
        }
        Ok(options)
    }
}

/// An SGIP 1.2 client link. Cloning shares the link; dropping every clone stops it.
#[derive(Clone)]
pub struct SgipClient {
    engine: Engine<SgipLink>,
    listener: Arc<ListenerHandle>,
}

struct ListenerHandle {
    local: Option<SocketAddr>,
    stop: CancellationToken,
    tasks: TaskTracker,
    _stop_on_drop: DropGuard,
}

impl SgipClient {
    /// Starts the SP→SMG link (connect + Bind, reconnect with backoff; closed when idle and
    /// reopened by the next submit) and the listener for the gateway's connections. Must be
    /// called within a Tokio runtime. Read the events promptly: while the queue (1024) is full
    /// neither connection reads.
    ///
    /// Settings or options SGIP refuses, or a `listen` address that cannot be bound, leave the
    /// link down: every attempt then fails before connecting and reports why.
    pub fn start(settings: LinkSettings) -> (SgipClient, mpsc::Receiver<ClientEvent>) {
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let mut local = None;
        let options = SgipOptions::from_settings(&settings).and_then(|options| {
            let listener = bind_listener(&options.listen)?;
            local = listener.local_addr().ok();
            let gateway = GatewayListener {
                name: settings.name.clone(),
                account: settings.account.clone(),
                secret: settings.secret.clone(),
                node_id: options.node_id,
                login_timeout: settings.response_timeout,
                // A dead gateway must not hold a socket forever; a live one closes idle links
                // itself long before this.
                idle_timeout: settings.heartbeat_interval.max(Duration::from_secs(1)) * 6,
                events: events_tx.clone(),
                stop: stop.clone(),
                tasks: tasks.clone(),
            };
            tasks.spawn(gateway.run(listener));
            Ok(options)
        });
        if let Err(e) = &options {
            tracing::error!(link = %settings.name, "SGIP link refused: {e}");
        }
        let engine_settings = EngineSettings {
            window: settings.window.clamp(1, MAX_WINDOW),
            ..settings.engine_settings()
        };
        let link = SgipLink {
            node_id: options.as_ref().map(|o| o.node_id).unwrap_or(0),
            corp_id: options
                .as_ref()
                .map(|o| o.corp_id.clone())
                .unwrap_or_default(),
            options_error: options.err(),
            settings,
        };
        let engine = Engine::start_with_events(engine_settings, link, events_tx);
        let listener = Arc::new(ListenerHandle {
            local,
            _stop_on_drop: stop.clone().drop_guard(),
            stop,
            tasks,
        });
        (SgipClient { engine, listener }, events_rx)
    }

    /// Waits for a window slot (and for a connection, opening one if the link was closed for
    /// idleness, up to response_timeout), sends Submit, awaits Submit_Resp. An accepted
    /// segment's `carrier_id` is the Submit's sequence number (`node-MMDDhhmmss-counter`), the
    /// id the gateway's Report names it by.
    pub async fn submit(&self, seg: OutboundSegment) -> Result<SubmitOutcome, SendError> {
        self.submit_traced(seg).await.result
    }

    /// [`SgipClient::submit`], with the PDUs' facts for the protocol trace (the sequence is the
    /// counter part of SGIP's three-part sequence number).
    pub async fn submit_traced(&self, seg: OutboundSegment) -> Submitted {
        let submit = match self.build_submit(&seg) {
            Ok(s) => s,
            Err(e) => return Submitted::refused("SGIP_SUBMIT", SubmitOutcome::not_sent(e)),
        };
        let link = self.engine.protocol();
        // The sequence number is made when the request is sent; it is kept to name the submit.
        let sent_as: Mutex<Option<SequenceNumber>> = Mutex::new(None);
        let exchange = self
            .engine
            .request_traced(|counter| {
                let sequence = link.sequence(counter);
                if let Ok(mut slot) = sent_as.lock() {
                    *slot = Some(sequence);
                }
                Pdu::new(sequence, Body::Submit(Box::new(submit)))
            })
            .await;
        let sequence = sent_as.lock().ok().and_then(|s| *s);
        crate::client::traced("SGIP_SUBMIT", exchange, |response| {
            match (response.body, sequence) {
                (Body::SubmitResp(r), Some(sequence)) if r.result == 0 => (
                    "SGIP_SUBMIT_RESP".to_string(),
                    0,
                    SubmitOutcome::Accepted {
                        carrier_id: sequence.to_string(),
                    },
                ),
                (Body::SubmitResp(r), _) => (
                    "SGIP_SUBMIT_RESP".to_string(),
                    u32::from(r.result),
                    SubmitOutcome::rejected(u32::from(r.result), sgip::result_meaning(r.result)),
                ),
                (other, _) => (
                    format!("{:#010x}", other.command_id()),
                    0,
                    SubmitOutcome::unexpected(other.command_id(), "Submit"),
                ),
            }
        })
    }

    /// Where the gateway's connections are accepted (the bound `listen` option, with the real
    /// port when it asked for port 0); `None` when the link was refused.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listener.local
    }

    /// True while the link can take a submit: connected, or closed for idleness and ready to
    /// reconnect on demand.
    pub fn is_connected(&self) -> bool {
        self.engine.is_available()
    }

    /// Sends Unbind (waiting briefly for Unbind_Resp), stops reconnecting, and closes the
    /// listener and the gateway's connections. Reports the gateway sends meanwhile are left
    /// unanswered, so it sends them again later.
    pub async fn shutdown(&self) {
        self.engine.shutdown().await;
        self.listener.stop.cancel();
        self.listener.tasks.close();
        self.listener.tasks.wait().await;
    }

    /// Builds the Submit and checks that it encodes, so a field that does not fit is refused
    /// here instead of breaking the connection when the writer meets it.
    fn build_submit(&self, seg: &OutboundSegment) -> Result<Submit, SgipError> {
        let link = self.engine.protocol();
        let s = &link.settings;
        let submit = Submit {
            sp_number: s.src_id.clone(),
            charge_number: SP_PAYS.into(),
            user_numbers: vec![sgip::user_number(&seg.dest)],
            corp_id: link.corp_id.clone(),
            service_type: s.service_id.clone(),
            // Free for the recipient; the SP pays.
            fee_type: 1,
            fee_value: "0".into(),
            given_value: "0".into(),
            agent_flag: 0,
            // An MT not caused by an MO request.
            morelate_to_mt_flag: 2,
            priority: 0,
            expire_time: String::new(),
            schedule_time: String::new(),
            report_flag: if seg.registered_delivery {
                report_flag::ALWAYS
            } else {
                report_flag::NEVER
            },
            tp_pid: 0,
            tp_udhi: u8::from(seg.segment.udhi),
            message_coding: seg.segment.data_coding,
            message_type: 0,
            message_content: seg.segment.payload.clone(),
        };
        Pdu::new(
            SequenceNumber::default(),
            Body::Submit(Box::new(submit.clone())),
        )
        .encode(&mut BytesMut::new())?;
        Ok(submit)
    }
}

/// The SGIP side of the session engine (the SP→SMG connection).
struct SgipLink {
    settings: LinkSettings,
    node_id: u32,
    corp_id: String,
    /// Why the settings were refused; the link then never connects.
    options_error: Option<String>,
}

impl SgipLink {
    fn sequence(&self, counter: u32) -> SequenceNumber {
        SequenceNumber::at(self.node_id, &chrono::Local::now(), counter)
    }
}

impl LinkProtocol for SgipLink {
    /// A Report's Report_Resp waits until the application has recorded it, as on the gateway's
    /// own connections (see [`GatewayListener::serve`]).
    fn defer_reply(&self, event: &mut ClientEvent) -> Option<crate::ack::AckWaiter> {
        crate::client::defer_delivery_ack(event)
    }

    type Pdu = Pdu;
    type Event = ClientEvent;
    type Error = SgipError;
    type Codec = SgipCodec;

    fn codec(&self) -> SgipCodec {
        SgipCodec
    }

    fn preflight(&self) -> Result<(), String> {
        match &self.options_error {
            Some(e) => Err(format!("link settings refused: {e}")),
            None => Ok(()),
        }
    }

    fn login_request(&self, counter: u32) -> Pdu {
        Pdu::new(
            self.sequence(counter),
            Body::Bind(Bind {
                login_type: login_type::SP_TO_SMG,
                login_name: self.settings.account.clone(),
                login_password: self.settings.secret.expose_secret().to_string(),
            }),
        )
    }

    fn check_login(&self, response: Pdu) -> Result<(), String> {
        match response.body {
            Body::BindResp(Resp { result: 0 }) => Ok(()),
            Body::BindResp(Resp { result }) => Err(format!(
                "Bind_Resp Result {result} ({})",
                sgip::result_meaning(result).1
            )),
            other => Err(format!(
                "expected Bind_Resp, got command {:#010x}",
                other.command_id()
            )),
        }
    }

    fn classify(&self, pdu: Pdu) -> Inbound<Pdu, ClientEvent> {
        let sequence = pdu.sequence;
        match pdu.body {
            Body::Unbind => Inbound::Close {
                reply: Some(Pdu::new(sequence, Body::UnbindResp)),
            },
            body if body.is_response() => Inbound::Response {
                sequence: sequence.number,
                pdu: Pdu::new(sequence, body),
            },
            // Reports and MOs belong on the gateway's own connection, but answering them here
            // costs nothing and loses nothing.
            body => match gateway_request(&self.settings.name, sequence, body) {
                Some((event, reply)) => Inbound::Request {
                    reply: Some(reply),
                    event,
                },
                None => Inbound::Request {
                    reply: None,
                    event: None,
                },
            },
        }
    }

    /// Never called: SGIP has no heartbeat and the link uses [`IdlePolicy::Disconnect`].
    fn heartbeat(&self, counter: u32) -> Pdu {
        self.terminate(counter)
    }

    fn terminate(&self, counter: u32) -> Pdu {
        Pdu::new(self.sequence(counter), Body::Unbind)
    }

    fn link_event(&self, state: LinkState) -> ClientEvent {
        state.into()
    }

    fn idle_policy(&self) -> IdlePolicy {
        IdlePolicy::Disconnect
    }
}

/// Turns a Deliver or Report into the event it carries (if any) and its acknowledgement; other
/// requests get `None` (logged).
fn gateway_request(
    link: &str,
    sequence: SequenceNumber,
    body: Body,
) -> Option<(Option<ClientEvent>, Pdu)> {
    let ok = Resp { result: 0 };
    match body {
        Body::Deliver(d) => Some((
            mo_event(sequence, *d),
            Pdu::new(sequence, Body::DeliverResp(ok)),
        )),
        Body::Report(r) => Some((
            report_event(r).map(|e| e.received_in("SGIP_REPORT", sequence.number)),
            Pdu::new(sequence, Body::ReportResp(ok)),
        )),
        other => {
            tracing::warn!(
                %link,
                command = other.command_id(),
                "ignoring an SGIP request the SP side does not serve"
            );
            None
        }
    }
}

/// An MO part (joined with the others by the node, see [`crate::mo`]), with the sender's
/// number in national form and the Deliver's sequence number as its carrier id.
fn mo_event(sequence: SequenceNumber, d: Deliver) -> Option<ClientEvent> {
    Some(ClientEvent::Mo(MoPart::from_payload(
        mo::CHINESE,
        sgip::national_number(&d.user_number).to_string(),
        d.sp_number,
        sequence.to_string(),
        d.message_coding,
        d.tp_udhi != 0,
        &d.message_content,
    )))
}

/// A final report about a Submit becomes an event; "waiting" reports (not final) and reports
/// about forwarded Delivers (ReportType 1, not ours) are acknowledged and dropped.
fn report_event(r: Report) -> Option<ClientEvent> {
    if r.report_type != 0 || r.state == report_state::WAITING {
        tracing::debug!(?r, "SGIP report that is not a final submit report");
        return None;
    }
    let now = chrono::Local::now();
    // report_stat is DELIVRD exactly for report_state::DELIVERED.
    Some(ClientEvent::Report(
        DeliveryReport::new(
            r.submit_sequence.to_string(),
            sgip::national_number(&r.user_number).to_string(),
            sgip::report_stat(r.state, r.error_code),
            submit_time(r.submit_sequence.time, &now),
            now.format("%y%m%d%H%M").to_string(),
        )
        .with_error_code(r.error_code.to_string()),
    ))
}

/// YYMMDDHHMM (as CMPP reports carry) from the MMDDhhmmss in a sequence number; the year is the
/// latest one that does not put the submit in the future.
fn submit_time(mmddhhmmss: u32, now: &chrono::DateTime<chrono::Local>) -> String {
    use chrono::Datelike;
    let month_day = mmddhhmmss / 1_000_000;
    let today = now.month() * 100 + now.day();
    let year = if month_day > today {
        now.year() - 1
    } else {
        now.year()
    };
    format!(
        "{:02}{:04}{:04}",
        year.rem_euclid(100),
        month_day,
        (mmddhhmmss / 100) % 10_000
    )
}

/// Binds the listener now, so a bad or busy address is reported at start.
fn bind_listener(addr: &str) -> Result<TcpListener, String> {
    let std_listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| format!("cannot listen on {addr} for the gateway: {e}"))?;
    TcpListener::from_std(std_listener)
        .map_err(|e| format!("cannot listen on {addr} for the gateway: {e}"))
}

/// Accepts the gateway's connections (Bind LoginType 2) and serves Deliver and Report on them.
#[derive(Clone)]
struct GatewayListener {
    name: String,
    account: String,
    secret: SecretString,
    node_id: u32,
    login_timeout: Duration,
    idle_timeout: Duration,
    events: mpsc::Sender<ClientEvent>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl GatewayListener {
    async fn run(self, listener: TcpListener) {
        let local = listener.local_addr().ok();
        tracing::info!(link = %self.name, ?local, "listening for the SGIP gateway");
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let this = self.clone();
                        self.tasks.spawn(async move { this.serve(stream, peer).await });
                    }
                    Err(e) => {
                        // Typically out of file descriptors: back off instead of spinning.
                        tracing::warn!(link = %self.name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }

    /// Serves one gateway connection. Report_Resp and Deliver_Resp go out only once the
    /// application completes the item's [`crate::ack::Ack`] (within [`DEFERRED_REPLY_WAIT`]), so
    /// one lost before it is recorded stays unanswered and the gateway sends it again. Items wait
    /// for their acks side by side: one slow item holds up none of the others.
    async fn serve(self, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let mut framed = Framed::new(stream, SgipCodec);
        if !self.login(&mut framed, peer).await {
            return;
        }
        // Report_Resps waiting for their acks; `None` when an ack was dropped or timed out.
        let mut deferred: FuturesUnordered<BoxFuture<'static, Option<Pdu>>> =
            FuturesUnordered::new();
        let reason = loop {
            let frame = tokio::select! {
                _ = self.stop.cancelled() => break "link shut down",
                Some(reply) = deferred.next(), if !deferred.is_empty() => {
                    if let Some(reply) = reply {
                        if framed.send(reply).await.is_err() {
                            break "write failed";
                        }
                    }
                    continue;
                }
                f = tokio::time::timeout(self.idle_timeout, framed.next()) => f,
            };
            let pdu = match frame {
                Err(_) => break "idle",
                Ok(None) => break "gateway closed the connection",
                Ok(Some(Err(e))) => {
                    tracing::warn!(link = %self.name, %peer, error = %e, "bad frame from the gateway");
                    break "bad frame";
                }
                Ok(Some(Ok(pdu))) => pdu,
            };
            let sequence = pdu.sequence;
            let reply = match pdu.body {
                Body::Unbind => {
                    let _ = framed.send(Pdu::new(sequence, Body::UnbindResp)).await;
                    break "gateway unbound";
                }
                Body::Bind(_) => Some(Pdu::new(sequence, Body::BindResp(Resp { result: 2 }))),
                body if body.is_response() => None,
                body => match gateway_request(&self.name, sequence, body) {
                    Some((Some(mut event), reply)) => {
                        let waiter = crate::client::defer_delivery_ack(&mut event);
                        // The acknowledgement goes out only once the application has the event.
                        tokio::select! {
                            sent = self.events.send(event) => if sent.is_err() {
                                break "client dropped";
                            },
                            _ = self.stop.cancelled() => break "link shut down",
                        }
                        match waiter {
                            Some(waiter) => {
                                deferred.push(Box::pin(async move {
                                    waiter.wait(DEFERRED_REPLY_WAIT).await.then_some(reply)
                                }));
                                None
                            }
                            None => Some(reply),
                        }
                    }
                    Some((None, reply)) => Some(reply),
                    None => None,
                },
            };
            if let Some(reply) = reply {
                if framed.send(reply).await.is_err() {
                    break "write failed";
                }
            }
        };
        if reason == "idle" {
            let unbind = Pdu::new(
                SequenceNumber::at(self.node_id, &chrono::Local::now(), 1),
                Body::Unbind,
            );
            let _ = framed.send(unbind).await;
        }
        tracing::debug!(link = %self.name, %peer, reason, "gateway connection closed");
    }

    /// Reads and checks the gateway's Bind; true once it is accepted.
    async fn login(&self, framed: &mut Framed<TcpStream, SgipCodec>, peer: SocketAddr) -> bool {
        let first = tokio::select! {
            f = tokio::time::timeout(self.login_timeout, framed.next()) => f,
            _ = self.stop.cancelled() => return false,
        };
        let pdu = match first {
            Ok(Some(Ok(pdu))) => pdu,
            Ok(Some(Err(e))) => {
                tracing::warn!(link = %self.name, %peer, error = %e, "bad first frame from the gateway");
                return false;
            }
            _ => return false,
        };
        let Body::Bind(bind) = pdu.body else {
            tracing::warn!(link = %self.name, %peer, "the gateway's first PDU is not Bind");
            return false;
        };
        let result = if bind.login_type != login_type::SMG_TO_SP {
            4
        } else if bind.login_name != self.account
            || bind.login_password != self.secret.expose_secret()
        {
            1
        } else {
            0
        };
        let sent = framed
            .send(Pdu::new(pdu.sequence, Body::BindResp(Resp { result })))
            .await;
        if result != 0 {
            tracing::warn!(
                link = %self.name,
                %peer,
                login = %bind.login_name,
                login_type = bind.login_type,
                result,
                "refused the gateway's Bind"
            );
            return false;
        }
        sent.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec_tests::options;

    #[test]
    fn options_parse_with_defaults_and_refusals() {
        let parsed = SgipOptions::parse(&options(&[
            ("node-id", "3020012345"),
            ("listen", "127.0.0.1:8802"),
        ]));
        assert_eq!(
            parsed,
            Ok(SgipOptions {
                node_id: 3_020_012_345,
                corp_id: "12345".into(),
                listen: "127.0.0.1:8802".into(),
            })
        );
        for (bad, needle) in [
            (
                vec![("node-id", "1"), ("listen", "127.0.0.1:1"), ("bind", "x")],
                "unknown option \"bind\"",
            ),
            (vec![("listen", "127.0.0.1:1")], "node-id is required"),
            (vec![("node-id", "1")], "listen is required"),
            (
                vec![("node-id", "x"), ("listen", "127.0.0.1:1")],
                "node-id = \"x\"",
            ),
            (
                vec![("node-id", "1"), ("listen", "nowhere")],
                "listen = \"nowhere\"",
            ),
            (
                vec![
                    ("node-id", "1"),
                    ("listen", "127.0.0.1:1"),
                    ("corp-id", "123456"),
                ],
                "corp-id",
            ),
        ] {
            let err = SgipOptions::parse(&options(&bad)).err().unwrap_or_default();
            assert!(err.contains(needle), "{bad:?}: {err}");
        }
    }

    #[test]
    fn report_becomes_event_keyed_by_the_submit_sequence() {
        let ev = report_event(Report {
            submit_sequence: SequenceNumber::new(3_020_012_345, 1_125_070_100, 9),
            report_type: 0,
            user_number: "8613800138000".into(),
            state: 2,
            error_code: 0,
        });
        let Some(ClientEvent::Report(r)) = ev else {
            panic!("no report event: {ev:?}");
        };
        assert_eq!(r.carrier_id, "3020012345-1125070100-9");
        assert_eq!(r.dest, "13800138000");
        assert_eq!((r.stat.as_str(), r.delivered), ("UNDELIV", false));
        assert!(r.submit_time.ends_with("11250701"), "{}", r.submit_time);
        assert_eq!(r.done_time.len(), 10);
        let waiting = Report {
            submit_sequence: SequenceNumber::default(),
            report_type: 0,
            user_number: String::new(),
            state: report_state::WAITING,
            error_code: 0,
        };
        assert_eq!(report_event(waiting), None);
    }

    #[test]
    fn submit_time_picks_the_year_that_is_not_in_the_future() {
        use chrono::TimeZone;
        let now = chrono::Local
            .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .expect("valid time");
        assert_eq!(submit_time(1_231_235_959, &now), "2512312359");
        assert_eq!(submit_time(102_030_400, &now), "2601020304");
    }

    #[test]
    fn mo_parts_carry_their_place_and_the_sender_is_national() {
        let part = |n: u8, content: &[u8]| Deliver {
            user_number: "8613800138000".into(),
            sp_number: "10655012345".into(),
            tp_pid: 0,
            tp_udhi: 1,
            message_coding: 8,
            message_content: [&[5, 0, 3, 1, 2, n][..], content].concat(),
        };
        let Some(ClientEvent::Mo(p)) =
            mo_event(SequenceNumber::new(4, 5, 6), part(1, &[0x4F, 0x60]))
        else {
            panic!("an MO event");
        };
        assert_eq!(
            (
                p.src.as_str(),
                p.dest.as_str(),
                p.text.as_str(),
                p.carrier_id.as_str()
            ),
            ("13800138000", "10655012345", "你", "4-0000000005-6")
        );
        assert!(p.concat.is_some_and(|(c, _)| c.number == 1 && c.total == 2));
    }
}
