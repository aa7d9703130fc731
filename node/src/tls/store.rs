//! The node's TLS configuration as it is in force now, and its reload. Built from the `[tls]`
//! files: the internal port's server config (client certificate required, verified against the
//! cluster CA), the public port's (no client certificate; the node's or the operator's own
//! certificate), and the client config the node dials its peers with (its own certificate).
//!
//! Files are polled every [`POLL`] and re-read on SIGHUP. A complete, valid new set replaces the
//! old one for new handshakes; open connections keep the one they started with. A broken set is
//! refused with an ERROR log and the old one stays in force.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

use super::identity::NodeIdentity;
use super::pem::{load_certs, load_key, load_roots, CertInfo};
use super::{provider, TlsError, ALPN_H2};

/// How often the files' modification times are compared.
pub const POLL: Duration = Duration::from_secs(1);

/// The files of a `[tls]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub public_cert: Option<PathBuf>,
    pub public_key: Option<PathBuf>,
}

impl TlsFiles {
    fn all(&self) -> Vec<&Path> {
        let mut files = vec![self.ca.as_path(), &self.cert, &self.key];
        files.extend(self.public_cert.as_deref());
        files.extend(self.public_key.as_deref());
        files
    }
}

/// One complete configuration, built from one reading of the files.
pub struct Loaded {
    pub internal: Arc<ServerConfig>,
    pub public: Arc<ServerConfig>,
    /// The public certificate for the HTTP listener (ALPN offers HTTP/2 and HTTP/1.1).
    pub http: Arc<ServerConfig>,
    pub peer_client: Arc<ClientConfig>,
    /// The node certificate's expiry (seconds since the Unix epoch).
    pub node_not_after: i64,
    /// The public port certificate's expiry (the node certificate's when it has no own).
    pub public_not_after: i64,
}

/// Reads a certificate and its key, and checks they belong together and are not expired.
fn cert_and_key(
    cert_path: &Path,
    key_path: &Path,
) -> Result<
    (
        Vec<CertificateDer<'static>>,
        PrivateKeyDer<'static>,
        CertInfo,
    ),
    TlsError,
> {
    let chain = load_certs(cert_path)?;
    let key = load_key(key_path)?;
    let certified = CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider()).map_err(
        |e| match e {
            rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            },
            other => TlsError::Unusable {
                path: key_path.to_path_buf(),
                reason: other.to_string(),
            },
        },
    )?;
    drop(certified);
    let info = CertInfo::parse(&chain[0]).map_err(|reason| TlsError::Unusable {
        path: cert_path.to_path_buf(),
        reason,
    })?;
    if info.not_after_unix < chrono::Utc::now().timestamp() {
        return Err(TlsError::Expired {
            path: cert_path.to_path_buf(),
            not_after: info.not_after_text(),
        });
    }
    Ok((chain, key, info))
}

/// Reads every file and builds the three configurations; checks that the node certificate names
/// `me`.
pub fn load(files: &TlsFiles, me: &NodeIdentity) -> Result<Loaded, TlsError> {
    let roots = Arc::new(load_roots(&files.ca)?);
    let (chain, key, info) = cert_and_key(&files.cert, &files.key)?;
    if info.node_identity().as_ref() != Some(me) {
        return Err(TlsError::Identity {
            path: files.cert.clone(),
            found: info.uris.clone(),
            expected: me.uri(),
        });
    }
    let config_error = |e: rustls::Error| TlsError::Config(e.to_string());

    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        .build()
        .map_err(|e| TlsError::Unusable {
            path: files.ca.clone(),
            reason: e.to_string(),
        })?;
    let mut internal = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(config_error)?;
    internal.alpn_protocols = vec![ALPN_H2.to_vec()];

    let (public_chain, public_key, public_info) = match (&files.public_cert, &files.public_key) {
        (Some(cert), Some(key)) => cert_and_key(cert, key)?,
        _ => (chain.clone(), key.clone_key(), info.clone()),
    };
    let mut public = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_no_client_auth()
        .with_single_cert(public_chain, public_key)
        .map_err(config_error)?;
    // The HTTP listener serves the public certificate to tools that may speak either version
    // (curl, Prometheus, a browser).
    let mut http = public.clone();
    http.alpn_protocols = vec![ALPN_H2.to_vec(), b"http/1.1".to_vec()];
    public.alpn_protocols = vec![ALPN_H2.to_vec()];

    let mut peer_client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(config_error)?;
    peer_client.alpn_protocols = vec![ALPN_H2.to_vec()];

    Ok(Loaded {
        internal: Arc::new(internal),
        public: Arc::new(public),
        http: Arc::new(http),
        peer_client: Arc::new(peer_client),
        node_not_after: info.not_after_unix,
        public_not_after: public_info.not_after_unix,
    })
}

/// Modification time and length of each file; a change in any means "read them again".
type Stamps = Vec<Option<(SystemTime, u64)>>;

fn stamps(files: &TlsFiles) -> Stamps {
    files
        .all()
        .iter()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

/// The configuration in force, shared by both listeners and every peer connection.
pub struct TlsStore {
    files: TlsFiles,
    me: NodeIdentity,
    current: RwLock<Arc<Loaded>>,
    /// The stamps of the last reading, good or bad: a bad set is reported once, not every poll.
    seen: Mutex<Stamps>,
}

impl TlsStore {
    /// Reads the files now; an error here stops the node from starting.
    pub fn open(files: TlsFiles, me: NodeIdentity) -> Result<Arc<TlsStore>, TlsError> {
        let seen = stamps(&files);
        let loaded = load(&files, &me)?;
        Ok(Arc::new(TlsStore {
            files,
            me,
            current: RwLock::new(Arc::new(loaded)),
            seen: Mutex::new(seen),
        }))
    }

    pub fn identity(&self) -> &NodeIdentity {
        &self.me
    }

    /// The configuration for the next handshake.
    pub fn current(&self) -> Arc<Loaded> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the files again if they changed since the last reading (or always, when `force`d
    /// by SIGHUP). Returns whether a new configuration is now in force.
    pub fn reload(&self, force: bool) -> bool {
        let now = stamps(&self.files);
        {
            let mut seen = match self.seen.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if !force && *seen == now {
                return false;
            }
            *seen = now;
        }
        match load(&self.files, &self.me) {
            Ok(loaded) => {
                tracing::info!(
                    cert = %self.files.cert.display(),
                    not_after = %chrono::DateTime::from_timestamp(loaded.node_not_after, 0)
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default(),
                    "TLS files reloaded: new handshakes use them"
                );
                match self.current.write() {
                    Ok(mut g) => *g = Arc::new(loaded),
                    Err(p) => *p.into_inner() = Arc::new(loaded),
                }
                true
            }
            Err(e) => {
                tracing::error!("TLS files not reloaded, the previous ones stay in force: {e}");
                false
            }
        }
    }

    /// Polls the files and listens for SIGHUP until `shutdown`.
    pub fn spawn_watcher(self: &Arc<Self>, shutdown: CancellationToken) {
        let store = self.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut hangup = signal(SignalKind::hangup()).ok();
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let force = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => false,
                    Some(()) = async {
                        match hangup.as_mut() {
                            Some(h) => h.recv().await,
                            None => std::future::pending().await,
                        }
                    } => true,
                };
                let store = store.clone();
                // Reading files and parsing keys is blocking work.
                let _ = tokio::task::spawn_blocking(move || store.reload(force)).await;
            }
        });
    }
}
