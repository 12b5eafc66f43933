//! Room for appends in a [`PartitionLog`]: rolling to a new segment when
//! the active one is full, old or would hold offsets too far from its
//! base, and reserving file space ahead of the tail.
//!
//! On the log's shard, under the append lock its callers hold; the state
//! is never borrowed across an await.

use super::*;

impl<D: Disk> PartitionLog<D> {
    /// Rolls the active segment if `total` more bytes do not fit in it or it is
    /// too old, and checks that the disk has room for them. A full disk is reported as
    /// [`AppendError::NoSpace`] before any offset is assigned.
    ///
    /// A segment also rolls before any of the `records` new offsets would be
    /// more than `i32::MAX` past its base offset (Kafka's rule: relative
    /// offsets in the indexes stay in range), and offsets that would pass
    /// `i64::MAX` are refused.
    pub(super) async fn prepare_space(&self, total: u64, records: i64) -> Result<(), AppendError> {
        let inner = &*self.inner;
        let config = inner.config.borrow().clone();
        let now = inner.clock.now_ms();
        let (roll, size, reserved) = {
            let st = inner.state.borrow();
            let (&base, seg) = st.segments.iter().next_back().expect("active segment");
            let Some(last) = st.log_end.checked_add(records - 1) else {
                return Err(AppendError::Batch(BatchError::Invalid(
                    "offsets would pass the largest offset, i64::MAX",
                )));
            };
            // Far from its base even when empty (a damaged index can claim
            // offsets no batch backs): a new segment at the log end.
            let far = last - base > i32::MAX as i64;
            let roll = far
                || !seg.is_empty()
                    && (seg.size + total > config.segment_bytes
                        || now.saturating_sub(seg.created_ms) >= config.segment_ms);
            (roll, seg.size, seg.reserved)
        };
        if roll {
            self.roll(now).await?;
            return self.reserve(0, 0, total).await;
        }
        self.reserve(size, reserved, total).await
    }

    /// Makes sure the active segment's file can grow past `size + total`:
    /// the disk promises the bytes (see `DiskFile::reserve`) before any
    /// offset is assigned.
    pub(super) async fn reserve(
        &self,
        size: u64,
        reserved: u64,
        total: u64,
    ) -> Result<(), AppendError> {
        let needed = align_up(size + total);
        if needed <= reserved {
            return Ok(());
        }
        let target = needed;
        let file = self.active_file();
        let keep_free = self.inner.config.borrow().keep_free_bytes;
        match file.reserve(target, keep_free).await {
            Ok(()) => {
                let mut st = self.inner.state.borrow_mut();
                st.segments.values_mut().next_back().expect("active segment").reserved = target;
                Ok(())
            }
            Err(e) => match StorageFailure::from_io("reserving space for the segment", &e) {
                StorageFailure::NoSpace => Err(AppendError::NoSpace),
                other => Err(self.fail(other)),
            },
        }
    }

    pub(super) fn active_file(&self) -> Rc<D::File> {
        self.inner
            .state
            .borrow()
            .segments
            .values()
            .next_back()
            .expect("active segment")
            .file
            .clone()
    }

    /// Starts a new segment at the log end offset; the old one is closed on
    /// disk by the flusher once its data is written.
    pub(super) async fn roll(&self, now: Timestamp) -> Result<(), AppendError> {
        let inner = &*self.inner;
        let base = inner.state.borrow().log_end;
        let path = segment_path(&inner.dir, base, LOG_SUFFIX);
        let created = async {
            let file = inner.disk.open(&path, true).await?;
            inner.disk.sync_dir(&inner.dir).await?;
            Ok::<_, std::io::Error>(file)
        }
        .await;
        let file = match created {
            Ok(f) => f,
            Err(e) => {
                return Err(match StorageFailure::from_io("creating a segment", &e) {
                    StorageFailure::NoSpace => AppendError::NoSpace,
                    other => self.fail(other),
                })
            }
        };
        let mut st = inner.state.borrow_mut();
        let st = &mut *st;
        let old_file = st.segments.values().next_back().expect("active segment").file.clone();
        let old_base = *st.segments.keys().next_back().expect("active segment");
        if let Some(chunk) = st.tail.seal(inner.disk.as_ref()) {
            st.pending.push(PendingWrite { file: old_file, chunk });
        }
        st.to_close.push((old_base, base));
        st.segments.insert(base, Segment::new(base, Rc::new(file), now));
        st.tail = Tail::new(inner.disk.as_ref(), 0, &[]);
        inner.flush.note_appended(&self.inner, st, 0);
        Ok(())
    }
}
