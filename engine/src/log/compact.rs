//! Log compaction (`cleanup.policy=compact`): closed segments are rewritten
//! keeping only the latest record of each key.
//!
//! Runs on the partition's shard, started by the broker's cleaner task, one
//! log at a time per shard. It reads and writes only closed segments wholly
//! below the last stable offset (never the active one, never what a
//! reader cannot see yet: Kafka's first uncleanable offset) and must not
//! stall appends: it takes the
//! maintenance lock only for the short swap of one segment, and yields to
//! the executor after every [`COMPACTION_YIELD_BYTES`] it processes.
//!
//! One round, as Kafka's cleaner:
//! 1. **Key map.** The "dirty" segments (closed since the last round) are
//!    read and each key's latest offset noted, keyed by a 128-bit hash of
//!    the key, at most [`COMPACTION_KEYS_MAX`] keys: the dirty range ends
//!    at the last segment whose keys all fit.
//! 2. **Rewrite.** Every closed segment up to there is rewritten to
//!    `<base>.cleaned.tmp`: a record survives unless a later record of its
//!    key exists, and a tombstone (null value) also goes once it is older
//!    than `delete.retention.ms`. Offsets never change (gaps are normal).
//!    Batches left without records are dropped, except the segment's last,
//!    kept empty so that offsets stay contiguous across segments.
//!    Compressed batches and control batches (markers) are kept whole:
//!    the engine never decompresses, so their keys are not known.
//!    Transactional batches go by their transaction's fate ([`Fates`]),
//!    as Kafka's cleaner: an aborted one loses all its records, kept as an
//!    empty batch so that its producer's sequence survives a replay
//!    (read_committed readers never saw them, and their keys must never
//!    supersede a committed record); a committed one is compacted like any
//!    other.
//! 3. **Swap.** The new file is synced, its index files removed, and it is
//!    renamed over `<base>.log` (atomic: a crash leaves the old file or the
//!    new one, either readable; missing indexes are rebuilt on open), then
//!    the directory synced and the segment replaced in memory. Its index
//!    files are written at the next clean close. A segment that changed
//!    meanwhile (retention, truncation) is left alone.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;

use super::PartitionLog;
use crate::batch::{parse_records, validate_one, BatchHeader, HEADER_BYTES};
use crate::disk::{Disk, DiskFile};
use crate::error::{IoContext, LogError};
use crate::limits::{BLOCK_BYTES, RECOVERY_READ_BYTES};
use crate::segment::{segment_path, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use crate::types::{Offset, Timestamp};

/// Keys one round remembers. Each costs ~32 bytes in the map, so a round
/// holds at most ~16 MiB however large the partition; a larger dirty range
/// is compacted over several rounds (Kafka bounds its map the same way,
/// with `log.cleaner.dedupe.buffer.size`).
pub const COMPACTION_KEYS_MAX: usize = 512 * 1024;

/// Bytes processed between two yields to the executor, so that appends and
/// fetches of the shard wait at most one such slice of CPU work: 64 KiB of
/// small keyed records is ~600 records to parse and hash, well under
/// 100 µs here.
pub const COMPACTION_YIELD_BYTES: usize = 64 * 1024;

/// Paces compaction I/O: called with the bytes of every read and write,
/// it may wait before the next one. The engine has no timer of its own, so
/// the caller (the shard) provides the clock and the budget.
#[allow(async_fn_in_trait)]
pub trait Pacer {
    async fn pace(&mut self, bytes: usize);
}

/// No pacing: as fast as the disk goes.
pub struct Unpaced;

impl Pacer for Unpaced {
    async fn pace(&mut self, _bytes: usize) {}
}

/// Keeps compaction I/O at or below `bytes_per_sec` on average (Kafka's
/// `log.cleaner.io.max.bytes.per.second`), sleeping on glommio's timer:
/// only for use inside a glommio executor.
pub struct RatePacer {
    start: std::time::Instant,
    bytes: u64,
    bytes_per_sec: u64,
}

impl RatePacer {
    pub fn new(bytes_per_sec: u64) -> RatePacer {
        RatePacer {
            start: std::time::Instant::now(),
            bytes: 0,
            bytes_per_sec: bytes_per_sec.max(1),
        }
    }
}

impl Pacer for RatePacer {
    async fn pace(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
        let due = std::time::Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_sec as f64);
        let elapsed = self.start.elapsed();
        if due > elapsed {
            glommio::timer::sleep(due - elapsed).await;
        }
    }
}

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactionReport {
    pub segments_rewritten: usize,
    pub records_removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Every closed segment below this offset is compacted.
    pub compacted_to: Offset,
}

