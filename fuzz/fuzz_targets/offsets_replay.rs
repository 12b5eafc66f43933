//! `__consumer_offsets` records (shard/src/groups/records.rs): the input is
//! a sequence of records, each a 2-byte big-endian key length, the key, a
//! 2-byte value length (0xffff: a null value, a tombstone) and the value
//! (lengths are clamped to what is left). Each is decoded with
//! `records::decode` and, for committed offsets, applied to a
//! `Coordinator` with `Coordinator::apply` at its record offset, as
//! `Coordinator::load` replays a partition; then the coordinator's views
//! are taken as the handlers take them.
//!
//! Group metadata records are decoded but cannot be applied from here:
//! `Coordinator::apply_group` is private and `Coordinator::load` takes a
//! `PartitionLog<DmaDisk>` only (see fuzz/README.md).
//!
//! Checks beyond "no panic": a decoded record encodes back (with the
//! encoders the coordinator writes with) to the same record, and every
//! committed offset read back is the last one applied for its partition.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use shard::groups::records::{
    decode, group_key, group_value, offset_key, offset_value, Committed, OffsetsRecord,
};
use shard::groups::Coordinator;

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    fn len(&mut self) -> Option<usize> {
        match self.take(2) {
            [a, b] => Some(u16::from_be_bytes([*a, *b]) as usize),
            _ => None,
        }
    }
}

/// The record as the coordinator would write it.
fn encode(r: &OffsetsRecord) -> (Vec<u8>, Option<Vec<u8>>) {
    match r {
        OffsetsRecord::Offset { group, topic, partition, value } => {
            (offset_key(group, topic, *partition), value.as_ref().map(offset_value))
        }
        OffsetsRecord::Group { group, value } => {
            (group_key(group), value.as_ref().map(group_value))
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let coordinator = Coordinator::default();
    let mut model: HashMap<(String, String, i32), Option<Committed>> = HashMap::new();
    let mut groups = Vec::new();
    let mut offset = 0i64;
    while let Some(key_len) = input.len() {
        let key = input.take(key_len);
        let value = match input.len() {
            Some(0xffff) | None => None,
            Some(n) => Some(input.take(n)),
        };
        offset += 1;
        let record = match decode(key, value) {
            Ok(r) => r,
            Err(e) => {
                let _ = e.len();
                continue;
            }
        };
        let (k, v) = encode(&record);
        let again = decode(&k, v.as_deref())
            .unwrap_or_else(|e| panic!("{record:?} does not decode from its encoding: {e}"));
        assert_eq!(again, record, "a record changed through encode and decode");
        match record {
            OffsetsRecord::Offset { group, topic, partition, value } => {
                model.insert((group.clone(), topic.clone(), partition), value.clone());
                coordinator.apply(&group, (topic, partition), value, offset);
                groups.push(group);
            }
            OffsetsRecord::Group { group, .. } => groups.push(group),
        }
    }
    for ((group, topic, partition), value) in &model {
        assert_eq!(
            &coordinator.committed(group, topic, *partition),
            value,
            "{group} {topic}-{partition}"
        );
    }
    for g in &groups {
        let _ = shard::groups::check_group_id(g);
        let _ = coordinator.all_committed(g);
        let _ = coordinator.describe(g).map(|v| v.members.len());
        let _ = coordinator.check_delete(g);
        let _ = coordinator.subscribed_topics(g);
    }
    let _ = (coordinator.list(), coordinator.metrics_view().len(), coordinator.take_dirty());
    coordinator.tick();
});
