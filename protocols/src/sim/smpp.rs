//! An SMPP SMSC simulator (3.3, 3.4, 5.0): it accepts transmitter, receiver and transceiver
//! binds, answers every submit_sm (and data_sm) with a fresh message id and, after a delay, sends
//! the delivery receipt as a deliver_sm to a receiver or transceiver session of the same
//! system_id. Receipts that find no such session, or that were sent on a session which then
//! closed without a deliver_sm_resp, wait until one binds. enquire_link and unbind are answered.
//!
//! Message ids are decimal or hex ([`SimConfig::id_format`]); [`SimConfig::receipt_id_format`]
//! can make the receipt text write them differently, as some real SMSCs do (such receipts then
//! carry no receipted_message_id TLV, like the 3.3-era SMSCs that do it). Sessions bound with an
//! interface_version below 3.4 get no TLVs and may not bind as transceivers. [`SimFaults`] makes
//! it misbehave on demand. Test equipment, not an SMSC.

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
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::faults::{self, ConnFaults, Fate, Faults, SubmitFate};
use super::mo::{self, MoInjector};
use super::router::{yymmddhhmm, ConnMsg, ConnTx, ReportRouter};
use super::{now_ms, Recorder};
use crate::gsm7;
use crate::smpp::{
    esm, format_receipt, message_state, status, tag, tlv, BindKind, BindResp, Body, IdFormat, Pdu,
    ReceiptText, Sm, SmResp, SmppCodec, Tlv, VERSION_3_4, VERSION_5_0,
};
use crate::text;

/// SMPP's header: command_length, command_id, command_status, sequence_number.
const HEADER_LEN: usize = 16;
/// How long a new connection may take to bind.
const BIND_TIMEOUT: Duration = Duration::from_secs(30);
const SMSC_SYSTEM_ID: &str = "HERALDSIM";

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub listen: String,
    /// (system_id, password); the secret is redacted in `Debug`.
    pub accounts: Vec<(String, SecretString)>,
    /// Delay before sending a delivery receipt.
    pub report_delay: Duration,
    /// 0.0..=1.0: fraction reported DELIVRD, the rest UNDELIV.
    pub delivered_ratio: f64,
    /// JSON-lines file: one line per submit_sm received and per receipt sent.
    pub record: Option<PathBuf>,
    /// How submit_sm_resp writes message ids (`AsIs` means decimal).
    pub id_format: IdFormat,
    /// How the receipt text writes them; `None` = like `id_format`.
    pub receipt_id_format: Option<IdFormat>,
}

impl SimConfig {
    /// A simulator for one account on `listen`, reporting after 50 ms, decimal ids.
    pub fn new(listen: impl Into<String>, system_id: &str, password: &str) -> SimConfig {
        SimConfig {
            listen: listen.into(),
            accounts: vec![(system_id.to_string(), password.into())],
            report_delay: Duration::from_millis(50),
            delivered_ratio: 1.0,
            record: None,
            id_format: IdFormat::Decimal,
            receipt_id_format: None,
        }
    }
}

