//! [`Flusher`]: the shard's one writer. Group commit for every partition log
//! the shard owns.
//!
//! Runs as one task on the shard (the shard spawns [`Flusher::run`]); it is
//! the only code that writes log data or calls fdatasync on it. It must not
//! hold a log's state across an await.
//!
//! Two loops run together inside [`Flusher::run`]:
//! - the **writer** starts a write group for every log with appended data:
//!   it seals the log's tail and submits its chunks (up to
//!   [`SHARD_WRITES_IN_FLIGHT_MAX`] writes in flight on the shard). Each log
//!   has at most one group in flight, so that the partial last block that
//!   one group writes is never rewritten by the next while still in flight;
//!   logs proceed independently. When a group ends, whatever the log got
//!   meanwhile forms its next group. Under [`Flush::Interval`] a completed
//!   group acknowledges its appends.
//! - the **syncer**, under [`Flush::Fsync`], fdatasyncs every file written
//!   since its last round, all at once, and then acknowledges everything
//!   those writes covered: one fdatasync per file serves every append of the
//!   shard that was written when it started (group commit). Under
//!   `Interval` it syncs only when the shard's timer asks
//!   ([`Flusher::request_sync`]).
//!
//! The writer does not wait for the syncer, so writing group N+1 overlaps
//! syncing group N. That is safe because writes never change bytes that
//! were written before: a round only rewrites the partial last block of the
//! previous one with the same bytes followed by new ones, so whichever
//! version of that block an fdatasync persists (even torn at a sector), it
//! holds everything the fdatasync acknowledges.
//!
//! Appends that arrive during a group wait for the next one, so groups grow
//! with the load and the fdatasync cost is shared by more appends.
//!
//! A group of small writes also writes zeros ahead of the active segment's
//! data when its file holds too few ([`zeros_ahead_of`], decision 52), so
//! that the next groups overwrite written blocks instead of extending the
//! file. The zeros are written beside the group's data, past its end, and
//! the group ends (acknowledges, is synced) only once both are done: no
//! later write or truncation of the log meets a write of zeros in flight.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_util::stream::{self, FuturesUnordered, StreamExt};

use crate::config::Flush;
use crate::disk::{Disk, DiskFile};
use crate::error::StorageFailure;
use crate::limits::{
    PREWRITE_ROUNDS, PREWRITE_ROUND_BYTES_MAX, PREWRITE_STEP_MAX_BYTES, PREWRITE_STEP_MIN_BYTES,
    SHARD_SYNCS_IN_FLIGHT_MAX, SHARD_UNWRITTEN_BYTES_MAX, SHARD_WRITES_IN_FLIGHT_MAX,
};
use crate::log::{LogInner, LogRound, State};
use crate::sync::{Notify, Slots};

/// Counters of one flusher, for benchmarks and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlushStats {
    pub rounds: u64,
    pub writes: u64,
    pub bytes_written: u64,
    pub fdatasyncs: u64,
    /// Time spent waiting for write rounds and for fdatasync rounds.
    pub write_wait_us: u64,
    pub sync_wait_us: u64,
    pub sync_rounds: u64,
    /// Duration of each fdatasync round (its files synced concurrently):
    /// what an acknowledgment waits for after its write.
    pub sync_latency: crate::stats::Histogram,
    /// Writes of zeros ahead of active segments' data, and their bytes.
    pub zero_writes: u64,
    pub zero_bytes: u64,
}

pub(crate) struct FlushShared<D: Disk> {
    mode: Flush,
    /// Logs with data to write, each at most once (`State::registered`).
    dirty: RefCell<Vec<Rc<LogInner<D>>>>,
    /// Logs written since the syncer last took them.
    unsynced: RefCell<Vec<Rc<LogInner<D>>>>,
    /// Wakes the writer: new data or a stop.
    work: Notify,
    /// Wakes the syncer: a write round ended, a sync was requested, a stop.
    synced: Notify,
    /// Write groups are in flight.
    writing: Cell<bool>,
    /// Bounds the shard's writes in flight.
    write_slots: Slots,
    room: Notify,
    unwritten_bytes: Cell<usize>,
    sync_requested: Cell<bool>,
    stopping: Cell<bool>,
    stats: Cell<FlushStats>,
}

/// The shard's group-commit writer. Cheap to clone.
pub struct Flusher<D: Disk> {
    shared: Rc<FlushShared<D>>,
}

impl<D: Disk> Clone for Flusher<D> {
    fn clone(&self) -> Self {
        Flusher { shared: self.shared.clone() }
    }
}

