//! A [`PartitionLog`]'s side of the shard's [`crate::Flusher`]: the round
//! of writes it hands over, what it notes as they are written and synced
//! (acknowledging appends), its failure, and the rolled segments closed
//! once their data is on disk.
//!
//! On the log's shard, called by the flusher's task; the state is never
//! borrowed across an await.

use super::*;

impl<D: Disk> LogInner<D> {
    pub(crate) fn fail(&self, failure: StorageFailure) {
        let mut st = self.state.borrow_mut();
        if st.failed.is_none() {
            log::error!(
                "partition {} is offline for writes: {failure}; reads go on; restart the node once the cause is fixed",
                self.dir.display()
            );
            st.failed = Some(failure);
        }
        let dropped = st.unwritten_bytes;
        st.unwritten_bytes = 0;
        st.pending.clear();
        drop(st);
        self.flush.release(dropped);
        self.acked.notify();
    }

    pub(crate) fn is_writing(&self) -> bool {
        self.state.borrow().writing
    }

    pub(crate) fn set_writing(&self, writing: bool) {
        self.state.borrow_mut().writing = writing;
    }

    pub(crate) fn is_failed(&self) -> bool {
        self.state.borrow().failed.is_some()
    }

    pub(crate) fn flush_mode(&self) -> Flush {
        self.flush.mode()
    }

    /// Takes this log's share of a flush round: seals the tail and hands over
    /// every pending write.
    pub(crate) fn take_round(&self) -> Option<LogRound<D>> {
        let mut st = self.state.borrow_mut();
        let st = &mut *st;
        st.registered = false;
        if st.failed.is_some() {
            return None;
        }
        if let Some(chunk) = st.tail.seal(self.disk.as_ref()) {
            let file = st.segments.values().next_back().expect("active segment").file.clone();
            st.pending.push(PendingWrite { file, chunk });
        }
        if st.pending.is_empty() && st.written_end == st.log_end {
            return None;
        }
        let data_bytes = std::mem::take(&mut st.unwritten_bytes);
        st.writing = true;
        Some(LogRound {
            writes: std::mem::take(&mut st.pending),
            end_offset: st.log_end,
            data_bytes,
            active: st.segments.values().next_back().expect("active segment").file.clone(),
            keep_free: self.config.borrow().keep_free_bytes,
        })
    }

    /// A round's writes completed: remember the files to sync; under
    /// `Interval` this acknowledges.
    pub(crate) fn on_written(&self, end_offset: Offset, files: &[Rc<D::File>]) {
        let mut st = self.state.borrow_mut();
        if st.failed.is_some() {
            return;
        }
        st.written_end = st.written_end.max(end_offset.min(st.log_end));
        for f in files {
            if !st.unsynced_files.iter().any(|g| Rc::ptr_eq(f, g)) {
                st.unsynced_files.push(f.clone());
            }
        }
        drop(st);
        if let Flush::Interval { .. } = self.flush_mode() {
            self.advance_acked(end_offset);
        }
    }

    pub(crate) fn take_unsynced(&self) -> (Vec<Rc<D::File>>, Offset) {
        let mut st = self.state.borrow_mut();
        (std::mem::take(&mut st.unsynced_files), st.written_end)
    }

    /// fdatasync covered everything below `end_offset`.
    pub(crate) fn on_synced(&self, end_offset: Offset) {
        if let Flush::Fsync = self.flush_mode() {
            self.advance_acked(end_offset);
        }
    }

    fn advance_acked(&self, end_offset: Offset) {
        let mut st = self.state.borrow_mut();
        let end = end_offset.min(st.log_end);
        if end > self.acked_end.get() {
            self.acked_end.set(end);
            let hw = match self.replicated.get() {
                false => end,
                true => end.min(self.high_watermark_target.get()),
            };
            self.high_watermark.set(self.high_watermark.get().max(hw));
            st.producers.forget_replicated(self.high_watermark.get());
        }
        // Batches below the acknowledged end are on disk for good; the cache
        // keeps only the most recent ones.
        let cache_max = self.config.borrow().cache_bytes_max;
        while st.cache_bytes > cache_max
            && st.cache.front().is_some_and(|b| b.last_offset < self.acked_end.get())
        {
            let b = st.cache.pop_front().expect("checked");
            st.cache_bytes -= b.bytes.len();
        }
        drop(st);
        self.acked.notify();
    }

    /// Rolled segments whose data is all written: their close plans.
    fn take_closable(&self) -> Vec<crate::segment::ClosePlan<D>> {
        let mut st = self.state.borrow_mut();
        let st = &mut *st;
        let written = st.written_end;
        let ready: Vec<Offset> =
            st.to_close.iter().filter(|(_, end)| *end <= written).map(|(b, _)| *b).collect();
        st.to_close.retain(|(_, end)| *end > written);
        ready.into_iter().filter_map(|b| st.segments.get_mut(&b).map(|s| s.close_plan())).collect()
    }

    /// Closes on disk the rolled segments whose data is all written. The
    /// plans are taken under the maintenance lock, so a truncation that
    /// reopens a rolled segment for appends cannot race with its closing.
    pub(crate) async fn close_rolled_segments(&self) {
        if self.state.borrow().to_close.is_empty() {
            return;
        }
        let _maintenance = self.maintenance_lock.lock().await;
        let plans = self.take_closable();
        for plan in plans {
            let (base, stored) = (plan.base_offset(), plan.txn_entries());
            if let Err(e) = plan.run(self.disk.as_ref(), &self.dir, true).await {
                self.fail(StorageFailure::from_io("closing a segment", &e));
                return;
            }
            // Its aborted transactions are in the file now, not in memory.
            if let (Some(n), Some(seg)) = (stored, self.state.borrow_mut().segments.get_mut(&base))
            {
                seg.aborted = crate::segment::TxnEntries::Stored(n);
            }
        }
    }
}
