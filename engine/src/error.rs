//! The engine's typed errors. Each variant carries what the caller needs to
//! act, and maps to one Kafka error code in `net`.

use std::fmt;
use std::io;

use crate::batch::BatchError;
use crate::producers::SequenceError;
use crate::types::Offset;

/// Why the log refuses writes. Once set it stays: a write or fdatasync error
/// may have lost a page, so the log never retries silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageFailure {
    /// The disk is full (ENOSPC). Maps to `KAFKA_STORAGE_ERROR`.
    NoSpace,
    /// Any other I/O error on a write or fdatasync. Maps to `KAFKA_STORAGE_ERROR`.
    Io(String),
}

impl fmt::Display for StorageFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageFailure::NoSpace => write!(f, "no space left on device"),
            StorageFailure::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl StorageFailure {
    pub fn from_io(context: &str, e: &io::Error) -> StorageFailure {
        if e.raw_os_error() == Some(libc::ENOSPC) || e.kind() == io::ErrorKind::StorageFull {
            StorageFailure::NoSpace
        } else {
            StorageFailure::Io(format!("{context}: {e}"))
        }
    }
}

/// Errors of [`crate::PartitionLog::append`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendError {
    /// A batch failed validation; nothing of the request was appended.
    Batch(BatchError),
    /// The log accepts no more writes (see [`StorageFailure`]); reads still work.
    Storage(StorageFailure),
    /// The disk is full right now but nothing was lost: the request was refused
    /// before offsets were assigned, and a later append may succeed.
    NoSpace,
    /// The log was closed.
    Closed,
    /// An idempotent producer's batch is out of sequence or of an old
    /// epoch; nothing of the request was appended.
    Sequence(SequenceError),
    /// The append's role is not the log's now (see `log::replica::Writer`):
    /// this replica stopped leading, or started, while it waited.
    Fenced(String),
}

impl fmt::Display for AppendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppendError::Batch(e) => write!(f, "{e}"),
            AppendError::Storage(e) => write!(f, "partition is offline for writes: {e}"),
            AppendError::NoSpace => write!(f, "no space left on device; append refused"),
            AppendError::Closed => write!(f, "log is closed"),
            AppendError::Sequence(e) => write!(f, "{e}"),
            AppendError::Fenced(why) => write!(f, "not this replica's append any more: {why}"),
        }
    }
}

impl std::error::Error for AppendError {}

impl From<BatchError> for AppendError {
    fn from(e: BatchError) -> Self {
        AppendError::Batch(e)
    }
}

/// Errors of opening, reading, truncating and retention.
#[derive(Debug)]
pub enum LogError {
    /// The offset is outside `[log_start_offset, log_end_offset]`.
    OffsetOutOfRange { offset: Offset, log_start: Offset, log_end: Offset },
    /// Bytes read back from disk fail their CRC: never served.
    Corrupt { segment_base: Offset, position: u64, reason: String },
    /// The log failed earlier; the operation needs a healthy log.
    Storage(StorageFailure),
    /// An I/O error, with what was being done.
    Io { context: String, source: io::Error },
    /// Bad configuration or directory contents.
    Invalid(String),
    /// The log's role forbids it ([`crate::Writer`]).
    Fenced(String),
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::OffsetOutOfRange { offset, log_start, log_end } => {
                write!(f, "offset {offset} is out of range [{log_start}, {log_end}]")
            }
            LogError::Corrupt { segment_base, position, reason } => {
                write!(f, "corrupt data in segment {segment_base} at position {position}: {reason}")
            }
            LogError::Storage(e) => write!(f, "{e}"),
            LogError::Io { context, source } => write!(f, "{context}: {source}"),
            LogError::Invalid(why) => write!(f, "{why}"),
            LogError::Fenced(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Adds context to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, LogError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, LogError> {
        self.map_err(|source| LogError::Io { context: context(), source })
    }
}
