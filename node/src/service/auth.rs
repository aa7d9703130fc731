//! Authentication: from what a call presents (`authorization: Bearer <key>`) to a [`Caller`].
//!
//! An API key is `hrd_<key id>_<secret>`: the key id (12 lowercase hex characters) is public and
//! names the key in lists and the audit trail; the secret is 32 random bytes in base64url. The
//! log and the node config hold only the SHA-256 of the whole key, compared in constant time.
//! A key is looked up in the node config's bootstrap admin list (`[auth] admin-key-sha256`:
//! admins that exist before any client does), then in the local projection's client list.
//!
//! A failed authentication is never written to the log. It is counted, logged (at most a few
//! lines a second), answered after [`FAILURE_DELAY`], and limited per source address: past
//! [`FAILURES_PER_SECOND`] (burst [`FAILURE_BURST`]) a source's further failures are answered
//! RESOURCE_EXHAUSTED. A good key is always checked and served, whatever its source's failures.
//!
//! This module names no wire type: the transport hands over the header's value and the peer's
//! address.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use herald_raft::events::PrincipalKind;
use herald_raft::reader::ProjectionReader;
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::caller::Caller;
use super::error::ServiceError;
use super::permissions::Role;

/// Every key starts with this, so that a leaked one is recognisable (secret scanners, logs).
pub const KEY_PREFIX: &str = "hrd_";

/// The key id's length in hex characters (48 bits: unique among any cluster's keys).
pub const KEY_ID_LEN: usize = 12;

/// The secret's random bytes.
pub const SECRET_BYTES: usize = 32;

/// How long a failed authentication waits before it is answered: guessing gets slow, and a
/// flood's answers come back no faster than this.
pub const FAILURE_DELAY: Duration = Duration::from_millis(250);

/// Failed authentications a source address may make per second before the next ones are
/// answered RESOURCE_EXHAUSTED…
pub const FAILURES_PER_SECOND: u32 = 5;
/// …after a burst of this many.
pub const FAILURE_BURST: u32 = 20;

/// The limiter forgets sources idle for long every this many failures, so that a flood from
/// many addresses cannot grow it without bound.
const PRUNE_EVERY: u64 = 1024;

/// The metadata (and HTTP header) that carries the key, and its scheme.
pub const AUTHORIZATION: &str = "authorization";
pub const BEARER: &str = "Bearer ";

/// A new key: its public id and the whole key, shown once to whoever asked for it.
pub struct NewKey {
    pub key_id: String,
    pub key: SecretString,
}

impl NewKey {
    pub fn generate() -> NewKey {
        let mut id = [0u8; KEY_ID_LEN / 2];
        let mut secret = [0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut id);
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let key_id = hex(&id);
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        NewKey {
            key: SecretString::from(format!("{KEY_PREFIX}{key_id}_{secret}")),
            key_id,
        }
    }

    pub fn sha256(&self) -> Vec<u8> {
        sha256(self.key.expose_secret()).to_vec()
    }
}

pub fn sha256(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key id of a well-formed key, or what is wrong with it (never quoting the key).
pub fn key_id_of(key: &str) -> Result<&str, String> {
    let Some(rest) = key.strip_prefix(KEY_PREFIX) else {
        return Err(format!(
            "the key is malformed: an API key starts with {KEY_PREFIX:?}"
        ));
    };
    let (id, secret) = match (rest.get(..KEY_ID_LEN), rest.get(KEY_ID_LEN..)) {
        (Some(id), Some(secret)) => (id, secret),
        _ => return Err("the key is malformed: too short".into()),
    };
    if !id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "the key is malformed: its id (after {KEY_PREFIX:?}) is {KEY_ID_LEN} lowercase hex characters"
        ));
    }
    let Some(secret) = secret.strip_prefix('_') else {
        return Err("the key is malformed: no '_' after its id".into());
    };
    let min = SECRET_BYTES * 4 / 3;
    let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if secret.len() < min || !secret.bytes().all(base64url) {
        return Err(format!(
            "the key is malformed: its secret is at least {min} base64url characters"
        ));
    }
    Ok(id)
}

