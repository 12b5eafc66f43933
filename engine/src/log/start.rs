//! The log start offset moved by DeleteRecords (and by a follower after
//! its leader's): a logical start inside the first segment, kept in the
//! `log-start-offset` checkpoint ([`OffsetCheckpoint`]) until retention
//! deletes the segments below it.
//!
//! On the log's shard. Moving the start is durable before it returns (the
//! checkpoint is fdatasynced through a temporary name and a directory
//! sync, all on the ring): a record a client was told is deleted never
//! comes back after a crash. It never moves back, and never past the high
//! watermark.

use super::{read_optional, PartitionLog};
use crate::disk::{write_file_atomic, Disk};
use crate::error::{IoContext, LogError};
use crate::log::OffsetCheckpoint;
use crate::types::Offset;

/// The log start checkpoint's file, in the partition's directory.
pub const LOG_START_FILE: &str = "log-start-offset";

impl<D: Disk> PartitionLog<D> {
    /// Moves the log start offset up to `offset` (no lower than it is):
    /// reads below it are out of range, ListOffsets EARLIEST answers it,
    /// and the segments wholly below it are deleted. `offset` may not pass
    /// the high watermark. Durable when it returns; returns the new start.
    pub async fn advance_log_start(&self, offset: Offset) -> Result<Offset, LogError> {
        self.check_log_start(offset)?;
        if offset <= self.first_segment_base() {
            return Ok(self.log_start_offset()); // durable as the segments are
        }
        // Otherwise on, even when another call already moved the start past
        // `offset`: its checkpoint may not be written yet, and this call's
        // answer must not come before it is.
        self.delete_segments_before(offset).await?;
        // Where the segments left start at or past it, their deletion made
        // it durable (a follower following its leader's retention stops
        // here); otherwise the checkpoint keeps it. Under the lock, the
        // value written is the highest asked so far, so a slower call never
        // writes a lower one; the start moves (and a follower's fetches
        // report it) only once it is durable.
        let _maintenance = self.inner.maintenance_lock.lock().await;
        self.check_log_start(offset)?;
        let start = self.inner.log_start.get().max(offset);
        if self.first_segment_base() < start {
            let path = self.inner.dir.join(LOG_START_FILE);
            write_file_atomic(self.inner.disk.as_ref(), &path, &OffsetCheckpoint(start).encode())
                .await
                .ctx(|| format!("writing {}", path.display()))?;
        }
        self.inner.log_start.set(start);
        self.inner.state.borrow_mut().epochs.truncate_from_start(start);
        Ok(self.log_start_offset())
    }

    /// The log start may move to `offset`: not below 0 nor past the high
    /// watermark.
    fn check_log_start(&self, offset: Offset) -> Result<(), LogError> {
        let hw = self.high_watermark();
        if offset > hw || offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset(),
                log_end: hw,
            });
        }
        Ok(())
    }

    /// Reads the log start checkpoint at open, if there is a sound one;
    /// a start past the log end (a crash took data back) is the log end.
    pub(super) async fn load_log_start(&self) -> Result<(), LogError> {
        let path = self.inner.dir.join(LOG_START_FILE);
        let bytes = read_optional(&self.inner.disk, &path).await?;
        if let Some(OffsetCheckpoint(start)) = bytes.as_deref().and_then(OffsetCheckpoint::decode) {
            self.inner.log_start.set(start.min(self.log_end_offset()));
            let start = self.log_start_offset();
            self.inner.state.borrow_mut().epochs.truncate_from_start(start);
        }
        Ok(())
    }
}