/// A key's 128-bit hash: two SipHash-1-3 passes with fixed, different keys.
/// A collision between two distinct keys would drop the older one's
/// record; at 2^-128 per pair that is not a practical concern (Kafka uses
/// MD5 of the key the same way).
fn key_hash(key: &[u8]) -> u128 {
    let h = |seed: u64| {
        let mut s =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .build_hasher();
        s.write_u64(seed);
        s.write(key);
        s.finish()
    };
    ((h(0x9e37_79b9_7f4a_7c15) as u128) << 64) | h(0xc2b2_ae3d_27d4_eb4f) as u128
}

/// A closed segment as the round sees it.
struct Closed<F> {
    base: Offset,
    file: Rc<F>,
    size: u64,
    next_offset: Offset,
}

impl<D: Disk> PartitionLog<D> {
    /// Runs one compaction round if the log is compacted and has closed
    /// segments written since the last round. Errors leave the log as it
    /// was (a leftover `.tmp` file is removed on the next open).
    pub async fn compact(&self) -> Result<CompactionReport, LogError> {
        self.compact_paced(&mut Unpaced).await
    }

    /// [`Self::compact`] with its I/O paced by `pacer`.
    pub async fn compact_paced(
        &self,
        pacer: &mut impl Pacer,
    ) -> Result<CompactionReport, LogError> {
        let mut report = CompactionReport::default();
        let config = self.inner.config.borrow().clone();
        if !config.cleanup_compact {
            return Ok(report);
        }
        // Only what every reader may see is cleaned: the closed segments
        // wholly below the last stable offset (itself at most the high
        // watermark), as Kafka's first uncleanable offset. A record past
        // it may yet be truncated (not replicated) or hidden from
        // read_committed readers, and must not supersede one they read.
        let stable = self.last_stable_offset();
        let mut closed = self.closed_segments();
        closed.retain(|s| s.next_offset <= stable);
        let dirty_from = self.inner.compacted_to.get();
        if !closed.iter().any(|s| s.next_offset > dirty_from) {
            report.compacted_to = dirty_from;
            return Ok(report);
        }
        let fates = self.fates(stable).await?;
        // 1. The key map over the dirty segments.
        let mut latest: HashMap<u128, Offset> = HashMap::new();
        let mut end = dirty_from;
        for seg in closed.iter().filter(|s| s.next_offset > dirty_from) {
            let mut keys: Vec<(u128, Offset)> = Vec::new();
            self.for_each_batch(seg, pacer, |h, bytes| {
                if fates.of(h) != Fate::Compact {
                    return Ok(());
                }
                for r in parse_records(bytes).map_err(|e| corrupt(seg.base, e))? {
                    if let Some(k) = r.key {
                        keys.push((key_hash(k), h.base_offset.saturating_add(r.offset_delta)));
                    }
                }
                Ok(())
            })
            .await?;
            if latest.len() + keys.len() > COMPACTION_KEYS_MAX && end > dirty_from {
                break; // the rest waits for the next round
            }
            for (k, o) in keys {
                latest.insert(k, o);
            }
            end = seg.next_offset;
        }
        // 2 and 3. Rewrite and swap each closed segment up to `end`.
        let horizon = self.inner.clock.now_ms().saturating_sub(config.delete_retention_ms);
        for seg in closed.iter().filter(|s| s.next_offset <= end) {
            if let Some((before, after, removed)) =
                self.rewrite(seg, &latest, &fates, horizon, pacer).await?
            {
                report.segments_rewritten += 1;
                report.records_removed += removed;
                report.bytes_before += before;
                report.bytes_after += after;
            }
        }
        self.inner.compacted_to.set(end);
        report.compacted_to = end;
        Ok(report)
    }

