//! The node's HTTP listener (`http-listen`): one axum [`Router`] for operators' tools —
//! `/metrics` for Prometheus, `/livez` and `/readyz` for orchestrators — and later REST and the
//! console. It speaks TLS with the public certificate through the same reloadable acceptor as
//! the public gRPC port (same connection ceiling and handshake timeout), plaintext only on an
//! `insecure = true` node.
//!
//! Handlers here are thin: what the numbers and the health mean lives in `metrics` and `health`.

pub mod health;
pub mod metrics;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use axum::Router;
use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::context::Ctx;
use crate::tls::acceptor::{self, Conn, ListenerSettings, Port};
use crate::transport_limits as limits;

/// Every path the listener serves.
pub fn router(ctx: Ctx) -> Router {
    Router::new()
        .merge(metrics::routes())
        .merge(health::routes())
        .with_state(ctx)
}

/// The accepted (and handshaken) connections, as axum takes them.
struct Incoming {
    conns: Pin<Box<dyn Stream<Item = Result<Conn, io::Error>> + Send>>,
    local: SocketAddr,
}

impl axum::serve::Listener for Incoming {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        loop {
            match self.conns.next().await {
                Some(Ok(conn)) => {
                    let remote = conn.remote_addr().unwrap_or(self.local);
                    return (conn, remote);
                }
                // The acceptor never yields errors (it logs and drops bad connections).
                Some(Err(_)) => continue,
                // The accept loop is gone: nothing will come again.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Binds `addr` and serves [`router`] until `shutdown`. Binding is done before returning, so a
/// taken address fails the node's start with a clear error.
pub async fn serve(
    ctx: Ctx,
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<impl std::future::Future<Output = io::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("http-listen {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let conns = acceptor::incoming(
        listener,
        ListenerSettings {
            port: Port::Http,
            tls: ctx.tls.clone(),
            max_connections: limits::PUBLIC_MAX_CONNECTIONS,
            handshake_timeout: limits::HANDSHAKE_TIMEOUT,
            members: None,
        },
    );
    let incoming = Incoming {
        conns: Box::pin(conns),
        local,
    };
    let app = router(ctx);
    Ok(async move {
        axum::serve(incoming, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    })
}
