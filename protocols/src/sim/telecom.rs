//! The gateway simulator behind [`super::smgp`] and [`super::cngp`]: accept SPs, check their
//! Login, answer every Submit with fresh 10-byte MsgIDs and, after a delay, send each status
//! report as a Deliver (IsReport = 1) on a connection of the same account. Reports that find no
//! open connection, or were sent on a connection that then closed without a Deliver_Resp, wait for
//! the account's next login.
//!
//! The two protocols differ only in PDU layout, so each supplies a [`GatewayWire`] that turns its
//! PDUs into the few facts the simulator acts on and builds its answers; everything else (login
//! policy, report scheduling, JSON-lines records) is here once. [`SimFaults`] (shared with the
//! SMPP and SGIP simulators, see [`super::faults`]) makes it strict or broken on demand. Test
//! equipment, not a gateway.

use std::collections::HashMap;
use std::fmt::Debug;
use std::net::SocketAddr;

use secrecy::{ExposeSecret, SecretString};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, Encoder, Framed};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::faults::{self, ConnFaults, Fate, Faults, SubmitFate};
use super::mo::{self, MoInjector};
use super::router::{yymmddhhmm, ConnMsg, ReportRouter};
use super::{now_ms, Recorder};
use crate::telecom::{auth, CodecError, MsgId10, MsgId10Generator};
use crate::text;

/// How long a new connection may take to send its Login.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub listen: String,
    /// (ClientID, shared secret); the secret is redacted in `Debug`.
    pub accounts: Vec<(String, SecretString)>,
    /// Delay before sending a status report.
    pub report_delay: Duration,
    /// 0.0..=1.0: fraction reported DELIVRD, the rest UNDELIV.
    pub delivered_ratio: f64,
    /// JSON-lines file: one line per Submit received (per destination) and per report sent.
    pub record: Option<PathBuf>,
    /// The gateway code in minted MsgIDs (six decimal digits).
    pub gateway_id: u32,
}

pub use super::faults::SimFaults;

/// What the simulator needs from one inbound PDU.
pub enum SimInbound {
    Login {
        client_id: String,
        authenticator: [u8; 16],
        timestamp: u32,
        version: u8,
    },
    Submit(SimSubmit),
    DeliverResp,
    ActiveTest,
    Exit,
    /// Responses to the simulator's own requests, and anything it does not serve.
    Ignore,
}

pub struct SimSubmit {
    pub src_term_id: String,
    pub dest_term_ids: Vec<String>,
    pub need_report: bool,
    pub msg_format: u8,
    pub udhi: bool,
    pub content: Vec<u8>,
    pub pk_total: u8,
    pub pk_number: u8,
}

/// A report due to an SP.
#[derive(Debug, Clone)]
pub struct SimReport {
    pub msg_id: MsgId10,
    /// The handset.
    pub dest: String,
    /// The SP's SrcTermID, used as the report's DestTermID.
    pub sp_number: String,
    pub stat: String,
    pub submit_time: String,
    pub done_time: String,
}

/// One part of an injected mobile-originated message (see [`super::mo`]).
#[derive(Debug, Clone)]
pub struct SimMoPart {
    /// The Deliver's MsgID.
    pub msg_id: MsgId10,
    /// The subscriber.
    pub src: String,
    /// The SP number it is sent to.
    pub dest: String,
    /// The part's coding and content (UDH included when `udhi` is set).
    pub segment: text::Segment,
}

/// What the simulator sends on its own initiative, each kept until its Deliver_Resp.
#[derive(Debug, Clone)]
enum Outgoing {
    Report(SimReport),
    Mo(SimMoPart),
}

