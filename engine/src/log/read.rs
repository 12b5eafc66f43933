//! Reads of a [`PartitionLog`]: whole batches by offset, from the cache or
//! as a range of a segment file (which the network layer may splice), and
//! lookups by timestamp.
//!
//! On the log's shard; reads never await while holding the state borrowed,
//! and never go past the acknowledged end. The first read of a cached
//! batch that was appended as received stamps the cache's copy of it with
//! its offsets ([`crate::Batches::Received`]).

use super::*;

impl<D: Disk> PartitionLog<D> {
    /// Reads whole batches from the one holding `offset`, at most `max_bytes`
    /// (but always one whole batch if there is one), never at or past `upper`
    /// (exclusive; callers pass the high watermark) nor past the acknowledged
    /// end. Hot data comes from the cache, cold data as one file range.
    pub async fn read(
        &self,
        offset: Offset,
        max_bytes: usize,
        upper: Offset,
    ) -> Result<ReadResult<D>, LogError> {
        // Past the end of one segment the read goes on in the next, within
        // `max_bytes`: a compacted segment may hold little (or only its
        // emptied last batch), and clients expect records in a response.
        let (mut out, mut next) = self.read_from(offset, max_bytes, upper, true).await?;
        while let Some(at) = next {
            if out.bytes >= max_bytes {
                break;
            }
            let (more, after) = self.read_from(at, max_bytes - out.bytes, upper, false).await?;
            if more.chunks.is_empty() {
                break;
            }
            out.bytes += more.bytes;
            out.chunks.extend(more.chunks);
            out.upper_bound = more.upper_bound;
            next = after;
        }
        Ok(out)
    }

    /// One contiguous piece of [`Self::read`]: from the cache, or a range of
    /// one segment. `first`: at least one whole batch even past
    /// `max_bytes`. Also returns where the next segment's data starts when
    /// the range ended at its segment's end.
    async fn read_from(
        &self,
        offset: Offset,
        max_bytes: usize,
        upper: Offset,
        first: bool,
    ) -> Result<(ReadResult<D>, Option<Offset>), LogError> {
        let log_start = self.log_start_offset();
        let log_end = self.log_end_offset();
        if offset < log_start || offset > log_end {
            return Err(LogError::OffsetOutOfRange { offset, log_start, log_end });
        }
        let upper = upper.min(self.inner.acked_end.get());
        if offset >= upper {
            return Ok((ReadResult::empty(offset), None));
        }
        // Everything needed from the state, taken before any await.
        let (segment_base, file, mut limit, limit_offset, index_entry, index) = {
            let mut st = self.inner.state.borrow_mut();
            if let Some(front) = st.cache.front() {
                if offset >= front.base_offset {
                    self.inner.cache_reads.set(self.inner.cache_reads.get() + 1);
                    return Ok((Self::read_cache(&mut st, offset, max_bytes, upper, first), None));
                }
            }
            let (&base, seg) = st
                .segments
                .range(..=offset)
                .next_back()
                .ok_or(LogError::OffsetOutOfRange { offset, log_start, log_end })?;
            // The file range stops where the cache (unwritten data) starts.
            let (limit, limit_offset) = match st.cache.front() {
                Some(front) if front.segment_base == base => (front.position, front.base_offset),
                _ => (seg.size, seg.next_offset),
            };
            let entry = seg.index.lookup((offset - base) as u32);
            (base, seg.file.clone(), limit, limit_offset, entry, seg.index.clone())
        };
        let from_pos = index_entry.map(|e| e.position as u64).unwrap_or(0);
        if upper < limit_offset {
            // Stop before the batch holding `upper`.
            if let Some((pos, _)) =
                find_batch(file.as_ref(), from_pos, limit, |h| h.last_offset() >= upper)
                    .await
                    .map_err(|e| self.corrupt_or_io(segment_base, e))?
            {
                limit = pos;
            }
        }
        let Some((start, first_batch)) =
            find_batch(file.as_ref(), from_pos, limit, |h| h.last_offset() >= offset)
                .await
                .map_err(|e| self.corrupt_or_io(segment_base, e))?
        else {
            // Nothing here (a compacted segment's gap): the next segment.
            let next = (limit_offset < upper).then_some(limit_offset);
            return Ok((ReadResult::empty(offset), next.filter(|&n| n > offset)));
        };
        let end = if limit - start <= max_bytes as u64 {
            limit
        } else {
            let up_to = (start + max_bytes as u64).min(u32::MAX as u64) as u32;
            match index.last_position_in(start as u32, up_to) {
                Some(p) => p as u64,
                None if first || first_batch.size <= max_bytes => start + first_batch.size as u64,
                None => return Ok((ReadResult::empty(offset), None)),
            }
        };
        let len = end - start;
        let path = segment_path(&self.inner.dir, segment_base, LOG_SUFFIX);
        let next = (end == limit && limit_offset < upper).then_some(limit_offset);
        let upper_bound = match index.first_at_or_after(end as u32) {
            Some(e) if end < limit => segment_base + e.relative_offset as i64,
            _ => limit_offset,
        };
        self.inner.file_reads.set(self.inner.file_reads.get() + 1);
        Ok((
            ReadResult {
                chunks: vec![ReadChunk::File { file, path, segment_base, position: start, len }],
                bytes: len as usize,
                upper_bound: upper_bound.min(upper),
            },
            next,
        ))
    }