/// Misbehaviour on demand (see [`super::faults`]); submits refused by a rate, window or
/// `throttle_at` fault are answered with ESME_RTHROTTLED (0x58).
pub use super::faults::SimFaults;

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
    tracing::info!(%local, "SMPP simulator listening");
    let shared = Arc::new(Shared {
        // Ids look like a busy SMSC's, and differ between runs.
        next_id: AtomicU64::new(rand::thread_rng().gen_range(1_000_000_000..3_000_000_000)),
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
    tracing::info!(%local, "SMPP simulator shutting down");
    shared.cancel.cancel();
    shared.tasks.close();
    shared.tasks.wait().await;
    Ok(())
}

#[derive(Debug, Clone)]
struct Report {
    id: u64,
    /// The handset: the receipt's source_addr.
    dest: String,
    /// The ESME's source_addr: the receipt's destination_addr.
    esme_addr: String,
    stat: String,
    submit_date: String,
    done_date: String,
    text: String,
}

/// One part of an injected mobile-originated message (see [`super::mo`]).
#[derive(Debug, Clone)]
struct MoSm {
    /// What the simulator records it under (deliver_sm itself carries no id).
    id: u64,
    /// The subscriber: the deliver_sm's source_addr.
    src: String,
    /// The ESME's address: its destination_addr.
    dest: String,
    segment: text::Segment,
}

/// What the simulator sends on its own initiative, each kept until its deliver_sm_resp.
#[derive(Debug, Clone)]
enum Outgoing {
    Report(Report),
    Mo(MoSm),
}

struct Shared {
    config: SimConfig,
    faults: Faults,
    recorder: Option<Recorder>,
    next_id: AtomicU64,
    reports: ReportRouter<Outgoing, Pdu>,
    mo: MoInjector,
    next_conn: AtomicU64,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl Shared {
    fn password_of(&self, system_id: &str) -> Option<&str> {
        self.config
            .accounts
            .iter()
            .find(|(a, _)| a == system_id)
            .map(|(_, s)| s.expose_secret())
    }

    fn record(&self, value: serde_json::Value) {
        if let Some(r) = &self.recorder {
            r.record(&value);
        }
    }

    fn submit_id(&self, id: u64) -> String {
        match self.config.id_format {
            IdFormat::Hex => format!("{id:08X}"),
            _ => id.to_string(),
        }
    }

    fn receipt_id(&self, id: u64) -> String {
        match self.config.receipt_id_format {
            Some(IdFormat::Hex) => format!("{id:08X}"),
            Some(_) => id.to_string(),
            None => self.submit_id(id),
        }
    }

    fn schedule_report(self: &Arc<Self>, system_id: String, conn: u64, report: Report) {
        let shared = self.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(shared.config.report_delay) => {}
                _ = shared.cancel.cancelled() => return,
            }
            let report = Report {
                done_date: yymmddhhmm(),
                ..report
            };
            shared
                .reports
                .dispatch(&system_id, Some(conn), Outgoing::Report(report));
        });
    }
}

/// A bound session.
struct Session {
    system_id: String,
    kind: BindKind,
    version: u8,
}

