//! Fault injection shared by the SMPP, SGIP, SMGP and CNGP simulators: the settings
//! ([`SimFaults`]) and the bookkeeping that turns them into a verdict per PDU and per submit.
//! Each simulator only answers the verdict in its own protocol (its throttle code, its framing).
//!
//! Limits are per account (rate) or per connection (window, PDU counts), so a reconnecting
//! client meets the same fault on every new connection. The CMPP simulator uses it too, with its
//! own malformed frames.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::codec::{Encoder, Framed};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Strictness and misbehaviour on demand, for fault tests. PDU counts are per connection and
/// start after the login, so every new connection of a reconnecting client meets the fault again.
#[derive(Debug, Clone, Default)]
pub struct SimFaults {
    /// Hold every submit response this long.
    pub submit_resp_delay: Duration,
    /// Accept at most this many submits per account in any one-second span; answer the rest
    /// with the protocol's throttling code.
    pub max_per_second: Option<u32>,
    /// A submit arriving while this many earlier submits of its connection still await their
    /// (held back) response is answered at once with the throttling code.
    pub max_window: Option<usize>,
    /// Answer N PDUs, then close the connection on the next one without answering it.
    pub drop_after: Option<u64>,
    /// Answer N PDUs, then go silent: keep the connection open and read, but answer nothing
    /// and send nothing (no reports).
    pub stall_after: Option<u64>,
    /// Answer N PDUs, then answer every later one with a malformed frame (a submit response cut
    /// short, an impossible length, an unknown command id, in turn).
    pub malformed_after: Option<u64>,
    /// Close the connection carrying the n-th submit (1-based, over the simulator's life)
    /// instead of answering it.
    pub drop_at_submit: Option<u64>,
    /// Answer the n-th submit (1-based, over the simulator's life) with the throttling code.
    pub throttle_at: Option<u64>,
    /// Refuse every submit to a number starting with the prefix, with the result code (the CMPP
    /// simulator; see [`Faults::refusal`]).
    pub reject_dest: Vec<(String, u32)>,
    /// Send a mobile-originated message this often: on every logged-in connection (CMPP, SMPP
    /// receivers and transceivers, SMGP, CNGP), or to every account's SP over the gateway's own
    /// connection (SGIP, which also takes MOs through `sim::sgip::run_with_mo`).
    pub mo_every: Option<Duration>,
    /// The injected MOs' text (default "MO n"); a long one goes out in concatenated parts.
    pub mo_text: Option<String>,
    /// The injected MOs' sender (default 13800138000) and destination (default the SP's
    /// number).
    pub mo_from: Option<String>,
    pub mo_to: Option<String>,
    /// Send the parts of each injected long MO over the account's connections in turn (one
    /// part per connection, round robin) rather than all on the connection whose turn it is.
    pub mo_spread: bool,
}

/// What the faults make of one PDU received on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Serve,
    /// Close the connection without answering.
    Drop,
    /// Read it and do nothing (the connection has gone silent).
    Stall,
    /// Answer with [`Faults::malformed`] instead.
    Malformed,
}

/// What the faults make of one submit that is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitFate {
    Accept,
    /// Close the connection without answering (`drop_at_submit`).
    Drop,
    /// Answer with the protocol's throttling code; the reason is recorded.
    Throttle(&'static str),
}

/// The simulator-wide half: the settings, each account's recent accepted submits (for the
/// rate), and counters over the simulator's life.
#[derive(Debug, Default)]
pub struct Faults {
    settings: SimFaults,
    accepted_at: Mutex<HashMap<String, VecDeque<Instant>>>,
    submits_seen: AtomicU64,
    malformed_sent: AtomicU64,
}

/// The per-connection half: PDUs received since login, submit responses held back, and whether
/// the connection has gone silent.
#[derive(Debug, Default)]
pub struct ConnFaults {
    received: u64,
    outstanding: usize,
    stalled: bool,
}

impl Faults {
    pub fn new(settings: SimFaults) -> Faults {
        Faults {
            settings,
            ..Faults::default()
        }
    }

    pub fn settings(&self) -> &SimFaults {
        &self.settings
    }

    /// How long to hold a submit response; `None` to answer at once.
    pub fn resp_delay(&self) -> Option<Duration> {
        Some(self.settings.submit_resp_delay).filter(|d| !d.is_zero())
    }