    /// Batches from the cache, each stamped with its offsets as it is read
    /// for the first time (see [`crate::Batches::Received`]).
    fn read_cache(
        st: &mut State<D>,
        offset: Offset,
        max_bytes: usize,
        upper: Offset,
        first: bool,
    ) -> ReadResult<D> {
        let from = st.cache.partition_point(|b| b.last_offset < offset);
        let mut result = ReadResult::empty(offset);
        for b in st.cache.iter_mut().skip(from) {
            if b.last_offset >= upper
                || ((result.bytes > 0 || !first) && result.bytes + b.bytes.len() > max_bytes)
            {
                break;
            }
            if !b.stamped {
                let mut stamped = BytesMut::from(&b.bytes[..]);
                stamp(&mut stamped, b.base_offset, b.leader_epoch);
                b.bytes = stamped.freeze();
                b.stamped = true;
            }
            result.bytes += b.bytes.len();
            result.chunks.push(ReadChunk::Memory(b.bytes.clone()));
            result.upper_bound = b.last_offset + 1;
        }
        result
    }

    pub(super) fn corrupt_or_io(&self, segment_base: Offset, e: FindError) -> LogError {
        match e {
            FindError::Io(source) => {
                LogError::Io { context: format!("reading segment {segment_base}"), source }
            }
            FindError::Corrupt(position, reason) => {
                LogError::Corrupt { segment_base, position, reason: reason.to_string() }
            }
        }
    }

    /// The bytes of a read chunk. File ranges are read from disk and every
    /// batch is checked again (length, magic, CRC): corrupt bytes are an
    /// error, never data.
    pub async fn read_bytes(&self, chunk: &ReadChunk<D>) -> Result<Bytes, LogError> {
        match chunk {
            ReadChunk::Memory(b) => Ok(b.clone()),
            ReadChunk::File { file, segment_base, position, len, .. } => {
                if *len == 0 {
                    return Ok(Bytes::new());
                }
                let data = file
                    .read_at(*position, *len as usize)
                    .await
                    .ctx(|| format!("reading segment {segment_base} at {position}"))?;
                let data = data.as_ref();
                let mut at = 0;
                while at < data.len() {
                    let h = validate_one(&data[at..]).map_err(|e| LogError::Corrupt {
                        segment_base: *segment_base,
                        position: position + at as u64,
                        reason: e.to_string(),
                    })?;
                    at += h.size;
                }
                if data.len() as u64 != *len {
                    return Err(LogError::Corrupt {
                        segment_base: *segment_base,
                        position: *position,
                        reason: format!("short read: {} of {len} bytes", data.len()),
                    });
                }
                Ok(Bytes::copy_from_slice(data))
            }
        }
    }

