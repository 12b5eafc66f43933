//! Opening a [`PartitionLog`]: its segments found and recovered (the last
//! one scanned after an unclean stop), then the state folded from the
//! batches (idempotent producers, leader epochs) rebuilt from their
//! snapshots and a replay; and the replay itself, for callers that fold
//! state of their own from a log.
//!
//! On the shard that will own the log, before anything is appended.

use super::*;

impl<D: Disk> PartitionLog<D> {
    /// Opens (or creates) the log in `dir`, recovering it if the last
    /// shutdown was not clean. `dir` must be absolute.
    pub async fn open(
        disk: Rc<D>,
        dir: &Path,
        config: LogConfig,
        flusher: &Flusher<D>,
        clock: Rc<dyn Clock>,
    ) -> Result<Self, LogError> {
        config.validate().map_err(LogError::Invalid)?;
        if !dir.is_absolute() {
            return Err(LogError::Invalid(format!(
                "log directory {} is not absolute",
                dir.display()
            )));
        }
        let dir = dir.to_path_buf();
        disk.create_dir_all(&dir).await.ctx(|| format!("creating {}", dir.display()))?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = disk.exists(&marker).await.ctx(|| format!("checking {}", marker.display()))?;
        let mut report = RecoveryReport { clean_shutdown: clean, ..Default::default() };

        let names = disk.list_dir(&dir).await.ctx(|| format!("listing {}", dir.display()))?;
        let mut bases: Vec<Offset> = names.iter().filter_map(|n| parse_log_name(n)).collect();
        bases.sort_unstable();
        for name in names.iter().filter(|n| n.ends_with(".tmp")) {
            disk.remove_file(&dir.join(name)).await.ctx(|| format!("removing {name}"))?;
        }
        let now = clock.now_ms();
        let mut segments = BTreeMap::new();
        if bases.is_empty() {
            let path = segment_path(&dir, 0, LOG_SUFFIX);
            let file =
                disk.open(&path, true).await.ctx(|| format!("creating {}", path.display()))?;
            disk.sync_dir(&dir).await.ctx(|| format!("syncing {}", dir.display()))?;
            segments.insert(0, Segment::new(0, Rc::new(file), now));
        }
        let mut cut = false;
        for (i, &base) in bases.iter().enumerate() {
            if cut {
                // Data before this segment was lost: what follows cannot be
                // served without a gap, so it goes (Kafka truncates the log
                // at the first invalid batch, not the segment).
                for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX] {
                    let p = segment_path(&dir, base, suffix);
                    if disk.exists(&p).await.ctx(|| format!("checking {}", p.display()))? {
                        disk.remove_file(&p).await.ctx(|| format!("removing {}", p.display()))?;
                    }
                }
                report.removed_segments += 1;
                continue;
            }
            let is_last = i + 1 == bases.len();
            let segment =
                Self::open_segment(&disk, &dir, base, clean, is_last, &config, now, &mut report)
                    .await?;
            // Offsets are contiguous across segments. A segment that ends
            // before the next one starts lost its end (unsynced data of a
            // rolled segment, or corruption): the log ends there.
            if !is_last && bases[i + 1] != segment.next_offset {
                report.notes.push(format!(
                    "segment {base} ends at offset {} but the next starts at {}: later segments removed",
                    segment.next_offset,
                    bases[i + 1]
                ));
                cut = true;
            }
            segments.insert(base, segment);
        }
        if report.removed_segments > 0 || report.truncated_bytes > 0 {
            disk.sync_dir(&dir).await.ctx(|| format!("syncing {}", dir.display()))?;
        }
        report.segments = segments.len();

