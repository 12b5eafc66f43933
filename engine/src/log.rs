//! [`PartitionLog`]: one partition's commit log, the engine's public face.
//!
//! Owned by exactly one shard; `!Send`, no locks on the data path (state is in
//! `RefCell`s that are never borrowed across an await). It owns the
//! partition's segments, its tail buffer, its cache of recent batches and its
//! offsets. It never writes data itself: appends are copied into the tail
//! buffer and handed to the shard's [`crate::Flusher`], which writes and syncs
//! them and then moves the acknowledged offset.
//!
//! Offsets the log tracks (all exclusive ends):
//! - `log_end_offset`: next offset to assign.
//! - `written_end`: everything below is written to the file.
//! - `acked_end`: everything below is acknowledged: fdatasynced under
//!   [`Flush::Fsync`], written under [`Flush::Interval`] (the local durable
//!   end). Reads never go past it, so no consumer sees a record that a
//!   crash could take back.
//! - `high_watermark`: what consumers may read. It is `acked_end` for a
//!   log of one replica; a replicated log's moves only when told (by its
//!   leader's view of the ISR, see `log/replica.rs`), never past
//!   `acked_end`.
//!
//! Directory layout (`<dir>` is `<topic>-<partition>`):
//! `<base:020>.log`, `.index`, `.timeindex` per segment (see [`crate::segment`]),
//! and `clean_shutdown`, an empty file written by [`PartitionLog::close`]
//! (or [`PartitionLog::mark_clean`] once the file system is synced) and
//! removed by `open`: when present, recovery trusts the files and skips the
//! full scan of the active segment. `<offset:020>.producers` is a snapshot of
//! the idempotent producers' state ([`crate::producers`]) as of that offset,
//! written by `close`; `open` loads the newest undamaged one at or below the
//! log end and replays the batches after it. `leader-epoch-checkpoint`
//! holds where each leader epoch starts ([`crate::epochs`]), exact up to
//! the log end it was written at (by `close` and after a truncation);
//! `open` completes it from the batches after that, in the same replay.
//! `<base:020>.txnindex` lists the aborted transactions whose markers the
//! segment holds ([`crate::txn`]), written when the segment closes; `open`
//! trusts its entries below the offset its replay starts from and finds
//! the others again in the replay.
//!
//! This file holds the state and appending; the rest is beside it in
//! `log/`: `open.rs` (opening, recovery, replay), `read.rs` (reads,
//! timestamps), `trim.rs` (truncation, retention), `replica.rs` (high
//! watermark, follower appends), `txn.rs` (markers, the last stable
//! offset, aborted transactions), `epochs.rs`, `close.rs`, `compact.rs`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use futures_util::lock::Mutex;

use crate::batch::{stamp, validate_one, BatchError, BatchHeader, HEADER_BYTES, STAMPED_BYTES};
use crate::clock::Clock;
use crate::config::{Flush, LogConfig};
use crate::disk::{Disk, DiskFile};
use crate::epochs::{LeaderEpochCache, CHECKPOINT_FILE};
use crate::error::{AppendError, IoContext, LogError, StorageFailure};
use crate::flush::{FlushShared, Flusher};
use crate::limits::{BLOCK_BYTES, LOOKUP_READ_BYTES};
use crate::producers::{Check, ProducerCheck, ProducerStates};
use crate::recovery::scan;
use crate::segment::{
    parse_log_name, segment_path, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
};
use crate::sync::Notify;
use crate::tail::{SealedChunk, Tail};
use crate::txn::{parse_marker, TXN_INDEX_SUFFIX};
use crate::types::{LeaderEpoch, Offset, Timestamp, NO_TIMESTAMP};
use crate::validate::{check_for_append, validate_for_append};