/// The protocol-specific half of the simulator.
pub trait GatewayWire: Send + Sync + 'static {
    type Pdu: Send + Debug + 'static;
    type Codec: Decoder<Item = Self::Pdu, Error = CodecError>
        + Encoder<Self::Pdu, Error = CodecError>
        + Default
        + Send
        + Unpin
        + 'static;
    const NAME: &'static str;
    /// ClientVersion the simulator speaks; a Login asking for more is refused.
    const VERSION: u8;
    /// Login_Resp status for a bad account or authenticator, and for a version too high.
    const STATUS_AUTH: u32;
    const STATUS_VERSION: u32;
    /// Submit_Resp status for a submit refused by a rate or window fault.
    const STATUS_THROTTLED: u32;
    /// Header length (for malformed frames).
    const HEADER_LEN: usize;

    fn sequence(pdu: &Self::Pdu) -> u32;
    fn inbound(pdu: Self::Pdu) -> SimInbound;
    fn login_resp(sequence: u32, status: u32, authenticator_server: [u8; 16]) -> Self::Pdu;
    fn submit_resp(sequence: u32, msg_id: MsgId10) -> Self::Pdu;
    /// A Submit_Resp refusing the submit with [`GatewayWire::STATUS_THROTTLED`].
    fn submit_throttled(sequence: u32) -> Self::Pdu;
    fn active_test_resp(sequence: u32) -> Self::Pdu;
    fn exit_resp(sequence: u32) -> Self::Pdu;
    /// The Deliver carrying `report`; `deliver_id` is the Deliver's own MsgID.
    fn report(sequence: u32, deliver_id: MsgId10, report: &SimReport) -> Self::Pdu;
    /// The Deliver carrying one part of an injected MO.
    fn mo(sequence: u32, part: &SimMoPart) -> Self::Pdu;
}

/// Serves on an already bound listener until `shutdown` completes (`config.listen` is ignored).
pub async fn run_on<W: GatewayWire>(
    listener: TcpListener,
    config: SimConfig,
    faults: SimFaults,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let recorder = match &config.record {
        Some(path) => Some(Recorder::open(path)?),
        None => None,
    };
    let local = listener.local_addr()?;
    tracing::info!(%local, protocol = W::NAME, "simulator listening");
    let shared = Arc::new(Shared::<W> {
        msg_ids: MsgId10Generator::new(config.gateway_id),
        config,
        faults: Faults::new(faults),
        recorder,
        reports: ReportRouter::default(),
        mo: MoInjector::default(),
        next_conn: AtomicU64::new(1),
        cancel: CancellationToken::new(),
        tasks: TaskTracker::new(),
    });
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let shared2 = shared.clone();
                    shared.tasks.spawn(async move { serve_conn::<W>(shared2, stream, peer).await });
                }
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "simulator accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    tracing::info!(%local, protocol = W::NAME, "simulator shutting down");
    shared.cancel.cancel();
    shared.tasks.close();
    shared.tasks.wait().await;
    Ok(())
}

struct Shared<W: GatewayWire> {
    config: SimConfig,
    faults: Faults,
    recorder: Option<Recorder>,
    msg_ids: MsgId10Generator,
    reports: ReportRouter<Outgoing, W::Pdu>,
    mo: MoInjector,
    next_conn: AtomicU64,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl<W: GatewayWire> Shared<W> {
    fn secret_of(&self, account: &str) -> Option<&str> {
        self.config
            .accounts
            .iter()
            .find(|(a, _)| a == account)
            .map(|(_, s)| s.expose_secret())
    }

    fn record(&self, value: serde_json::Value) {
        if let Some(r) = &self.recorder {
            r.record(&value);
        }
    }

    fn schedule_report(self: &Arc<Self>, account: String, conn: u64, report: SimReport) {
        let shared = self.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(shared.config.report_delay) => {}
                _ = shared.cancel.cancelled() => return,
            }
            let report = SimReport {
                done_time: yymmddhhmm(),
                ..report
            };
            shared
                .reports
                .dispatch(&account, Some(conn), Outgoing::Report(report));
        });
    }
}

