//! An SGIP 1.2 gateway (SMG) simulator. It accepts SPs' connections (Bind LoginType 1),
//! answers every Submit with Result 0 and, like a real Unicom gateway, **connects back** to the
//! SP's own listener (Bind LoginType 2, same login name and password) to send the status Reports
//! after a delay, and MO messages (Deliver) on request. It closes SP connections that stay idle,
//! as gateways do, so clients must reconnect on demand.
//!
//! Reports that cannot be sent (the SP's listener is down or refuses the Bind, or the connection
//! drops before Report_Resp) stay queued and are retried with backoff. It records what it saw as
//! JSON lines, like the CMPP simulator; `msg_id` is the SP's Submit sequence number as
//! `node-MMDDhhmmss-counter`. It is test equipment, not a gateway implementation.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use secrecy::{ExposeSecret, SecretString};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::faults::{self, ConnFaults, Fate, Faults, SubmitFate};
use super::{now_ms, Recorder};
use crate::session::Backoff;
use crate::sgip::{
    self, login_type, report_flag, report_state, Bind, Body, Deliver, Pdu, Report, Resp,
    SequenceNumber, SgipCodec, Submit,
};
use crate::text;

/// How long a new connection may take to send its Bind, and the gateway waits for a response.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Reports and MOs sent on the gateway's connection before waiting for acknowledgements.
const BACK_WINDOW: usize = 16;
/// The gateway's connection to an SP is closed after this long without anything to send.
const BACK_IDLE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct SimAccount {
    pub login: String,
    /// Redacted in `Debug`.
    pub password: SecretString,
    /// Where this SP listens for the gateway; `SimConfig::sp_addr` when `None`.
    pub sp_addr: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub listen: String,
    pub accounts: Vec<SimAccount>,
    /// The SPs' listener for accounts without their own address.
    pub sp_addr: Option<String>,
    /// Delay before sending a status report.
    pub report_delay: Duration,
    /// 0.0..=1.0: fraction reported delivered (State 0), the rest failed (State 2).
    pub delivered_ratio: f64,
    /// JSON-lines file: one line per recipient of a Submit, per report and per MO sent.
    pub record: Option<PathBuf>,
    /// The gateway's node id in its own sequence numbers.
    pub node_id: u32,
    /// An SP connection silent this long is unbound and closed (SGIP gateways use about 60 s).
    pub idle_timeout: Duration,
}

/// Misbehaviour on demand (see [`super::faults`]), on the SPs' connections (LoginType 1).
/// Submits refused by a rate, window or `throttle_at` fault are answered with Result
/// [`RESULT_FLOW_CONTROL`]. A stalled connection answers nothing more, but Reports still travel
/// on the gateway's own connection to the SP.
pub use super::faults::SimFaults;

/// Submit_Resp Result for flow control. SGIP 1.2 itself lists only 11 "node busy"; 88 is the
/// flow-control code some implementations answer for exceeding the agreed rate (*unconfirmed*
/// by the public specification), and [`sgip::result_meaning`] reads it as retryable.
pub const RESULT_FLOW_CONTROL: u8 = 88;

/// A mobile-originated message for the simulator to deliver to an SP.
#[derive(Debug, Clone)]
pub struct SimMo {
    pub account: String,
    /// The subscriber sending it.
    pub from: String,
    /// The SP number it is sent to.
    pub to: String,
    pub text: String,
}

/// Binds `config.listen` and serves until `shutdown` completes.
pub async fn run(
    config: SimConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(&config.listen).await?;
    run_on(listener, config, SimFaults::default(), shutdown).await
}

/// Serves on an already bound listener (so tests can bind port 0 first); `config.listen` is
/// ignored.
pub async fn run_on(
    listener: TcpListener,
    config: SimConfig,
    faults: SimFaults,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let (_keep, mo) = mpsc::channel(1);
    run_with_mo(listener, config, faults, mo, shutdown).await
}