mod close;
mod compact;
mod epochs;
mod flushing;
mod open;
mod read;
mod replica;
mod space;
mod start;
mod trim;
mod txn;
pub use compact::{
    CompactionReport, Pacer, RatePacer, Unpaced, COMPACTION_KEYS_MAX, COMPACTION_YIELD_BYTES,
};
pub use replica::{OffsetCheckpoint, Writer, HIGH_WATERMARK_FILE};
pub use start::LOG_START_FILE;

const CLEAN_SHUTDOWN_FILE: &str = "clean_shutdown";
const PRODUCERS_SUFFIX: &str = "producers";

/// What an accepted append was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: Offset,
    pub last_offset: Offset,
    /// Wait for `acked_end >= end_offset` to know it is acknowledged.
    pub end_offset: Offset,
    /// The time the broker stamped the batches with under LogAppendTime
    /// (the produce response's `log_append_time_ms`); -1 otherwise.
    pub log_append_time: Timestamp,
}

/// A piece of a read: cache bytes, or a range of a segment file that the
/// network layer can splice to a socket.
pub enum ReadChunk<D: Disk> {
    Memory(Bytes),
    File { file: Rc<D::File>, path: PathBuf, segment_base: Offset, position: u64, len: u64 },
}

impl<D: Disk> ReadChunk<D> {
    pub fn len(&self) -> usize {
        match self {
            ReadChunk::Memory(b) => b.len(),
            ReadChunk::File { len, .. } => *len as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whole batches starting with the one that holds the requested offset.
pub struct ReadResult<D: Disk> {
    pub chunks: Vec<ReadChunk<D>>,
    pub bytes: usize,
    /// Every batch read ends below this offset, and no batch at or past it
    /// was read: the offset after the last batch, or a little past it (a
    /// file range's end is known by position; the next index entry names
    /// an offset at or after it). The requested offset when nothing was
    /// read. Bounds the aborted transactions a fetch reports.
    pub upper_bound: Offset,
}

impl<D: Disk> ReadResult<D> {
    fn empty(offset: Offset) -> Self {
        ReadResult { chunks: Vec::new(), bytes: 0, upper_bound: offset }
    }
}

/// What `open` found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub clean_shutdown: bool,
    pub segments: usize,
    pub scanned_bytes: u64,
    pub truncated_bytes: u64,
    pub removed_segments: usize,
    pub rebuilt_indexes: usize,
    /// `.txnindex` files found damaged (rebuilt by a replay of the log).
    pub damaged_txn_indexes: usize,
    pub notes: Vec<String>,
}

/// A batch held in memory: recently appended, or not yet written.
struct CachedBatch {
    base_offset: Offset,
    last_offset: Offset,
    max_timestamp: Timestamp,
    leader_epoch: LeaderEpoch,
    segment_base: Offset,
    position: u64,
    /// The batch; as received (its `baseOffset` and
    /// `partitionLeaderEpoch` not yet written) until `stamped`, which its
    /// first read makes it (see [`Batches::Received`]).
    bytes: Bytes,
    stamped: bool,
}

/// The batches of one append, for one partition.
pub enum Batches {
    /// Bytes the log may change: offsets are stamped into them, and they
    /// become the cache's copy.
    Owned(BytesMut),
    /// Bytes as received, a slice of the request, left unchanged: the
    /// tail's copy is stamped as it is made and the cache's on its first
    /// read, which spares the produce path a copy of every byte. The slice
    /// keeps the request's buffer alive while cached, so the caller passes
    /// only batches that are most of their request. Batches whose
    /// timestamps validation rewrites, or a LogAppendTime topic's, are
    /// copied first.
    Received(Bytes),
}

impl From<BytesMut> for Batches {
    fn from(b: BytesMut) -> Batches {
        Batches::Owned(b)
    }
}

impl From<Bytes> for Batches {
    fn from(b: Bytes) -> Batches {
        Batches::Received(b)
    }
}

impl std::ops::Deref for Batches {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Batches::Owned(b) => b,
            Batches::Received(b) => b,
        }
    }
}

pub(crate) struct PendingWrite<D: Disk> {
    pub file: Rc<D::File>,
    pub chunk: SealedChunk<D::Buf>,
}