async fn serve_conn<W: GatewayWire>(shared: Arc<Shared<W>>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, W::Codec::default());
    let Some(account) = login::<W>(&shared, &mut framed, peer).await else {
        return;
    };
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel();
    shared.reports.attach(&account, id, tx.clone());
    tracing::info!(%peer, %account, conn = id, protocol = W::NAME, "simulator: SP logged in");

    let mut sequence = 0u32;
    let mut unacked: HashMap<u32, Outgoing> = HashMap::new();
    let mut conn = ConnFaults::default();
    let mut sp_number = account.clone();
    let (mo_every, mut mo_tick) = mo::ticker(shared.faults.settings());
    let reason = loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => break "simulator shutdown",
            frame = framed.next() => {
                let pdu = match frame {
                    None => break "SP closed the connection",
                    Some(Err(e)) => {
                        tracing::warn!(%peer, error = %e, "simulator: bad frame");
                        break "bad frame";
                    }
                    Some(Ok(pdu)) => pdu,
                };
                let seq = W::sequence(&pdu);
                match shared.faults.on_pdu(&mut conn) {
                    Fate::Serve => {}
                    Fate::Drop => {
                        tracing::warn!(%peer, "simulator: dropping connection (fault)");
                        break "fault injected: drop";
                    }
                    Fate::Stall => continue,
                    Fate::Malformed => {
                        let valid = W::submit_resp(seq, shared.msg_ids.next_at(&chrono::Local::now()));
                        if faults::send_malformed(&shared.faults, &mut framed, valid, W::HEADER_LEN).await.is_err() {
                            break "write failed";
                        }
                        continue;
                    }
                }
                let reply = match W::inbound(pdu) {
                    SimInbound::Submit(submit) => {
                        if !submit.src_term_id.is_empty() {
                            sp_number.clone_from(&submit.src_term_id);
                        }
                        match shared.faults.on_submit(&account, &conn) {
                            SubmitFate::Drop => {
                                tracing::warn!(%peer, "simulator: dropping connection at a submit (fault)");
                                break "fault injected";
                            }
                            SubmitFate::Throttle(why) => {
                                for dest in &submit.dest_term_ids {
                                    shared.record(faults::throttled_record(&account, dest, why, W::STATUS_THROTTLED));
                                }
                                Some(W::submit_throttled(seq))
                            }
                            SubmitFate::Accept => {
                                let msg_id = accept_submit(&shared, &account, id, &submit);
                                let resp = W::submit_resp(seq, msg_id);
                                let tx = tx.clone();
                                shared.faults.answer_submit(&mut conn, &shared.tasks, &shared.cancel, resp, move |resp| {
                                    let _ = tx.send(ConnMsg::Send(resp));
                                })
                            }
                        }
                    }
                    SimInbound::DeliverResp => {
                        if let Some(Outgoing::Mo(part)) = unacked.remove(&seq) {
                            shared.record(mo::acked_record(&part.msg_id.to_string()));
                        }
                        None
                    }
                    SimInbound::ActiveTest => Some(W::active_test_resp(seq)),
                    SimInbound::Exit => {
                        let _ = framed.send(W::exit_resp(seq)).await;
                        break "SP sent Exit";
                    }
                    SimInbound::Login { .. } | SimInbound::Ignore => None,
                };
                if let Some(reply) = reply {
                    if framed.send(reply).await.is_err() {
                        break "write failed";
                    }
                }
            }
            Some(msg) = rx.recv(), if !conn.stalled() => {
                let pdu = match msg {
                    ConnMsg::Send(pdu) => {
                        conn.release();
                        pdu
                    }
                    ConnMsg::Report(out) => {
                        sequence = sequence.wrapping_add(1).max(1);
                        let pdu = match &out {
                            Outgoing::Report(report) => {
                                shared.record(json!({
                                    "kind": "report",
                                    "msg_id": report.msg_id.to_string(),
                                    "dest": report.dest,
                                    "stat": report.stat,
                                    "at_ms": now_ms(),
                                }));
                                let deliver_id = shared.msg_ids.next_at(&chrono::Local::now());
                                W::report(sequence, deliver_id, report)
                            }
                            Outgoing::Mo(part) => {
                                shared.record(mo::part_record(&account, id, &part.msg_id.to_string(), sequence));
                                W::mo(sequence, part)
                            }
                        };
                        unacked.insert(sequence, out);
                        pdu
                    }
                };
                if framed.send(pdu).await.is_err() {
                    break "write failed";
                }
            }
            _ = mo_tick.tick(), if mo_every.is_some() && !conn.stalled() => {
                inject_mo(&shared, &account, id, &sp_number);
            }
        }
    };
    tracing::info!(%peer, %account, conn = id, reason, "simulator: connection closed");
    // Whatever this connection still owes its account goes to another connection or the queue.
    drop(tx);
    shared
        .reports
        .hand_back(&account, id, rx, unacked, shared.cancel.is_cancelled());
}

