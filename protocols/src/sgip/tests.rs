//! Byte layouts written out by hand from the SGIP 1.2 specification, checked against the codec in
//! both directions, plus property tests: every PDU round-trips, and no input makes decoding panic.

use bytes::BytesMut;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

use super::*;

use crate::codec_tests::{decode_garbage, octets, round_trips};

const SEQ: SequenceNumber = SequenceNumber {
    node_id: 3_020_012_345,
    time: 1_125_070_100,
    number: 77,
};

/// A frame assembled field by field: header (with SEQ) then body.
fn frame(command: u32, body: &[u8]) -> Vec<u8> {
    let mut v = ((20 + body.len()) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(&command.to_be_bytes());
    v.extend_from_slice(&SEQ.node_id.to_be_bytes());
    v.extend_from_slice(&SEQ.time.to_be_bytes());
    v.extend_from_slice(&SEQ.number.to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// A fixed-width text field, NUL-padded.
const RESERVE: [u8; 8] = [0; 8];

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Decoding `bytes` gives `body` under SEQ, and encoding that gives `bytes` back.
fn check(bytes: &[u8], body: Body) {
    let expected = Pdu::new(SEQ, body);
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

/// (description, command, body bytes, expected body, total PDU length from the spec)
fn fixed_layouts() -> Vec<(&'static str, u32, Vec<u8>, Body, usize)> {
    vec![
        (
            "Bind, LoginType 1",
            0x1,
            cat(&[&[1], &octets("herald", 16), &octets("pa55", 16), &RESERVE]),
            Body::Bind(Bind {
                login_type: 1,
                login_name: "herald".into(),
                login_password: "pa55".into(),
            }),
            61,
        ),
        (
            "Bind_Resp, Result 1",
            0x8000_0001,
            cat(&[&[1], &RESERVE]),
            Body::BindResp(Resp { result: 1 }),
            29,
        ),
        ("Unbind", 0x2, vec![], Body::Unbind, 20),
        ("Unbind_Resp", 0x8000_0002, vec![], Body::UnbindResp, 20),
        (
            "Submit_Resp, Result 11",
            0x8000_0003,
            cat(&[&[11], &RESERVE]),
            Body::SubmitResp(Resp { result: 11 }),
            29,
        ),
        (
            "Deliver_Resp",
            0x8000_0004,
            cat(&[&[0], &RESERVE]),
            Body::DeliverResp(Resp { result: 0 }),
            29,
        ),
        (
            "Report_Resp",
            0x8000_0005,
            cat(&[&[0], &RESERVE]),
            Body::ReportResp(Resp { result: 0 }),
            29,
        ),
        (
            "Report: failed with ErrorCode 25",
            0x5,
            cat(&[
                &3_020_012_345u32.to_be_bytes(),
                &125_070_100u32.to_be_bytes(),
                &42u32.to_be_bytes(),
                &[0],
                &octets("8613800138000", 21),
                &[2, 25],
                &RESERVE,
            ]),
            Body::Report(Report {
                submit_sequence: SequenceNumber::new(3_020_012_345, 125_070_100, 42),
                report_type: 0,
                user_number: "8613800138000".into(),
                state: 2,
                error_code: 25,
            }),
            64,
        ),
    ]
}

#[test]
fn fixed_size_layouts() {
    for (what, command, body, expected, total) in fixed_layouts() {
        let bytes = frame(command, &body);
        assert_eq!(bytes.len(), total, "{what}: total length");
        check(&bytes, expected);
    }
}

#[test]
fn submit_layout() {
    let content = b"hello";
    let body = cat(&[
        &octets("10655012345", 21),
        &octets("000000000000000000000", 21),
        &[2], // UserCount
        &octets("8613800138000", 21),
        &octets("8613100000000", 21),
        &octets("12345", 5),
        &octets("HERALD", 10),
        &[1], // FeeType
        &octets("0", 6),
        &octets("0", 6),
        &[0, 2, 9], // AgentFlag, MorelatetoMTFlag, Priority
        &octets("", 16),
        &octets("251125070100032+", 16),
        &[1, 0, 0, 0, 0], // ReportFlag, TP_pid, TP_udhi, MessageCoding, MessageType
        &(content.len() as u32).to_be_bytes(),
        content,
        &RESERVE,
    ]);
    let bytes = frame(0x3, &body);
    // Fixed part 143 bytes with the header, 21 per recipient, then the content.
    assert_eq!(bytes.len(), 143 + 2 * 21 + content.len());
    check(
        &bytes,
        Body::Submit(Box::new(Submit {
            sp_number: "10655012345".into(),
            charge_number: "000000000000000000000".into(),
            user_numbers: vec!["8613800138000".into(), "8613100000000".into()],
            corp_id: "12345".into(),
            service_type: "HERALD".into(),
            fee_type: 1,
            fee_value: "0".into(),
            given_value: "0".into(),
            agent_flag: 0,
            morelate_to_mt_flag: 2,
            priority: 9,
            expire_time: String::new(),
            schedule_time: "251125070100032+".into(),
            report_flag: 1,
            tp_pid: 0,
            tp_udhi: 0,
            message_coding: 0,
            message_type: 0,
            message_content: content.to_vec(),
        })),
    );
}

#[test]
fn deliver_layout() {
    let content = [0x90, 0x00, 0x8B, 0xA2]; // "退订" in UCS2
    let body = cat(&[
        &octets("8613800138000", 21),
        &octets("10655012345", 21),
        &[0, 0, 8],
        &4u32.to_be_bytes(),
        &content,
        &RESERVE,
    ]);
    let bytes = frame(0x4, &body);
    assert_eq!(bytes.len(), 20 + 57 + 4);
    check(
        &bytes,
        Body::Deliver(Box::new(Deliver {
            user_number: "8613800138000".into(),
            sp_number: "10655012345".into(),
            tp_pid: 0,
            tp_udhi: 0,
            message_coding: 8,
            message_content: content.to_vec(),
        })),
    );
}

#[test]
fn reserve_bytes_are_ignored_when_read() {
    let body = cat(&[&[0], b"LINKID!!"]);
    assert_eq!(
        Pdu::decode(&frame(0x8000_0003, &body)).ok(),
        Some(Pdu::new(SEQ, Body::SubmitResp(Resp { result: 0 })))
    );
}

#[test]
fn malformed_input_is_an_error() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("shorter than a header", vec![0, 0, 0, 20, 0, 0]),
        ("Trace is not spoken here", frame(0x1000, &[])),
        ("unknown command", frame(0x1234_5678, &[])),
        ("Unbind has no body", frame(0x2, &[0])),
        ("Submit_Resp is 9 bytes", frame(0x8000_0003, &[0; 8])),
        ("Bind is 41 bytes", frame(0x1, &[0; 40])),
        ("Report is 44 bytes", frame(0x5, &[0; 45])),
        (
            "MessageLength beyond the frame",
            frame(
                0x4,
                &cat(&[&[0; 45], &0xFFFF_FFF0u32.to_be_bytes(), &RESERVE]),
            ),
        ),
        (
            "Deliver without its Reserve",
            frame(0x4, &cat(&[&[0; 45], &0u32.to_be_bytes()])),
        ),
    ];
    for (what, bytes) in cases {
        assert!(Pdu::decode(&bytes).is_err(), "{what}: accepted");
    }
    // Message Length says more than is present, more than the maximum, or less than given.
    let mut short = frame(0x8000_0003, &[0; 9]);
    short.truncate(25);
    check_err(&short);
    let mut huge = frame(0x2, &[]);
    huge[..4].copy_from_slice(&5000u32.to_be_bytes());
    check_err(&huge);
    let mut long = frame(0x2, &[]);
    long.push(0);
    check_err(&long);
}

#[test]
fn user_count_outside_range_or_short_block_is_an_error() {
    let mut s = sample_submit();
    let bytes = Pdu::new(SEQ, Body::Submit(Box::new(s.clone())))
        .to_bytes()
        .expect("encodes");
    // UserCount sits after the header, SPNumber and ChargeNumber: offset 20 + 21 + 21 = 62.
    let mut patched = bytes.clone();
    assert_eq!(patched[62], 1);
    patched[62] = 100; // the block of 100 numbers is not there
    check_err(&patched);
    patched[62] = 0;
    check_err(&patched);
    patched[62] = 101;
    check_err(&patched);
    s.user_numbers = vec!["1".into(); 101];
    assert!(Pdu::new(SEQ, Body::Submit(Box::new(s))).to_bytes().is_err());
}

#[test]
fn oversized_fields_fail_to_encode() {
    let mut s = sample_submit();
    s.message_content = vec![0; MAX_PDU_LEN];
    assert!(Pdu::new(SEQ, Body::Submit(Box::new(s))).to_bytes().is_err());
    let b = Bind {
        login_type: 1,
        login_name: "a-login-name-too-long".into(),
        login_password: String::new(),
    };
    assert!(matches!(
        Pdu::new(SEQ, Body::Bind(b)).to_bytes(),
        Err(SgipError::FieldTooLong {
            field: "LoginName",
            ..
        })
    ));
}

#[test]
fn every_truncation_of_a_valid_frame_is_rejected() {
    for body in [
        Body::Submit(Box::new(sample_submit())),
        Body::Report(Report {
            submit_sequence: SEQ,
            report_type: 0,
            user_number: "8613800138000".into(),
            state: 0,
            error_code: 0,
        }),
    ] {
        let bytes = Pdu::new(SEQ, body).to_bytes().expect("encodes");
        for cut in 0..bytes.len() {
            check_err(&bytes[..cut]);
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert!(matches!(SgipCodec.decode(&mut buf), Ok(None)), "cut {cut}");
        }
    }
}

fn sample_submit() -> Submit {
    Submit {
        sp_number: "10655".into(),
        user_numbers: vec!["8613800138000".into()],
        message_content: b"hi".to_vec(),
        ..Submit::default()
    }
}

fn text(width: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[0-9A-Za-z+]{{0,{width}}}")).expect("valid regex")
}

fn arb_sequence() -> impl Strategy<Value = SequenceNumber> {
    (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(n, t, s)| SequenceNumber::new(n, t, s))
}

fn arb_submit() -> impl Strategy<Value = Submit> {
    (
        (
            text(21),
            text(21),
            prop::collection::vec(text(21), 1..=MAX_USERS),
            text(5),
            text(10),
        ),
        (any::<[u8; 4]>(), text(6), text(6), text(16), text(16)),
        (
            any::<[u8; 5]>(),
            // Room for 100 recipients within MAX_PDU_LEN.
            prop::collection::vec(any::<u8>(), 0..=1800),
        ),
    )
        .prop_map(|(a, b, c)| Submit {
            sp_number: a.0,
            charge_number: a.1,
            user_numbers: a.2,
            corp_id: a.3,
            service_type: a.4,
            fee_type: b.0[0],
            fee_value: b.1,
            given_value: b.2,
            agent_flag: b.0[1],
            morelate_to_mt_flag: b.0[2],
            priority: b.0[3],
            expire_time: b.3,
            schedule_time: b.4,
            report_flag: c.0[0],
            tp_pid: c.0[1],
            tp_udhi: c.0[2],
            message_coding: c.0[3],
            message_type: c.0[4],
            message_content: c.1,
        })
}

fn arb_deliver() -> impl Strategy<Value = Deliver> {
    (
        text(21),
        text(21),
        any::<[u8; 3]>(),
        prop::collection::vec(any::<u8>(), 0..=2000),
    )
        .prop_map(|(user, sp, b, content)| Deliver {
            user_number: user,
            sp_number: sp,
            tp_pid: b[0],
            tp_udhi: b[1],
            message_coding: b[2],
            message_content: content,
        })
}

fn arb_report() -> impl Strategy<Value = Report> {
    (arb_sequence(), any::<[u8; 3]>(), text(21)).prop_map(|(seq, b, user)| Report {
        submit_sequence: seq,
        report_type: b[0],
        user_number: user,
        state: b[1],
        error_code: b[2],
    })
}

fn arb_body() -> impl Strategy<Value = Body> {
    let resp = || any::<u8>().prop_map(|result| Resp { result });
    prop_oneof![
        (any::<u8>(), text(16), text(16)).prop_map(|(t, n, p)| Body::Bind(Bind {
            login_type: t,
            login_name: n,
            login_password: p,
        })),
        resp().prop_map(Body::BindResp),
        Just(Body::Unbind),
        Just(Body::UnbindResp),
        arb_submit().prop_map(|s| Body::Submit(Box::new(s))),
        resp().prop_map(Body::SubmitResp),
        arb_deliver().prop_map(|d| Body::Deliver(Box::new(d))),
        resp().prop_map(Body::DeliverResp),
        arb_report().prop_map(Body::Report),
        resp().prop_map(Body::ReportResp),
    ]
}

proptest! {
    #[test]
    fn every_pdu_round_trips(seq in arb_sequence(), body in arb_body()) {
        let pdu = Pdu::new(seq, body);
        // And through the stream codec, two frames back to back.
        round_trips(pdu, Pdu::to_bytes, Pdu::decode, || SgipCodec)?;
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        decode_garbage(&bytes, Pdu::decode, SgipCodec);
    }

    #[test]
    fn garbage_behind_a_valid_header_never_panics(
        command in prop::sample::select(vec![1u32, 2, 3, 4, 5, 0x8000_0001, 0x8000_0002,
            0x8000_0003, 0x8000_0004, 0x8000_0005]),
        body in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let _ = Pdu::decode(&frame(command, &body));
    }
}
