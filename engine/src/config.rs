//! Per-partition configuration, named after Kafka's topic configs.

use crate::limits::{
    CACHE_BYTES_PER_PARTITION, FREE_SPACE_MARGIN_BYTES, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN,
};

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Group commit: acknowledged after the shard's next fdatasync that covers
    /// the append. Survives kill -9 and power loss.
    Fsync,
    /// Acknowledged once the write has reached the disk's volatile cache
    /// (survives kill -9, like Kafka's page-cache acknowledgment); fdatasync
    /// runs every `ms` milliseconds, driven by the shard's timer.
    Interval { ms: u64 },
}

/// Kafka topic configs that the engine applies, with Kafka's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment when the active one would exceed this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment is older than this.
    pub segment_ms: i64,
    /// `retention.ms`: delete closed segments whose newest record is older; -1 keeps forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest closed segments while the log is larger; -1 keeps all.
    pub retention_bytes: i64,
    /// `max.message.bytes`: largest batch accepted. A batch must also fit in
    /// one segment, so the limit applied is the smaller of this and
    /// `segment.bytes` (Kafka refuses such a batch as too large too).
    pub max_message_bytes: usize,
    /// `index.interval.bytes`: bytes between two offset index entries.
    pub index_interval_bytes: u64,
    /// `cleanup.policy` contains `delete`: retention by time and size applies.
    pub cleanup_delete: bool,
    /// `cleanup.policy` contains `compact`: closed segments keep only the
    /// latest record per key (see `PartitionLog::compact`).
    pub cleanup_compact: bool,
    /// `delete.retention.ms`: how long a tombstone (null value) survives
    /// compaction, so that consumers catching up see the delete.
    pub delete_retention_ms: i64,
    /// `message.timestamp.before.max.ms`: how far before the broker's clock a
    /// record's timestamp may be (Kafka's default: no bound).
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far after it (Kafka 4.0's
    /// default: one hour, KIP-1030).
    pub timestamp_after_max_ms: i64,
    /// `message.timestamp.type=LogAppendTime`: the broker stamps each
    /// appended batch with its clock (Kafka's default is CreateTime: the
    /// producer's timestamps are kept).
    pub log_append_time: bool,
    /// Not a Kafka config: bytes of recent, acknowledged batches kept in memory
    /// for hot reads (unacknowledged batches are always kept). Tests set 0 to
    /// force every read through the file path.
    pub cache_bytes_max: usize,
    /// Not a Kafka config: free space this log's appends leave to others
    /// ([`FREE_SPACE_MARGIN_BYTES`]); the metadata log takes 0, since the
    /// margin is kept for it.
    pub keep_free_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            max_message_bytes: 1024 * 1024 + 12,
            index_interval_bytes: 4096,
            cache_bytes_max: CACHE_BYTES_PER_PARTITION,
            cleanup_delete: true,
            cleanup_compact: false,
            delete_retention_ms: 24 * 3600 * 1000,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3600 * 1000,
            log_append_time: false,
            keep_free_bytes: FREE_SPACE_MARGIN_BYTES,
        }
    }
}

impl LogConfig {
    /// The largest batch an append accepts.
    pub fn batch_bytes_max(&self) -> usize {
        self.max_message_bytes.min(self.segment_bytes as usize)
    }

    /// What this partition's produced batches are validated against, at
    /// `now_ms` on the broker's clock.
    pub fn validation_rules(&self, now_ms: crate::types::Timestamp) -> crate::validate::Rules {
        crate::validate::Rules {
            max_batch_bytes: self.batch_bytes_max(),
            now_ms,
            timestamp_before_max_ms: self.timestamp_before_max_ms,
            timestamp_after_max_ms: self.timestamp_after_max_ms,
            compacted: self.cleanup_compact,
            log_append_time: self.log_append_time,
        }
    }

    /// Checks the relations between values; the broker maps a failure to
    /// `INVALID_CONFIG`.
    pub fn validate(&self) -> Result<(), String> {
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return Err(format!(
                "segment.bytes must be between {SEGMENT_BYTES_MIN} and {SEGMENT_BYTES_MAX}, got {}",
                self.segment_bytes
            ));
        }
        if self.segment_ms < 1 {
            return Err("segment.ms must be at least 1".into());
        }
        if self.retention_ms < -1 || self.retention_bytes < -1 {
            return Err("retention.ms and retention.bytes must be -1 or positive".into());
        }
        if !(self.cleanup_delete || self.cleanup_compact) {
            return Err("cleanup.policy must contain delete or compact".into());
        }
        if self.delete_retention_ms < 0 {
            return Err("delete.retention.ms must not be negative".into());
        }
        if self.timestamp_before_max_ms < 0 || self.timestamp_after_max_ms < 0 {
            return Err("message.timestamp.before.max.ms and message.timestamp.after.max.ms must not be negative".into());
        }
        if self.index_interval_bytes == 0 {
            return Err("index.interval.bytes must be positive".into());
        }
        Ok(())
    }
}
