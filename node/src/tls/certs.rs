//! Making certificates with rcgen, so an operator needs no openssl: a cluster CA, node
//! certificates (server and client at once, named by [`NodeIdentity`]), client certificates, and
//! writing them out with private keys readable by their owner only (0600).
//!
//! This module issues; it never loads certificates for serving (see [`super::pem`]).

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};

use super::identity::{client_uri, NodeIdentity};

/// Why a certificate could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("making a certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{what} {path}: {error}")]
    Io {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("--host {0:?}: not a DNS name or an IP address")]
    BadHost(String),
    #[error("--days {0}: between 1 and 36500")]
    BadDays(u32),
}

/// A certificate and its private key, both PEM. The key stays a secret in memory.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: SecretString,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

/// When a certificate is valid, relative to now. Tests make expired ones with
/// [`Validity::expired`].
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl Validity {
    /// From a day ago to `days` from now. The day back is for clocks: a node whose wall clock
    /// was stepped back (hours, not days) still accepts certificates made today, as its peers
    /// with a right clock do (OPERATIONS.md, "Clocks").
    pub fn days(days: u32) -> Result<Validity, CertError> {
        if !(1..=36_500).contains(&days) {
            return Err(CertError::BadDays(days));
        }
        let now = OffsetDateTime::now_utc();
        Ok(Validity {
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(i64::from(days)),
        })
    }

    /// Valid for ten days until yesterday: a certificate every verifier refuses as expired.
    pub fn expired() -> Validity {
        let now = OffsetDateTime::now_utc();
        Validity {
            not_before: now - Duration::days(11),
            not_after: now - Duration::days(1),
        }
    }
}

fn params(cn: &str, validity: Validity, sans: Vec<SanType>) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, cn);
    name.push(DnType::OrganizationName, "Herald");
    params.distinguished_name = name;
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params.subject_alt_names = sans;
    params
}

fn issued(cert: rcgen::Certificate, key: &KeyPair) -> Issued {
    Issued {
        cert_pem: cert.pem(),
        key_pem: SecretString::from(key.serialize_pem()),
    }
}

/// A self-signed CA for one cluster.
pub fn make_ca(cluster: &str, validity: Validity) -> Result<Issued, CertError> {
    let key = KeyPair::generate()?;
    let mut params = params(&format!("Herald CA {cluster}"), validity, Vec::new());
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key)?;
    Ok(issued(cert, &key))
}

fn issuer(ca: &Issued) -> Result<Issuer<'static, KeyPair>, CertError> {
    let key = KeyPair::from_pem(ca.key_pem.expose_secret())?;
    Ok(Issuer::from_ca_cert_pem(&ca.cert_pem, key)?)
}

/// `host` as a SAN: an IP address, else a DNS name.
fn host_san(host: &str) -> Result<SanType, CertError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*')
        });
    if !valid {
        return Err(CertError::BadHost(host.to_string()));
    }
    Ok(SanType::DnsName(
        host.try_into()
            .map_err(|_| CertError::BadHost(host.to_string()))?,
    ))
}

/// A node's certificate: its identity as a URI SAN and as the DNS name peers dial it by, plus
/// the `hosts` (DNS names or IPs) clients reach its public port at. It serves both ports and is
/// the node's client certificate towards its peers.
pub fn make_node(
    ca: &Issued,
    identity: &NodeIdentity,
    hosts: &[String],
    validity: Validity,
) -> Result<Issued, CertError> {
    let mut sans = vec![
        SanType::URI(identity.uri().as_str().try_into()?),
        SanType::DnsName(identity.dns_name().as_str().try_into()?),
    ];
    for host in hosts {
        sans.push(host_san(host)?);
    }
    let key = KeyPair::generate()?;
    let mut params = params(&identity.uri(), validity, sans);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.signed_by(&key, &issuer(ca)?)?;
    Ok(issued(cert, &key))
}

/// A client certificate named `herald://<cluster>/client/<name>` (for clients that present one;
/// API keys are what authorise calls).
pub fn make_client(
    ca: &Issued,
    cluster: &str,
    name: &str,
    validity: Validity,
) -> Result<Issued, CertError> {
    let uri = client_uri(cluster, name);
    let key = KeyPair::generate()?;
    let mut params = params(&uri, validity, vec![SanType::URI(uri.as_str().try_into()?)]);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer(ca)?)?;
    Ok(issued(cert, &key))
}

/// Reads a CA written by [`write`] (`ca.pem`, `ca.key` in `dir`).
pub fn read_ca(dir: &Path) -> Result<Issued, CertError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|error| CertError::Io {
            what: "reading",
            path,
            error,
        })
    };
    Ok(Issued {
        cert_pem: read("ca.pem")?,
        key_pem: SecretString::from(read("ca.key")?),
    })
}

/// Writes `<stem>.pem` and `<stem>.key` (mode 0600, created so, never briefly readable) in `dir`;
/// returns both paths.
pub fn write(dir: &Path, stem: &str, issued: &Issued) -> Result<(PathBuf, PathBuf), CertError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir).map_err(|error| CertError::Io {
        what: "creating",
        path: dir.to_path_buf(),
        error,
    })?;
    let cert = dir.join(format!("{stem}.pem"));
    let key = dir.join(format!("{stem}.key"));
    std::fs::write(&cert, &issued.cert_pem).map_err(|error| CertError::Io {
        what: "writing",
        path: cert.clone(),
        error,
    })?;
    let io = |error| CertError::Io {
        what: "writing",
        path: key.clone(),
        error,
    };
    // Written to a temporary file and renamed, so a node watching the path never reads half a key.
    let tmp = dir.join(format!(".{stem}.key.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(issued.key_pem.expose_secret().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, &key).map_err(io)?;
    Ok((cert, key))
}