/// Why an `[auth] admin-key-sha256` entry is refused.
#[derive(Debug, thiserror::Error)]
#[error("[auth] admin-key-sha256[{index}]: {value:?} is not a SHA-256 in hex (64 hex characters)")]
pub struct BadAdminKeyHash {
    pub index: usize,
    pub value: String,
}

/// Parses the bootstrap admin hashes of the node config.
pub fn parse_admin_hashes(hashes: &[String]) -> Result<Vec<[u8; 32]>, BadAdminKeyHash> {
    hashes
        .iter()
        .enumerate()
        .map(|(index, value)| {
            let bad = || BadAdminKeyHash {
                index,
                value: value.clone(),
            };
            let v = value.trim();
            if v.len() != 64 || !v.is_ascii() {
                return Err(bad());
            }
            let mut out = [0u8; 32];
            for (i, byte) in out.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&v[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
            }
            Ok(out)
        })
        .collect()
}

/// Decides who a call is. One per node.
pub struct Authenticator {
    insecure: bool,
    admin_hashes: Vec<[u8; 32]>,
    per_source: DefaultKeyedRateLimiter<IpAddr>,
    log_lines: DefaultDirectRateLimiter,
    failures: AtomicU64,
    throttled: AtomicU64,
    /// `herald_auth_failures_total` of the node's metrics (None: not counted, in tests).
    failure_counter: Option<prometheus::IntCounterVec>,
}

impl Authenticator {
    /// `insecure`: every call is [`Caller::anonymous`] (an admin). Otherwise a key is required.
    pub fn new(insecure: bool, admin_hashes: Vec<[u8; 32]>) -> Authenticator {
        let per_second = NonZeroU32::new(FAILURES_PER_SECOND).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(FAILURE_BURST).unwrap_or(NonZeroU32::MIN);
        Authenticator {
            insecure,
            admin_hashes,
            per_source: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            log_lines: RateLimiter::direct(
                Quota::per_second(NonZeroU32::MIN)
                    .allow_burst(NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN)),
            ),
            failures: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            failure_counter: None,
        }
    }

    /// Counts each failed authentication, by reason, in `counter` (label `reason`).
    pub fn counting_failures(mut self, counter: prometheus::IntCounterVec) -> Authenticator {
        self.failure_counter = Some(counter);
        self
    }

    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// Failed authentications since start, and how many of them were throttled.
    pub fn failures(&self) -> (u64, u64) {
        (
            self.failures.load(Ordering::Relaxed),
            self.throttled.load(Ordering::Relaxed),
        )
    }

    /// The caller of a call whose `authorization` value (None: absent) came from `source`.
    pub async fn authenticate(
        &self,
        reader: &ProjectionReader,
        authorization: Option<&[u8]>,
        source: Option<IpAddr>,
    ) -> Result<Caller, ServiceError> {
        if self.insecure {
            return Ok(Caller::anonymous());
        }
        match self.check(reader, authorization) {
            Ok(caller) => Ok(caller),
            Err(Failure::Storage(e)) => Err(e),
            Err(Failure::Refused(kind, reason)) => Err(self.failed(kind, reason, source).await),
        }
    }

    fn check(
        &self,
        reader: &ProjectionReader,
        authorization: Option<&[u8]>,
    ) -> Result<Caller, Failure> {
        let malformed = |reason: String| Failure::Refused(Refusal::Malformed, reason);
        let Some(value) = authorization else {
            return Err(Failure::Refused(
                Refusal::Missing,
                format!("no API key: send the metadata {AUTHORIZATION}: {BEARER}<key>"),
            ));
        };
        let value = std::str::from_utf8(value)
            .map_err(|_| malformed(format!("the {AUTHORIZATION} value is not text")))?;
        let Some(key) = value.strip_prefix(BEARER) else {
            return Err(malformed(format!(
                "the {AUTHORIZATION} value does not start with {BEARER:?}"
            )));
        };
        let key = key.trim();
        let key_id = key_id_of(key).map_err(malformed)?;
        let unknown = |key_id: &str| {
            Failure::Refused(Refusal::UnknownKey, format!("unknown key id {key_id}"))
        };
        let digest = sha256(key);
        // Every bootstrap hash is compared, in constant time each.
        let bootstrap = self
            .admin_hashes
            .iter()
            .fold(subtle::Choice::from(0), |found, h| found | h.ct_eq(&digest));
        if bool::from(bootstrap) {
            return Ok(Caller::bootstrap_admin(key_id));
        }
        let client = reader
            .client_of_key(key_id)
            .map_err(|e| Failure::Storage(ServiceError::Internal(e.to_string())))?;
        let Some(client) = client else {
            return Err(unknown(key_id));
        };
        let Some(stored) = client.key(key_id) else {
            return Err(unknown(key_id));
        };
        if !bool::from(stored.sha256.as_slice().ct_eq(&digest)) {
            return Err(Failure::Refused(
                Refusal::WrongSecret,
                format!("wrong secret for key id {key_id}"),
            ));
        }
        if !stored.is_live() {
            return Err(Failure::Refused(
                Refusal::Revoked,
                format!("key {key_id} was revoked"),
            ));
        }
        let Some(role) = Role::parse(&client.role) else {
            return Err(Failure::Storage(ServiceError::Internal(format!(
                "client {:?} has the role {:?}, which this node does not know",
                client.name, client.role
            ))));
        };
        Ok(Caller::client(&client.name, key_id, role))
    }

    /// Counts, logs (rate-limited) and delays a failed authentication; throttles its source.
    async fn failed(&self, kind: Refusal, reason: String, source: Option<IpAddr>) -> ServiceError {
        let count = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if count.is_multiple_of(PRUNE_EVERY) {
            self.per_source.retain_recent();
            self.per_source.shrink_to_fit();
        }
        let allowed = match source {
            Some(ip) => self.per_source.check_key(&ip).is_ok(),
            None => true,
        };
        if !allowed {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(counter) = &self.failure_counter {
            let label = if allowed { kind.label() } else { "throttled" };
            counter.with_label_values(&[label]).inc();
        }
        if self.log_lines.check().is_ok() {
            let from = source.map_or_else(|| "an unknown address".to_string(), |ip| ip.to_string());
            let (failures, throttled) = self.failures();
            tracing::warn!(
                "failed authentication from {from}: {reason} ({failures} failed since start, \
                 {throttled} of them throttled)"
            );
        }
        tokio::time::sleep(FAILURE_DELAY).await;
        if allowed {
            ServiceError::Unauthenticated { reason }
        } else {
            ServiceError::Exhausted {
                rule: format!(
                    "too many failed authentications from this address (more than \
                     {FAILURES_PER_SECOND} a second after {FAILURE_BURST}); the last one: {reason}"
                ),
                retry_after: Duration::from_secs(1),
            }
        }
    }

    /// Sources the limiter tracks now (for tests of its pruning).
    pub fn tracked_sources(&self) -> usize {
        self.per_source.len()
    }
}

