//! Leader elections an operator asks for (ElectLeaders, KIP-460): a
//! preferred election gives a partition back to its preferred replica
//! (its first) when that replica is live and in the ISR; an unclean one
//! gives a partition without a leader to a live replica, from the ISR if
//! one is live, else from outside it: the operator's explicit choice to
//! take whatever that replica holds over waiting for the ISR (Kafka's
//! `unclean.leader.election.enable` for one request; automatic only on a
//! topic that sets it: `nodes.rs`).
//!
//! Pure, like the rest of the machine: one `partition` record per
//! election, with the next leader and partition epochs.

use std::collections::BTreeMap;

use net::kafka_protocol::error::ResponseError;

use crate::error::Refusal;
use crate::metadata::{MetadataImage, MetadataRecord, PartitionMeta};

/// The records the elections of `partitions` make, and each one's outcome,
/// in order (a partition named twice sees its first election).
pub fn elect(
    image: &MetadataImage,
    unclean: bool,
    partitions: &[(String, i32)],
) -> (Vec<MetadataRecord>, Vec<Result<(), Refusal>>) {
    let mut changed: BTreeMap<(String, i32), PartitionMeta> = BTreeMap::new();
    let mut records = Vec::new();
    let mut outcomes = Vec::with_capacity(partitions.len());
    for (topic, index) in partitions {
        let key = (topic.clone(), *index);
        let current = changed.get(&key).or_else(|| image.partition(topic, *index)).cloned();
        let outcome = match current {
            None => Err(Refusal::new(
                ResponseError::UnknownTopicOrPartition,
                format!("{topic}-{index} does not exist"),
            )),
            Some(p) => {
                let chosen = if unclean { unclean_choice(image, &p) } else { preferred(image, &p) };
                chosen.map(|(leader, isr)| {
                    let next = PartitionMeta {
                        replicas: p.replicas.clone(),
                        isr,
                        leader: Some(leader),
                        leader_epoch: p.leader_epoch.next(),
                        partition_epoch: p.partition_epoch.next(),
                    };
                    records.push(MetadataRecord::Partition {
                        topic: topic.clone(),
                        partition: *index,
                        state: next.clone(),
                    });
                    changed.insert(key, next);
                })
            }
        };
        outcomes.push(outcome);
    }
    (records, outcomes)
}

type Choice = Result<(crate::ids::BrokerId, Vec<crate::ids::BrokerId>), Refusal>;

/// The preferred replica, with the ISR as it is.
fn preferred(image: &MetadataImage, p: &PartitionMeta) -> Choice {
    let Some(&first) = p.replicas.first() else {
        return Err(Refusal::new(ResponseError::PreferredLeaderNotAvailable, "no replicas"));
    };
    if p.leader == Some(first) {
        return Err(Refusal::new(
            ResponseError::ElectionNotNeeded,
            format!("broker {first}, the preferred replica, leads already"),
        ));
    }
    if !image.is_live(first) || !p.isr.contains(&first) {
        return Err(Refusal::new(
            ResponseError::PreferredLeaderNotAvailable,
            format!("broker {first}, the preferred replica, is not live and in the ISR"),
        ));
    }
    Ok((first, p.isr.clone()))
}

/// For a partition without a leader: a live ISR member with the ISR as it
/// is, else the first live replica alone in the ISR.
fn unclean_choice(image: &MetadataImage, p: &PartitionMeta) -> Choice {
    if let Some(leader) = p.leader {
        return Err(Refusal::new(
            ResponseError::ElectionNotNeeded,
            format!("broker {leader} leads the partition"),
        ));
    }
    if let Some(&b) = p.isr.iter().find(|&&b| image.is_live(b)) {
        return Ok((b, p.isr.clone()));
    }
    match p.replicas.iter().find(|&&b| image.is_live(b)) {
        Some(&b) => Ok((b, vec![b])),
        None => Err(Refusal::new(
            ResponseError::EligibleLeadersNotAvailable,
            format!("none of the replicas {:?} is live", p.replicas),
        )),
    }
}