async fn serve_conn(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, SmppCodec);
    let Some(session) = bind(&shared, &mut framed, peer).await else {
        return;
    };
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel();
    if session.kind.can_receive() {
        shared.reports.attach(&session.system_id, id, tx.clone());
    }
    tracing::info!(%peer, system_id = %session.system_id, kind = session.kind.name(), conn = id,
        "simulator: ESME bound");

    let mut sequence = 0u32;
    let mut unacked: HashMap<u32, Outgoing> = HashMap::new();
    let mut conn = ConnFaults::default();
    let mut esme_addr = session.system_id.clone();
    let (mo_every, mut mo_tick) = mo::ticker(shared.faults.settings());
    let mo_every = mo_every.filter(|_| session.kind.can_receive());
    let reason = loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => break "simulator shutdown",
            frame = framed.next() => {
                let pdu = match frame {
                    None => break "ESME closed the connection",
                    Some(Err(e)) => {
                        tracing::warn!(%peer, error = %e, "simulator: bad frame");
                        break "bad frame";
                    }
                    Some(Ok(pdu)) => pdu,
                };
                let seq = pdu.sequence_number;
                match shared.faults.on_pdu(&mut conn) {
                    Fate::Serve => {}
                    Fate::Drop => {
                        tracing::warn!(%peer, "simulator: dropping connection (fault)");
                        break "fault injected: drop";
                    }
                    Fate::Stall => continue,
                    Fate::Malformed => {
                        let valid = Pdu::new(seq, Body::SubmitSmResp(SmResp {
                            message_id: shared.submit_id(shared.next_id.fetch_add(1, Ordering::Relaxed)),
                            tlvs: vec![],
                        }));
                        if faults::send_malformed(&shared.faults, &mut framed, valid, HEADER_LEN).await.is_err() {
                            break "write failed";
                        }
                        continue;
                    }
                }
                let mut submit = |sm: &Sm, response: fn(SmResp) -> Body| {
                    on_submit(&shared, &session, id, seq, sm, &tx, &mut conn, response)
                };
                let reply = match pdu.body {
                    Body::SubmitSm(sm) => {
                        if !sm.source_addr.is_empty() {
                            esme_addr.clone_from(&sm.source_addr);
                        }
                        match submit(&sm, Body::SubmitSmResp) {
                            Some(reply) => reply,
                            None => break "fault injected",
                        }
                    }
                    Body::DataSm(d) => {
                        let sm = Sm {
                            source_addr: d.source_addr,
                            destination_addr: d.destination_addr,
                            esm_class: d.esm_class,
                            registered_delivery: d.registered_delivery,
                            data_coding: d.data_coding,
                            tlvs: d.tlvs,
                            ..Sm::default()
                        };
                        match submit(&sm, Body::DataSmResp) {
                            Some(reply) => reply,
                            None => break "fault injected",
                        }
                    }
                    Body::DeliverSmResp(_) | Body::GenericNack if pdu.command_status == 0 => {
                        if let Some(Outgoing::Mo(part)) = unacked.remove(&seq) {
                            shared.record(mo::acked_record(&part.id.to_string()));
                        }
                        None
                    }
                    Body::EnquireLink => Some(Pdu::new(seq, Body::EnquireLinkResp)),
                    Body::Unbind => {
                        let _ = framed.send(Pdu::new(seq, Body::UnbindResp)).await;
                        break "ESME unbound";
                    }
                    Body::Bind(b) => Some(Pdu::response(seq, status::ESME_RALYBND,
                        Body::BindResp(BindResp { kind: b.kind, system_id: SMSC_SYSTEM_ID.into(), tlvs: vec![] }))),
                    body if body.is_response() => {
                        // A refused deliver_sm (deliver_sm_resp or generic_nack with an error)
                        // stays unacknowledged and is sent again on the next bind.
                        tracing::debug!(%peer, command = body.command_id(), status = pdu.command_status,
                            "simulator: response");
                        None
                    }
                    other => {
                        tracing::debug!(%peer, command = other.command_id(), "simulator: unsupported");
                        Some(Pdu::response(seq, status::ESME_RINVCMDID, Body::GenericNack))
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
                        sequence = sequence.wrapping_add(1).clamp(1, 0x7FFF_FFFF);
                        let pdu = match &out {
                            Outgoing::Report(report) => {
                                shared.record(json!({
                                    "kind": "report",
                                    "msg_id": shared.submit_id(report.id),
                                    "dest": report.dest,
                                    "stat": report.stat,
                                    "at_ms": now_ms(),
                                }));
                                receipt_pdu(&shared, &session, sequence, report)
                            }
                            Outgoing::Mo(part) => {
                                shared.record(mo::part_record(&session.system_id, id, &part.id.to_string(), sequence));
                                mo_pdu(sequence, part)
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
                inject_mo(&shared, &session.system_id, id, &esme_addr);
            }
        }
    };
    tracing::info!(%peer, system_id = %session.system_id, conn = id, reason, "simulator: session closed");
    // Whatever this session still owes its system_id goes to another session or the queue.
    drop(tx);
    shared.reports.hand_back(
        &session.system_id,
        id,
        rx,
        unacked,
        shared.cancel.is_cancelled(),
    );
}

/// Waits for a bind (answering enquire_link meanwhile) and checks it; returns the session.
async fn bind(
    shared: &Shared,
    framed: &mut Framed<TcpStream, SmppCodec>,
    peer: SocketAddr,
) -> Option<Session> {
    let deadline = tokio::time::Instant::now() + BIND_TIMEOUT;
    loop {
        let next = tokio::select! {
            f = tokio::time::timeout_at(deadline, framed.next()) => f,
            _ = shared.cancel.cancelled() => return None,
        };
        let pdu = match next {
            Ok(Some(Ok(pdu))) => pdu,
            Ok(Some(Err(e))) => {
                tracing::warn!(%peer, error = %e, "simulator: bad frame before bind");
                return None;
            }
            _ => return None,
        };
        let seq = pdu.sequence_number;
        let b = match pdu.body {
            Body::Bind(b) => b,
            Body::EnquireLink => {
                framed
                    .send(Pdu::new(seq, Body::EnquireLinkResp))
                    .await
                    .ok()?;
                continue;
            }
            other => {
                tracing::warn!(%peer, command = other.command_id(), "simulator: request before bind");
                let _ = framed
                    .send(Pdu::response(
                        seq,
                        status::ESME_RINVBNDSTS,
                        Body::GenericNack,
                    ))
                    .await;
                return None;
            }
        };
        if b.kind == BindKind::Transceiver && b.interface_version < VERSION_3_4 {
            // A 3.3 SMSC does not know the command at all.
            let _ = framed
                .send(Pdu::response(
                    seq,
                    status::ESME_RINVCMDID,
                    Body::GenericNack,
                ))
                .await;
            return None;
        }
        let code = match shared.password_of(&b.system_id) {
            None => status::ESME_RINVSYSID,
            Some(p) if p != b.password => status::ESME_RINVPASWD,
            Some(_) => status::ESME_ROK,
        };
        let version = if b.interface_version >= VERSION_5_0 {
            VERSION_5_0
        } else {
            b.interface_version
        };
        let tlvs = if version >= VERSION_3_4 && code == status::ESME_ROK {
            vec![Tlv::u8(tag::SC_INTERFACE_VERSION, version)]
        } else {
            vec![]
        };
        let resp = Pdu::response(
            seq,
            code,
            Body::BindResp(BindResp {
                kind: b.kind,
                system_id: SMSC_SYSTEM_ID.into(),
                tlvs,
            }),
        );
        framed.send(resp).await.ok()?;
        if code != status::ESME_ROK {
            tracing::warn!(%peer, system_id = %b.system_id, code, "simulator: bind refused");
            return None;
        }
        return Some(Session {
            system_id: b.system_id,
            kind: b.kind,
            version,
        });
    }
}

/// Records a submit_sm (or data_sm), schedules its receipt and builds the response: `Some(None)`
/// when the response goes out later (delayed by a fault), `None` when a fault drops the
/// connection instead.
#[allow(clippy::too_many_arguments)]
fn on_submit(
    shared: &Arc<Shared>,
    session: &Session,
    conn_id: u64,
    seq: u32,
    sm: &Sm,
    tx: &ConnTx<Outgoing, Pdu>,
    conn: &mut ConnFaults,
    response: fn(SmResp) -> Body,
) -> Option<Option<Pdu>> {
    if !session.kind.can_send() {
        return Some(Some(Pdu::response(
            seq,
            status::ESME_RINVBNDSTS,
            response(SmResp::default()),
        )));
    }
    match shared.faults.on_submit(&session.system_id, conn) {
        SubmitFate::Drop => {
            tracing::warn!(system_id = %session.system_id, "simulator: dropping connection at a submit (fault)");
            return None;
        }
        SubmitFate::Throttle(why) => {
            shared.record(faults::throttled_record(
                &session.system_id,
                &sm.destination_addr,
                why,
                status::ESME_RTHROTTLED,
            ));
            return Some(Some(Pdu::response(
                seq,
                status::ESME_RTHROTTLED,
                response(SmResp::default()),
            )));
        }
        SubmitFate::Accept => {}
    }
    let id = accept(shared, session, conn_id, sm);
    let resp = Pdu::new(
        seq,
        response(SmResp {
            message_id: shared.submit_id(id),
            tlvs: vec![],
        }),
    );
    let tx = tx.clone();
    Some(
        shared
            .faults
            .answer_submit(conn, &shared.tasks, &shared.cancel, resp, move |resp| {
                let _ = tx.send(ConnMsg::Send(resp));
            }),
    )
}

/// Records the submit and schedules its receipt; returns the message id.
fn accept(shared: &Arc<Shared>, session: &Session, conn: u64, sm: &Sm) -> u64 {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let payload = if sm.short_message.is_empty() {
        tlv::find(&sm.tlvs, tag::MESSAGE_PAYLOAD)
            .map(|t| t.value.as_slice())
            .unwrap_or_default()
    } else {
        sm.short_message.as_slice()
    };
    let udhi = sm.esm_class & esm::UDHI != 0;
    let (concat, text) = gsm7::decode_smpp_payload(sm.data_coding, udhi, payload);
    let sar = |t| tlv::find(&sm.tlvs, t).and_then(Tlv::as_uint);
    let (pk_total, pk_number) = match (concat, sar(tag::SAR_TOTAL_SEGMENTS)) {
        (Some(text::Concat { total, number, .. }), _) => (u32::from(total), u32::from(number)),
        (None, Some(total)) => (total, sar(tag::SAR_SEGMENT_SEQNUM).unwrap_or(1)),
        (None, None) => (1, 1),
    };
    shared.record(json!({
        "kind": "submit",
        "account": session.system_id,
        "msg_id": shared.submit_id(id),
        "dest": sm.destination_addr,
        "text": text,
        "pk_total": pk_total,
        "pk_number": pk_number,
        "at_ms": now_ms(),
    }));
    // registered_delivery bits 1–0: 1 = receipt on success or failure, 2 = on failure only.
    let wanted = sm.registered_delivery & 0x03;
    let delivered = rand::thread_rng().gen::<f64>() < shared.config.delivered_ratio;
    if wanted == 1 || (wanted == 2 && !delivered) {
        let report = Report {
            id,
            dest: sm.destination_addr.clone(),
            esme_addr: sm.source_addr.clone(),
            stat: if delivered { "DELIVRD" } else { "UNDELIV" }.to_string(),
            submit_date: yymmddhhmm(),
            done_date: String::new(),
            // Appendix B: the first 20 characters; only plain ones, so no coding can garble them.
            text: text
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == ' ')
                .take(20)
                .collect(),
        };
        shared.schedule_report(session.system_id.clone(), conn, report);
    }
    id
}