        let active = segments.values().next_back().expect("at least one segment");
        let end = active.size;
        let block_start = align_down(end);
        let last_block = tail_block(active.file.as_ref(), end).await?;
        if last_block.len() as u64 != end - block_start {
            return Err(LogError::Invalid("active segment shorter than its data".into()));
        }
        let tail = Tail::new(disk.as_ref(), end, &last_block);
        let log_end = active.next_offset;
        if clean {
            disk.remove_file(&marker).await.ctx(|| "removing the clean shutdown marker".into())?;
            disk.sync_dir(&dir).await.ctx(|| format!("syncing {}", dir.display()))?;
        }
        let state = State {
            segments,
            tail,
            cache: VecDeque::new(),
            cache_bytes: 0,
            log_end,
            written_end: log_end,
            pending: Vec::new(),
            unwritten_bytes: 0,
            unsynced_files: Vec::new(),
            to_close: Vec::new(),
            failed: None,
            closed: false,
            registered: false,
            writing: false,
            producers: ProducerStates::default(),
            epochs: LeaderEpochCache::default(),
        };
        let inner = LogInner {
            disk,
            dir,
            config: RefCell::new(config),
            clock,
            flush: flusher.shared().clone(),
            state: RefCell::new(state),
            append_lock: Mutex::new(()),
            maintenance_lock: Mutex::new(()),
            acked_end: Cell::new(log_end),
            acked: Notify::default(),
            high_watermark: Cell::new(log_end),
            high_watermark_target: Cell::new(log_end),
            replicated: Cell::new(false),
            writer: Cell::new(Writer::Anyone),
            truncating: Cell::new(false),
            checkpointed_hw: Cell::new(-1),
            txn_index_damaged: Cell::new(report.damaged_txn_indexes > 0),
            log_start: Cell::new(0),
            recovery: report,
            compacted_to: Cell::new(0),
            cache_reads: Cell::new(0),
            file_reads: Cell::new(0),
        };
        let log = PartitionLog { inner: Rc::new(inner) };
        log.load_producers().await?;
        log.load_high_watermark().await?;
        log.load_log_start().await?;
        Ok(log)
    }

    /// Rebuilds the producers' state: the newest snapshot at or below the
    /// log end (newer ones describe data a crash took back, and go), then
    /// every batch after it; the aborted transactions of the markers in
    /// those batches (the segments' indexes keep their older entries); and
    /// the leader epochs, likewise from their checkpoint.
    pub(super) async fn load_producers(&self) -> Result<(), LogError> {
        let inner = &*self.inner;
        let log_end = self.log_end_offset();
        let names = inner.disk.list_dir(&inner.dir).await.ctx(|| "listing snapshots".into())?;
        let mut snapshots: Vec<Offset> = names
            .iter()
            .filter_map(|n| n.strip_suffix(&format!(".{PRODUCERS_SUFFIX}")))
            .filter(|stem| stem.len() == 20)
            .filter_map(|stem| stem.parse().ok())
            .collect();
        snapshots.sort_unstable();
        let mut state = ProducerStates::default();
        let mut from = self.log_start_offset();
        // A damaged aborted-transactions index is rebuilt by replaying the
        // whole log: no snapshot then.
        if inner.txn_index_damaged.replace(false) {
            snapshots.clear();
        }
        while let Some(at) = snapshots.pop() {
            let path = segment_path(&inner.dir, at, PRODUCERS_SUFFIX);
            // Newer than the log (a crash took the data back), or older
            // than its start (retention removed batches it would need to
            // be replayed from: an open transaction's marker among them
            // would never be seen).
            if at > log_end || at < from {
                inner
                    .disk
                    .remove_file(&path)
                    .await
                    .ctx(|| format!("removing {}", path.display()))?;
                continue;
            }
            let bytes = read_optional(&inner.disk, &path).await?.unwrap_or_default();
            if let Some(s) = ProducerStates::decode(&bytes) {
                state = s;
                from = from.max(at);
                break;
            }
        }
        // The leader epochs: the checkpoint's entries below the log end,
        // then the batches after what it covered (all of them without one).
        let log_start = self.log_start_offset();
        let path = inner.dir.join(CHECKPOINT_FILE);
        let checkpoint = read_optional(&inner.disk, &path).await?;
        let (mut epochs, covered) =
            checkpoint.as_deref().and_then(LeaderEpochCache::decode).unwrap_or_default();
        // An entry at or past the covered end describes no batch the
        // checkpoint saw (a leader's epoch that starts at its end, written
        // before its first batch): the replay below finds the real ones.
        epochs.truncate_from_end(covered.min(log_end));
        epochs.truncate_from_start(log_start);
        let epochs_from = covered.clamp(log_start, log_end);
        let mut aborted = Vec::new();
        self.replay(from.min(epochs_from), |h, bytes| {
            if h.last_offset() >= from {
                let marker = h.is_control().then(|| crate::txn::parse_marker(h, bytes));
                if let Some(done) = state.apply(h, marker.flatten()).filter(|d| d.aborted) {
                    aborted.push(crate::txn::AbortedTxn {
                        producer_id: done.producer_id,
                        first_offset: done.first_offset,
                        last_offset: done.last_offset,
                        last_stable_offset: state
                            .next_unstable(done.producer_id, done.last_offset + 1),
                    });
                }
            }
            if h.last_offset() >= epochs_from {
                epochs.assign(h.leader_epoch, h.base_offset.max(log_start));
            }
            Ok(())
        })
        .await?;
        {
            let mut st = inner.state.borrow_mut();
            st.producers = state;
            st.epochs = epochs;
        }
        self.rebuild_txn_indexes(from, aborted).await?;
        // The log lost data the checkpoint described (recovery cut it, or
        // a truncation): rewrite it, durably, before anything is appended,
        // or a later open would take its entries for the new batches'.
        if covered > log_end {
            self.write_epoch_checkpoint().await?;
            let dir = &inner.dir;
            inner.disk.sync_filesystem(dir).await.ctx(|| format!("syncing {}", dir.display()))?;
        }
        Ok(())
    }

    /// Calls `f` with every batch (header and bytes) from the one holding
    /// `from` up to the acknowledged end, in order: for replaying a log
    /// that state is folded from (metadata, offsets, producers).
    pub async fn replay(
        &self,
        from: Offset,
        mut f: impl FnMut(&BatchHeader, &[u8]) -> Result<(), LogError>,
    ) -> Result<(), LogError> {
        let end = self.acked_end_offset();
        let mut offset = from.max(self.log_start_offset());
        while offset < end {
            let read = self.read(offset, crate::limits::RECOVERY_READ_BYTES, end).await?;
            if read.chunks.is_empty() {
                break;
            }
            for chunk in &read.chunks {
                let bytes = self.read_bytes(chunk).await?;
                let mut at = 0;
                while at < bytes.len() {
                    let h = validate_one(&bytes[at..]).map_err(|e| LogError::Corrupt {
                        segment_base: offset,
                        position: at as u64,
                        reason: e.to_string(),
                    })?;
                    if h.last_offset() >= from {
                        f(&h, &bytes[at..at + h.size])?;
                    }
                    offset = h.last_offset() + 1;
                    at += h.size;
                }
            }
        }
        Ok(())
    }

    /// Opens one segment: loads its indexes and scans what must be scanned.
    #[allow(clippy::too_many_arguments)]
    async fn open_segment(
        disk: &Rc<D>,
        dir: &Path,
        base: Offset,
        clean: bool,
        is_last: bool,
        config: &LogConfig,
        now: Timestamp,
        report: &mut RecoveryReport,
    ) -> Result<Segment<D>, LogError> {
        let path = segment_path(dir, base, LOG_SUFFIX);
        let file = disk.open(&path, false).await.ctx(|| format!("opening {}", path.display()))?;
        let file_size = file.size().await.ctx(|| format!("size of {}", path.display()))?;
        let mut seg = Segment::<D>::new(base, Rc::new(file), now);
        let index = read_optional(disk, &segment_path(dir, base, INDEX_SUFFIX))
            .await?
            .and_then(|b| crate::index::OffsetIndex::decode(&b, file_size.max(1)));
        let time_index = read_optional(disk, &segment_path(dir, base, TIME_INDEX_SUFFIX))
            .await?
            .and_then(|b| crate::index::TimeIndex::decode(&b));
        let mut full_scan = !clean && is_last || index.is_none() || time_index.is_none();
        let (mut from, mut expected) = if full_scan {
            if !clean && is_last {
                report.notes.push(format!("segment {base}: unclean shutdown, full scan"));
            } else {
                report.rebuilt_indexes += 1;
                report
                    .notes
                    .push(format!("segment {base}: index missing or inconsistent, rebuilt"));
            }
            seg.clear_indexes();
            (0, base)
        } else {
            seg.index = index.expect("checked");
            seg.time_index = time_index.expect("checked");
            if let Some(t) = seg.time_index.last() {
                seg.max_timestamp = t.timestamp;
                seg.max_timestamp_offset = base.saturating_add(t.relative_offset as i64);
            }
            seg.reset_to_last_index_entry()
        };
        let interval = config.index_interval_bytes;
        let outcome = loop {
            let file = seg.file.clone();
            let outcome = scan(file.as_ref(), file_size, from, expected, base, |h, pos| {
                seg.note_batch(h, pos, interval)
            })
            .await
            .ctx(|| format!("scanning {}", path.display()))?;
            let stopped_early = outcome.valid_end < file_size
                && !Self::all_zeros(seg.file.as_ref(), outcome.valid_end, file_size).await?;
            if stopped_early && !full_scan {
                // The index led the scan to a place the data does not go on
                // from: a stale or damaged index must never cut data, so
                // the segment is scanned whole and its indexes rebuilt.
                report.rebuilt_indexes += 1;
                report.notes.push(format!(
                    "segment {base}: index entry at {from} does not match the data, rebuilt"
                ));
                seg.clear_indexes();
                (full_scan, from, expected) = (true, 0, base);
                continue;
            }
            break outcome;
        };
        report.scanned_bytes += outcome.valid_end - from;
        if outcome.valid_end < file_size {
            // The zero padding of the last block is expected after a crash;
            // anything else is a torn or corrupt batch. Either way the valid
            // data ends here.
            let trailing = file_size - outcome.valid_end;
            let zeros_only =
                Self::all_zeros(seg.file.as_ref(), outcome.valid_end, file_size).await?;
            if !zeros_only {
                report.truncated_bytes += trailing;
                report.notes.push(format!(
                    "segment {base}: invalid data at position {} ({}), {trailing} bytes cut",
                    outcome.valid_end,
                    outcome.stopped.unwrap_or("?")
                ));
            }
            seg.file
                .truncate(outcome.valid_end)
                .await
                .ctx(|| format!("truncating {}", path.display()))?;
            seg.file.fdatasync().await.ctx(|| format!("syncing {}", path.display()))?;
        }
        seg.reserved = outcome.valid_end;
        debug_assert_eq!(seg.size, outcome.valid_end);
        // Its aborted transactions: a closed segment's stay in the file,
        // the active one's come into memory (the replay corrects both).
        let txn_path = segment_path(dir, base, TXN_INDEX_SUFFIX);
        let txn_index = read_optional(disk, &txn_path).await?;
        let decoded = txn_index.as_deref().map(crate::txn::AbortedTxn::decode_all);
        let damaged = matches!(decoded, Some(None));
        let entries = match decoded {
            None => Vec::new(),
            Some(Some(v)) => v,
            Some(None) => {
                report.notes.push(format!(
                    "segment {base}: damaged {}, rebuilt from a replay of the log",
                    txn_path.display()
                ));
                report.damaged_txn_indexes += 1;
                Vec::new()
            }
        };
        // A damaged file is in memory (empty) until the replay rewrites it.
        seg.aborted = if is_last || txn_index.is_none() || damaged {
            crate::segment::TxnEntries::Memory(entries)
        } else {
            crate::segment::TxnEntries::Stored(entries.len())
        };
        if full_scan && !is_last {
            // Persist the rebuilt indexes of a closed segment.
            seg.close_plan()
                .run(disk, dir, true)
                .await
                .ctx(|| format!("writing indexes of {}", path.display()))?;
        }
        Ok(seg)
    }

    async fn all_zeros(file: &D::File, from: u64, to: u64) -> Result<bool, LogError> {
        let mut pos = from;
        while pos < to {
            let len = ((to - pos) as usize).min(crate::limits::RECOVERY_READ_BYTES);
            let data = file.read_at(pos, len).await.ctx(|| "reading after the data".into())?;
            if data.as_ref().iter().any(|&b| b != 0) {
                return Ok(false);
            }
            if data.as_ref().is_empty() {
                break;
            }
            pos += data.as_ref().len() as u64;
        }
        Ok(true)
    }
}