/// Whether `caller`'s key still stands, for calls that outlive their authentication (a reply
/// stream runs for as long as the client keeps it open): a client's key revoked, or the client
/// deleted, since the call began ends it. Bootstrap admins and insecure callers have no
/// replicated key to lose. Read from this node's projection, like the authentication itself.
pub fn still_authenticated(reader: &ProjectionReader, caller: &Caller) -> Result<(), ServiceError> {
    if caller.principal().kind != PrincipalKind::Client as i32 {
        return Ok(());
    }
    let key_id = caller.key_id();
    let client = reader
        .client_of_key(key_id)
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    let live = client
        .as_ref()
        .filter(|c| c.name == caller.name())
        .and_then(|c| c.key(key_id))
        .is_some_and(|k| k.is_live());
    if live {
        Ok(())
    } else {
        Err(ServiceError::Unauthenticated {
            reason: format!(
                "key {key_id} of {:?} was revoked (or its client deleted) while this call was open",
                caller.name()
            ),
        })
    }
}

enum Failure {
    Refused(Refusal, String),
    Storage(ServiceError),
}

/// Why a key did not authenticate, as `herald_auth_failures_total` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Missing,
    Malformed,
    UnknownKey,
    WrongSecret,
    Revoked,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Malformed => "malformed",
            Refusal::UnknownKey => "unknown_key",
            Refusal::WrongSecret => "wrong_secret",
            Refusal::Revoked => "revoked",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_has_the_prefix_its_id_and_a_long_secret() {
        let k = NewKey::generate();
        let key = k.key.expose_secret();
        assert!(key.starts_with("hrd_"), "prefix");
        assert_eq!(key_id_of(key), Ok(k.key_id.as_str()));
        assert_eq!(k.key_id.len(), KEY_ID_LEN);
        assert_eq!(key.len(), 4 + 12 + 1 + 43);
        assert_eq!(k.sha256(), sha256(key).to_vec());
        assert_ne!(NewKey::generate().key_id, k.key_id);
        // The secret stays out of Debug.
        assert!(!format!("{:?}", k.key).contains(&key[17..]));
    }

    #[test]
    fn a_malformed_key_is_refused_without_being_quoted() {
        let secret = "A".repeat(43);
        for (key, says) in [
            ("abc".to_string(), "starts with \"hrd_\""),
            ("hrd_12".to_string(), "too short"),
            (format!("hrd_0123456789AB_{secret}"), "lowercase hex"),
            (format!("hrd_0123456789ab-{secret}"), "no '_'"),
            ("hrd_0123456789ab_short".to_string(), "at least 42"),
            (format!("hrd_0123456789ab_{secret}!"), "base64url"),
        ] {
            let e = key_id_of(&key).unwrap_err();
            assert!(e.contains(says), "{key}: {e}");
            assert!(!e.contains(&key), "{e}");
        }
        assert_eq!(
            key_id_of(&format!("hrd_0123456789ab_{secret}")),
            Ok("0123456789ab")
        );
    }

    /// A projection holding the client `erp` (role `role`) with `key` live and `revoked`
    /// revoked, made by applying the events a node would have applied.
    fn projection_with(
        role: &str,
        key: &NewKey,
        revoked: &NewKey,
    ) -> (tempfile::TempDir, ProjectionReader) {
        use herald_raft::events::event::Kind;
        use herald_raft::events::{ClientCreated, ClientKeyAdded, ClientKeyRevoked, Event};
        use herald_raft::projection::{apply_event, MemKv};
        let mut staged = MemKv::default();
        let events = [
            Kind::ClientCreated(ClientCreated {
                name: "erp".into(),
                role: role.into(),
                key_id: key.key_id.clone(),
                key_sha256: key.sha256(),
            }),
            Kind::ClientKeyAdded(ClientKeyAdded {
                client: "erp".into(),
                key_id: revoked.key_id.clone(),
                key_sha256: revoked.sha256(),
            }),
            Kind::ClientKeyRevoked(ClientKeyRevoked {
                client: "erp".into(),
                key_id: revoked.key_id.clone(),
            }),
        ];
        for (at_ms, kind) in (1..).zip(events) {
            apply_event(&mut staged, &Event::new(at_ms, kind)).expect("applies");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let db = herald_raft::db::open(dir.path()).expect("database");
        for ((cf, k), v) in staged.data {
            db.put_cf(herald_raft::db::cf(&db, cf), k, v).expect("put");
        }
        (dir, ProjectionReader::new(db))
    }

    fn bearer(key: &NewKey) -> Vec<u8> {
        format!("Bearer {}", key.key.expose_secret()).into_bytes()
    }

    #[tokio::test]
    async fn a_key_is_its_clients_a_bootstrap_key_an_admin_and_insecure_anyone_an_admin() {
        let (key, revoked, admin) = (NewKey::generate(), NewKey::generate(), NewKey::generate());
        let (_dir, reader) = projection_with("sender", &key, &revoked);
        let auth = Authenticator::new(false, vec![sha256(admin.key.expose_secret())]);
        let ip = Some("192.0.2.9".parse().expect("address"));

        let caller = auth
            .authenticate(&reader, Some(&bearer(&key)), ip)
            .await
            .expect("a live key");
        assert_eq!(
            (caller.name(), caller.key_id(), caller.role()),
            ("erp", key.key_id.as_str(), Role::Sender)
        );
        let caller = auth
            .authenticate(&reader, Some(&bearer(&admin)), ip)
            .await
            .expect("a bootstrap key");
        assert_eq!(
            (caller.name(), caller.role()),
            ("bootstrap-admin", Role::Admin)
        );

        let refused = |e: ServiceError| match e {
            ServiceError::Unauthenticated { reason } => reason,
            other => panic!("{other:?}"),
        };
        let e = auth.authenticate(&reader, None, ip).await.unwrap_err();
        assert!(refused(e).starts_with("no API key"));
        let e = auth
            .authenticate(&reader, Some(&bearer(&revoked)), ip)
            .await
            .unwrap_err();
        assert_eq!(refused(e), format!("key {} was revoked", revoked.key_id));
        let wrong = format!("Bearer hrd_{}_{}", key.key_id, "Z".repeat(43));
        let e = auth
            .authenticate(&reader, Some(wrong.as_bytes()), ip)
            .await
            .unwrap_err();
        assert_eq!(
            refused(e),
            format!("wrong secret for key id {}", key.key_id)
        );
        let basic = format!("Basic {}", key.key.expose_secret());
        let e = auth
            .authenticate(&reader, Some(basic.as_bytes()), ip)
            .await
            .unwrap_err();
        assert!(refused(e).contains("does not start with \"Bearer \""));
        assert_eq!(auth.failures().0, 4);

        // Insecure: no key needed, and every caller is an admin.
        let open = Authenticator::new(true, Vec::new());
        let caller = open
            .authenticate(&reader, None, ip)
            .await
            .expect("insecure");
        assert_eq!((caller.name(), caller.role()), ("anonymous", Role::Admin));
    }

    #[tokio::test]
    async fn a_stored_role_this_node_does_not_know_is_an_internal_error_not_a_login() {
        let (key, revoked) = (NewKey::generate(), NewKey::generate());
        let (_dir, reader) = projection_with("superuser", &key, &revoked);
        let auth = Authenticator::new(false, Vec::new());
        let e = auth
            .authenticate(&reader, Some(&bearer(&key)), None)
            .await
            .unwrap_err();
        assert!(matches!(e, ServiceError::Internal(_)), "{e:?}");
        assert_eq!(
            auth.failures().0,
            0,
            "not counted as a failed authentication"
        );
    }

    #[tokio::test]
    async fn failures_past_the_burst_from_one_source_are_throttled_and_others_are_not() {
        let counter = prometheus::IntCounterVec::new(
            prometheus::Opts::new("herald_auth_failures_total", "test"),
            &["reason"],
        )
        .expect("a counter");
        let auth = Authenticator::new(false, Vec::new()).counting_failures(counter.clone());
        let flood: IpAddr = "192.0.2.1".parse().expect("an address");
        let other: IpAddr = "192.0.2.2".parse().expect("an address");
        let started = std::time::Instant::now();
        let answers = futures::future::join_all(
            (0..FAILURE_BURST + 10)
                .map(|_| auth.failed(Refusal::UnknownKey, "unknown key id x".into(), Some(flood))),
        )
        .await;
        assert!(
            started.elapsed() >= FAILURE_DELAY,
            "answered after the delay"
        );
        let throttled = answers
            .iter()
            .filter(|e| matches!(e, ServiceError::Exhausted { .. }))
            .count();
        assert_eq!(throttled, 10, "{answers:?}");
        assert!(answers.iter().all(|e| !e.to_string().contains("hrd_")));
        // Another source is judged on its own failures.
        let e = auth
            .failed(Refusal::WrongSecret, "unknown key id y".into(), Some(other))
            .await;
        assert_eq!(
            e,
            ServiceError::Unauthenticated {
                reason: "unknown key id y".into()
            }
        );
        assert_eq!(auth.failures(), (u64::from(FAILURE_BURST) + 11, 10));
        let count = |reason: &str| counter.with_label_values(&[reason]).get();
        assert_eq!(
            (
                count("unknown_key"),
                count("wrong_secret"),
                count("throttled")
            ),
            (u64::from(FAILURE_BURST), 1, 10),
            "each failure counted once, by reason"
        );
        assert_eq!(auth.tracked_sources(), 2);
    }

    #[test]
    fn admin_hashes_are_64_hex_characters() {
        let good = hex(&sha256("hrd_x"));
        assert_eq!(
            parse_admin_hashes(std::slice::from_ref(&good)).unwrap(),
            [sha256("hrd_x")]
        );
        let e = parse_admin_hashes(&[good.clone(), "abc".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "[auth] admin-key-sha256[1]: \"abc\" is not a SHA-256 in hex (64 hex characters)"
        );
        let e = parse_admin_hashes(&["zz".repeat(32)]).unwrap_err();
        assert_eq!(e.index, 0);
    }
}
