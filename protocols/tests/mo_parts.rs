//! Mobile-originated messages over real TCP: a scripted gateway of each protocol sends the parts
//! of one long message (cut by the crate's own splitter) out of order, and the client's link
//! emits one `Mo` event per part, carrying its text and its place in the message. The gateway's
//! response to each part comes only once the application completes the part's acknowledgement
//! (the node does that after the part is committed to its log, where parts are joined). Every
//! wait has a deadline; no sleep is used as an assertion.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{accept_framed, local_listener, next_pdu, within};
use futures::{SinkExt, StreamExt};
use herald_protocols::mo::Scheme;
use herald_protocols::text::{split_text, split_text_140, Segment};
use herald_protocols::{ClientEvent, LinkSettings, MoPart};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::codec::{Decoder, Framed};

const SUBSCRIBER: &str = "13800138000";
const SP_NUMBER: &str = "10690001";

fn settings(addr: SocketAddr, account: &str) -> LinkSettings {
    LinkSettings {
        service_id: String::new(),
        reconnect_min: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(100),
        ..common::link_settings("mo-test", addr, account, "s3cret", SP_NUMBER, 8)
    }
}

/// A text of several UCS2 parts, with an emoji (a surrogate pair) near a part boundary.
fn long_text() -> String {
    format!(
        "{}😀{}",
        "您好，退订本服务请回复TD。".repeat(10),
        "谢谢".repeat(20)
    )
}

/// The parts in the order the gateway sends them: last first, then the rest.
fn out_of_order(mut segments: Vec<Segment>) -> Vec<Segment> {
    assert!(segments.len() >= 3, "the text must need several parts");
    segments.rotate_right(1);
    segments
}

/// Waits for the next `Mo` event; link state events on the way are skipped, any other event
/// fails the test.
async fn next_mo(events: &mut mpsc::Receiver<ClientEvent>) -> MoPart {
    within("the MO event", async {
        loop {
            match events.recv().await {
                Some(ClientEvent::Mo(m)) => return m,
                Some(ClientEvent::Connected | ClientEvent::Disconnected { .. }) => {}
                Some(other) => panic!("unexpected event {other:?}"),
                None => panic!("event channel closed"),
            }
        }
    })
    .await
}

/// The gateway hears nothing for a while: the part's response waits for its acknowledgement.
async fn no_response_yet<C>(peer: &mut Framed<TcpStream, C>)
where
    C: Decoder,
    C::Item: std::fmt::Debug,
    C::Error: std::fmt::Debug,
{
    let early = timeout(Duration::from_millis(300), peer.next()).await;
    assert!(
        early.is_err(),
        "answered before the part was recorded: {early:?}"
    );
}

/// Collects parts (as the node's projection does: by number) and checks they make `text`.
#[derive(Default)]
struct Parts(Vec<MoPart>);

impl Parts {
    /// Keeps a copy of a part (the caller completes the original's ack), checking who sent it
    /// to whom and how it was concatenated.
    fn take(&mut self, part: &MoPart, total: usize, scheme: Scheme) {
        assert_eq!(
            (part.src.as_str(), part.dest.as_str()),
            (SUBSCRIBER, SP_NUMBER)
        );
        let (concat, s) = part.concat.expect("a part of a long message");
        assert_eq!((concat.total as usize, s), (total, scheme));
        self.0.push(part.clone());
    }

    fn assert_text(mut self, text: &str) {
        self.0.sort_by_key(|p| p.concat.map(|(c, _)| c.number));
        let joined: String = self.0.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(joined, text);
    }
}

mod cmpp_mo {
    use super::*;
    use herald_protocols::cmpp::{Body, CmppCodec, ConnectResp, Deliver, DeliverContent, Pdu};
    use herald_protocols::CmppClient;

    async fn accept_login(listener: &TcpListener) -> Framed<TcpStream, CmppCodec> {
        let mut peer = accept_framed(listener, CmppCodec::default()).await;
        let login = next_pdu(&mut peer, "CONNECT").await;
        assert!(matches!(login.body, Body::Connect(_)));
        peer.send(Pdu::new(
            login.sequence_id,
            Body::ConnectResp(ConnectResp {
                status: 0,
                authenticator_ismg: [0; 16],
                version: herald_protocols::cmpp::VERSION_3_0,
            }),
        ))
        .await
        .expect("send");
        peer
    }

    fn deliver(segment: &Segment, msg_id: u64) -> Pdu {
        Pdu::new(
            msg_id as u32,
            Body::Deliver(Box::new(Deliver {
                msg_id,
                dest_id: SP_NUMBER.into(),
                service_id: String::new(),
                tp_pid: 0,
                tp_udhi: u8::from(segment.udhi),
                msg_fmt: segment.data_coding,
                src_terminal_id: SUBSCRIBER.into(),
                src_terminal_type: 0,
                content: DeliverContent::Message(segment.payload.clone()),
                link_id: String::new(),
            })),
        )
    }

