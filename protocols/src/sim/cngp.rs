//! A CNGP 2.0 gateway simulator: it authenticates SPs (Login, MD5 authenticator), answers every
//! Submit with a BCD MsgID (and a CongestionState of 0) and, after a delay, sends the status
//! report as a Deliver with IsReport = 1; it answers Active_Test and Exit. The shared behaviour
//! is [`super::telecom`]; this file is only CNGP's PDUs.

use tokio::net::TcpListener;

use super::telecom::{self as core, GatewayWire, SimInbound, SimMoPart, SimReport, SimSubmit};
pub use super::telecom::{SimConfig, SimFaults};
use crate::cngp::{
    self, tag, Body, CngpCodec, Deliver, DeliverContent, LoginResp, MsgId10, Pdu, SubmitResp, Tlvs,
};
use crate::telecom::link::sniff_concat;

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
    core::run_on::<CngpWire>(listener, config, faults, shutdown).await
}

struct CngpWire;

impl GatewayWire for CngpWire {
    type Pdu = Pdu;
    type Codec = CngpCodec;
    const NAME: &'static str = "cngp";
    const VERSION: u8 = cngp::VERSION_2_0;
    const STATUS_AUTH: u32 = 21;
    const STATUS_VERSION: u32 = 22;
    /// No public CNGP specification names a flow-control status. CNGP's codes follow SMGP's
    /// (1 system busy, 21 authentication, 22 version), and 1 "system busy" is the retryable
    /// one; the congestion itself is also signalled in the CongestionState TLV (100 = fully
    /// congested), which the throttled response carries.
    const STATUS_THROTTLED: u32 = 1;
    const HEADER_LEN: usize = cngp::HEADER_LEN;

    fn sequence(pdu: &Pdu) -> u32 {
        pdu.sequence_id
    }

    fn inbound(pdu: Pdu) -> SimInbound {
        match pdu.body {
            Body::Login(l) => SimInbound::Login {
                client_id: l.client_id,
                authenticator: l.authenticator_client,
                timestamp: l.timestamp,
                version: l.version,
            },
            Body::Submit(s) => {
                // No TP_udhi in CNGP 2.0: a leading concatenation header is the only sign.
                let concat = sniff_concat(&s.msg_content);
                SimInbound::Submit(SimSubmit {
                    udhi: concat.is_some(),
                    pk_total: concat.map_or(1, |c| c.total),
                    pk_number: concat.map_or(1, |c| c.number),
                    src_term_id: s.src_term_id,
                    dest_term_ids: s.dest_term_ids,
                    need_report: s.need_report == 1,
                    msg_format: s.msg_format,
                    content: s.msg_content,
                })
            }
            Body::DeliverResp(_) => SimInbound::DeliverResp,
            Body::ActiveTest => SimInbound::ActiveTest,
            Body::Exit => SimInbound::Exit,
            _ => SimInbound::Ignore,
        }
    }

    fn login_resp(sequence: u32, status: u32, authenticator_server: [u8; 16]) -> Pdu {
        Pdu::with_status(
            sequence,
            status,
            Body::LoginResp(LoginResp {
                authenticator_server,
                version: cngp::VERSION_2_0,
            }),
        )
    }

    fn submit_resp(sequence: u32, msg_id: MsgId10) -> Pdu {
        Pdu::new(
            sequence,
            Body::SubmitResp(SubmitResp {
                msg_id,
                tlvs: Tlvs::default().with_u8(tag::CONGESTION_STATE, 0),
            }),
        )
    }

    fn submit_throttled(sequence: u32) -> Pdu {
        Pdu::with_status(
            sequence,
            Self::STATUS_THROTTLED,
            Body::SubmitResp(SubmitResp {
                msg_id: MsgId10::default(),
                tlvs: Tlvs::default().with_u8(tag::CONGESTION_STATE, 100),
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
                tlvs: Tlvs::default().with_u8(tag::PROTOCOL_ID, 0),
            })),
        )
    }

    /// An MO part; CNGP has no UDHI flag, so the client recognises the UDH by its shape.
    fn mo(sequence: u32, part: &SimMoPart) -> Pdu {
        let tlvs = Tlvs::default().with_u8(tag::PROTOCOL_ID, 0);
        Pdu::new(
            sequence,
            Body::Deliver(Box::new(Deliver {
                msg_id: part.msg_id,
                msg_format: part.segment.data_coding,
                recv_time: core::recv_time(),
                src_term_id: part.src.clone(),
                dest_term_id: part.dest.clone(),
                content: DeliverContent::Message(part.segment.payload.clone()),
                tlvs,
            })),
        )
    }
}
