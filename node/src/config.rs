//! A node's configuration file (TOML, kebab-case keys). `herald dev` writes working examples of it,
//! and `examples/node1.toml` is the documented one.

use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id; must appear in `peers`.
    pub node_id: u64,
    /// Where clients reach the public gRPC API (Messaging, Cluster).
    pub grpc_listen: SocketAddr,
    /// Where peers reach the internal gRPC service (Raft, forwarded writes).
    pub raft_listen: SocketAddr,
    /// Optional: where the HTTP listener serves `/metrics`, `/livez` and `/readyz` (TLS with
    /// the public certificate unless `insecure = true`). Absent: no HTTP listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_listen: Option<SocketAddr>,
    /// RocksDB and snapshots live here.
    pub data_dir: PathBuf,
    /// Every member of the initial cluster, this node included (a node added later lists the
    /// members it may reach and itself).
    pub peers: Vec<PeerConfig>,
    /// Initialise a new cluster of `peers` when the data directory is empty: for the very first
    /// start of a new cluster only (`herald node --bootstrap` says the same for one start).
    /// Without it, a node on an empty data directory waits to be added by the cluster
    /// (`herald cluster add-node`) and votes only after that: a node that lost its data never
    /// starts a second cluster nor helps elect a leader with entries it has forgotten. Ignored
    /// once the data directory holds a cluster.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bootstrap: bool,
    #[serde(default)]
    pub links: Vec<LinkConfig>,
    #[serde(default)]
    pub raft: RaftTuning,
    #[serde(default)]
    pub messages: MessageLimits,
    #[serde(default)]
    pub placement: PlacementConfig,
    /// Plaintext on both ports, no certificates, no keys: every call is an admin. For a laptop or
    /// a benchmark's "off" case only; the node logs a WARN at start.
    #[serde(default)]
    pub insecure: bool,
    /// API keys that are admins without being in the log (how the first admin exists).
    #[serde(default)]
    pub auth: AuthConfig,
    /// Certificates for both ports; required unless `insecure = true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// How long a node told to stop (SIGTERM, SIGINT) spends draining itself first: handing
    /// leadership and its link slots to other nodes, so that writes barely pause. It then stops
    /// whether or not the drain completed (a supervisor's grace period must cover this).
    #[serde(
        default = "default_shutdown_drain_timeout_ms",
        skip_serializing_if = "is_default_shutdown_drain_timeout"
    )]
    pub shutdown_drain_timeout_ms: u64,
    /// Bytes that must stay free on the data directory's filesystem: below it the node refuses
    /// writes (clients get UNAVAILABLE naming the node, the free bytes and this reserve), refuses
    /// the leader's appends, hands leadership over, and keeps serving reads; it takes writes again
    /// by itself once space returns. Room for RocksDB to flush and compact meanwhile.
    #[serde(
        default = "default_min_free_space",
        skip_serializing_if = "is_default_min_free_space"
    )]
    pub min_free_space: u64,
    /// Rolling upgrades: whether the leader raises the cluster version by itself.
    #[serde(default, skip_serializing_if = "UpgradeConfig::is_default")]
    pub upgrades: UpgradeConfig,
}

/// The `[upgrades]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct UpgradeConfig {
    /// The leader raises the cluster version (the log format level every member may write) as
    /// soon as every member runs a build that applies it. Off: only `herald cluster finalize`
    /// does, so that a rolling upgrade can still be rolled back until the operator decides.
    pub auto_finalize: bool,
}

impl Default for UpgradeConfig {
    fn default() -> Self {
        UpgradeConfig {
            auto_finalize: true,
        }
    }
}

impl UpgradeConfig {
    fn is_default(&self) -> bool {
        *self == UpgradeConfig::default()
    }
}

/// Long enough for a leadership transfer and the link slots' moves on a busy cluster, short
/// enough for a Kubernetes grace period of 30 s.
pub const DEFAULT_SHUTDOWN_DRAIN_TIMEOUT_MS: u64 = 15_000;

fn default_shutdown_drain_timeout_ms() -> u64 {
    DEFAULT_SHUTDOWN_DRAIN_TIMEOUT_MS
}