    /// Closed segments on disk for good, fully acknowledged, oldest first.
    fn closed_segments(&self) -> Vec<Closed<D::File>> {
        let st = self.inner.state.borrow();
        let acked = self.inner.acked_end.get();
        let closing: Vec<Offset> = st.to_close.iter().map(|(b, _)| *b).collect();
        let n = st.segments.len().saturating_sub(1);
        st.segments
            .values()
            .take(n)
            .take_while(|s| !closing.contains(&s.base_offset) && s.next_offset <= acked)
            .map(|s| Closed {
                base: s.base_offset,
                file: s.file.clone(),
                size: s.size,
                next_offset: s.next_offset,
            })
            .collect()
    }

    /// Calls `f` with every batch of a closed segment, in order, yielding to
    /// the executor between slices.
    async fn for_each_batch(
        &self,
        seg: &Closed<D::File>,
        pacer: &mut impl Pacer,
        mut f: impl FnMut(&BatchHeader, &[u8]) -> Result<(), LogError>,
    ) -> Result<(), LogError> {
        let mut pos = 0u64;
        let mut since_yield = 0usize;
        while pos < seg.size {
            let len = RECOVERY_READ_BYTES.min((seg.size - pos) as usize).max(HEADER_BYTES);
            let data = seg
                .file
                .read_at(pos, len)
                .await
                .ctx(|| format!("compaction reading segment {}", seg.base))?;
            pacer.pace(len).await;
            let data = data.as_ref();
            let mut at = 0usize;
            while at < data.len() {
                let Some(h) = BatchHeader::parse(&data[at..]) else { break };
                if at + h.size > data.len() {
                    break;
                }
                let h = validate_one(&data[at..]).map_err(|e| corrupt(seg.base, e))?;
                f(&h, &data[at..at + h.size])?;
                at += h.size;
                since_yield += h.size;
                if since_yield >= COMPACTION_YIELD_BYTES {
                    since_yield = 0;
                    futures_lite::future::yield_now().await;
                }
            }
            if at == 0 {
                // A batch larger than one read: read exactly it.
                let h = BatchHeader::parse(data).ok_or_else(|| LogError::Corrupt {
                    segment_base: seg.base,
                    position: pos,
                    reason: "short batch header".into(),
                })?;
                if h.size < HEADER_BYTES || h.size as u64 > seg.size - pos {
                    return Err(LogError::Corrupt {
                        segment_base: seg.base,
                        position: pos,
                        reason: "batch length runs past the segment".into(),
                    });
                }
                let whole = seg
                    .file
                    .read_at(pos, h.size)
                    .await
                    .ctx(|| format!("compaction reading segment {}", seg.base))?;
                let whole = whole.as_ref();
                let h = validate_one(whole).map_err(|e| corrupt(seg.base, e))?;
                f(&h, &whole[..h.size])?;
                at = h.size;
            }
            pos += at as u64;
        }
        Ok(())
    }

    /// The transactions' fates below the last stable offset `stable`.
    async fn fates(&self, stable: Offset) -> Result<Fates, LogError> {
        let mut aborted: HashMap<i64, Vec<(Offset, Offset)>> = HashMap::new();
        for a in self.aborted_transactions(self.log_start_offset(), stable).await? {
            aborted.entry(a.producer_id).or_default().push((a.first_offset, a.last_offset));
        }
        Ok(Fates { stable, aborted })
    }

