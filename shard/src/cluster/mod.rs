//! A node in a cluster (`--controller-quorum`): the metadata quorum, and
//! every node's link to its active controller.
//!
//! On shard 0 of every node runs the [`member`]: it registers the node
//! with the active controller and heartbeats, follows the committed
//! metadata (fetching it from the controller, folding it into images and
//! handing each to the node's shards), and forwards the shards' controller
//! commands. On shard 0 of a node in the quorum list also runs the
//! [`controller`]: one Raft voter ([`quorum`]) over TCP between the
//! controllers and a durable log ([`raft_log`]); the leader is the active
//! controller, the only writer of metadata records.
//!
//! - [`frame`]: the frames on a controller's port.
//! - [`rpc`]: what nodes ask the controller, as JSON.
//! - [`raft_log`]: a voter's writes in an engine log.

pub mod controller;
pub mod frame;
pub mod member;
pub mod raft_log;
pub mod rpc;

use std::time::Duration;

use crate::ids::{NodeId, NODE_ID_MAX};

/// One tick of the quorum's clock: elections after 10 to 20 ticks without
/// a leader (1 to 2 s, KRaft's `controller.quorum.election.timeout.ms` is
/// 1 s), heartbeats every 2 ticks.
pub const TICK: Duration = Duration::from_millis(100);

/// How often a node heartbeats (Kafka's `broker.heartbeat.interval.ms`).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);

/// A node not heard from for this long is fenced (Kafka's
/// `broker.session.timeout.ms`).
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(9);

/// Entries applied between two snapshots of the metadata image: bounds
/// the Raft log kept in memory and replayed at a restart.
pub const SNAPSHOT_ENTRIES: u64 = 1000;

/// How long a forwarded command may take, retries to find the active
/// controller included, before the client is told `NOT_CONTROLLER`.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Most voters of a quorum.
pub const VOTERS_MAX: usize = 9;

/// One controller of the quorum: its node and where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    pub node: NodeId,
    pub host: String,
    pub port: u16,
}

impl QuorumVoter {
    /// Its id in Raft, where 0 means none: the node id plus one.
    pub fn raft_id(&self) -> u64 {
        raft_id(self.node)
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

pub fn raft_id(node: NodeId) -> u64 {
    node.0 as u64 + 1
}

pub fn node_of_raft_id(id: u64) -> NodeId {
    NodeId(id.saturating_sub(1) as i32)
}

/// `--controller-quorum 1@host:port,2@host:port,3@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumConfig {
    pub voters: Vec<QuorumVoter>,
}

impl QuorumConfig {
    pub fn parse(s: &str) -> Result<QuorumConfig, String> {
        let mut voters: Vec<QuorumVoter> = Vec::new();
        for entry in s.split(',') {
            let bad = || format!("{entry:?} is not ID@HOST:PORT");
            let (id, addr) = entry.trim().split_once('@').ok_or_else(bad)?;
            let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
            let node: i32 = id.parse().map_err(|_| bad())?;
            if !(0..=NODE_ID_MAX).contains(&node) {
                return Err(format!("node id {node} is outside 0..={NODE_ID_MAX}"));
            }
            let port: u16 = port.parse().map_err(|_| bad())?;
            if host.is_empty() {
                return Err(bad());
            }
            if voters.iter().any(|v| v.node.0 == node) {
                return Err(format!("node {node} is named twice"));
            }
            voters.push(QuorumVoter { node: NodeId(node), host: host.to_string(), port });
        }
        if voters.is_empty() || voters.len() > VOTERS_MAX {
            return Err(format!("a quorum has 1 to {VOTERS_MAX} voters (1, 3 or 5 usually)"));
        }
        Ok(QuorumConfig { voters })
    }

    pub fn voter(&self, node: NodeId) -> Option<&QuorumVoter> {
        self.voters.iter().find(|v| v.node == node)
    }

    pub fn raft_ids(&self) -> Vec<u64> {
        self.voters.iter().map(QuorumVoter::raft_id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_flags() {
        let q = QuorumConfig::parse("1@localhost:9090,2@10.0.0.2:9090, 3@h:1").unwrap();
        assert_eq!(q.voters.len(), 3);
        assert_eq!(q.voters[1].addr(), "10.0.0.2:9090");
        assert_eq!(q.voter(NodeId(3)).unwrap().raft_id(), 4);
        for bad in ["", "1@h", "x@h:1", "1@h:1,1@h:2", "1@:5", "-1@h:1", "1@h:99999"] {
            assert!(QuorumConfig::parse(bad).is_err(), "{bad}");
        }
    }
}