    async fn send_acked(
        peer: &mut Framed<TcpStream, CmppCodec>,
        events: &mut mpsc::Receiver<ClientEvent>,
        parts: &mut Parts,
        segment: &Segment,
        id: u64,
    ) {
        peer.send(deliver(segment, id)).await.expect("send");
        let part = next_mo(events).await;
        parts.take(&part, segment.total as usize, Scheme::Udh8);
        assert_eq!(part.carrier_id, id.to_string());
        part.ack.done();
        let resp = next_pdu(peer, "DELIVER_RESP").await;
        assert!(
            matches!(resp.body, Body::DeliverResp(r) if r.msg_id == id && r.result == 0),
            "every part is acknowledged"
        );
    }

    /// The parts come over two connections: the link loses the first one mid-message, with one
    /// part received and not yet recorded; the gateway sends that part again on the next.
    #[tokio::test]
    async fn cmpp_parts_across_a_reconnect_are_each_acknowledged_once_recorded() {
        let (listener, addr) = local_listener().await;
        let mut s = settings(addr, "901234");
        s.src_id = "1065901234".into();
        let (client, mut events) = CmppClient::start(s);
        let text = long_text();
        let segments = out_of_order(split_text(&text));
        let (first, rest) = segments.split_at(2);

        let mut parts = Parts::default();
        let mut peer = accept_login(&listener).await;
        send_acked(&mut peer, &mut events, &mut parts, &first[0], 100).await;
        // The second part is received but not recorded when the connection drops.
        peer.send(deliver(&first[1], 101)).await.expect("send");
        let unrecorded = next_mo(&mut events).await;
        no_response_yet(&mut peer).await;
        drop(peer);
        drop(unrecorded);

        let mut peer = accept_login(&listener).await;
        send_acked(&mut peer, &mut events, &mut parts, &first[1], 101).await;
        for (i, segment) in rest.iter().enumerate() {
            send_acked(&mut peer, &mut events, &mut parts, segment, 200 + i as u64).await;
        }
        parts.assert_text(&text);
        client.shutdown().await;
    }
}

mod smpp_mo {
    use super::*;
    use herald_protocols::gsm7::split_smpp;
    use herald_protocols::smpp::{esm, tag, BindKind, BindResp, Body, Pdu, Sm, SmppCodec, Tlv};
    use herald_protocols::smpp_client::SmppClient;

    async fn accept_bind(listener: &TcpListener) -> Framed<TcpStream, SmppCodec> {
        let mut peer = accept_framed(listener, SmppCodec).await;
        let bind = next_pdu(&mut peer, "bind").await;
        assert!(matches!(bind.body, Body::Bind(_)));
        peer.send(Pdu::new(
            bind.sequence_number,
            Body::BindResp(BindResp {
                kind: BindKind::Transceiver,
                system_id: "SMSC".into(),
                tlvs: vec![],
            }),
        ))
        .await
        .expect("send");
        peer
    }

    async fn send_acked(
        peer: &mut Framed<TcpStream, SmppCodec>,
        events: &mut mpsc::Receiver<ClientEvent>,
        parts: &mut Parts,
        (sm, scheme): (Sm, Scheme),
        sequence: u32,
    ) {
        let total = segment_total(&sm);
        peer.send(Pdu::new(sequence, Body::DeliverSm(Box::new(sm))))
            .await
            .expect("send");
        let part = next_mo(events).await;
        parts.take(&part, total, scheme);
        if sequence == 10 {
            no_response_yet(peer).await;
        }
        part.ack.done();
        let resp = next_pdu(peer, "deliver_sm_resp").await;
        assert_eq!(resp.sequence_number, sequence);
        assert!(matches!(resp.body, Body::DeliverSmResp(_)));
    }

    /// The part count an SMSC's deliver_sm announces (sar TLV or UDH).
    fn segment_total(sm: &Sm) -> usize {
        let sar = sm.tlvs.iter().find(|t| t.tag == tag::SAR_TOTAL_SEGMENTS);
        match sar {
            Some(t) => t.value[0] as usize,
            None => sm.short_message[4] as usize,
        }
    }

    fn mo(segment: &Segment) -> Sm {
        Sm {
            source_addr: SUBSCRIBER.into(),
            destination_addr: SP_NUMBER.into(),
            data_coding: segment.data_coding,
            ..Sm::default()
        }
    }

