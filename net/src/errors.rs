//! Engine errors as Kafka error codes: one engine variant, one code.

use engine::batch::BatchError;
use engine::producers::SequenceError;
use engine::{AppendError, LogError};
use kafka_protocol::error::ResponseError;

pub const NONE: i16 = 0;

/// The error code a produce to a partition gets for `e`.
pub fn append_error_code(e: &AppendError) -> i16 {
    match e {
        AppendError::Batch(BatchError::Corrupt(_)) => ResponseError::CorruptMessage.code(),
        AppendError::Batch(BatchError::Invalid(_) | BatchError::InvalidRecord { .. }) => {
            ResponseError::InvalidRecord.code()
        }
        AppendError::Batch(BatchError::InvalidTimestamp { .. }) => {
            ResponseError::InvalidTimestamp.code()
        }
        AppendError::Batch(BatchError::Decompress(_)) => ResponseError::CorruptMessage.code(),
        AppendError::Batch(BatchError::TooLarge { .. }) => ResponseError::MessageTooLarge.code(),
        AppendError::Storage(_) | AppendError::NoSpace => ResponseError::KafkaStorageError.code(),
        // A log closed under a request: the partition is moving or the broker stopping.
        AppendError::Closed | AppendError::Fenced(_) => ResponseError::NotLeaderOrFollower.code(),
        AppendError::Sequence(SequenceError::OutOfOrder { .. }) => {
            ResponseError::OutOfOrderSequenceNumber.code()
        }
        AppendError::Sequence(SequenceError::InvalidProducerEpoch { .. }) => {
            ResponseError::InvalidProducerEpoch.code()
        }
        AppendError::Sequence(SequenceError::InvalidTxnState { .. }) => {
            ResponseError::InvalidTxnState.code()
        }
        AppendError::Sequence(SequenceError::CoordinatorFenced { .. }) => {
            ResponseError::TransactionCoordinatorFenced.code()
        }
    }
}

/// The error code a fetch or list-offsets on a partition gets for `e`.
pub fn log_error_code(e: &LogError) -> i16 {
    match e {
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
        LogError::Corrupt { .. } | LogError::Storage(_) | LogError::Io { .. } => {
            ResponseError::KafkaStorageError.code()
        }
        LogError::Invalid(_) => ResponseError::UnknownServerError.code(),
        LogError::Fenced(_) => ResponseError::NotLeaderOrFollower.code(),
    }
}
