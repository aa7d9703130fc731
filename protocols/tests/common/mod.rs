//! Scaffolding the link tests share: a deadline on every wait, a simulator task that must end
//! cleanly, link settings with test timings, one interface over every protocol's client, and the
//! steps of the runs every protocol goes through (fifty submits with their reports, a window of
//! two, refused logins). What a protocol's own PDUs, ids and simulator configuration look like
//! stays in that protocol's test file.

// Each test binary compiles this module and uses its own part of it.
#![allow(dead_code)]

pub mod telecom;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use herald_protocols::cngp_client::CngpClient;
use herald_protocols::link::LinkClient;
use herald_protocols::sgip_client::SgipClient;
use herald_protocols::smgp_client::SmgpClient;
use herald_protocols::smpp_client::SmppClient;
use herald_protocols::trace::Submitted;
use herald_protocols::{
    ClientEvent, CmppClient, LinkSettings, OutboundSegment, Segment, SendError, SubmitOutcome,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::codec::{Decoder, Framed};

/// The longest any single wait in these tests may take.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub type Outcome = Result<SubmitOutcome, SendError>;

/// `f`, or a panic naming `what` once [`DEADLINE`] has passed.
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Waits for the first event matching `pred`, returning the events skipped on the way.
pub async fn wait_event(
    events: &mut mpsc::Receiver<ClientEvent>,
    what: &str,
    pred: impl Fn(&ClientEvent) -> bool,
) -> Vec<ClientEvent> {
    within(what, async {
        let mut skipped = Vec::new();
        loop {
            match events.recv().await {
                Some(ev) if pred(&ev) => return skipped,
                Some(ev) => skipped.push(ev),
                None => panic!("event channel closed while waiting for {what}"),
            }
        }
    })
    .await
}

/// The next MO part, recorded at once (its ack completed, as the node does once the part is
/// committed): only then does the gateway get its response. Link state events are skipped.
pub async fn take_mo(events: &mut mpsc::Receiver<ClientEvent>) -> herald_protocols::MoPart {
    within("an MO event", async {
        loop {
            match events.recv().await {
                Some(ClientEvent::Mo(mut part)) => {
                    std::mem::take(&mut part.ack).done();
                    return part;
                }
                Some(ClientEvent::Connected | ClientEvent::Disconnected { .. }) => {}
                other => panic!("expected an MO event, got {other:?}"),
            }
        }
    })
    .await
}

pub fn connected(e: &ClientEvent) -> bool {
    *e == ClientEvent::Connected
}

pub async fn wait_connected(events: &mut mpsc::Receiver<ClientEvent>) {
    wait_event(events, "Connected", connected).await;
}

/// A listener on a free port of 127.0.0.1.
pub async fn local_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    (listener, addr)
}

/// Accepts the client's connection on a scripted peer's listener.
pub async fn accept_framed<C>(listener: &TcpListener, codec: C) -> Framed<TcpStream, C> {
    let (stream, _) = within("client connects", listener.accept())
        .await
        .expect("accept");
    Framed::new(stream, codec)
}

/// The next PDU a scripted peer receives: the connection must stay open and the frame be valid.
pub async fn next_pdu<C>(peer: &mut Framed<TcpStream, C>, what: &str) -> C::Item
where
    C: Decoder,
    C::Error: std::fmt::Debug,
{
    within(what, peer.next())
        .await
        .expect("stream open")
        .expect("valid PDU")
}

/// Reads PDUs until one passes `pred`, ignoring those before it, and returns that one.
pub async fn skip_to<C>(
    peer: &mut Framed<TcpStream, C>,
    what: &str,
    pred: impl Fn(&C::Item) -> bool,
) -> C::Item
where
    C: Decoder,
    C::Error: std::fmt::Debug,
{
    within(what, async {
        loop {
            let pdu = peer.next().await.expect("open").expect("valid");
            if pred(&pdu) {
                return pdu;
            }
        }
    })
    .await
}

