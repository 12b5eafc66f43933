//! The metadata log's records (shard/src/metadata/): each line of the
//! input is one record's value (JSON), decoded with
//! `MetadataRecord::decode` and folded into a `MetadataImage` with
//! `MetadataImage::apply`, as the controller replays the log at startup;
//! then the image is used as the shards use it: topic configs become
//! engine configs (`configs::log_config`), partitions are looked up.
//!
//! Checks beyond "no panic": a decoded record encodes back to the same
//! record (the controller writes `encode`, replay reads `decode`; a
//! legacy `shards` record comes back in today's form), the image's epoch
//! counts the records applied, and lookups agree with the partitions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shard::ids::NodeId;
use shard::metadata::{validate_topic_name, MetadataImage, MetadataRecord};

/// The node a legacy record's shards belong to.
const NODE: NodeId = NodeId(3);

fuzz_target!(|data: &[u8]| {
    let mut image = MetadataImage::default();
    let mut applied = 0;
    for line in data.split(|&b| b == b'\n') {
        let record = match MetadataRecord::decode(line, NODE) {
            Ok(r) => r,
            Err(e) => {
                let _ = e.len();
                continue;
            }
        };
        let again = MetadataRecord::decode(&record.encode(), NodeId(0))
            .unwrap_or_else(|e| panic!("{record:?} does not decode from its encoding: {e}"));
        assert_eq!(again, record, "a record changed through encode and decode");
        image = image.apply(&record);
        applied += 1;
    }
    assert_eq!(image.epoch, applied);
    for t in image.topics.values() {
        let _ = validate_topic_name(&t.name);
        if let Ok(config) = shard::configs::log_config(&t.configs) {
            assert!(config.validate().is_ok());
            let _ = config.validation_rules(0);
        }
        assert_eq!(image.topic_by_id(&t.id).map(|found| found.id), Some(t.id));
        let n = t.partitions.len();
        for p in [-1, 0, n as i32 - 1, n as i32, i32::MAX] {
            let partition = usize::try_from(p).ok().and_then(|p| t.partitions.get(p));
            assert_eq!(image.partition(&t.name, p), partition);
            assert_eq!(image.leader(&t.name, p), partition.and_then(|p| p.leader));
            if let Some(leader) = partition.and_then(|p| p.leader) {
                let _ = (image.is_live(leader), image.endpoint(leader));
            }
        }
    }
});