fn is_default_shutdown_drain_timeout(ms: &u64) -> bool {
    *ms == default_shutdown_drain_timeout_ms()
}

fn default_min_free_space() -> u64 {
    crate::disk_space::DEFAULT_MIN_FREE_SPACE
}

fn is_default_min_free_space(bytes: &u64) -> bool {
    *bytes == default_min_free_space()
}

/// The `[auth]` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AuthConfig {
    /// The SHA-256 (hex) of each bootstrap admin key (`herald dev` writes one; `sha256sum` of a
    /// key made by hand as `hrd_<12 hex>_<43 base64url>`). Only hashes: the config holds no key.
    #[serde(default)]
    pub admin_key_sha256: Vec<String>,
}

/// The `[tls]` section: the cluster's CA, this node's certificate and key (`herald cert node`
/// makes them), optionally an operator's own certificate for the public port.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TlsConfig {
    /// The cluster's name: the node's identity is `herald://<cluster>/node/<node-id>`.
    pub cluster: String,
    /// The cluster CA's certificate (PEM): peers' certificates are verified against it.
    pub ca: PathBuf,
    /// This node's certificate (PEM), served on both ports and presented to peers.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// Optional: a certificate for the public port instead of the node's (e.g. from the
    /// operator's own CA), with its key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PathBuf>,
}

impl TlsConfig {
    /// The files, with relative paths taken from `base` (the config file's folder).
    pub fn files(&self, base: &std::path::Path) -> crate::tls::store::TlsFiles {
        let abs = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            }
        };
        crate::tls::store::TlsFiles {
            ca: abs(&self.ca),
            cert: abs(&self.cert),
            key: abs(&self.key),
            public_cert: self.public_cert.as_ref().map(abs),
            public_key: self.public_key.as_ref().map(abs),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PeerConfig {
    pub id: u64,
    /// The peer's public gRPC address (what `grpc-listen` is on that node).
    pub grpc: String,
    /// The peer's internal gRPC address (what `raft-listen` is on that node). This is what the
    /// cluster's membership records, so it must be the same in every node's config.
    pub raft: String,
    /// Optional: where *this* node connects to reach the peer's internal service when that differs
    /// from `raft` (a proxy, a NAT; the fault-injection harness routes every pair of nodes through
    /// its own proxy). Only this node's traffic is affected; the membership keeps `raft`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
}

/// A carrier connection, configured by name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LinkConfig {
    pub name: String,
    /// `cmpp` (CMPP 3.0); see `herald_protocols::link::Protocol` for every name.
    pub protocol: String,
    pub address: String,
    pub account: String,
    /// The account's password. Held redacted (`Debug` shows `[REDACTED]`); it is exposed only
    /// where a protocol builds its login PDU, and written out only when `herald dev` writes
    /// a node's config file. Give it here or in `secret-file`, not both.
    #[serde(default, serialize_with = "expose_for_config_file")]
    pub secret: SecretString,
    /// A file holding the password instead (one line; a trailing newline is not part of it),
    /// read when the config is: so the config itself can be public (a Kubernetes ConfigMap)
    /// and the password a mounted Secret. A relative path is the config file's neighbour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    #[serde(default)]
    pub service_id: String,
    #[serde(default)]
    pub src_id: String,
    #[serde(default = "default_window")]
    pub max_window: usize,
    #[serde(default = "default_rate")]
    pub max_per_second: u32,
    /// Connections the carrier allows for this account; the leader spreads them over nodes.
    #[serde(default = "default_connections")]
    pub connections: u32,
    /// Protocol-specific options (e.g. SMPP `bind = "transceiver"`), and the signature every
    /// protocol takes: `signature = "【国网】"` with `signature-added-by = "carrier" | "herald"`
    /// and `signature-position = "prefix" | "suffix"` (see `herald_protocols::signature`).
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
}

/// Writes a secret into a config file, the one place it must appear in clear.
fn expose_for_config_file<S: serde::Serializer>(
    secret: &SecretString,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose_secret())
}

fn default_window() -> usize {
    16
}
fn default_rate() -> u32 {
    100
}
fn default_connections() -> u32 {
    1
}

