//! Byte layouts written out by hand from the CMPP 3.0 specification (and its §12 notes on 2.0),
//! checked against the codec in both directions, plus property tests: every PDU round-trips in
//! both versions, and no input makes decoding panic.

use bytes::BytesMut;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

use super::*;

use crate::codec_tests::{decode_garbage, octets, round_trips, text};

/// A frame assembled field by field: header then body.
fn frame(command: u32, sequence: u32, body: &[u8]) -> Vec<u8> {
    let mut v = ((12 + body.len()) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(&command.to_be_bytes());
    v.extend_from_slice(&sequence.to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// A fixed-width Octet String, NUL-padded.
fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

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

/// `check` in CMPP 2.0 layouts.
fn check2(bytes: &[u8], expected: Pdu) {
    let decoded =
        Pdu::decode_as(bytes, Version::V2).unwrap_or_else(|e| panic!("2.0 decode failed: {e}"));
    assert_eq!(decoded, expected);
    let encoded = expected
        .to_bytes_as(Version::V2)
        .unwrap_or_else(|e| panic!("2.0 encode failed: {e}"));
    assert_eq!(encoded, bytes, "encoding differs from the 2.0 layout");
}

fn check2_err(bytes: &[u8]) {
    assert!(
        Pdu::decode_as(bytes, Version::V2).is_err(),
        "2.0 accepted {bytes:02x?}"
    );
}

#[test]
fn connect_layout() {
    let auth: [u8; 16] = core::array::from_fn(|i| i as u8 + 1);
    let body = cat(&[
        &octets("901234", 6),
        &auth,
        &[0x30],
        &1_125_070_100u32.to_be_bytes(),
    ]);
    let bytes = frame(0x0000_0001, 1, &body);
    assert_eq!(bytes.len(), 39);
    check(
        &bytes,
        Pdu::new(
            1,
            Body::Connect(Connect {
                source_addr: "901234".into(),
                authenticator_source: auth,
                version: 0x30,
                timestamp: 1_125_070_100,
            }),
        ),
    );
}

#[test]
fn connect_resp_layout() {
    let body = cat(&[&3u32.to_be_bytes(), &[0xAA; 16], &[0x30]]);
    let bytes = frame(0x8000_0001, 1, &body);
    assert_eq!(bytes.len(), 33);
    check(
        &bytes,
        Pdu::new(
            1,
            Body::ConnectResp(ConnectResp {
                status: 3,
                authenticator_ismg: [0xAA; 16],
                version: 0x30,
            }),
        ),
    );
}

#[test]
fn empty_bodies_layout() {
    check(&frame(0x2, 5, &[]), Pdu::new(5, Body::Terminate));
    check(
        &frame(0x8000_0002, 5, &[]),
        Pdu::new(5, Body::TerminateResp),
    );
    check(&frame(0x8, 6, &[]), Pdu::new(6, Body::ActiveTest));
    check(
        &frame(0x8000_0008, 6, &[0]),
        Pdu::new(6, Body::ActiveTestResp),
    );
    // Some gateways omit ACTIVE_TEST_RESP's Reserved byte.
    assert_eq!(
        Pdu::decode(&frame(0x8000_0008, 6, &[])).ok(),
        Some(Pdu::new(6, Body::ActiveTestResp))
    );
}

#[test]
fn submit_layout() {
    let content = b"hello";
    let body = cat(&[
        &0u64.to_be_bytes(), // Msg_Id
        &[1, 1, 1, 1],       // Pk_total, Pk_number, Registered_Delivery, Msg_level
        &octets("SVC", 10),
        &[0], // Fee_UserType
        &octets("", 32),
        &[0, 0, 0, 0], // Fee_terminal_type, TP_pId, TP_udhi, Msg_Fmt
        &octets("901234", 6),
        &octets("01", 2),
        &octets("000000", 6),
        &octets("", 17),
        &octets("", 17),
        &octets("1065901234", 21),
        &[1], // DestUsr_tl
        &octets("13800138000", 32),
        &[0], // Dest_terminal_type
        &[content.len() as u8],
        content,
        &octets("", 20),
    ]);
    let bytes = frame(0x4, 77, &body);
    assert_eq!(bytes.len(), 12 + 151 + 32 + 5);
    check(
        &bytes,
        Pdu::new(
            77,
            Body::Submit(Box::new(Submit {
                msg_id: 0,
                pk_total: 1,
                pk_number: 1,
                registered_delivery: 1,
                msg_level: 1,
                service_id: "SVC".into(),
                fee_user_type: 0,
                fee_terminal_id: String::new(),
                fee_terminal_type: 0,
                tp_pid: 0,
                tp_udhi: 0,
                msg_fmt: 0,
                msg_src: "901234".into(),
                fee_type: "01".into(),
                fee_code: "000000".into(),
                valid_time: String::new(),
                at_time: String::new(),
                src_id: "1065901234".into(),
                dest_terminal_ids: vec!["13800138000".into()],
                dest_terminal_type: 0,
                msg_content: content.to_vec(),
                link_id: String::new(),
            })),
        ),
    );
}

#[test]
fn submit_resp_and_deliver_resp_layout() {
    let body = cat(&[&0x0123_4567_89AB_CDEFu64.to_be_bytes(), &8u32.to_be_bytes()]);
    check(
        &frame(0x8000_0004, 2, &body),
        Pdu::new(
            2,
            Body::SubmitResp(SubmitResp {
                msg_id: 0x0123_4567_89AB_CDEF,
                result: 8,
            }),
        ),
    );
    check(
        &frame(0x8000_0005, 3, &body),
        Pdu::new(
            3,
            Body::DeliverResp(DeliverResp {
                msg_id: 0x0123_4567_89AB_CDEF,
                result: 8,
            }),
        ),
    );
}

fn deliver_body(registered: u8, content: &[u8]) -> Vec<u8> {
    cat(&[
        &42u64.to_be_bytes(),
        &octets("1065901234", 21),
        &octets("SVC", 10),
        &[0, 0, 8], // TP_pid, TP_udhi, Msg_Fmt
        &octets("13800138000", 32),
        &[0, registered, content.len() as u8],
        content,
        &octets("", 20),
    ])
}

#[test]
fn deliver_mo_layout() {
    let content = [0x4F, 0x60, 0x59, 0x7D]; // "你好" in UCS2
    let bytes = frame(0x5, 9, &deliver_body(0, &content));
    assert_eq!(bytes.len(), 12 + 97 + 4);
    check(
        &bytes,
        Pdu::new(
            9,
            Body::Deliver(Box::new(Deliver {
                msg_id: 42,
                dest_id: "1065901234".into(),
                service_id: "SVC".into(),
                tp_pid: 0,
                tp_udhi: 0,
                msg_fmt: 8,
                src_terminal_id: "13800138000".into(),
                src_terminal_type: 0,
                content: DeliverContent::Message(content.to_vec()),
                link_id: String::new(),
            })),
        ),
    );
}

#[test]
fn deliver_report_layout() {
    let report = cat(&[
        &0xFEDC_BA98_7654_3210u64.to_be_bytes(),
        b"DELIVRD",
        b"2511250701",
        b"2511250702",
        &octets("13800138000", 32),
        &7u32.to_be_bytes(),
    ]);
    assert_eq!(report.len(), 71);
    let bytes = frame(0x5, 10, &deliver_body(1, &report));
    check(
        &bytes,
        Pdu::new(
            10,
            Body::Deliver(Box::new(Deliver {
                msg_id: 42,
                dest_id: "1065901234".into(),
                service_id: "SVC".into(),
                tp_pid: 0,
                tp_udhi: 0,
                msg_fmt: 8,
                src_terminal_id: "13800138000".into(),
                src_terminal_type: 0,
                content: DeliverContent::Report(StatusReport {
                    msg_id: 0xFEDC_BA98_7654_3210,
                    stat: "DELIVRD".into(),
                    submit_time: "2511250701".into(),
                    done_time: "2511250702".into(),
                    dest_terminal_id: "13800138000".into(),
                    smsc_sequence: 7,
                }),
                link_id: String::new(),
            })),
        ),
    );
    // A report body of the wrong size (e.g. the 60-byte CMPP 2.0 one) is refused.
    check_err(&frame(0x5, 10, &deliver_body(1, &report[..60])));
    check_err(&frame(0x5, 10, &deliver_body(2, b"x")));
}

#[test]
fn malformed_input_is_an_error() {
    check_err(&[]);
    check_err(&[0, 0, 0, 12, 0, 0]); // shorter than a header
    check_err(&frame(0x0000_0003, 1, &[])); // CMPP_QUERY is not spoken here
    check_err(&frame(0x1234_5678, 1, &[]));
    check_err(&frame(0x8, 1, &[0])); // ACTIVE_TEST has no body
    check_err(&frame(0x8000_0004, 1, &[0; 11])); // SUBMIT_RESP is 12 bytes
    check_err(&frame(0x8000_0001, 1, &[0; 18])); // CMPP 2.0 CONNECT_RESP
                                                 // Total_Length says more than is present, and more than the maximum.
    let mut short = frame(0x8000_0004, 1, &[0; 12]);
    short.truncate(20);
    check_err(&short);
    let mut huge = frame(0x8, 1, &[]);
    huge[..4].copy_from_slice(&5000u32.to_be_bytes());
    check_err(&huge);
    // Total_Length shorter than the bytes handed in.
    let mut long = frame(0x8, 1, &[]);
    long.push(0);
    check_err(&long);
}

#[test]
fn submit_with_too_many_destinations_or_short_block_is_an_error() {
    let mut s = sample_submit();
    let bytes = Pdu::new(1, Body::Submit(Box::new(s.clone())))
        .to_bytes()
        .expect("encodes");
    // Patch DestUsr_tl (offset 12 + 8+4+10+1+32+4+6+2+6+17+17+21 = 140) to 99: the block is missing.
    let mut patched = bytes.clone();
    assert_eq!(patched[140], 1);
    patched[140] = 99;
    check_err(&patched);
    patched[140] = 0;
    check_err(&patched);
    s.dest_terminal_ids = vec!["1".into(); 100];
    assert!(Pdu::new(1, Body::Submit(Box::new(s))).to_bytes().is_err());
}

#[test]
fn oversized_fields_fail_to_encode() {
    let mut s = sample_submit();
    s.msg_content = vec![0; 256];
    assert!(Pdu::new(1, Body::Submit(Box::new(s))).to_bytes().is_err());
    let c = Connect {
        source_addr: "1234567".into(),
        authenticator_source: [0; 16],
        version: 0x30,
        timestamp: 0,
    };
    assert!(matches!(
        Pdu::new(1, Body::Connect(c)).to_bytes(),
        Err(CmppError::FieldTooLong {
            field: "Source_Addr",
            ..
        })
    ));
}

#[test]
fn every_truncation_of_a_valid_frame_is_rejected() {
    for pdu in [
        Pdu::new(1, Body::Submit(Box::new(sample_submit()))),
        Pdu::new(2, Body::ActiveTestResp),
    ] {
        let bytes = pdu.to_bytes().expect("encodes");
        for cut in 0..bytes.len() {
            check_err(&bytes[..cut]);
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert!(
                matches!(CmppCodec::default().decode(&mut buf), Ok(None)),
                "cut {cut}"
            );
        }
    }
}

fn sample_submit() -> Submit {
    Submit {
        pk_total: 1,
        pk_number: 1,
        msg_src: "901234".into(),
        src_id: "1065".into(),
        dest_terminal_ids: vec!["13800138000".into()],
        msg_content: b"hi".to_vec(),
        ..Submit::default()
    }
}

fn arb_submit() -> impl Strategy<Value = Submit> {
    (
        (
            any::<u64>(),
            any::<[u8; 4]>(),
            text(10),
            any::<u8>(),
            text(32),
        ),
        (
            any::<[u8; 4]>(),
            text(6),
            text(2),
            text(6),
            text(17),
            text(17),
        ),
        (
            text(21),
            prop::collection::vec(text(32), 1..=MAX_DESTS),
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..=255),
            text(20),
        ),
    )
        .prop_map(|(a, b, c)| Submit {
            msg_id: a.0,
            pk_total: a.1[0],
            pk_number: a.1[1],
            registered_delivery: a.1[2],
            msg_level: a.1[3],
            service_id: a.2,
            fee_user_type: a.3,
            fee_terminal_id: a.4,
            fee_terminal_type: b.0[0],
            tp_pid: b.0[1],
            tp_udhi: b.0[2],
            msg_fmt: b.0[3],
            msg_src: b.1,
            fee_type: b.2,
            fee_code: b.3,
            valid_time: b.4,
            at_time: b.5,
            src_id: c.0,
            dest_terminal_ids: c.1,
            dest_terminal_type: c.2,
            msg_content: c.3,
            link_id: c.4,
        })
}

/// Enough destinations to exercise the loop while staying under MAX_PDU_LEN with a full content.
const MAX_DESTS: usize = 99;

fn arb_report() -> impl Strategy<Value = StatusReport> {
    (
        any::<u64>(),
        text(7),
        text(10),
        text(10),
        text(32),
        any::<u32>(),
    )
        .prop_map(|(msg_id, stat, s, d, dest, seq)| StatusReport {
            msg_id,
            stat,
            submit_time: s,
            done_time: d,
            dest_terminal_id: dest,
            smsc_sequence: seq,
        })
}

fn arb_deliver() -> impl Strategy<Value = Deliver> {
    let content = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..=255).prop_map(DeliverContent::Message),
        arb_report().prop_map(DeliverContent::Report),
    ];
    (
        (any::<u64>(), text(21), text(10), any::<[u8; 4]>()),
        (text(32), content, text(20)),
    )
        .prop_map(|(a, b)| Deliver {
            msg_id: a.0,
            dest_id: a.1,
            service_id: a.2,
            tp_pid: a.3[0],
            tp_udhi: a.3[1],
            msg_fmt: a.3[2],
            src_terminal_id: b.0,
            src_terminal_type: a.3[3],
            content: b.1,
            link_id: b.2,
        })
}

