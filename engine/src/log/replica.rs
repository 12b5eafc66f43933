//! A replicated [`PartitionLog`]: its high watermark, moved from outside,
//! and the follower's append path, which keeps the leader's offsets and
//! leader epochs instead of assigning its own.
//!
//! On the log's shard, like the rest of the log. The replication protocol
//! (who is in the ISR, what the leader's high watermark is) lives above
//! the engine; this module only keeps the log's side of it consistent:
//! the high watermark never passes the local durable end (`acked_end`),
//! never moves back but for a truncation, and a follower's batches arrive
//! in offset order, at or past its log end.

use bytes::BytesMut;

use super::PartitionLog;
use crate::batch::{validate_one, BatchError, BatchHeader};
use crate::disk::Disk;
use crate::error::{AppendError, IoContext, LogError};
use crate::log::AppendInfo;
use crate::types::{LeaderEpoch, Offset};

/// The high watermark checkpoint's file, in the partition's directory.
pub const HIGH_WATERMARK_FILE: &str = "high-watermark";

/// The checkpoint files of one offset (`high-watermark`, and
/// `log-start-offset` of [`super::start`]): the offset, an `i64`, then a
/// CRC-32 (IEEE) of those 8 bytes, all big-endian. A torn or damaged file
/// is ignored (the offset falls back to what it is without one: the log
/// start for the high watermark, the first segment's base for the log
/// start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetCheckpoint(pub Offset);

impl OffsetCheckpoint {
    pub fn encode(&self) -> [u8; 12] {
        let mut out = [0u8; 12];
        out[..8].copy_from_slice(&self.0.to_be_bytes());
        let crc = crc32fast::hash(&out[..8]);
        out[8..].copy_from_slice(&crc.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<OffsetCheckpoint> {
        let bytes: &[u8; 12] = bytes.try_into().ok()?;
        let crc = u32::from_be_bytes(bytes[8..].try_into().ok()?);
        let offset = i64::from_be_bytes(bytes[..8].try_into().ok()?);
        (crc32fast::hash(&bytes[..8]) == crc && offset >= 0).then_some(OffsetCheckpoint(offset))
    }
}

/// Who may append to a log: replication's fence. Roles change while an
/// append awaits (room in the tail, the append lock); the append checks
/// its role again where it assigns offsets, after the last await, so a
/// deposed leader's producer append never lands in what is now a
/// follower's log, and a follower's fetched batches never land in what
/// is now a leader's, nor those of a leader it no longer follows (Kafka
/// guards the same window with the partition's leader-and-ISR lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// Unreplicated logs (the metadata and Raft logs, tests): no fence.
    Anyone,
    /// Appends of the leader at this epoch ([`PartitionLog::append`]).
    Leader(LeaderEpoch),
    /// The batches of the leader at this epoch
    /// ([`PartitionLog::append_replicated`]), and the truncations its
    /// answers ask for ([`PartitionLog::truncate_to`]).
    Follower(LeaderEpoch),
}

impl<D: Disk> PartitionLog<D> {
    /// Sets who may append from now on ([`Writer`]). A new leader epoch
    /// starts at the log end at once, before any batch of it (Kafka's
    /// `makeLeader`): a follower may hold batches of an epoch between this
    /// log's latest and the new one (successive elections, this replica
    /// having missed the leader between), and only an entry for the new
    /// epoch tells it where that epoch ends here: where this log ends.
    /// Waiters of [`Self::wait_replicated`] learn of a change at once.
    pub fn set_writer(&self, writer: Writer) {
        if let Writer::Leader(epoch) = writer {
            let mut st = self.inner.state.borrow_mut();
            let end = st.log_end;
            st.epochs.assign(epoch, end);
        }
        if self.inner.writer.replace(writer) != writer {
            self.inner.acked.notify();
        }
    }

    /// Whether an append as `writer` may go in now.
    pub(super) fn check_writer(&self, writer: Writer) -> Result<(), AppendError> {
        match self.inner.writer.get() {
            Writer::Anyone => Ok(()),
            now if now == writer => Ok(()),
            now => Err(AppendError::Fenced(format!(
                "appending as {writer:?}, the log's writer is {now:?}"
            ))),
        }
    }