/// A simulator running as a task until [`SimTask::stop`], which requires it to end cleanly.
pub struct SimTask {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl SimTask {
    /// Spawns `run`, handing it the future that completes when the simulator is told to stop.
    pub fn spawn<F>(run: impl FnOnce(BoxFuture<'static, ()>) -> F) -> SimTask
    where
        F: Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        }
        .boxed();
        SimTask {
            stop: Some(stop),
            task: tokio::spawn(run(shutdown)),
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = timeout(DEADLINE, &mut self.task).await;
        assert!(
            matches!(result, Ok(Ok(Ok(())))),
            "simulator ended badly: {result:?}"
        );
    }
}

/// Settings with the timings the link tests use: a quiet heartbeat, five seconds for a
/// response, a fast reconnect, and no options.
pub fn link_settings(
    name: &str,
    addr: SocketAddr,
    account: &str,
    secret: &str,
    src_id: &str,
    window: usize,
) -> LinkSettings {
    LinkSettings {
        name: name.into(),
        addr: addr.to_string(),
        account: account.into(),
        secret: secret.into(),
        service_id: "HERALD".into(),
        src_id: src_id.into(),
        window,
        heartbeat_interval: Duration::from_secs(30),
        response_timeout: Duration::from_secs(5),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(400),
        options: Default::default(),
    }
}

/// What every protocol's client offers, so one test step serves them all.
pub trait Client: Clone + Send + Sync + 'static {
    fn submit(&self, seg: OutboundSegment) -> impl Future<Output = Outcome> + Send;
    fn submit_traced(&self, seg: OutboundSegment) -> impl Future<Output = Submitted> + Send;
    fn shutdown(&self) -> impl Future<Output = ()> + Send;
    fn is_connected(&self) -> bool;
}

macro_rules! client {
    ($($client:ty),*) => {$(
        impl Client for $client {
            fn submit(&self, seg: OutboundSegment) -> impl Future<Output = Outcome> + Send {
                <$client>::submit(self, seg)
            }
            fn submit_traced(&self, seg: OutboundSegment) -> impl Future<Output = Submitted> + Send {
                <$client>::submit_traced(self, seg)
            }
            fn shutdown(&self) -> impl Future<Output = ()> + Send {
                <$client>::shutdown(self)
            }
            fn is_connected(&self) -> bool {
                <$client>::is_connected(self)
            }
        }
    )*};
}

client!(CmppClient, CngpClient, SmgpClient, SgipClient, SmppClient, LinkClient);

/// 20 single ASCII (or GSM) parts + 10 three-part Chinese messages = 50 segments. Part `i` of
/// the first kind reads `ascii(i)` and goes to `dests[0]` followed by `i` in four digits; the
/// Chinese messages go to `dests[1]` followed by their number.
pub fn fifty_segments(
    split: impl Fn(&str) -> Vec<Segment>,
    ascii: impl Fn(usize) -> String,
    dests: [&str; 2],
) -> Vec<OutboundSegment> {
    let mut out = Vec::new();
    for i in 0..20 {
        for segment in split(&ascii(i)) {
            out.push(OutboundSegment {
                dest: format!("{}{i:04}", dests[0]),
                segment,
                registered_delivery: true,
            });
        }
    }
    for i in 0..10 {
        let text = format!("{i}号通知：").repeat(30); // 150 UTF-16 units → 3 parts
        for segment in split(&text) {
            assert_eq!(segment.total, 3);
            out.push(OutboundSegment {
                dest: format!("{}{i:04}", dests[1]),
                segment,
                registered_delivery: true,
            });
        }
    }
    assert_eq!(out.len(), 50);
    out
}

/// Submits every segment at once (the client's window bounds how many are in flight); the
/// outcomes in the segments' order.
pub async fn submit_each(client: &impl Client, segments: &[OutboundSegment]) -> Vec<Outcome> {
    let submits = segments.iter().cloned().map(|seg| {
        let client = client.clone();
        tokio::spawn(async move { client.submit(seg).await })
    });
    let what = format!("{} submits", segments.len());
    within(&what, futures::future::join_all(submits))
        .await
        .into_iter()
        .map(|r| r.expect("submit task"))
        .collect()
}

/// Submits every segment at once and requires each to be accepted under an id of its own that
/// passes `check_id`, each trace naming its submit, a sequence of its own, its send time and a
/// response with status 0; carrier id → destination.
pub async fn submit_all_accepted(
    client: &impl Client,
    segments: &[OutboundSegment],
    check_id: impl Fn(&str),
) -> HashMap<String, String> {
    let submits = segments.iter().cloned().map(|seg| {
        let client = client.clone();
        tokio::spawn(async move { client.submit_traced(seg).await })
    });
    let results = within("traced submits", futures::future::join_all(submits)).await;
    let mut carrier_ids = HashMap::new();
    let mut sequences = HashSet::new();
    for (seg, submitted) in segments.iter().zip(results) {
        let Submitted { trace, result } = submitted.expect("submit task");
        assert!(!trace.command.is_empty(), "{trace:?}");
        assert!(trace.sent_at_ms > 0, "{trace:?}");
        assert!(
            sequences.insert(trace.sequence) && trace.sequence != 0,
            "{trace:?}"
        );
        assert!(!trace.response.is_empty() && trace.status == 0, "{trace:?}");
        match result {
            Ok(SubmitOutcome::Accepted { carrier_id }) => {
                check_id(&carrier_id);
                assert!(
                    carrier_ids.insert(carrier_id, seg.dest.clone()).is_none(),
                    "duplicate id"
                );
            }
            other => panic!("submit not accepted: {other:?}"),
        }
    }
    carrier_ids
}

/// Waits until every id has exactly one report, checking each against its destination; the link
/// must stay up meanwhile.
pub async fn expect_reports(
    events: &mut mpsc::Receiver<ClientEvent>,
    carrier_ids: &HashMap<String, String>,
) {
    let mut reported = HashSet::new();
    within("every report", async {
        while reported.len() < carrier_ids.len() {
            match events.recv().await {
                Some(ClientEvent::Report(r)) => {
                    // Recorded, as far as this test is concerned: let the carrier have its acknowledgement.
                    let r = {
                        let mut r = r;
                        std::mem::take(&mut r.ack).done();
                        r
                    };
                    let dest = carrier_ids
                        .get(&r.carrier_id)
                        .unwrap_or_else(|| panic!("report for unknown id {:?}", r.carrier_id));
                    assert_eq!(&r.dest, dest, "the report names the submit's recipient");
                    assert!(r.stat == "DELIVRD" || r.stat == "UNDELIV", "{}", r.stat);
                    assert_eq!(r.delivered, r.stat == "DELIVRD");
                    assert_eq!(r.submit_time.len(), 10, "{r:?}");
                    assert_eq!(r.done_time.len(), 10, "{r:?}");
                    assert!(
                        !r.pdu.command.is_empty() && r.pdu.received_at_ms > 0,
                        "{r:?}"
                    );
                    assert!(reported.insert(r.carrier_id), "duplicate report");
                }
                Some(ClientEvent::Disconnected { reason }) => panic!("link dropped: {reason}"),
                Some(_) => {}
                None => panic!("events closed"),
            }
        }
    })
    .await;
}

/// The simulator's record file, one JSON value a line.
pub fn read_records(path: &Path) -> Vec<serde_json::Value> {
    let lines = std::fs::read_to_string(path).expect("record file");
    lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// The submit lines of a simulator record after [`fifty_segments`]: one per segment, keyed by
/// the id the client was given, from `account`, with the decoded text (`ascii` among the
/// single parts, 30 Chinese parts of three). Returns the Chinese parts' lines.
pub fn check_fifty_submit_records<'a>(
    records: &'a [serde_json::Value],
    carrier_ids: &HashMap<String, String>,
    account: &str,
    ascii: &str,
) -> Vec<&'a serde_json::Value> {
    let submits: Vec<_> = records.iter().filter(|r| r["kind"] == "submit").collect();
    assert_eq!(submits.len(), 50);
    for s in &submits {
        let id = s["msg_id"].as_str().expect("msg_id string");
        assert_eq!(carrier_ids.get(id).map(String::as_str), s["dest"].as_str());
        assert_eq!(s["account"], account);
        assert!(s["at_ms"].as_i64().is_some());
    }
    assert!(submits
        .iter()
        .any(|s| s["text"] == ascii && s["pk_total"] == 1));
    let chinese: Vec<_> = submits.into_iter().filter(|s| s["pk_total"] == 3).collect();
    assert_eq!(chinese.len(), 30);
    assert!(chinese
        .iter()
        .all(|s| s["text"].as_str().is_some_and(|t| t.contains("号通知"))));
    chinese
}