fn arb_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (text(6), any::<[u8; 16]>(), any::<u8>(), any::<u32>()).prop_map(|(s, a, v, t)| {
            Body::Connect(Connect {
                source_addr: s,
                authenticator_source: a,
                version: v,
                timestamp: t,
            })
        }),
        (any::<u32>(), any::<[u8; 16]>(), any::<u8>()).prop_map(|(s, a, v)| Body::ConnectResp(
            ConnectResp {
                status: s,
                authenticator_ismg: a,
                version: v
            }
        )),
        Just(Body::Terminate),
        Just(Body::TerminateResp),
        Just(Body::ActiveTest),
        Just(Body::ActiveTestResp),
        arb_submit().prop_map(|s| Body::Submit(Box::new(s))),
        (any::<u64>(), any::<u32>()).prop_map(|(m, r)| Body::SubmitResp(SubmitResp {
            msg_id: m,
            result: r
        })),
        arb_deliver().prop_map(|d| Body::Deliver(Box::new(d))),
        (any::<u64>(), any::<u32>()).prop_map(|(m, r)| Body::DeliverResp(DeliverResp {
            msg_id: m,
            result: r
        })),
    ]
}

proptest! {
    #[test]
    fn every_pdu_round_trips(seq in any::<u32>(), body in arb_body()) {
        let pdu = Pdu::new(seq, body);
        // And through the stream codec, two frames back to back.
        round_trips(pdu, Pdu::to_bytes, Pdu::decode, CmppCodec::default)?;
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        decode_garbage(&bytes, Pdu::decode, CmppCodec::default());
    }

    #[test]
    fn garbage_behind_a_valid_header_never_panics(
        command in prop::sample::select(vec![1u32, 2, 4, 5, 8, 0x8000_0001, 0x8000_0002,
            0x8000_0004, 0x8000_0005, 0x8000_0008]),
        body in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let _ = Pdu::decode(&frame(command, 1, &body));
    }
}

