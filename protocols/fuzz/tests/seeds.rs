//! Writes the seed corpora under `corpus/<target>/` from valid encoded PDUs. Ignored by default;
//! run `cargo test --test seeds -- --ignored` after a codec gains a PDU type. The files are
//! committed, so the fuzzers and the stable driver start from the same seeds.

use std::path::Path;

use herald_protocols::cmpp::{self, Version};
use herald_protocols::{cngp, sgip, smgp, smpp};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    std::fs::write(dir.join(name), bytes).expect("seed written");
}

fn cmpp_seeds() -> Vec<(&'static str, cmpp::Pdu)> {
    use cmpp::{Body, Connect, ConnectResp, Deliver, DeliverContent, Pdu, StatusReport, Submit};
    let submit = Submit {
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
        dest_terminal_ids: vec!["13800138000".into(), "13900139000".into()],
        msg_content: vec![0x4F, 0x60, 0x59, 0x7D],
        ..Submit::default()
    };
    let mut udh = submit.clone();
    udh.tp_udhi = 1;
    udh.pk_total = 2;
    udh.msg_content = vec![5, 0, 3, 9, 2, 1, 0x4F, 0x60];
    let deliver = |content| Deliver {
        msg_id: 0x1234_5678_9ABC_DEF0,
        dest_id: "1065901234".into(),
        service_id: "HERALD".into(),
        tp_pid: 0,
        tp_udhi: 0,
        msg_fmt: 0,
        src_terminal_id: "13800138000".into(),
        src_terminal_type: 0,
        content,
        link_id: String::new(),
    };
    let report = StatusReport {
        msg_id: 0x1234_5678_9ABC_DEF0,
        stat: "DELIVRD".into(),
        submit_time: "2511250701".into(),
        done_time: "2511250702".into(),
        dest_terminal_id: "13800138000".into(),
        smsc_sequence: 7,
    };
    vec![
        (
            "connect",
            Pdu::new(
                1,
                Body::Connect(Connect {
                    source_addr: "901234".into(),
                    authenticator_source: [7; 16],
                    version: 0x30,
                    timestamp: 1_125_070_100,
                }),
            ),
        ),
        (
            "connect_resp",
            Pdu::new(
                1,
                Body::ConnectResp(ConnectResp {
                    status: 0,
                    authenticator_ismg: [9; 16],
                    version: 0x30,
                }),
            ),
        ),
        ("submit", Pdu::new(2, Body::Submit(Box::new(submit)))),
        ("submit_udh", Pdu::new(3, Body::Submit(Box::new(udh)))),
        (
            "submit_resp",
            Pdu::new(
                2,
                Body::SubmitResp(cmpp::SubmitResp {
                    msg_id: 42,
                    result: 8,
                }),
            ),
        ),
        (
            "deliver_mo",
            Pdu::new(
                4,
                Body::Deliver(Box::new(deliver(DeliverContent::Message(b"MO 1".to_vec())))),
            ),
        ),
        (
            "deliver_report",
            Pdu::new(
                5,
                Body::Deliver(Box::new(deliver(DeliverContent::Report(report)))),
            ),
        ),
        (
            "deliver_resp",
            Pdu::new(
                5,
                Body::DeliverResp(cmpp::DeliverResp {
                    msg_id: 42,
                    result: 0,
                }),
            ),
        ),
        ("active_test", Pdu::new(6, Body::ActiveTest)),
        ("active_test_resp", Pdu::new(6, Body::ActiveTestResp)),
        ("terminate", Pdu::new(7, Body::Terminate)),
    ]
}

