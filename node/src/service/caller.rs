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
    ///
    /// An absent header is the anonymous caller. A header present but empty, longer than
    /// [`MAX_CLIENT_LEN`] bytes or not printable ASCII is refused: served as "anonymous", its
    /// idempotency keys would collide with every other such sender's.
    pub fn from_header(header: Option<&str>) -> Result<Caller, ServiceError> {
        let Some(name) = header else {
            return Ok(Caller::anonymous());
        };
        let refuse = |rule: String| Err(ServiceError::invalid(CLIENT_HEADER, rule));
        if name.is_empty() {
            return refuse(format!(
                "\"\" is empty: name the calling system in 1 to {MAX_CLIENT_LEN} printable \
                 ASCII characters, or send no {CLIENT_HEADER} to be served as {ANONYMOUS:?}"
            ));
        }
        if name.len() > MAX_CLIENT_LEN {
            return refuse(format!(
                "{:?}… is {} bytes long: at most {MAX_CLIENT_LEN} printable ASCII characters",
                name.chars().take(16).collect::<String>(),
                name.len()
            ));
        }
        if let Some(bad) = name.chars().find(|c| !(' '..='~').contains(c)) {
            return refuse(format!(
                "{name:?} contains {bad:?}: only printable ASCII characters (space to ~) are allowed"
            ));
        }
        Ok(Caller {
            client: name.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(header: &str) -> String {
        match Caller::from_header(Some(header)) {
            Err(e @ ServiceError::InvalidArgument { .. }) => e.to_string(),
            other => panic!("{header:?} gave {other:?}"),
        }
    }

    #[test]
    fn no_header_is_the_anonymous_caller_and_a_name_is_kept() {
        assert_eq!(Caller::from_header(None).unwrap().client(), ANONYMOUS);
        let name = "erp-01 (billing)~";
        assert_eq!(Caller::from_header(Some(name)).unwrap().client(), name);
        let longest = "c".repeat(MAX_CLIENT_LEN);
        assert_eq!(
            Caller::from_header(Some(&longest)).unwrap().client(),
            longest
        );
    }

    #[test]
    fn an_empty_long_or_unprintable_name_is_refused_naming_the_header_the_value_and_the_rule() {
        let e = refused("");
        assert!(e.starts_with("x-herald-client: \"\" is empty"), "{e}");
        assert!(e.contains("1 to 64 printable ASCII"), "{e}");
        let e = refused(&"c".repeat(65));
        assert!(
            e.starts_with("x-herald-client: \"cccccccccccccccc\"… is 65 bytes long"),
            "{e}"
        );
        assert!(e.contains("at most 64"), "{e}");
        let e = refused("erp\tbilling");
        assert!(
            e.starts_with("x-herald-client: \"erp\\tbilling\" contains '\\t'"),
            "{e}"
        );
        let e = refused("客户");
        assert!(e.contains("only printable ASCII"), "{e}");
    }
}
