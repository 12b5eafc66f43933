//! The coordinator's writes of group metadata: the records of groups that
//! became stable or empty, so that a group's generation and members
//! survive a restart. Runs on the shard, through its partition manager;
//! committed offsets are written by the OffsetCommit handler instead (its
//! answer waits for them).

use std::collections::BTreeMap;

use engine::SystemClock;
use log::warn;

use super::records::{group_key, group_value, partition_for};
use super::{Coordinator, OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS};
use crate::metadata::MetadataImage;
use crate::partitions::Partitions;

impl Coordinator {
    /// Writes the records of groups changed since the last call, and waits
    /// until their partitions' ISRs hold them, all together within
    /// [`super::OFFSETS_COMMIT_TIMEOUT`]. Errors are logged: members then
    /// rejoin after a restart, as after a coordinator move. Records carry
    /// the leader epoch of their partition in `image`; a partition this
    /// shard no longer coordinates (unloaded) is skipped.
    pub async fn persist(&self, partitions: &Partitions, image: &MetadataImage) {
        // Per partition: the (key, value) of each record.
        type Records = Vec<(Vec<u8>, Vec<u8>)>;
        let mut by_partition: BTreeMap<i32, Records> = BTreeMap::new();
        for (group, record) in self.take_dirty() {
            let p = partition_for(&group, OFFSETS_TOPIC_PARTITIONS);
            by_partition.entry(p).or_default().push((group_key(&group), group_value(&record)));
        }
        let mut written = Vec::new();
        for (p, records) in by_partition {
            if !self.is_loaded(p) {
                continue;
            }
            let Some(log) = partitions.log(OFFSETS_TOPIC, p) else { continue };
            let kv: Vec<_> = records.iter().map(|(k, v)| (Some(&k[..]), Some(&v[..]))).collect();
            let batch = engine::batch::build(&kv, engine::Clock::now_ms(&SystemClock));
            let epoch = image.partition(OFFSETS_TOPIC, p).map_or(0, |m| m.leader_epoch.0);
            match log.append(bytes::BytesMut::from(&batch[..]), epoch).await {
                Ok(info) => written.push((p, log, info.end_offset, epoch)),
                Err(e) => warn!("writing group metadata to {OFFSETS_TOPIC}-{p}: {e}"),
            }
        }
        let waits = written.iter().map(|(p, log, end, epoch)| async move {
            if let Err(code) = super::wait_committed(log, *end, *epoch).await {
                warn!("group metadata in {OFFSETS_TOPIC}-{p} not committed: error {code}");
            }
        });
        futures_util::future::join_all(waits).await;
    }
}