    #[tokio::test]
    async fn smpp_udh_parts_and_sar_parts_are_each_read_and_acknowledged_once_recorded() {
        let (listener, addr) = local_listener().await;
        let (client, mut events) = SmppClient::start(settings(addr, "esme"));
        let mut peer = accept_bind(&listener).await;
        let mut parts = Parts::default();

        // GSM 7-bit parts with a UDH, extension characters included.
        let gsm = "Price list {EUR} ~ [promo] | ".repeat(12);
        let segments = out_of_order(split_smpp(&gsm));
        for (i, segment) in segments.iter().enumerate() {
            let mut sm = mo(segment);
            sm.esm_class = esm::UDHI;
            sm.short_message = segment.payload.clone();
            let sequence = 10 + i as u32;
            send_acked(
                &mut peer,
                &mut events,
                &mut parts,
                (sm, Scheme::Udh8),
                sequence,
            )
            .await;
        }
        std::mem::take(&mut parts).assert_text(&gsm);

        // The same kind of message as sar_* TLVs, one part in message_payload.
        let text = long_text();
        let segments = out_of_order(split_smpp(&text));
        for (i, segment) in segments.iter().enumerate() {
            let body = segment.payload[6..].to_vec();
            let mut sm = mo(segment);
            sm.tlvs = vec![
                Tlv::u16(tag::SAR_MSG_REF_NUM, 0xBEEF),
                Tlv::u8(tag::SAR_TOTAL_SEGMENTS, segment.total),
                Tlv::u8(tag::SAR_SEGMENT_SEQNUM, segment.number),
            ];
            if i == 0 {
                sm.tlvs.push(Tlv::new(tag::MESSAGE_PAYLOAD, body));
            } else {
                sm.short_message = body;
            }
            let sequence = 100 + i as u32;
            send_acked(
                &mut peer,
                &mut events,
                &mut parts,
                (sm, Scheme::Sar),
                sequence,
            )
            .await;
        }
        parts.assert_text(&text);
        client.shutdown().await;
    }
}

mod telecom_mo {
    use super::*;

    /// SMGP flags the UDH with the TP_udhi TLV; this gateway uses the 16-bit reference form.
    #[tokio::test]
    async fn smgp_parts_are_read_with_their_sixteen_bit_reference() {
        use herald_protocols::smgp::{
            tag, Body, Deliver, DeliverContent, LoginResp, MsgId10, Pdu, SmgpCodec, Tlvs,
            VERSION_3_0,
        };
        use herald_protocols::smgp_client::SmgpClient;

        let (listener, addr) = local_listener().await;
        let (client, mut events) = SmgpClient::start(settings(addr, "SP000001"));
        let mut peer = accept_framed(&listener, SmgpCodec).await;
        let login = next_pdu(&mut peer, "Login").await;
        peer.send(Pdu::new(
            login.sequence_id,
            Body::LoginResp(LoginResp {
                status: 0,
                authenticator_server: [0; 16],
                server_version: VERSION_3_0,
            }),
        ))
        .await
        .expect("send");

        let text = long_text();
        let segments = out_of_order(split_text_140(&text));
        let mut parts = Parts::default();
        for (i, segment) in segments.iter().enumerate() {
            // 8-bit reference 05 00 03 r t n → 16-bit 06 08 04 rH rL t n.
            let mut payload = vec![6, 8, 4, 0x01, segment.payload[3], 0, 0];
            payload[5] = segment.total;
            payload[6] = segment.number;
            payload.extend_from_slice(&segment.payload[6..]);
            let msg_id = MsgId10([i as u8; 10]);
            let deliver = Deliver {
                msg_id,
                msg_format: segment.data_coding,
                recv_time: "20240116170001".into(),
                src_term_id: SUBSCRIBER.into(),
                dest_term_id: SP_NUMBER.into(),
                content: DeliverContent::Message(payload),
                reserve: String::new(),
                tlvs: Tlvs::default().with_u8(tag::TP_UDHI, 1),
            };
            peer.send(Pdu::new(50 + i as u32, Body::Deliver(Box::new(deliver))))
                .await
                .expect("send");
            let part = next_mo(&mut events).await;
            parts.take(&part, segments.len(), Scheme::Udh16);
            assert_eq!(part.carrier_time, "20240116170001");
            part.ack.done();
            let resp = next_pdu(&mut peer, "Deliver_Resp").await;
            assert!(matches!(resp.body, Body::DeliverResp(r) if r.msg_id == msg_id));
        }
        parts.assert_text(&text);
        client.shutdown().await;
    }