    /// The first record at or past the log start whose timestamp is at or
    /// after `timestamp`: its offset and timestamp (ListOffsets by time).
    /// `None` if every record is older.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: Timestamp,
    ) -> Result<Option<(Offset, Timestamp)>, LogError> {
        let log_start = self.log_start_offset();
        let mut from = log_start;
        loop {
            let Some((base, last, max_timestamp)) =
                self.batch_for_timestamp(timestamp, from).await?
            else {
                return Ok(None);
            };
            // Within the batch, the first record at or after the timestamp
            // (Kafka answers per record, compressed batches included).
            let at = base.max(log_start);
            let Some(bytes) = self.batch_at(at).await? else {
                return Ok(Some((at, max_timestamp)));
            };
            let found =
                crate::times::first_at_or_after(&bytes, timestamp, log_start).map_err(|e| {
                    LogError::Corrupt { segment_base: base, position: 0, reason: e.to_string() }
                })?;
            match found {
                Some(found) => return Ok(Some(found)),
                // Its matching records are all below the log start (the
                // batch straddles it): on to the next batch.
                None if base < log_start => from = last + 1,
                None => return Ok(Some((base, max_timestamp))),
            }
        }
    }

    /// The record with the largest timestamp below the acknowledged end
    /// (the first of them): its timestamp and offset (ListOffsets
    /// `MAX_TIMESTAMP`, KIP-734). Segments remember the batch; the record
    /// is found in it. `None` when that batch is gone below the log start
    /// (records deleted by DeleteRecords).
    pub async fn offset_of_max_timestamp(&self) -> Result<Option<(Timestamp, Offset)>, LogError> {
        let Some((ts, base)) = self.max_timestamp() else { return Ok(None) };
        let log_start = self.log_start_offset();
        if base >= self.inner.acked_end.get() {
            return Ok(None);
        }
        let at = base.max(log_start);
        let Some(bytes) = self.batch_at(at).await? else { return Ok(None) };
        let found = crate::times::first_at_max(&bytes, log_start).map_err(|e| {
            LogError::Corrupt { segment_base: base, position: 0, reason: e.to_string() }
        })?;
        // Only when that batch is the segment's record with the largest
        // timestamp (not a later one the read found past the log start).
        Ok(found.filter(|&(_, t)| t == ts).map(|(offset, ts)| (ts, offset)))
    }

    /// The bytes of the batch holding `offset` (perhaps with more after
    /// it); `None` past the acknowledged end.
    async fn batch_at(&self, offset: Offset) -> Result<Option<Bytes>, LogError> {
        let read = self.read(offset, 1, self.inner.acked_end.get()).await?;
        match read.chunks.first() {
            Some(chunk) => Ok(Some(self.read_bytes(chunk).await?)),
            None => Ok(None),
        }
    }

    /// The first batch whose `maxTimestamp >= timestamp` and whose last
    /// offset is at or past `from`, below the acknowledged end: its base
    /// offset, last offset and max timestamp.
    async fn batch_for_timestamp(
        &self,
        timestamp: Timestamp,
        from: Offset,
    ) -> Result<Option<(Offset, Offset, Timestamp)>, LogError> {
        let acked = self.inner.acked_end.get();
        let candidates: Vec<_> = {
            let st = self.inner.state.borrow();
            st.segments
                .values()
                .filter(|s| s.max_timestamp >= timestamp && s.next_offset > from)
                .map(|s| {
                    let start_rel = s.time_index.scan_start(timestamp);
                    let from = s.index.lookup(start_rel).map(|e| e.position as u64).unwrap_or(0);
                    let limit = match st.cache.iter().find(|b| b.segment_base == s.base_offset) {
                        Some(b) => b.position,
                        None => s.size,
                    };
                    (s.base_offset, s.file.clone(), from, limit)
                })
                .collect()
        };
        let wanted =
            |max_timestamp: Timestamp, last: Offset| max_timestamp >= timestamp && last >= from;
        for (base, file, position, limit) in candidates {
            let found = find_batch(file.as_ref(), position, limit, |h| {
                wanted(h.max_timestamp, h.last_offset())
            })
            .await
            .map_err(|e| self.corrupt_or_io(base, e))?;
            if let Some((_, h)) = found {
                if h.base_offset < acked {
                    return Ok(Some((h.base_offset, h.last_offset(), h.max_timestamp)));
                }
                return Ok(None);
            }
            let st = self.inner.state.borrow();
            if let Some(b) = st
                .cache
                .iter()
                .find(|b| b.segment_base == base && wanted(b.max_timestamp, b.last_offset))
            {
                return Ok((b.base_offset < acked).then_some((
                    b.base_offset,
                    b.last_offset,
                    b.max_timestamp,
                )));
            }
        }
        Ok(None)
    }

    /// The largest timestamp in the log and the base offset of its batch.
    pub fn max_timestamp(&self) -> Option<(Timestamp, Offset)> {
        let st = self.inner.state.borrow();
        st.segments
            .values()
            .filter(|s| s.max_timestamp != NO_TIMESTAMP)
            .map(|s| (s.max_timestamp, s.max_timestamp_offset))
            .max_by_key(|&(ts, off)| (ts, -off))
    }
}