#[test]
#[ignore = "writes the committed seed corpora"]
fn write_seed_corpora() {
    for (name, pdu) in cmpp_seeds() {
        for (tag, version) in [("v3", Version::V3), ("v2", Version::V2)] {
            let bytes = pdu.to_bytes_as(version).expect("CMPP seed encodes");
            write("cmpp_decode", &format!("{tag}_{name}"), &bytes);
        }
    }

    let sm = smpp::Sm {
        source_addr: "1065901234".into(),
        destination_addr: "8613800138000".into(),
        registered_delivery: 1,
        data_coding: 8,
        short_message: vec![0x4F, 0x60, 0x59, 0x7D],
        ..smpp::Sm::default()
    };
    let mut receipt = sm.clone();
    receipt.esm_class = 0x04;
    receipt.data_coding = 0;
    receipt.short_message =
        b"id:0123456789 sub:001 dlvrd:001 submit date:2511250701 done date:2511250702 stat:DELIVRD err:000 Text:hi".to_vec();
    let smpp_seeds = [
        ("enquire_link", smpp::Pdu::new(1, smpp::Body::EnquireLink)),
        ("unbind", smpp::Pdu::new(2, smpp::Body::Unbind)),
        (
            "submit_sm",
            smpp::Pdu::new(3, smpp::Body::SubmitSm(Box::new(sm))),
        ),
        (
            "deliver_sm_receipt",
            smpp::Pdu::new(4, smpp::Body::DeliverSm(Box::new(receipt))),
        ),
        (
            "submit_sm_resp",
            smpp::Pdu::new(
                3,
                smpp::Body::SubmitSmResp(smpp::SmResp {
                    message_id: "0123456789".into(),
                    tlvs: vec![],
                }),
            ),
        ),
    ];
    for (name, pdu) in smpp_seeds {
        write(
            "smpp_decode",
            name,
            &pdu.to_bytes().expect("SMPP seed encodes"),
        );
    }

    let seq = sgip::SequenceNumber {
        node_id: 3_010_012_345,
        time: 1_125_070_100,
        number: 1,
    };
    let submit = sgip::Submit {
        sp_number: "1065901234".into(),
        charge_number: "0".repeat(21),
        user_numbers: vec!["8613800138000".into()],
        corp_id: "12345".into(),
        service_type: "HERALD".into(),
        report_flag: 1,
        message_coding: 8,
        message_content: vec![0x4F, 0x60],
        ..sgip::Submit::default()
    };
    let deliver = sgip::Deliver {
        user_number: "8613800138000".into(),
        sp_number: "1065901234".into(),
        message_content: b"MO".to_vec(),
        ..sgip::Deliver::default()
    };
    let report = sgip::Report {
        submit_sequence: seq,
        report_type: 0,
        user_number: "8613800138000".into(),
        state: 2,
        error_code: 5,
    };
    let sgip_seeds = [
        ("unbind", sgip::Pdu::new(seq, sgip::Body::Unbind)),
        (
            "bind",
            sgip::Pdu::new(
                seq,
                sgip::Body::Bind(sgip::Bind {
                    login_type: 2,
                    login_name: "gateway".into(),
                    login_password: "secret".into(),
                }),
            ),
        ),
        (
            "submit_resp",
            sgip::Pdu::new(seq, sgip::Body::SubmitResp(sgip::Resp { result: 88 })),
        ),
        ("report", sgip::Pdu::new(seq, sgip::Body::Report(report))),
        (
            "submit",
            sgip::Pdu::new(seq, sgip::Body::Submit(Box::new(submit))),
        ),
        (
            "deliver",
            sgip::Pdu::new(seq, sgip::Body::Deliver(Box::new(deliver))),
        ),
    ];
    for (name, pdu) in sgip_seeds {
        write(
            "sgip_decode",
            name,
            &pdu.to_bytes().expect("SGIP seed encodes"),
        );
    }

    let smgp_submit = smgp::Submit {
        need_report: 1,
        service_id: "HERALD".into(),
        fee_type: "00".into(),
        msg_format: 8,
        src_term_id: "1065901234".into(),
        dest_term_ids: vec!["13800138000".into()],
        msg_content: vec![0x4F, 0x60],
        ..smgp::Submit::default()
    };
    let msg_id = smgp::MsgId10([0x01, 0x00, 0x61, 0x01, 0x16, 0x17, 0x00, 0x01, 0x23, 0x45]);
    let receipt = smgp::Receipt {
        msg_id,
        sub: "001".into(),
        dlvrd: "001".into(),
        submit_date: "2511250701".into(),
        done_date: "2511250702".into(),
        stat: "DELIVRD".into(),
        err: "000".into(),
        text: String::new(),
    };
    let udhi_tlvs = smgp::Tlvs(vec![
        herald_protocols::telecom::Tlv {
            tag: smgp::tag::TP_UDHI,
            value: herald_protocols::telecom::TlvValue::U8(1),
        },
        herald_protocols::telecom::Tlv {
            tag: smgp::tag::PK_TOTAL,
            value: herald_protocols::telecom::TlvValue::U8(2),
        },
        herald_protocols::telecom::Tlv {
            tag: smgp::tag::PK_NUMBER,
            value: herald_protocols::telecom::TlvValue::U8(1),
        },
    ]);
    let smgp_deliver = |content, tlvs| smgp::Deliver {
        msg_id,
        msg_format: 8,
        recv_time: "20251125070100".into(),
        src_term_id: "13800138000".into(),
        dest_term_id: "1065901234".into(),
        content,
        reserve: String::new(),
        tlvs,
    };
    let smgp_seeds = [
        (
            "login",
            smgp::Pdu::new(
                1,
                smgp::Body::Login(smgp::Login {
                    client_id: "12345678".into(),
                    authenticator_client: [7; 16],
                    login_mode: 2,
                    timestamp: 1_125_070_100,
                    client_version: 0x30,
                }),
            ),
        ),
        (
            "submit_resp",
            smgp::Pdu::new(
                3,
                smgp::Body::SubmitResp(smgp::SubmitResp { msg_id, status: 0 }),
            ),
        ),
        (
            "deliver_mo_udh",
            smgp::Pdu::new(
                4,
                smgp::Body::Deliver(Box::new(smgp_deliver(
                    smgp::DeliverContent::Message(vec![5, 0, 3, 9, 2, 1, 0x4F, 0x60]),
                    udhi_tlvs,
                ))),
            ),
        ),
        (
            "deliver_report",
            smgp::Pdu::new(
                5,
                smgp::Body::Deliver(Box::new(smgp_deliver(
                    smgp::DeliverContent::Report(receipt.clone()),
                    smgp::Tlvs::default(),
                ))),
            ),
        ),
        ("active_test", smgp::Pdu::new(1, smgp::Body::ActiveTest)),
        ("exit", smgp::Pdu::new(2, smgp::Body::Exit)),
        (
            "submit",
            smgp::Pdu::new(3, smgp::Body::Submit(Box::new(smgp_submit))),
        ),
    ];
    for (name, pdu) in smgp_seeds {
        write(
            "smgp_decode",
            name,
            &pdu.to_bytes().expect("SMGP seed encodes"),
        );
    }

    let cngp_submit = cngp::Submit {
        sp_id: "9012345678".into(),
        need_report: 1,
        service_id: "HERALD".into(),
        fee_type: "00".into(),
        msg_format: 8,
        src_term_id: "1065901234".into(),
        dest_term_ids: vec!["13800138000".into()],
        msg_content: vec![0x4F, 0x60],
        ..cngp::Submit::default()
    };
    let congestion = cngp::Tlvs(vec![herald_protocols::telecom::Tlv {
        tag: cngp::tag::CONGESTION_STATE,
        value: herald_protocols::telecom::TlvValue::U8(0),
    }]);
    let cngp_deliver = |content| cngp::Deliver {
        msg_id,
        msg_format: 15,
        recv_time: "20251125070100".into(),
        src_term_id: "13300133000".into(),
        dest_term_id: "1065901234".into(),
        content,
        tlvs: cngp::Tlvs::default(),
    };
    let cngp_seeds = [
        (
            "login",
            cngp::Pdu::new(
                1,
                cngp::Body::Login(cngp::Login {
                    client_id: "9012345678".into(),
                    authenticator_client: [7; 16],
                    login_mode: 2,
                    timestamp: 1_125_070_100,
                    version: 0x20,
                }),
            ),
        ),
        (
            "submit_resp",
            cngp::Pdu::new(
                3,
                cngp::Body::SubmitResp(cngp::SubmitResp {
                    msg_id,
                    tlvs: congestion,
                }),
            ),
        ),
        (
            "deliver_mo",
            cngp::Pdu::new(
                4,
                cngp::Body::Deliver(Box::new(cngp_deliver(cngp::DeliverContent::Message(
                    vec![0xC4, 0xE3, 0xBA, 0xC3],
                )))),
            ),
        ),
        (
            "deliver_report",
            cngp::Pdu::new(
                5,
                cngp::Body::Deliver(Box::new(cngp_deliver(cngp::DeliverContent::Report(
                    receipt,
                )))),
            ),
        ),
        ("active_test", cngp::Pdu::new(1, cngp::Body::ActiveTest)),
        ("exit", cngp::Pdu::new(2, cngp::Body::Exit)),
        (
            "submit",
            cngp::Pdu::new(3, cngp::Body::Submit(Box::new(cngp_submit))),
        ),
    ];
    for (name, pdu) in cngp_seeds {
        write(
            "cngp_decode",
            name,
            &pdu.to_bytes().expect("CNGP seed encodes"),
        );
    }
}
