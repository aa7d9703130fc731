//! Everything TLS: issuing certificates ([`certs`]), naming nodes in them ([`identity`]), reading
//! PEM ([`pem`]), the node's live, reloadable configuration ([`store`]), the listener that
//! terminates TLS in front of tonic and enforces the connection limits ([`acceptor`]), and the
//! dialing side for peers and clients ([`client`]).
//!
//! The crypto provider is `ring`: it builds with the C compiler alone, where `aws-lc-rs` would
//! need cmake. Nothing here knows about Raft or the API: the node wires these pieces in
//! `node.rs`, and the Raft crate only receives prepared channels.

pub mod acceptor;
pub mod certs;
pub mod client;
pub mod identity;
pub mod pem;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use identity::NodeIdentity;

/// The one crypto provider every configuration is built with. rustls 0.23.48 marks ring's
/// provider deprecated because ring has no post-quantum key exchange; aws-lc-rs, which has it,
/// needs cmake to build, which this project's machines lack. Classical ECDHE (X25519, P-256) it is.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The ALPN protocol both sides offer: gRPC runs over HTTP/2 only.
pub const ALPN_H2: &[u8] = b"h2";

/// Why TLS files could not be used. Each names the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("tls.key {key} does not belong to the certificate {cert} (their public keys differ)")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("tls.cert {path}: names {found:?}, expected the URI SAN {expected} (make it with `herald cert node`)")]
    Identity {
        path: PathBuf,
        found: Vec<String>,
        expected: String,
    },
    #[error("{path}: expired at {not_after}")]
    Expired { path: PathBuf, not_after: String },
    #[error("{path}: {reason}")]
    Unusable { path: PathBuf, reason: String },
    #[error("building the TLS configuration: {0}")]
    Config(String),
}

impl TlsError {
    fn pem(path: &Path, e: impl std::fmt::Display) -> TlsError {
        let reason = match std::fs::metadata(path) {
            Err(io) => format!("cannot read: {io}"),
            Ok(_) => format!("not usable PEM: {e}"),
        };
        TlsError::Pem {
            path: path.to_path_buf(),
            reason,
        }
    }
}
