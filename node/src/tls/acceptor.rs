//! The listener in front of each tonic server: accepts TCP connections up to a ceiling, runs the
//! TLS handshake (with a timeout, off the accept loop) using whatever configuration is in force
//! at that moment — this is what makes certificate reload possible, since tonic's own TLS
//! configuration is fixed at start — and hands finished connections to tonic.
//!
//! On the internal port it also checks the peer's certificate names a node of this cluster that
//! is a member, and records the verified node id of each open connection in a [`PeerRegistry`],
//! which the internal service's interceptor reads ([`PeerNode`]). Connections keep tonic's
//! `TcpConnectInfo`, so `Request::remote_addr()` works as without TLS.
//!
//! It does not decide what a call may do: that is the service layer's job.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::identity::NodeIdentity;
use super::pem::CertInfo;
use super::store::TlsStore;

/// Which of the node's two ports a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// Clients: server certificate only.
    Public,
    /// Peers: mutual TLS, the client certificate must name a member of this cluster.
    Internal,
    /// The HTTP listener (metrics, health): the public certificate, HTTP/1.1 or HTTP/2.
    Http,
}

impl Port {
    fn name(self) -> &'static str {
        match self {
            Port::Public => "public",
            Port::Internal => "internal",
            Port::Http => "http",
        }
    }
}

/// Decides whether a verified node identity may use the internal port now (this cluster, a
/// current member); the error says why not.
pub type MemberCheck = Arc<dyn Fn(&NodeIdentity) -> Result<(), String> + Send + Sync>;

/// The verified node id of a peer's call, put into the request's extensions on the internal port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerNode(pub u64);

/// Verified peer identities of the internal port's open connections, by remote address (unique
/// among open connections of one listener).
#[derive(Clone, Default)]
pub struct PeerRegistry {
    peers: Arc<Mutex<HashMap<SocketAddr, NodeIdentity>>>,
}

