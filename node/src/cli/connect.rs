//! How a client reaches a node: the one set of connect options every client command flattens in
//! (`--endpoint`) and the one connector that turns them into a gRPC channel. The CLI's commands,
//! the load generator, `herald dev`'s wait for a leader and the test harnesses all connect here,
//! so what a connection needs beyond an address (a CA to trust, an API key to present) is added
//! once, in this file, and every client has it.
//!
//! This module knows addresses and channels, never an API: callers wrap the channel in the client
//! of the service they call.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// What every client wraps: a channel that adds the caller's API key to each call.
pub type ClientChannel = InterceptedService<Channel, BearerKey>;

/// The environment variable read when `--api-key` is not given.
pub const API_KEY_ENV: &str = "HERALD_API_KEY";

/// Where `herald dev` records its cluster (relative to the current directory): client commands
/// read their key from it when none is given.
pub const DEV_PROFILE: &str = ".herald-dev/cluster.json";

/// Which of `herald dev`'s keys a command uses when the key comes from its profile: the
/// admin's for the admin commands (cluster, policy, drain, client, audit), the demo sender's for
/// the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevCredential {
    Admin,
    Demo,
}

impl DevCredential {
    fn field(self) -> &'static str {
        match self {
            DevCredential::Admin => "admin",
            DevCredential::Demo => "demo",
        }
    }
}

/// The dev profile's key for `who`, if the profile exists and holds one (null when the dev
/// cluster is insecure).
pub fn dev_profile_key(profile: &Path, who: DevCredential) -> Option<SecretString> {
    let text = std::fs::read_to_string(profile).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("credentials")?
        .get(who.field())?
        .as_str()
        .map(|k| SecretString::from(k.to_string()))
}

/// Adds `authorization: Bearer <key>` to every call (nothing without a key). The value is
/// marked sensitive, so that tonic and hyper never print it.
#[derive(Clone, Default)]
pub struct BearerKey(Option<AsciiMetadataValue>);

impl BearerKey {
    fn new(key: Option<&SecretString>) -> Result<BearerKey, ConnectError> {
        let Some(key) = key else {
            return Ok(BearerKey(None));
        };
        let mut value: AsciiMetadataValue =
            MetadataValue::try_from(format!("Bearer {}", key.expose_secret()))
                .map_err(|_| ConnectError::InvalidApiKey)?;
        value.set_sensitive(true);
        Ok(BearerKey(Some(value)))
    }
}

impl tonic::service::Interceptor for BearerKey {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert(crate::service::auth::AUTHORIZATION, value.clone());
        }
        Ok(request)
    }
}

/// The node a client command talks to when none is named: node 1 of `herald dev`.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:7101";

/// How long the CLI waits for a node to accept a connection before saying it cannot reach it.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What `herald dev` recorded about connecting to its cluster.
#[derive(Debug, Clone, Default)]
pub struct DevProfile {
    /// `tls.ca`: the CA certificate to trust (`None`: the dev cluster is insecure).
    pub ca: Option<PathBuf>,
}

impl DevProfile {
    /// The profile in `.herald-dev/cluster.json` of the current directory, if there is one.
    pub fn find() -> Option<DevProfile> {
        DevProfile::read(Path::new(DEV_PROFILE))
    }

    pub fn read(path: &Path) -> Option<DevProfile> {
        let text = std::fs::read_to_string(path).ok()?;
        let json: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(DevProfile {
            ca: json
                .pointer("/tls/ca")
                .and_then(|v| v.as_str())
                .map(PathBuf::from),
        })
    }
}

/// Where a client command connects: flattened into every client command.
#[derive(clap::Args, Clone, Debug)]
pub struct ConnectArgs {
    /// A node's gRPC address, HOST:PORT, http://HOST:PORT or https://HOST:PORT (any node
    /// answers).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// The API key calls are made with (hrd_…); default: $HERALD_API_KEY, else the key of
    /// `herald dev`'s .herald-dev/cluster.json in the current directory.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// The CA certificate (PEM) to verify the node with: connects with TLS. Without it (and
    /// without HERALD_CA), the CA of `.herald-dev/cluster.json` in the current directory is used
    /// when that file exists.
    #[arg(long, value_name = "FILE", env = "HERALD_CA")]
    pub ca: Option<PathBuf>,
}

