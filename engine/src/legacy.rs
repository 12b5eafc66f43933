//! Kafka's message formats v0 and v1 (magic 0 and 1, before 0.11's record
//! batches), converted to record batch v2 on the way in (Produce v0-v2 of
//! clients that never negotiate versions) and from it on the way out
//! (Fetch v0-v3, which cannot carry v2), as Kafka 3.9's broker converts
//! them. The log only ever holds v2 batches.
//!
//! A message set is a sequence of entries, all integers big-endian:
//!
//! ```text
//! offset: i64, message_size: i32, message:
//!   crc: u32            CRC-32 (IEEE) of everything after it
//!   magic: i8           0 or 1
//!   attributes: i8      bits 0-2 codec (0 none, 1 gzip, 2 snappy, 3 lz4),
//!                       bit 3 (magic 1) LogAppendTime
//!   timestamp: i64      magic 1 only
//!   key: i32 length (-1 null), bytes
//!   value: i32 length (-1 null), bytes
//! ```
//!
//! A compressed message (a wrapper) carries in its value the compressed
//! message set of its inner messages; a magic 1 wrapper's inner offsets are
//! relative (0, 1, ...) and its own offset is the last inner one's.
//!
//! Up-conversion keeps keys, values and (magic 1) timestamps; magic 0 has
//! none (`-1`, as Kafka). Magic 0's LZ4 frames carry Kafka 0.8's wrong
//! header checksum, mended before decoding as Kafka does. The batch is written uncompressed: the engine
//! never compresses (decision 46). Down-conversion writes each record of
//! each data batch at its offset, uncompressed, without headers (formats
//! before v2 have none); control batches are left out, as Kafka does.
//!
//! Pure functions, no I/O; run on the shard serving the request, within
//! the request's bytes and [`DECOMPRESSED_BATCH_BYTES_MAX`].

use crate::batch::{self, BatchError, BatchHeader, KeyValue, HEADER_BYTES};
use crate::compression::decompress_into;
use crate::types::{Timestamp, NO_TIMESTAMP};
use crate::validate::DECOMPRESSED_BATCH_BYTES_MAX;

/// Bytes before a message: its offset and size.
const ENTRY_OVERHEAD: usize = 12;
/// A message's fixed bytes: crc, magic, attributes, key and value lengths
/// (and magic 1's timestamp).
const MESSAGE_FIXED_V0: usize = 4 + 1 + 1 + 4 + 4;
const MESSAGE_FIXED_V1: usize = MESSAGE_FIXED_V0 + 8;
const CODEC_MASK: u8 = 0x07;

/// Whether `records` (a produce's partition data) is in a format before v2:
/// its first entry's magic byte, at offset 16, is 0 or 1.
pub fn is_legacy(records: &[u8]) -> bool {
    matches!(records.get(16), Some(0 | 1))
}

/// One message of a set, borrowed.
struct Message<'a> {
    magic: u8,
    codec: u8,
    timestamp: Timestamp,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
}

/// The messages of a message set, checked (sizes, CRC, magic 0 or 1).
fn messages(set: &[u8]) -> Result<Vec<Message<'_>>, BatchError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < set.len() {
        let entry =
            set.get(at..at + ENTRY_OVERHEAD).ok_or(BatchError::Corrupt("truncated message"))?;
        let size = i32::from_be_bytes([entry[8], entry[9], entry[10], entry[11]]);
        let size =
            usize::try_from(size).map_err(|_| BatchError::Corrupt("negative message size"))?;
        let start = at + ENTRY_OVERHEAD;
        let m = set.get(start..start + size).ok_or(BatchError::Corrupt("truncated message"))?;
        out.push(message(m)?);
        at = start + size;
    }
    Ok(out)
}

