//! The Kafka record batch, format v2 ("magic 2"), as the engine stores it.
//!
//! The engine stores batches byte for byte as producers sent them, after it
//! has written two fields that the CRC does not cover: `baseOffset` (assigned
//! from the log end offset) and `partitionLeaderEpoch` (and, as Kafka does,
//! `maxTimestamp` with the CRC when a producer's value disagreed with its
//! records). [`crate::validate`] checks every record of a batch before it
//! is appended; this module reads and writes the header.
//!
//! Layout (big-endian, sizes in bytes; offsets from the batch start):
//!
//! | at | size | field                  | notes                                        |
//! |----|------|------------------------|----------------------------------------------|
//! |  0 | 8    | `baseOffset`           | stamped by the engine                         |
//! |  8 | 4    | `batchLength`          | bytes after this field: total = length + 12  |
//! | 12 | 4    | `partitionLeaderEpoch` | stamped by the engine                         |
//! | 16 | 1    | `magic`                | must be 2                                    |
//! | 17 | 4    | `crc`                  | CRC-32C (Castagnoli) of bytes 21..end        |
//! | 21 | 2    | `attributes`           | bits 0-2 compression, 3 timestamp type, 4 transactional, 5 control |
//! | 23 | 4    | `lastOffsetDelta`      | last record's offset minus `baseOffset`      |
//! | 27 | 8    | `baseTimestamp`        | first record's timestamp                     |
//! | 35 | 8    | `maxTimestamp`         | largest record timestamp                     |
//! | 43 | 8    | `producerId`           |                                              |
//! | 51 | 2    | `producerEpoch`        |                                              |
//! | 53 | 4    | `baseSequence`         |                                              |
//! | 57 | 4    | `recordsCount`         |                                              |
//! | 61 | ...  | records                | possibly compressed, never decoded here      |

use crate::types::{LeaderEpoch, Offset, Timestamp};

/// Size of the fixed batch header; the smallest valid batch (no records is invalid).
pub const HEADER_BYTES: usize = 61;
/// Bytes before `batchLength` counts: `baseOffset` and `batchLength` itself.
pub const LOG_OVERHEAD: usize = 12;
/// The only record format the engine accepts.
pub const MAGIC_V2: i8 = 2;

const BASE_OFFSET_AT: usize = 0;
const LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORDS_COUNT_AT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TRANSACTIONAL_FLAG: i16 = 0x10;
const CONTROL_FLAG: i16 = 0x20;

/// Why a batch was refused. Each variant maps to one Kafka error code in `net`:
/// `Corrupt` to `CORRUPT_MESSAGE`, `Invalid` to `INVALID_RECORD`, `TooLarge`
/// to `MESSAGE_TOO_LARGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// The bytes cannot be a batch: truncated, inconsistent length, bad magic
    /// or CRC mismatch.
    Corrupt(&'static str),
    /// A well-formed batch whose contents break a rule (record count,
    /// offsets, empty request).
    Invalid(&'static str),
    /// The batch is larger than the partition's `max.message.bytes`.
    TooLarge { batch_bytes: usize, max_bytes: usize },
    /// Record `index` of the batch breaks a rule (`INVALID_RECORD`, with
    /// the record's index in the response's record errors from Produce v8).
    InvalidRecord { index: i32, why: &'static str },
    /// Record `index` has a timestamp outside the topic's bounds
    /// (`INVALID_TIMESTAMP`).
    InvalidTimestamp { index: i32, timestamp: Timestamp },
    /// A compressed batch's records do not decompress (`CORRUPT_MESSAGE`).
    Decompress(crate::compression::DecompressError),
}

impl BatchError {
    /// The index of the record at fault, for Produce's record errors.
    pub fn record_index(&self) -> Option<i32> {
        match self {
            BatchError::InvalidRecord { index, .. }
            | BatchError::InvalidTimestamp { index, .. } => Some(*index),
            _ => None,
        }
    }
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::Corrupt(why) => write!(f, "corrupt record batch: {why}"),
            BatchError::Invalid(why) => write!(f, "invalid record batch: {why}"),
            BatchError::TooLarge { batch_bytes, max_bytes } => write!(
                f,
                "record batch of {batch_bytes} bytes exceeds max.message.bytes {max_bytes}"
            ),
            BatchError::InvalidRecord { index, why } => {
                write!(f, "invalid record at index {index} of its batch: {why}")
            }
            BatchError::InvalidTimestamp { index, timestamp } => write!(
                f,
                "record at index {index} of its batch has timestamp {timestamp}, outside \
                 message.timestamp.before.max.ms / message.timestamp.after.max.ms of the broker's clock"
            ),
            BatchError::Decompress(e) => write!(f, "corrupt record batch: {e}"),
        }
    }
}