// ---- CMPP 2.0 ----

#[test]
fn version_bytes() {
    assert_eq!(Version::from_wire(0x30), Some(Version::V3));
    assert_eq!(Version::from_wire(0x20), Some(Version::V2));
    assert_eq!(Version::from_wire(0x21), Some(Version::V2)); // what some 2.0 clients send
    assert_eq!(Version::from_wire(0x31), None);
    assert_eq!(Version::from_wire(0x10), None);
    assert_eq!(Version::V2.wire(), 0x20);
    assert_eq!(Version::V3.wire(), 0x30);
}

#[test]
fn v2_connect_is_the_3_0_layout() {
    let pdu = Pdu::new(
        1,
        Body::Connect(Connect {
            source_addr: "901234".into(),
            authenticator_source: [7; 16],
            version: 0x20,
            timestamp: 1_125_070_100,
        }),
    );
    let bytes = pdu.to_bytes_as(Version::V2).expect("encodes");
    assert_eq!(bytes.len(), 39);
    assert_eq!(pdu.to_bytes().expect("encodes"), bytes);
    check2(&bytes, pdu);
}

#[test]
fn v2_connect_resp_has_a_one_byte_status() {
    let body = cat(&[&[4], &[0xAA; 16], &[0x20]]);
    let bytes = frame(0x8000_0001, 1, &body);
    assert_eq!(bytes.len(), 12 + 18);
    check2(
        &bytes,
        Pdu::new(
            1,
            Body::ConnectResp(ConnectResp {
                status: 4,
                authenticator_ismg: [0xAA; 16],
                version: 0x20,
            }),
        ),
    );
    // The 3.0 (21-byte) body is not a 2.0 CONNECT_RESP, nor the other way round.
    check2_err(&frame(0x8000_0001, 1, &[0; 21]));
    check_err(&bytes);
    // A status that needs more than one byte cannot be written in 2.0.
    let wide = Pdu::new(
        1,
        Body::ConnectResp(ConnectResp {
            status: 256,
            authenticator_ismg: [0; 16],
            version: 0x20,
        }),
    );
    assert!(matches!(
        wide.to_bytes_as(Version::V2),
        Err(CmppError::BadField {
            field: "Status",
            ..
        })
    ));
}