fn receipt_pdu(shared: &Shared, session: &Session, sequence: u32, report: &Report) -> Pdu {
    let delivered = report.stat == "DELIVRD";
    let text = format_receipt(&ReceiptText {
        id: shared.receipt_id(report.id),
        sub: "001".into(),
        dlvrd: if delivered { "001" } else { "000" }.into(),
        submit_date: report.submit_date.clone(),
        done_date: report.done_date.clone(),
        stat: report.stat.clone(),
        err: if delivered { "000" } else { "001" }.into(),
        text: report.text.clone(),
    });
    let mut tlvs = Vec::new();
    if session.version >= VERSION_3_4 && shared.config.receipt_id_format.is_none() {
        tlvs.push(Tlv::cstring(
            tag::RECEIPTED_MESSAGE_ID,
            &shared.submit_id(report.id),
        ));
        let state = if delivered {
            message_state::DELIVERED
        } else {
            message_state::UNDELIVERABLE
        };
        tlvs.push(Tlv::u8(tag::MESSAGE_STATE, state));
        if !delivered {
            // GSM network, error 1 (unknown subscriber).
            tlvs.push(Tlv::new(tag::NETWORK_ERROR_CODE, vec![3, 0, 1]));
        }
    }
    Pdu::new(
        sequence,
        Body::DeliverSm(Box::new(Sm {
            source_addr_ton: 1,
            source_addr_npi: 1,
            source_addr: report.dest.clone(),
            destination_addr: report.esme_addr.clone(),
            esm_class: esm::DELIVERY_RECEIPT,
            short_message: text.into_bytes(),
            tlvs,
            ..Sm::default()
        })),
    )
}