/// Injects one MO on connection `conn` (see [`mo::inject`]): one Deliver per part.
fn inject_mo<W: GatewayWire>(shared: &Shared<W>, account: &str, conn: u64, sp_number: &str) {
    mo::inject(
        &shared.mo,
        shared.faults.settings(),
        &shared.reports,
        |line| shared.record(line),
        account,
        conn,
        sp_number,
        |mo| {
            text::split_text(&mo.text)
                .into_iter()
                .map(|segment| {
                    let part = SimMoPart {
                        msg_id: shared.msg_ids.next_at(&chrono::Local::now()),
                        src: mo.src.clone(),
                        dest: mo.dest.clone(),
                        segment,
                    };
                    (part.msg_id.to_string(), Outgoing::Mo(part))
                })
                .collect()
        },
    );
}

/// Reads and checks the Login; returns the account once logged in.
async fn login<W: GatewayWire>(
    shared: &Shared<W>,
    framed: &mut Framed<TcpStream, W::Codec>,
    peer: SocketAddr,
) -> Option<String> {
    let first = tokio::select! {
        f = tokio::time::timeout(LOGIN_TIMEOUT, framed.next()) => f,
        _ = shared.cancel.cancelled() => return None,
    };
    let pdu = match first {
        Ok(Some(Ok(pdu))) => pdu,
        Ok(Some(Err(e))) => {
            tracing::warn!(%peer, error = %e, "simulator: bad first frame");
            return None;
        }
        _ => return None,
    };
    let sequence = W::sequence(&pdu);
    let SimInbound::Login {
        client_id,
        authenticator,
        timestamp,
        version,
    } = W::inbound(pdu)
    else {
        tracing::warn!(%peer, "simulator: first PDU is not Login");
        return None;
    };
    let secret = shared.secret_of(&client_id);
    let status = match secret {
        _ if version > W::VERSION => W::STATUS_VERSION,
        None => W::STATUS_AUTH,
        Some(secret) => {
            if auth::authenticator_client(&client_id, secret, timestamp) == authenticator {
                0
            } else {
                W::STATUS_AUTH
            }
        }
    };
    let server = auth::authenticator_server(status, &authenticator, secret.unwrap_or(""));
    if framed
        .send(W::login_resp(sequence, status, server))
        .await
        .is_err()
    {
        return None;
    }
    if status != 0 {
        tracing::warn!(%peer, account = %client_id, status, "simulator: login refused");
        return None;
    }
    Some(client_id)
}

/// Records the submit, schedules its reports and returns the MsgID for the Submit_Resp: one
/// MsgID per destination, the response carrying the first.
fn accept_submit<W: GatewayWire>(
    shared: &Arc<Shared<W>>,
    account: &str,
    conn: u64,
    submit: &SimSubmit,
) -> MsgId10 {
    let now = chrono::Local::now();
    let (_, text) = text::decode_payload(submit.msg_format, submit.udhi, &submit.content);
    let submit_time = yymmddhhmm();
    let mut first = None;
    for dest in &submit.dest_term_ids {
        let msg_id = shared.msg_ids.next_at(&now);
        first.get_or_insert(msg_id);
        shared.record(json!({
            "kind": "submit",
            "account": account,
            "msg_id": msg_id.to_string(),
            "dest": dest,
            "text": text,
            "pk_total": submit.pk_total,
            "pk_number": submit.pk_number,
            "at_ms": now_ms(),
        }));
        if submit.need_report {
            let delivered = rand::thread_rng().gen::<f64>() < shared.config.delivered_ratio;
            let report = SimReport {
                msg_id,
                dest: dest.clone(),
                sp_number: submit.src_term_id.clone(),
                stat: if delivered { "DELIVRD" } else { "UNDELIV" }.to_string(),
                submit_time: submit_time.clone(),
                done_time: String::new(),
            };
            shared.schedule_report(account.to_string(), conn, report);
        }
    }
    first.unwrap_or_else(|| shared.msg_ids.next_at(&now))
}

/// The receipt text of a simulated report.
pub fn receipt(report: &SimReport) -> crate::telecom::Receipt {
    let delivered = report.stat == "DELIVRD";
    crate::telecom::Receipt {
        msg_id: report.msg_id,
        sub: "001".into(),
        dlvrd: if delivered { "001" } else { "000" }.into(),
        submit_date: report.submit_time.clone(),
        done_date: report.done_time.clone(),
        stat: report.stat.clone(),
        err: if delivered { "000" } else { "001" }.into(),
        text: String::new(),
    }
}

/// RecvTime of a Deliver: YYYYMMDDhhmmss.
pub fn recv_time() -> String {
    chrono::Local::now().format("%Y%m%d%H%M%S").to_string()
}
