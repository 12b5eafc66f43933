//! The checks a produce request's batches pass before any offset is
//! assigned: Kafka's `LogValidator` for magic 2, as a pure function over
//! the request's bytes.
//!
//! Runs on the appending shard inside [`crate::PartitionLog::append`], with
//! nothing awaited; it must never panic or allocate on a count it read (a
//! batch may claim 2^31 records in 70 bytes). Nothing of a request is
//! appended unless every batch passes. What is checked, per batch:
//!
//! - structure: length, magic 2, CRC-32C, size against `max.message.bytes`;
//! - counts: `recordsCount > 0` and `lastOffsetDelta + 1 == recordsCount`
//!   for every batch, compressed or not, so offsets stay dense;
//! - attributes: a known codec, no control batch (markers are the
//!   broker's: [`crate::PartitionLog::append_marker`]), a transactional
//!   batch only with a producer id (whether its transaction may take it is
//!   the broker's check, KIP-890);
//! - producer fields: a batch with a producer id has a non-negative epoch
//!   and base sequence;
//! - records (decompressed first when compressed, within
//!   [`DECOMPRESSED_BATCH_BYTES_MAX`]): each record's length varint matches
//!   its fields, varints are in range (5 bytes for 32-bit fields, 10 for
//!   the timestamp delta), offset deltas run 0, 1, 2, ..., lengths are -1
//!   or fit the record, header counts and keys are not negative, the count
//!   found equals `recordsCount` with no bytes left over; on a compacted
//!   topic every record has a key;
//! - timestamps: every record's timestamp (base + delta, no overflow) lies
//!   within `message.timestamp.before.max.ms` before and
//!   `message.timestamp.after.max.ms` after the broker's clock;
//!   `maxTimestamp` is set to the largest record timestamp, as Kafka does,
//!   with the CRC recomputed when the producer's value differed; under
//!   `message.timestamp.type=LogAppendTime` the records' timestamps are not
//!   bounded and the batch is stamped with the broker's clock instead
//!   (attribute bit 3 and `maxTimestamp`, CRC recomputed).

use std::cell::RefCell;

use crate::batch::{
    set_timestamps, validate_one, BatchError, BatchHeader, HEADER_BYTES, LOG_APPEND_TIME, MAGIC_V2,
};
use crate::compression::decompress_into;
use crate::types::{Timestamp, NO_TIMESTAMP};

/// Largest records sections the compressed batches of one append may expand
/// to, together. Kafka has no
/// such bound (it streams); here one decompression runs at a time per
/// shard into a reused buffer, so this is that buffer's worst case. 64 MiB
/// is 64 times the default `max.message.bytes`, far above what a real
/// producer's batch compresses from (its `batch.size` bounds the
/// uncompressed bytes, 1 MiB by default in librdkafka).
pub const DECOMPRESSED_BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The decompression buffer is kept between batches up to this size, and
/// dropped after a batch that needed more.
const DECOMPRESS_BUFFER_KEPT_BYTES: usize = 4 * 1024 * 1024;

thread_local! {
    /// One per shard thread: validation never awaits, so one buffer serves
    /// every partition of the shard in turn.
    static DECOMPRESSED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What a partition's batches are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// The largest batch (see [`crate::LogConfig::batch_bytes_max`]).
    pub max_batch_bytes: usize,
    /// The broker's clock, for timestamp bounds.
    pub now_ms: Timestamp,
    /// `message.timestamp.before.max.ms`: how far in the past a record's
    /// timestamp may be.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far in the future.
    pub timestamp_after_max_ms: i64,
    /// `cleanup.policy` has `compact`: every record needs a key.
    pub compacted: bool,
    /// `message.timestamp.type=LogAppendTime`: each batch is stamped with
    /// `now_ms` (attribute bit 3, `maxTimestamp`), and the records'
    /// own timestamps are not bounded (Kafka checks them for CreateTime
    /// only).
    pub log_append_time: bool,
}

