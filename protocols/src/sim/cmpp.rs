//! A CMPP 3.0 gateway (ISMG) simulator: it authenticates SPs, answers every SUBMIT with a fresh
//! Msg_Id and, after a delay, sends the status report as a DELIVER on a connection of the same
//! account. Reports that find no open connection, or that were sent on a connection which then
//! closed without a DELIVER_RESP, wait until a connection of that account logs in again.
//!
//! [`SimFaults`] lets tests make the simulator misbehave (drop a connection mid-flight, answer
//! slowly); plain [`run`] behaves.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
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

use super::{now_ms, Recorder};
use crate::cmpp::{
    auth, Body, CmppCodec, ConnectResp, Deliver, DeliverContent, MsgIdGenerator, Pdu, StatusReport,
    Submit, SubmitResp, VERSION_3_0,
};
use crate::text;

/// How long a new connection may take to send its CONNECT.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub listen: String,
    /// (account, secret)
    pub accounts: Vec<(String, String)>,
    /// Delay before sending a status report.
    pub report_delay: Duration,
    /// 0.0..=1.0: fraction reported DELIVRD, the rest UNDELIV.
    pub delivered_ratio: f64,
    /// JSON-lines file: one line per SUBMIT received (per destination) and per report sent.
    pub record: Option<PathBuf>,
    pub gateway_id: u32,
}

/// Misbehaviour on demand, for fault tests.
#[derive(Debug, Clone, Default)]
pub struct SimFaults {
    /// Close the connection carrying the n-th SUBMIT (1-based, counted over the simulator's
    /// life) instead of answering it.
    pub drop_at_submit: Option<u64>,
    /// Hold every SUBMIT_RESP this long.
    pub submit_resp_delay: Duration,
}

/// Binds `config.listen` and serves until `shutdown` completes.
pub async fn run(
    config: SimConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(&config.listen).await?;
    run_on(listener, config, SimFaults::default(), shutdown).await
}

/// Serves on an already bound listener (so tests can bind port 0 and learn the port first);
/// `config.listen` is ignored.
pub async fn run_on(
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
    tracing::info!(%local, "CMPP simulator listening");
    let shared = Arc::new(Shared {
        msg_ids: MsgIdGenerator::new(config.gateway_id),
        config,
        faults,
        recorder,
        state: Mutex::new(State::default()),
        submits_seen: AtomicU64::new(0),
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
                    shared.tasks.spawn(async move { serve_conn(shared2, stream, peer).await });
                }
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "simulator accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    tracing::info!(%local, "CMPP simulator shutting down");
    shared.cancel.cancel();
    shared.tasks.close();
    shared.tasks.wait().await;
    Ok(())
}

#[derive(Debug, Clone)]
struct Report {
    msg_id: u64,
    dest: String,
    /// The SP's Src_Id, used as the report's Dest_Id.
    sp_number: String,
    stat: String,
    submit_time: String,
    done_time: String,
}

enum ConnMsg {
    Report(Report),
    Send(Pdu),
}

#[derive(Default)]
struct State {
    /// Logged-in connections per account.
    conns: HashMap<String, Vec<(u64, mpsc::UnboundedSender<ConnMsg>)>>,
    /// Reports waiting for a connection of their account.
    queued: HashMap<String, VecDeque<Report>>,
}

struct Shared {
    config: SimConfig,
    faults: SimFaults,
    recorder: Option<Recorder>,
    msg_ids: MsgIdGenerator,
    state: Mutex<State>,
    submits_seen: AtomicU64,
    next_conn: AtomicU64,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl Shared {
    fn secret_of(&self, account: &str) -> Option<&str> {
        self.config
            .accounts
            .iter()
            .find(|(a, _)| a == account)
            .map(|(_, s)| s.as_str())
    }

    fn record(&self, value: serde_json::Value) {
        if let Some(r) = &self.recorder {
            r.record(&value);
        }
    }

    /// Registers a logged-in connection and hands it the reports queued for its account.
    fn attach(&self, account: &str, id: u64, tx: mpsc::UnboundedSender<ConnMsg>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if let Some(queued) = state.queued.remove(account) {
            for report in queued {
                // The receiver is alive: this connection has not even started reading.
                let _ = tx.send(ConnMsg::Report(report));
            }
        }
        state
            .conns
            .entry(account.to_string())
            .or_default()
            .push((id, tx));
    }

    fn detach(&self, account: &str, id: u64) {
        if let Ok(mut state) = self.state.lock() {
            if let Some(list) = state.conns.get_mut(account) {
                list.retain(|(c, _)| *c != id);
            }
        }
    }

    /// Sends a report to the preferred connection if it is still open, else to any connection
    /// of the account, else queues it.
    fn dispatch(&self, account: &str, preferred: Option<u64>, report: Report) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let mut msg = ConnMsg::Report(report);
        if let Some(list) = state.conns.get(account) {
            let ordered = list
                .iter()
                .filter(|(id, _)| Some(*id) == preferred)
                .chain(list.iter().filter(|(id, _)| Some(*id) != preferred));
            for (_, tx) in ordered {
                match tx.send(msg) {
                    Ok(()) => return,
                    Err(mpsc::error::SendError(back)) => msg = back,
                }
            }
        }
        if let ConnMsg::Report(report) = msg {
            state
                .queued
                .entry(account.to_string())
                .or_default()
                .push_back(report);
        }
    }

    fn schedule_report(self: &Arc<Self>, account: String, conn: u64, report: Report) {
        let shared = self.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(shared.config.report_delay) => {}
                _ = shared.cancel.cancelled() => return,
            }
            let report = Report {
                done_time: yymmddhhmm(),
                ..report
            };
            shared.dispatch(&account, Some(conn), report);
        });
    }
}