    /// Answers an accepted submit: at once (returned), or — with a response delay set — held
    /// back on `conn` (it keeps its window slot) and handed to `send_later` once the delay has
    /// passed, unless the simulator stops first. One copy for every simulator.
    pub fn answer_submit<P: Send + 'static>(
        &self,
        conn: &mut ConnFaults,
        tasks: &TaskTracker,
        cancel: &CancellationToken,
        resp: P,
        send_later: impl FnOnce(P) + Send + 'static,
    ) -> Option<P> {
        let Some(delay) = self.resp_delay() else {
            return Some(resp);
        };
        conn.hold();
        let cancel = cancel.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(delay) => send_later(resp),
                _ = cancel.cancelled() => {}
            }
        });
        None
    }

    /// Judges a PDU received on `conn` (counting it).
    pub fn on_pdu(&self, conn: &mut ConnFaults) -> Fate {
        conn.received += 1;
        let n = conn.received;
        let past = |limit: Option<u64>| limit.is_some_and(|l| n > l);
        if past(self.settings.drop_after) {
            Fate::Drop
        } else if past(self.settings.stall_after) {
            if !conn.stalled {
                tracing::warn!(pdus = n, "simulator: going silent (fault)");
            }
            conn.stalled = true;
            Fate::Stall
        } else if past(self.settings.malformed_after) {
            Fate::Malformed
        } else {
            Fate::Serve
        }
    }

    /// The result code refusing a submit to any of `dests` ([`SimFaults::reject_dest`]). Checked
    /// before [`Faults::on_submit`]: a refused submit neither counts nor uses the rate.
    pub fn refusal<'a>(&self, dests: impl IntoIterator<Item = &'a String>) -> Option<u32> {
        dests.into_iter().find_map(|dest| {
            self.settings
                .reject_dest
                .iter()
                .find(|(prefix, _)| dest.starts_with(prefix.as_str()))
                .map(|(_, code)| *code)
        })
    }

    /// Judges a submit from `account` on `conn` (counting it, and counting it against the rate
    /// if accepted).
    pub fn on_submit(&self, account: &str, conn: &ConnFaults) -> SubmitFate {
        let n = self.submits_seen.fetch_add(1, Ordering::Relaxed) + 1;
        if self.settings.drop_at_submit == Some(n) {
            return SubmitFate::Drop;
        }
        if self.settings.throttle_at == Some(n) {
            return SubmitFate::Throttle("throttle_at");
        }
        if self
            .settings
            .max_window
            .is_some_and(|w| conn.outstanding >= w)
        {
            return SubmitFate::Throttle("window");
        }
        if !self.rate_allows(account) {
            return SubmitFate::Throttle("rate");
        }
        SubmitFate::Accept
    }

    fn rate_allows(&self, account: &str) -> bool {
        let Some(limit) = self.settings.max_per_second else {
            return true;
        };
        let Ok(mut map) = self.accepted_at.lock() else {
            return true;
        };
        let now = Instant::now();
        let recent = map.entry(account.to_string()).or_default();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            recent.pop_front();
        }
        if recent.len() >= limit as usize {
            return false;
        }
        recent.push_back(now);
        true
    }

    /// The next malformed frame, made from `valid`: an encoded submit response of the protocol
    /// answering the PDU at hand. Every protocol served here starts its header with a 4-byte
    /// length and a 4-byte command id; `header_len` is the whole header's length. Each kind
    /// breaks a different check of a careful decoder.
    pub fn malformed(&self, valid: &[u8], header_len: usize) -> Vec<u8> {
        let kind = self.malformed_sent.fetch_add(1, Ordering::Relaxed) % 3;
        malformed_frame(kind, valid, header_len)
    }
}

/// See [`Faults::malformed`]; `kind` is 0, 1 or 2.
pub fn malformed_frame(kind: u64, valid: &[u8], header_len: usize) -> Vec<u8> {
    let mut bytes = valid.to_vec();
    if bytes.len() < header_len.max(8) {
        return bytes;
    }
    match kind {
        // The response's body cut short by up to 3 bytes, the length saying so: the frame is
        // whole, but its body does not add up.
        0 => {
            let body = bytes.len() - header_len;
            if body == 0 {
                // Nothing to cut: add a byte no body has instead.
                bytes.push(0xFF);
            } else {
                bytes.truncate(bytes.len() - body.min(3));
            }
            let len = bytes.len() as u32;
            bytes[0..4].copy_from_slice(&len.to_be_bytes());
        }
        // A length no PDU of these protocols can have.
        1 => {
            bytes.truncate(header_len);
            bytes[0..4].copy_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
        }
        // A command the protocols do not define.
        _ => bytes[4..8].copy_from_slice(&0x0000_00FEu32.to_be_bytes()),
    }
    bytes
}

/// Answers with [`Faults::malformed`] made from `valid` (a submit response to the PDU at hand),
/// written past the codec so that nothing repairs it.
pub async fn send_malformed<C, P>(
    faults: &Faults,
    framed: &mut Framed<TcpStream, C>,
    valid: P,
    header_len: usize,
) -> std::io::Result<()>
where
    C: Encoder<P>,
{
    let mut buf = BytesMut::new();
    if framed.codec_mut().encode(valid, &mut buf).is_err() {
        return Ok(());
    }
    let bytes = faults.malformed(&buf, header_len);
    tracing::warn!("simulator: answering with a malformed PDU (fault)");
    let io = framed.get_mut();
    io.write_all(&bytes).await?;
    io.flush().await
}

/// The record line of a throttled submit (one per destination), as the CMPP simulator writes it.
pub fn throttled_record(account: &str, dest: &str, reason: &str, code: u32) -> serde_json::Value {
    serde_json::json!({
        "kind": "throttled",
        "account": account,
        "dest": dest,
        "reason": reason,
        "result": code,
        "at_ms": super::now_ms(),
    })
}