/// The key given by `--api-key`, else `$HERALD_API_KEY`, else the dev profile's for `who`.
fn api_key(flag: Option<&String>, who: DevCredential) -> Option<SecretString> {
    if let Some(key) = flag {
        return Some(SecretString::from(key.clone()));
    }
    if let Ok(key) = std::env::var(API_KEY_ENV) {
        if !key.is_empty() {
            return Some(SecretString::from(key));
        }
    }
    dev_profile_key(Path::new(DEV_PROFILE), who)
}

/// The CA a client uses: `--ca`/`HERALD_CA`, else the dev cluster's in the current directory.
fn ca_or_dev_profile(ca: &Option<PathBuf>) -> Option<PathBuf> {
    ca.clone().or_else(|| DevProfile::find().and_then(|p| p.ca))
}

impl ConnectArgs {
    /// The connector for `--endpoint`, with the CLI's settings and a sender's key.
    pub fn connector(&self) -> Connector {
        self.connector_as(DevCredential::Demo)
    }

    /// The connector for an admin command (its key from the dev profile is the admin's).
    pub fn connector_as(&self, who: DevCredential) -> Connector {
        let connector = match ca_or_dev_profile(&self.ca) {
            Some(ca) => Connector::new(&self.endpoint).ca_file(ca),
            None => Connector::new(&self.endpoint),
        };
        match api_key(self.api_key.as_ref(), who) {
            Some(key) => connector.api_key(key),
            None => connector,
        }
    }

    /// A channel to `--endpoint`, connected now.
    pub async fn channel(&self) -> Result<ClientChannel, ConnectError> {
        self.connector().channel().await
    }

    /// A channel for an admin command.
    pub async fn admin_channel(&self) -> Result<ClientChannel, ConnectError> {
        self.connector_as(DevCredential::Admin).channel().await
    }
}

/// The load generator's connect options: the same as [`ConnectArgs`], but `--endpoint` is
/// repeatable because its calls go round-robin over several nodes.
#[derive(clap::Args, Clone, Debug)]
pub struct ConnectManyArgs {
    /// Node gRPC addresses (HOST:PORT, http://HOST:PORT or https://HOST:PORT); calls go
    /// round-robin over them. Repeatable.
    #[arg(long = "endpoint", value_name = "ADDR", default_value = DEFAULT_ENDPOINT)]
    pub endpoints: Vec<String>,
    /// The API key calls are made with; default: $HERALD_API_KEY, else the demo sender's key
    /// of `herald dev`'s .herald-dev/cluster.json in the current directory.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// The CA certificate (PEM) to verify the nodes with (see `--ca` of the other commands).
    #[arg(long, value_name = "FILE", env = "HERALD_CA")]
    pub ca: Option<PathBuf>,
}

impl ConnectManyArgs {
    /// One connector per `--endpoint`, in the order given.
    pub fn connectors(&self) -> Vec<Connector> {
        let key = api_key(self.api_key.as_ref(), DevCredential::Demo);
        let ca = ca_or_dev_profile(&self.ca);
        self.endpoints
            .iter()
            .map(|e| {
                let connector = match &ca {
                    Some(ca) => Connector::new(e).ca_file(ca.clone()),
                    None => Connector::new(e),
                };
                match &key {
                    Some(key) => connector.api_key(key.clone()),
                    None => connector,
                }
            })
            .collect()
    }
}

