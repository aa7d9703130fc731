//! A small HTTPS (or plain HTTP) GET for the nodes' HTTP listener (`/metrics`, `/livez`,
//! `/readyz`), trusting the test CA the way every client does (`herald_node::tls::client`).

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// A response's status and body text.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// GETs `path` from `addr` ("IP:PORT"): over TLS verified against `ca_pem` when given,
/// plaintext otherwise. Bounded by a 10 s timeout.
pub async fn get(addr: &str, path: &str, ca_pem: Option<&[u8]>) -> anyhow::Result<Reply> {
    tokio::time::timeout(Duration::from_secs(10), get_unbounded(addr, path, ca_pem))
        .await
        .map_err(|_| anyhow::anyhow!("GET {addr}{path}: no answer within 10 s"))?
}

async fn get_unbounded(addr: &str, path: &str, ca_pem: Option<&[u8]>) -> anyhow::Result<Reply> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_string();
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr)
        .body(Empty::<Bytes>::new())?;
    let response = match ca_pem {
        Some(pem) => {
            let config = herald_node::tls::client::client_config(pem, "test CA".as_ref())?;
            let mut config = (*config).clone();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let name = rustls_pki_types::ServerName::try_from(host)?;
            let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
                .connect(name, tcp)
                .await?;
            send(TokioIo::new(tls), request).await?
        }
        None => send(TokioIo::new(tcp), request).await?,
    };
    Ok(response)
}

async fn send<IO>(io: IO, request: hyper::Request<Empty<Bytes>>) -> anyhow::Result<Reply>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

impl crate::Cluster {
    /// GETs `path` from node `id`'s HTTP listener, with the cluster's CA.
    pub async fn http_get(&self, id: u64, path: &str) -> anyhow::Result<Reply> {
        let pem = self.tls.map(|ca| ca.ca_pem());
        get(&self.node(id).http, path, pem.as_deref()).await
    }
}