impl LinkConfig {
    /// The link's connection slots: its own name for one connection, `name#0`, `name#1`, … for
    /// several. Each slot is held by one node at a time.
    pub fn slots(&self) -> Vec<String> {
        if self.connections <= 1 {
            vec![self.name.clone()]
        } else {
            (0..self.connections)
                .map(|i| format!("{}#{i}", self.name))
                .collect()
        }
    }

    /// The link's signature (its `signature*` options), if it has one. Options that do not
    /// parse count as none here: [`NodeConfig::validate`] refuses them before anything runs.
    pub fn signature(&self) -> Option<herald_protocols::signature::Signature> {
        herald_protocols::signature::Signature::from_options(&self.options)
            .ok()
            .flatten()
    }

    /// Fills `secret` from `secret-file`, if the link names one (relative to `base`).
    fn read_secret_file(&mut self, base: &std::path::Path) -> anyhow::Result<()> {
        let Some(file) = &self.secret_file else {
            return Ok(());
        };
        if !self.secret.expose_secret().is_empty() {
            anyhow::bail!(
                "links.{}: both secret and secret-file are given: choose one",
                self.name
            );
        }
        let path = if file.is_absolute() {
            file.clone()
        } else {
            base.join(file)
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            anyhow::anyhow!(
                "links.{}.secret-file: reading {}: {e}",
                self.name,
                path.display()
            )
        })?;
        let secret = text.strip_suffix('\n').unwrap_or(&text);
        let secret = secret.strip_suffix('\r').unwrap_or(secret);
        if secret.is_empty() {
            anyhow::bail!(
                "links.{}.secret-file: {} is empty (the file must hold the account's password)",
                self.name,
                path.display()
            );
        }
        self.secret = secret.into();
        self.secret_file = Some(path);
        Ok(())
    }

    /// Messages per second of one slot: the link's rate shared by its connections.
    pub fn rate_per_slot(&self) -> u32 {
        (self.max_per_second / self.connections.max(1)).max(1)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct RaftTuning {
    pub heartbeat_ms: u64,
    /// Kept well above the append latency of a slow shared disk, so a busy node is not voted out.
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many log entries; the log before it is then purged.
    ///
    /// A snapshot reads the whole projection, so its cost grows with the messages held: at
    /// 20,000 entries (about 110,000 batched messages) the builds took a tenth of a busy node's
    /// CPU once it held a few hundred thousand messages. The log it lets the node keep instead
    /// is about 1.5 KB an entry on disk, read only by a follower catching up.
    pub snapshot_logs: u64,
    /// Log entries kept behind the last snapshot, so slightly lagging followers need no snapshot.
    pub keep_logs: u64,
}

impl Default for RaftTuning {
    fn default() -> Self {
        RaftTuning {
            heartbeat_ms: 200,
            election_timeout_min_ms: 1500,
            election_timeout_max_ms: 3000,
            snapshot_logs: 200_000,
            keep_logs: 1_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct MessageLimits {
    /// Longest accepted text, in characters (the signature included).
    pub max_text_chars: usize,
    pub max_recipients: usize,
    /// Validity applied when a submission gives none.
    pub default_validity_seconds: u64,
}

impl Default for MessageLimits {
    fn default() -> Self {
        MessageLimits {
            max_text_chars: 1000,
            max_recipients: 100,
            default_validity_seconds: 48 * 3600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct PlacementConfig {
    /// A node the leader has not heard from for this long loses its links.
    pub node_lost_after_ms: u64,
}

impl Default for PlacementConfig {
    fn default() -> Self {
        PlacementConfig {
            node_lost_after_ms: 3000,
        }
    }
}

impl NodeConfig {
    /// Reads and checks the file, and the `[tls]` files it names (present, PEM, key matching
    /// certificate, identity, not expired), so a node with a broken setup refuses to start.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let config = NodeConfig::parse(path)?;
        if let Some(tls) = &config.tls {
            let me = crate::tls::NodeIdentity::new(&tls.cluster, config.node_id)?;
            crate::tls::store::load(&tls.files(std::path::Path::new(".")), &me)
                .map_err(|e| anyhow::anyhow!("config {}: tls: {e}", path.display()))?;
        }
        Ok(config)
    }

    /// Reads and checks the file itself, without opening the files it names.
    pub fn parse(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading config {}: {e}", path.display()))?;
        let mut config: NodeConfig =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        // Relative certificate paths are the config file's neighbours, not the working directory's.
        if let Some(tls) = &mut config.tls {
            let base = path.parent().unwrap_or(std::path::Path::new("."));
            let files = tls.files(base);
            tls.ca = files.ca;
            tls.cert = files.cert;
            tls.key = files.key;
            tls.public_cert = files.public_cert;
            tls.public_key = files.public_key;
        }
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        for link in &mut config.links {
            link.read_secret_file(base)?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: cross-field rules. (The `[tls]` files themselves are read and
    /// checked by [`NodeConfig::load`].)
    pub fn validate(&self) -> anyhow::Result<()> {
        match (&self.tls, self.insecure) {
            (Some(_), true) => anyhow::bail!(
                "insecure = true and a [tls] section: choose one (insecure means plaintext on both ports)"
            ),
            (None, false) => anyhow::bail!(
                "[tls] is required unless insecure = true: give cluster, ca, cert and key \
                 (`herald cert ca` and `herald cert node` make them)"
            ),
            (Some(tls), false) => {
                crate::tls::identity::check_cluster_name(&tls.cluster)
                    .map_err(|e| anyhow::anyhow!("tls.cluster: {e}"))?;
                if tls.public_cert.is_some() != tls.public_key.is_some() {
                    anyhow::bail!("tls: public-cert and public-key go together (give both or neither)");
                }
            }
            (None, true) => {}
        }
        if !self.peers.iter().any(|p| p.id == self.node_id) {
            anyhow::bail!(
                "node-id {} is not among the peers (ids {:?})",
                self.node_id,
                self.peers.iter().map(|p| p.id).collect::<Vec<_>>()
            );
        }
        let mut names = std::collections::HashSet::new();
        for link in &self.links {
            let protocol = match link.protocol.parse::<herald_protocols::link::Protocol>() {
                Ok(p) => p,
                Err(e) => anyhow::bail!("links.{}.protocol: {e}", link.name),
            };
            if let Err(e) = protocol.check_options(&link.options) {
                anyhow::bail!("links.{}.options: {e}", link.name);
            }
            if let Some(signature) = link.signature() {
                if signature.chars() >= self.messages.max_text_chars {
                    anyhow::bail!(
                        "links.{}.options: signature {:?} has {} characters, leaving no text \
                         within messages.max-text-chars = {} (the signature included)",
                        link.name,
                        signature.text(),
                        signature.chars(),
                        self.messages.max_text_chars
                    );
                }
            }
            if link.name.is_empty() || link.name.chars().any(|c| c.is_control() || c == '#') {
                anyhow::bail!(
                    "links: a link name must be non-empty text without '#' or control characters"
                );
            }
            if link.secret.expose_secret().is_empty() && link.secret_file.is_none() {
                anyhow::bail!(
                    "links.{}: give the account's password as secret or secret-file",
                    link.name
                );
            }
            if link.connections == 0 || link.connections > 64 {
                anyhow::bail!("links.{}.connections: between 1 and 64", link.name);
            }
            if !names.insert(&link.name) {
                anyhow::bail!("links: the name {:?} is used twice", link.name);
            }
            if link.max_window == 0 || link.max_per_second == 0 {
                anyhow::bail!(
                    "links.{}: max-window and max-per-second must be at least 1",
                    link.name
                );
            }
        }
        crate::service::auth::parse_admin_hashes(&self.auth.admin_key_sha256)?;
        if self.raft.election_timeout_min_ms <= self.raft.heartbeat_ms * 2
            || self.raft.election_timeout_max_ms <= self.raft.election_timeout_min_ms
        {
            anyhow::bail!(
                "raft: need heartbeat-ms * 2 < election-timeout-min-ms < election-timeout-max-ms"
            );
        }
        Ok(())
    }

    pub fn link(&self, name: &str) -> Option<&LinkConfig> {
        self.links.iter().find(|l| l.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::NodeConfig;
    use herald_protocols::signature::{AddedBy, Position};

    /// The documented example stays a config that loads.
    #[test]
    fn the_example_config_is_valid() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/node1.toml");
        let config = NodeConfig::parse(&path).expect("examples/node1.toml parses");
        let tls = config
            .tls
            .as_ref()
            .expect("the example has a [tls] section");
        assert_eq!(tls.cluster, "prod");
        let mobile = config
            .link("mobile")
            .and_then(|l| l.signature())
            .expect("signed");
        assert_eq!(mobile.text(), "【国网】");
        assert_eq!(
            (mobile.added_by(), mobile.position()),
            (AddedBy::Carrier, Position::Prefix)
        );
        assert!(config
            .link("international")
            .and_then(|l| l.signature())
            .is_some());
    }

    /// A config with its link password in a separate file (a mounted Kubernetes Secret): the
    /// password is read from it, relative to the config's folder, without its final newline.
    #[test]
    fn a_link_secret_can_come_from_a_file() {
        use secrecy::ExposeSecret;
        let example =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/node1.toml");
        let text = std::fs::read_to_string(&example).expect("example");
        let dir = tempfile::tempdir().expect("temp dir");
        let with_file = text.replacen(
            "secret = \"change-me\"",
            "secret-file = \"secrets/mobile\"",
            1,
        );
        let config_path = dir.path().join("node.toml");
        std::fs::write(&config_path, &with_file).expect("write config");

        let missing = NodeConfig::parse(&config_path).expect_err("no secret file yet");
        let missing = format!("{missing:#}");
        assert!(
            missing.contains("links.mobile.secret-file") && missing.contains("secrets/mobile"),
            "{missing}"
        );

        std::fs::create_dir(dir.path().join("secrets")).expect("mkdir");
        std::fs::write(dir.path().join("secrets/mobile"), "").expect("write");
        let empty = format!(
            "{:#}",
            NodeConfig::parse(&config_path).expect_err("empty file")
        );
        assert!(empty.contains("is empty"), "{empty}");

        std::fs::write(dir.path().join("secrets/mobile"), "s3cret-from-file\n").expect("write");
        let config = NodeConfig::parse(&config_path).expect("parses");
        let mobile = config.link("mobile").expect("mobile link");
        assert_eq!(mobile.secret.expose_secret(), "s3cret-from-file");
        assert_eq!(
            config
                .link("international")
                .expect("link")
                .secret
                .expose_secret(),
            "change-me"
        );

        let both = with_file.replacen(
            "secret-file = \"secrets/mobile\"",
            "secret-file = \"secrets/mobile\"\nsecret = \"inline\"",
            1,
        );
        std::fs::write(&config_path, both).expect("write config");
        let both = format!("{:#}", NodeConfig::parse(&config_path).expect_err("both"));
        assert!(both.contains("both secret and secret-file"), "{both}");

        let neither: String = with_file
            .lines()
            .filter(|l| !l.starts_with("secret-file = \"secrets/mobile\""))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&config_path, neither).expect("write config");
        let neither = format!(
            "{:#}",
            NodeConfig::parse(&config_path).expect_err("neither")
        );
        assert!(
            neither.contains("links.mobile: give the account's password as secret or secret-file"),
            "{neither}"
        );
    }

    /// A carrier password is read from the file and written back by `herald dev`, but neither
    /// the config's nor a link's `Debug` shows it.
    #[test]
    fn a_link_secret_is_redacted_in_debug_and_kept_in_the_file() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/node1.toml");
        let mut config = NodeConfig::parse(&path).expect("examples/node1.toml parses");
        let secret = "Zx9-distinctive-carrier-password";
        config.links[0].secret = secret.into();
        for shown in [format!("{config:?}"), format!("{:#?}", config.links[0])] {
            assert!(!shown.contains(secret), "secret in Debug: {shown}");
            assert!(shown.contains("REDACTED"), "{shown}");
        }
        let written = toml::to_string_pretty(&config).expect("serialises");
        let again: NodeConfig = toml::from_str(&written).expect("reads back");
        use secrecy::ExposeSecret;
        assert_eq!(again.links[0].secret.expose_secret(), secret);
    }
}