impl Rules {
    /// Rules that bound only the batch size (tests and tools).
    pub fn lenient(max_batch_bytes: usize) -> Rules {
        Rules {
            max_batch_bytes,
            now_ms: 0,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            compacted: false,
            log_append_time: false,
        }
    }
}

/// Validates every batch of one produce request for one partition and
/// returns their headers (with `max_timestamp` as stored). Nothing is
/// accepted unless everything is. May rewrite a batch's `maxTimestamp`
/// and CRC (see the module doc); nothing else changes.
pub fn validate_for_append(buf: &mut [u8], rules: &Rules) -> Result<Vec<BatchHeader>, BatchError> {
    Ok(check_for_append(buf, rules)?.apply(buf))
}

/// [`validate_for_append`]'s checks, changing nothing: for batches that
/// may stay as received (a slice of the request) when
/// [`Checked::unchanged`].
pub fn check_for_append(buf: &[u8], rules: &Rules) -> Result<Checked, BatchError> {
    check_batches(buf, rules).map(|batches| Checked { batches })
}

/// Batches that passed every check: their headers, and the timestamps
/// (LogAppendTime bit, `maxTimestamp`) that some must get before they are
/// stored.
#[derive(Debug)]
pub struct Checked {
    batches: Vec<(BatchHeader, Option<(bool, Timestamp)>)>,
}

impl Checked {
    /// Whether the batches are stored exactly as checked.
    pub fn unchanged(&self) -> bool {
        self.batches.iter().all(|(_, rewrite)| rewrite.is_none())
    }

    /// The headers as stored: for batches that are [`Self::unchanged`].
    pub fn headers(self) -> Vec<BatchHeader> {
        debug_assert!(self.unchanged(), "headers of batches that must be rewritten");
        self.batches.into_iter().map(|(h, _)| h).collect()
    }

    /// Rewrites the timestamps (and CRC) of the batches that need it in
    /// `buf`, the bytes that were checked or a copy of them, and returns
    /// the headers as stored.
    pub fn apply(self, buf: &mut [u8]) -> Vec<BatchHeader> {
        let mut headers = Vec::with_capacity(self.batches.len());
        let mut at = 0;
        for (mut header, rewrite) in self.batches {
            if let Some((lat, max_timestamp)) = rewrite {
                let batch = &mut buf[at..at + header.size];
                (header.attributes, header.crc) = set_timestamps(batch, lat, max_timestamp);
                header.max_timestamp = max_timestamp;
            }
            at += header.size;
            headers.push(header);
        }
        headers
    }
}

/// Every check of [`validate_for_append`], changing nothing: each batch's
/// header and, when its timestamps must be rewritten, the LogAppendTime
/// bit and `maxTimestamp` to write.
#[allow(clippy::type_complexity)]
fn check_batches(
    buf: &[u8],
    rules: &Rules,
) -> Result<Vec<(BatchHeader, Option<(bool, Timestamp)>)>, BatchError> {
    if buf.is_empty() {
        return Err(BatchError::Invalid("no record batch in the request"));
    }
    let mut checked = Vec::with_capacity(1);
    let mut at = 0;
    // Decompressed bytes of the whole request: the bound covers a request
    // of many batches, not each one (CPU on the shard, nothing awaited).
    let mut decompressed = 0usize;
    while at < buf.len() {
        let rest = &buf[at..];
        // The size first: a too-large batch is reported as such even when it
        // is also truncated (Kafka does the same).
        if let Some(h) = BatchHeader::parse(rest) {
            if h.size > rules.max_batch_bytes && h.size <= rest.len() {
                return Err(BatchError::TooLarge {
                    batch_bytes: h.size,
                    max_bytes: rules.max_batch_bytes,
                });
            }
        }
        let header = validate_one(rest)?;
        check_header(&header)?;
        let batch = &rest[..header.size];
        let max_timestamp = if header.compression() == 0 {
            check_records(&batch[HEADER_BYTES..], &header, rules)?
        } else {
            DECOMPRESSED.with(|cell| {
                let mut out = cell.borrow_mut();
                let result = decompress_into(
                    header.compression(),
                    &batch[HEADER_BYTES..],
                    DECOMPRESSED_BATCH_BYTES_MAX - decompressed,
                    &mut out,
                )
                .map_err(BatchError::Decompress)
                .and_then(|()| check_records(&out, &header, rules));
                decompressed += out.len();
                if out.capacity() > DECOMPRESS_BUFFER_KEPT_BYTES {
                    *out = Vec::new();
                }
                result
            })?
        };
        // LogAppendTime: stamped with the broker's clock. CreateTime: the
        // records' largest timestamp, and a producer's LogAppendTime bit
        // cleared, as Kafka sets the topic's timestamp type.
        let lat = rules.log_append_time;
        let max_timestamp = if lat { rules.now_ms } else { max_timestamp };
        let was_lat = header.attributes & LOG_APPEND_TIME != 0;
        let rewrite = ((lat, max_timestamp) != (was_lat, header.max_timestamp))
            .then_some((lat, max_timestamp));
        at += header.size;
        checked.push((header, rewrite));
    }
    Ok(checked)
}