    /// Rewrites one segment without superseded records and expired
    /// tombstones, then swaps it in. `None` if nothing would change or the
    /// segment changed meanwhile; else (bytes before, after, records removed).
    async fn rewrite(
        &self,
        seg: &Closed<D::File>,
        latest: &HashMap<u128, Offset>,
        fates: &Fates,
        horizon: Timestamp,
        pacer: &mut impl Pacer,
    ) -> Result<Option<(u64, u64, u64)>, LogError> {
        let mut out: Vec<u8> = Vec::new();
        let mut removed = 0u64;
        self.for_each_batch(seg, pacer, |h, bytes| {
            match fates.of(h) {
                Fate::Keep => {
                    out.extend_from_slice(bytes);
                    return Ok(());
                }
                Fate::Drop => {
                    // Kept as an empty batch (its header, plain): its
                    // producer's sequence and epoch stay for a replay
                    // after a crash, and offsets stay contiguous.
                    removed += h.records_count.max(0) as u64;
                    let mut empty = rebuild(bytes, &[]);
                    crate::batch::set_uncompressed(&mut empty);
                    out.extend_from_slice(&empty);
                    return Ok(());
                }
                Fate::Compact if h.records_count == 0 => {
                    out.extend_from_slice(bytes);
                    return Ok(());
                }
                Fate::Compact => {}
            }
            let records = parse_records(bytes).map_err(|e| corrupt(seg.base, e))?;
            let keep: Vec<&[u8]> = records
                .iter()
                .filter(|r| {
                    let Some(key) = r.key else { return true };
                    let offset = h.base_offset.saturating_add(r.offset_delta);
                    let superseded = latest.get(&key_hash(key)).is_some_and(|&o| o > offset);
                    let expired_tombstone = r.value.is_none()
                        && h.base_timestamp.saturating_add(r.timestamp_delta) < horizon;
                    !(superseded || expired_tombstone)
                })
                .map(|r| r.raw)
                .collect();
            removed += (records.len() - keep.len()) as u64;
            if keep.len() == records.len() {
                out.extend_from_slice(bytes);
            } else if !keep.is_empty() || h.last_offset() + 1 == seg.next_offset {
                out.extend_from_slice(&rebuild(bytes, &keep));
            }
            Ok(())
        })
        .await?;
        if removed == 0 {
            return Ok(None);
        }
        let after = out.len() as u64;
        if !self.swap(seg, out, pacer).await? {
            return Ok(None);
        }
        Ok(Some((seg.size, after, removed)))
    }

