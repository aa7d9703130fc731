//! Byte layouts written out field by field from the CNGP 2.0 layouts (PROTOCOLS.md), checked
//! against the codec in both directions, plus property tests: every PDU round-trips, and no input
//! makes decoding panic.

use bytes::BytesMut;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

use super::*;
use crate::telecom::{Tlv, TlvValue};

use crate::codec_tests::{arb_receipt, decode_garbage, octets, round_trips, text};

fn frame(command: u32, status: u32, sequence: u32, body: &[u8]) -> Vec<u8> {
    let mut v = ((16 + body.len()) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(&command.to_be_bytes());
    v.extend_from_slice(&status.to_be_bytes());
    v.extend_from_slice(&sequence.to_be_bytes());
    v.extend_from_slice(body);
    v
}

const ID: MsgId10 = MsgId10([0x02, 0x00, 0x01, 0x01, 0x16, 0x17, 0x00, 0x00, 0x00, 0x07]);

fn check(bytes: &[u8], expected: Pdu) {
    let decoded = Pdu::decode(bytes).unwrap_or_else(|e| panic!("decode failed: {e}"));
    assert_eq!(decoded, expected);
    let encoded = expected
        .to_bytes()
        .unwrap_or_else(|e| panic!("encode failed: {e}"));
    assert_eq!(encoded, bytes, "encoding differs from the layout");
}

fn check_err(bytes: &[u8]) {
    assert!(Pdu::decode(bytes).is_err(), "accepted {bytes:02x?}");
}

/// (name, bytes, value) — one row per PDU layout.
fn layouts() -> Vec<(&'static str, Vec<u8>, Pdu)> {
    let auth: [u8; 16] = core::array::from_fn(|i| 0xF0 - i as u8);
    let content = b"hello";
    let submit_body = [
        &octets("SP0001", 10)[..],
        &[2, 1, 1], // SubType, NeedReport, Priority
        &octets("HERALD", 10),
        &octets("00", 2),
        &[2], // FeeUserType
        &octets("000000", 6),
        &[0], // MsgFormat
        &octets("", 17),
        &octets("", 17),
        &octets("10690002", 21),
        &octets("", 21),
        &[1],
        &octets("13000000001", 21),
        &[content.len() as u8],
        content,
        &[0x01, 0x00, 0x00, 0x01, 0x00], // ProtocolID = 0
    ]
    .concat();
    let mut receipt_bytes = b"id:".to_vec();
    receipt_bytes.extend_from_slice(&ID.0);
    receipt_bytes.extend_from_slice(
        b" sub:001 dlvrd:000 submit date:2401161700 done date:2401161701 stat:UNDELIV err:001 text:",
    );
    receipt_bytes.resize(122, 0);
    let deliver_body = |is_report: u8, content: &[u8]| {
        [
            &ID.0[..],
            &[is_report, 15],
            &octets("20240116170001", 14),
            &octets("13000000001", 21),
            &octets("10690002", 21),
            &[content.len() as u8],
            content,
            &[0x01, 0x00, 0x00, 0x01, 0x00],
        ]
        .concat()
    };
    let congestion = [0x04, 0x28, 0x00, 0x01, 35];
    vec![
        (
            "Login",
            frame(
                0x1,
                0,
                1,
                &[
                    &octets("SP0001", 10)[..],
                    &auth,
                    &[2],
                    &116_170_000u32.to_be_bytes(),
                    &[0x20],
                ]
                .concat(),
            ),
            Pdu::new(
                1,
                Body::Login(Login {
                    client_id: "SP0001".into(),
                    authenticator_client: auth,
                    login_mode: login_mode::TRANSMIT,
                    timestamp: 116_170_000,
                    version: VERSION_2_0,
                }),
            ),
        ),
        (
            "Login_Resp (refused)",
            frame(0x8000_0001, 21, 1, &[&[0xAA; 16][..], &[0x20]].concat()),
            Pdu::with_status(
                1,
                21,
                Body::LoginResp(LoginResp {
                    authenticator_server: [0xAA; 16],
                    version: VERSION_2_0,
                }),
            ),
        ),
        (
            "Submit",
            frame(0x2, 0, 7, &submit_body),
            Pdu::new(
                7,
                Body::Submit(Box::new(Submit {
                    sp_id: "SP0001".into(),
                    sub_type: 2,
                    need_report: 1,
                    priority: 1,
                    service_id: "HERALD".into(),
                    fee_type: "00".into(),
                    fee_user_type: 2,
                    fee_code: "000000".into(),
                    msg_format: 0,
                    valid_time: String::new(),
                    at_time: String::new(),
                    src_term_id: "10690002".into(),
                    charge_term_id: String::new(),
                    dest_term_ids: vec!["13000000001".into()],
                    msg_content: content.to_vec(),
                    tlvs: Tlvs::default().with_u8(tag::PROTOCOL_ID, 0),
                })),
            ),
        ),
        (
            "Submit_Resp with CongestionState",
            frame(0x8000_0002, 0, 7, &[&ID.0[..], &congestion].concat()),
            Pdu::new(
                7,
                Body::SubmitResp(SubmitResp {
                    msg_id: ID,
                    tlvs: Tlvs::default().with_u8(tag::CONGESTION_STATE, 35),
                }),
            ),
        ),
        (
            "Submit_Resp (busy, no TLV)",
            frame(0x8000_0002, 1, 8, &ID.0),
            Pdu::with_status(
                8,
                1,
                Body::SubmitResp(SubmitResp {
                    msg_id: ID,
                    tlvs: Tlvs::default(),
                }),
            ),
        ),
        (
            "Deliver (MO, GB)",
            frame(0x3, 0, 9, &deliver_body(0, &[0xC4, 0xE3, 0xBA, 0xC3])),
            Pdu::new(
                9,
                Body::Deliver(Box::new(Deliver {
                    msg_id: ID,
                    msg_format: 15,
                    recv_time: "20240116170001".into(),
                    src_term_id: "13000000001".into(),
                    dest_term_id: "10690002".into(),
                    content: DeliverContent::Message(vec![0xC4, 0xE3, 0xBA, 0xC3]),
                    tlvs: Tlvs::default().with_u8(tag::PROTOCOL_ID, 0),
                })),
            ),
        ),
        (
            "Deliver (report)",
            frame(0x3, 0, 10, &deliver_body(1, &receipt_bytes)),
            Pdu::new(
                10,
                Body::Deliver(Box::new(Deliver {
                    msg_id: ID,
                    msg_format: 15,
                    recv_time: "20240116170001".into(),
                    src_term_id: "13000000001".into(),
                    dest_term_id: "10690002".into(),
                    content: DeliverContent::Report(Receipt {
                        msg_id: ID,
                        sub: "001".into(),
                        dlvrd: "000".into(),
                        submit_date: "2401161700".into(),
                        done_date: "2401161701".into(),
                        stat: "UNDELIV".into(),
                        err: "001".into(),
                        text: String::new(),
                    }),
                    tlvs: Tlvs::default().with_u8(tag::PROTOCOL_ID, 0),
                })),
            ),
        ),
        (
            "Deliver_Resp",
            frame(0x8000_0003, 0, 10, &[&ID.0[..], &congestion].concat()),
            Pdu::new(
                10,
                Body::DeliverResp(DeliverResp {
                    msg_id: ID,
                    tlvs: Tlvs::default().with_u8(tag::CONGESTION_STATE, 35),
                }),
            ),
        ),
        (
            "Active_Test",
            frame(0x4, 0, 3, &[]),
            Pdu::new(3, Body::ActiveTest),
        ),
        (
            "Active_Test_Resp",
            frame(0x8000_0004, 0, 3, &[]),
            Pdu::new(3, Body::ActiveTestResp),
        ),
        ("Exit", frame(0x6, 0, 4, &[]), Pdu::new(4, Body::Exit)),
        (
            "Exit_Resp",
            frame(0x8000_0006, 0, 4, &[]),
            Pdu::new(4, Body::ExitResp),
        ),
    ]
}

#[test]
fn layouts_both_ways() {
    for (name, bytes, pdu) in layouts() {
        eprintln!("{name}");
        check(&bytes, pdu);
    }
}

#[test]
fn fixed_sizes() {
    let sizes: Vec<(&str, usize)> = layouts()
        .iter()
        .map(|(name, bytes, _)| (*name, bytes.len()))
        .collect();
    assert!(sizes.contains(&("Login", 16 + 32)));
    assert!(sizes.contains(&("Login_Resp (refused)", 16 + 17)));
    assert!(sizes.contains(&("Submit_Resp (busy, no TLV)", 16 + 10)));
    // Submit: 110 fixed bytes + 21 per number + 1 + content + ProtocolID TLV.
    assert!(sizes.contains(&("Submit", 16 + 110 + 21 + 1 + 5 + 5)));
}

#[test]
fn malformed_input_is_an_error() {
    check_err(&[]);
    check_err(&[0, 0, 0, 16, 0, 0]);
    check_err(&frame(0x5, 0, 1, &[]));
    check_err(&frame(0x1234_5678, 0, 1, &[]));
    check_err(&frame(0x4, 0, 1, &[0]));
    check_err(&frame(0x8000_0002, 0, 1, &[0; 9])); // MsgID cut short
    check_err(&frame(0x8000_0002, 0, 1, &[0; 12])); // half a TLV header behind it
    check_err(&frame(0x8000_0001, 0, 1, &[0; 21])); // SMGP-sized Login_Resp
                                                    // CongestionState must be one byte.
    check_err(&frame(
        0x8000_0002,
        0,
        1,
        &[&ID.0[..], &[0x04, 0x28, 0x00, 0x02, 1, 2]].concat(),
    ));
    // A TLV whose length runs past the end.
    check_err(&frame(
        0x8000_0002,
        0,
        1,
        &[&ID.0[..], &[0x04, 0x28, 0x00, 0x09, 1]].concat(),
    ));
    let mut huge = frame(0x4, 0, 1, &[]);
    huge[..4].copy_from_slice(&5000u32.to_be_bytes());
    check_err(&huge);
    let mut long = frame(0x4, 0, 1, &[]);
    long.push(0);
    check_err(&long);
}

#[test]
fn destination_count_is_checked() {
    let (_, submit, _) = layouts().swap_remove(2);
    // DestTermIDCount sits at 16 + 110 - 1.
    let mut count = submit.clone();
    assert_eq!(count[125], 1);
    for bad in [0u8, 100, 101] {
        count[125] = bad;
        check_err(&count);
    }
}

#[test]
fn every_truncation_of_a_valid_frame_is_rejected() {
    for (_, bytes, _) in layouts() {
        for cut in 0..bytes.len() {
            check_err(&bytes[..cut]);
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert!(matches!(CngpCodec.decode(&mut buf), Ok(None)), "cut {cut}");
        }
    }
}

#[test]
fn oversized_fields_fail_to_encode() {
    let mut s = Submit {
        dest_term_ids: vec!["1".into()],
        msg_content: vec![0; 256],
        ..Submit::default()
    };
    assert!(Pdu::new(1, Body::Submit(Box::new(s.clone())))
        .to_bytes()
        .is_err());
    s.msg_content.clear();
    s.sp_id = "12345678901".into();
    assert!(matches!(
        Pdu::new(1, Body::Submit(Box::new(s))).to_bytes(),
        Err(CngpError::FieldTooLong { field: "SPID", .. })
    ));
}

fn arb_tlvs() -> impl Strategy<Value = Tlvs> {
    let one = prop_oneof![
        (
            prop::sample::select(vec![tag::PROTOCOL_ID, tag::CONGESTION_STATE]),
            any::<u8>()
        )
            .prop_map(|(tag, v)| Tlv {
                tag,
                value: TlvValue::U8(v)
            }),
        (1u16..0x00FF, prop::collection::vec(any::<u8>(), 0..8)).prop_map(|(tag, v)| Tlv {
            tag,
            value: TlvValue::Raw(v)
        }),
    ];
    prop::collection::vec(one, 0..4).prop_map(Tlvs)
}

fn arb_submit() -> impl Strategy<Value = Submit> {
    (
        (text(10), any::<[u8; 5]>(), text(10), text(2), text(6)),
        (text(17), text(17), text(21), text(21)),
        (
            prop::collection::vec(text(21), 1..=MAX_DESTINATIONS),
            prop::collection::vec(any::<u8>(), 0..=255),
            arb_tlvs(),
        ),
    )
        .prop_map(|(a, b, c)| Submit {
            sp_id: a.0,
            sub_type: a.1[0],
            need_report: a.1[1],
            priority: a.1[2],
            service_id: a.2,
            fee_type: a.3,
            fee_user_type: a.1[3],
            fee_code: a.4,
            msg_format: a.1[4],
            valid_time: b.0,
            at_time: b.1,
            src_term_id: b.2,
            charge_term_id: b.3,
            dest_term_ids: c.0,
            msg_content: c.1,
            tlvs: c.2,
        })
}

fn arb_deliver() -> impl Strategy<Value = Deliver> {
    let content = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..=255).prop_map(DeliverContent::Message),
        arb_receipt().prop_map(DeliverContent::Report),
    ];
    (
        (any::<[u8; 10]>(), any::<u8>(), text(14), text(21), text(21)),
        (content, arb_tlvs()),
    )
        .prop_map(|(a, b)| Deliver {
            msg_id: MsgId10(a.0),
            msg_format: a.1,
            recv_time: a.2,
            src_term_id: a.3,
            dest_term_id: a.4,
            content: b.0,
            tlvs: b.1,
        })
}