#[test]
fn v2_submit_resp_and_deliver_resp_have_a_one_byte_result() {
    let body = cat(&[&0x0123_4567_89AB_CDEFu64.to_be_bytes(), &[8]]);
    assert_eq!(body.len(), 9);
    check2(
        &frame(0x8000_0004, 2, &body),
        Pdu::new(
            2,
            Body::SubmitResp(SubmitResp {
                msg_id: 0x0123_4567_89AB_CDEF,
                result: 8,
            }),
        ),
    );
    check2(
        &frame(0x8000_0005, 3, &body),
        Pdu::new(
            3,
            Body::DeliverResp(DeliverResp {
                msg_id: 0x0123_4567_89AB_CDEF,
                result: 8,
            }),
        ),
    );
    check_err(&frame(0x8000_0004, 2, &body));
    check2_err(&frame(0x8000_0004, 2, &[0; 12]));
}

/// A 2.0 SUBMIT: terminal ids are 21 bytes, no Fee_terminal_type / Dest_terminal_type, and an
/// 8-byte Reserve ends the body where 3.0 has LinkID.
fn v2_submit_body(dests: &[&str], content: &[u8]) -> Vec<u8> {
    let mut dest_block = Vec::new();
    for d in dests {
        dest_block.extend_from_slice(&octets(d, 21));
    }
    cat(&[
        &0u64.to_be_bytes(), // Msg_Id
        &[1, 1, 1, 0],       // Pk_total, Pk_number, Registered_Delivery, Msg_level
        &octets("SVC", 10),
        &[2],            // Fee_UserType
        &octets("", 21), // Fee_terminal_Id
        &[0, 0, 8],      // TP_pId, TP_udhi, Msg_Fmt
        &octets("901234", 6),
        &octets("01", 2),
        &octets("000000", 6),
        &octets("", 17),
        &octets("", 17),
        &octets("1065901234", 21),
        &[dests.len() as u8], // DestUsr_tl
        &dest_block,
        &[content.len() as u8],
        content,
        &[0; 8], // Reserve
    ])
}