    /// CNGP 2.0 has no TP_udhi flag: the client recognises the UDH by its shape.
    #[tokio::test]
    async fn cngp_parts_are_read_by_the_shape_of_their_udh() {
        use herald_protocols::cngp::{
            Body, CngpCodec, Deliver, DeliverContent, LoginResp, MsgId10, Pdu, Tlvs, VERSION_2_0,
        };
        use herald_protocols::cngp_client::CngpClient;

        let (listener, addr) = local_listener().await;
        let (client, mut events) = CngpClient::start(settings(addr, "SP00000001"));
        let mut peer = accept_framed(&listener, CngpCodec).await;
        let login = next_pdu(&mut peer, "Login").await;
        peer.send(Pdu::new(
            login.sequence_id,
            Body::LoginResp(LoginResp {
                authenticator_server: [0; 16],
                version: VERSION_2_0,
            }),
        ))
        .await
        .expect("send");

        let text = long_text();
        let segments = out_of_order(split_text_140(&text));
        let mut parts = Parts::default();
        for (i, segment) in segments.iter().enumerate() {
            let deliver = Deliver {
                msg_id: MsgId10([i as u8; 10]),
                msg_format: segment.data_coding,
                recv_time: "20240116170001".into(),
                src_term_id: SUBSCRIBER.into(),
                dest_term_id: SP_NUMBER.into(),
                content: DeliverContent::Message(segment.payload.clone()),
                tlvs: Tlvs::default(),
            };
            peer.send(Pdu::new(50 + i as u32, Body::Deliver(Box::new(deliver))))
                .await
                .expect("send");
            let part = next_mo(&mut events).await;
            parts.take(&part, segments.len(), Scheme::Udh8);
            part.ack.done();
            let resp = next_pdu(&mut peer, "Deliver_Resp").await;
            assert!(matches!(resp.body, Body::DeliverResp(_)));
        }
        parts.assert_text(&text);
        client.shutdown().await;
    }
}

mod sgip_mo {
    use super::*;
    use herald_protocols::sgip::{
        login_type, Bind, Body, Deliver, Pdu, Resp, SequenceNumber, SgipCodec,
    };
    use herald_protocols::sgip_client::SgipClient;

    async fn gateway(to: SocketAddr) -> Framed<TcpStream, SgipCodec> {
        let stream = within("connect to the SP", TcpStream::connect(to))
            .await
            .expect("connect");
        let mut framed = Framed::new(stream, SgipCodec);
        framed
            .send(Pdu::new(
                SequenceNumber::new(4_020_000_001, 1_125_000_000, 1),
                Body::Bind(Bind {
                    login_type: login_type::SMG_TO_SP,
                    login_name: "herald".into(),
                    login_password: "s3cret".into(),
                }),
            ))
            .await
            .expect("send Bind");
        let resp = next_pdu(&mut framed, "Bind_Resp").await;
        assert_eq!(resp.body, Body::BindResp(Resp { result: 0 }));
        framed
    }

    /// The gateway sends the parts on two of its connections to the SP's listener at once.
    #[tokio::test]
    async fn sgip_parts_on_two_gateway_connections_are_each_acknowledged_once_recorded() {
        // The SP→gateway side is never used here: nothing is submitted.
        let (_unused, addr) = local_listener().await;
        let mut s = settings(addr, "herald");
        s.options = [("node-id", "3020012345"), ("listen", "127.0.0.1:0")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (client, mut events) = SgipClient::start(s);
        let sp = client.listen_addr().expect("listens");
        let mut gateways = [gateway(sp).await, gateway(sp).await];

        let text = long_text();
        let segments = out_of_order(split_text(&text));
        let mut parts = Parts::default();
        for (i, segment) in segments.iter().enumerate() {
            let sequence = SequenceNumber::new(4_020_000_001, 1_125_000_000, 10 + i as u32);
            let gw = &mut gateways[i % 2];
            gw.send(Pdu::new(
                sequence,
                Body::Deliver(Box::new(Deliver {
                    user_number: format!("86{SUBSCRIBER}"),
                    sp_number: SP_NUMBER.into(),
                    tp_pid: 0,
                    tp_udhi: u8::from(segment.udhi),
                    message_coding: segment.data_coding,
                    message_content: segment.payload.clone(),
                })),
            ))
            .await
            .expect("send Deliver");
            let part = next_mo(&mut events).await;
            parts.take(&part, segments.len(), Scheme::Udh8);
            if i == 0 {
                no_response_yet(gw).await;
            }
            part.ack.done();
            let resp = next_pdu(gw, "Deliver_Resp").await;
            assert_eq!(
                (resp.sequence, resp.body),
                (sequence, Body::DeliverResp(Resp { result: 0 }))
            );
        }
        parts.assert_text(&text);
        client.shutdown().await;
    }
}
