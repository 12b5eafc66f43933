//! How the coordinators' writes to their internal partitions end: the
//! wait for the ISR (an offsets commit is an acks=all write) and the error
//! codes a failed write reaches group and transactional clients as.
//!
//! On the shard that leads the partition; no state of its own.

use engine::disk::DmaDisk;
use engine::PartitionLog;
use net::kafka_protocol::error::ResponseError;

/// How long a commit of offsets or group metadata waits for the ISR of its
/// `__consumer_offsets` partition (Kafka's `offsets.commit.timeout.ms`).
pub const OFFSETS_COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits until the ISR holds `log` up to `end`, appended as the leader at
/// `epoch` (an offsets commit is an acks=all write), within
/// [`OFFSETS_COMMIT_TIMEOUT`]: past it, or if the ISR cannot get it,
/// `COORDINATOR_NOT_AVAILABLE` (as Kafka maps them), so the client looks
/// for the coordinator again; `NOT_COORDINATOR` once this replica no longer
/// leads at `epoch` (what it appended may be cut).
pub async fn wait_committed(log: &PartitionLog<DmaDisk>, end: i64, epoch: i32) -> Result<(), i16> {
    let replicated = log.wait_replicated(end, epoch);
    match crate::admission::within(OFFSETS_COMMIT_TIMEOUT, replicated).await {
        Some(Ok(())) => Ok(()),
        Some(Err(engine::AppendError::Closed)) | None => {
            Err(ResponseError::CoordinatorNotAvailable.code())
        }
        Some(Err(e)) => Err(write_error_code(&e)),
    }
}

/// A write's failure as Kafka answers an offsets commit
/// (`maybeConvertOffsetCommitError`): codes clients retry by finding the
/// coordinator again, not abort on.
pub fn commit_error_code(c: i16) -> i16 {
    match ResponseError::try_from_code(c) {
        Some(ResponseError::NotLeaderOrFollower | ResponseError::KafkaStorageError) => {
            ResponseError::NotCoordinator.code()
        }
        Some(
            ResponseError::UnknownTopicOrPartition
            | ResponseError::NotEnoughReplicas
            | ResponseError::NotEnoughReplicasAfterAppend
            | ResponseError::RequestTimedOut,
        ) => ResponseError::CoordinatorNotAvailable.code(),
        Some(ResponseError::MessageTooLarge | ResponseError::RecordListTooLarge) => {
            ResponseError::InvalidCommitOffsetSize.code()
        }
        _ => c,
    }
}

/// What a client is told when the coordinator's write of group metadata
/// (or the wait for any of its writes) fails, as Kafka's
/// `appendGroupMetadataErrorToResponseError`: as a commit's, but for a
/// record too large, which no client caused. A client knows neither
/// NOT_LEADER_OR_FOLLOWER nor KAFKA_STORAGE_ERROR from a group API.
pub fn write_error_code(e: &engine::AppendError) -> i16 {
    let code = net::errors::append_error_code(e);
    match ResponseError::try_from_code(code) {
        Some(
            ResponseError::MessageTooLarge
            | ResponseError::RecordListTooLarge
            | ResponseError::InvalidFetchSize,
        ) => ResponseError::UnknownServerError.code(),
        _ => commit_error_code(code),
    }
}