fn arb_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (
            text(10),
            any::<[u8; 16]>(),
            any::<u8>(),
            any::<u32>(),
            any::<u8>()
        )
            .prop_map(|(c, a, m, t, v)| Body::Login(Login {
                client_id: c,
                authenticator_client: a,
                login_mode: m,
                timestamp: t,
                version: v,
            })),
        (any::<[u8; 16]>(), any::<u8>()).prop_map(|(a, v)| Body::LoginResp(LoginResp {
            authenticator_server: a,
            version: v,
        })),
        arb_submit().prop_map(|s| Body::Submit(Box::new(s))),
        (any::<[u8; 10]>(), arb_tlvs()).prop_map(|(m, t)| Body::SubmitResp(SubmitResp {
            msg_id: MsgId10(m),
            tlvs: t
        })),
        arb_deliver().prop_map(|d| Body::Deliver(Box::new(d))),
        (any::<[u8; 10]>(), arb_tlvs()).prop_map(|(m, t)| Body::DeliverResp(DeliverResp {
            msg_id: MsgId10(m),
            tlvs: t
        })),
        Just(Body::ActiveTest),
        Just(Body::ActiveTestResp),
        Just(Body::Exit),
        Just(Body::ExitResp),
    ]
}

/// CNGP's status codes are unconfirmed (see [`super::status`]): only "system busy" and a
/// duplicate sequence are worth resending; codes named only by SMGP, and unknown ones, are final,
/// and CNGP's flow-control signal is 1 alone.
#[test]
fn only_busy_and_duplicate_sequence_are_retried() {
    use crate::link::Protocol;
    assert_eq!(super::status(0), (false, "success"));
    for code in [1, 12] {
        assert!(super::status(code).0, "code {code} retryable");
    }
    for code in [2, 10, 11, 20, 21, 22, 30, 49, 75, 88, 255, u32::MAX] {
        assert!(!super::status(code).0, "code {code} is final");
    }
    assert!(Protocol::Cngp.is_flow_control(1));
    assert!(!Protocol::Cngp.is_flow_control(75));
    assert!(
        Protocol::Smgp.is_flow_control(75),
        "SMGP's own sending-limit code"
    );
}

proptest! {
    #[test]
    fn every_pdu_round_trips(seq in any::<u32>(), status in any::<u32>(), body in arb_body()) {
        let pdu = Pdu::with_status(seq, status, body);
        // And through the stream codec, two frames back to back.
        round_trips(pdu, Pdu::to_bytes, Pdu::decode, || CngpCodec)?;
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        decode_garbage(&bytes, Pdu::decode, CngpCodec);
    }

    #[test]
    fn garbage_behind_a_valid_header_never_panics(
        command in prop::sample::select(vec![1u32, 2, 3, 4, 6, 0x8000_0001, 0x8000_0002,
            0x8000_0003, 0x8000_0004, 0x8000_0006]),
        body in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let _ = Pdu::decode(&frame(command, 0, 1, &body));
    }
}
