//! Encode and decode cost of the hot PDUs of every protocol codec: SUBMIT going out, and both
//! kinds of DELIVER coming in, a status report (SGIP: its separate REPORT) and an MO. Run with
//! `cargo bench -p herald-protocols --bench codec`; figures are recorded in BENCHMARKS.md.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion};

use herald_protocols::cmpp::{self, Version};
use herald_protocols::{cngp, sgip, smgp, smpp};

/// A 70-character UCS2 text: a full single-part Chinese SMS.
fn ucs2_payload() -> Vec<u8> {
    "验证码"
        .repeat(23)
        .chars()
        .chain(std::iter::once('。'))
        .flat_map(|c| (c as u16).to_be_bytes())
        .collect()
}

/// The SMGP/CNGP status report text (SMPP receipt format) about one MsgID.
fn receipt10() -> smgp::Receipt {
    smgp::Receipt {
        msg_id: smgp::MsgId10([1, 0, 0x61, 0x01, 0x16, 0x17, 0, 0x01, 0x23, 0x45]),
        sub: "001".into(),
        dlvrd: "001".into(),
        submit_date: "2511250701".into(),
        done_date: "2511250702".into(),
        stat: "DELIVRD".into(),
        err: "000".into(),
        text: String::new(),
    }
}

fn cmpp_submit() -> cmpp::Pdu {
    cmpp::Pdu::new(
        1,
        cmpp::Body::Submit(Box::new(cmpp::Submit {
            pk_total: 1,
            pk_number: 1,
            registered_delivery: 1,
            msg_level: 1,
            service_id: "HERALD".into(),
            fee_user_type: 2,
            msg_fmt: 8,
            msg_src: "901234".into(),
            fee_type: "01".into(),
            fee_code: "000000".into(),
            src_id: "1065901234".into(),
            dest_terminal_ids: vec!["13800138000".into()],
            msg_content: ucs2_payload(),
            ..cmpp::Submit::default()
        })),
    )
}

fn cmpp_deliver_mo() -> cmpp::Pdu {
    let mut pdu = cmpp_deliver_report();
    if let cmpp::Body::Deliver(deliver) = &mut pdu.body {
        deliver.msg_fmt = 8;
        deliver.content = cmpp::DeliverContent::Message(ucs2_payload());
    }
    pdu
}

fn cmpp_deliver_report() -> cmpp::Pdu {
    cmpp::Pdu::new(
        2,
        cmpp::Body::Deliver(Box::new(cmpp::Deliver {
            msg_id: 0x1234_5678_9ABC_DEF0,
            dest_id: "1065901234".into(),
            service_id: "HERALD".into(),
            tp_pid: 0,
            tp_udhi: 0,
            msg_fmt: 0,
            src_terminal_id: "13800138000".into(),
            src_terminal_type: 0,
            content: cmpp::DeliverContent::Report(cmpp::StatusReport {
                msg_id: 0x1234_5678_9ABC_DEF0,
                stat: "DELIVRD".into(),
                submit_time: "2511250701".into(),
                done_time: "2511250702".into(),
                dest_terminal_id: "13800138000".into(),
                smsc_sequence: 7,
            }),
            link_id: String::new(),
        })),
    )
}

fn bench_cmpp(c: &mut Criterion) {
    for (tag, version) in [("cmpp3", Version::V3), ("cmpp2", Version::V2)] {
        for (what, pdu) in [
            ("submit", cmpp_submit()),
            ("deliver_report", cmpp_deliver_report()),
            ("deliver_mo", cmpp_deliver_mo()),
        ] {
            let bytes = pdu.to_bytes_as(version).expect("encodes");
            c.bench_function(&format!("{tag}/{what}/encode"), |b| {
                let mut out = BytesMut::with_capacity(512);
                b.iter(|| {
                    out.clear();
                    black_box(&pdu)
                        .encode_as(&mut out, version)
                        .expect("encodes");
                    black_box(out.len())
                })
            });
            c.bench_function(&format!("{tag}/{what}/decode"), |b| {
                b.iter(|| cmpp::Pdu::decode_as(black_box(&bytes), version).expect("decodes"))
            });
        }
    }
}

/// Encode and decode benches for a protocol whose PDUs have `to_bytes` / `encode` / `decode`.
macro_rules! bench_pdus {
    ($c:expr, $proto:literal, $module:ident, [$(($what:literal, $pdu:expr)),* $(,)?]) => {
        $(
            let pdu = $pdu;
            let bytes = pdu.to_bytes().expect(concat!($proto, " ", $what, " encodes"));
            $c.bench_function(concat!($proto, "/", $what, "/encode"), |b| {
                let mut out = BytesMut::with_capacity(512);
                b.iter(|| {
                    out.clear();
                    black_box(&pdu).encode(&mut out).expect("encodes");
                    black_box(out.len())
                })
            });
            $c.bench_function(concat!($proto, "/", $what, "/decode"), |b| {
                b.iter(|| $module::Pdu::decode(black_box(&bytes)).expect("decodes"))
            });
        )*
    };
}

