//! ISR changes a partition's leader asks for (Kafka's AlterPartition,
//! KIP-497): validated against the image as KRaft's controller does, then
//! one `partition` record each with the new ISR and the next partition
//! epoch. Pure, like the rest of the machine.
//!
//! A change that brings a partition's preferred replica (its first) back
//! into the ISR also makes it the leader again, with the next leader
//! epoch: leaderships return to where placement spread them once a node
//! that was away has caught up.
//!
//! A leader names the leader and partition epochs it acts under; a change
//! from a deposed leader (an older leader epoch) or on a stale state (an
//! older partition epoch) is refused, so two leaders can never both move
//! an ISR. Epochs newer than the image's mean this controller is behind:
//! `NOT_CONTROLLER`, and the leader retries with the active one.

use std::collections::BTreeMap;

use net::kafka_protocol::error::ResponseError;

use crate::error::Refusal;
use crate::ids::{BrokerId, LeaderEpoch, PartitionEpoch};
use crate::metadata::{MetadataImage, MetadataRecord, PartitionMeta};

/// One partition's ISR, as its leader wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub topic: String,
    pub partition: i32,
    /// The broker asking: it must be the partition's leader.
    pub leader: BrokerId,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: PartitionEpoch,
    pub isr: Vec<BrokerId>,
}

/// The outcome of one change: the partition's state after it, or why not.
pub type IsrOutcome = Result<PartitionMeta, Refusal>;

/// The records `changes` make, and each one's outcome, in order: one
/// record per accepted change, so that every state an outcome names is
/// committed. A later change of the same partition in one command sees
/// the earlier.
pub fn alter(
    image: &MetadataImage,
    changes: Vec<IsrChange>,
) -> (Vec<MetadataRecord>, Vec<IsrOutcome>) {
    let mut changed: BTreeMap<(String, i32), PartitionMeta> = BTreeMap::new();
    let mut records = Vec::new();
    let mut outcomes = Vec::with_capacity(changes.len());
    for c in changes {
        let key = (c.topic.clone(), c.partition);
        let current = changed.get(&key).or_else(|| image.partition(&c.topic, c.partition)).cloned();
        let outcome = match current {
            None => Err(Refusal::new(
                ResponseError::UnknownTopicOrPartition,
                format!("{}-{} does not exist", c.topic, c.partition),
            )),
            Some(p) => check(image, &p, &c).map(|()| {
                let mut next = p.clone();
                if next.isr != c.isr {
                    next.isr = c.isr.clone();
                    next.partition_epoch = p.partition_epoch.next();
                    // The preferred replica (the first) back in the ISR
                    // leads again (Kafka's auto leader rebalance, at once
                    // rather than every leader.imbalance.check.interval).
                    let preferred = p.replicas.first().copied();
                    let back = preferred.filter(|b| !p.isr.contains(b) && c.isr.contains(b));
                    if let Some(preferred) = back.filter(|b| Some(*b) != p.leader) {
                        next.leader = Some(preferred);
                        next.leader_epoch = p.leader_epoch.next();
                    }
                    records.push(MetadataRecord::Partition {
                        topic: c.topic.clone(),
                        partition: c.partition,
                        state: next.clone(),
                    });
                    changed.insert(key, next.clone());
                }
                next
            }),
        };
        outcomes.push(outcome);
    }
    (records, outcomes)
}

/// KRaft's checks, in its order.
fn check(image: &MetadataImage, p: &PartitionMeta, c: &IsrChange) -> Result<(), Refusal> {
    let refuse = |error, why: String| Err(Refusal::new(error, why));
    if c.leader_epoch > p.leader_epoch || c.partition_epoch > p.partition_epoch {
        return refuse(
            ResponseError::NotController,
            format!(
                "epochs newer than this controller's ({:?}, {:?})",
                p.leader_epoch, p.partition_epoch
            ),
        );
    }
    if c.leader_epoch < p.leader_epoch {
        return refuse(
            ResponseError::FencedLeaderEpoch,
            format!("leader epoch {} is not the current {}", c.leader_epoch.0, p.leader_epoch.0),
        );
    }
    if p.leader != Some(c.leader) {
        return refuse(
            ResponseError::InvalidRequest,
            format!("broker {} is not the leader", c.leader),
        );
    }
    if c.partition_epoch < p.partition_epoch {
        return refuse(
            ResponseError::InvalidUpdateVersion,
            format!(
                "partition epoch {} is not the current {}",
                c.partition_epoch.0, p.partition_epoch.0
            ),
        );
    }
    let distinct = c.isr.iter().enumerate().all(|(i, b)| !c.isr[..i].contains(b));
    if !distinct || c.isr.iter().any(|b| !p.replicas.contains(b)) {
        return refuse(
            ResponseError::InvalidRequest,
            format!("{:?} is not a set of replicas", c.isr),
        );
    }
    if !c.isr.contains(&c.leader) {
        return refuse(ResponseError::InvalidRequest, "the ISR must hold its leader".into());
    }
    if let Some(b) = c.isr.iter().find(|b| !image.is_live(**b)) {
        return refuse(ResponseError::IneligibleReplica, format!("broker {b} is not live"));
    }
    Ok(())
}
