//! The protocol-independent client session engine: one long-lived TCP link to a carrier with
//! login, a window of unacknowledged requests matched to responses by sequence number,
//! heartbeats when idle, and reconnection with bounded exponential backoff.
//!
//! A protocol (CMPP today; SMPP, SGIP, SMGP and CNGP later) plugs in through [`LinkProtocol`]:
//! it supplies the codec, builds the login, heartbeat and terminate PDUs, and sorts each inbound
//! PDU into a response, a request to answer, or a request to close. The engine owns the socket
//! and the timers and knows nothing about any PDU layout.
//!
//! A protocol without a heartbeat (SGIP) picks [`IdlePolicy::Disconnect`] instead: an idle
//! connection is closed, and the next request opens a new one.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rand::Rng;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, Notify, Semaphore};
use tokio::time::{sleep_until, timeout, timeout_at, Instant};
use tokio_util::codec::{Decoder, Encoder, Framed};
use tokio_util::sync::{CancellationToken, DropGuard};

/// Transport-level failure of a request: the PDU may or may not have reached the carrier.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    #[error("link is not connected")]
    NotConnected,
    #[error("no response within the response timeout")]
    Timeout,
    #[error("connection lost before the response arrived")]
    ConnectionLost,
    #[error("link is shut down")]
    Closed,
}

/// One request as the engine handled it: the sequence number and time it went out under (both 0
/// when it never reached a connection) and its response or failure.
#[derive(Debug)]
pub struct Exchange<T> {
    pub sequence: u32,
    pub sent_at_ms: u64,
    pub result: Result<T, SendError>,
}

impl<T> Exchange<T> {
    fn unsent(error: SendError) -> Exchange<T> {
        Exchange {
            sequence: 0,
            sent_at_ms: 0,
            result: Err(error),
        }
    }
}

/// Heartbeats a silent peer may miss before the link is declared dead (CMPP: 3).
const MAX_MISSED_HEARTBEATS: u32 = 3;
/// How long a deferred reply (see [`LinkProtocol::defer_reply`]) waits for the application.
pub(crate) const DEFERRED_REPLY_WAIT: Duration = Duration::from_secs(60);
/// Upper bound on the wait for the peer's answer to our terminate request.
const TERMINATE_WAIT: Duration = Duration::from_secs(2);
/// Floor for the reconnect delay, so a zero setting cannot turn into a busy loop.
const MIN_RECONNECT: Duration = Duration::from_millis(10);
const EVENT_QUEUE: usize = 1024;

#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub name: String,
    pub addr: String,
    pub window: usize,
    pub heartbeat_interval: Duration,
    pub response_timeout: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

/// Link state changes the engine reports through [`LinkProtocol::link_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    Up,
    /// The link is down: a live connection ended, or an attempt to connect or log in failed.
    Down {
        reason: String,
    },
}

/// What the engine does with a connection that carries no traffic for `heartbeat_interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdlePolicy {
    /// Probe the peer with [`LinkProtocol::heartbeat`]; a peer that misses three is dead (CMPP).
    #[default]
    Heartbeat,
    /// For protocols without a keepalive PDU (SGIP), whose gateways close idle links anyway: once
    /// nothing is outstanding, send [`LinkProtocol::terminate`] and close; reconnect only when a
    /// request needs the link. A connection the peer closes while nothing is outstanding ends the
    /// same quiet way. The link still counts as available ([`Engine::is_available`]) and no
    /// `Down` event is sent, because nothing failed; [`LinkProtocol::heartbeat`] is never called.
    Disconnect,
}

/// What an inbound PDU means to the engine.
pub enum Inbound<P, E> {
    /// Completes the outstanding request with this sequence number.
    Response { sequence: u32, pdu: P },
    /// A request from the peer: `event` goes to the application first, then `reply` is sent, so
    /// the peer only gets its acknowledgement once the application has the event.
    Request { reply: Option<P>, event: Option<E> },
    /// The peer closes the link: `reply` is sent, then the connection is dropped.
    Close { reply: Option<P> },
}