/// Why a channel could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The address is not one a channel can be built for; nothing was sent.
    #[error("--endpoint {endpoint:?}: not a valid address (expected HOST:PORT, http://HOST:PORT or https://HOST:PORT): {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
    /// The CA could not be used; nothing was sent.
    #[error("--ca {path}: {reason}")]
    Ca { path: String, reason: String },
    /// Nothing accepted the connection within the connect timeout (refused, unroutable, silent).
    /// tonic's own text is only "transport error": the cause (refused, timed out) is its source,
    /// which the CLI prints after this line's text.
    #[error("cannot reach {endpoint}")]
    Unreachable {
        endpoint: String,
        #[source]
        error: tonic::transport::Error,
    },
    /// The key cannot travel as gRPC metadata (not the key's text is shown: it is a secret).
    #[error("--api-key: not a valid API key (an API key is printable ASCII: hrd_<id>_<secret>)")]
    InvalidApiKey,
}

/// Builds a gRPC channel to one node. The defaults are the CLI's (a [`CONNECT_TIMEOUT`] to
/// connect, no limit on a call, since `replies --follow` streams for as long as it runs); the
/// test harnesses shorten the connect timeout and bound each call.
#[derive(Clone, Debug)]
pub struct Connector {
    endpoint: String,
    connect_timeout: Duration,
    request_timeout: Option<Duration>,
    api_key: Option<SecretString>,
    ca: Option<Ca>,
}

/// The CA a connector trusts: TLS is used when there is one.
#[derive(Clone, Debug)]
enum Ca {
    Pem(Vec<u8>),
    File(PathBuf),
}

impl Connector {
    pub fn new(endpoint: impl Into<String>) -> Connector {
        Connector {
            endpoint: endpoint.into(),
            connect_timeout: CONNECT_TIMEOUT,
            request_timeout: None,
            api_key: None,
            ca: None,
        }
    }

    /// The API key every call presents (`authorization: Bearer <key>`).
    pub fn api_key(mut self, key: SecretString) -> Connector {
        self.api_key = Some(key);
        self
    }

