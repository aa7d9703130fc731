//! An SMGP 3.0.3 gateway simulator: it authenticates SPs (Login, MD5 authenticator), answers
//! every Submit with a BCD MsgID and, after a delay, sends the status report as a Deliver with
//! IsReport = 1; it answers Active_Test and Exit. The shared behaviour (report queueing,
//! records) is [`super::telecom`]; this file is only SMGP's PDUs.

use tokio::net::TcpListener;

use super::telecom::{self as core, GatewayWire, SimInbound, SimMoPart, SimReport, SimSubmit};
pub use super::telecom::{SimConfig, SimFaults};
use crate::smgp::{
    self, tag, Body, Deliver, DeliverContent, LoginResp, MsgId10, Pdu, SmgpCodec, SubmitResp, Tlvs,
};

/// Binds `config.listen` and serves until `shutdown` completes.
pub async fn run(
    config: SimConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(&config.listen).await?;
    run_on(listener, config, SimFaults::default(), shutdown).await
}

/// Serves on an already bound listener (tests bind port 0 and learn the port first).
pub async fn run_on(
    listener: TcpListener,
    config: SimConfig,
    faults: SimFaults,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    core::run_on::<SmgpWire>(listener, config, faults, shutdown).await
}

struct SmgpWire;

impl GatewayWire for SmgpWire {
    type Pdu = Pdu;
    type Codec = SmgpCodec;
    const NAME: &'static str = "smgp";
    const VERSION: u8 = smgp::VERSION_3_0;
    const STATUS_AUTH: u32 = 21;
    const STATUS_VERSION: u32 = 22;
    /// SMGP 3.0.3 defines no flow-control status. Of its codes, 1 "system busy" is the one a
    /// client can retry soon, and is what gateways answer when they shed load; 75 "sending
    /// limit exceeded" is a quota (typically daily), not a per-second rate.
    const STATUS_THROTTLED: u32 = 1;
    const HEADER_LEN: usize = smgp::HEADER_LEN;

    fn sequence(pdu: &Pdu) -> u32 {
        pdu.sequence_id
    }

    fn inbound(pdu: Pdu) -> SimInbound {
        match pdu.body {
            Body::Login(l) => SimInbound::Login {
                client_id: l.client_id,
                authenticator: l.authenticator_client,
                timestamp: l.timestamp,
                version: l.client_version,
            },
            Body::Submit(s) => SimInbound::Submit(SimSubmit {
                udhi: s.tlvs.u8(tag::TP_UDHI).unwrap_or(0) != 0,
                pk_total: s.tlvs.u8(tag::PK_TOTAL).unwrap_or(1),
                pk_number: s.tlvs.u8(tag::PK_NUMBER).unwrap_or(1),
                src_term_id: s.src_term_id,
                dest_term_ids: s.dest_term_ids,
                need_report: s.need_report == 1,
                msg_format: s.msg_format,
                content: s.msg_content,
            }),
            Body::DeliverResp(_) => SimInbound::DeliverResp,
            Body::ActiveTest => SimInbound::ActiveTest,
            Body::Exit => SimInbound::Exit,
            _ => SimInbound::Ignore,
        }
    }

    fn login_resp(sequence: u32, status: u32, authenticator_server: [u8; 16]) -> Pdu {
        Pdu::new(
            sequence,
            Body::LoginResp(LoginResp {
                status,
                authenticator_server,
                server_version: smgp::VERSION_3_0,
            }),
        )
    }

    fn submit_resp(sequence: u32, msg_id: MsgId10) -> Pdu {
        Pdu::new(sequence, Body::SubmitResp(SubmitResp { msg_id, status: 0 }))
    }

    fn submit_throttled(sequence: u32) -> Pdu {
        Pdu::new(
            sequence,
            Body::SubmitResp(SubmitResp {
                msg_id: MsgId10::default(),
                status: Self::STATUS_THROTTLED,
            }),
        )
    }

    fn active_test_resp(sequence: u32) -> Pdu {
        Pdu::new(sequence, Body::ActiveTestResp)
    }

    fn exit_resp(sequence: u32) -> Pdu {
        Pdu::new(sequence, Body::ExitResp)
    }

    fn report(sequence: u32, deliver_id: MsgId10, report: &SimReport) -> Pdu {
        Pdu::new(
            sequence,
            Body::Deliver(Box::new(Deliver {
                msg_id: deliver_id,
                msg_format: 0,
                recv_time: core::recv_time(),
                src_term_id: report.dest.clone(),
                dest_term_id: report.sp_number.clone(),
                content: DeliverContent::Report(core::receipt(report)),
                reserve: String::new(),
                tlvs: Tlvs::default(),
            })),
        )
    }

    /// An MO part, its UDH flagged by the TP_udhi TLV (the client reads the header by it).
    fn mo(sequence: u32, part: &SimMoPart) -> Pdu {
        let tlvs = if part.segment.udhi {
            Tlvs::default().with_u8(tag::TP_UDHI, 1)
        } else {
            Tlvs::default()
        };
        Pdu::new(
            sequence,
            Body::Deliver(Box::new(Deliver {
                msg_id: part.msg_id,
                msg_format: part.segment.data_coding,
                recv_time: core::recv_time(),
                src_term_id: part.src.clone(),
                dest_term_id: part.dest.clone(),
                content: DeliverContent::Message(part.segment.payload.clone()),
                reserve: String::new(),
                tlvs,
            })),
        )
    }
}