/// The protocol-specific half of a client link.
pub trait LinkProtocol: Send + Sync + 'static {
    type Pdu: Send + Debug + 'static;
    type Event: Send + 'static;
    type Error: std::error::Error + From<std::io::Error> + Send + Sync + 'static;
    type Codec: Decoder<Item = Self::Pdu, Error = Self::Error>
        + Encoder<Self::Pdu, Error = Self::Error>
        + Send
        + Unpin
        + 'static;

    fn codec(&self) -> Self::Codec;
    /// Checked before every connection attempt; an error (a configuration the protocol refuses)
    /// fails the attempt without touching the network, and is reported as the reason.
    fn preflight(&self) -> Result<(), String> {
        Ok(())
    }
    fn login_request(&self, sequence: u32) -> Self::Pdu;
    /// Judges the first PDU received after the login request.
    fn check_login(&self, response: Self::Pdu) -> Result<(), String>;
    fn classify(&self, pdu: Self::Pdu) -> Inbound<Self::Pdu, Self::Event>;
    fn heartbeat(&self, sequence: u32) -> Self::Pdu;
    fn terminate(&self, sequence: u32) -> Self::Pdu;
    fn link_event(&self, state: LinkState) -> Self::Event;
    /// For an inbound request that carries an event and a reply: whether the reply must wait for
    /// the application (see [`crate::ack`]). The protocol plants an [`crate::ack::Ack`] in the event
    /// and returns its waiter; the engine then sends the reply only once the ack is completed.
    fn defer_reply(&self, _event: &mut Self::Event) -> Option<crate::ack::AckWaiter> {
        None
    }
    /// How an idle connection is treated; heartbeats unless the protocol says otherwise.
    fn idle_policy(&self) -> IdlePolicy {
        IdlePolicy::Heartbeat
    }
}

type Waiter<P> = oneshot::Sender<Result<P, SendError>>;

/// One live connection: the queue to its writer and the requests awaiting a response on it.
struct Conn<P> {
    tx: mpsc::Sender<P>,
    pending: Mutex<Pending<P>>,
}

struct Pending<P> {
    /// Set once the connection is gone; later registrations are refused.
    closed: bool,
    waiters: HashMap<u32, Waiter<P>>,
}

impl<P> Conn<P> {
    /// Hands the waiter back when the connection is already closed.
    fn register(&self, sequence: u32, waiter: Waiter<P>) -> Result<(), Waiter<P>> {
        let Ok(mut p) = self.pending.lock() else {
            return Err(waiter);
        };
        if p.closed {
            return Err(waiter);
        }
        p.waiters.insert(sequence, waiter);
        Ok(())
    }

    /// Closes the connection to new requests if none is outstanding, in one step, so a request
    /// cannot slip in between the check and the close and be lost with the connection.
    fn close_if_idle(&self) -> bool {
        match self.pending.lock() {
            Ok(mut p) if p.waiters.is_empty() => {
                p.closed = true;
                true
            }
            _ => false,
        }
    }

    fn unregister(&self, sequence: u32) {
        if let Ok(mut p) = self.pending.lock() {
            p.waiters.remove(&sequence);
        }
    }

    /// Returns the PDU back if nobody waits for `sequence` (a late or unsolicited response).
    fn complete(&self, sequence: u32, pdu: P) -> Option<P> {
        let waiter = self
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.waiters.remove(&sequence));
        match waiter {
            Some(w) => {
                // The requester may have timed out and gone; nothing to do then.
                let _ = w.send(Ok(pdu));
                None
            }
            None => Some(pdu),
        }
    }

    fn close(&self, error: SendError) {
        let waiters = match self.pending.lock() {
            Ok(mut p) => {
                p.closed = true;
                std::mem::take(&mut p.waiters)
            }
            Err(_) => return,
        };
        for (_, w) in waiters {
            let _ = w.send(Err(error));
        }
    }
}

struct Inner<P: LinkProtocol> {
    settings: EngineSettings,
    protocol: P,
    window: Semaphore,
    sequence: AtomicU32,
    current: watch::Sender<Option<Arc<Conn<P::Pdu>>>>,
    /// Closed for idleness ([`IdlePolicy::Disconnect`]) and waiting for a request to need it.
    dormant: AtomicBool,
    /// Requests waiting for a connection; a dormant link reconnects while this is non-zero.
    waiting: AtomicUsize,
    /// Wakes a dormant link when a request starts waiting.
    demand: Notify,
    stop: CancellationToken,
    done: CancellationToken,
}