fn v2_submit(dests: &[&str], content: &[u8]) -> Submit {
    Submit {
        msg_id: 0,
        pk_total: 1,
        pk_number: 1,
        registered_delivery: 1,
        msg_level: 0,
        service_id: "SVC".into(),
        fee_user_type: 2,
        fee_terminal_id: String::new(),
        fee_terminal_type: 0,
        tp_pid: 0,
        tp_udhi: 0,
        msg_fmt: 8,
        msg_src: "901234".into(),
        fee_type: "01".into(),
        fee_code: "000000".into(),
        valid_time: String::new(),
        at_time: String::new(),
        src_id: "1065901234".into(),
        dest_terminal_ids: dests.iter().map(|d| d.to_string()).collect(),
        dest_terminal_type: 0,
        msg_content: content.to_vec(),
        link_id: String::new(),
    }
}

#[test]
fn v2_submit_layout() {
    let content = [0x4F, 0x60, 0x59, 0x7D]; // "你好" in UCS2
    let body = v2_submit_body(&["13800138000"], &content);
    // 117 fixed bytes up to DestUsr_tl, 21 per destination, Msg_Length, content, Reserve 8.
    assert_eq!(body.len(), 117 + 21 + 1 + 4 + 8);
    let bytes = frame(0x4, 77, &body);
    check2(
        &bytes,
        Pdu::new(
            77,
            Body::Submit(Box::new(v2_submit(&["13800138000"], &content))),
        ),
    );
    // Two destinations: the block grows by 21 bytes each.
    let two = frame(
        0x4,
        78,
        &v2_submit_body(&["13800138000", "13900139000"], b"x"),
    );
    assert_eq!(two.len(), 12 + 117 + 42 + 1 + 1 + 8);
    check2(
        &two,
        Pdu::new(
            78,
            Body::Submit(Box::new(v2_submit(&["13800138000", "13900139000"], b"x"))),
        ),
    );
    // 3.0 decoding of 2.0 bytes fails rather than misreading them.
    check_err(&bytes);
}