/// The batch-level rules, Kafka's `validateBatch` for a client's append.
fn check_header(h: &BatchHeader) -> Result<(), BatchError> {
    debug_assert_eq!(h.magic, MAGIC_V2, "validate_one checked the magic");
    if h.records_count <= 0 {
        return Err(BatchError::Invalid("batch holds no records"));
    }
    if h.last_offset_delta < 0 {
        return Err(BatchError::Invalid("negative lastOffsetDelta"));
    }
    if h.last_offset_delta as i64 + 1 != h.records_count as i64 {
        return Err(BatchError::Invalid("lastOffsetDelta + 1 differs from recordsCount"));
    }
    if h.compression() > 4 {
        return Err(BatchError::Invalid("unknown compression codec"));
    }
    if h.is_control() {
        return Err(BatchError::Invalid("control batches are written by the broker only"));
    }
    if h.is_transactional() && h.producer_id < 0 {
        return Err(BatchError::Invalid("a transactional batch without a producer id"));
    }
    if h.producer_id >= 0 && (h.producer_epoch < 0 || h.base_sequence < 0) {
        return Err(BatchError::Invalid("a producer id with a negative epoch or base sequence"));
    }
    Ok(())
}

/// Walks the records of a batch (its records section, decompressed) and
/// returns the largest record timestamp.
fn check_records(records: &[u8], h: &BatchHeader, rules: &Rules) -> Result<Timestamp, BatchError> {
    let mut r = Reader { buf: records, at: 0 };
    let mut max_timestamp = NO_TIMESTAMP;
    // The bounds once per batch, not per record (saturating: the configs
    // may be i64::MAX).
    let oldest = rules.now_ms.saturating_sub(rules.timestamp_before_max_ms);
    let newest = rules.now_ms.saturating_add(rules.timestamp_after_max_ms);
    for index in 0..h.records_count {
        let invalid = |why| BatchError::InvalidRecord { index, why };
        if r.at == records.len() {
            return Err(invalid("recordsCount is larger than the records in the batch"));
        }
        let length = r.varint32().map_err(invalid)?;
        let length = usize::try_from(length).map_err(|_| invalid("negative record length"))?;
        let end = r.at.checked_add(length).filter(|&e| e <= records.len());
        let end = end.ok_or(invalid("record length runs past the batch"))?;
        let mut f = Reader { buf: &records[..end], at: r.at };
        f.byte().map_err(invalid)?; // attributes: unused in magic 2
        let timestamp_delta = f.varint64().map_err(invalid)?;
        if f.varint32().map_err(invalid)? != index {
            return Err(invalid("offset deltas do not run 0, 1, 2, ..."));
        }
        let has_key = f.bytes().map_err(invalid)?;
        f.bytes().map_err(invalid)?; // value
        let headers = f.varint32().map_err(invalid)?;
        if headers < 0 {
            return Err(invalid("negative header count"));
        }
        for _ in 0..headers {
            if !f.bytes().map_err(invalid)? {
                return Err(invalid("a header with a null key"));
            }
            f.bytes().map_err(invalid)?;
        }
        if f.at != end {
            return Err(invalid("record length disagrees with its fields"));
        }
        if rules.compacted && !has_key {
            return Err(invalid("a compacted topic takes only records with keys"));
        }
        // LogAppendTime replaces the records' timestamps: not checked.
        if !rules.log_append_time {
            let timestamp = h
                .base_timestamp
                .checked_add(timestamp_delta)
                .ok_or(BatchError::InvalidTimestamp { index, timestamp: h.base_timestamp })?;
            if timestamp != NO_TIMESTAMP && !(oldest..=newest).contains(&timestamp) {
                return Err(BatchError::InvalidTimestamp { index, timestamp });
            }
            max_timestamp = max_timestamp.max(timestamp);
        }
        r.at = end;
    }
    if r.at != records.len() {
        return Err(BatchError::Invalid("bytes after the last of recordsCount records"));
    }
    Ok(max_timestamp)
}

