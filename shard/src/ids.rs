//! Distinct types for the cluster's numbers, so that a broker id is never
//! passed where a node id, a shard index or a leader epoch is meant, nor an
//! offset where a count is; and the random ids the cluster hands out.
//!
//! Pure values, used on every core. The Kafka wire keeps plain integers;
//! conversion happens where a handler decodes a request or fills a response.

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

/// A shard's index within its node (its core): shard `k` listens on
/// `port + k` and is broker `node * 1000 + k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ShardId(pub u16);

/// A topic partition open on one shard, interned by its partition manager
/// ([`crate::partitions::Partitions`]): requests name a partition by topic
/// and index; the shard's own structures keep this instead of a `String`.
/// Never reused while the shard runs; meaningless on another shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionId(pub u32);

/// A position in a partition's log: the offset of a record, or the offset
/// after the last one (log end, high watermark). -1 on the wire means none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub i64);

/// A partition's leader epoch: grows by one with every change of leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LeaderEpoch(pub i32);

/// A partition's epoch: grows by one with every change of its replicas,
/// ISR or leader (KRaft's `partitionEpoch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PartitionEpoch(pub i32);

impl BrokerId {
    /// Shard `shard` of node `node`.
    pub fn of(node: NodeId, shard: ShardId) -> BrokerId {
        debug_assert!(shard.0 < SHARDS_PER_NODE_MAX);
        BrokerId(node.0 * i32::from(SHARDS_PER_NODE_MAX) + i32::from(shard.0))
    }

    /// The node this broker is a shard of.
    pub fn node(self) -> NodeId {
        NodeId(self.0.div_euclid(i32::from(SHARDS_PER_NODE_MAX)))
    }

    /// The shard index within its node.
    pub fn shard(self) -> ShardId {
        ShardId(self.0.rem_euclid(i32::from(SHARDS_PER_NODE_MAX)) as u16)
    }
}

impl Offset {
    /// No offset (Kafka's -1: no committed offset, no such record).
    pub const NONE: Offset = Offset(-1);

    /// The offset `n` records later.
    pub fn plus(self, n: i64) -> Offset {
        Offset(self.0 + n)
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

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// 16 random bytes from the kernel.
pub fn random_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    // SAFETY: `b` is a valid buffer of 16 bytes.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    assert_eq!(n, 16, "getrandom");
    b
}

/// A Kafka-style cluster id: 16 random bytes in URL-safe base64, no padding.
pub fn random_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = random_bytes();
    let mut bits: u128 = u128::from_be_bytes(bytes);
    let mut out = Vec::with_capacity(22);
    // 22 characters of 6 bits cover 128 bits (the first holds 2).
    for _ in 0..22 {
        out.push(ALPHABET[(bits & 63) as usize]);
        bits >>= 6;
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_ids_split_into_node_and_shard() {
        let b = BrokerId::of(NodeId(3), ShardId(7));
        assert_eq!(b, BrokerId(3007));
        assert_eq!((b.node(), b.shard()), (NodeId(3), ShardId(7)));
        assert_eq!(BrokerId(5).node(), NodeId(0));
    }
}