#[test]
fn v2_submit_ignores_3_0_only_fields_and_bounds_its_widths() {
    let mut s = v2_submit(&["13800138000"], b"hi");
    s.fee_terminal_type = 1;
    s.dest_terminal_type = 1;
    s.link_id = "LINK".into();
    let bytes = Pdu::new(5, Body::Submit(Box::new(s)))
        .to_bytes_as(Version::V2)
        .expect("encodes");
    assert_eq!(
        bytes,
        frame(0x4, 5, &v2_submit_body(&["13800138000"], b"hi"))
    );
    // A 22-character number fits 3.0's 32 bytes but not 2.0's 21.
    let long = v2_submit(&["1234567890123456789012"], b"hi");
    let pdu = Pdu::new(5, Body::Submit(Box::new(long)));
    assert!(pdu.to_bytes().is_ok());
    assert!(matches!(
        pdu.to_bytes_as(Version::V2),
        Err(CmppError::FieldTooLong {
            field: "Dest_terminal_Id",
            len: 22,
            max: 21
        })
    ));
}

#[test]
fn v2_submit_with_a_short_destination_block_is_an_error() {
    let mut bytes = frame(0x4, 1, &v2_submit_body(&["13800138000"], b"hi"));
    // DestUsr_tl sits at 12 + 116.
    assert_eq!(bytes[128], 1);
    bytes[128] = 99;
    check2_err(&bytes);
    bytes[128] = 0;
    check2_err(&bytes);
}

fn v2_deliver_body(registered: u8, content: &[u8]) -> Vec<u8> {
    cat(&[
        &42u64.to_be_bytes(),
        &octets("1065901234", 21), // Dest_Id
        &octets("SVC", 10),
        &[0, 0, 8],                 // TP_pid, TP_udhi, Msg_Fmt
        &octets("13800138000", 21), // Src_terminal_Id
        &[registered, content.len() as u8],
        content,
        &[0; 8], // Reserve
    ])
}

fn v2_deliver(content: DeliverContent) -> Deliver {
    Deliver {
        msg_id: 42,
        dest_id: "1065901234".into(),
        service_id: "SVC".into(),
        tp_pid: 0,
        tp_udhi: 0,
        msg_fmt: 8,
        src_terminal_id: "13800138000".into(),
        src_terminal_type: 0,
        content,
        link_id: String::new(),
    }
}

#[test]
fn v2_deliver_mo_layout() {
    let content = [0x4F, 0x60, 0x59, 0x7D];
    let body = v2_deliver_body(0, &content);
    // 8 + 21 + 10 + 3 + 21 + 1 + 1 = 65 fixed bytes, content, Reserve 8.
    assert_eq!(body.len(), 65 + 4 + 8);
    check2(
        &frame(0x5, 9, &body),
        Pdu::new(
            9,
            Body::Deliver(Box::new(v2_deliver(DeliverContent::Message(
                content.to_vec(),
            )))),
        ),
    );
}