fn yymmddhhmm() -> String {
    chrono::Local::now().format("%y%m%d%H%M").to_string()
}

async fn serve_conn(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, CmppCodec);
    let Some(account) = login(&shared, &mut framed, peer).await else {
        return;
    };
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel();
    shared.attach(&account, id, tx.clone());
    tracing::info!(%peer, %account, conn = id, "simulator: SP logged in");

    let mut sequence = 0u32;
    let mut unacked: HashMap<u32, Report> = HashMap::new();
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
                let seq = pdu.sequence_id;
                let reply = match pdu.body {
                    Body::Submit(submit) => {
                        let n = shared.submits_seen.fetch_add(1, Ordering::Relaxed) + 1;
                        if shared.faults.drop_at_submit == Some(n) {
                            tracing::warn!(%peer, submit = n, "simulator: dropping connection (fault)");
                            break "fault injected";
                        }
                        let resp = accept_submit(&shared, &account, id, seq, &submit);
                        if shared.faults.submit_resp_delay.is_zero() {
                            Some(resp)
                        } else {
                            let tx = tx.clone();
                            let delay = shared.faults.submit_resp_delay;
                            let cancel = shared.cancel.clone();
                            shared.tasks.spawn(async move {
                                tokio::select! {
                                    _ = tokio::time::sleep(delay) => { let _ = tx.send(ConnMsg::Send(resp)); }
                                    _ = cancel.cancelled() => {}
                                }
                            });
                            None
                        }
                    }
                    Body::DeliverResp(_) => {
                        unacked.remove(&seq);
                        None
                    }
                    Body::ActiveTest => Some(Pdu::new(seq, Body::ActiveTestResp)),
                    Body::Terminate => {
                        let _ = framed.send(Pdu::new(seq, Body::TerminateResp)).await;
                        break "SP terminated";
                    }
                    Body::ActiveTestResp | Body::TerminateResp => None,
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
            Some(msg) = rx.recv() => {
                let pdu = match msg {
                    ConnMsg::Send(pdu) => pdu,
                    ConnMsg::Report(report) => {
                        sequence = sequence.wrapping_add(1).max(1);
                        shared.record(json!({
                            "kind": "report",
                            "msg_id": report.msg_id.to_string(),
                            "dest": report.dest,
                            "stat": report.stat,
                            "at_ms": now_ms(),
                        }));
                        let pdu = report_pdu(sequence, &report);
                        unacked.insert(sequence, report);
                        pdu
                    }
                };
                if framed.send(pdu).await.is_err() {
                    break "write failed";
                }
            }
        }
    };
    tracing::info!(%peer, %account, conn = id, reason, "simulator: connection closed");
    // Whatever this connection still owes its account goes to another connection or the queue.
    shared.detach(&account, id);
    drop(tx);
    rx.close();
    let mut leftovers: Vec<Report> = Vec::new();
    while let Ok(msg) = rx.try_recv() {
        if let ConnMsg::Report(r) = msg {
            leftovers.push(r);
        }
    }
    let mut unacked: Vec<(u32, Report)> = unacked.into_iter().collect();
    unacked.sort_by_key(|(seq, _)| *seq);
    leftovers.splice(0..0, unacked.into_iter().map(|(_, r)| r));
    if !shared.cancel.is_cancelled() {
        for report in leftovers {
            shared.dispatch(&account, None, report);
        }
    }
}

