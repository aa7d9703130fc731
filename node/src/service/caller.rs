//! Who is calling. Every transport builds a [`Caller`] from what its request carries (gRPC: the
//! `x-herald-client` metadata) and passes it to every operation: idempotency keys, quotas and
//! replies are per client. The security issue adds the caller's key and roles here.

use super::error::ServiceError;

/// The calling system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    client: String,
}

/// The name under which a caller that gives none is served.
pub const ANONYMOUS: &str = "anonymous";

/// The header (gRPC metadata, and HTTP header tomorrow) that names the calling system.
pub const CLIENT_HEADER: &str = "x-herald-client";

/// The longest client name (policy client quotas and reply rules use the same bound).
pub const MAX_CLIENT_LEN: usize = 64;

impl Caller {
    /// The caller named by `header` (the value of [`CLIENT_HEADER`], `None` when absent).
    pub fn from_header(header: Option<&str>) -> Result<Caller, ServiceError> {
        let client = header
            .filter(|s| !s.is_empty() && s.len() <= MAX_CLIENT_LEN)
            .filter(|s| s.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)))
            .unwrap_or(ANONYMOUS);
        Ok(Caller {
            client: client.to_string(),
        })
    }

    /// A caller inside the node (timers, tests) or one that named nobody.
    pub fn anonymous() -> Caller {
        Caller {
            client: ANONYMOUS.to_string(),
        }
    }

    /// The client system's name: idempotency keys, quotas and replies are scoped by it.
    pub fn client(&self) -> &str {
        &self.client
    }
}
