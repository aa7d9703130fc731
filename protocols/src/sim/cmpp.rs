//! A CMPP gateway (ISMG) simulator: it authenticates SPs, answers every SUBMIT with a fresh
//! Msg_Id and, after a delay, sends the status report as a DELIVER on a connection of the same
//! account. Reports that find no open connection, or that were sent on a connection which then
//! closed without a DELIVER_RESP, wait until a connection of that account logs in again.
//!
//! It speaks CMPP 3.0 and 2.0: each connection is answered in the version its CONNECT asked for,
//! unless [`SimConfig::version`] restricts the simulator to one.
//!
//! [`SimFaults`] makes it behave like a strict or broken gateway: a rate and a window per account
//! or connection (answered with Result = 8, flow control), connections dropped, stalled or fed
//! malformed PDUs after N PDUs, and mobile-originated messages injected periodically — a long one
//! in concatenated parts, optionally spread over the account's connections. An MO part, like a
//! report, is sent again on another connection of the account when the one it went out on closes
//! before its DELIVER_RESP (a real gateway's resend after a lost acknowledgement). Plain [`run`]
//! behaves.

use std::collections::HashMap;
use std::net::SocketAddr;

use secrecy::{ExposeSecret, SecretString};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::faults::{ConnFaults, Fate, Faults, SubmitFate};
use super::mo::{self, MoInjector};
use super::router::{yymmddhhmm, ConnMsg, ConnTx, ReportRouter};
use super::{now_ms, Recorder};
use crate::cmpp::{
    auth, command, Body, CmppCodec, ConnectResp, Deliver, DeliverContent, MsgIdGenerator, Pdu,
    StatusReport, Submit, SubmitResp, Version, VERSION_3_0,
};
use crate::text;

/// How long a new connection may take to send its CONNECT.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub listen: String,
    /// (account, secret); the secret is redacted in `Debug`.
    pub accounts: Vec<(String, SecretString)>,
    /// Delay before sending a status report.
    pub report_delay: Duration,
    /// 0.0..=1.0: fraction reported DELIVRD, the rest UNDELIV.
    pub delivered_ratio: f64,
    /// JSON-lines file: one line per SUBMIT received (per destination) and per report sent.
    pub record: Option<PathBuf>,
    pub gateway_id: u32,
    /// `Some(2)` or `Some(3)` accepts only that CMPP version (a CONNECT asking for another is
    /// refused: Status 4 for 3.0 on a 2.0 gateway, Status 1 for 2.0 on a 3.0 one); `None`
    /// accepts both.
    pub version: Option<u8>,
}

/// Result code of a SUBMIT_RESP refused for flow control [CMPP3 §8.4.3].
pub const RESULT_FLOW_CONTROL: u32 = 8;

/// Strictness and misbehaviour on demand: the faults every simulator shares, with Result = 8
/// (flow control) as CMPP's throttling answer and CMPP's own malformed frames.
pub use super::faults::SimFaults;

/// Binds `config.listen` and serves until `shutdown` completes.
pub async fn run(
    config: SimConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    run_with_faults(config, SimFaults::default(), shutdown).await
}

/// [`run`] with strictness or faults.
pub async fn run_with_faults(
    config: SimConfig,
    faults: SimFaults,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(&config.listen).await?;
    run_on(listener, config, faults, shutdown).await
}

