//! Where a dev cluster's processes listen: node *i* serves gRPC on (port-base + i), HTTP
//! (metrics, health) on (port-base + 20 + i) and Raft on (port-base + 50 + i), the simulator
//! listens on (port-base + 99), all on one host address.
//! This module only computes and checks addresses; it starts nothing.

use std::net::{IpAddr, SocketAddr, TcpListener};

use super::DevError;

/// The most nodes a dev cluster has: their Raft ports must stay below the simulator's.
pub const MAX_NODES: u64 = 9;
const HTTP_OFFSET: u16 = 20;
const RAFT_OFFSET: u16 = 50;
const SIM_OFFSET: u16 = 99;

/// The addresses of one dev cluster, checked to fit in the port range.
#[derive(Clone, Debug)]
pub struct Layout {
    host: IpAddr,
    port_base: u16,
    nodes: u64,
}

/// One address a process of the cluster will listen on, and who.
#[derive(Clone, Debug, PartialEq)]
pub struct Listen {
    pub addr: SocketAddr,
    pub what: String,
}

impl Layout {
    /// Refuses a node count or a port base whose ports do not fit, before anything is written.
    pub fn new(host: IpAddr, port_base: u16, nodes: u64) -> Result<Layout, DevError> {
        if !host.is_loopback() {
            return Err(DevError::Host { host });
        }
        if nodes == 0 || nodes > MAX_NODES {
            return Err(DevError::Nodes { nodes });
        }
        if port_base.checked_add(SIM_OFFSET).is_none() {
            return Err(DevError::PortBase {
                base: port_base,
                max: u16::MAX - SIM_OFFSET,
            });
        }
        Ok(Layout {
            host,
            port_base,
            nodes,
        })
    }

    pub fn nodes(&self) -> u64 {
        self.nodes
    }

    pub fn ids(&self) -> impl Iterator<Item = u64> {
        1..=self.nodes
    }

    /// Node `id`'s gRPC address. `id` is at most [`MAX_NODES`], checked in [`Layout::new`].
    pub fn grpc(&self, id: u64) -> SocketAddr {
        SocketAddr::new(self.host, self.port_base + id as u16)
    }

    /// Node `id`'s HTTP listener (`/metrics`, `/livez`, `/readyz`).
    pub fn http(&self, id: u64) -> SocketAddr {
        SocketAddr::new(self.host, self.port_base + HTTP_OFFSET + id as u16)
    }

    pub fn raft(&self, id: u64) -> SocketAddr {
        SocketAddr::new(self.host, self.port_base + RAFT_OFFSET + id as u16)
    }

    pub fn sim(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port_base + SIM_OFFSET)
    }

    /// What node `id` listens on.
    pub fn node_listens(&self, id: u64) -> Vec<Listen> {
        vec![
            Listen {
                addr: self.grpc(id),
                what: format!("node {id}'s gRPC"),
            },
            Listen {
                addr: self.raft(id),
                what: format!("node {id}'s Raft"),
            },
            Listen {
                addr: self.http(id),
                what: format!("node {id}'s HTTP"),
            },
        ]
    }

    pub fn sim_listens(&self) -> Vec<Listen> {
        vec![Listen {
            addr: self.sim(),
            what: "the simulator".into(),
        }]
    }

    /// Every address of the cluster: the simulator's, then each node's.
    pub fn all_listens(&self) -> Vec<Listen> {
        let mut all = self.sim_listens();
        for id in self.ids() {
            all.extend(self.node_listens(id));
        }
        all
    }
}

/// Refuses the first address something already listens on. A child started on a taken port
/// would die at once, or worse, a client would talk to the other program and believe it ours.
pub fn check_free(listens: &[Listen]) -> Result<(), DevError> {
    for listen in listens {
        if let Err(e) = TcpListener::bind(listen.addr) {
            return Err(DevError::PortInUse {
                addr: listen.addr,
                what: listen.what.clone(),
                reason: e.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn localhost() -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }

    #[test]
    fn addresses_follow_the_port_base() {
        let layout = Layout::new(localhost(), 7100, 3).expect("a valid layout");
        assert_eq!(layout.grpc(3).to_string(), "127.0.0.1:7103");
        assert_eq!(layout.raft(1).to_string(), "127.0.0.1:7151");
        assert_eq!(layout.http(2).to_string(), "127.0.0.1:7122");
        assert_eq!(layout.sim().to_string(), "127.0.0.1:7199");
        assert_eq!(layout.all_listens().len(), 10);
    }

    #[test]
    fn a_port_base_whose_ports_overflow_is_refused() {
        let err = Layout::new(localhost(), 65500, 3).expect_err("65500 + 99 overflows");
        let text = err.to_string();
        assert!(text.contains("--port-base 65500"), "{text}");
        assert!(text.contains("65436"), "{text}");
        assert!(Layout::new(localhost(), 65436, 9).is_ok());
        assert!(Layout::new(localhost(), 65437, 1).is_err());
    }

    #[test]
    fn node_counts_outside_one_to_nine_are_refused() {
        for nodes in [0, 10] {
            let text = Layout::new(localhost(), 7100, nodes)
                .expect_err("out of range")
                .to_string();
            assert!(text.contains(&format!("--nodes {nodes}")), "{text}");
        }
    }

    #[test]
    fn only_loopback_hosts_are_accepted() {
        assert!(Layout::new(IpAddr::from([127, 3, 4, 1]), 7100, 3).is_ok());
        let text = Layout::new(IpAddr::from([0, 0, 0, 0]), 7100, 3)
            .expect_err("not loopback")
            .to_string();
        assert!(text.contains("--host 0.0.0.0"), "{text}");
    }

    #[test]
    fn a_taken_port_is_named() {
        let taken = TcpListener::bind("127.0.0.1:0").expect("an ephemeral port");
        let addr = taken.local_addr().expect("its address");
        let err = check_free(&[Listen {
            addr,
            what: "node 1's gRPC".into(),
        }])
        .expect_err("the port is taken");
        let text = err.to_string();
        assert!(text.contains(&format!("port {addr}")), "{text}");
        assert!(text.contains("node 1's gRPC"), "{text}");
    }
}