/// Like [`run_on`], also delivering the MO messages received on `mo`.
pub async fn run_with_mo(
    listener: TcpListener,
    config: SimConfig,
    faults: SimFaults,
    mut mo: mpsc::Receiver<SimMo>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    for account in &config.accounts {
        if account.sp_addr.is_none() && config.sp_addr.is_none() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "account {:?} has no SP address to send reports to (set --sp-addr)",
                    account.login
                ),
            ));
        }
    }
    let recorder = match &config.record {
        Some(path) => Some(Recorder::open(path)?),
        None => None,
    };
    let local = listener.local_addr()?;
    tracing::info!(%local, "SGIP simulator listening");
    let shared = Arc::new(Shared {
        config,
        faults: Faults::new(faults),
        recorder,
        sequence: AtomicU32::new(1),
        back: Mutex::new(HashMap::new()),
        cancel: CancellationToken::new(),
        tasks: TaskTracker::new(),
    });
    tokio::pin!(shutdown);
    let mut mo_open = true;
    // Injected MOs (`SimFaults::mo_every`) go to every account's SP, like those sent on `mo`.
    let injector = super::mo::MoInjector::default();
    let (mo_every, mut mo_tick) = super::mo::ticker(shared.faults.settings());
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let shared2 = shared.clone();
                    shared.tasks.spawn(async move { serve_sp(shared2, stream, peer).await });
                }
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "simulator accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            m = mo.recv(), if mo_open => match m {
                Some(m) => shared.send_mo(m),
                None => mo_open = false,
            },
            _ = mo_tick.tick(), if mo_every.is_some() => {
                for account in &shared.config.accounts {
                    let next = injector.next(shared.faults.settings(), &account.login);
                    shared.send_mo(SimMo {
                        account: account.login.clone(),
                        from: next.src,
                        to: next.dest,
                        text: next.text,
                    });
                }
            }
        }
    }
    tracing::info!(%local, "SGIP simulator shutting down");
    shared.cancel.cancel();
    shared.tasks.close();
    shared.tasks.wait().await;
    Ok(())
}

/// Something the gateway sends on its own connection to an SP.
#[derive(Debug, Clone)]
enum Outgoing {
    Report(Report),
    Mo(Deliver),
}

struct Shared {
    config: SimConfig,
    faults: Faults,
    recorder: Option<Recorder>,
    sequence: AtomicU32,
    /// Per account, the queue of the task that owns the gateway's connection to that SP.
    back: Mutex<HashMap<String, mpsc::UnboundedSender<Outgoing>>>,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl Shared {
    fn account(&self, login: &str) -> Option<&SimAccount> {
        self.config.accounts.iter().find(|a| a.login == login)
    }

    fn record(&self, value: serde_json::Value) {
        if let Some(r) = &self.recorder {
            r.record(&value);
        }
    }

    fn next_sequence(&self) -> SequenceNumber {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        SequenceNumber::at(self.config.node_id, &chrono::Local::now(), n)
    }

    /// Queues `item` for the account's connection task, starting that task if needed.
    fn send_back(self: &Arc<Self>, login: &str, item: Outgoing) {
        let Some(account) = self.account(login).cloned() else {
            tracing::warn!(account = %login, "simulator: no such account");
            return;
        };
        let Ok(mut back) = self.back.lock() else {
            return;
        };
        let tx = back.entry(login.to_string()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let shared = self.clone();
            self.tasks
                .spawn(async move { shared.back_connection(account, rx).await });
            tx
        });
        // The task lives as long as the simulator: its receiver outlives every send.
        let _ = tx.send(item);
    }

    fn send_mo(self: &Arc<Self>, mo: SimMo) {
        let segments = text::split_text(&mo.text);
        for segment in segments {
            self.send_back(
                &mo.account,
                Outgoing::Mo(Deliver {
                    user_number: sgip::user_number(&mo.from),
                    sp_number: mo.to.clone(),
                    tp_pid: 0,
                    tp_udhi: u8::from(segment.udhi),
                    message_coding: segment.data_coding,
                    message_content: segment.payload,
                }),
            );
        }
    }