impl<P: LinkProtocol> Inner<P> {
    fn next_sequence(&self) -> u32 {
        loop {
            let s = self.sequence.fetch_add(1, Ordering::Relaxed);
            if s != 0 {
                return s;
            }
        }
    }

    /// Waits for a live connection and registers `waiter` on it. A connection that closed
    /// between being seen and the registration (an idle close) is passed over for the next one.
    async fn connection_for(
        &self,
        sequence: u32,
        mut waiter: Waiter<P::Pdu>,
    ) -> Result<Arc<Conn<P::Pdu>>, SendError> {
        let _demand = Demand::new(&self.waiting, &self.demand);
        let mut current = self.current.subscribe();
        loop {
            let seen = current.borrow_and_update().clone();
            if let Some(conn) = seen {
                match conn.register(sequence, waiter) {
                    Ok(()) => return Ok(conn),
                    Err(back) => waiter = back,
                }
            }
            if current.changed().await.is_err() {
                return Err(SendError::Closed);
            }
        }
    }

    /// Waits until a request needs the link; false when the link is stopped first.
    async fn wait_for_demand(&self) -> bool {
        loop {
            let notified = self.demand.notified();
            tokio::pin!(notified);
            // Registered before the check, so a request arriving in between still wakes us.
            notified.as_mut().enable();
            if self.waiting.load(Ordering::Acquire) > 0 {
                return true;
            }
            tokio::select! {
                _ = notified => {}
                _ = self.stop.cancelled() => return false,
            }
        }
    }
}

/// Counts one request as waiting for a connection while it lives, and wakes a dormant link.
struct Demand<'a> {
    waiting: &'a AtomicUsize,
}

impl<'a> Demand<'a> {
    fn new(waiting: &'a AtomicUsize, demand: &Notify) -> Self {
        waiting.fetch_add(1, Ordering::AcqRel);
        demand.notify_waiters();
        Demand { waiting }
    }
}