impl PeerRegistry {
    pub fn get(&self, remote: &SocketAddr) -> Option<NodeIdentity> {
        self.lock().get(remote).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, NodeIdentity>> {
        match self.peers.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

/// Removes a connection's entry when the connection is gone.
struct Registration {
    registry: PeerRegistry,
    remote: SocketAddr,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.remote);
    }
}

/// Logs at most a few lines per window and says how many it held back, so a flood of bad
/// connections cannot flood the log too.
pub struct RateLimitedLog {
    window_start_ms: AtomicU64,
    in_window: AtomicU64,
    suppressed: AtomicU64,
    epoch: Instant,
}

impl Default for RateLimitedLog {
    fn default() -> Self {
        RateLimitedLog {
            window_start_ms: AtomicU64::new(0),
            in_window: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl RateLimitedLog {
    const WINDOW_MS: u64 = 10_000;
    const PER_WINDOW: u64 = 10;

    /// Returns `Some(held back since the last line)` when this line may be logged.
    pub fn allow(&self) -> Option<u64> {
        let now = self.epoch.elapsed().as_millis() as u64;
        let start = self.window_start_ms.load(Ordering::Relaxed);
        if now.saturating_sub(start) >= Self::WINDOW_MS
            && self
                .window_start_ms
                .compare_exchange(start, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.in_window.store(0, Ordering::Relaxed);
        }
        if self.in_window.fetch_add(1, Ordering::Relaxed) < Self::PER_WINDOW {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// One accepted (and, with TLS, handshaken) connection, as tonic serves it.
pub struct Conn {
    io: Io,
    info: TcpConnectInfo,
    _slot: OwnedSemaphorePermit,
    _peer: Option<Registration>,
}

impl Conn {
    /// The client's address.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.info.remote_addr
    }
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// What one listener does.
pub struct ListenerSettings {
    pub port: Port,
    /// `None`: plaintext (an `insecure = true` node).
    pub tls: Option<Arc<TlsStore>>,
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    /// Internal port with TLS: who may connect, and where verified identities are recorded.
    pub members: Option<(MemberCheck, PeerRegistry)>,
}

struct Shared {
    settings: ListenerSettings,
    slots: Arc<Semaphore>,
    over_limit_log: RateLimitedLog,
    refused_log: RateLimitedLog,
}

/// Accepts on `listener` until the returned stream is dropped (tonic drops it when it stops).
pub fn incoming(
    listener: TcpListener,
    settings: ListenerSettings,
) -> impl Stream<Item = Result<Conn, io::Error>> {
    let (tx, rx) = mpsc::channel::<Conn>(64);
    let shared = Arc::new(Shared {
        slots: Arc::new(Semaphore::new(settings.max_connections)),
        settings,
        over_limit_log: RateLimitedLog::default(),
        refused_log: RateLimitedLog::default(),
    });
    tokio::spawn(accept_loop(listener, shared, tx));
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|conn| (Ok(conn), rx))
    })
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tx: mpsc::Sender<Conn>) {
    let port = shared.settings.port.name();
    loop {
        let accepted = tokio::select! {
            _ = tx.closed() => return,
            a = listener.accept() => a,
        };
        let (tcp, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: pause instead of spinning, keep serving.
                if let Some(held) = shared.over_limit_log.allow() {
                    tracing::warn!(port, held_back = held, "accepting a connection failed: {e}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = shared.slots.clone().try_acquire_owned() else {
            if let Some(held) = shared.over_limit_log.allow() {
                tracing::warn!(
                    port,
                    %remote,
                    limit = shared.settings.max_connections,
                    held_back = held,
                    "connection refused: the port holds its most connections"
                );
            }
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            if let Some(conn) = handshake(&shared, tcp, remote, slot).await {
                let _ = tx.send(conn).await;
            }
        });
    }
}

async fn handshake(
    shared: &Shared,
    tcp: TcpStream,
    remote: SocketAddr,
    slot: OwnedSemaphorePermit,
) -> Option<Conn> {
    let settings = &shared.settings;
    let info = TcpConnectInfo {
        local_addr: tcp.local_addr().ok(),
        remote_addr: Some(remote),
    };
    let Some(store) = &settings.tls else {
        return Some(Conn {
            io: Io::Plain(tcp),
            info,
            _slot: slot,
            _peer: None,
        });
    };
    let port = settings.port.name();
    let loaded = store.current();
    let config = match settings.port {
        Port::Public => loaded.public.clone(),
        Port::Internal => loaded.internal.clone(),
        Port::Http => loaded.http.clone(),
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let refuse = |why: String| {
        if let Some(held) = shared.refused_log.allow() {
            tracing::warn!(port, %remote, held_back = held, "TLS connection refused: {why}");
        }
    };
    let stream = match tokio::time::timeout(settings.handshake_timeout, acceptor.accept(tcp)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            refuse(format!("handshake failed: {e}"));
            return None;
        }
        Err(_) => {
            refuse(format!(
                "no TLS handshake within {:?}",
                settings.handshake_timeout
            ));
            return None;
        }
    };
    let mut peer = None;
    if let Some((check, registry)) = &settings.members {
        let identity = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .ok_or_else(|| "no client certificate".to_string())
            .and_then(|cert| CertInfo::parse(cert))
            .and_then(|info| {
                info.node_identity().ok_or_else(|| {
                    format!(
                        "the client certificate names no node (URI SANs {:?})",
                        info.uris
                    )
                })
            });
        let identity = match identity.and_then(|id| check(&id).map(|()| id)) {
            Ok(id) => id,
            Err(why) => {
                refuse(why);
                return None;
            }
        };
        registry.lock().insert(remote, identity);
        peer = Some(Registration {
            registry: registry.clone(),
            remote,
        });
    }
    Some(Conn {
        io: Io::Tls(Box::new(stream)),
        info,
        _slot: slot,
        _peer: peer,
    })
}
