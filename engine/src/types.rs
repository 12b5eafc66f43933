//! Distinct types for distinct numbers: offsets, file positions, epochs, times.

/// A Kafka offset: the position of a record in a partition, starting at 0.
pub type Offset = i64;

/// A byte position inside one segment file.
pub type FilePosition = u64;

/// Kafka's `partitionLeaderEpoch`, stamped on every batch at append.
pub type LeaderEpoch = i32;

/// Milliseconds since the Unix epoch, as Kafka's record timestamps.
pub type Timestamp = i64;

/// `-1`: Kafka's "no timestamp".
pub const NO_TIMESTAMP: Timestamp = -1;