impl Drop for Demand<'_> {
    fn drop(&mut self) {
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A running link. Cloning shares the link; dropping the last clone stops it, like
/// [`Engine::shutdown`] without waiting.
pub struct Engine<P: LinkProtocol> {
    inner: Arc<Inner<P>>,
    _stop_on_drop: Arc<DropGuard>,
}

impl<P: LinkProtocol> Clone for Engine<P> {
    fn clone(&self) -> Self {
        Engine {
            inner: self.inner.clone(),
            _stop_on_drop: self._stop_on_drop.clone(),
        }
    }
}

impl<P: LinkProtocol> Engine<P> {
    /// Spawns the connection task; it connects, logs in and reconnects until [`Engine::shutdown`].
    /// Must be called within a Tokio runtime.
    ///
    /// Read the event receiver promptly: while its queue is full the link stops reading from the
    /// peer, which is how a slow consumer slows down the carrier's reports.
    pub fn start(settings: EngineSettings, protocol: P) -> (Engine<P>, mpsc::Receiver<P::Event>) {
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        (
            Engine::start_with_events(settings, protocol, events_tx),
            events_rx,
        )
    }

    /// Like [`Engine::start`], sending the link's events into `events`, for a client that has
    /// other sources of events to merge (SGIP's listener for the gateway's own connections).
    pub fn start_with_events(
        settings: EngineSettings,
        protocol: P,
        events: mpsc::Sender<P::Event>,
    ) -> Engine<P> {
        let inner = Arc::new(Inner {
            window: Semaphore::new(settings.window.max(1)),
            settings,
            protocol,
            sequence: AtomicU32::new(1),
            current: watch::Sender::new(None),
            dormant: AtomicBool::new(false),
            waiting: AtomicUsize::new(0),
            demand: Notify::new(),
            stop: CancellationToken::new(),
            done: CancellationToken::new(),
        });
        tokio::spawn(run_link(inner.clone(), events));
        let guard = Arc::new(inner.stop.clone().drop_guard());
        Engine {
            inner,
            _stop_on_drop: guard,
        }
    }

    pub fn is_connected(&self) -> bool {
        self.inner.current.borrow().is_some()
    }

    /// Connected, or closed for idleness and ready to reconnect when a request comes
    /// ([`IdlePolicy::Disconnect`]): whether it is worth handing the link work.
    pub fn is_available(&self) -> bool {
        self.is_connected() || self.inner.dormant.load(Ordering::Relaxed)
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.inner.settings
    }

    pub fn protocol(&self) -> &P {
        &self.inner.protocol
    }

    /// Sends a request built for a fresh sequence number and waits for its response.
    ///
    /// Waits for a window slot, then for a live connection (up to the response timeout), then
    /// for the response (up to the response timeout).
    pub async fn request(&self, build: impl FnOnce(u32) -> P::Pdu) -> Result<P::Pdu, SendError> {
        self.request_traced(build).await.result
    }

    /// Like [`Engine::request`], also saying under which sequence number and when the request
    /// went out (for the protocol trace), whatever became of it.
    pub async fn request_traced(&self, build: impl FnOnce(u32) -> P::Pdu) -> Exchange<P::Pdu> {
        let inner = &self.inner;
        let stop = &inner.stop;
        if stop.is_cancelled() {
            return Exchange::unsent(SendError::Closed);
        }
        let _permit = tokio::select! {
            p = inner.window.acquire() => match p {
                Ok(p) => p,
                Err(_) => return Exchange::unsent(SendError::Closed),
            },
            _ = stop.cancelled() => return Exchange::unsent(SendError::Closed),
        };
        let deadline = Instant::now() + inner.settings.response_timeout;
        let sequence = inner.next_sequence();
        let (tx, rx) = oneshot::channel();
        let conn = tokio::select! {
            c = timeout_at(deadline, inner.connection_for(sequence, tx)) => match c {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return Exchange::unsent(e),
                Err(_) => return Exchange::unsent(SendError::NotConnected),
            },
            _ = stop.cancelled() => return Exchange::unsent(SendError::Closed),
        };
        let sent_at_ms = crate::trace::now_ms();
        let sent = |result| Exchange {
            sequence,
            sent_at_ms,
            result,
        };
        if conn.tx.send(build(sequence)).await.is_err() {
            conn.unregister(sequence);
            return sent(Err(SendError::ConnectionLost));
        }
        sent(match timeout(inner.settings.response_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(SendError::ConnectionLost),
            Err(_) => {
                conn.unregister(sequence);
                Err(SendError::Timeout)
            }
        })
    }

    /// Asks the peer to close (waiting briefly for its answer), stops reconnecting and waits for
    /// the connection task to end. Outstanding and later requests fail with `Closed`.
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        self.inner.window.close();
        self.inner.done.cancelled().await;
    }
}

/// Bounded exponential backoff with a little jitter (so links to one carrier do not reconnect
/// in lockstep).
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(MIN_RECONNECT);
        let max = max.max(min);
        Backoff {
            min,
            max,
            next: min,
        }
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// The next delay, within `min..=max`.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter = base.mul_f64(rand::thread_rng().gen_range(0.0..0.25));
        base.saturating_sub(jitter).max(self.min)
    }
}

async fn run_link<P: LinkProtocol>(inner: Arc<Inner<P>>, events: mpsc::Sender<P::Event>) {
    let s = &inner.settings;
    let mut backoff = Backoff::new(s.reconnect_min, s.reconnect_max);
    // Whether the application was last told Up: a link closed for idleness stays "up" for it.
    let mut announced_up = false;
    while !inner.stop.is_cancelled() {
        if inner.dormant.load(Ordering::Relaxed) && !inner.wait_for_demand().await {
            break;
        }
        let attempt = tokio::select! {
            r = connect_and_login(&inner) => r,
            _ = inner.stop.cancelled() => break,
        };
        let reason = match attempt {
            Ok(framed) => {
                backoff.reset();
                tracing::info!(link = %s.name, addr = %s.addr, "link up");
                let ended = serve(&inner, framed, &events, !announced_up).await;
                announced_up = true;
                if ended.idle {
                    tracing::info!(link = %s.name, reason = %ended.reason, "link idle: closed until needed");
                    continue;
                }
                ended.reason
            }
            Err(reason) => reason,
        };
        inner.dormant.store(false, Ordering::Relaxed);
        announced_up = false;
        tracing::warn!(link = %s.name, %reason, "link down");
        let _ = events
            .send(inner.protocol.link_event(LinkState::Down { reason }))
            .await;
        let delay = backoff.next_delay();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = inner.stop.cancelled() => break,
        }
    }
    inner.current.send_replace(None);
    inner.done.cancel();
}

