//! Transactions in a [`PartitionLog`]: appending the markers that end them,
//! the last stable offset, the aborted transactions a read_committed
//! reader needs, and rebuilding the segments' aborted-transactions indexes
//! after a replay.
//!
//! On the log's shard. Which transactions exist is the coordinator's
//! business (in the broker); the log only records what its batches say.

use super::*;
use crate::error::AppendError;
use crate::segment::{write_txn_index, TxnEntries};
use crate::txn::{build_marker, AbortedTxn, Marker};

impl<D: Disk> PartitionLog<D> {
    /// Appends the COMMIT or ABORT marker of `producer_id`'s transaction
    /// (WriteTxnMarkers) as the leader at `leader_epoch`. Refused when the
    /// producer's epoch is newer than `epoch` or its last marker came from
    /// a newer coordinator epoch. Acknowledged like any append.
    pub async fn append_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        marker: Marker,
        leader_epoch: LeaderEpoch,
    ) -> Result<AppendInfo, AppendError> {
        let mut batch = BytesMut::from(
            &build_marker(producer_id, epoch, marker, self.inner.clock.now_ms())[..],
        );
        let total = batch.len();
        self.inner.flush.wait_for_room(total).await;
        let _guard = self.inner.append_lock.lock().await;
        self.check_writable()?;
        self.prepare_space(total as u64, 1).await?;
        self.check_writable()?;
        self.check_writer(Writer::Leader(leader_epoch))?;
        let mut st = self.inner.state.borrow_mut();
        let st = &mut *st;
        st.producers.check_marker(producer_id, epoch, marker).map_err(AppendError::Sequence)?;
        let offset = st.log_end;
        stamp(&mut batch, offset, leader_epoch);
        let header = validate_one(&batch).expect("a marker built here is valid");
        self.place(st, Batches::Owned(batch), &[header]);
        Ok(AppendInfo {
            base_offset: offset,
            last_offset: offset,
            end_offset: offset + 1,
            log_append_time: NO_TIMESTAMP,
        })
    }

    /// The last stable offset: a read_committed reader reads below it. The
    /// high watermark, or the first offset of a transaction still open (or
    /// ended by a marker the high watermark has not passed) if lower.
    pub fn last_stable_offset(&self) -> Offset {
        let hw = self.high_watermark();
        let start = self.log_start_offset();
        let mut st = self.inner.state.borrow_mut();
        let first = st.producers.first_unstable(hw).map_or(hw, |first| first.min(hw));
        // A transaction whose start retention removed holds no earlier
        // than the log start (Kafka clamps the same way).
        first.max(start.min(hw))
    }

    /// The aborted transactions a read of `[from, upper)` overlaps (their
    /// marker at or after `from`, their first batch below `upper`), as
    /// Kafka's fetch collects them: segment by segment from the one holding
    /// `from`, stopping at the first entry whose last stable offset reaches
    /// `upper` (every transaction that could overlap ended before it).
    pub async fn aborted_transactions(
        &self,
        from: Offset,
        upper: Offset,
    ) -> Result<Vec<AbortedTxn>, LogError> {
        let segments: Vec<(Offset, TxnEntries)> = {
            let st = self.inner.state.borrow();
            let first = st.segments.range(..=from).next_back().map_or(from, |(&b, _)| b);
            st.segments
                .range(first..)
                .filter(|(_, s)| !s.aborted.is_empty())
                .map(|(&b, s)| (b, s.aborted.clone()))
                .collect()
        };
        let mut out = Vec::new();
        for (base, entries) in segments {
            let entries = match entries {
                TxnEntries::Memory(v) => v,
                TxnEntries::Stored(_) => self.read_txn_index(base).await?,
            };
            for e in entries {
                if e.last_offset >= from && e.first_offset < upper {
                    out.push(e);
                }
                if e.last_stable_offset >= upper {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// A segment's `.txnindex` entries (none if the file is gone: retention
    /// removed the segment meanwhile).
    pub(super) async fn read_txn_index(&self, base: Offset) -> Result<Vec<AbortedTxn>, LogError> {
        let path = segment_path(&self.inner.dir, base, TXN_INDEX_SUFFIX);
        let bytes = read_optional(&self.inner.disk, &path).await?.unwrap_or_default();
        AbortedTxn::decode_all(&bytes).ok_or_else(|| LogError::Corrupt {
            segment_base: base,
            position: 0,
            reason: format!("{} is not an aborted-transactions index", path.display()),
        })
    }

    /// After a replay from `from` found `replayed` (the aborted
    /// transactions of its markers): each segment reaching `from` keeps its
    /// entries below `from` and takes the replayed ones of its range. The
    /// active segment keeps them in memory; a closed one whose entries
    /// change gets its file rewritten, durably.
    pub(super) async fn rebuild_txn_indexes(
        &self,
        from: Offset,
        replayed: Vec<AbortedTxn>,
    ) -> Result<(), LogError> {
        let (segments, active): (Vec<(Offset, Offset, TxnEntries)>, Offset) = {
            let st = self.inner.state.borrow();
            let active = *st.segments.keys().next_back().expect("active segment");
            let list = st
                .segments
                .values()
                .filter(|s| s.next_offset > from || s.base_offset == active)
                .map(|s| (s.base_offset, s.next_offset, s.aborted.clone()))
                .collect();
            (list, active)
        };
        for (base, next, entries) in segments {
            let (current, in_memory) = match entries {
                TxnEntries::Memory(v) => (v, true),
                TxnEntries::Stored(0) => (Vec::new(), false),
                TxnEntries::Stored(_) => (self.read_txn_index(base).await?, false),
            };
            let end = if base == active { Offset::MAX } else { next };
            let mut kept: Vec<AbortedTxn> =
                current.iter().filter(|e| e.last_offset < from).copied().collect();
            kept.extend(replayed.iter().filter(|e| (base..end).contains(&e.last_offset)));
            let new = if base == active {
                TxnEntries::Memory(kept)
            } else if in_memory || kept != current {
                let bytes = AbortedTxn::encode_all(&kept);
                write_txn_index(self.inner.disk.as_ref(), &self.inner.dir, base, &bytes, true)
                    .await
                    .ctx(|| format!("writing the aborted-transactions index of segment {base}"))?;
                TxnEntries::Stored(kept.len())
            } else {
                continue;
            };
            if let Some(seg) = self.inner.state.borrow_mut().segments.get_mut(&base) {
                seg.aborted = new;
            }
        }
        Ok(())
    }
}