    /// Writes `data` as the new content of `seg` and swaps it in. `false`
    /// if the segment changed meanwhile (nothing is swapped then).
    async fn swap(
        &self,
        seg: &Closed<D::File>,
        data: Vec<u8>,
        pacer: &mut impl Pacer,
    ) -> Result<bool, LogError> {
        let inner = &*self.inner;
        let disk = inner.disk.as_ref();
        let dir = &inner.dir;
        let tmp = segment_path(dir, seg.base, "cleaned.tmp");
        let file = disk.open(&tmp, true).await.ctx(|| format!("creating {}", tmp.display()))?;
        let mut written = 0usize;
        while written < data.len() {
            let len = (data.len() - written).min(RECOVERY_READ_BYTES);
            let padded = len.div_ceil(BLOCK_BYTES) * BLOCK_BYTES;
            let mut buf = disk.alloc(padded);
            buf.as_mut()[..len].copy_from_slice(&data[written..written + len]);
            buf.as_mut()[len..].fill(0);
            file.write_at(Rc::new(buf), written as u64)
                .await
                .ctx(|| format!("writing {}", tmp.display()))?;
            written += len;
            pacer.pace(len).await;
            futures_lite::future::yield_now().await;
        }
        file.truncate(data.len() as u64).await.ctx(|| format!("truncating {}", tmp.display()))?;
        file.fdatasync().await.ctx(|| format!("syncing {}", tmp.display()))?;
        drop(file);

        let _maintenance = inner.maintenance_lock.lock().await;
        let unchanged = {
            let st = inner.state.borrow();
            !st.closed
                && st.segments.get(&seg.base).is_some_and(|s| {
                    s.size == seg.size
                        && s.next_offset == seg.next_offset
                        && Rc::ptr_eq(&s.file, &seg.file)
                })
        };
        if !unchanged {
            disk.remove_file(&tmp).await.ctx(|| format!("removing {}", tmp.display()))?;
            return Ok(false);
        }
        // Old indexes describe the old positions: gone before the swap, so
        // that a crash in between rebuilds them for whichever file is there.
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let p = segment_path(dir, seg.base, suffix);
            if disk.exists(&p).await.ctx(|| format!("checking {}", p.display()))? {
                disk.remove_file(&p).await.ctx(|| format!("removing {}", p.display()))?;
            }
        }
        let path = segment_path(dir, seg.base, LOG_SUFFIX);
        disk.rename(&tmp, &path).await.ctx(|| format!("renaming over {}", path.display()))?;
        disk.sync_dir(dir).await.ctx(|| format!("syncing {}", dir.display()))?;
        let file =
            Rc::new(disk.open(&path, false).await.ctx(|| format!("opening {}", path.display()))?);
        let interval = inner.config.borrow().index_interval_bytes;
        let created = inner.state.borrow().segments[&seg.base].created_ms;
        let mut new = Segment::<D>::new(seg.base, file, created);
        // Offsets do not change: its aborted transactions stay as they are.
        new.aborted = inner.state.borrow().segments[&seg.base].aborted.clone();
        let mut at = 0usize;
        while at < data.len() {
            let h = validate_one(&data[at..]).map_err(|e| corrupt(seg.base, e))?;
            new.note_batch(&h, at as u64, interval);
            at += h.size;
        }
        debug_assert_eq!(new.next_offset, seg.next_offset, "the last batch is kept");
        // The index files are not written now: each is a synced file write
        // and two directory syncs, which stall other fdatasyncs of the disk
        // (ext4's journal). The in-memory indexes serve reads; the next
        // clean close writes the files, and an open without them rebuilds
        // them from the (small) compacted segment.
        let _ = new.close_plan();
        {
            let mut st = inner.state.borrow_mut();
            st.segments.insert(seg.base, new);
            // Cached copies of the old batches (and their old positions) go:
            // they are the oldest entries, as this segment is closed.
            while st.cache.front().is_some_and(|b| b.segment_base <= seg.base) {
                let b = st.cache.pop_front().expect("checked");
                st.cache_bytes -= b.bytes.len();
            }
        }
        Ok(true)
    }
}

/// What compaction does with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Kept whole, its keys unknown or not to be trusted.
    Keep,
    /// Removed whole: a batch of an aborted transaction.
    Drop,
    /// Its records compacted by key.
    Compact,
}

/// The transactions' fates for one round: what was aborted (by producer,
/// the offsets from its first batch to its marker) and the last stable
/// offset when the round began (below it every transaction is decided).
struct Fates {
    stable: Offset,
    aborted: HashMap<i64, Vec<(Offset, Offset)>>,
}

impl Fates {
    fn of(&self, h: &BatchHeader) -> Fate {
        if h.is_control() {
            return Fate::Keep;
        }
        if h.is_transactional() {
            if h.last_offset() >= self.stable {
                return Fate::Keep;
            }
            let aborted = self.aborted.get(&h.producer_id).is_some_and(|spans| {
                spans.iter().any(|&(first, last)| first <= h.base_offset && h.base_offset <= last)
            });
            if aborted {
                return Fate::Drop;
            }
        }
        if h.compression() != 0 {
            return Fate::Keep;
        }
        Fate::Compact
    }
}

/// A batch with only `records` (raw encodings, in order) left: same base
/// offset, `lastOffsetDelta`, timestamps, producer fields and attributes
/// (so offsets and sequences are preserved), new count, length and CRC.
fn rebuild(batch: &[u8], records: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + records.iter().map(|r| r.len()).sum::<usize>());
    out.extend_from_slice(&batch[..HEADER_BYTES]);
    for r in records {
        out.extend_from_slice(r);
    }
    crate::batch::set_count_and_crc(&mut out, records.len() as i32);
    out
}

fn corrupt(segment_base: Offset, e: crate::batch::BatchError) -> LogError {
    LogError::Corrupt { segment_base, position: 0, reason: e.to_string() }
}