    fn schedule_report(self: &Arc<Self>, login: String, report: Report) {
        let shared = self.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(shared.config.report_delay) => {}
                _ = shared.cancel.cancelled() => return,
            }
            shared.send_back(&login, Outgoing::Report(report));
        });
    }

    /// Owns the gateway's connection to one SP: opens it when there is something to send,
    /// keeps what is unacknowledged for the next connection, closes it when idle.
    async fn back_connection(
        self: Arc<Self>,
        account: SimAccount,
        mut rx: mpsc::UnboundedReceiver<Outgoing>,
    ) {
        let Some(addr) = account
            .sp_addr
            .clone()
            .or_else(|| self.config.sp_addr.clone())
        else {
            return;
        };
        let mut queue: VecDeque<Outgoing> = VecDeque::new();
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        loop {
            if queue.is_empty() {
                tokio::select! {
                    item = rx.recv() => match item {
                        Some(item) => queue.push_back(item),
                        None => return,
                    },
                    _ = self.cancel.cancelled() => return,
                }
            }
            let framed = tokio::select! {
                f = self.bind_to_sp(&account, &addr) => f,
                _ = self.cancel.cancelled() => return,
            };
            match framed {
                Ok(framed) => {
                    backoff.reset();
                    let reason = self.serve_back(framed, &mut queue, &mut rx).await;
                    tracing::debug!(account = %account.login, reason, "simulator: connection to the SP closed");
                }
                Err(reason) => {
                    tracing::warn!(account = %account.login, %addr, %reason, "simulator: cannot reach the SP");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                        _ = self.cancel.cancelled() => return,
                    }
                }
            }
        }
    }

    async fn bind_to_sp(
        &self,
        account: &SimAccount,
        addr: &str,
    ) -> Result<Framed<TcpStream, SgipCodec>, String> {
        let stream = tokio::time::timeout(RESPONSE_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect failed: {e}"))?;
        let _ = stream.set_nodelay(true);
        let mut framed = Framed::new(stream, SgipCodec);
        let bind = Bind {
            login_type: login_type::SMG_TO_SP,
            login_name: account.login.clone(),
            login_password: account.password.expose_secret().to_string(),
        };
        framed
            .send(Pdu::new(self.next_sequence(), Body::Bind(bind)))
            .await
            .map_err(|e| format!("sending Bind failed: {e}"))?;
        match tokio::time::timeout(RESPONSE_TIMEOUT, framed.next()).await {
            Ok(Some(Ok(Pdu {
                body: Body::BindResp(Resp { result: 0 }),
                ..
            }))) => Ok(framed),
            Ok(Some(Ok(Pdu {
                body: Body::BindResp(Resp { result }),
                ..
            }))) => Err(format!("the SP refused the Bind: Result {result}")),
            Ok(Some(Ok(other))) => Err(format!("unexpected answer to Bind: {other:?}")),
            Ok(Some(Err(e))) => Err(format!("bad answer to Bind: {e}")),
            Ok(None) => Err("the SP closed the connection during Bind".into()),
            Err(_) => Err("no Bind_Resp in time".into()),
        }
    }

    /// Sends the queue with a window; returns when idle or broken. Whatever was sent but not
    /// acknowledged goes back to the front of the queue.
    async fn serve_back(
        &self,
        mut framed: Framed<TcpStream, SgipCodec>,
        queue: &mut VecDeque<Outgoing>,
        rx: &mut mpsc::UnboundedReceiver<Outgoing>,
    ) -> &'static str {
        let mut unacked: Vec<(SequenceNumber, Outgoing)> = Vec::new();
        let mut rx_open = true;
        let reason = loop {
            while unacked.len() < BACK_WINDOW {
                let Some(item) = queue.pop_front() else {
                    break;
                };
                let sequence = self.next_sequence();
                let body = match &item {
                    Outgoing::Report(r) => {
                        self.record(json!({
                            "kind": "report",
                            "msg_id": r.submit_sequence.to_string(),
                            "dest": sgip::national_number(&r.user_number),
                            "stat": sgip::report_stat(r.state, r.error_code),
                            "at_ms": now_ms(),
                        }));
                        Body::Report(r.clone())
                    }
                    Outgoing::Mo(d) => Body::Deliver(Box::new(d.clone())),
                };
                if framed.send(Pdu::new(sequence, body)).await.is_err() {
                    queue.push_front(item);
                    break;
                }
                unacked.push((sequence, item));
            }
            let wait = if unacked.is_empty() {
                BACK_IDLE
            } else {
                RESPONSE_TIMEOUT
            };
            tokio::select! {
                _ = self.cancel.cancelled() => break "simulator shutdown",
                item = rx.recv(), if rx_open => match item {
                    Some(item) => queue.push_back(item),
                    None => rx_open = false,
                },
                frame = tokio::time::timeout(wait, framed.next()) => match frame {
                    Err(_) if unacked.is_empty() => {
                        let _ = framed.send(Pdu::new(self.next_sequence(), Body::Unbind)).await;
                        let _ = tokio::time::timeout(RESPONSE_TIMEOUT, framed.next()).await;
                        break "idle";
                    }
                    Err(_) => break "no response in time",
                    Ok(None) => break "the SP closed the connection",
                    Ok(Some(Err(_))) => break "bad frame",
                    Ok(Some(Ok(pdu))) => match pdu.body {
                        Body::ReportResp(_) | Body::DeliverResp(_) => {
                            unacked.retain(|(s, _)| *s != pdu.sequence);
                        }
                        Body::Unbind => {
                            let _ = framed.send(Pdu::new(pdu.sequence, Body::UnbindResp)).await;
                            break "the SP unbound";
                        }
                        _ => {}
                    },
                },
            }
        };
        for (_, item) in unacked.into_iter().rev() {
            queue.push_front(item);
        }
        reason
    }
}

