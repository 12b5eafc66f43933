//! The leader epochs of a [`PartitionLog`]: what OffsetForLeaderEpoch
//! answers, and the checkpoint ([`crate::epochs`]) that keeps them.
//!
//! On the log's shard, like the rest of the log. The cache itself is in the
//! log's state; appends fold into it, truncation and retention trim it,
//! `open` rebuilds it.

use super::PartitionLog;
use crate::disk::Disk;
use crate::epochs::{EpochEntry, CHECKPOINT_FILE};
use crate::error::{IoContext, LogError};
use crate::types::{LeaderEpoch, Offset};

impl<D: Disk> PartitionLog<D> {
    /// OffsetForLeaderEpoch: the largest epoch at most `epoch` this log
    /// holds batches of, and the offset where the next epoch starts (the
    /// log end for the latest). `(-1, -1)` when it knows no such epoch.
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> (LeaderEpoch, Offset) {
        let st = self.inner.state.borrow();
        st.epochs.end_offset_for(epoch, st.log_end)
    }

    /// Where `epoch` starts in the log, if it has an entry.
    pub fn epoch_start(&self, epoch: LeaderEpoch) -> Option<Offset> {
        let st = self.inner.state.borrow();
        st.epochs.entries().iter().find(|e| e.epoch == epoch).map(|e| e.start_offset)
    }

    /// The newest leader epoch in the log, and where it starts.
    pub fn latest_epoch(&self) -> Option<EpochEntry> {
        self.inner.state.borrow().epochs.latest()
    }

    /// The epoch of the batch holding `offset` (the latest for the log end).
    pub fn epoch_of(&self, offset: Offset) -> Option<LeaderEpoch> {
        self.inner.state.borrow().epochs.epoch_of(offset)
    }

    /// Every epoch in the log and where it starts, oldest first.
    pub fn epochs(&self) -> Vec<EpochEntry> {
        self.inner.state.borrow().epochs.entries().to_vec()
    }

    /// Writes the checkpoint as of the log end, unsynced (a crash may
    /// leave the old one, which `open` completes from the batches).
    pub(super) async fn write_epoch_checkpoint(&self) -> Result<(), LogError> {
        let bytes = {
            let st = self.inner.state.borrow();
            st.epochs.encode(st.log_end)
        };
        let path = self.inner.dir.join(CHECKPOINT_FILE);
        self.inner
            .disk
            .replace_file(&path, &bytes)
            .await
            .ctx(|| format!("writing {}", path.display()))
    }
}