impl ConnFaults {
    /// True once the connection has gone silent ([`SimFaults::stall_after`]): it must send
    /// nothing more.
    pub fn stalled(&self) -> bool {
        self.stalled
    }

    /// A submit response is held back (it occupies the window).
    pub fn hold(&mut self) {
        self.outstanding += 1;
    }

    /// A held-back submit response went out.
    pub fn release(&mut self) {
        self.outstanding = self.outstanding.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::codec::Decoder;

    fn faults(settings: SimFaults) -> Faults {
        Faults::new(settings)
    }

    #[test]
    fn pdu_counts_pick_drop_then_stall_then_malformed() {
        let f = faults(SimFaults {
            drop_after: Some(5),
            stall_after: Some(3),
            malformed_after: Some(1),
            ..SimFaults::default()
        });
        let mut conn = ConnFaults::default();
        let fates: Vec<Fate> = (0..6).map(|_| f.on_pdu(&mut conn)).collect();
        assert_eq!(
            fates,
            [
                Fate::Serve,
                Fate::Malformed,
                Fate::Malformed,
                Fate::Stall,
                Fate::Stall,
                Fate::Drop
            ]
        );
        assert!(conn.stalled());
        // A new connection starts counting again.
        assert_eq!(f.on_pdu(&mut ConnFaults::default()), Fate::Serve);
    }

    #[test]
    fn submits_meet_the_window_the_rate_and_the_nth_faults() {
        let f = faults(SimFaults {
            max_window: Some(2),
            max_per_second: Some(3),
            throttle_at: Some(2),
            drop_at_submit: Some(7),
            ..SimFaults::default()
        });
        let mut conn = ConnFaults::default();
        assert_eq!(f.on_submit("a", &conn), SubmitFate::Accept);
        assert_eq!(f.on_submit("a", &conn), SubmitFate::Throttle("throttle_at"));
        conn.hold();
        conn.hold();
        assert_eq!(f.on_submit("a", &conn), SubmitFate::Throttle("window"));
        conn.release();
        assert_eq!(f.on_submit("a", &conn), SubmitFate::Accept);
        assert_eq!(f.on_submit("a", &conn), SubmitFate::Accept);
        assert_eq!(f.on_submit("a", &conn), SubmitFate::Throttle("rate"));
        assert_eq!(f.on_submit("b", &conn), SubmitFate::Drop, "7th submit");
        assert_eq!(
            f.on_submit("b", &conn),
            SubmitFate::Accept,
            "the rate is per account"
        );
    }

    /// Each malformed kind, made from a real submit response, is refused by the client's codec.
    fn refused_by<C, P>(mut codec: C, valid: P, header_len: usize)
    where
        C: Decoder + Encoder<P>,
        <C as Decoder>::Item: std::fmt::Debug,
        <C as Encoder<P>>::Error: std::fmt::Debug,
    {
        let mut buf = BytesMut::new();
        codec.encode(valid, &mut buf).expect("encodes");
        assert!(
            codec.decode(&mut buf.clone()).is_ok(),
            "the valid frame decodes"
        );
        for kind in 0..3 {
            let bad = malformed_frame(kind, &buf, header_len);
            let mut input = BytesMut::from(&bad[..]);
            let decoded = codec.decode(&mut input);
            assert!(
                !matches!(decoded, Ok(Some(_))),
                "kind {kind} decoded: {bad:02x?}"
            );
            // A frame claiming more than it has is an error at the end of the stream.
            if matches!(decoded, Ok(None)) {
                assert!(codec.decode_eof(&mut input).is_err(), "kind {kind}");
            }
        }
    }

    #[test]
    fn malformed_frames_are_refused_by_every_codec() {
        use crate::{cngp, sgip, smgp, smpp};
        refused_by(
            smpp::SmppCodec,
            smpp::Pdu::new(
                7,
                smpp::Body::SubmitSmResp(smpp::SmResp {
                    message_id: "1234567890".into(),
                    tlvs: vec![],
                }),
            ),
            16,
        );
        refused_by(
            sgip::SgipCodec,
            sgip::Pdu::new(
                sgip::SequenceNumber::new(1, 2, 3),
                sgip::Body::SubmitResp(sgip::Resp { result: 0 }),
            ),
            sgip::HEADER_LEN,
        );
        refused_by(
            smgp::SmgpCodec,
            smgp::Pdu::new(
                7,
                smgp::Body::SubmitResp(smgp::SubmitResp {
                    msg_id: smgp::MsgId10([1; 10]),
                    status: 0,
                }),
            ),
            smgp::HEADER_LEN,
        );
        refused_by(
            cngp::CngpCodec,
            cngp::Pdu::new(
                7,
                cngp::Body::SubmitResp(cngp::SubmitResp {
                    msg_id: cngp::MsgId10([1; 10]),
                    tlvs: cngp::Tlvs::default().with_u8(cngp::tag::CONGESTION_STATE, 0),
                }),
            ),
            cngp::HEADER_LEN,
        );
    }
}
