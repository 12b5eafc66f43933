//! Nodes joining, missing their heartbeats, coming back and leaving: the
//! node records, and the partition changes each causes.
//!
//! A fenced node's brokers leave every ISR they are in (except the last
//! member of one: it alone holds everything acknowledged) and lead
//! nothing; a partition whose leader was fenced gets the first live ISR
//! member as leader, or none (offline) until an ISR member is back. A
//! replica outside the ISR is elected only where the topic sets
//! `unclean.leader.election.enable=true` and no ISR member is live: the
//! first live replica then leads alone (what it lacks of the acknowledged
//! records is lost, which is what that config trades for availability).
//!
//! Pure functions of the image, run by the controller's state machine.

use crate::ids::{BrokerId, NodeId};
use crate::metadata::{MetadataImage, MetadataRecord, NodeMeta, PartitionMeta, TopicMeta};

/// A node registers (or restarts, or comes back with a new endpoint): it
/// is live, and leads the partitions left without a leader whose ISR it
/// is in.
pub fn register(image: &MetadataImage, node: NodeMeta) -> Vec<MetadataRecord> {
    let node = NodeMeta { fenced: false, ..node };
    if image.nodes.get(&node.id) == Some(&node) {
        return Vec::new();
    }
    let record = MetadataRecord::Node(node);
    let after = image.apply(&record);
    let mut records = vec![record];
    records.extend(elect_leaderless(&after));
    records
}

/// A node missed its heartbeats: fenced, its leaderships elsewhere.
pub fn fence(image: &MetadataImage, node: NodeId) -> Vec<MetadataRecord> {
    if image.nodes.get(&node).is_none_or(|n| n.fenced) {
        return Vec::new();
    }
    let record = MetadataRecord::Fence { node };
    let after = image.apply(&record);
    let mut records = vec![record];
    records.extend(leave(&after, node));
    records
}

/// A fenced node heartbeats again.
pub fn unfence(image: &MetadataImage, node: NodeId) -> Vec<MetadataRecord> {
    if image.nodes.get(&node).is_none_or(|n| !n.fenced) {
        return Vec::new();
    }
    let record = MetadataRecord::Unfence { node };
    let after = image.apply(&record);
    let mut records = vec![record];
    records.extend(elect_leaderless(&after));
    records
}

/// A node stops cleanly: its leaderships move as when it is fenced, then
/// it is gone from the cluster.
pub fn unregister(image: &MetadataImage, node: NodeId) -> Vec<MetadataRecord> {
    if !image.nodes.contains_key(&node) {
        return Vec::new();
    }
    let mut records = fence(image, node);
    records.push(MetadataRecord::Unregister { node });
    records
}

/// The partition changes once `gone`'s brokers are fenced in `image`.
fn leave(image: &MetadataImage, gone: NodeId) -> Vec<MetadataRecord> {
    changes(
        image,
        |_| true,
        |t, p| {
            let mut isr: Vec<BrokerId> =
                p.isr.iter().copied().filter(|b| b.node() != gone).collect();
            if isr.is_empty() {
                isr = p.isr.clone();
            }
            match p.leader {
                Some(l) if l.node() != gone => (isr, Some(l)),
                _ => elected(image, t, p, isr),
            }
        },
    )
}

/// Leaders for the partitions that have none, from their live ISR members.
fn elect_leaderless(image: &MetadataImage) -> Vec<MetadataRecord> {
    elect_leaderless_in(image, |_| true)
}

/// As [`elect_leaderless`], for the topics `which` picks (a topic whose
/// configs changed: `unclean.leader.election.enable` set to true elects at
/// once, as Kafka does).
pub fn elect_leaderless_in(
    image: &MetadataImage,
    which: impl Fn(&TopicMeta) -> bool,
) -> Vec<MetadataRecord> {
    changes(image, which, |t, p| match p.leader {
        Some(l) => (p.isr.clone(), Some(l)),
        None => elected(image, t, p, p.isr.clone()),
    })
}

/// The (ISR, leader) of a partition that needs a leader: its first live
/// member of `isr`; else, where its topic allows unclean elections, its
/// first live replica, alone in the ISR; else none.
fn elected(
    image: &MetadataImage,
    topic: &TopicMeta,
    p: &PartitionMeta,
    isr: Vec<BrokerId>,
) -> (Vec<BrokerId>, Option<BrokerId>) {
    if let Some(l) = isr.iter().copied().find(|&b| image.is_live(b)) {
        return (isr, Some(l));
    }
    let unclean =
        topic.configs.get("unclean.leader.election.enable").is_some_and(|v| v.trim() == "true");
    match p.replicas.iter().copied().find(|&b| image.is_live(b)).filter(|_| unclean) {
        Some(l) => (vec![l], Some(l)),
        None => (isr, None),
    }
}

/// A `partition` record for every partition whose (ISR, leader) `change`
/// alters: the partition epoch grows, and the leader epoch with a new leader.
fn changes(
    image: &MetadataImage,
    which: impl Fn(&TopicMeta) -> bool,
    change: impl Fn(&TopicMeta, &PartitionMeta) -> (Vec<BrokerId>, Option<BrokerId>),
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for t in image.topics.values().filter(|t| which(t)) {
        for (i, p) in t.partitions.iter().enumerate() {
            let (isr, leader) = change(t, p);
            if isr == p.isr && leader == p.leader {
                continue;
            }
            let leader_epoch =
                if leader == p.leader { p.leader_epoch } else { p.leader_epoch.next() };
            records.push(MetadataRecord::Partition {
                topic: t.name.clone(),
                partition: i as i32,
                state: PartitionMeta {
                    replicas: p.replicas.clone(),
                    isr,
                    leader,
                    leader_epoch,
                    partition_epoch: p.partition_epoch.next(),
                },
            });
        }
    }
    records
}