fn message(m: &[u8]) -> Result<Message<'_>, BatchError> {
    if m.len() < MESSAGE_FIXED_V0 {
        return Err(BatchError::Corrupt("message shorter than its fixed fields"));
    }
    let crc = u32::from_be_bytes([m[0], m[1], m[2], m[3]]);
    if crc32fast::hash(&m[4..]) != crc {
        return Err(BatchError::Corrupt("message CRC mismatch"));
    }
    let (magic, attributes) = (m[4], m[5]);
    let (timestamp, mut at) = match magic {
        0 => (NO_TIMESTAMP, 6),
        1 if m.len() >= MESSAGE_FIXED_V1 => {
            (i64::from_be_bytes(m[6..14].try_into().expect("8 bytes")), 14)
        }
        1 => return Err(BatchError::Corrupt("message shorter than its fixed fields")),
        _ => return Err(BatchError::Corrupt("message magic is neither 0 nor 1")),
    };
    let key = bytes(m, &mut at)?;
    let value = bytes(m, &mut at)?;
    if at != m.len() {
        return Err(BatchError::Corrupt("message size disagrees with its fields"));
    }
    Ok(Message { magic, codec: attributes & CODEC_MASK, timestamp, key, value })
}

fn bytes<'a>(m: &'a [u8], at: &mut usize) -> Result<Option<&'a [u8]>, BatchError> {
    let len = m.get(*at..*at + 4).ok_or(BatchError::Corrupt("truncated message"))?;
    let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    *at += 4;
    if len < 0 {
        return Ok(None);
    }
    let b = m.get(*at..*at + len as usize).ok_or(BatchError::Corrupt("truncated message"))?;
    *at += len as usize;
    Ok(Some(b))
}

const LZ4: u8 = 3;

/// An LZ4 frame whose header checksum Kafka before 0.10 computed wrongly
/// (over the magic number too; KAFKA-3160), as magic 0 messages carry it
/// (librdkafka writes it so for such brokers), with the checksum the
/// frame format defines: the xxh32 of the descriptor, second byte.
fn mend_lz4_header_checksum(frame: &[u8]) -> Vec<u8> {
    let mut out = frame.to_vec();
    let Some(&flags) = frame.get(4) else { return out };
    let descriptor_end =
        6 + if flags & 0x08 != 0 { 8 } else { 0 } + if flags & 0x01 != 0 { 4 } else { 0 };
    if let Some(descriptor) = frame.get(4..descriptor_end) {
        if descriptor_end < out.len() {
            out[descriptor_end] = (twox_hash::XxHash32::oneshot(0, descriptor) >> 8) as u8;
        }
    }
    out
}

/// The record batches v2 holding the messages of the message set `set`,
/// in order (compressed wrappers opened, one level deep as Kafka allows),
/// each of at most `max_batch_bytes` (the topic's `max.message.bytes`:
/// Kafka limits each old message, not the set, and recompresses a
/// compressed one; here its messages come out uncompressed, so they are
/// split over as many batches as that takes). A single message too large
/// alone makes a batch too large alone, refused as Kafka refuses it.
pub fn upconvert(set: &[u8], max_batch_bytes: usize) -> Result<Vec<u8>, BatchError> {
    let outer = messages(set)?;
    let mut inner_sets: Vec<Vec<u8>> = Vec::new();
    let mut expanded = 0usize;
    for m in outer.iter().filter(|m| m.codec != 0) {
        if m.codec > LZ4 {
            return Err(BatchError::Corrupt("message formats v0 and v1 have no codec beyond lz4"));
        }
        let value = m.value.ok_or(BatchError::Corrupt("compressed message without a value"))?;
        let mut out = Vec::new();
        let left = DECOMPRESSED_BATCH_BYTES_MAX.saturating_sub(expanded);
        let mended;
        let value = if m.magic == 0 && m.codec == LZ4 {
            mended = mend_lz4_header_checksum(value);
            &mended[..]
        } else {
            value
        };
        decompress_into(i16::from(m.codec), value, left, &mut out)
            .map_err(BatchError::Decompress)?;
        expanded += out.len();
        inner_sets.push(out);
    }
    let mut inner = inner_sets.iter();
    let mut records: Vec<Message<'_>> = Vec::new();
    for m in outer {
        if m.codec == 0 {
            records.push(m);
            continue;
        }
        let set = inner.next().ok_or(BatchError::Corrupt("a compressed message lost its set"))?;
        for i in messages(set)? {
            if i.codec != 0 {
                return Err(BatchError::Corrupt("a compressed message inside a compressed one"));
            }
            if i.magic != m.magic {
                return Err(BatchError::Corrupt(
                    "an inner message of another magic than its wrapper",
                ));
            }
            // A magic 1 wrapper's LogAppendTime would stamp its inner
            // messages; the topic's timestamp type decides here instead.
            records.push(Message {
                timestamp: if m.magic == 0 { NO_TIMESTAMP } else { i.timestamp },
                ..i
            });
        }
    }
    if records.is_empty() {
        return Err(BatchError::Invalid("no messages"));
    }
    let mut out = Vec::new();
    let (mut first, mut bytes) = (0, HEADER_BYTES);
    for (i, m) in records.iter().enumerate() {
        // An upper bound of the record's encoding: its varints at their
        // longest, its key and value.
        let size =
            RECORD_OVERHEAD_MAX + m.key.map_or(0, <[u8]>::len) + m.value.map_or(0, <[u8]>::len);
        if i > first && bytes + size > max_batch_bytes {
            out.extend_from_slice(&one_batch(&records[first..i]));
            (first, bytes) = (i, HEADER_BYTES);
        }
        bytes += size;
    }
    out.extend_from_slice(&one_batch(&records[first..]));
    Ok(out)
}