async fn connect_and_login<P: LinkProtocol>(
    inner: &Inner<P>,
) -> Result<Framed<TcpStream, P::Codec>, String> {
    let s = &inner.settings;
    inner.protocol.preflight()?;
    let stream = match timeout(s.response_timeout, TcpStream::connect(&s.addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(format!("connect to {} failed: {e}", s.addr)),
        Err(_) => return Err(format!("connect to {} timed out", s.addr)),
    };
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(link = %s.name, error = %e, "set_nodelay failed");
    }
    let mut framed = Framed::new(stream, inner.protocol.codec());
    let login = inner.protocol.login_request(inner.next_sequence());
    framed
        .send(login)
        .await
        .map_err(|e| format!("sending login failed: {e}"))?;
    match timeout(s.response_timeout, framed.next()).await {
        Err(_) => Err("no login response within the response timeout".into()),
        Ok(None) => Err("peer closed the connection during login".into()),
        Ok(Some(Err(e))) => Err(format!("bad login response: {e}")),
        Ok(Some(Ok(pdu))) => inner
            .protocol
            .check_login(pdu)
            .map(|()| framed)
            .map_err(|e| format!("login refused: {e}")),
    }
}

/// How a connection ended.
struct Ended {
    reason: String,
    /// Closed for idleness under [`IdlePolicy::Disconnect`]: not a failure.
    idle: bool,
}

/// Runs one logged-in connection until it ends. `announce` sends the `Up` event (not after an
/// idle close, where the application never heard the link went down).
async fn serve<P: LinkProtocol>(
    inner: &Inner<P>,
    mut framed: Framed<TcpStream, P::Codec>,
    events: &mpsc::Sender<P::Event>,
    announce: bool,
) -> Ended {
    let s = &inner.settings;
    let (tx, mut rx) = mpsc::channel(s.window.max(1) + 8);
    let conn = Arc::new(Conn {
        tx,
        pending: Mutex::new(Pending {
            closed: false,
            waiters: HashMap::new(),
        }),
    });
    inner.current.send_replace(Some(conn.clone()));
    if announce {
        let _ = events.send(inner.protocol.link_event(LinkState::Up)).await;
    }

    let policy = inner.protocol.idle_policy();
    let mut idle = false;
    let mut peer_closed = false;
    let mut missed = 0u32;
    let mut next_probe = Instant::now() + s.heartbeat_interval;
    let mut close_with = SendError::ConnectionLost;
    let reason = loop {
        tokio::select! {
            biased;
            _ = inner.stop.cancelled() => {
                close_with = SendError::Closed;
                terminate(inner, &conn, &mut framed).await;
                break "shut down".to_string();
            }
            frame = framed.next() => {
                let pdu = match frame {
                    None => {
                        peer_closed = true;
                        break "peer closed the connection".to_string();
                    }
                    Some(Err(e)) => break format!("bad frame from peer: {e}"),
                    Some(Ok(pdu)) => pdu,
                };
                missed = 0;
                next_probe = Instant::now() + s.heartbeat_interval;
                match inner.protocol.classify(pdu) {
                    Inbound::Response { sequence, pdu } => {
                        if let Some(pdu) = conn.complete(sequence, pdu) {
                            tracing::debug!(link = %s.name, sequence, ?pdu, "response nobody waits for");
                        }
                    }
                    Inbound::Request { reply, event } => {
                        let mut deferred = None;
                        if let Some(mut event) = event {
                            if reply.is_some() {
                                deferred = inner.protocol.defer_reply(&mut event);
                            }
                            let _ = events.send(event).await;
                        }
                        match (reply, deferred) {
                            (Some(reply), Some(waiter)) => {
                                // Answered by the writer once the application has the event on
                                // disk; never, if it does not (the peer then sends it again).
                                let tx = conn.tx.clone();
                                tokio::spawn(async move {
                                    if waiter.wait(DEFERRED_REPLY_WAIT).await {
                                        let _ = tx.send(reply).await;
                                    }
                                });
                            }
                            (Some(reply), None) => {
                                if let Err(e) = framed.send(reply).await {
                                    break format!("write failed: {e}");
                                }
                            }
                            (None, _) => {}
                        }
                    }
                    Inbound::Close { reply } => {
                        if let Some(reply) = reply {
                            let _ = framed.send(reply).await;
                        }
                        peer_closed = true;
                        break "peer terminated the link".to_string();
                    }
                }
            }
            Some(pdu) = rx.recv() => {
                if let Err(e) = write_queued::<P>(&mut framed, pdu, &mut rx).await {
                    break format!("write failed: {e}");
                }
            }
            _ = sleep_until(next_probe), if policy == IdlePolicy::Disconnect => {
                if !conn.close_if_idle() {
                    // Still waiting for responses: not idle, whatever the clock says.
                    next_probe = Instant::now() + s.heartbeat_interval;
                    continue;
                }
                idle = true;
                // Requests from now on wait for (and ask for) the next connection.
                inner.dormant.store(true, Ordering::Relaxed);
                inner.current.send_replace(None);
                terminate(inner, &conn, &mut framed).await;
                break format!("no traffic for {:?}", s.heartbeat_interval);
            }
            _ = sleep_until(next_probe), if policy == IdlePolicy::Heartbeat => {
                if missed >= MAX_MISSED_HEARTBEATS {
                    break format!("peer silent: {missed} heartbeats unanswered");
                }
                missed += 1;
                let probe = inner.protocol.heartbeat(inner.next_sequence());
                if let Err(e) = framed.send(probe).await {
                    break format!("write failed: {e}");
                }
                next_probe = Instant::now() + s.response_timeout;
            }
        }
    };
    // A peer closing a link with nothing outstanding is how SGIP gateways treat idle links.
    if policy == IdlePolicy::Disconnect && peer_closed && conn.close_if_idle() {
        idle = true;
    }
    if idle {
        inner.dormant.store(true, Ordering::Relaxed);
    }
    inner.current.send_replace(None);
    conn.close(close_with);
    Ended { reason, idle }
}