/// Serves one SP connection (LoginType 1): Submit in, Submit_Resp out.
async fn serve_sp(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, SgipCodec);
    let Some(login) = login(&shared, &mut framed, peer).await else {
        return;
    };
    tracing::info!(%peer, account = %login, "simulator: SP bound");
    let (tx, mut rx) = mpsc::unbounded_channel::<Pdu>();
    let mut conn = ConnFaults::default();
    let reason = loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => break "simulator shutdown",
            Some(pdu) = rx.recv(), if !conn.stalled() => {
                conn.release();
                if framed.send(pdu).await.is_err() {
                    break "write failed";
                }
            }
            frame = tokio::time::timeout(shared.config.idle_timeout, framed.next()) => {
                let pdu = match frame {
                    Err(_) if conn.stalled() => continue,
                    Err(_) => {
                        // As a gateway does with an idle SP: unbind and close.
                        let _ = framed.send(Pdu::new(shared.next_sequence(), Body::Unbind)).await;
                        let _ = tokio::time::timeout(Duration::from_secs(1), framed.next()).await;
                        break "idle";
                    }
                    Ok(None) => break "SP closed the connection",
                    Ok(Some(Err(e))) => {
                        tracing::warn!(%peer, error = %e, "simulator: bad frame");
                        break "bad frame";
                    }
                    Ok(Some(Ok(pdu))) => pdu,
                };
                match shared.faults.on_pdu(&mut conn) {
                    Fate::Serve => {}
                    Fate::Drop => {
                        tracing::warn!(%peer, "simulator: dropping connection (fault)");
                        break "fault injected: drop";
                    }
                    Fate::Stall => continue,
                    Fate::Malformed => {
                        let valid = Pdu::new(pdu.sequence, Body::SubmitResp(Resp { result: 0 }));
                        if faults::send_malformed(&shared.faults, &mut framed, valid, sgip::HEADER_LEN).await.is_err() {
                            break "write failed";
                        }
                        continue;
                    }
                }
                let reply = match pdu.body {
                    Body::Submit(submit) => match shared.faults.on_submit(&login, &conn) {
                        SubmitFate::Drop => {
                            tracing::warn!(%peer, "simulator: dropping connection at a submit (fault)");
                            break "fault injected";
                        }
                        SubmitFate::Throttle(why) => {
                            for user in &submit.user_numbers {
                                shared.record(faults::throttled_record(
                                    &login,
                                    sgip::national_number(user),
                                    why,
                                    u32::from(RESULT_FLOW_CONTROL),
                                ));
                            }
                            Some(Pdu::new(pdu.sequence, Body::SubmitResp(Resp { result: RESULT_FLOW_CONTROL })))
                        }
                        SubmitFate::Accept => {
                            let resp = accept_submit(&shared, &login, pdu.sequence, &submit);
                            let tx = tx.clone();
                            shared.faults.answer_submit(&mut conn, &shared.tasks, &shared.cancel, resp, move |resp| {
                                let _ = tx.send(resp);
                            })
                        }
                    },
                    Body::Unbind => {
                        let _ = framed.send(Pdu::new(pdu.sequence, Body::UnbindResp)).await;
                        break "SP unbound";
                    }
                    Body::Bind(_) => Some(Pdu::new(pdu.sequence, Body::BindResp(Resp { result: 2 }))),
                    other => {
                        tracing::debug!(%peer, command = other.command_id(), "simulator: ignoring");
                        None
                    }
                };
                if let Some(reply) = reply {
                    if framed.send(reply).await.is_err() {
                        break "write failed";
                    }
                }
            }
        }
    };
    tracing::info!(%peer, account = %login, reason, "simulator: SP connection closed");
}