impl<D: Disk> Flusher<D> {
    pub fn new(mode: Flush) -> Self {
        Flusher {
            shared: Rc::new(FlushShared {
                mode,
                dirty: RefCell::default(),
                unsynced: RefCell::default(),
                work: Notify::default(),
                synced: Notify::default(),
                writing: Cell::new(false),
                write_slots: Slots::new(SHARD_WRITES_IN_FLIGHT_MAX),
                room: Notify::default(),
                unwritten_bytes: Cell::new(0),
                sync_requested: Cell::new(false),
                stopping: Cell::new(false),
                stats: Cell::default(),
            }),
        }
    }

    pub(crate) fn shared(&self) -> &Rc<FlushShared<D>> {
        &self.shared
    }

    pub fn mode(&self) -> Flush {
        self.shared.mode
    }

    pub fn stats(&self) -> FlushStats {
        self.shared.stats.get()
    }

    /// Bytes appended on this shard and not yet written.
    pub fn unwritten_bytes(&self) -> usize {
        self.shared.unwritten_bytes.get()
    }

    /// Asks for an fdatasync of everything written (the interval timer's tick).
    pub fn request_sync(&self) {
        self.shared.sync_requested.set(true);
        self.shared.synced.notify();
    }

    /// Makes [`Self::run`] return once no work is left.
    pub fn stop(&self) {
        self.shared.stopping.set(true);
        self.shared.work.notify();
        self.shared.synced.notify();
    }

    /// The flusher's loops; returns after [`Self::stop`] once idle. A stop
    /// ends the current run only: a later `run` starts afresh.
    pub async fn run(&self) {
        self.shared.stopping.set(false);
        futures_lite::future::zip(self.write_loop(), self.sync_loop()).await;
    }

    async fn write_loop(&self) {
        let s = &self.shared;
        let mut groups = FuturesUnordered::new();
        loop {
            let notified = s.work.notified();
            // A write group for every log with new data and none in flight;
            // a log still writing stays queued for when its group ends.
            let logs: Vec<_> = std::mem::take(&mut *s.dirty.borrow_mut());
            for log in logs {
                if log.is_writing() {
                    s.dirty.borrow_mut().push(log);
                } else if let Some(round) = log.take_round() {
                    groups.push(self.write_group(log, round));
                }
            }
            s.writing.set(!groups.is_empty());
            if groups.is_empty() {
                if s.stopping.get() && s.dirty.borrow().is_empty() {
                    s.synced.notify();
                    return;
                }
                notified.await;
                continue;
            }
            futures_lite::future::or(
                async {
                    groups.next().await;
                },
                notified,
            )
            .await;
        }
    }

