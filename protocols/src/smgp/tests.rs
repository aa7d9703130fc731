//! Byte layouts written out field by field from the SMGP 3.0.3 specification, checked against the
//! codec in both directions, plus property tests: every PDU round-trips, and no input makes
//! decoding panic.

use bytes::BytesMut;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

use super::*;
use crate::telecom::{Tlv, TlvValue};

use crate::codec_tests::{arb_receipt, decode_garbage, octets, round_trips, text};

fn frame(command: u32, sequence: u32, body: &[u8]) -> Vec<u8> {
    let mut v = ((12 + body.len()) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(&command.to_be_bytes());
    v.extend_from_slice(&sequence.to_be_bytes());
    v.extend_from_slice(body);
    v
}

const ID: MsgId10 = MsgId10([0x01, 0x00, 0x61, 0x01, 0x16, 0x17, 0x00, 0x01, 0x23, 0x45]);

/// Decoding `bytes` gives `expected`, and encoding `expected` gives `bytes` back.
fn check(bytes: &[u8], expected: Pdu) {
    let decoded = Pdu::decode(bytes).unwrap_or_else(|e| panic!("decode failed: {e}"));
    assert_eq!(decoded, expected);
    let encoded = expected
        .to_bytes()
        .unwrap_or_else(|e| panic!("encode failed: {e}"));
    assert_eq!(encoded, bytes, "encoding differs from the spec layout");
}

fn check_err(bytes: &[u8]) {
    assert!(Pdu::decode(bytes).is_err(), "accepted {bytes:02x?}");
}

/// (name, bytes from the spec, value) — one row per PDU layout.
fn layouts() -> Vec<(&'static str, Vec<u8>, Pdu)> {
    let auth: [u8; 16] = core::array::from_fn(|i| i as u8 + 1);
    let content = b"hello";
    let submit_body = [
        &[0u8, 1, 3][..], // MsgType, NeedReport, Priority
        &octets("HERALD", 10),
        &octets("00", 2),
        &octets("000000", 6),
        &octets("", 6),
        &[0], // MsgFormat
        &octets("", 17),
        &octets("", 17),
        &octets("10690001", 21),
        &octets("", 21),
        &[1],
        &octets("13300000001", 21),
        &[content.len() as u8],
        content,
        &octets("", 8),
        // PkTotal = 2, PkNumber = 1, TP_udhi = 1, LinkID (20, padded), MsgSrc (8, padded)
        &[0x00, 0x09, 0x00, 0x01, 2],
        &[0x00, 0x0A, 0x00, 0x01, 1],
        &[0x00, 0x02, 0x00, 0x01, 1],
        &[0x00, 0x03, 0x00, 0x14],
        &octets("LNK1", 20),
        &[0x00, 0x10, 0x00, 0x08],
        &octets("SP01", 8),
    ]
    .concat();
    let receipt = Receipt {
        msg_id: ID,
        sub: "001".into(),
        dlvrd: "001".into(),
        submit_date: "2401161700".into(),
        done_date: "2401161701".into(),
        stat: "DELIVRD".into(),
        err: "000".into(),
        text: String::new(),
    };
    let mut receipt_bytes = b"id:".to_vec();
    receipt_bytes.extend_from_slice(&ID.0);
    receipt_bytes.extend_from_slice(
        b" sub:001 dlvrd:001 submit date:2401161700 done date:2401161701 stat:DELIVRD err:000 text:",
    );
    receipt_bytes.resize(122, 0);
    let deliver_body = |is_report: u8, content: &[u8], tlvs: &[u8]| {
        [
            &ID.0[..],
            &[is_report, 8],
            &octets("20240116170001", 14),
            &octets("13300000001", 21),
            &octets("10690001", 21),
            &[content.len() as u8],
            content,
            &octets("", 8),
            tlvs,
        ]
        .concat()
    };
    vec![
        (
            "Login",
            frame(
                0x1,
                1,
                &[
                    &octets("12345678", 8)[..],
                    &auth,
                    &[2],
                    &116_170_000u32.to_be_bytes(),
                    &[0x30],
                ]
                .concat(),
            ),
            Pdu::new(
                1,
                Body::Login(Login {
                    client_id: "12345678".into(),
                    authenticator_client: auth,
                    login_mode: login_mode::TRANSMIT,
                    timestamp: 116_170_000,
                    client_version: VERSION_3_0,
                }),
            ),
        ),
        (
            "Login_Resp",
            frame(
                0x8000_0001,
                1,
                &[&21u32.to_be_bytes()[..], &[0xAA; 16], &[0x30]].concat(),
            ),
            Pdu::new(
                1,
                Body::LoginResp(LoginResp {
                    status: 21,
                    authenticator_server: [0xAA; 16],
                    server_version: VERSION_3_0,
                }),
            ),
        ),
        (
            "Submit with TLVs",
            frame(0x2, 7, &submit_body),
            Pdu::new(
                7,
                Body::Submit(Box::new(Submit {
                    msg_type: 0,
                    need_report: 1,
                    priority: 3,
                    service_id: "HERALD".into(),
                    fee_type: "00".into(),
                    fee_code: "000000".into(),
                    fixed_fee: String::new(),
                    msg_format: 0,
                    valid_time: String::new(),
                    at_time: String::new(),
                    src_term_id: "10690001".into(),
                    charge_term_id: String::new(),
                    dest_term_ids: vec!["13300000001".into()],
                    msg_content: content.to_vec(),
                    reserve: String::new(),
                    tlvs: Tlvs::default()
                        .with_u8(tag::PK_TOTAL, 2)
                        .with_u8(tag::PK_NUMBER, 1)
                        .with_u8(tag::TP_UDHI, 1)
                        .with_text(tag::LINK_ID, "LNK1")
                        .with_text(tag::MSG_SRC, "SP01"),
                })),
            ),
        ),
        (
            "Submit_Resp",
            frame(0x8000_0002, 7, &[&ID.0[..], &0u32.to_be_bytes()].concat()),
            Pdu::new(
                7,
                Body::SubmitResp(SubmitResp {
                    msg_id: ID,
                    status: 0,
                }),
            ),
        ),
        (
            "Deliver (MO) with TP_udhi and an unknown TLV",
            frame(
                0x3,
                9,
                &deliver_body(
                    0,
                    &[0x90, 0x00, 0x8B, 0xA2],
                    &[0, 2, 0, 1, 0, 0x77, 0x01, 0, 2, 0xAB, 0xCD],
                ),
            ),
            Pdu::new(
                9,
                Body::Deliver(Box::new(Deliver {
                    msg_id: ID,
                    msg_format: 8,
                    recv_time: "20240116170001".into(),
                    src_term_id: "13300000001".into(),
                    dest_term_id: "10690001".into(),
                    content: DeliverContent::Message(vec![0x90, 0x00, 0x8B, 0xA2]),
                    reserve: String::new(),
                    tlvs: Tlvs(vec![
                        Tlv {
                            tag: tag::TP_UDHI,
                            value: TlvValue::U8(0),
                        },
                        Tlv {
                            tag: 0x7701,
                            value: TlvValue::Raw(vec![0xAB, 0xCD]),
                        },
                    ]),
                })),
            ),
        ),
        (
            "Deliver (report)",
            frame(0x3, 10, &deliver_body(1, &receipt_bytes, &[])),
            Pdu::new(
                10,
                Body::Deliver(Box::new(Deliver {
                    msg_id: ID,
                    msg_format: 8,
                    recv_time: "20240116170001".into(),
                    src_term_id: "13300000001".into(),
                    dest_term_id: "10690001".into(),
                    content: DeliverContent::Report(receipt),
                    reserve: String::new(),
                    tlvs: Tlvs::default(),
                })),
            ),
        ),
        (
            "Deliver_Resp",
            frame(0x8000_0003, 10, &[&ID.0[..], &1u32.to_be_bytes()].concat()),
            Pdu::new(
                10,
                Body::DeliverResp(DeliverResp {
                    msg_id: ID,
                    status: 1,
                }),
            ),
        ),
        (
            "Active_Test",
            frame(0x4, 3, &[]),
            Pdu::new(3, Body::ActiveTest),
        ),
        (
            "Active_Test_Resp",
            frame(0x8000_0004, 3, &[]),
            Pdu::new(3, Body::ActiveTestResp),
        ),
        ("Exit", frame(0x6, 4, &[]), Pdu::new(4, Body::Exit)),
        (
            "Exit_Resp",
            frame(0x8000_0006, 4, &[]),
            Pdu::new(4, Body::ExitResp),
        ),
    ]
}

#[test]
fn layouts_from_the_spec() {
    for (name, bytes, pdu) in layouts() {
        eprintln!("{name}");
        check(&bytes, pdu);
    }
}

#[test]
fn fixed_sizes_match_the_spec() {
    let sizes: Vec<(&str, usize)> = layouts()
        .iter()
        .map(|(name, bytes, _)| (*name, bytes.len()))
        .collect();
    assert!(sizes.contains(&("Login", 12 + 30)));
    assert!(sizes.contains(&("Login_Resp", 12 + 21)));
    assert!(sizes.contains(&("Submit_Resp", 12 + 14)));
    // Submit: 105 fixed bytes + 21 per number + 1 + content + 8 + TLVs.
    assert!(sizes.contains(&(
        "Submit with TLVs",
        12 + 105 + 21 + 1 + 5 + 8 + 10 + 5 + 24 + 12
    )));
}

#[test]
fn malformed_input_is_an_error() {
    check_err(&[]);
    check_err(&[0, 0, 0, 12, 0, 0]);
    check_err(&frame(0x5, 1, &[])); // Forward is not spoken here
    check_err(&frame(0x1234_5678, 1, &[]));
    check_err(&frame(0x4, 1, &[0])); // Active_Test has no body
    check_err(&frame(0x8000_0002, 1, &[0; 13])); // Submit_Resp is 14 bytes
    check_err(&frame(0x1, 1, &[0; 29]));
    let mut short = frame(0x8000_0002, 1, &[0; 14]);
    short.truncate(20);
    check_err(&short);
    let mut huge = frame(0x4, 1, &[]);
    huge[..4].copy_from_slice(&5000u32.to_be_bytes());
    check_err(&huge);
    let mut long = frame(0x4, 1, &[]);
    long.push(0);
    check_err(&long);
}

#[test]
fn bad_tlvs_and_counts_are_errors() {
    let (_, submit, _) = layouts().swap_remove(2);
    // A TLV whose length runs past the end of the PDU.
    let mut past_end = submit.clone();
    past_end.extend_from_slice(&[0x00, 0x01, 0x00, 0x05, 1]);
    let len = past_end.len() as u32;
    past_end[..4].copy_from_slice(&len.to_be_bytes());
    check_err(&past_end);
    // TP_pid with length 2.
    let mut wide = submit.clone();
    wide.extend_from_slice(&[0x00, 0x01, 0x00, 0x02, 1, 1]);
    let len = wide.len() as u32;
    wide[..4].copy_from_slice(&len.to_be_bytes());
    check_err(&wide);
    // A dangling half TLV header.
    let mut dangling = submit.clone();
    dangling.extend_from_slice(&[0x00, 0x01, 0x00]);
    let len = dangling.len() as u32;
    dangling[..4].copy_from_slice(&len.to_be_bytes());
    check_err(&dangling);
    // DestTermIDCount (offset 12 + 105 - 1) of 0, and of 100 without the numbers behind it.
    let mut count = submit.clone();
    assert_eq!(count[116], 1);
    count[116] = 0;
    check_err(&count);
    count[116] = 100;
    check_err(&count);
    count[116] = 101;
    check_err(&count);
}

#[test]
fn oversized_fields_fail_to_encode() {
    let mut s = sample_submit();
    s.msg_content = vec![0; 256];
    assert!(Pdu::new(1, Body::Submit(Box::new(s))).to_bytes().is_err());
    let mut s = sample_submit();
    s.dest_term_ids = vec!["1".into(); 101];
    assert!(Pdu::new(1, Body::Submit(Box::new(s))).to_bytes().is_err());
    let mut s = sample_submit();
    s.tlvs = Tlvs::default().with_text(tag::LINK_ID, "x".repeat(21));
    assert!(Pdu::new(1, Body::Submit(Box::new(s))).to_bytes().is_err());
    let l = Login {
        client_id: "123456789".into(),
        authenticator_client: [0; 16],
        login_mode: 2,
        timestamp: 0,
        client_version: VERSION_3_0,
    };
    assert!(matches!(
        Pdu::new(1, Body::Login(l)).to_bytes(),
        Err(SmgpError::FieldTooLong {
            field: "ClientID",
            ..
        })
    ));
}

#[test]
fn every_truncation_of_a_valid_frame_is_rejected() {
    for (_, bytes, _) in layouts() {
        for cut in 0..bytes.len() {
            check_err(&bytes[..cut]);
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert!(matches!(SmgpCodec.decode(&mut buf), Ok(None)), "cut {cut}");
            assert!(SmgpCodec.decode_eof(&mut buf).is_err() || cut == 0);
        }
    }
}

#[test]
fn huge_length_is_rejected_without_allocating() {
    let mut buf = BytesMut::from(&[0xFF, 0xFF, 0xFF, 0xF0, 0, 0, 0, 4, 0, 0, 0, 1][..]);
    assert!(matches!(
        SmgpCodec.decode(&mut buf),
        Err(SmgpError::BadLength { .. })
    ));
    assert!(buf.capacity() < 1024);
}

fn sample_submit() -> Submit {
    Submit {
        src_term_id: "10690001".into(),
        dest_term_ids: vec!["13300000001".into()],
        msg_content: b"hi".to_vec(),
        ..Submit::default()
    }
}

fn arb_tlvs() -> impl Strategy<Value = Tlvs> {
    let one = prop_oneof![
        (
            prop::sample::select(vec![1u16, 2, 4, 5, 7, 9, 10, 11, 12, 13, 15, 17]),
            any::<u8>()
        )
            .prop_map(|(tag, v)| Tlv {
                tag,
                value: TlvValue::U8(v)
            }),
        (
            prop::sample::select(vec![
                (3u16, 20usize),
                (6, 32),
                (8, 32),
                (14, 32),
                (16, 8),
                (18, 21)
            ]),
            text(20)
        )
            .prop_map(|((tag, max), t)| Tlv {
                tag,
                value: TlvValue::Text(t.chars().take(max).collect())
            }),
        (0x0100u16..0xFFFF, prop::collection::vec(any::<u8>(), 0..8)).prop_map(|(tag, v)| Tlv {
            tag,
            value: TlvValue::Raw(v)
        }),
    ];
    prop::collection::vec(one, 0..6).prop_map(Tlvs)
}

fn arb_submit() -> impl Strategy<Value = Submit> {
    (
        (any::<[u8; 4]>(), text(10), text(2), text(6), text(6)),
        (text(17), text(17), text(21), text(21)),
        (
            prop::collection::vec(text(21), 1..=MAX_DESTINATIONS),
            prop::collection::vec(any::<u8>(), 0..=255),
            text(8),
            arb_tlvs(),
        ),
    )
        .prop_map(|(a, b, c)| Submit {
            msg_type: a.0[0],
            need_report: a.0[1],
            priority: a.0[2],
            service_id: a.1,
            fee_type: a.2,
            fee_code: a.3,
            fixed_fee: a.4,
            msg_format: a.0[3],
            valid_time: b.0,
            at_time: b.1,
            src_term_id: b.2,
            charge_term_id: b.3,
            dest_term_ids: c.0,
            msg_content: c.1,
            reserve: c.2,
            tlvs: c.3,
        })
}

fn arb_deliver() -> impl Strategy<Value = Deliver> {
    let content = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..=255).prop_map(DeliverContent::Message),
        arb_receipt().prop_map(DeliverContent::Report),
    ];
    (
        (any::<[u8; 10]>(), any::<u8>(), text(14), text(21), text(21)),
        (content, text(8), arb_tlvs()),
    )
        .prop_map(|(a, b)| Deliver {
            msg_id: MsgId10(a.0),
            msg_format: a.1,
            recv_time: a.2,
            src_term_id: a.3,
            dest_term_id: a.4,
            content: b.0,
            reserve: b.1,
            tlvs: b.2,
        })
}