/// One flush round's share of a log: what to write, and the offset that is
/// written once these writes complete.
pub(crate) struct LogRound<D: Disk> {
    pub writes: Vec<PendingWrite<D>>,
    pub end_offset: Offset,
    pub data_bytes: usize,
    /// The active segment's file when the round was taken: the one file of
    /// the round that may get zeros ahead of its data.
    pub active: Rc<D::File>,
    /// Free space the log's appends leave (`LogConfig::keep_free_bytes`).
    pub keep_free: u64,
}

pub(crate) struct State<D: Disk> {
    segments: BTreeMap<Offset, Segment<D>>,
    tail: Tail<D::Buf>,
    cache: VecDeque<CachedBatch>,
    cache_bytes: usize,
    log_end: Offset,
    written_end: Offset,
    /// Sealed chunks not yet taken by the flusher.
    pending: Vec<PendingWrite<D>>,
    /// Bytes appended since the flusher last took a round.
    unwritten_bytes: usize,
    /// Files written since their last fdatasync.
    unsynced_files: Vec<Rc<D::File>>,
    /// Rolled segments still to be closed on disk, with the offset below
    /// which their data is handed to the flusher.
    to_close: Vec<(Offset, Offset)>,
    failed: Option<StorageFailure>,
    closed: bool,
    /// In the flusher's dirty list.
    pub registered: bool,
    /// A write group of this log is in flight.
    writing: bool,
    /// Idempotent producers' sequences, up to `log_end`.
    producers: ProducerStates,
    /// Where each leader epoch starts, up to `log_end`.
    epochs: LeaderEpochCache,
}

pub(crate) struct LogInner<D: Disk> {
    disk: Rc<D>,
    dir: PathBuf,
    config: RefCell<LogConfig>,
    clock: Rc<dyn Clock>,
    flush: Rc<FlushShared<D>>,
    pub(crate) state: RefCell<State<D>>,
    /// Serializes appends (offset assignment around a roll's awaits) and
    /// truncation.
    append_lock: Mutex<()>,
    /// Serializes on-disk changes to closed segments: closing, truncation,
    /// retention, shutdown.
    maintenance_lock: Mutex<()>,
    acked_end: Cell<Offset>,
    /// Notified when `acked_end` or `high_watermark` moves (or the log fails).
    acked: Notify,
    high_watermark: Cell<Offset>,
    /// Where a replicated log's high watermark is to go (what the ISR
    /// holds): it follows as `acked_end` catches up.
    high_watermark_target: Cell<Offset>,
    /// The high watermark is set from outside (`set_high_watermark`)
    /// rather than following `acked_end`.
    replicated: Cell<bool>,
    /// Who may append now (replication's fence, [`Writer`]).
    writer: Cell<Writer>,
    /// A truncation is under way ([`PartitionLog::is_truncating`]).
    truncating: Cell<bool>,
    /// The high watermark last written to (or read from) its checkpoint
    /// file ([`replica::OffsetCheckpoint`]); -1: none.
    checkpointed_hw: Cell<Offset>,
    /// A damaged `.txnindex` was found at open: the next load of the
    /// producers' state replays the whole log.
    txn_index_damaged: Cell<bool>,
    /// The log start DeleteRecords set (`log-start-offset`); the first
    /// segment's base counts when it is higher.
    log_start: Cell<Offset>,
    recovery: RecoveryReport,
    /// Compaction has covered the closed segments below this offset.
    compacted_to: Cell<Offset>,
    /// Reads served from the cache and from segment files.
    cache_reads: Cell<u64>,
    file_reads: Cell<u64>,
}

/// A partition's commit log. Cheap to clone (a reference count).
pub struct PartitionLog<D: Disk> {
    inner: Rc<LogInner<D>>,
}

impl<D: Disk> Clone for PartitionLog<D> {
    fn clone(&self) -> Self {
        PartitionLog { inner: self.inner.clone() }
    }
}