    /// Writes the high watermark of a replicated log to its checkpoint if
    /// it moved since the last one (Kafka's
    /// `replication-offset-checkpoint`, per partition here): after a
    /// restart the log's high watermark starts there instead of at the
    /// log start, so that ListOffsets LATEST does not fall back until
    /// every ISR member has fetched. Not synced: a checkpoint lost in a
    /// crash leaves an older one, which is only lower. Returns whether it
    /// wrote.
    pub async fn checkpoint_high_watermark(&self) -> Result<bool, LogError> {
        let hw = self.high_watermark();
        if !self.inner.replicated.get() || hw == self.inner.checkpointed_hw.get() {
            return Ok(false);
        }
        let path = self.inner.dir.join(HIGH_WATERMARK_FILE);
        let bytes = OffsetCheckpoint(hw).encode();
        self.inner
            .disk
            .replace_file(&path, &bytes)
            .await
            .ctx(|| format!("writing {}", path.display()))?;
        self.inner.checkpointed_hw.set(hw);
        Ok(true)
    }

    /// Reads the high watermark checkpoint, if there is a sound one.
    pub(super) async fn load_high_watermark(&self) -> Result<(), LogError> {
        let path = self.inner.dir.join(HIGH_WATERMARK_FILE);
        let bytes = super::read_optional(&self.inner.disk, &path).await?;
        if let Some(OffsetCheckpoint(hw)) = bytes.as_deref().and_then(OffsetCheckpoint::decode) {
            self.inner.checkpointed_hw.set(hw);
        }
        Ok(())
    }

    /// What consumers may read: offsets below it.
    pub fn high_watermark(&self) -> Offset {
        self.inner.high_watermark.get()
    }

    /// A replicated log's high watermark moves only by
    /// [`Self::set_high_watermark`]: on becoming replicated it restarts
    /// from the log start (nothing this replica holds is known to be on the
    /// others until its leader or its ISR says so; a persisted high
    /// watermark is a later step). An unreplicated log's is its durable
    /// end, which it catches up with at once.
    pub fn set_replicated(&self, replicated: bool) {
        let inner = &self.inner;
        if replicated == inner.replicated.replace(replicated) {
            return;
        }
        // What the ISR was last known to hold, as far as this replica
        // holds it durably (a checkpoint from before a crash or a stop).
        let known = inner.checkpointed_hw.get().min(inner.acked_end.get());
        let hw =
            if replicated { known.max(self.log_start_offset()) } else { inner.acked_end.get() };
        inner.high_watermark.set(hw);
        inner.high_watermark_target.set(hw);
        inner.acked.notify();
    }

    /// Aims a replicated log's high watermark at `target` (what every other
    /// in-sync replica holds; `Offset::MAX` when no other is in the ISR):
    /// it moves at once up to the local durable end, the rest as the durable
    /// end catches up. The target may fall (a replica joined the ISR); the
    /// high watermark never moves back. Returns where it is.
    pub fn set_high_watermark(&self, target: Offset) -> Offset {
        let inner = &self.inner;
        inner.high_watermark_target.set(target);
        let hw = target.min(inner.acked_end.get());
        if hw > inner.high_watermark.get() {
            inner.high_watermark.set(hw);
            inner.state.borrow_mut().producers.forget_replicated(hw);
            inner.acked.notify();
        }
        inner.high_watermark.get()
    }

    /// Whether a truncation is under way: a leader elected meanwhile
    /// serves no follower until it ends, for the batches being cut would be
    /// counted as held ([`Self::truncate_to`]).
    pub fn is_truncating(&self) -> bool {
        self.inner.truncating.get()
    }

