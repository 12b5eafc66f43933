//! Loading a `__consumer_offsets` partition the shard now leads: its
//! records replayed into the coordinator's groups, committed offsets and
//! group metadata, and transactions' offsets held until their markers
//! ([`super::txn_offsets`]).
//!
//! On the shard, when a new image makes it the partition's leader.

use engine::disk::DmaDisk;
use engine::{LogError, PartitionLog};
use log::info;

use super::records::{self, GroupRecord, OffsetsRecord};
use super::{txn_offsets, Coordinator, Group, GroupState, OFFSETS_TOPIC};

impl Coordinator {
    /// Replays one `__consumer_offsets` partition into memory.
    pub async fn load(&self, partition: i32, log: &PartitionLog<DmaDisk>) -> Result<(), String> {
        let mut count = 0usize;
        log.replay(log.log_start_offset(), |header, batch| {
            // A transaction's marker: its offsets apply or go.
            if header.is_control() {
                if let Some(m) = engine::txn::parse_marker(header, batch) {
                    self.end_txn_offsets(partition, header.producer_id, m.commit);
                }
                return Ok(());
            }
            let invalid =
                |e: String| LogError::Invalid(format!("{OFFSETS_TOPIC}-{partition}: {e}"));
            let mut held = Vec::new();
            for r in engine::batch::parse_records(batch).map_err(|e| invalid(e.to_string()))? {
                let key = r.key.ok_or_else(|| invalid("record without a key".into()))?;
                // Offsets of records, not positions: compaction leaves gaps.
                let record_offset = header.base_offset.saturating_add(r.offset_delta);
                match records::decode(key, r.value).map_err(invalid)? {
                    OffsetsRecord::Offset { group, topic, partition: p, value: Some(value) }
                        if header.is_transactional() =>
                    {
                        held.push(txn_offsets::PendingOffset {
                            group,
                            tp: (topic, p),
                            value,
                            record_offset,
                        });
                    }
                    OffsetsRecord::Offset { group, topic, partition: p, value } => {
                        self.apply(&group, (topic, p), value, record_offset);
                    }
                    OffsetsRecord::Group { group, value } => self.apply_group(&group, value),
                }
                count += 1;
            }
            if !held.is_empty() {
                self.hold_txn_offsets(partition, header.producer_id, held);
            }
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())?;
        self.loaded.borrow_mut().insert(partition);
        if count > 0 {
            info!("{OFFSETS_TOPIC}-{partition}: loaded {count} records");
        }
        Ok(())
    }

    /// Applies a stored group metadata record (or tombstone) while loading.
    fn apply_group(&self, group: &str, value: Option<GroupRecord>) {
        let mut groups = self.groups.borrow_mut();
        match value {
            Some(r) => {
                groups.entry(group.to_string()).or_insert_with(|| Group::new(group)).restore(r)
            }
            None => {
                if let Some(g) = groups.get_mut(group) {
                    g.members.clear();
                    g.state = GroupState::Empty;
                }
            }
        }
    }
}