fn align_down(v: u64) -> u64 {
    v - v % BLOCK_BYTES as u64
}

pub(crate) fn align_up(v: u64) -> u64 {
    v.div_ceil(BLOCK_BYTES as u64) * BLOCK_BYTES as u64
}

/// The bytes of a segment file's last, partial block below `end` (empty
/// when `end` is block-aligned): the tail buffer starts from them.
async fn tail_block<F: DiskFile>(file: &F, end: u64) -> Result<Vec<u8>, LogError> {
    let block_start = align_down(end);
    if end == block_start {
        return Ok(Vec::new());
    }
    let bytes = file
        .read_at(block_start, (end - block_start) as usize)
        .await
        .ctx(|| "reading the tail block".into())?;
    Ok(bytes.as_ref().to_vec())
}

impl<D: Disk> PartitionLog<D> {
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    pub fn config(&self) -> LogConfig {
        self.inner.config.borrow().clone()
    }

    /// Replaces the configuration; applies to later appends and retention runs.
    pub fn set_config(&self, config: LogConfig) -> Result<(), String> {
        config.validate()?;
        *self.inner.config.borrow_mut() = config;
        Ok(())
    }

    /// The first offset reads may ask for: the first segment's base, or
    /// past it where DeleteRecords moved it ([`Self::advance_log_start`]).
    pub fn log_start_offset(&self) -> Offset {
        self.first_segment_base().max(self.inner.log_start.get())
    }

    /// The base offset of the oldest segment (there is always one: the
    /// active segment is never deleted).
    fn first_segment_base(&self) -> Offset {
        *self.inner.state.borrow().segments.keys().next().expect("at least one segment")
    }

    pub fn log_end_offset(&self) -> Offset {
        self.inner.state.borrow().log_end
    }

    /// Everything below is acknowledged (durable under `Fsync`): the high
    /// watermark of a single-replica partition.
    pub fn acked_end_offset(&self) -> Offset {
        self.inner.acked_end.get()
    }

    /// Whether `producer_id` has a transaction open here at `epoch`, and
    /// the offset of its last marker since the log opened (the guard of
    /// [`ProducerCheck::Verified`]).
    pub fn producer_txn(&self, producer_id: i64, epoch: i16) -> (bool, Option<Offset>) {
        self.inner.state.borrow().producers.txn_of(producer_id, epoch)
    }

    /// The idempotent producers this log remembers (DescribeProducers).
    pub fn active_producers(&self) -> Vec<crate::producers::ActiveProducer> {
        self.inner.state.borrow().producers.active()
    }

    /// The reason the log refuses writes, if it does.
    pub fn failure(&self) -> Option<StorageFailure> {
        self.inner.state.borrow().failed.clone()
    }

