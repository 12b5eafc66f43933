//! Distinct types for the cluster's numbers, so that a broker id is never
//! passed where a node id or a leader epoch is meant.
//!
//! Pure values, used on every core. The Kafka wire keeps plain integers;
//! conversion happens where a handler fills a response.

use std::fmt;

/// Most shards a node may run: a broker id is `node * 1000 + shard`.
pub const SHARDS_PER_NODE_MAX: u16 = 1000;

/// The largest node id: its last broker id still fits in an `i32`.
pub const NODE_ID_MAX: i32 = i32::MAX / SHARDS_PER_NODE_MAX as i32 - 1;

/// A Corelog process (`--node-id`): one machine, several shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub i32);

/// A Kafka broker as clients see it: one shard of one node,
/// `node * 1000 + shard` (`../shared/DESIGN.md` §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BrokerId(pub i32);

/// A partition's leader epoch: grows by one with every change of leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LeaderEpoch(pub i32);

/// A partition's epoch: grows by one with every change of its replicas,
/// ISR or leader (KRaft's `partitionEpoch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PartitionEpoch(pub i32);

impl BrokerId {
    /// Shard `shard` of node `node`.
    pub fn of(node: NodeId, shard: u16) -> BrokerId {
        debug_assert!(shard < SHARDS_PER_NODE_MAX);
        BrokerId(node.0 * i32::from(SHARDS_PER_NODE_MAX) + i32::from(shard))
    }

    /// The node this broker is a shard of.
    pub fn node(self) -> NodeId {
        NodeId(self.0.div_euclid(i32::from(SHARDS_PER_NODE_MAX)))
    }

    /// The shard index within its node.
    pub fn shard(self) -> u16 {
        self.0.rem_euclid(i32::from(SHARDS_PER_NODE_MAX)) as u16
    }
}

impl LeaderEpoch {
    pub fn next(self) -> LeaderEpoch {
        LeaderEpoch(self.0 + 1)
    }
}

impl PartitionEpoch {
    pub fn next(self) -> PartitionEpoch {
        PartitionEpoch(self.0 + 1)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_ids_split_into_node_and_shard() {
        let b = BrokerId::of(NodeId(3), 7);
        assert_eq!(b, BrokerId(3007));
        assert_eq!((b.node(), b.shard()), (NodeId(3), 7));
        assert_eq!(BrokerId(5).node(), NodeId(0));
    }
}