/// Most PDUs written to the socket at once.
const MAX_PDUS_PER_WRITE: usize = 64;

/// Writes `first` and whatever else is already queued for the peer (up to
/// [`MAX_PDUS_PER_WRITE`]) with one flush: a dispatch round queues a window's worth of submits
/// at once, and a write to the socket per PDU was a system call each on both ends.
async fn write_queued<P: LinkProtocol>(
    framed: &mut Framed<TcpStream, P::Codec>,
    first: P::Pdu,
    rx: &mut mpsc::Receiver<P::Pdu>,
) -> Result<(), P::Error> {
    framed.feed(first).await?;
    for _ in 1..MAX_PDUS_PER_WRITE {
        match rx.try_recv() {
            Ok(pdu) => framed.feed(pdu).await?,
            Err(_) => break,
        }
    }
    framed.flush().await
}

/// Sends the terminate request and waits briefly for its response, still completing requests
/// whose responses arrive meanwhile. Requests from the peer are left unanswered: the
/// application no longer listens, so acknowledging them would lose them.
async fn terminate<P: LinkProtocol>(
    inner: &Inner<P>,
    conn: &Conn<P::Pdu>,
    framed: &mut Framed<TcpStream, P::Codec>,
) {
    let sequence = inner.next_sequence();
    if framed
        .send(inner.protocol.terminate(sequence))
        .await
        .is_err()
    {
        return;
    }
    let wait = inner.settings.response_timeout.min(TERMINATE_WAIT);
    let _ = timeout(wait, async {
        while let Some(Ok(pdu)) = framed.next().await {
            match inner.protocol.classify(pdu) {
                Inbound::Response { sequence: s, .. } if s == sequence => return,
                Inbound::Response { sequence: s, pdu } => {
                    let _ = conn.complete(s, pdu);
                }
                Inbound::Request { .. } => {}
                Inbound::Close { reply } => {
                    if let Some(reply) = reply {
                        let _ = framed.send(reply).await;
                    }
                    return;
                }
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_bounds_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let delays: Vec<_> = (0..8).map(|_| b.next_delay()).collect();
        for d in &delays {
            assert!(*d >= Duration::from_millis(100) && *d <= Duration::from_millis(1000));
        }
        assert!(delays[7] > Duration::from_millis(700), "reaches the cap");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn backoff_never_zero() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert!(b.next_delay() >= MIN_RECONNECT);
    }
}