/// Serves on an already bound listener (so tests can bind port 0 and learn the port first);
/// `config.listen` is ignored.
pub async fn run_on(
    listener: TcpListener,
    config: SimConfig,
    faults: SimFaults,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let only = match config.version {
        None => None,
        Some(2) => Some(Version::V2),
        Some(3) => Some(Version::V3),
        Some(other) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("simulator version {other}: the CMPP version must be 2 or 3"),
            ))
        }
    };
    let recorder = match &config.record {
        Some(path) => Some(Recorder::open(path)?),
        None => None,
    };
    let local = listener.local_addr()?;
    tracing::info!(%local, "CMPP simulator listening");
    let shared = Arc::new(Shared {
        msg_ids: MsgIdGenerator::new(config.gateway_id),
        only,
        config,
        faults: Faults::new(faults),
        recorder,
        reports: ReportRouter::default(),
        malformed_sent: AtomicU64::new(0),
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

struct Shared {
    config: SimConfig,
    /// The one version accepted, if the configuration restricts it.
    only: Option<Version>,
    faults: Faults,
    malformed_sent: AtomicU64,
    mo: MoInjector,
    recorder: Option<Recorder>,
    msg_ids: MsgIdGenerator,
    reports: ReportRouter<Outgoing, Pdu>,
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
            .map(|(_, s)| s.expose_secret())
    }

    fn record(&self, value: serde_json::Value) {
        if let Some(r) = &self.recorder {
            r.record(&value);
        }
    }

    /// Registers a logged-in connection and hands it the reports queued for its account.
    fn attach(&self, account: &str, id: u64, tx: ConnTx<Outgoing, Pdu>) {
        let open = self.reports.attach(account, id, tx);
        // How many connections the account has at once: a test checks that Herald never opens
        // more than the link allows.
        self.record(json!({
            "kind": "attach",
            "account": account,
            "connections": open,
            "at_ms": now_ms(),
        }));
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
            shared
                .reports
                .dispatch(&account, Some(conn), Outgoing::Report(report));
        });
    }
}