    async fn sync_loop(&self) {
        let s = &self.shared;
        loop {
            // Woken by the writer (new unsynced data, or stopping) and by
            // sync requests.
            let notified = s.synced.notified();
            let wanted = match s.mode {
                Flush::Fsync => !s.unsynced.borrow().is_empty(),
                Flush::Interval { .. } => s.sync_requested.get() && !s.unsynced.borrow().is_empty(),
            };
            if wanted {
                s.sync_requested.set(false);
                let logs = std::mem::take(&mut *s.unsynced.borrow_mut());
                let started = std::time::Instant::now();
                let n = self.sync_logs(&logs).await;
                let mut stats = s.stats.get();
                stats.fdatasyncs += n;
                stats.sync_rounds += 1;
                stats.sync_wait_us += started.elapsed().as_micros() as u64;
                stats.sync_latency.record(started.elapsed());
                s.stats.set(stats);
                continue;
            }
            if s.stopping.get() && !s.writing.get() && s.dirty.borrow().is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Writes one log's sealed chunks (at most [`SHARD_WRITES_IN_FLIGHT_MAX`]
    /// writes in flight on the whole shard), then marks them written and
    /// queues the log for the syncer. Backpressure is released as each write
    /// completes, so producers refill the tail while the rest is in flight.
    async fn write_group(&self, log: Rc<LogInner<D>>, round: LogRound<D>) {
        let s = &self.shared;
        let mut stats = s.stats.get();
        stats.rounds += 1;
        stats.writes += round.writes.len() as u64;
        stats.bytes_written +=
            round.writes.iter().map(|w| w.chunk.buf.as_ref().as_ref().len() as u64).sum::<u64>();
        s.stats.set(stats);
        let unreleased = Cell::new(round.data_bytes);
        let started = std::time::Instant::now();
        let zeros_written = async {
            let Some((pos, len)) = zeros_ahead(&round) else { return Ok(()) };
            let _slot = s.write_slots.acquire().await;
            match round.active.write_zeros(pos, len, round.keep_free).await {
                Ok(()) => {
                    let mut stats = s.stats.get();
                    stats.zero_writes += 1;
                    stats.zero_bytes += len as u64;
                    s.stats.set(stats);
                    Ok(())
                }
                // Zeros are an optimisation: without room for them (not
                // promised, or the file system full) the data still goes,
                // extending the file, and meets the disk's answer itself.
                Err(e) if StorageFailure::from_io("", &e) == StorageFailure::NoSpace => Ok(()),
                Err(e) => Err(e),
            }
        };
        let data_written = stream::iter(round.writes.iter())
            .map(|w| async {
                let _slot = s.write_slots.acquire().await;
                let len = w.chunk.buf.as_ref().as_ref().len();
                let result = w.file.write_at(w.chunk.buf.clone(), w.chunk.pos).await;
                let release = unreleased.get().min(len);
                unreleased.set(unreleased.get() - release);
                s.release(release);
                result
            })
            .buffer_unordered(SHARD_WRITES_IN_FLIGHT_MAX)
            .collect::<Vec<std::io::Result<()>>>();
        let (mut results, zeros_result) =
            futures_lite::future::zip(data_written, zeros_written).await;
        results.push(zeros_result);
        s.release(unreleased.get());
        let mut stats = s.stats.get();
        stats.write_wait_us += started.elapsed().as_micros() as u64;
        s.stats.set(stats);
        match results.into_iter().find_map(Result::err) {
            Some(e) => log.fail(StorageFailure::from_io("writing a segment", &e)),
            None => {
                let mut files: Vec<Rc<D::File>> = Vec::new();
                for w in &round.writes {
                    if !files.iter().any(|f| Rc::ptr_eq(f, &w.file)) {
                        files.push(w.file.clone());
                    }
                }
                log.on_written(round.end_offset, &files);
                let mut unsynced = s.unsynced.borrow_mut();
                if !log.is_failed() && !unsynced.iter().any(|l| Rc::ptr_eq(l, &log)) {
                    unsynced.push(log.clone());
                }
            }
        }
        log.set_writing(false);
        s.synced.notify();
        log.close_rolled_segments().await;
    }

    /// fdatasyncs every unsynced file of `logs`, at most
    /// [`SHARD_SYNCS_IN_FLIGHT_MAX`] logs at once, and acknowledges (under
    /// `Fsync`) what each log's files covered as soon as they are synced.
    /// Returns the number of fdatasyncs.
    ///
    /// The syncs run in a `FuturesUnordered` (`buffer_unordered`), which
    /// polls a sync only when its own I/O wakes it. Not `join_all`: that
    /// re-polls every pending sync on each wake of the flusher's task (every
    /// write completing, every append), and each poll of a pending glommio
    /// DMA I/O keeps one more clone of the task's waker, counted in 16 bits:
    /// 30 logs syncing through ~1,100 wakes aborted the shard.
    async fn sync_logs(&self, logs: &[Rc<LogInner<D>>]) -> u64 {
        let work: Vec<_> = logs
            .iter()
            .filter(|log| !log.is_failed())
            .map(|log| {
                let (files, end) = log.take_unsynced();
                (log.clone(), files, end)
            })
            .collect();
        let count = work.iter().map(|(_, f, _)| f.len() as u64).sum();
        stream::iter(work)
            .map(|(log, files, end)| async move {
                for file in &files {
                    if let Err(e) = file.fdatasync().await {
                        log.fail(StorageFailure::from_io("fdatasync", &e));
                        return;
                    }
                }
                log.on_synced(end);
            })
            .buffer_unordered(SHARD_SYNCS_IN_FLIGHT_MAX)
            .for_each(|()| async {})
            .await;
        count
    }
}

/// Where a round writes zeros ahead of the active segment's data, if it
/// does: see [`zeros_ahead_of`].
fn zeros_ahead<D: Disk>(round: &LogRound<D>) -> Option<(u64, usize)> {
    let (mut bytes, mut end) = (0, 0);
    for w in round.writes.iter().filter(|w| Rc::ptr_eq(&w.file, &round.active)) {
        let len = w.chunk.buf.as_ref().as_ref().len();
        bytes += len;
        end = end.max(w.chunk.pos + len as u64);
    }
    zeros_ahead_of(round.active.written_end(), end, bytes)
}

/// The zeros (position, length) a round writing `round_bytes` up to
/// `round_end` of a file written up to `file_end` writes ahead, if any:
/// none for a large round (bandwidth-bound: zeros would double its bytes)
/// or while half a step of zeros is still ahead; otherwise a step of
/// [`PREWRITE_ROUNDS`] times the round's bytes (a power of two within the
/// limits), from past both ends. `round_end` is block-aligned and, for a
/// round with data, at least the aligned-up `file_end` when the file's end
/// is not aligned (the round rewrites the file's partial last block).
pub(crate) fn zeros_ahead_of(
    file_end: u64,
    round_end: u64,
    round_bytes: usize,
) -> Option<(u64, usize)> {
    if round_bytes == 0 || round_bytes > PREWRITE_ROUND_BYTES_MAX {
        return None;
    }
    let step = (round_bytes * PREWRITE_ROUNDS)
        .next_power_of_two()
        .clamp(PREWRITE_STEP_MIN_BYTES, PREWRITE_STEP_MAX_BYTES);
    if file_end >= round_end + step as u64 / 2 {
        return None;
    }
    Some((crate::log::align_up(file_end.max(round_end)), step))
}

impl<D: Disk> FlushShared<D> {
    pub(crate) fn mode(&self) -> Flush {
        self.mode
    }

    /// A log got `bytes` of new data (or a sealed segment): queue it for the
    /// next round. Called with the log's state borrowed.
    pub(crate) fn note_appended(&self, log: &Rc<LogInner<D>>, st: &mut State<D>, bytes: usize) {
        self.unwritten_bytes.set(self.unwritten_bytes.get() + bytes);
        if !st.registered {
            st.registered = true;
            self.dirty.borrow_mut().push(log.clone());
        }
        self.work.notify();
    }

    /// Queues a log for the next round even without new data (close, truncate).
    pub(crate) fn request_round(&self, log: &Rc<LogInner<D>>) {
        let mut st = log.state.borrow_mut();
        self.note_appended(log, &mut st, 0);
        if let Flush::Interval { .. } = self.mode {
            self.sync_requested.set(true);
            self.synced.notify();
        }
    }

    /// Waits until the shard's unwritten bytes leave room for `bytes` more
    /// (always lets one append through when nothing is unwritten).
    pub(crate) async fn wait_for_room(&self, bytes: usize) {
        loop {
            let notified = self.room.notified();
            let unwritten = self.unwritten_bytes.get();
            if unwritten == 0 || unwritten + bytes <= SHARD_UNWRITTEN_BYTES_MAX {
                return;
            }
            notified.await;
        }
    }

    pub(crate) fn release(&self, bytes: usize) {
        self.unwritten_bytes.set(self.unwritten_bytes.get() - bytes);
        self.room.notify();
    }
}

#[cfg(test)]
mod tests {
    use super::zeros_ahead_of;
    use crate::limits::{
        PREWRITE_ROUND_BYTES_MAX, PREWRITE_STEP_MAX_BYTES, PREWRITE_STEP_MIN_BYTES,
    };

    const K: u64 = 1024;

    #[test]
    fn small_rounds_keep_zeros_ahead_and_large_ones_write_none() {
        // A fresh segment: its first small round writes the smallest step past its data.
        assert_eq!(zeros_ahead_of(0, 4 * K, 4096), Some((4 * K, PREWRITE_STEP_MIN_BYTES)));
        // Half a step or more still ahead: nothing.
        assert_eq!(zeros_ahead_of(68 * K, 36 * K, 4096), None);
        // Less than half: the next step, from the file's end.
        assert_eq!(zeros_ahead_of(68 * K, 40 * K, 4096), Some((68 * K, 64 * 1024)));
        // The step follows the round's size, up to the maximum.
        assert_eq!(zeros_ahead_of(0, 16 * K, 16 * 1024), Some((16 * K, 128 * 1024)));
        assert_eq!(
            zeros_ahead_of(0, 32 * K, PREWRITE_ROUND_BYTES_MAX),
            Some((32 * K, PREWRITE_STEP_MAX_BYTES))
        );
        // A round past the zeros (a burst): the next step starts after its data.
        assert_eq!(zeros_ahead_of(64 * K, 100 * K, 20 * 1024), Some((100 * K, 256 * 1024)));
        // A file whose end is not aligned (opened after recovery): aligned up.
        assert_eq!(zeros_ahead_of(5000, 8 * K, 4096), Some((8 * K, PREWRITE_STEP_MIN_BYTES)));
        // Large rounds and rounds without data for the active file: none.
        assert_eq!(zeros_ahead_of(0, 64 * K, PREWRITE_ROUND_BYTES_MAX + 4096), None);
        assert_eq!(zeros_ahead_of(0, 0, 0), None);
    }
}