/// A record's bytes beyond its key and value, at most: its length,
/// timestamp and offset deltas, key and value lengths as varints at their
/// longest, its attributes and header count.
const RECORD_OVERHEAD_MAX: usize = 5 + 1 + 10 + 5 + 5 + 5 + 1;

/// One batch of `records`: the first timestamp given is the base; a
/// message without one keeps none (its delta reaches -1).
fn one_batch(records: &[Message<'_>]) -> Vec<u8> {
    let base = records.iter().map(|m| m.timestamp).find(|&t| t >= 0).unwrap_or(NO_TIMESTAMP);
    let pairs: Vec<KeyValue<'_>> = records.iter().map(|m| (m.key, m.value)).collect();
    let deltas: Vec<i64> = records
        .iter()
        .map(|m| {
            let t = if m.timestamp >= 0 { m.timestamp } else { NO_TIMESTAMP };
            t.saturating_sub(base)
        })
        .collect();
    batch::build_timed(&pairs, base, &deltas)
}

/// The data records from offset `from` of the v2 batches in `batches`
/// (whole batches, as a log read returns them: the first may start
/// below `from`) as a message set of `magic` 0 or 1, each at its offset,
/// up to `max_bytes` but at least the first record (KIP-74's rule, so a
/// consumer always progresses). Batches that do not parse end the set
/// there.
pub fn downconvert(batches: &[u8], from: i64, magic: u8, max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    let mut at = 0;
    while let Some(h) = BatchHeader::parse(&batches[at..]) {
        if h.size < HEADER_BYTES {
            break;
        }
        let Some(raw) = batches.get(at..at + h.size) else { break };
        at += h.size;
        if h.is_control() {
            continue;
        }
        let plain = match uncompressed(raw, &h, &mut scratch) {
            Ok(p) => p,
            Err(_) => break,
        };
        let Ok(records) = batch::parse_records(&plain) else { break };
        let log_append_time = h.attributes & batch::LOG_APPEND_TIME != 0;
        for r in records {
            let timestamp = if log_append_time {
                h.max_timestamp
            } else {
                h.base_timestamp.saturating_add(r.timestamp_delta)
            };
            let offset = h.base_offset.saturating_add(r.offset_delta);
            if offset < from {
                continue;
            }
            let before = out.len();
            put_message(&mut out, offset, magic, log_append_time, timestamp, r.key, r.value);
            if out.len() > max_bytes && before > 0 {
                out.truncate(before);
                return out;
            }
        }
    }
    out
}

/// `raw` with its records uncompressed (itself when they are).
fn uncompressed<'a>(
    raw: &'a [u8],
    h: &BatchHeader,
    scratch: &'a mut Vec<u8>,
) -> Result<std::borrow::Cow<'a, [u8]>, BatchError> {
    if h.compression() == 0 {
        return Ok(std::borrow::Cow::Borrowed(raw));
    }
    let mut records = Vec::new();
    decompress_into(
        h.compression(),
        &raw[HEADER_BYTES..],
        DECOMPRESSED_BATCH_BYTES_MAX,
        &mut records,
    )
    .map_err(BatchError::Decompress)?;
    scratch.clear();
    scratch.extend_from_slice(&raw[..HEADER_BYTES]);
    scratch.extend_from_slice(&records);
    batch::set_uncompressed(scratch);
    Ok(std::borrow::Cow::Borrowed(&scratch[..]))
}

