//! A fault-injecting TCP proxy: one listener that forwards every connection to one target, and
//! can be told to cut the connections it carries and to refuse new ones.
//!
//! The harness puts one in front of every (node → peer) pair and every (node → carrier) pair, so
//! partitions — symmetric, one-way, flapping — need no root and no firewall. A blocked proxy closes
//! what it carries and closes every new connection at once, which a node sees as a peer that is
//! unreachable. It is test equipment: it never inspects the bytes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How long the proxy waits to reach its target before giving up on a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

struct Shared {
    target: String,
    blocked: AtomicBool,
    /// Bumped to close every connection carried so far.
    generation: watch::Sender<u64>,
    connections: AtomicU64,
}

/// A running proxy. Dropping it stops the listener and closes every connection.
pub struct Proxy {
    listen: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
}

impl Proxy {
    /// Listens on an ephemeral port of `ip` and forwards to `target`.
    pub async fn start(ip: &str, target: &str) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(format!("{ip}:0")).await?;
        let listen = listener.local_addr()?;
        let (generation, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            target: target.to_string(),
            blocked: AtomicBool::new(false),
            generation,
            connections: AtomicU64::new(0),
        });
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(accept_loop(listener, shared.clone(), stop_rx));
        Ok(Proxy {
            listen,
            shared,
            stop,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.listen
    }

    /// Cuts every connection and refuses new ones until [`Proxy::unblock`].
    pub fn block(&self) {
        self.shared.blocked.store(true, Ordering::SeqCst);
        self.cut();
    }

    pub fn unblock(&self) {
        self.shared.blocked.store(false, Ordering::SeqCst);
    }

    pub fn is_blocked(&self) -> bool {
        self.shared.blocked.load(Ordering::SeqCst)
    }

    /// Closes every connection carried now; new ones are still accepted (unless blocked).
    pub fn cut(&self) {
        self.shared.generation.send_modify(|g| *g += 1);
    }

    /// Connections accepted and forwarded over the proxy's life.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.cut();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            a = listener.accept() => a,
        };
        let Ok((inbound, _)) = accepted else {
            // Out of descriptors, typically: back off rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if shared.blocked.load(Ordering::SeqCst) {
            drop(inbound);
            continue;
        }
        let shared = shared.clone();
        tokio::spawn(async move { carry(inbound, shared).await });
    }
}

async fn carry(mut inbound: TcpStream, shared: Arc<Shared>) {
    let mut cut = shared.generation.subscribe();
    cut.borrow_and_update();
    let outbound = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&shared.target)).await;
    let Ok(Ok(mut outbound)) = outbound else {
        return;
    };
    if shared.blocked.load(Ordering::SeqCst) {
        return;
    }
    shared.connections.fetch_add(1, Ordering::Relaxed);
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = cut.changed() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(addr: SocketAddr) -> bool {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            return false;
        };
        if s.write_all(b"ping").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 4];
        matches!(
            tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut buf)).await,
            Ok(Ok(_))
        ) && &buf == b"ping"
    }

    #[tokio::test]
    async fn forwards_blocks_and_heals() {
        let target = echo_server().await;
        let proxy = Proxy::start("127.0.0.1", &target.to_string())
            .await
            .expect("proxy");
        assert!(round_trip(proxy.addr()).await, "an open proxy forwards");

        let mut held = TcpStream::connect(proxy.addr()).await.expect("connect");
        held.write_all(b"x").await.expect("write");
        let mut one = [0u8; 1];
        held.read_exact(&mut one).await.expect("echo");
        proxy.block();
        let n = tokio::time::timeout(Duration::from_secs(2), held.read(&mut one))
            .await
            .expect("a cut connection is closed, not left hanging");
        assert!(matches!(n, Ok(0) | Err(_)));
        assert!(!round_trip(proxy.addr()).await, "a blocked proxy refuses");

        proxy.unblock();
        assert!(
            round_trip(proxy.addr()).await,
            "a healed proxy forwards again"
        );
    }
}
