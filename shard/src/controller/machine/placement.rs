//! Where new partitions go: leaders round robin over every shard of every
//! live node, followers on other nodes; and the checks on replica
//! assignments a client names itself.
//!
//! Pure functions of the image, run by the controller's state machine.

use std::collections::BTreeSet;

use net::kafka_protocol::error::ResponseError;

use crate::error::Refusal;
use crate::ids::{BrokerId, LeaderEpoch, PartitionEpoch, ShardId};
use crate::metadata::{MetadataImage, NodeMeta, PartitionMeta};

/// The live brokers in the order leaders are dealt to them: shard 0 of
/// every live node (by node id), then shard 1, and so on. Consecutive
/// partitions thus land on different nodes first, then on different
/// shards; a single node deals them to shards 0, 1, 2, ... in turn.
pub fn leader_order(image: &MetadataImage) -> Vec<BrokerId> {
    let live: Vec<&NodeMeta> = image.live_nodes().collect();
    let shards_max = live.iter().map(|n| n.shards).max().unwrap_or(0);
    (0..shards_max)
        .flat_map(|s| {
            live.iter().filter(move |n| s < n.shards).map(move |n| BrokerId::of(n.id, ShardId(s)))
        })
        .collect()
}

/// Checks a requested replication factor against the live nodes: replicas
/// of one partition go to distinct nodes.
pub fn check_replication_factor(image: &MetadataImage, factor: i16) -> Result<usize, Refusal> {
    let err = |m: String| Err(Refusal::new(ResponseError::InvalidReplicationFactor, m));
    if factor < 1 {
        return err(format!(
            "replication factor must be larger than 0, or -1 for the default; got {factor}"
        ));
    }
    let live = image.live_nodes().count();
    if factor as usize > live {
        return err(format!(
            "replication factor {factor} is larger than the {live} available broker node{}",
            if live == 1 { "" } else { "s" }
        ));
    }
    Ok(factor as usize)
}

/// Partitions `first..first + count` of a topic, their leaders dealt from
/// position `start` of [`leader_order`], each with `factor - 1` followers
/// on the next nodes. `factor` has passed [`check_replication_factor`].
pub fn place(
    image: &MetadataImage,
    start: usize,
    first: usize,
    count: usize,
    factor: usize,
) -> Vec<PartitionMeta> {
    let order = leader_order(image);
    let live: Vec<&NodeMeta> = image.live_nodes().collect();
    assert!(!order.is_empty() && factor <= live.len(), "placement without live nodes");
    (first..first + count)
        .map(|p| {
            let leader = order[(start + p) % order.len()];
            let at = live.iter().position(|n| n.id == leader.node()).expect("leader is live");
            let mut replicas = vec![leader];
            for k in 1..factor {
                let node = live[(at + k) % live.len()];
                let shard = (leader.shard().0 as usize + k) % node.shards as usize;
                replicas.push(BrokerId::of(node.id, ShardId(shard as u16)));
            }
            new_partition(image, replicas, leader)
        })
        .collect()
}

/// A new partition's state: every live replica in its ISR (they all start
/// empty, as the leader does), the first live one leading.
fn new_partition(
    image: &MetadataImage,
    replicas: Vec<BrokerId>,
    leader: BrokerId,
) -> PartitionMeta {
    let isr = replicas.iter().copied().filter(|&b| image.is_live(b)).collect();
    PartitionMeta {
        replicas,
        isr,
        leader: Some(leader),
        leader_epoch: LeaderEpoch(0),
        partition_epoch: PartitionEpoch(0),
    }
}

/// The partitions a client assigned by hand: `assignments[i]` holds the
/// broker ids of partition `first + i`, each list as long as `factor`
/// when one is given. Each broker must be registered, none named twice in
/// a partition, and one of each partition's replicas live: it leads.
pub fn assigned(
    image: &MetadataImage,
    first: usize,
    assignments: &[Vec<i32>],
    factor: Option<usize>,
) -> Result<Vec<PartitionMeta>, Refusal> {
    let err = |m: String| Err(Refusal::new(ResponseError::InvalidReplicaAssignment, m));
    let factor = factor.or_else(|| assignments.first().map(Vec::len));
    let mut out = Vec::with_capacity(assignments.len());
    for (i, ids) in assignments.iter().enumerate() {
        let p = first + i;
        if ids.is_empty() {
            return err(format!("the assignment of partition {p} is an empty replica list"));
        }
        if Some(ids.len()) != factor {
            return err(format!(
                "partition {p} is assigned {} replicas; every partition of a topic must have {}",
                ids.len(),
                factor.unwrap_or(0)
            ));
        }
        let mut seen = BTreeSet::new();
        for &id in ids {
            if !seen.insert(id) {
                return err(format!("the assignment of partition {p} names broker {id} twice"));
            }
            let b = BrokerId(id);
            let registered =
                id >= 0 && image.nodes.get(&b.node()).is_some_and(|n| b.shard().0 < n.shards);
            if !registered {
                return err(format!(
                    "the assignment of partition {p} names broker {id}, but no such broker is registered"
                ));
            }
        }
        let replicas: Vec<BrokerId> = ids.iter().map(|&id| BrokerId(id)).collect();
        let Some(&leader) = replicas.iter().find(|&&b| image.is_live(b)) else {
            return err(format!(
                "every broker assigned to partition {p} is fenced: none can lead it"
            ));
        };
        out.push(new_partition(image, replicas, leader));
    }
    Ok(out)
}