/// After shutdown the client is down for good: `seg` is refused as `Closed`.
pub async fn shutdown_and_refuse(client: &impl Client, seg: OutboundSegment) {
    within("client shutdown", client.shutdown()).await;
    assert!(!client.is_connected());
    assert_eq!(client.submit(seg).await, Err(SendError::Closed));
}

/// With the gateway holding each response for 200 ms and a window of two, six submits need
/// three rounds. `client` was started with a window of 2; it is shut down at the end.
pub async fn six_submits_take_three_rounds(
    client: &impl Client,
    events: &mut mpsc::Receiver<ClientEvent>,
    segments: Vec<OutboundSegment>,
) {
    wait_connected(events).await;
    let started = tokio::time::Instant::now();
    let six: Vec<_> = segments.into_iter().take(6).collect();
    let results = submit_each(client, &six).await;
    assert!(started.elapsed() >= Duration::from_millis(600));
    for r in results {
        assert!(matches!(r, Ok(SubmitOutcome::Accepted { .. })));
    }
    within("client shutdown", client.shutdown()).await;
}

/// A client with a wrong secret: `attempts` logins in a row are refused with a reason holding
/// `status`, the link never comes up, and a submit (`seg`) is refused as `NotConnected`. The
/// client is shut down at the end.
pub async fn refused_logins_keep_the_link_down(
    client: &impl Client,
    events: &mut mpsc::Receiver<ClientEvent>,
    what: &str,
    status: &str,
    attempts: usize,
    seg: OutboundSegment,
) {
    for attempt in 0..attempts {
        let skipped = wait_event(
            events,
            what,
            |e| matches!(e, ClientEvent::Disconnected { reason } if reason.contains(status)),
        )
        .await;
        assert!(
            !skipped.contains(&ClientEvent::Connected),
            "attempt {attempt} connected"
        );
        assert!(!client.is_connected());
    }
    assert_eq!(client.submit(seg).await, Err(SendError::NotConnected));
    within("client shutdown", client.shutdown()).await;
}