/// Reads and checks the CONNECT; returns the account once logged in.
async fn login(
    shared: &Shared,
    framed: &mut Framed<TcpStream, CmppCodec>,
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
    let Body::Connect(connect) = pdu.body else {
        tracing::warn!(%peer, "simulator: first PDU is not CONNECT");
        return None;
    };
    let secret = shared.secret_of(&connect.source_addr);
    let status = match secret {
        _ if connect.version > VERSION_3_0 => 4,
        _ if connect.version < VERSION_3_0 => 1,
        None => 2,
        Some(secret) => {
            let expected =
                auth::authenticator_source(&connect.source_addr, secret, connect.timestamp);
            if expected == connect.authenticator_source {
                0
            } else {
                3
            }
        }
    };
    let resp = ConnectResp {
        status,
        authenticator_ismg: auth::authenticator_ismg(
            status,
            &connect.authenticator_source,
            secret.unwrap_or(""),
        ),
        version: VERSION_3_0,
    };
    if framed
        .send(Pdu::new(pdu.sequence_id, Body::ConnectResp(resp)))
        .await
        .is_err()
    {
        return None;
    }
    if status != 0 {
        tracing::warn!(%peer, account = %connect.source_addr, status, "simulator: login refused");
        return None;
    }
    Some(connect.source_addr)
}

/// Records the submit, schedules its reports and builds the SUBMIT_RESP.
fn accept_submit(
    shared: &Arc<Shared>,
    account: &str,
    conn: u64,
    sequence: u32,
    submit: &Submit,
) -> Pdu {
    let count = submit.dest_terminal_ids.len().clamp(1, u16::MAX as usize) as u16;
    let first = shared.msg_ids.reserve_at(&chrono::Local::now(), count);
    let (_, text) = text::decode_payload(submit.msg_fmt, submit.tp_udhi != 0, &submit.msg_content);
    let submit_time = yymmddhhmm();
    for (i, dest) in submit.dest_terminal_ids.iter().enumerate() {
        let msg_id = first.wrapping_add(i as u64);
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
        if submit.registered_delivery == 1 {
            let delivered = rand::thread_rng().gen::<f64>() < shared.config.delivered_ratio;
            let report = Report {
                msg_id,
                dest: dest.clone(),
                sp_number: submit.src_id.clone(),
                stat: if delivered { "DELIVRD" } else { "UNDELIV" }.to_string(),
                submit_time: submit_time.clone(),
                done_time: String::new(),
            };
            shared.schedule_report(account.to_string(), conn, report);
        }
    }
    Pdu::new(
        sequence,
        Body::SubmitResp(SubmitResp {
            msg_id: first,
            result: 0,
        }),
    )
}

fn report_pdu(sequence: u32, report: &Report) -> Pdu {
    Pdu::new(
        sequence,
        Body::Deliver(Box::new(Deliver {
            msg_id: rand::random(),
            dest_id: report.sp_number.clone(),
            service_id: String::new(),
            tp_pid: 0,
            tp_udhi: 0,
            msg_fmt: 0,
            src_terminal_id: report.dest.clone(),
            src_terminal_type: 0,
            content: DeliverContent::Report(StatusReport {
                msg_id: report.msg_id,
                stat: report.stat.clone(),
                submit_time: report.submit_time.clone(),
                done_time: report.done_time.clone(),
                dest_terminal_id: report.dest.clone(),
                smsc_sequence: sequence,
            }),
            link_id: String::new(),
        })),
    )
}