    /// Bytes of data in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.inner.state.borrow().segments.values().map(|s| s.size).sum()
    }

    /// A one-line summary of the log's state, for test failure messages.
    pub fn describe(&self) -> String {
        let st = self.inner.state.borrow();
        let segs: Vec<String> = st
            .segments
            .values()
            .map(|s| format!("{}..{}@{}B", s.base_offset, s.next_offset, s.size))
            .collect();
        let cache = match (st.cache.front(), st.cache.back()) {
            (Some(f), Some(b)) => format!(
                "{}..={} from {}@{}",
                f.base_offset, b.last_offset, f.segment_base, f.position
            ),
            _ => "empty".into(),
        };
        format!(
            "segments [{}] cache {} log_end {} written {} acked {}",
            segs.join(" "),
            cache,
            st.log_end,
            st.written_end,
            self.inner.acked_end.get()
        )
    }

    /// How reads were served, and the cache's size now.
    pub fn read_stats(&self) -> crate::stats::ReadStats {
        crate::stats::ReadStats {
            cache_reads: self.inner.cache_reads.get(),
            file_reads: self.inner.file_reads.get(),
            cache_bytes: self.inner.state.borrow().cache_bytes as u64,
        }
    }

    pub fn segment_count(&self) -> usize {
        self.inner.state.borrow().segments.len()
    }

    /// Appends one produce request's batches for this partition, all or none:
    /// validates them, assigns offsets from the log end, stamps `baseOffset`
    /// and `partitionLeaderEpoch`, and copies them into the tail buffer.
    /// Returns once the offsets are assigned; the data is acknowledged when
    /// [`Self::wait_acked`] for `end_offset` returns.
    pub async fn append(
        &self,
        batches: impl Into<Batches>,
        leader_epoch: LeaderEpoch,
    ) -> Result<AppendInfo, AppendError> {
        self.append_checked(batches, leader_epoch, ProducerCheck::Sequences).await
    }

    /// [`Self::append`] with what is checked of the batches' producers
    /// chosen by the caller (see [`ProducerCheck`]).
    pub async fn append_checked(
        &self,
        batches: impl Into<Batches>,
        leader_epoch: LeaderEpoch,
        check: ProducerCheck,
    ) -> Result<AppendInfo, AppendError> {
        let rules = self.inner.config.borrow().validation_rules(self.inner.clock.now_ms());
        let (mut batches, mut headers) = match batches.into() {
            Batches::Owned(mut b) => {
                let headers = validate_for_append(&mut b, &rules)?;
                (Batches::Owned(b), headers)
            }
            Batches::Received(b) => {
                let checked = check_for_append(&b, &rules)?;
                if checked.unchanged() && !rules.log_append_time {
                    (Batches::Received(b), checked.headers())
                } else {
                    let mut owned = BytesMut::from(&b[..]);
                    let headers = checked.apply(&mut owned);
                    (Batches::Owned(owned), headers)
                }
            }
        };
        let records: i64 = headers.iter().map(|h| h.records_count as i64).sum();
        if records - 1 > i32::MAX as i64 {
            // One segment must hold a whole append (see `prepare_space`).
            return Err(BatchError::Invalid("more than 2^31 records in one append").into());
        }
        let total = batches.len();
        self.inner.flush.wait_for_room(total).await;
        let _guard = self.inner.append_lock.lock().await;
        self.check_writable()?;
        self.prepare_space(total as u64, records).await?;
        self.check_writable()?;
        self.check_writer(Writer::Leader(leader_epoch))?;
        let log_append_time = match &mut batches {
            Batches::Owned(b) if rules.log_append_time => {
                self.restamp(b, &mut headers, rules.now_ms)
            }
            _ => NO_TIMESTAMP,
        };

        // From here to the end nothing awaits: offsets are assigned, the
        // bytes stamped, copied to the tail and cached in one step.
        let mut st = self.inner.state.borrow_mut();
        let st = &mut *st;
        if let ProducerCheck::Verified { producer_id, last_marker }
        | ProducerCheck::Coordinator { producer_id, last_marker } = check
        {
            if st.producers.txn_of(producer_id, -1).1 != last_marker {
                return Err(AppendError::Sequence(
                    crate::producers::SequenceError::InvalidTxnState { producer_id, txn_first: -1 },
                ));
            }
        }
        let checked = match check {
            ProducerCheck::Coordinator { .. } => {
                st.producers.check_epochs(&headers).map(|()| Check::Append)
            }
            _ => st.producers.check(&headers),
        };
        // Idempotent producers: a retried batch gets its original offsets.
        match checked {
            Err(e) => return Err(AppendError::Sequence(e)),
            Ok(Check::Duplicate(b)) => {
                return Ok(AppendInfo {
                    base_offset: b.base_offset,
                    last_offset: b.last_offset,
                    end_offset: b.last_offset + 1,
                    log_append_time: NO_TIMESTAMP,
                })
            }
            Ok(Check::Append) => {}
        }
        let base_offset = st.log_end;
        let mut offset = base_offset;
        let mut at = 0;
        let mut stamped = Vec::with_capacity(headers.len());
        for h in &headers {
            if let Batches::Owned(b) = &mut batches {
                stamp(&mut b[at..at + h.size], offset, leader_epoch);
            }
            let h = BatchHeader { base_offset: offset, leader_epoch, ..*h };
            offset = h.last_offset() + 1;
            at += h.size;
            stamped.push(h);
        }
        self.place(st, batches, &stamped);
        Ok(AppendInfo { base_offset, last_offset: offset - 1, end_offset: offset, log_append_time })
    }

    /// LogAppendTime: stamps the batches again with the clock of the moment
    /// their offsets are assigned (validation stamped them before the
    /// append waited for room and the lock), so that stamps follow offsets
    /// as Kafka's, stamped under its log's lock. Returns the stamp.
    fn restamp(
        &self,
        batches: &mut BytesMut,
        headers: &mut [BatchHeader],
        stamped: Timestamp,
    ) -> Timestamp {
        let now = self.inner.clock.now_ms().max(stamped);
        if now != stamped {
            let mut at = 0;
            for h in headers.iter_mut() {
                let batch = &mut batches[at..at + h.size];
                (h.attributes, h.crc) = crate::batch::set_timestamps(batch, true, now);
                h.max_timestamp = now;
                at += h.size;
            }
        }
        now
    }

    /// Puts batches whose headers are final (offsets and epochs stamped,
    /// the first at or past the log end) at the end of the log: the
    /// segment's indexes, the producers' state, the leader epochs, the tail
    /// buffer (handed to the flusher) and the cache. Nothing awaits; the
    /// caller holds the append lock and made room in the active segment.
    fn place(&self, st: &mut State<D>, batches: Batches, headers: &[BatchHeader]) {
        let inner = &*self.inner;
        let interval = inner.config.borrow().index_interval_bytes;
        let total = batches.len();
        let (&segment_base, segment) = st.segments.iter_mut().next_back().expect("active segment");
        let mut at = 0;
        for h in headers {
            segment.note_batch(h, segment.size, interval);
            let marker = h.is_control().then(|| parse_marker(h, &batches[at..at + h.size]));
            if let Some(done) = st.producers.apply(h, marker.flatten()) {
                if done.aborted {
                    let lso = st.producers.next_unstable(done.producer_id, done.last_offset + 1);
                    segment.aborted.push(done, lso);
                }
            }
            st.epochs.assign(h.leader_epoch, h.base_offset);
            at += h.size;
        }
        let start_position = st.tail.end();
        let mut sealed = Vec::new();
        let disk = inner.disk.as_ref();
        match &batches {
            Batches::Owned(b) => st.tail.append(disk, b, &mut sealed),
            Batches::Received(b) => {
                // The tail's copy gets the offsets: the header's first
                // bytes stamped on the way, the rest as received.
                let mut at = 0;
                for h in headers {
                    let mut head = [0u8; STAMPED_BYTES];
                    head.copy_from_slice(&b[at..at + STAMPED_BYTES]);
                    stamp(&mut head, h.base_offset, h.leader_epoch);
                    st.tail.append(disk, &head, &mut sealed);
                    st.tail.append(disk, &b[at + STAMPED_BYTES..at + h.size], &mut sealed);
                    at += h.size;
                }
            }
        }
        let file = segment.file.clone();
        st.pending
            .extend(sealed.into_iter().map(|chunk| PendingWrite { file: file.clone(), chunk }));
        debug_assert_eq!(st.tail.end(), segment.size);

        let (bytes, stamped) = match batches {
            Batches::Owned(b) => (b.freeze(), true),
            Batches::Received(b) => (b, false),
        };
        let mut at = 0;
        for h in headers {
            st.cache.push_back(CachedBatch {
                base_offset: h.base_offset,
                last_offset: h.last_offset(),
                max_timestamp: h.max_timestamp,
                leader_epoch: h.leader_epoch,
                segment_base,
                position: start_position + at as u64,
                bytes: bytes.slice(at..at + h.size),
                stamped,
            });
            at += h.size;
        }
        st.cache_bytes += total;
        st.log_end = headers.last().map_or(st.log_end, |h| h.last_offset() + 1);
        st.unwritten_bytes += total;
        inner.flush.note_appended(&self.inner, st, total);
    }

    fn check_writable(&self) -> Result<(), AppendError> {
        let st = self.inner.state.borrow();
        if st.closed {
            return Err(AppendError::Closed);
        }
        if let Some(f) = &st.failed {
            return Err(AppendError::Storage(f.clone()));
        }
        Ok(())
    }

    /// Takes the log offline for writes; wakes every waiter with the error.
    fn fail(&self, failure: StorageFailure) -> AppendError {
        self.inner.fail(failure.clone());
        AppendError::Storage(failure)
    }

    /// Waits until everything below `end_offset` is acknowledged, or the log
    /// fails first.
    pub async fn wait_acked(&self, end_offset: Offset) -> Result<(), AppendError> {
        self.wait_mark(end_offset, |inner| inner.acked_end.get(), |_| Ok(())).await
    }

    /// Waits until `mark` (the acknowledged end, the high watermark)
    /// reaches `end_offset`, or the log fails, or a truncation takes the
    /// offsets away (never to be acknowledged), or `role` refuses the
    /// log's writer of the moment.
    pub(super) async fn wait_mark(
        &self,
        end_offset: Offset,
        mark: impl Fn(&LogInner<D>) -> Offset,
        role: impl Fn(Writer) -> Result<(), AppendError>,
    ) -> Result<(), AppendError> {
        loop {
            let notified = self.inner.acked.notified();
            role(self.inner.writer.get())?;
            if mark(&self.inner) >= end_offset {
                return Ok(());
            }
            {
                let st = self.inner.state.borrow();
                if let Some(f) = &st.failed {
                    return Err(AppendError::Storage(f.clone()));
                }
                if st.log_end < end_offset {
                    return Err(AppendError::Closed);
                }
            }
            notified.await;
        }
    }
}

