//! Byte layouts written out by hand from the SMPP 3.4 specification (§4, Appendix B), checked
//! against the codec in both directions through one `check(bytes, expected)` helper, plus
//! property tests: every PDU round-trips, and no input makes decoding panic.

use bytes::BytesMut;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

use super::*;

/// A frame assembled field by field: header then body.
fn frame(command: u32, status: u32, sequence: u32, body: &[u8]) -> Vec<u8> {
    let mut v = ((16 + body.len()) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(&command.to_be_bytes());
    v.extend_from_slice(&status.to_be_bytes());
    v.extend_from_slice(&sequence.to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// A C-Octet String.
fn c(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

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

#[test]
fn header_only_pdus() {
    let cases = [
        (0x0000_0015, 0, Body::EnquireLink),
        (0x8000_0015, 0, Body::EnquireLinkResp),
        (0x0000_0006, 0, Body::Unbind),
        (0x8000_0006, 0, Body::UnbindResp),
        (0x8000_0000, 0x03, Body::GenericNack),
    ];
    for (cmd, st, body) in cases {
        check(&frame(cmd, st, 7, &[]), Pdu::response(7, st, body));
    }
    assert_eq!(
        frame(0x15, 0, 1, &[]),
        [0, 0, 0, 16, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 1]
    );
}

#[test]
fn binds_of_every_kind() {
    // The spec's example values: system_id SMPP3TEST, password secret08, system_type SUBMIT1.
    for (cmd, kind) in [
        (0x2, BindKind::Transmitter),
        (0x1, BindKind::Receiver),
        (0x9, BindKind::Transceiver),
    ] {
        let body = cat(&[
            &c("SMPP3TEST"),
            &c("secret08"),
            &c("SUBMIT1"),
            &[0x34, 1, 1],
            &c(""),
        ]);
        check(
            &frame(cmd, 0, 1, &body),
            Pdu::new(
                1,
                Body::Bind(Bind {
                    kind,
                    system_id: "SMPP3TEST".into(),
                    password: "secret08".into(),
                    system_type: "SUBMIT1".into(),
                    interface_version: 0x34,
                    addr_ton: 1,
                    addr_npi: 1,
                    address_range: String::new(),
                }),
            ),
        );
    }
}

#[test]
fn bind_resp_with_sc_interface_version() {
    let body = cat(&[&c("SMSC"), &[0x02, 0x10, 0x00, 0x01, 0x34]]);
    check(
        &frame(0x8000_0009, 0, 1, &body),
        Pdu::new(
            1,
            Body::BindResp(BindResp {
                kind: BindKind::Transceiver,
                system_id: "SMSC".into(),
                tlvs: vec![Tlv::u8(tag::SC_INTERFACE_VERSION, 0x34)],
            }),
        ),
    );
    // 3.3: no TLV.
    check(
        &frame(0x8000_0002, 0, 2, &c("SMSC")),
        Pdu::new(
            2,
            Body::BindResp(BindResp {
                kind: BindKind::Transmitter,
                system_id: "SMSC".into(),
                tlvs: vec![],
            }),
        ),
    );
}

#[test]
fn error_responses_may_have_no_body() {
    let bind = Pdu::decode(&frame(0x8000_0001, 0x0E, 3, &[])).expect("decodes");
    assert_eq!(bind.command_status, status::ESME_RINVPASWD);
    assert!(
        matches!(bind.body, Body::BindResp(BindResp { kind: BindKind::Receiver, ref system_id, .. }) if system_id.is_empty())
    );
    let submit = Pdu::decode(&frame(0x8000_0004, 0x58, 4, &[])).expect("decodes");
    assert_eq!(submit.command_status, status::ESME_RTHROTTLED);
    assert_eq!(submit.body, Body::SubmitSmResp(SmResp::default()));
}

fn sample_sm() -> Sm {
    Sm {
        service_type: "CMT".into(),
        source_addr_ton: 5,
        source_addr_npi: 0,
        source_addr: "Herald".into(),
        dest_addr_ton: 1,
        dest_addr_npi: 1,
        destination_addr: "8613800138000".into(),
        esm_class: 0,
        protocol_id: 0,
        priority_flag: 0,
        schedule_delivery_time: String::new(),
        validity_period: String::new(),
        registered_delivery: 1,
        replace_if_present_flag: 0,
        data_coding: 0,
        sm_default_msg_id: 0,
        short_message: b"Hello".to_vec(),
        tlvs: vec![],
    }
}

#[test]
fn submit_sm_layout() {
    let body = cat(&[
        &c("CMT"),
        &[5, 0],
        &c("Herald"),
        &[1, 1],
        &c("8613800138000"),
        &[0, 0, 0],    // esm_class, protocol_id, priority_flag
        &c(""),        // schedule_delivery_time
        &c(""),        // validity_period
        &[1, 0, 0, 0], // registered_delivery, replace_if_present, data_coding, sm_default_msg_id
        &[5],
        b"Hello",
    ]);
    let bytes = frame(0x4, 0, 0x10, &body);
    assert_eq!(bytes.len(), 16 + 4 + 2 + 7 + 2 + 14 + 3 + 2 + 4 + 1 + 5);
    check(
        &bytes,
        Pdu::new(0x10, Body::SubmitSm(Box::new(sample_sm()))),
    );
}

#[test]
fn submit_sm_with_sar_and_payload_tlvs() {
    let mut sm = sample_sm();
    sm.short_message.clear();
    sm.data_coding = 8;
    sm.tlvs = vec![
        Tlv::u16(tag::SAR_MSG_REF_NUM, 0x1234),
        Tlv::u8(tag::SAR_TOTAL_SEGMENTS, 2),
        Tlv::u8(tag::SAR_SEGMENT_SEQNUM, 1),
        Tlv::new(tag::MESSAGE_PAYLOAD, vec![0x4F, 0x60]),
    ];
    let body = cat(&[
        &c("CMT"),
        &[5, 0],
        &c("Herald"),
        &[1, 1],
        &c("8613800138000"),
        &[0, 0, 0],
        &c(""),
        &c(""),
        &[1, 0, 8, 0],
        &[0],
        &[0x02, 0x0C, 0x00, 0x02, 0x12, 0x34],
        &[0x02, 0x0E, 0x00, 0x01, 0x02],
        &[0x02, 0x0F, 0x00, 0x01, 0x01],
        &[0x04, 0x24, 0x00, 0x02, 0x4F, 0x60],
    ]);
    check(
        &frame(0x4, 0, 2, &body),
        Pdu::new(2, Body::SubmitSm(Box::new(sm))),
    );
}

#[test]
fn submit_sm_resp_and_deliver_sm_resp() {
    check(
        &frame(0x8000_0004, 0, 0x10, &c("1A2B3C")),
        Pdu::new(
            0x10,
            Body::SubmitSmResp(SmResp {
                message_id: "1A2B3C".into(),
                tlvs: vec![],
            }),
        ),
    );
    // deliver_sm_resp's message_id is unused: a lone NUL.
    check(
        &frame(0x8000_0005, 0, 9, &[0]),
        Pdu::new(9, Body::DeliverSmResp(SmResp::default())),
    );
    // 5.0 puts congestion_state on responses.
    check(
        &frame(
            0x8000_0004,
            0,
            3,
            &cat(&[&c("7"), &[0x04, 0x28, 0x00, 0x01, 80]]),
        ),
        Pdu::new(
            3,
            Body::SubmitSmResp(SmResp {
                message_id: "7".into(),
                tlvs: vec![Tlv::u8(tag::CONGESTION_STATE, 80)],
            }),
        ),
    );
}

#[test]
fn deliver_sm_receipt_layout() {
    let text = "id:1A2B3C sub:001 dlvrd:001 submit date:2511250701 done date:2511250702 stat:DELIVRD err:000 text:";
    let body = cat(&[
        &c(""),
        &[1, 1],
        &c("8613800138000"),
        &[5, 0],
        &c("Herald"),
        &[0x04, 0, 0],
        &c(""),
        &c(""),
        &[0, 0, 0, 0],
        &[text.len() as u8],
        text.as_bytes(),
        &[0x00, 0x1E, 0x00, 0x07],
        &c("1A2B3C"),
        &[0x04, 0x27, 0x00, 0x01, 0x02],
        &[0x04, 0x23, 0x00, 0x03, 0x03, 0x00, 0x00],
    ]);
    let sm = Sm {
        service_type: String::new(),
        source_addr_ton: 1,
        source_addr_npi: 1,
        source_addr: "8613800138000".into(),
        dest_addr_ton: 5,
        dest_addr_npi: 0,
        destination_addr: "Herald".into(),
        esm_class: esm::DELIVERY_RECEIPT,
        registered_delivery: 0,
        short_message: text.as_bytes().to_vec(),
        tlvs: vec![
            Tlv::cstring(tag::RECEIPTED_MESSAGE_ID, "1A2B3C"),
            Tlv::u8(tag::MESSAGE_STATE, message_state::DELIVERED),
            Tlv::new(tag::NETWORK_ERROR_CODE, vec![3, 0, 0]),
        ],
        ..Sm::default()
    };
    check(
        &frame(0x5, 0, 0x22, &body),
        Pdu::new(0x22, Body::DeliverSm(Box::new(sm))),
    );
}

#[test]
fn data_sm_and_outbind_layouts() {
    let body = cat(&[
        &c("WAP"),
        &[1, 1],
        &c("447700900000"),
        &[1, 1],
        &c("447700900001"),
        &[0, 1, 0],
        &[0x04, 0x24, 0x00, 0x02, b'h', b'i'],
    ]);
    check(
        &frame(0x103, 0, 5, &body),
        Pdu::new(
            5,
            Body::DataSm(Box::new(DataSm {
                service_type: "WAP".into(),
                source_addr_ton: 1,
                source_addr_npi: 1,
                source_addr: "447700900000".into(),
                dest_addr_ton: 1,
                dest_addr_npi: 1,
                destination_addr: "447700900001".into(),
                esm_class: 0,
                registered_delivery: 1,
                data_coding: 0,
                tlvs: vec![Tlv::new(tag::MESSAGE_PAYLOAD, b"hi".to_vec())],
            })),
        ),
    );
    check(
        &frame(0xB, 0, 6, &cat(&[&c("SMSC"), &c("pw")])),
        Pdu::new(
            6,
            Body::Outbind(Outbind {
                system_id: "SMSC".into(),
                password: "pw".into(),
            }),
        ),
    );
}

#[test]
fn malformed_input_is_an_error() {
    let ok = Pdu::new(1, Body::SubmitSm(Box::new(sample_sm())))
        .to_bytes()
        .expect("encodes");
    // Every truncation of the body, with the header's length fixed up, is refused.
    for cut in 17..ok.len() {
        let mut short = ok[..cut].to_vec();
        short[..4].copy_from_slice(&(cut as u32).to_be_bytes());
        check_err(&short);
    }
    // A frame shorter than its command_length.
    check_err(&ok[..ok.len() - 1]);
    // Unknown command, and query_sm which Herald does not speak.
    check_err(&frame(0x0000_0099, 0, 1, &[]));
    check_err(&frame(0x0000_0003, 0, 1, &[]));
    // A body where none belongs.
    check_err(&frame(0x15, 0, 1, &[0]));
    // A C-Octet String without its NUL within the maximum (system_id: 16).
    check_err(&frame(0x2, 0, 1, &[b'A'; 40]));
    // sm_length beyond the body, and the reserved 255.
    let mut long = ok.clone();
    let len_at = ok.len() - 6;
    long[len_at] = 200;
    check_err(&long);
    long[len_at] = 255;
    check_err(&long);
    // A TLV whose length runs past the end.
    check_err(&frame(
        0x8000_0009,
        0,
        1,
        &cat(&[&c("S"), &[0x02, 0x10, 0x00, 0x05, 0x34]]),
    ));
    // A dangling half TLV header.
    check_err(&frame(0x8000_0009, 0, 1, &cat(&[&c("S"), &[0x02]])));
    // Oversized command_length.
    check_err(&[0, 1, 0, 1, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 1]);
}

#[test]
fn encoding_refuses_fields_that_do_not_fit() {
    let mut sm = sample_sm();
    sm.destination_addr = "1".repeat(21);
    assert!(matches!(
        Pdu::new(1, Body::SubmitSm(Box::new(sm))).to_bytes(),
        Err(SmppError::FieldTooLong {
            field: "destination_addr",
            ..
        })
    ));
    let mut sm = sample_sm();
    sm.short_message = vec![0; 255];
    assert!(Pdu::new(1, Body::SubmitSm(Box::new(sm)))
        .to_bytes()
        .is_err());
}

fn ascii(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[ -~]{{0,{max}}}")).expect("regex")
}

fn tlvs() -> impl Strategy<Value = Vec<Tlv>> {
    prop::collection::vec(
        (any::<u16>(), prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(t, v)| Tlv::new(t, v)),
        0..4,
    )
}

fn kind() -> impl Strategy<Value = BindKind> {
    prop_oneof![
        Just(BindKind::Transmitter),
        Just(BindKind::Receiver),
        Just(BindKind::Transceiver)
    ]
}

prop_compose! {
    fn sm()(service_type in ascii(5), st in any::<u8>(), sn in any::<u8>(), source_addr in ascii(20),
            dt in any::<u8>(), dn in any::<u8>(), destination_addr in ascii(20),
            flags in any::<[u8; 3]>(), schedule_delivery_time in ascii(16), validity_period in ascii(16),
            more in any::<[u8; 4]>(), short_message in prop::collection::vec(any::<u8>(), 0..=254),
            tlvs in tlvs()) -> Sm {
        Sm { service_type, source_addr_ton: st, source_addr_npi: sn, source_addr,
             dest_addr_ton: dt, dest_addr_npi: dn, destination_addr,
             esm_class: flags[0], protocol_id: flags[1], priority_flag: flags[2],
             schedule_delivery_time, validity_period,
             registered_delivery: more[0], replace_if_present_flag: more[1],
             data_coding: more[2], sm_default_msg_id: more[3], short_message, tlvs }
    }
}

fn sm_resp() -> impl Strategy<Value = SmResp> {
    // An empty message_id with TLVs is written as a lone NUL then TLVs, which decodes the same.
    (ascii(64), tlvs()).prop_map(|(message_id, tlvs)| SmResp { message_id, tlvs })
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        Just(Body::GenericNack),
        Just(Body::Unbind),
        Just(Body::UnbindResp),
        Just(Body::EnquireLink),
        Just(Body::EnquireLinkResp),
        (
            kind(),
            ascii(15),
            ascii(8),
            ascii(12),
            any::<[u8; 3]>(),
            ascii(40)
        )
            .prop_map(
                |(kind, system_id, password, system_type, b, address_range)| Body::Bind(Bind {
                    kind,
                    system_id,
                    password,
                    system_type,
                    interface_version: b[0],
                    addr_ton: b[1],
                    addr_npi: b[2],
                    address_range,
                })
            ),
        (kind(), ascii(15), tlvs()).prop_map(|(kind, system_id, tlvs)| Body::BindResp(BindResp {
            kind,
            system_id,
            tlvs
        })),
        (ascii(15), ascii(8)).prop_map(|(system_id, password)| Body::Outbind(Outbind {
            system_id,
            password
        })),
        sm().prop_map(|s| Body::SubmitSm(Box::new(s))),
        sm().prop_map(|s| Body::DeliverSm(Box::new(s))),
        sm_resp().prop_map(Body::SubmitSmResp),
        sm_resp().prop_map(Body::DeliverSmResp),
        sm_resp().prop_map(Body::DataSmResp),
        (ascii(5), ascii(64), ascii(64), any::<[u8; 7]>(), tlvs()).prop_map(
            |(service_type, source_addr, destination_addr, b, tlvs)| Body::DataSm(Box::new(
                DataSm {
                    service_type,
                    source_addr_ton: b[0],
                    source_addr_npi: b[1],
                    source_addr,
                    dest_addr_ton: b[2],
                    dest_addr_npi: b[3],
                    destination_addr,
                    esm_class: b[4],
                    registered_delivery: b[5],
                    data_coding: b[6],
                    tlvs,
                }
            ))
        ),
    ]
}

proptest! {
    #[test]
    fn every_pdu_round_trips(status in any::<u32>(), seq in any::<u32>(), body in body()) {
        let pdu = Pdu::response(seq, status, body);
        let bytes = pdu.to_bytes().expect("encodes");
        prop_assert_eq!(bytes.len() as u32, u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
        prop_assert_eq!(Pdu::decode(&bytes).expect("decodes"), pdu.clone());
        // And through the stream codec, split at an arbitrary point.
        let mut codec = SmppCodec;
        let mut buf = BytesMut::from(&bytes[..bytes.len() / 2]);
        prop_assert!(codec.decode(&mut buf).expect("partial is fine").is_none());
        buf.extend_from_slice(&bytes[bytes.len() / 2..]);
        prop_assert_eq!(codec.decode(&mut buf).expect("decodes"), Some(pdu));
    }

    #[test]
    fn decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = Pdu::decode(&bytes);
        let mut buf = BytesMut::from(&bytes[..]);
        let _ = SmppCodec.decode_eof(&mut buf);
    }

    #[test]
    fn decoding_a_valid_header_with_random_body_never_panics(
        cmd in prop::sample::select(vec![0x8000_0000u32, 1, 2, 4, 5, 6, 9, 0xB, 0x15, 0x103,
            0x8000_0001, 0x8000_0002, 0x8000_0004, 0x8000_0005, 0x8000_0009, 0x8000_0103]),
        body in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Pdu::decode(&frame(cmd, 0, 1, &body));
    }
}