fn arb_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (
            text(8),
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
                client_version: v,
            })),
        (any::<u32>(), any::<[u8; 16]>(), any::<u8>()).prop_map(|(s, a, v)| Body::LoginResp(
            LoginResp {
                status: s,
                authenticator_server: a,
                server_version: v,
            }
        )),
        arb_submit().prop_map(|s| Body::Submit(Box::new(s))),
        (any::<[u8; 10]>(), any::<u32>()).prop_map(|(m, s)| Body::SubmitResp(SubmitResp {
            msg_id: MsgId10(m),
            status: s
        })),
        arb_deliver().prop_map(|d| Body::Deliver(Box::new(d))),
        (any::<[u8; 10]>(), any::<u32>()).prop_map(|(m, s)| Body::DeliverResp(DeliverResp {
            msg_id: MsgId10(m),
            status: s
        })),
        Just(Body::ActiveTest),
        Just(Body::ActiveTestResp),
        Just(Body::Exit),
        Just(Body::ExitResp),
    ]
}

proptest! {
    #[test]
    fn every_pdu_round_trips(seq in any::<u32>(), body in arb_body()) {
        let pdu = Pdu::new(seq, body);
        // And through the stream codec, two frames back to back.
        round_trips(pdu, Pdu::to_bytes, Pdu::decode, || SmgpCodec)?;
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        decode_garbage(&bytes, Pdu::decode, SmgpCodec);
    }

    #[test]
    fn garbage_behind_a_valid_header_never_panics(
        command in prop::sample::select(vec![1u32, 2, 3, 4, 6, 0x8000_0001, 0x8000_0002,
            0x8000_0003, 0x8000_0004, 0x8000_0006]),
        body in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let _ = Pdu::decode(&frame(command, 1, &body));
    }
}