fn bench_others(c: &mut Criterion) {
    let sm = smpp::Sm {
        source_addr: "1065901234".into(),
        destination_addr: "8613800138000".into(),
        registered_delivery: 1,
        data_coding: 8,
        short_message: ucs2_payload(),
        ..smpp::Sm::default()
    };
    let mo = smpp::Sm {
        source_addr: "8613800138000".into(),
        destination_addr: "1065901234".into(),
        registered_delivery: 0,
        ..sm.clone()
    };
    let receipt = smpp::Sm {
        esm_class: 0x04,
        data_coding: 0,
        short_message: b"id:0123456789 sub:001 dlvrd:001 submit date:2511250701 done date:2511250702 stat:DELIVRD err:000 Text:".to_vec(),
        ..sm.clone()
    };
    bench_pdus!(
        c,
        "smpp34",
        smpp,
        [
            (
                "submit_sm",
                smpp::Pdu::new(1, smpp::Body::SubmitSm(Box::new(sm)))
            ),
            (
                "deliver_sm_receipt",
                smpp::Pdu::new(2, smpp::Body::DeliverSm(Box::new(receipt)))
            ),
            (
                "deliver_sm_mo",
                smpp::Pdu::new(3, smpp::Body::DeliverSm(Box::new(mo)))
            ),
        ]
    );

    let seq = sgip::SequenceNumber {
        node_id: 3_010_012_345,
        time: 1_125_070_100,
        number: 1,
    };
    bench_pdus!(
        c,
        "sgip",
        sgip,
        [
            (
                "submit",
                sgip::Pdu::new(
                    seq,
                    sgip::Body::Submit(Box::new(sgip::Submit {
                        sp_number: "1065901234".into(),
                        charge_number: "0".repeat(21),
                        user_numbers: vec!["8613800138000".into()],
                        corp_id: "12345".into(),
                        service_type: "HERALD".into(),
                        report_flag: 1,
                        message_coding: 8,
                        message_content: ucs2_payload(),
                        ..sgip::Submit::default()
                    }))
                )
            ),
            (
                "deliver_mo",
                sgip::Pdu::new(
                    seq,
                    sgip::Body::Deliver(Box::new(sgip::Deliver {
                        user_number: "8613800138000".into(),
                        sp_number: "1065901234".into(),
                        message_coding: 8,
                        message_content: ucs2_payload(),
                        ..sgip::Deliver::default()
                    }))
                )
            ),
            (
                "report",
                sgip::Pdu::new(
                    seq,
                    sgip::Body::Report(sgip::Report {
                        submit_sequence: seq,
                        report_type: 0,
                        user_number: "8613800138000".into(),
                        state: 0,
                        error_code: 0,
                    })
                )
            ),
        ]
    );

    bench_pdus!(
        c,
        "smgp",
        smgp,
        [
            (
                "submit",
                smgp::Pdu::new(
                    1,
                    smgp::Body::Submit(Box::new(smgp::Submit {
                        need_report: 1,
                        service_id: "HERALD".into(),
                        fee_type: "00".into(),
                        msg_format: 8,
                        src_term_id: "1065901234".into(),
                        dest_term_ids: vec!["13800138000".into()],
                        msg_content: ucs2_payload(),
                        ..smgp::Submit::default()
                    }))
                )
            ),
            (
                "deliver_mo",
                smgp::Pdu::new(
                    2,
                    smgp::Body::Deliver(Box::new(smgp::Deliver {
                        msg_id: smgp::MsgId10([1, 0, 0x61, 0x01, 0x16, 0x17, 0, 0x01, 0x23, 0x45]),
                        msg_format: 8,
                        recv_time: "20251125070100".into(),
                        src_term_id: "13800138000".into(),
                        dest_term_id: "1065901234".into(),
                        content: smgp::DeliverContent::Message(ucs2_payload()),
                        reserve: String::new(),
                        tlvs: Default::default(),
                    }))
                )
            ),
            (
                "deliver_report",
                smgp::Pdu::new(
                    3,
                    smgp::Body::Deliver(Box::new(smgp::Deliver {
                        msg_id: smgp::MsgId10([1, 0, 0x61, 0x01, 0x16, 0x17, 0, 0x01, 0x23, 0x46]),
                        msg_format: 0,
                        recv_time: "20251125070100".into(),
                        src_term_id: "13800138000".into(),
                        dest_term_id: "1065901234".into(),
                        content: smgp::DeliverContent::Report(receipt10()),
                        reserve: String::new(),
                        tlvs: Default::default(),
                    }))
                )
            ),
        ]
    );

    bench_pdus!(
        c,
        "cngp",
        cngp,
        [
            (
                "submit",
                cngp::Pdu::new(
                    1,
                    cngp::Body::Submit(Box::new(cngp::Submit {
                        sp_id: "9012345678".into(),
                        need_report: 1,
                        service_id: "HERALD".into(),
                        fee_type: "00".into(),
                        msg_format: 8,
                        src_term_id: "1065901234".into(),
                        dest_term_ids: vec!["13800138000".into()],
                        msg_content: ucs2_payload(),
                        ..cngp::Submit::default()
                    }))
                )
            ),
            (
                "deliver_mo",
                cngp::Pdu::new(
                    2,
                    cngp::Body::Deliver(Box::new(cngp::Deliver {
                        msg_id: cngp::MsgId10([1, 0, 0x61, 0x01, 0x16, 0x17, 0, 0x01, 0x23, 0x45]),
                        msg_format: 8,
                        recv_time: "20251125070100".into(),
                        src_term_id: "13800138000".into(),
                        dest_term_id: "1065901234".into(),
                        content: cngp::DeliverContent::Message(ucs2_payload()),
                        tlvs: Default::default(),
                    }))
                )
            ),
            (
                "deliver_report",
                cngp::Pdu::new(
                    3,
                    cngp::Body::Deliver(Box::new(cngp::Deliver {
                        msg_id: cngp::MsgId10([1, 0, 0x61, 0x01, 0x16, 0x17, 0, 0x01, 0x23, 0x46]),
                        msg_format: 0,
                        recv_time: "20251125070100".into(),
                        src_term_id: "13800138000".into(),
                        dest_term_id: "1065901234".into(),
                        content: cngp::DeliverContent::Report(receipt10()),
                        tlvs: Default::default(),
                    }))
                )
            ),
        ]
    );
}

criterion_group!(benches, bench_cmpp, bench_others);
criterion_main!(benches);