/// Reads and checks the Bind; returns the login once bound.
async fn login(
    shared: &Shared,
    framed: &mut Framed<TcpStream, SgipCodec>,
    peer: SocketAddr,
) -> Option<String> {
    let first = tokio::select! {
        f = tokio::time::timeout(RESPONSE_TIMEOUT, framed.next()) => f,
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
    let Body::Bind(bind) = pdu.body else {
        tracing::warn!(%peer, "simulator: first PDU is not Bind");
        return None;
    };
    let result = match shared.account(&bind.login_name) {
        _ if bind.login_type != login_type::SP_TO_SMG => 4,
        Some(a) if a.password.expose_secret() == bind.login_password => 0,
        _ => 1,
    };
    let sent = framed
        .send(Pdu::new(pdu.sequence, Body::BindResp(Resp { result })))
        .await;
    if result != 0 {
        tracing::warn!(%peer, login = %bind.login_name, result, "simulator: Bind refused");
        return None;
    }
    sent.ok().map(|()| bind.login_name)
}

/// Records the submit, schedules its reports and builds the Submit_Resp.
fn accept_submit(
    shared: &Arc<Shared>,
    login: &str,
    sequence: SequenceNumber,
    submit: &Submit,
) -> Pdu {
    let (concat, text) = text::decode_payload(
        submit.message_coding,
        submit.tp_udhi != 0,
        &submit.message_content,
    );
    let (pk_total, pk_number) = concat.map(|c| (c.total, c.number)).unwrap_or((1, 1));
    for user in &submit.user_numbers {
        let dest = sgip::national_number(user);
        shared.record(json!({
            "kind": "submit",
            "account": login,
            "msg_id": sequence.to_string(),
            "dest": dest,
            "text": text,
            "pk_total": pk_total,
            "pk_number": pk_number,
            "at_ms": now_ms(),
        }));
        let delivered = rand::thread_rng().gen::<f64>() < shared.config.delivered_ratio;
        let wanted = match submit.report_flag {
            report_flag::ALWAYS => true,
            report_flag::ON_FAILURE => !delivered,
            _ => false,
        };
        if wanted {
            let (state, error_code) = if delivered {
                (report_state::DELIVERED, 0)
            } else {
                (report_state::FAILED, 0)
            };
            let report = Report {
                submit_sequence: sequence,
                report_type: 0,
                user_number: user.clone(),
                state,
                error_code,
            };
            shared.schedule_report(login.to_string(), report);
        }
    }
    Pdu::new(sequence, Body::SubmitResp(Resp { result: 0 }))
}