/// The header fields of one batch that the engine uses, read from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: Offset,
    /// Whole batch size in bytes, `batchLength + 12`.
    pub size: usize,
    pub leader_epoch: LeaderEpoch,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: Timestamp,
    pub max_timestamp: Timestamp,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Reads the header at the start of `buf`. Returns `None` if `buf` is
    /// shorter than a header. Checks nothing: see [`validate_one`].
    pub fn parse(buf: &[u8]) -> Option<BatchHeader> {
        if buf.len() < HEADER_BYTES {
            return None;
        }
        let length = be_i32(buf, LENGTH_AT);
        Some(BatchHeader {
            base_offset: be_i64(buf, BASE_OFFSET_AT),
            size: (length as i64 + LOG_OVERHEAD as i64).max(0) as usize,
            leader_epoch: be_i32(buf, LEADER_EPOCH_AT),
            magic: buf[MAGIC_AT] as i8,
            crc: u32::from_be_bytes(buf[CRC_AT..CRC_AT + 4].try_into().expect("4 bytes")),
            attributes: i16::from_be_bytes([buf[ATTRIBUTES_AT], buf[ATTRIBUTES_AT + 1]]),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_AT),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP_AT),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_AT),
            producer_id: be_i64(buf, PRODUCER_ID_AT),
            producer_epoch: i16::from_be_bytes([
                buf[PRODUCER_EPOCH_AT],
                buf[PRODUCER_EPOCH_AT + 1],
            ]),
            base_sequence: be_i32(buf, BASE_SEQUENCE_AT),
            records_count: be_i32(buf, RECORDS_COUNT_AT),
        })
    }

    /// The offset of the batch's last record.
    /// Saturates: `baseOffset` is not covered by the CRC, so a damaged file
    /// may hold any value (readers then find the batch out of order).
    pub fn last_offset(&self) -> Offset {
        self.base_offset.saturating_add(self.last_offset_delta as i64)
    }

    /// Compression codec id: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }
}

fn be_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

fn be_i64(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

/// The CRC-32C that a v2 batch carries: over `attributes` to the end.
pub fn batch_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_AT..])
}

/// Checks that `buf` starts with one complete, intact v2 batch and returns its
/// header. Structural checks only (what recovery and reads need): length,
/// magic, CRC. Rules about the records are in [`crate::validate`].
pub fn validate_one(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header =
        BatchHeader::parse(buf).ok_or(BatchError::Corrupt("shorter than a batch header"))?;
    let length = be_i32(buf, LENGTH_AT);
    if (length as i64) < (HEADER_BYTES - LOG_OVERHEAD) as i64 {
        return Err(BatchError::Corrupt("batchLength smaller than the header"));
    }
    if header.size > buf.len() {
        return Err(BatchError::Corrupt("batchLength runs past the end of the data"));
    }
    if header.magic != MAGIC_V2 {
        return Err(BatchError::Corrupt("magic is not 2"));
    }
    if batch_crc(&buf[..header.size]) != header.crc {
        return Err(BatchError::Corrupt("CRC-32C mismatch"));
    }
    Ok(header)
}