/// Appends one message at `offset` in `magic` 0 or 1.
fn put_message(
    out: &mut Vec<u8>,
    offset: i64,
    magic: u8,
    log_append_time: bool,
    timestamp: Timestamp,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    let fixed = if magic == 0 { MESSAGE_FIXED_V0 } else { MESSAGE_FIXED_V1 };
    let size = fixed + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len);
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(&(size as i32).to_be_bytes());
    let crc_at = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(magic);
    out.push(if magic == 1 && log_append_time { 0x08 } else { 0 });
    if magic == 1 {
        out.extend_from_slice(&timestamp.to_be_bytes());
    }
    for part in [key, value] {
        match part {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(b) => {
                out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                out.extend_from_slice(b);
            }
        }
    }
    let crc = crc32fast::hash(&out[crc_at + 4..]);
    out[crc_at..crc_at + 4].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upconvert_one(set: &[u8]) -> Result<Vec<u8>, BatchError> {
        upconvert(set, usize::MAX)
    }

    #[test]
    fn a_large_set_is_split_over_batches_within_the_limit() {
        let value = [7u8; 100];
        let msgs: Vec<Msg<'_>> = (0..50).map(|i| (None, Some(&value[..]), 1000 + i)).collect();
        for codec in [0, 1] {
            let batches = upconvert(&set(1, codec, &msgs), 1000).unwrap();
            let (mut at, mut records, mut count) = (0, Vec::new(), 0);
            while at < batches.len() {
                let h = batch::validate_one(&batches[at..]).unwrap();
                assert!(h.size <= 1000, "{} bytes", h.size);
                records.extend(fields(&batches[at..at + h.size]));
                (at, count) = (at + h.size, count + 1);
            }
            assert!(count > 5, "{count} batches");
            let ts: Vec<i64> = records.iter().map(|r| r.2).collect();
            assert_eq!(ts, (1000..1050).collect::<Vec<_>>(), "codec {codec}");
        }
    }

    /// A message's key, value and timestamp.
    type Msg<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, i64);
    type Owned = (Option<Vec<u8>>, Option<Vec<u8>>, i64);

    fn set(magic: u8, codec: u8, messages: &[Msg<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (k, v, ts)) in messages.iter().enumerate() {
            put_message(&mut out, i as i64, magic, false, *ts, *k, *v);
        }
        if codec == 0 {
            return out;
        }
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&out).unwrap();
        let compressed = gz.finish().unwrap();
        let mut wrapper = Vec::new();
        let last = messages.len() as i64 - 1;
        put_message(&mut wrapper, last, magic, false, messages[0].2, None, Some(&compressed));
        // The codec bits of the wrapper, then its CRC again.
        wrapper[ENTRY_OVERHEAD + 5] = codec;
        let crc = crc32fast::hash(&wrapper[ENTRY_OVERHEAD + 4..]);
        wrapper[ENTRY_OVERHEAD..ENTRY_OVERHEAD + 4].copy_from_slice(&crc.to_be_bytes());
        wrapper
    }

    fn fields(batch: &[u8]) -> Vec<Owned> {
        let h = batch::validate_one(batch).unwrap();
        batch::parse_records(batch)
            .unwrap()
            .iter()
            .map(|r| {
                let ts = if h.base_timestamp == NO_TIMESTAMP {
                    NO_TIMESTAMP
                } else {
                    h.base_timestamp + r.timestamp_delta
                };
                (r.key.map(<[u8]>::to_vec), r.value.map(<[u8]>::to_vec), ts)
            })
            .collect()
    }

    #[test]
    fn magic_1_messages_plain_and_compressed_become_one_v2_batch() {
        let msgs: &[Msg<'_>] = &[
            (Some(b"k1"), Some(b"v1"), 1000),
            (None, Some(b"v2"), 1005),
            (Some(b"k3"), None, 990),
        ];
        for codec in [0, 1] {
            let batch = upconvert_one(&set(1, codec, msgs)).unwrap();
            let want: Vec<_> = msgs
                .iter()
                .map(|(k, v, t)| (k.map(<[u8]>::to_vec), v.map(<[u8]>::to_vec), *t))
                .collect();
            assert_eq!(fields(&batch), want, "codec {codec}");
            assert_eq!(BatchHeader::parse(&batch).unwrap().max_timestamp, 1005);
        }
    }

    #[test]
    fn a_message_without_a_timestamp_keeps_none_beside_others() {
        let batch =
            upconvert_one(&set(1, 0, &[(None, Some(b"a"), -1), (None, Some(b"b"), 50)])).unwrap();
        let ts: Vec<i64> = fields(&batch).iter().map(|f| f.2).collect();
        assert_eq!(ts, vec![-1, 50]);
    }

    #[test]
    fn magic_0_messages_have_no_timestamp() {
        let batch = upconvert_one(&set(0, 0, &[(Some(b"k"), Some(b"v"), 77)])).unwrap();
        assert_eq!(fields(&batch), vec![(Some(b"k".to_vec()), Some(b"v".to_vec()), NO_TIMESTAMP)]);
    }

    #[test]
    fn damaged_message_sets_are_refused() {
        let mut bad = set(1, 0, &[(Some(b"k"), Some(b"v"), 1)]);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(upconvert_one(&bad), Err(BatchError::Corrupt(_))));
        let good = set(1, 0, &[(Some(b"k"), Some(b"v"), 1)]);
        assert!(upconvert_one(&good[..good.len() - 1]).is_err());
        assert!(upconvert_one(&[]).is_err());
        let mut magic2 = good.clone();
        magic2[16] = 2;
        let crc = crc32fast::hash(&magic2[16..]);
        magic2[12..16].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            upconvert_one(&magic2),
            Err(BatchError::Corrupt("message magic is neither 0 nor 1"))
        );
    }

    #[test]
    fn batches_come_back_as_messages_at_their_offsets_within_the_limit() {
        let mut log =
            batch::build_timed(&[(Some(b"a"), Some(b"1")), (None, Some(b"2"))], 500, &[0, 3]);
        batch::stamp(&mut log, 40, 0);
        let mut second = batch::build(&[(Some(b"b"), Some(b"3"))], 900);
        batch::stamp(&mut second, 42, 0);
        log.extend_from_slice(&second);
        for magic in [0u8, 1] {
            let set = downconvert(&log, 0, magic, usize::MAX);
            let got = messages(&set).unwrap();
            let offsets: Vec<i64> = (0..3)
                .map(|i| {
                    let mut at = 0;
                    for _ in 0..i {
                        let size = i32::from_be_bytes(set[at + 8..at + 12].try_into().unwrap());
                        at += ENTRY_OVERHEAD + size as usize;
                    }
                    i64::from_be_bytes(set[at..at + 8].try_into().unwrap())
                })
                .collect();
            assert_eq!(offsets, vec![40, 41, 42]);
            assert!(got.iter().all(|m| m.magic == magic));
            let values: Vec<_> = got.iter().map(|m| m.value.unwrap().to_vec()).collect();
            assert_eq!(values, vec![b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]);
            if magic == 1 {
                let ts: Vec<_> = got.iter().map(|m| m.timestamp).collect();
                assert_eq!(ts, vec![500, 503, 900]);
            }
            // Round trip: back to one v2 batch.
            assert_eq!(fields(&upconvert(&set, usize::MAX).unwrap()).len(), 3);
        }
        // A limit below the first message still gives it; then stops.
        let one = downconvert(&log, 0, 1, 1);
        assert_eq!(messages(&one).unwrap().len(), 1);
        // From the middle of a batch: the records below are left out, the
        // first one at or past the offset is given whatever the limit.
        let from = downconvert(&log, 41, 1, 1);
        assert_eq!(i64::from_be_bytes(from[..8].try_into().unwrap()), 41);
        assert_eq!(messages(&from).unwrap().len(), 1);
    }
}