/// Injects one MO on session `conn` (see [`mo::inject`]): one deliver_sm per part, GSM 7-bit
/// where the text allows, else UCS2, a long one with an 8-bit concatenation UDH.
fn inject_mo(shared: &Shared, system_id: &str, conn: u64, esme_addr: &str) {
    mo::inject(
        &shared.mo,
        shared.faults.settings(),
        &shared.reports,
        |line| shared.record(line),
        system_id,
        conn,
        esme_addr,
        |mo| {
            gsm7::split_smpp(&mo.text)
                .into_iter()
                .map(|segment| {
                    let part = MoSm {
                        id: shared.next_id.fetch_add(1, Ordering::Relaxed),
                        src: mo.src.clone(),
                        dest: mo.dest.clone(),
                        segment,
                    };
                    (part.id.to_string(), Outgoing::Mo(part))
                })
                .collect()
        },
    );
}

/// The deliver_sm of an MO part.
fn mo_pdu(sequence: u32, part: &MoSm) -> Pdu {
    Pdu::new(
        sequence,
        Body::DeliverSm(Box::new(Sm {
            source_addr_ton: 1,
            source_addr_npi: 1,
            source_addr: part.src.clone(),
            destination_addr: part.dest.clone(),
            esm_class: if part.segment.udhi { esm::UDHI } else { 0 },
            data_coding: part.segment.data_coding,
            short_message: part.segment.payload.clone(),
            ..Sm::default()
        })),
    )
}