    /// Connect with TLS, trusting the CA certificate(s) in `pem`.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Connector {
        self.ca = Some(Ca::Pem(pem.into()));
        self
    }

    /// Connect with TLS, trusting the CA certificate(s) in the PEM file `path` (read when
    /// connecting, so a missing file is reported as the connection's error).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Connector {
        self.ca = Some(Ca::File(path.into()));
        self
    }

    /// The TLS client configuration for the CA, if one is set.
    fn tls_config(&self) -> Result<Option<std::sync::Arc<rustls::ClientConfig>>, ConnectError> {
        let (pem, origin) = match &self.ca {
            None => return Ok(None),
            Some(Ca::Pem(pem)) => (pem.clone(), PathBuf::from("(CA given in memory)")),
            Some(Ca::File(path)) => (
                std::fs::read(path).map_err(|e| ConnectError::Ca {
                    path: path.display().to_string(),
                    reason: format!("cannot read: {e}"),
                })?,
                path.clone(),
            ),
        };
        crate::tls::client::client_config(&pem, &origin)
            .map(Some)
            .map_err(|e| ConnectError::Ca {
                path: origin.display().to_string(),
                reason: e.to_string(),
            })
    }

    /// The host the server's certificate must name: the endpoint's, without scheme and port.
    fn server_name(&self) -> Result<rustls_pki_types::ServerName<'static>, ConnectError> {
        let rest = self
            .endpoint
            .strip_prefix("https://")
            .or_else(|| self.endpoint.strip_prefix("http://"))
            .unwrap_or(&self.endpoint);
        let authority = rest.split('/').next().unwrap_or(rest);
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        };
        rustls_pki_types::ServerName::try_from(host.to_string()).map_err(|e| {
            ConnectError::InvalidEndpoint {
                endpoint: self.endpoint.clone(),
                reason: format!("host {host:?}: {e}"),
            }
        })
    }

    /// How long to wait for the node to accept the connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Connector {
        self.connect_timeout = timeout;
        self
    }

    /// A limit on every call made over the channel (the call then fails with `Cancelled`).
    pub fn request_timeout(mut self, timeout: Duration) -> Connector {
        self.request_timeout = Some(timeout);
        self
    }

    /// The channel's settings, without connecting.
    fn endpoint_settings(&self) -> Result<Endpoint, ConnectError> {
        // Operators write HOST:PORT; the channel needs a URI. TLS is done by our own connector
        // under a plain http:// URI, so https:// only says "TLS" and needs a CA.
        if self.endpoint.starts_with("https://") && self.ca.is_none() {
            return Err(ConnectError::InvalidEndpoint {
                endpoint: self.endpoint.clone(),
                reason:
                    "https:// needs the CA to verify the node with: give --ca FILE (or HERALD_CA)"
                        .into(),
            });
        }
        let uri = if let Some(rest) = self.endpoint.strip_prefix("https://") {
            format!("http://{rest}")
        } else if self.endpoint.starts_with("http://") {
            self.endpoint.clone()
        } else {
            format!("http://{}", self.endpoint)
        };
        let endpoint = Endpoint::from_shared(uri).map_err(|e| ConnectError::InvalidEndpoint {
            endpoint: self.endpoint.clone(),
            reason: e.to_string(),
        })?;
        let endpoint = endpoint.connect_timeout(self.connect_timeout);
        Ok(match self.request_timeout {
            Some(timeout) => endpoint.timeout(timeout),
            None => endpoint,
        })
    }

    /// Connects now, so that an unreachable node is reported before anything is sent.
    pub async fn channel(&self) -> Result<ClientChannel, ConnectError> {
        let bearer = BearerKey::new(self.api_key.as_ref())?;
        let endpoint = self.endpoint_settings()?;
        let unreachable = |error| ConnectError::Unreachable {
            endpoint: self.endpoint.clone(),
            error,
        };
        let channel = match self.tls_config()? {
            None => endpoint.connect().await.map_err(unreachable)?,
            Some(config) => crate::tls::client::tls_channel(
                endpoint,
                config,
                self.server_name()?,
                self.connect_timeout,
                false,
            )
            .await
            .map_err(unreachable)?,
        };
        Ok(InterceptedService::new(channel, bearer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_without_a_scheme_is_taken_as_plain_http() {
        let endpoint = Connector::new("127.0.0.1:7101")
            .endpoint_settings()
            .expect("a valid address");
        assert_eq!(endpoint.uri().to_string(), "http://127.0.0.1:7101/");
        let endpoint = Connector::new("http://127.0.0.1:7101")
            .endpoint_settings()
            .expect("a valid address");
        assert_eq!(endpoint.uri().to_string(), "http://127.0.0.1:7101/");
    }

    #[test]
    fn a_malformed_address_is_refused_naming_the_option_and_the_value() {
        let error = Connector::new("127.0.0.1:7101 oops")
            .endpoint_settings()
            .expect_err("a space is not allowed in an address");
        let message = error.to_string();
        assert!(
            message.starts_with("--endpoint \"127.0.0.1:7101 oops\": not a valid address"),
            "{message}"
        );
        let error = Connector::new("https://127.0.0.1:7101")
            .endpoint_settings()
            .expect_err("https without a CA");
        assert!(error.to_string().contains("needs the CA"), "{error}");
        let endpoint = Connector::new("https://127.0.0.1:7101")
            .ca_pem(Vec::new())
            .endpoint_settings()
            .expect("https with a CA");
        assert_eq!(endpoint.uri().to_string(), "http://127.0.0.1:7101/");
    }

    #[tokio::test]
    async fn a_node_that_does_not_listen_is_reported_unreachable_by_address() {
        // A port bound and closed again: nothing listens there.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("an ephemeral port");
        let error = Connector::new(addr.to_string())
            .connect_timeout(Duration::from_millis(500))
            .channel()
            .await
            .expect_err("nothing listens");
        assert_eq!(error.to_string(), format!("cannot reach {addr}"));
        // The CLI prints the cause chain: the reason must be in it, not only "transport error".
        let printed = format!("{:#}", anyhow::Error::from(error));
        assert!(
            printed.starts_with(&format!("cannot reach {addr}: ")) && printed.contains("refused"),
            "{printed}"
        );
    }
}