async fn read_optional<D: Disk>(disk: &Rc<D>, path: &Path) -> Result<Option<Vec<u8>>, LogError> {
    if !disk.exists(path).await.ctx(|| format!("checking {}", path.display()))? {
        return Ok(None);
    }
    crate::disk::read_file(disk.as_ref(), path)
        .await
        .map(Some)
        .ctx(|| format!("reading {}", path.display()))
}

pub(crate) enum FindError {
    Io(std::io::Error),
    Corrupt(u64, &'static str),
}

/// Walks batch headers from `from` (a batch boundary) up to `limit`, reading
/// only headers, and returns the first batch matching `pred` with its position.
async fn find_batch<F: DiskFile>(
    file: &F,
    from: u64,
    limit: u64,
    mut pred: impl FnMut(&BatchHeader) -> bool,
) -> Result<Option<(u64, BatchHeader)>, FindError> {
    let mut pos = from;
    while pos < limit {
        let len = ((limit - pos) as usize).min(LOOKUP_READ_BYTES);
        let data = file.read_at(pos, len).await.map_err(FindError::Io)?;
        let data = data.as_ref();
        let mut at = 0;
        while at + HEADER_BYTES <= data.len() {
            let h = BatchHeader::parse(&data[at..]).expect("length checked");
            if h.size < HEADER_BYTES || pos + at as u64 + h.size as u64 > limit {
                return Err(FindError::Corrupt(
                    pos + at as u64,
                    "batch length inconsistent with the segment",
                ));
            }
            if pred(&h) {
                return Ok(Some((pos + at as u64, h)));
            }
            at += h.size;
        }
        if at == 0 && data.len() < HEADER_BYTES {
            return Err(FindError::Corrupt(pos, "partial batch header"));
        }
        pos += at as u64;
    }
    Ok(None)
}
