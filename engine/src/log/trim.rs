//! What removes data from a [`PartitionLog`]: truncation of a diverged
//! suffix (replication), and retention and superseded prefixes, a whole
//! segment at a time.
//!
//! On the log's shard; each holds the append or maintenance lock it needs.

use super::*;

impl<D: Disk> PartitionLog<D> {
    /// Removes every batch at or after the batch holding `offset`: the log end
    /// becomes that batch's base offset, which is returned. Durable before it
    /// returns. Used by replication to cut a diverged suffix where the
    /// leader at epoch `following` says; refused (`Fenced`) unless the log
    /// follows that leader ([`Writer`]): an answer that arrives after its
    /// replica was elected, or moved to another leader, is stale. A
    /// replica elected while a cut is under way ([`Self::is_truncating`])
    /// gets no append until it ends (the append lock is held) and its
    /// epoch starts at the new end.
    pub async fn truncate_to(
        &self,
        offset: Offset,
        following: LeaderEpoch,
    ) -> Result<Offset, LogError> {
        let _append = self.inner.append_lock.lock().await;
        let fenced = |e: AppendError| LogError::Fenced(e.to_string());
        self.check_writer(Writer::Follower(following)).map_err(fenced)?;
        let _truncating = Truncating::new(&self.inner.truncating);
        let log_end = self.log_end_offset();
        if offset >= log_end {
            // Nothing to cut but an epoch that starts at the end: this
            // replica led at it without appending (see `set_writer`), and
            // its leader has no batch of it; kept, it would make every
            // fetch diverge again (Kafka's `truncateTo` drops it too).
            let dropped = {
                let mut st = self.inner.state.borrow_mut();
                let before = st.epochs.entries().len();
                st.epochs.truncate_from_end(log_end);
                st.epochs.entries().len() != before
            };
            if dropped {
                let _maintenance = self.inner.maintenance_lock.lock().await;
                self.write_epoch_checkpoint().await?;
            }
            return Ok(log_end);
        }
        if offset < self.log_start_offset() {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset(),
                log_end,
            });
        }
        // Let the flusher write (and sync) everything first, so that no write
        // is in flight to the bytes being cut.
        self.inner.flush.request_round(&self.inner);
        self.wait_acked(log_end).await.map_err(|e| match e {
            AppendError::Storage(f) => LogError::Storage(f),
            other => LogError::Invalid(other.to_string()),
        })?;
        let _maintenance = self.inner.maintenance_lock.lock().await;
        let (segment_base, file, from) = {
            let st = self.inner.state.borrow();
            let (&base, seg) =
                st.segments.range(..=offset).next_back().expect("offset >= log start");
            let from =
                seg.index.lookup((offset - base) as u32).map(|e| e.position as u64).unwrap_or(0);
            (base, seg.file.clone(), from)
        };
        let size = self.inner.state.borrow().segments[&segment_base].size;
        let (position, header) =
            find_batch(file.as_ref(), from, size, |h| h.last_offset() >= offset)
                .await
                .map_err(|e| self.corrupt_or_io(segment_base, e))?
                .ok_or_else(|| {
                    LogError::Invalid(format!(
                        "offset {offset} not found in segment {segment_base}"
                    ))
                })?;
        let new_end = header.base_offset;
        // Its aborted transactions below the cut stay, read before anything
        // changes; the replay below finds the rest.
        let aborted = self.inner.state.borrow().segments[&segment_base].aborted.clone();
        let mut kept = match aborted {
            crate::segment::TxnEntries::Memory(v) => v,
            crate::segment::TxnEntries::Stored(0) => Vec::new(),
            crate::segment::TxnEntries::Stored(_) => self.read_txn_index(segment_base).await?,
        };
        kept.retain(|e| e.last_offset < new_end);
        // The last moment to refuse: from here bytes go.
        self.check_writer(Writer::Follower(following)).map_err(fenced)?;
        // Later segments go entirely.
        let later: Vec<Offset> = {
            let st = self.inner.state.borrow();
            st.segments.range(segment_base + 1..).map(|(&b, _)| b).collect()
        };
        {
            let mut st = self.inner.state.borrow_mut();
            for b in &later {
                st.segments.remove(b);
            }
            st.to_close.retain(|(b, _)| !later.contains(b) && *b != segment_base);
        }
        for b in later {
            self.remove_segment_files(b).await?;
        }
        // The segment's index files (if it was closed before) describe bytes
        // that are going: remove them so that recovery rebuilds rather than
        // trusts them; closing the segment again writes them anew.
        // The kept aborted transactions are written again, durably (a crash
        // before the segment closes must find those below the snapshot the
        // replay starts from), and stay in memory: it is the active segment.
        let bytes = crate::txn::AbortedTxn::encode_all(&kept);
        crate::segment::write_txn_index(
            self.inner.disk.as_ref(),
            &self.inner.dir,
            segment_base,
            &bytes,
            true,
        )
        .await
        .ctx(|| format!("rewriting the aborted-transactions index of segment {segment_base}"))?;
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let p = segment_path(&self.inner.dir, segment_base, suffix);
            if self.inner.disk.exists(&p).await.ctx(|| format!("checking {}", p.display()))? {
                self.inner
                    .disk
                    .remove_file(&p)
                    .await
                    .ctx(|| format!("removing {}", p.display()))?;
            }
        }
        file.truncate(position).await.ctx(|| format!("truncating segment {segment_base}"))?;
        file.fdatasync().await.ctx(|| format!("syncing segment {segment_base}"))?;
        // Rebuild the segment's bookkeeping up to the cut.
        let interval = self.inner.config.borrow().index_interval_bytes;
        let mut seg = Segment::<D>::new(segment_base, file.clone(), self.inner.clock.now_ms());
        seg.aborted = crate::segment::TxnEntries::Memory(kept);
        let outcome = scan(file.as_ref(), position, 0, segment_base, segment_base, |h, pos| {
            seg.note_batch(h, pos, interval)
        })
        .await
        .ctx(|| format!("rescanning segment {segment_base}"))?;
        if outcome.valid_end != position {
            return Err(LogError::Corrupt {
                segment_base,
                position: outcome.valid_end,
                reason: "invalid batch before the truncation point".into(),
            });
        }
        seg.reserved = position;
        let last_block = tail_block(file.as_ref(), position).await?;
        {
            let mut st = self.inner.state.borrow_mut();
            let st = &mut *st;
            st.segments.insert(segment_base, seg);
            st.tail = Tail::new(self.inner.disk.as_ref(), position, &last_block);
            st.pending.clear();
            while st.cache.back().is_some_and(|b| b.base_offset >= new_end) {
                let b = st.cache.pop_back().expect("checked");
                st.cache_bytes -= b.bytes.len();
            }
            st.log_end = new_end;
            st.written_end = st.written_end.min(new_end);
            st.epochs.truncate_from_end(new_end);
            let inner = &self.inner;
            inner.acked_end.set(inner.acked_end.get().min(new_end));
            inner.high_watermark.set(inner.high_watermark.get().min(new_end));
            inner.high_watermark_target.set(inner.high_watermark_target.get().min(new_end));
        }
        self.inner.acked.notify();
        // The producers' state and the leader epochs described batches
        // that are gone. The new checkpoint is made durable before any
        // append: an older one could name epochs the new batches do not
        // have. Still under the maintenance lock (no retention meanwhile);
        // a failure here takes the log offline rather than let it append
        // beside a checkpoint that no longer describes it.
        let rebuilt = async {
            self.load_producers().await?;
            // Elected while the cut was under way: the cache was rebuilt
            // from the batches, and the new epoch starts at the new end.
            if let Writer::Leader(epoch) = self.inner.writer.get() {
                let mut st = self.inner.state.borrow_mut();
                let end = st.log_end;
                st.epochs.assign(epoch, end);
            }
            self.write_epoch_checkpoint().await?;
            let dir = &self.inner.dir;
            self.inner.disk.sync_filesystem(dir).await.ctx(|| format!("syncing {}", dir.display()))
        };
        if let Err(e) = rebuilt.await {
            self.inner.fail(StorageFailure::Io(format!("after truncating to {new_end}: {e}")));
            return Err(e);
        }
        drop(_maintenance);
        Ok(new_end)
    }

    async fn remove_segment_files(&self, base: Offset) -> Result<(), LogError> {
        let disk = &self.inner.disk;
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX] {
            let p = segment_path(&self.inner.dir, base, suffix);
            if disk.exists(&p).await.ctx(|| format!("checking {}", p.display()))? {
                disk.remove_file(&p).await.ctx(|| format!("removing {}", p.display()))?;
            }
        }
        disk.sync_dir(&self.inner.dir).await.ctx(|| format!("syncing {}", self.inner.dir.display()))
    }

    /// Deletes closed segments past `retention.ms` (by their newest batch's
    /// timestamp) or beyond `retention.bytes` (oldest first), advancing the
    /// log start offset. The active segment is never deleted. Returns the
    /// number of segments deleted.
    pub async fn apply_retention(&self) -> Result<usize, LogError> {
        let config = self.inner.config.borrow().clone();
        if !config.cleanup_delete {
            return Ok(0);
        }
        let now = self.inner.clock.now_ms();
        let mut total: Option<i64> = None;
        self.delete_oldest_segments(|st, seg, _next| {
            let total =
                total.get_or_insert_with(|| st.segments.values().map(|s| s.size as i64).sum());
            let newest =
                if seg.max_timestamp == NO_TIMESTAMP { seg.created_ms } else { seg.max_timestamp };
            let by_time = config.retention_ms >= 0 && now - newest > config.retention_ms;
            let by_size =
                config.retention_bytes >= 0 && *total - seg.size as i64 >= config.retention_bytes;
            if by_time || by_size {
                *total -= seg.size as i64;
            }
            by_time || by_size
        })
        .await
    }

    /// Deletes the closed segments whose every batch lies below `offset`
    /// (the segment after them starts at or before it), advancing the log
    /// start offset: for a log whose prefix is superseded, as a Raft log is
    /// by a snapshot ([`Self::advance_log_start`] is DeleteRecords'). The
    /// active segment is never deleted. Returns the number deleted.
    pub async fn delete_segments_before(&self, offset: Offset) -> Result<usize, LogError> {
        self.delete_oldest_segments(|_, _, next| next <= offset).await
    }

    /// Deletes closed segments from the oldest while `doomed(state,
    /// segment, next segment's base)` holds, stopping at the first that
    /// does not or that is still being closed.
    async fn delete_oldest_segments(
        &self,
        mut doomed: impl FnMut(&State<D>, &Segment<D>, Offset) -> bool,
    ) -> Result<usize, LogError> {
        let _maintenance = self.inner.maintenance_lock.lock().await;
        let deleted: Vec<Offset> = {
            let mut st = self.inner.state.borrow_mut();
            let st = &mut *st;
            let closing: Vec<Offset> = st.to_close.iter().map(|(b, _)| *b).collect();
            let bases: Vec<Offset> = st.segments.keys().copied().collect();
            let mut deleted = Vec::new();
            for pair in bases.windows(2) {
                let (base, next) = (pair[0], pair[1]);
                if closing.contains(&base) {
                    break; // not yet on disk for good; next run
                }
                if !doomed(st, &st.segments[&base], next) {
                    break;
                }
                deleted.push(base);
            }
            for b in &deleted {
                st.segments.remove(b);
            }
            let start = *st.segments.keys().next().expect("active segment stays");
            while st.cache.front().is_some_and(|b| b.base_offset < start) {
                let b = st.cache.pop_front().expect("checked");
                st.cache_bytes -= b.bytes.len();
            }
            // The checkpoint keeps the older entries until the next close;
            // opening trims them the same way.
            st.epochs.truncate_from_start(start);
            deleted
        };
        for &b in &deleted {
            self.remove_segment_files(b).await?;
        }
        Ok(deleted.len())
    }
}

/// Marks a log's cut under way for as long as it lives.
struct Truncating<'a>(&'a Cell<bool>);

impl<'a> Truncating<'a> {
    fn new(flag: &'a Cell<bool>) -> Self {
        flag.set(true);
        Truncating(flag)
    }
}

impl Drop for Truncating<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}