async fn serve_conn(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, CmppCodec::default());
    let Some(account) = login(&shared, &mut framed, peer).await else {
        return;
    };
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel();
    shared.attach(&account, id, tx.clone());
    let version = framed.codec().version();
    tracing::info!(%peer, %account, conn = id, %version, "simulator: SP logged in");

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
                match shared.faults.on_pdu(&mut conn) {
                    Fate::Serve => {}
                    Fate::Drop => {
                        tracing::warn!(%peer, "simulator: dropping connection (fault)");
                        break "fault injected: drop";
                    }
                    Fate::Stall => continue,
                    Fate::Malformed => {
                        let bytes = shared.malformed(pdu.sequence_id);
                        tracing::warn!(%peer, "simulator: answering with a malformed PDU (fault)");
                        let io = framed.get_mut();
                        if io.write_all(&bytes).await.is_err() || io.flush().await.is_err() {
                            break "write failed";
                        }
                        continue;
                    }
                }
                let seq = pdu.sequence_id;
                let reply = match pdu.body {
                    Body::Submit(submit) => {
                        if !submit.src_id.is_empty() {
                            sp_number.clone_from(&submit.src_id);
                        }
                        if let Some(code) = shared.faults.refusal(&submit.dest_terminal_ids) {
                            shared.record(json!({
                                "kind": "refused",
                                "account": account,
                                "dest": submit.dest_terminal_ids.first().cloned().unwrap_or_default(),
                                "result": code,
                                "seq": seq,
                                "at_ms": now_ms(),
                            }));
                            Some(Pdu::new(seq, Body::SubmitResp(SubmitResp { msg_id: 0, result: code })))
                        } else {
                            match shared.faults.on_submit(&account, &conn) {
                                SubmitFate::Drop => {
                                    tracing::warn!(%peer, "simulator: dropping connection at a submit (fault)");
                                    break "fault injected";
                                }
                                SubmitFate::Throttle(why) => Some(throttle(&shared, &account, seq, &submit, why)),
                                SubmitFate::Accept => {
                                    let resp = accept_submit(&shared, &account, id, seq, &submit);
                                    let tx = tx.clone();
                                    shared.faults.answer_submit(&mut conn, &shared.tasks, &shared.cancel, resp, move |resp| {
                                        let _ = tx.send(ConnMsg::Send(resp));
                                    })
                                }
                            }
                        }
                    }
                    Body::DeliverResp(_) => {
                        if let Some(Outgoing::Mo(part)) = unacked.remove(&seq) {
                            shared.record(mo::acked_record(&part.msg_id.to_string()));
                        }
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
                                    "seq": sequence,
                                    "at_ms": now_ms(),
                                }));
                                report_pdu(sequence, report)
                            }
                            Outgoing::Mo(part) => {
                                shared.record(mo::part_record(&account, id, &part.msg_id.to_string(), sequence));
                                Pdu::new(sequence, Body::Deliver(Box::new(part.clone())))
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
                shared.inject_mo(&account, id, &sp_number);
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

impl Shared {
    /// The next malformed frame, echoing `sequence`: each kind breaks a different check of a
    /// careful decoder.
    fn malformed(&self, sequence: u32) -> Vec<u8> {
        let kind = self.malformed_sent.fetch_add(1, Ordering::Relaxed) % 3;
        let (length, command_id, body): (u32, u32, &[u8]) = match kind {
            // A SUBMIT_RESP whose body fits neither version (9 or 12 bytes).
            0 => (12 + 5, command::SUBMIT_RESP, &[0, 0, 0, 0, 1]),
            // A Total_Length no CMPP PDU can have.
            1 => (0x7FFF_FFFF, command::SUBMIT_RESP, &[]),
            // A command the protocol does not define.
            _ => (12 + 4, 0x0000_00FE, &[0xDE, 0xAD, 0xBE, 0xEF]),
        };
        let mut bytes = Vec::with_capacity(12 + body.len());
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(&command_id.to_be_bytes());
        bytes.extend_from_slice(&sequence.to_be_bytes());
        bytes.extend_from_slice(body);
        bytes
    }

    /// Injects one mobile-originated message, its turn coming on connection `conn` (see
    /// [`mo::inject`]): one DELIVER per part of a long text.
    fn inject_mo(&self, account: &str, conn: u64, sp_number: &str) {
        mo::inject(
            &self.mo,
            self.faults.settings(),
            &self.reports,
            |line| self.record(line),
            account,
            conn,
            sp_number,
            |mo| {
                text::split_text(&mo.text)
                    .into_iter()
                    .map(|segment| {
                        let part = Deliver {
                            msg_id: rand::random(),
                            dest_id: mo.dest.clone(),
                            service_id: String::new(),
                            tp_pid: 0,
                            tp_udhi: u8::from(segment.udhi),
                            msg_fmt: segment.data_coding,
                            src_terminal_id: mo.src.clone(),
                            src_terminal_type: 0,
                            content: DeliverContent::Message(segment.payload),
                            link_id: String::new(),
                        };
                        (part.msg_id.to_string(), Outgoing::Mo(part))
                    })
                    .collect()
            },
        );
    }
}

/// What the simulator sends on its own initiative, each kept until its DELIVER_RESP and sent
/// again on another connection if its connection closes first.
#[derive(Debug, Clone)]
enum Outgoing {
    Report(Report),
    /// One DELIVER of a mobile-originated message (a whole one, or one part).
    Mo(Deliver),
}

/// Answers a SUBMIT with Result = 8 and records why.
fn throttle(shared: &Shared, account: &str, sequence: u32, submit: &Submit, why: &str) -> Pdu {
    for dest in &submit.dest_terminal_ids {
        shared.record(super::faults::throttled_record(
            account,
            dest,
            why,
            RESULT_FLOW_CONTROL,
        ));
    }
    Pdu::new(
        sequence,
        Body::SubmitResp(SubmitResp {
            msg_id: 0,
            result: RESULT_FLOW_CONTROL,
        }),
    )
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
    let asked = Version::from_wire(connect.version);
    // Answer in the layouts the SP asked for, so it can read even a refusal.
    let version = asked.or(shared.only).unwrap_or_default();
    framed.codec_mut().set_version(version);
    let status = match secret {
        _ if asked.is_none() && connect.version > VERSION_3_0 => 4,
        _ if asked.is_none() => 1,
        // A 3.0 SP at a 2.0-only gateway asks for too high a version; a 2.0 SP at a 3.0-only
        // gateway has no better code than a structure error.
        _ if shared.only.is_some_and(|only| only != version) => {
            if version == Version::V3 {
                4
            } else {
                1
            }
        }
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
        version: version.wire(),
    };
    if framed
        .send(Pdu::new(pdu.sequence_id, Body::ConnectResp(resp)))
        .await
        .is_err()
    {
        return None;
    }
    shared.record(json!({
        "kind": "login",
        "account": connect.source_addr,
        "version": version.to_string(),
        "version_byte": connect.version,
        "status": status,
        "at_ms": now_ms(),
    }));
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
            "seq": sequence,
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