/// The bytes of a batch's header from its start through
/// `partitionLeaderEpoch`: all that [`stamp`] writes, and none of it
/// covered by the CRC.
pub const STAMPED_BYTES: usize = LEADER_EPOCH_AT + 4;

/// Writes `baseOffset` and `partitionLeaderEpoch` into a batch (or into
/// its first [`STAMPED_BYTES`]). Neither is covered by the CRC, so the
/// batch stays valid.
pub fn stamp(batch: &mut [u8], base_offset: Offset, leader_epoch: LeaderEpoch) {
    batch[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
    batch[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// One record for [`build`]: key and value, each possibly null.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Builds an uncompressed v2 batch from plain values: for tests, benchmarks and
/// tools. `records` are (key, value) pairs; timestamps are `timestamp` for all.
pub fn build(records: &[KeyValue<'_>], timestamp: Timestamp) -> Vec<u8> {
    build_timed(records, timestamp, &vec![0; records.len()])
}

/// Like [`build`], with record `i` at `timestamp + deltas[i]`.
pub fn build_timed(records: &[KeyValue<'_>], timestamp: Timestamp, deltas: &[i64]) -> Vec<u8> {
    assert_eq!(records.len(), deltas.len());
    let mut body = Vec::new();
    for (i, (key, value)) in records.iter().enumerate() {
        let mut rec = Vec::new();
        rec.push(0u8); // record attributes
        put_varint(&mut rec, deltas[i]); // timestamp delta
        put_varint(&mut rec, i as i64); // offset delta
        put_bytes(&mut rec, *key);
        put_bytes(&mut rec, *value);
        put_varint(&mut rec, 0); // no headers
        put_varint(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let mut batch = vec![0u8; HEADER_BYTES];
    batch.extend_from_slice(&body);
    let max_timestamp = timestamp.saturating_add(deltas.iter().copied().max().unwrap_or(0));
    finish_header(&mut batch, records.len(), timestamp, max_timestamp);
    batch
}

/// Fills the header of `batch` (header bytes, then `count` records): the
/// length, magic, offsets and timestamps, no producer, and the CRC.
fn finish_header(batch: &mut [u8], count: usize, timestamp: Timestamp, max_timestamp: Timestamp) {
    let length = (batch.len() - LOG_OVERHEAD) as i32;
    batch[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
    batch[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&(-1i32).to_be_bytes());
    batch[MAGIC_AT] = MAGIC_V2 as u8;
    let last_delta = count as i32 - 1;
    batch[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
        .copy_from_slice(&last_delta.to_be_bytes());
    batch[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8].copy_from_slice(&timestamp.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    batch[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&(-1i64).to_be_bytes());
    batch[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2].copy_from_slice(&(-1i16).to_be_bytes());
    batch[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&(-1i32).to_be_bytes());
    batch[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&(count as i32).to_be_bytes());
    set_crc(batch);
}

/// One record for [`build_with_headers`]: key, value and headers (a header
/// has a name and a possibly null value), as a producer sends them.
#[derive(Debug, Clone, Copy)]
pub struct RecordSpec<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a [u8], Option<&'a [u8]>)],
}

/// Builds an uncompressed v2 batch whose records carry headers: for tools
/// that produce as Kafka clients do (the CLI's producer). Timestamps are
/// `timestamp` for all records (CreateTime); no producer id.
pub fn build_with_headers(records: &[RecordSpec<'_>], timestamp: Timestamp) -> Vec<u8> {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let mut batch = vec![0u8; HEADER_BYTES];
    let mut rec = Vec::new();
    for (i, r) in records.iter().enumerate() {
        rec.clear();
        rec.push(0u8); // record attributes
        put_varint(&mut rec, 0); // timestamp delta
        put_varint(&mut rec, i as i64); // offset delta
        put_bytes(&mut rec, r.key);
        put_bytes(&mut rec, r.value);
        put_varint(&mut rec, r.headers.len() as i64);
        for (name, value) in r.headers {
            put_bytes(&mut rec, Some(name));
            put_bytes(&mut rec, *value);
        }
        put_varint(&mut batch, rec.len() as i64);
        batch.extend_from_slice(&rec);
    }
    finish_header(&mut batch, records.len(), timestamp, timestamp);
    batch
}

/// A batch with the header of the uncompressed batch `batch` and `records`
/// as its records section, compressed with codec `codec` (1 gzip, 2 snappy,
/// 3 lz4, 4 zstd): the codec bits, the length and the CRC are set, the
/// record count and offsets stay. For tools that send compressed batches;
/// the engine itself never compresses.
pub fn with_compressed_records(batch: &[u8], codec: i16, records: &[u8]) -> Vec<u8> {
    assert!((1..=4).contains(&codec), "codec {codec}");
    let mut out = Vec::with_capacity(HEADER_BYTES + records.len());
    out.extend_from_slice(&batch[..HEADER_BYTES]);
    out.extend_from_slice(records);
    let length = (out.len() - LOG_OVERHEAD) as i32;
    out[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
    let attributes =
        (i16::from_be_bytes([out[ATTRIBUTES_AT], out[ATTRIBUTES_AT + 1]]) & !0x07) | codec;
    out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    set_crc(&mut out);
    out
}

/// Makes `batch`, a compressed batch's header followed by its records
/// uncompressed, a valid uncompressed batch: the codec bits cleared, the
/// length and the CRC set.
pub fn set_uncompressed(batch: &mut [u8]) {
    let length = (batch.len() - LOG_OVERHEAD) as i32;
    batch[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
    let attributes =
        i16::from_be_bytes([batch[ATTRIBUTES_AT], batch[ATTRIBUTES_AT + 1]]) & !COMPRESSION_MASK;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    set_crc(batch);
}

/// Attribute bit 3: the broker stamped the batch with its append time
/// (LogAppendTime), which is then every record's timestamp.
pub const LOG_APPEND_TIME: i16 = 0x08;

/// Sets a batch's timestamp type (bit 3 of its attributes: LogAppendTime
/// or CreateTime) and its `maxTimestamp`, then its CRC, computed once;
/// returns the new attributes and CRC for its header.
pub fn set_timestamps(
    batch: &mut [u8],
    log_append_time: bool,
    max_timestamp: Timestamp,
) -> (i16, u32) {
    let old = i16::from_be_bytes([batch[ATTRIBUTES_AT], batch[ATTRIBUTES_AT + 1]]);
    let attributes = if log_append_time { old | LOG_APPEND_TIME } else { old & !LOG_APPEND_TIME };
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = batch_crc(batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    (attributes, crc)
}

/// Sets a batch's `maxTimestamp` and recomputes its CRC (validation, when
/// a producer's value differs from its records').
pub fn set_max_timestamp(batch: &mut [u8], max_timestamp: Timestamp) {
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    set_crc(batch);
}

/// Recomputes a batch's CRC after its covered bytes changed (tools that
/// patch a built batch, such as the load generator's send-time stamps).
pub fn set_crc(batch: &mut [u8]) {
    let crc = batch_crc(batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Marks a built batch as an idempotent producer's (producer id, epoch and
/// base sequence) and recomputes its CRC: for tests and tools.
pub fn set_producer(batch: &mut [u8], producer_id: i64, epoch: i16, base_sequence: i32) {
    batch[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&producer_id.to_be_bytes());
    batch[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2].copy_from_slice(&epoch.to_be_bytes());
    batch[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&base_sequence.to_be_bytes());
    set_crc(batch);
}

/// Marks a built batch as transactional (attribute bit 4) and recomputes
/// its CRC: for the broker's own transactional writes, tests and tools.
pub fn set_transactional(batch: &mut [u8]) {
    let attributes = i16::from_be_bytes([batch[ATTRIBUTES_AT], batch[ATTRIBUTES_AT + 1]]);
    let attributes = attributes | TRANSACTIONAL_FLAG;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    set_crc(batch);
}

/// Sets a batch's record count and length to match its bytes, and its CRC
/// (compaction, after removing records).
pub fn set_count_and_crc(batch: &mut [u8], records_count: i32) {
    let length = (batch.len() - LOG_OVERHEAD) as i32;
    batch[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
    batch[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&records_count.to_be_bytes());
    set_crc(batch);
}

/// One record of an uncompressed batch, as [`parse_records`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub offset_delta: i64,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
    /// The whole encoded record (length varint included), for copying it
    /// unchanged into another batch (compaction).
    pub raw: &'a [u8],
}

/// The records of an uncompressed batch (the engine never decodes records on
/// the data path; this serves the broker's own logs and tests).
pub fn parse_records(batch: &[u8]) -> Result<Vec<Record<'_>>, BatchError> {
    let header = validate_one(batch)?;
    if header.compression() != 0 {
        return Err(BatchError::Invalid("compressed batch"));
    }
    let mut at = HEADER_BYTES;
    let end = header.size;
    // The count is the producer's word: reserve no more than the bytes can hold
    // (a record takes at least 7 bytes).
    let fit = (end - at) / 7;
    let mut records = Vec::with_capacity((header.records_count.max(0) as usize).min(fit));
    for _ in 0..header.records_count {
        let start = at;
        let len = get_varint(batch, &mut at, end)?;
        let record_end =
            at + usize::try_from(len).map_err(|_| BatchError::Corrupt("negative record length"))?;
        if record_end > end {
            return Err(BatchError::Corrupt("record runs past the batch"));
        }
        at += 1; // record attributes, unused
        let timestamp_delta = get_varint(batch, &mut at, record_end)?;
        let offset_delta = get_varint(batch, &mut at, record_end)?;
        let key = get_bytes(batch, &mut at, record_end)?;
        let value = get_bytes(batch, &mut at, record_end)?;
        let count = get_varint(batch, &mut at, record_end)?;
        let mut headers = Vec::new();
        for _ in 0..count {
            let name = get_bytes(batch, &mut at, record_end)?
                .ok_or(BatchError::Corrupt("null header key"))?;
            headers.push((name, get_bytes(batch, &mut at, record_end)?));
        }
        if at != record_end {
            return Err(BatchError::Corrupt("record length disagrees with its fields"));
        }
        let raw = &batch[start..record_end];
        records.push(Record { offset_delta, timestamp_delta, key, value, headers, raw });
    }
    if at != end {
        return Err(BatchError::Corrupt("bytes after the last record"));
    }
    Ok(records)
}

fn get_varint(buf: &[u8], at: &mut usize, end: usize) -> Result<i64, BatchError> {
    let mut z: u64 = 0;
    for shift in (0..64).step_by(7) {
        if *at >= end {
            return Err(BatchError::Corrupt("truncated varint"));
        }
        let b = buf[*at];
        *at += 1;
        z |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
        }
    }
    Err(BatchError::Corrupt("varint too long"))
}

fn get_bytes<'a>(
    buf: &'a [u8],
    at: &mut usize,
    end: usize,
) -> Result<Option<&'a [u8]>, BatchError> {
    let len = get_varint(buf, at, end)?;
    if len < 0 {
        return Ok(None);
    }
    let stop = *at + len as usize;
    if stop > end {
        return Err(BatchError::Corrupt("field runs past the record"));
    }
    let b = &buf[*at..stop];
    *at = stop;
    Ok(Some(b))
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(batches: &[u8], max_bytes: usize) -> Result<Vec<BatchHeader>, BatchError> {
        let rules = crate::validate::Rules::lenient(max_bytes);
        crate::validate::validate_for_append(&mut batches.to_vec(), &rules)
    }

    fn one(n: usize) -> Vec<u8> {
        let recs: Vec<KeyValue<'_>> = (0..n).map(|_| (None, Some(&b"value"[..]))).collect();
        build(&recs, 1_700_000_000_000)
    }

    #[test]
    fn built_batch_validates_and_stamping_keeps_crc() {
        let mut b = one(3);
        let h = check(&b, 1 << 20).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].records_count, 3);
        assert_eq!(h[0].size, b.len());
        stamp(&mut b, 42, 7);
        let h = validate_one(&b).unwrap();
        assert_eq!((h.base_offset, h.leader_epoch, h.last_offset()), (42, 7, 44));
    }

    #[test]
    fn records_parse_back() {
        let b =
            build(&[(Some(b"k1"), Some(b"v1")), (None, None), (Some(b""), Some(&[7u8; 300]))], 5);
        let r = parse_records(&b).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            (r[0].key, r[0].value, r[0].offset_delta),
            (Some(&b"k1"[..]), Some(&b"v1"[..]), 0)
        );
        assert_eq!((r[1].key, r[1].value), (None, None));
        assert_eq!(r[2].value.unwrap().len(), 300);
        assert_eq!(r[2].offset_delta, 2);
    }

    #[test]
    fn records_with_headers_parse_back() {
        let h: &[(&[u8], Option<&[u8]>)] = &[(b"h1", Some(b"v1")), (b"h2", None)];
        let b = build_with_headers(
            &[
                RecordSpec { key: Some(b"k"), value: Some(b"v"), headers: h },
                RecordSpec { key: None, value: None, headers: &[] },
            ],
            9,
        );
        let got = check(&b, 1 << 20).unwrap();
        assert_eq!((got[0].records_count, got[0].base_timestamp), (2, 9));
        let r = parse_records(&b).unwrap();
        assert_eq!((r[0].key, r[0].value), (Some(&b"k"[..]), Some(&b"v"[..])));
        assert_eq!(r[0].headers, vec![(&b"h1"[..], Some(&b"v1"[..])), (&b"h2"[..], None)]);
        assert_eq!((r[1].key, r[1].value, r[1].offset_delta), (None, None, 1));
        assert!(r[1].headers.is_empty());
    }

    #[test]
    fn several_batches_in_one_request() {
        let mut req = one(2);
        req.extend(one(5));
        let h = check(&req, 1 << 20).unwrap();
        assert_eq!(h.iter().map(|h| h.records_count).collect::<Vec<_>>(), vec![2, 5]);
    }

    #[test]
    fn every_flipped_bit_after_the_crc_is_detected() {
        let b = one(2);
        for byte in ATTRIBUTES_AT..b.len() {
            for bit in 0..8 {
                let mut c = b.clone();
                c[byte] ^= 1 << bit;
                assert!(validate_one(&c).is_err(), "flip at byte {byte} bit {bit} went unseen");
            }
        }
    }

    #[test]
    fn rejections_are_typed() {
        let b = one(2);
        assert!(matches!(check(&[], 100), Err(BatchError::Invalid(_))));
        assert!(matches!(check(&b[..b.len() - 1], 1 << 20), Err(BatchError::Corrupt(_))));
        assert!(matches!(check(&b[..30], 1 << 20), Err(BatchError::Corrupt(_))));
        assert!(matches!(check(&b, b.len() - 1), Err(BatchError::TooLarge { .. })));
        let mut m = b.clone();
        m[MAGIC_AT] = 1;
        assert!(matches!(check(&m, 1 << 20), Err(BatchError::Corrupt(_))));
        // lastOffsetDelta that disagrees with recordsCount, with a correct CRC.
        let mut d = b.clone();
        d[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4].copy_from_slice(&5i32.to_be_bytes());
        let crc = batch_crc(&d);
        d[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(check(&d, 1 << 20), Err(BatchError::Invalid(_))));
        // A good batch followed by garbage: the whole request is refused.
        let mut g = b.clone();
        g.extend_from_slice(&[0xAB; 70]);
        assert!(check(&g, 1 << 20).is_err());
    }
}