/// A cursor over record bytes with Kafka's varint rules.
pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) at: usize,
}

impl Reader<'_> {
    pub(crate) fn byte(&mut self) -> Result<u8, &'static str> {
        let b = *self.buf.get(self.at).ok_or("record truncated")?;
        self.at += 1;
        Ok(b)
    }

    /// An unsigned LEB128 of at most `max_bytes` bytes.
    #[inline]
    fn raw_varint(&mut self, max_bytes: u32) -> Result<u64, &'static str> {
        // Most fields of a record are one byte long.
        if let Some(&b) = self.buf.get(self.at) {
            if b < 0x80 {
                self.at += 1;
                return Ok(b as u64);
            }
        }
        let mut v: u64 = 0;
        for i in 0..max_bytes {
            let b = self.byte()?;
            v |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long")
    }

    /// A zigzag varint that must fit 32 bits (at most 5 bytes).
    pub(crate) fn varint32(&mut self) -> Result<i32, &'static str> {
        let z = self.raw_varint(5)?;
        let z = u32::try_from(z).map_err(|_| "varint out of the 32-bit range")?;
        Ok((z >> 1) as i32 ^ -((z & 1) as i32))
    }

    /// A zigzag varlong (at most 10 bytes).
    pub(crate) fn varint64(&mut self) -> Result<i64, &'static str> {
        let z = self.raw_varint(10)?;
        Ok((z >> 1) as i64 ^ -((z & 1) as i64))
    }

    /// A length-prefixed field; `Ok(false)` when it is null (length -1).
    fn bytes(&mut self) -> Result<bool, &'static str> {
        let n = self.varint32()?;
        if n == -1 {
            return Ok(false);
        }
        let n = usize::try_from(n).map_err(|_| "a length below -1")?;
        if n > self.buf.len() - self.at {
            return Err("a field runs past its record");
        }
        self.at += n;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::batch::{build, set_crc, with_compressed_records, KeyValue};

    const NOW: Timestamp = 1_700_000_000_000;

    fn rules() -> Rules {
        Rules {
            max_batch_bytes: 1 << 20,
            now_ms: NOW,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            compacted: false,
            log_append_time: false,
        }
    }

    fn batch(n: usize) -> Vec<u8> {
        let recs: Vec<KeyValue<'_>> =
            (0..n).map(|_| (Some(&b"k"[..]), Some(&b"value"[..]))).collect();
        build(&recs, NOW)
    }

    fn check(b: &[u8]) -> Result<Vec<BatchHeader>, BatchError> {
        validate_for_append(&mut b.to_vec(), &rules())
    }

    fn put_i32(b: &mut [u8], at: usize, v: i32) {
        b[at..at + 4].copy_from_slice(&v.to_be_bytes());
        set_crc(b);
    }

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&b[HEADER_BYTES..]).unwrap();
        with_compressed_records(b, 1, &e.finish().unwrap())
    }

    #[test]
    fn real_batches_pass_plain_and_compressed() {
        for b in [batch(1), batch(300), gzip(&batch(300))] {
            let h = check(&b).unwrap();
            assert_eq!(h[0].max_timestamp, NOW);
        }
    }

    /// Issue 12: a valid-CRC batch claiming 2^31-1 records, with one real
    /// record, was accepted and then crashed every reader.
    #[test]
    fn counts_that_disagree_are_refused_compressed_or_not() {
        let mut b = batch(1);
        put_i32(&mut b, 57, i32::MAX);
        assert!(matches!(check(&b), Err(BatchError::Invalid(_))), "{:?}", check(&b));
        put_i32(&mut b, 23, i32::MAX - 1);
        assert!(
            matches!(check(&b), Err(BatchError::InvalidRecord { index: 1, .. })),
            "{:?}",
            check(&b)
        );
        // A compressed batch whose lastOffsetDelta is 2^31-1 (it panicked the
        // leader shard: relative offsets wrapped in the index).
        let mut g = gzip(&batch(3));
        put_i32(&mut g, 23, i32::MAX);
        assert!(matches!(check(&g), Err(BatchError::Invalid(_))));
        // Both raised together: the records inside still disagree.
        put_i32(&mut g, 57, i32::MIN + 0x7fff_ffff + 1);
        assert!(check(&g).is_err());
    }

    #[test]
    fn malformed_records_are_refused_with_their_index() {
        // Record 1's length varint one too large (one byte past its fields).
        let mut b = batch(3);
        let second = HEADER_BYTES + 1 + b[HEADER_BYTES] as usize / 2;
        b[second] += 2; // zigzag: +1
        set_crc(&mut b);
        let e = check(&b).unwrap_err();
        assert!(matches!(e, BatchError::InvalidRecord { index: 1, .. }), "{e}");
        // A 10-byte varint where a 32-bit one belongs (the first length).
        let mut v = batch(1);
        let mut long = v[..HEADER_BYTES].to_vec();
        long.extend_from_slice(&[0x80; 9]);
        long.push(0x01);
        long.extend_from_slice(&v[HEADER_BYTES + 1..]);
        crate::batch::set_count_and_crc(&mut long, 1);
        assert!(matches!(check(&long), Err(BatchError::InvalidRecord { index: 0, .. })));
        // Bytes after the last record.
        v.extend_from_slice(&[0; 7]);
        crate::batch::set_count_and_crc(&mut v, 1);
        assert!(matches!(check(&v), Err(BatchError::Invalid(_))));
    }

    #[test]
    fn offset_deltas_must_be_dense() {
        let mut b = batch(2);
        let first_len = (b[HEADER_BYTES] / 2) as usize;
        let second_offset_delta = HEADER_BYTES + 1 + first_len + 1 + 1 + 1;
        assert_eq!(b[second_offset_delta], 2, "zigzag 1");
        b[second_offset_delta] = 4;
        set_crc(&mut b);
        assert!(matches!(check(&b), Err(BatchError::InvalidRecord { index: 1, .. })));
    }

    #[test]
    fn garbage_compressed_payloads_are_corrupt() {
        let b = batch(2);
        for codec in 1..=4 {
            let g = with_compressed_records(&b, codec, &[0x1f, 0x8b, 9, 9, 9, 9, 9, 9, 9]);
            assert!(matches!(check(&g), Err(BatchError::Decompress(_))), "codec {codec}");
        }
    }

    #[test]
    fn timestamps_outside_the_bounds_are_refused() {
        for ts in [i64::MAX, i64::MIN, NOW + 3_600_001] {
            let recs: Vec<KeyValue<'_>> = vec![(None, Some(b"v"))];
            let b = build(&recs, ts);
            let e = check(&b).unwrap_err();
            assert!(matches!(e, BatchError::InvalidTimestamp { index: 0, .. }), "{ts}: {e}");
        }
        // A delta that overflows from a valid base.
        let b = crate::batch::build_timed(&[(None, Some(b"v")), (None, None)], NOW, &[0, i64::MAX]);
        assert!(matches!(check(&b), Err(BatchError::InvalidTimestamp { index: 1, .. })));
        // Old timestamps pass by default, and fail under a bound.
        let old = build(&[(None, Some(b"v"))], 1);
        assert!(check(&old).is_ok());
        let strict = Rules { timestamp_before_max_ms: 1000, ..rules() };
        assert!(validate_for_append(&mut old.clone(), &strict).is_err());
    }

    #[test]
    fn log_append_time_stamps_the_batch_and_leaves_the_records_unbounded() {
        let rules = Rules { log_append_time: true, timestamp_before_max_ms: 1000, ..rules() };
        // Old, and one whose delta overflows: neither matters under LogAppendTime.
        let overflowing =
            crate::batch::build_timed(&[(None, Some(b"v")), (None, None)], NOW, &[0, i64::MAX]);
        let h = validate_for_append(&mut overflowing.clone(), &rules).unwrap()[0];
        assert_eq!(h.max_timestamp, NOW);
        for codec in [0, 1] {
            let plain = build(&[(None, Some(b"v")), (None, Some(b"w"))], 1);
            let mut b = if codec == 0 { plain } else { gzip(&plain) };
            let h = validate_for_append(&mut b, &rules).unwrap()[0];
            assert_eq!((h.attributes & LOG_APPEND_TIME, h.max_timestamp), (LOG_APPEND_TIME, NOW));
            assert_eq!(h.compression(), codec);
            let stored = validate_one(&b).unwrap();
            assert_eq!(stored, h, "the bytes say so too, under a valid CRC");
        }
    }

    #[test]
    fn a_producers_log_append_time_bit_is_cleared_on_create_time_topics() {
        let mut b = build(&[(None, Some(b"v"))], NOW);
        set_timestamps(&mut b, true, NOW);
        let h = validate_for_append(&mut b, &rules()).unwrap()[0];
        assert_eq!((h.attributes & LOG_APPEND_TIME, h.max_timestamp), (0, NOW));
        assert_eq!(validate_one(&b).unwrap(), h);
    }

    #[test]
    fn max_timestamp_is_set_from_the_records() {
        let mut b = crate::batch::build_timed(&[(None, None), (None, None)], NOW, &[0, 5]);
        b[35..43].copy_from_slice(&(NOW + 1_000_000).to_be_bytes());
        set_crc(&mut b);
        let mut stored = b.clone();
        let h = validate_for_append(&mut stored, &rules()).unwrap();
        assert_eq!(h[0].max_timestamp, NOW + 5);
        let again = validate_one(&stored).unwrap();
        assert_eq!((again.max_timestamp, again.crc), (NOW + 5, h[0].crc));
    }

    #[test]
    fn producer_and_attribute_rules() {
        let mut b = batch(1);
        crate::batch::set_producer(&mut b, i64::MAX, 0, -5);
        assert!(matches!(check(&b), Err(BatchError::Invalid(_))));
        let mut t = batch(1);
        t[22] |= 0x10; // transactional
        set_crc(&mut t);
        assert!(matches!(check(&t), Err(BatchError::Invalid(_))));
        let mut c = batch(1);
        c[22] |= 0x20; // control
        set_crc(&mut c);
        assert!(matches!(check(&c), Err(BatchError::Invalid(_))));
        let keyless = build(&[(None, Some(b"v"))], NOW);
        let compacted = Rules { compacted: true, ..rules() };
        let e = validate_for_append(&mut keyless.clone(), &compacted).unwrap_err();
        assert!(matches!(e, BatchError::InvalidRecord { index: 0, .. }));
    }
}