    /// Waits until the high watermark covers `end` while this log stays
    /// the leader's at `epoch`, the epoch `end` was appended at (an
    /// unreplicated log, [`Writer::Anyone`], has no leadership to lose):
    /// `Fenced` as soon as it is not, since a deposed replica's batches may
    /// be cut and others fetched at their offsets, so that a high
    /// watermark passing `end` then says nothing of them. Also ends as
    /// [`Self::wait_acked`] does: the log failed, or the offsets are gone.
    /// What acks=all produces and the coordinators' writes wait for.
    pub async fn wait_replicated(
        &self,
        end: Offset,
        epoch: LeaderEpoch,
    ) -> Result<(), AppendError> {
        let role = |now: Writer| match now {
            Writer::Anyone => Ok(()),
            Writer::Leader(e) if e == epoch => Ok(()),
            now => Err(AppendError::Fenced(format!(
                "appended as the leader at epoch {epoch}, the log's writer is {now:?}"
            ))),
        };
        self.wait_mark(end, |inner| inner.high_watermark.get(), role).await
    }

    /// Waits until the durable end moves past `offset` (a follower's long
    /// poll: followers fetch what the leader holds durably), or the log fails.
    pub async fn wait_acked_past(&self, offset: Offset) {
        loop {
            let notified = self.inner.acked.notified();
            if self.inner.acked_end.get() > offset || self.inner.state.borrow().failed.is_some() {
                return;
            }
            notified.await;
        }
    }

    /// Waits until the high watermark moves past `offset` (a consumer's
    /// long poll), or the log fails.
    pub async fn wait_high_watermark_past(&self, offset: Offset) {
        loop {
            let notified = self.inner.acked.notified();
            if self.inner.high_watermark.get() > offset
                || self.inner.state.borrow().failed.is_some()
            {
                return;
            }
            notified.await;
        }
    }

    /// A follower's append: batches fetched from the leader at epoch
    /// `following`, stored as they are (their offsets and leader epochs are the leader's), all or
    /// none. Each must be whole with a valid CRC; the first must start at
    /// or past the log end and each after the one before (gaps are the
    /// leader's compaction). Producers' state and leader epochs follow
    /// them, so that this replica can lead. Durable when
    /// [`Self::wait_acked`] for `end_offset` returns.
    pub async fn append_replicated(
        &self,
        batches: BytesMut,
        following: LeaderEpoch,
    ) -> Result<AppendInfo, AppendError> {
        let mut headers: Vec<BatchHeader> = Vec::new();
        let mut at = 0;
        while at < batches.len() {
            let h = validate_one(&batches[at..])?;
            if h.last_offset_delta < 0 {
                return Err(BatchError::Invalid("a negative lastOffsetDelta").into());
            }
            at += h.size;
            headers.push(h);
        }
        let (Some(first), Some(last)) = (headers.first(), headers.last()) else {
            return Err(BatchError::Invalid("no batches to replicate").into());
        };
        let (base_offset, end_offset) = (first.base_offset, last.last_offset() + 1);
        if headers.windows(2).any(|w| w[1].base_offset <= w[0].last_offset()) {
            return Err(BatchError::Invalid("replicated batches out of offset order").into());
        }
        let total = batches.len();
        self.inner.flush.wait_for_room(total).await;
        let _guard = self.inner.append_lock.lock().await;
        self.check_writable()?;
        let log_end = self.log_end_offset();
        if base_offset < log_end {
            return Err(BatchError::Invalid("replicated batches start before the log end").into());
        }
        // One segment spans at most 2^31 offsets from its base (a roll
        // starts the next at the log end): a larger gap is for the replica
        // manager to handle by starting the log anew at the leader's start.
        if end_offset - log_end > i64::from(i32::MAX) {
            return Err(BatchError::Invalid("replicated batches too far past the log end").into());
        }
        // The offsets the active segment must span, gaps included.
        self.prepare_space(total as u64, end_offset - log_end).await?;
        self.check_writable()?;
        self.check_writer(Writer::Follower(following))?;
        let mut st = self.inner.state.borrow_mut();
        self.place(&mut st, super::Batches::Owned(batches), &headers);
        Ok(AppendInfo {
            base_offset,
            last_offset: end_offset - 1,
            end_offset,
            log_append_time: crate::types::NO_TIMESTAMP,
        })
    }
}
