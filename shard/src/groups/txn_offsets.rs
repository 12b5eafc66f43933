//! Offsets committed inside a transaction (TxnOffsetCommit, KIP-98): held
//! per producer and `__consumer_offsets` partition until the transaction's
//! marker reaches that partition, then applied (COMMIT) or dropped
//! (ABORT), so a group's offsets move together with the transaction's
//! output. While any is held for a group's partition, a consumer asking
//! for stable offsets (OffsetFetch `require_stable`, KIP-447) is told
//! `UNSTABLE_OFFSET_COMMIT` and asks again.
//!
//! Part of the shard's group [`Coordinator`]; shard-local, no I/O: the
//! handlers write the records (a transactional batch of the producer) and
//! the markers, and call in here once each is durable, as the load does
//! when it meets them in the log.

use net::kafka_protocol::error::ResponseError;

use super::records::Committed;
use super::Coordinator;

/// One offset of a transaction, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOffset {
    pub group: String,
    pub tp: (String, i32),
    pub value: Committed,
    /// The offset of its record in `__consumer_offsets`.
    pub record_offset: i64,
}

impl Coordinator {
    /// Whether a transaction's commit (TxnOffsetCommit v3+) naming
    /// `member_id` (empty: none), `generation` (-1: none) and
    /// `instance_id` may go ahead, as Kafka's coordinator decides it: the
    /// member and generation are checked when given, and a rebalance in
    /// progress does not refuse it (the transaction holds its offsets until
    /// it ends; a consumer of a later generation fences it then).
    pub fn check_txn_commit(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), i16> {
        let groups = self.groups.borrow();
        let g = groups.get(group);
        let static_member = instance_id.and_then(|i| g.and_then(|g| g.static_member(i)));
        if static_member.is_some_and(|m| m != member_id) {
            return Err(ResponseError::FencedInstanceId.code());
        }
        if !member_id.is_empty() && !g.is_some_and(|g| g.members.contains_key(member_id)) {
            return Err(ResponseError::UnknownMemberId.code());
        }
        if generation >= 0 && g.map(|g| g.generation) != Some(generation) {
            return Err(ResponseError::IllegalGeneration.code());
        }
        Ok(())
    }

    /// Holds a transaction's offsets (durable in `partition`) until its
    /// marker. A later commit of the same group and partition in the same
    /// transaction replaces an earlier one, so what is held is bounded by
    /// the partitions a transaction commits offsets for.
    pub fn hold_txn_offsets(&self, partition: i32, producer_id: i64, offsets: Vec<PendingOffset>) {
        let mut held = self.txn_offsets.borrow_mut();
        let list = held.entry((partition, producer_id)).or_default();
        for o in offsets {
            list.retain(|p| (&p.group, &p.tp) != (&o.group, &o.tp));
            list.push(o);
        }
    }

    /// The marker of `producer_id`'s transaction reached `partition`: its
    /// offsets are applied (`commit`) or dropped.
    pub fn end_txn_offsets(&self, partition: i32, producer_id: i64, commit: bool) {
        let Some(list) = self.txn_offsets.borrow_mut().remove(&(partition, producer_id)) else {
            return;
        };
        if commit {
            for o in list {
                self.apply(&o.group, o.tp, Some(o.value), o.record_offset);
            }
        }
    }

    /// Whether a transaction holds an offset of `group` for `tp`.
    pub fn has_unstable_offset(&self, group: &str, tp: &(String, i32)) -> bool {
        self.txn_offsets
            .borrow()
            .values()
            .any(|list| list.iter().any(|o| o.group == group && &o.tp == tp))
    }

    /// Forgets what is held for `partition` (its leadership moved: the
    /// next coordinator finds it again in the log).
    pub(super) fn drop_txn_offsets(&self, partition: i32) {
        self.txn_offsets.borrow_mut().retain(|(p, _), _| *p != partition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{LeaderEpoch, Offset};

    fn held(group: &str, offset: i64, record_offset: i64) -> PendingOffset {
        PendingOffset {
            group: group.into(),
            tp: ("t".into(), 0),
            value: Committed {
                offset: Offset(offset),
                leader_epoch: LeaderEpoch(-1),
                metadata: String::new(),
                commit_timestamp: 0,
            },
            record_offset,
        }
    }

    #[test]
    fn offsets_of_a_transaction_apply_at_commit_and_vanish_at_abort() {
        let c = Coordinator::default();
        let tp = ("t".to_string(), 0);
        c.hold_txn_offsets(3, 7, vec![held("g", 10, 100)]);
        c.hold_txn_offsets(3, 7, vec![held("g", 12, 101)]);
        c.hold_txn_offsets(3, 8, vec![held("h", 5, 102)]);
        assert!(c.has_unstable_offset("g", &tp));
        assert_eq!(c.committed("g", "t", 0), None, "not before the marker");
        c.end_txn_offsets(3, 7, true);
        assert!(!c.has_unstable_offset("g", &tp));
        assert_eq!(c.committed("g", "t", 0).map(|c| c.offset.0), Some(12), "the later one");
        c.end_txn_offsets(3, 8, false);
        assert_eq!(c.committed("h", "t", 0), None, "aborted");
        assert!(!c.has_unstable_offset("h", &tp));
        c.hold_txn_offsets(4, 9, vec![held("k", 1, 103)]);
        c.drop_txn_offsets(4);
        assert!(!c.has_unstable_offset("k", &tp));
    }
}
