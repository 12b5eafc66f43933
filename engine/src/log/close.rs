//! A log's clean shutdown, in the steps a node runs over all its logs
//! (decision 31): [`PartitionLog::close_unsynced`] writes a log's last
//! files through the page cache, the caller syncs the file system, then
//! [`PartitionLog::mark_clean`] writes the marker that lets the next open
//! skip the scan, and the file system is synced again.
//! [`PartitionLog::close`] runs all of them for one log.
//!
//! Runs on the log's shard. The marker must never be written before the
//! files it vouches for are synced.

use super::*;

impl<D: Disk> PartitionLog<D> {
    /// Clean shutdown of this log alone: [`Self::close_unsynced`], a sync
    /// of the file system, [`Self::mark_clean`], another sync. Appends fail
    /// with `Closed` afterwards. A node closing many logs runs the steps
    /// itself, syncing the file system twice in all instead of per log.
    pub async fn close(&self) -> Result<(), LogError> {
        self.close_unsynced().await?;
        self.sync_filesystem().await?;
        self.mark_clean().await?;
        self.sync_filesystem().await
    }

    /// The first step of a clean shutdown: waits until everything appended
    /// is written and synced, then closes every segment (its file cut to
    /// size, its index files written) and writes the producer snapshot and
    /// the leader epoch checkpoint,
    /// none of it synced. Appends fail with `Closed` afterwards. Enough
    /// before deleting the log; before [`Self::mark_clean`] the file system
    /// must be synced (the marker vouches for these files).
    pub async fn close_unsynced(&self) -> Result<(), LogError> {
        let _append = self.inner.append_lock.lock().await;
        let log_end = self.log_end_offset();
        self.inner.flush.request_round(&self.inner);
        self.wait_acked(log_end).await.map_err(|e| match e {
            AppendError::Storage(f) => LogError::Storage(f),
            other => LogError::Invalid(other.to_string()),
        })?;
        let _maintenance = self.inner.maintenance_lock.lock().await;
        let plans: Vec<_> = {
            let mut st = self.inner.state.borrow_mut();
            st.closed = true;
            // The active segment, and rolled ones the flusher has not
            // closed yet. The others' indexes are on disk, synced: they are
            // not rewritten (unsynced, a crash could tear them).
            let mut bases: Vec<Offset> = st.to_close.drain(..).map(|(b, _)| b).collect();
            bases.extend(st.segments.keys().next_back().copied());
            bases.sort_unstable();
            bases.dedup();
            bases
                .into_iter()
                .filter_map(|b| st.segments.get_mut(&b).map(|s| s.close_plan()))
                .collect()
        };
        for plan in plans {
            plan.run(self.inner.disk.as_ref(), &self.inner.dir, false)
                .await
                .ctx(|| "closing segment".into())?;
        }
        self.write_producers_snapshot().await?;
        self.checkpoint_high_watermark().await?;
        self.write_epoch_checkpoint().await
    }

    /// The last step of a clean shutdown, after [`Self::close_unsynced`]
    /// and a sync of the file system: the clean shutdown marker, so the
    /// next open skips the scan. Durable at the next file system sync;
    /// until then the next open scans, which is only slower.
    pub async fn mark_clean(&self) -> Result<(), LogError> {
        let marker = self.inner.dir.join(CLEAN_SHUTDOWN_FILE);
        self.inner
            .disk
            .replace_file(&marker, b"")
            .await
            .ctx(|| "writing the clean shutdown marker".into())
    }

    /// Makes everything written to the file system holding this log durable.
    pub async fn sync_filesystem(&self) -> Result<(), LogError> {
        self.inner
            .disk
            .sync_filesystem(&self.inner.dir)
            .await
            .ctx(|| "syncing the file system".into())
    }

    /// Writes the producers' snapshot as of the log end and removes older
    /// ones. The caller holds the append lock (nothing moves meanwhile).
    /// Written at a stop, not synced: the caller syncs the file system.
    async fn write_producers_snapshot(&self) -> Result<(), LogError> {
        let inner = &*self.inner;
        let (at, bytes) = {
            let st = inner.state.borrow();
            (st.log_end, st.producers.encode())
        };
        let path = segment_path(&inner.dir, at, PRODUCERS_SUFFIX);
        inner
            .disk
            .replace_file(&path, &bytes)
            .await
            .ctx(|| format!("writing {}", path.display()))?;
        let names = inner.disk.list_dir(&inner.dir).await.ctx(|| "listing snapshots".into())?;
        for name in names {
            let stem = name.strip_suffix(&format!(".{PRODUCERS_SUFFIX}"));
            if stem.and_then(|s| s.parse::<Offset>().ok()).is_some_and(|o| o != at) {
                let p = inner.dir.join(&name);
                inner.disk.remove_file(&p).await.ctx(|| format!("removing {}", p.display()))?;
            }
        }
        Ok(())
    }
}
