//! [`Flusher`]: the shard's one writer. Group commit for every partition log
//! the shard owns.
//!
//! Runs as one task on the shard (the shard spawns [`Flusher::run`]); it is
//! the only code that writes log data or calls fdatasync on it. It must not
//! hold a log's state across an await.
//!
//! Two loops run together inside [`Flusher::run`]:
//! - the **writer** takes every log with appended data, seals each tail,
//!   submits all their writes at once (up to [`SHARD_WRITES_IN_FLIGHT_MAX`]
//!   in flight) and waits for them; then it starts over with whatever was
//!   appended meanwhile. Under [`Flush::Interval`] a completed write
//!   acknowledges its appends.
//! - the **syncer**, under [`Flush::Fsync`], fdatasyncs every file written
//!   since its last round, all at once, and then acknowledges everything
//!   those writes covered: one fdatasync per file serves every append of the
//!   shard that was written when it started (group commit). Under
//!   `Interval` it syncs only when the shard's timer asks
//!   ([`Flusher::request_sync`]).
//!
//! The writer does not wait for the syncer, so writing round N+1 overlaps
//! syncing round N. That is safe because writes never change bytes that
//! were written before: a round only rewrites the partial last block of the
//! previous one with the same bytes followed by new ones, so whichever
//! version of that block an fdatasync persists (even torn at a sector), it
//! holds everything the fdatasync acknowledges. Write rounds never overlap
//! each other, so a block is never in flight twice.
//!
//! Appends that arrive during a round wait for the next one, so rounds grow
//! with the load and the fdatasync cost is shared by more appends.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_util::stream::{self, StreamExt};

use crate::config::Flush;
use crate::disk::{Disk, DiskFile};
use crate::error::StorageFailure;
use crate::limits::{SHARD_UNWRITTEN_BYTES_MAX, SHARD_WRITES_IN_FLIGHT_MAX};
use crate::log::{LogInner, LogRound, State};
use crate::sync::Notify;

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
    /// A write round is in progress.
    writing: Cell<bool>,
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
        Flusher {
            shared: self.shared.clone(),
        }
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
        loop {
            let notified = s.work.notified();
            let logs: Vec<_> = std::mem::take(&mut *s.dirty.borrow_mut());
            if logs.is_empty() {
                if s.stopping.get() && !s.writing.get() {
                    s.synced.notify();
                    return;
                }
                notified.await;
                continue;
            }
            s.writing.set(true);
            self.write_round(logs).await;
            s.writing.set(false);
            s.synced.notify();
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
                s.stats.set(stats);
                continue;
            }
            if s.stopping.get() && !s.writing.get() && s.dirty.borrow().is_empty() {
                return;
            }
            notified.await;
        }
    }

    async fn write_round(&self, logs: Vec<Rc<LogInner<D>>>) {
        let s = &self.shared;
        let jobs: Vec<(Rc<LogInner<D>>, LogRound<D>)> = logs
            .into_iter()
            .filter_map(|log| log.take_round().map(|r| (log, r)))
            .collect();
        let mut stats = s.stats.get();
        stats.rounds += 1;

        // Every write of the round, in flight together.
        let writes: Vec<_> = jobs
            .iter()
            .enumerate()
            .flat_map(|(i, (_, r))| {
                r.writes
                    .iter()
                    .map(move |w| (i, w.file.clone(), w.chunk.buf.clone(), w.chunk.pos))
            })
            .collect();
        stats.writes += writes.len() as u64;
        stats.bytes_written += writes
            .iter()
            .map(|(_, _, b, _)| b.as_ref().as_ref().len() as u64)
            .sum::<u64>();
        let started = std::time::Instant::now();
        let results: Vec<(usize, std::io::Result<()>)> = stream::iter(writes)
            .map(|(i, file, buf, pos)| async move { (i, file.write_at(buf, pos).await) })
            .buffer_unordered(SHARD_WRITES_IN_FLIGHT_MAX)
            .collect()
            .await;
        stats.write_wait_us += started.elapsed().as_micros() as u64;
        let mut failed = vec![None; jobs.len()];
        for (i, r) in results {
            if let Err(e) = r {
                failed[i].get_or_insert_with(|| StorageFailure::from_io("writing a segment", &e));
            }
        }
        for ((log, round), failure) in jobs.iter().zip(failed) {
            s.release(round.data_bytes);
            match failure {
                Some(f) => log.fail(f),
                None => {
                    let mut files: Vec<Rc<D::File>> = Vec::new();
                    for w in &round.writes {
                        if !files.iter().any(|f| Rc::ptr_eq(f, &w.file)) {
                            files.push(w.file.clone());
                        }
                    }
                    log.on_written(round.end_offset, &files);
                    if !log.is_failed() {
                        let mut unsynced = s.unsynced.borrow_mut();
                        if !unsynced.iter().any(|l| Rc::ptr_eq(l, log)) {
                            unsynced.push(log.clone());
                        }
                    }
                }
            }
        }

        s.stats.set(stats);

        for (log, _) in &jobs {
            log.close_rolled_segments().await;
        }
        s.room.notify();
    }

    /// fdatasyncs every unsynced file of `logs` concurrently; acknowledges (under
    /// `Fsync`) what each covered. Returns the number of fdatasyncs.
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
        let results: Vec<_> =
            futures_util::future::join_all(work.iter().map(|(_, files, _)| async move {
                let all = futures_util::future::join_all(files.iter().map(|f| f.fdatasync())).await;
                all.into_iter().find_map(Result::err)
            }))
            .await;
        for ((log, _, end), err) in work.iter().zip(results) {
            match err {
                Some(e) => log.fail(StorageFailure::from_io("fdatasync", &e)),
                None => log.on_synced(*end),
            }
        }
        count
    }
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