#[test]
fn v2_deliver_report_layout() {
    let report = cat(&[
        &0xFEDC_BA98_7654_3210u64.to_be_bytes(),
        b"DELIVRD",
        b"2511250701",
        b"2511250702",
        &octets("13800138000", 21),
        &7u32.to_be_bytes(),
    ]);
    assert_eq!(report.len(), 60);
    check2(
        &frame(0x5, 10, &v2_deliver_body(1, &report)),
        Pdu::new(
            10,
            Body::Deliver(Box::new(v2_deliver(DeliverContent::Report(StatusReport {
                msg_id: 0xFEDC_BA98_7654_3210,
                stat: "DELIVRD".into(),
                submit_time: "2511250701".into(),
                done_time: "2511250702".into(),
                dest_terminal_id: "13800138000".into(),
                smsc_sequence: 7,
            })))),
        ),
    );
    // A 71-byte (3.0) report inside a 2.0 DELIVER is refused, as is the reverse.
    let mut wide = report.clone();
    wide.splice(49..49, [0u8; 11]);
    assert_eq!(wide.len(), 71);
    check2_err(&frame(0x5, 10, &v2_deliver_body(1, &wide)));
    assert!(StatusReport::decode_as(&report, Version::V2).is_ok());
    assert!(StatusReport::decode(&report).is_err());
}

#[test]
fn v2_every_truncation_of_a_valid_frame_is_rejected() {
    let pdu = Pdu::new(
        1,
        Body::Submit(Box::new(v2_submit(&["13800138000"], b"hi"))),
    );
    let bytes = pdu.to_bytes_as(Version::V2).expect("encodes");
    for cut in 0..bytes.len() {
        check2_err(&bytes[..cut]);
        let mut buf = BytesMut::from(&bytes[..cut]);
        assert!(
            matches!(CmppCodec::new(Version::V2).decode(&mut buf), Ok(None)),
            "cut {cut}"
        );
    }
}

/// Values that fit the 2.0 layouts: 21-byte terminal ids, one-byte status codes, and none of
/// the fields 3.0 added.
fn arb_body_v2() -> impl Strategy<Value = Body> {
    arb_body().prop_map(|body| match body {
        Body::ConnectResp(mut c) => {
            c.status &= 0xFF;
            Body::ConnectResp(c)
        }
        Body::SubmitResp(mut r) => {
            r.result &= 0xFF;
            Body::SubmitResp(r)
        }
        Body::DeliverResp(mut r) => {
            r.result &= 0xFF;
            Body::DeliverResp(r)
        }
        Body::Submit(mut s) => {
            s.fee_terminal_id.truncate(21);
            s.fee_terminal_type = 0;
            for d in &mut s.dest_terminal_ids {
                d.truncate(21);
            }
            s.dest_terminal_type = 0;
            s.link_id.clear();
            Body::Submit(s)
        }
        Body::Deliver(mut d) => {
            d.src_terminal_id.truncate(21);
            d.src_terminal_type = 0;
            d.link_id.clear();
            if let DeliverContent::Report(r) = &mut d.content {
                r.dest_terminal_id.truncate(21);
            }
            Body::Deliver(d)
        }
        other => other,
    })
}

proptest! {
    #[test]
    fn every_v2_pdu_round_trips(seq in any::<u32>(), body in arb_body_v2()) {
        let pdu = Pdu::new(seq, body);
        let bytes = pdu.to_bytes_as(Version::V2).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(Pdu::decode_as(&bytes, Version::V2).ok(), Some(pdu.clone()));
        let mut codec = CmppCodec::new(Version::V2);
        let mut buf = BytesMut::from(&bytes[..]);
        buf.extend_from_slice(&bytes);
        prop_assert_eq!(codec.decode(&mut buf).ok().flatten(), Some(pdu.clone()));
        prop_assert_eq!(codec.decode(&mut buf).ok().flatten(), Some(pdu));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn v2_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = Pdu::decode_as(&bytes, Version::V2);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = CmppCodec::new(Version::V2).decode(&mut buf) {}
    }

    #[test]
    fn v2_garbage_behind_a_valid_header_never_panics(
        command in prop::sample::select(vec![1u32, 2, 4, 5, 8, 0x8000_0001, 0x8000_0002,
            0x8000_0004, 0x8000_0005, 0x8000_0008]),
        body in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let _ = Pdu::decode_as(&frame(command, 1, &body), Version::V2);
    }
}
