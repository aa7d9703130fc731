//! The dialing side: TLS connectors tonic channels are built on. A peer is dialed with the node's
//! own certificate (from the [`TlsStore`] in force at connect time, so reloads apply to new
//! connections) and must present the certificate of the node it is expected to be — checked by
//! its DNS SAN `node-<id>.<cluster>.herald`, never by the address, which may be a proxy's. A
//! client command dials with the CA it was given and checks the host it dialed.
//!
//! tonic sees a plain `http://` endpoint: the TLS is inside the connector.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint, Uri};

use super::identity::NodeIdentity;
use super::store::TlsStore;
use super::{provider, TlsError, ALPN_H2};

type Connecting = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<TokioIo<TlsStream<TcpStream>>, std::io::Error>>
            + Send,
    >,
>;

/// Dials `uri`'s host and port and runs the handshake, expecting `server_name`.
fn dial(
    uri: &Uri,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    timeout: Duration,
) -> Connecting {
    let target = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    Box::pin(async move {
        let connect = async {
            let tcp = TcpStream::connect(&target).await?;
            let _ = tcp.set_nodelay(true);
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(server_name, tcp)
                .await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        };
        tokio::time::timeout(timeout, connect).await.map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no TLS connection to {target} within {timeout:?}"),
            )
        })?
    })
}

/// A lazily connecting channel to peer `target` at `addr`, with mutual TLS.
pub fn peer_channel(store: Arc<TlsStore>, target: u64, addr: &str) -> Result<Channel, String> {
    let expected = NodeIdentity {
        cluster: store.identity().cluster.clone(),
        node_id: target,
    };
    let server_name =
        ServerName::try_from(expected.dns_name()).map_err(|e| format!("node {target}: {e}"))?;
    let endpoint = herald_raft::network::internal_endpoint(addr).map_err(|e| e.to_string())?;
    let timeout = crate::transport_limits::HANDSHAKE_TIMEOUT;
    Ok(
        endpoint.connect_with_connector_lazy(tower::service_fn(move |uri: Uri| {
            dial(
                &uri,
                store.current().peer_client.clone(),
                server_name.clone(),
                timeout,
            )
        })),
    )
}

/// A client configuration that trusts the CA in `ca_pem` and presents no certificate.
pub fn client_config(
    ca_pem: &[u8],
    origin: &std::path::Path,
) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = super::pem::roots_from_pem(ca_pem, origin)?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// A channel over TLS to `endpoint` (an `http://HOST:PORT` endpoint for tonic); the server's
/// certificate must name `name`. Connects now when `lazy` is false.
pub async fn tls_channel(
    endpoint: Endpoint,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    connect_timeout: Duration,
    lazy: bool,
) -> Result<Channel, tonic::transport::Error> {
    let connector = tower::service_fn(move |uri: Uri| {
        dial(&uri, config.clone(), name.clone(), connect_timeout)
    });
    if lazy {
        Ok(endpoint.connect_with_connector_lazy(connector))
    } else {
        endpoint.connect_with_connector(connector).await
    }
}

/// A client configuration that trusts the CA in `ca_pem` and presents the certificate and key in
/// the PEM files `cert` and `key` (a node's, or one made by `herald cert client`).
pub fn client_config_with_cert(
    ca_pem: &[u8],
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = super::pem::roots_from_pem(ca_pem, std::path::Path::new("(CA)"))?;
    let chain = super::pem::load_certs(cert)?;
    let key = super::pem::load_key(key)?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// A channel to `addr` (HOST:PORT) over TLS with `config`, expecting the server to be
/// `server_name`; connected now.
pub async fn channel_to(
    addr: &str,
    config: Arc<ClientConfig>,
    server_name: &str,
    timeout: Duration,
) -> Result<Channel, String> {
    let name = ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(timeout)
        .timeout(timeout);
    tls_channel(endpoint, config, name, timeout, false)
        .await
        .map_err(|e| format!("{e}: {:?}", std::error::Error::source(&e)))
}

/// The certificate a TLS server at `addr` serves to a new connection now, as `config` verifies it
/// against `server_name` (for checking that a reload took effect).
pub async fn served_certificate(
    addr: &str,
    config: Arc<ClientConfig>,
    server_name: &str,
) -> Result<super::pem::CertInfo, String> {
    let name = ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("the server sent no certificate")?;
    super::pem::CertInfo::parse(cert)
}
