//! A node's identity inside its certificate: the cluster name rule, the URI SAN
//! `herald://<cluster>/node/<id>` that names it, and the DNS name `node-<id>.<cluster>.herald`
//! that a peer uses as the server name when it dials the node. Both name the node, never its
//! address, because peers may reach each other through proxies (the fault harness does).
//!
//! This module knows names only: reading them out of a certificate is [`super::pem`]'s job.

use std::fmt;

/// Why a cluster name or a node identity was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("cluster name {0:?}: must be 1 to 63 characters of a-z, 0-9 and '-'")]
    BadClusterName(String),
    #[error("identity {0:?}: not of the form herald://<cluster>/node/<id>")]
    NotANodeIdentity(String),
}

/// Checks the cluster name rule (`[a-z0-9-]{1,63}`): it becomes a DNS label, so it follows the
/// label rules.
pub fn check_cluster_name(name: &str) -> Result<(), IdentityError> {
    let ok = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(IdentityError::BadClusterName(name.to_string()))
    }
}

/// One node of one cluster, as its certificate names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeIdentity {
    pub cluster: String,
    pub node_id: u64,
}

impl NodeIdentity {
    pub fn new(cluster: &str, node_id: u64) -> Result<NodeIdentity, IdentityError> {
        check_cluster_name(cluster)?;
        Ok(NodeIdentity {
            cluster: cluster.to_string(),
            node_id,
        })
    }

    /// The URI SAN: `herald://<cluster>/node/<id>`.
    pub fn uri(&self) -> String {
        format!("herald://{}/node/{}", self.cluster, self.node_id)
    }

    /// The DNS SAN a peer verifies as the server name: `node-<id>.<cluster>.herald`.
    pub fn dns_name(&self) -> String {
        format!("node-{}.{}.herald", self.node_id, self.cluster)
    }

    /// Reads a URI SAN back; anything else (another scheme, a client certificate's URI) is refused.
    pub fn parse_uri(uri: &str) -> Result<NodeIdentity, IdentityError> {
        let bad = || IdentityError::NotANodeIdentity(uri.to_string());
        let rest = uri.strip_prefix("herald://").ok_or_else(bad)?;
        let (cluster, id) = rest.split_once("/node/").ok_or_else(bad)?;
        check_cluster_name(cluster).map_err(|_| bad())?;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let node_id = id.parse().map_err(|_| bad())?;
        Ok(NodeIdentity {
            cluster: cluster.to_string(),
            node_id,
        })
    }
}

impl fmt::Display for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri())
    }
}

/// The URI SAN of a client certificate made by `herald cert client`: a name, not a node.
pub fn client_uri(cluster: &str, name: &str) -> String {
    format!("herald://{cluster}/client/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_follow_the_dns_label_rule() {
        assert!(check_cluster_name("prod-1").is_ok());
        for bad in ["", "Prod", "a_b", "a.b", &"x".repeat(64)] {
            let error = check_cluster_name(bad).expect_err(bad);
            assert!(error.to_string().contains("a-z, 0-9 and '-'"), "{error}");
        }
    }

    #[test]
    fn a_node_identity_round_trips_and_nothing_else_parses() {
        let id = NodeIdentity::new("prod", 3).expect("valid");
        assert_eq!(id.uri(), "herald://prod/node/3");
        assert_eq!(id.dns_name(), "node-3.prod.herald");
        assert_eq!(NodeIdentity::parse_uri(&id.uri()), Ok(id));
        for bad in [
            "https://prod/node/3",
            "herald://prod/client/x",
            "herald://prod/node/",
            "herald://prod/node/3x",
            "herald://PROD/node/3",
        ] {
            assert!(NodeIdentity::parse_uri(bad).is_err(), "{bad}");
        }
    }
}
