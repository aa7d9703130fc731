//! Reading PEM files (rustls-pki-types' `PemObject`) and what the node needs to know about a
//! certificate: its node identity (URI SAN) and when it expires.
//!
//! Nothing here builds a TLS configuration ([`super::store`] does) or issues certificates.

use std::path::Path;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::identity::NodeIdentity;
use super::TlsError;

/// Every certificate in a PEM file, in order (the node's own first, then intermediates).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::pem(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::pem(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            reason: "no CERTIFICATE section in the file".into(),
        });
    }
    Ok(certs)
}

/// The one private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::pem(path, e))
}

/// A CA file as the set of roots to verify against.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    roots_from(load_certs(path)?, path)
}

/// PEM bytes (a `--ca` file's contents) as roots.
pub fn roots_from_pem(pem: &[u8], origin: &Path) -> Result<RootCertStore, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::pem(origin, e))?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: origin.to_path_buf(),
            reason: "no CERTIFICATE section in the file".into(),
        });
    }
    roots_from(certs, origin)
}

fn roots_from(certs: Vec<CertificateDer<'static>>, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

/// What the node reads out of a certificate.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// Seconds since the Unix epoch after which the certificate is no longer valid.
    pub not_after_unix: i64,
    /// Every URI SAN, in order.
    pub uris: Vec<String>,
}

impl CertInfo {
    pub fn parse(der: &CertificateDer<'_>) -> Result<CertInfo, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let mut uris = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::URI(uri) = name {
                    uris.push(uri.to_string());
                }
            }
        }
        Ok(CertInfo {
            not_after_unix: cert.validity().not_after.timestamp(),
            uris,
        })
    }

    /// The node identity the certificate names, if exactly one URI SAN names a node.
    pub fn node_identity(&self) -> Option<NodeIdentity> {
        let mut nodes = self
            .uris
            .iter()
            .filter_map(|u| NodeIdentity::parse_uri(u).ok());
        let first = nodes.next()?;
        nodes.next().is_none().then_some(first)
    }

    /// The expiry as RFC 3339 text, for logs and `cluster status`.
    pub fn not_after_text(&self) -> String {
        chrono::DateTime::from_timestamp(self.not_after_unix, 0)
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| self.not_after_unix.to_string())
    }
}
