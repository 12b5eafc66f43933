//! [`Flusher`]: the shard's one writer. Group commit for every partition log
//! the shard owns.
//!
//! Runs as one task on the shard (the shard spawns [`Flusher::run`]); it is
//! the only code that writes log data or calls fdatasync on it. It must not
//! hold a log's state across an await.
//!
//! A round: take every log with appended data, seal each tail, submit all
//! their writes at once (up to [`SHARD_WRITES_IN_FLIGHT_MAX`] in flight),
//! wait for them, then
//! - under [`Flush::Fsync`], fdatasync every file written in the round, all
//!   at once, and acknowledge everything the round covered: one fdatasync per
//!   file serves every append pending on the shard when the round started;
//! - under [`Flush::Interval`], acknowledge when the writes complete and
//!   fdatasync only when the shard's timer asks ([`Flusher::request_sync`]).
//!
//! Appends that arrive during a round wait for the next one, so rounds grow
//! with the load and the fdatasync cost is shared by more appends.
//! Rounds never overlap: the partial last block rewritten by one round is
//! never in flight twice.

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
}

pub(crate) struct FlushShared<D: Disk> {
    mode: Flush,
    /// Logs with data to write, each at most once (`State::registered`).
    dirty: RefCell<Vec<Rc<LogInner<D>>>>,
    /// Logs written since the last fdatasync (interval mode only).
    unsynced: RefCell<Vec<Rc<LogInner<D>>>>,
    work: Notify,
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
        self.shared.work.notify();
    }

    /// Makes [`Self::run`] return once no work is left.
    pub fn stop(&self) {
        self.shared.stopping.set(true);
        self.shared.work.notify();
    }

    /// The flusher's loop; returns after [`Self::stop`] when idle. A stop
    /// ends the current run only: a later `run` starts afresh.
    pub async fn run(&self) {
        let s = &self.shared;
        s.stopping.set(false);
        loop {
            let notified = s.work.notified();
            let logs: Vec<_> = std::mem::take(&mut *s.dirty.borrow_mut());
            let sync_now = s.sync_requested.replace(false);
            if logs.is_empty() && !sync_now {
                if s.stopping.get() {
                    return;
                }
                notified.await;
                continue;
            }
            self.round(logs, sync_now).await;
        }
    }

    async fn round(&self, logs: Vec<Rc<LogInner<D>>>, sync_now: bool) {
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
        let results: Vec<(usize, std::io::Result<()>)> = stream::iter(writes)
            .map(|(i, file, buf, pos)| async move { (i, file.write_at(buf, pos).await) })
            .buffer_unordered(SHARD_WRITES_IN_FLIGHT_MAX)
            .collect()
            .await;
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
                    if let Flush::Interval { .. } = s.mode {
                        if !log.is_failed() {
                            let mut unsynced = s.unsynced.borrow_mut();
                            if !unsynced.iter().any(|l| Rc::ptr_eq(l, log)) {
                                unsynced.push(log.clone());
                            }
                        }
                    }
                }
            }
        }

        let to_sync: Vec<Rc<LogInner<D>>> = match s.mode {
            Flush::Fsync => jobs.iter().map(|(log, _)| log.clone()).collect(),
            Flush::Interval { .. } if sync_now => std::mem::take(&mut *s.unsynced.borrow_mut()),
            Flush::Interval { .. } => Vec::new(),
        };
        stats.fdatasyncs += self.sync_logs(&to_sync).await;
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
