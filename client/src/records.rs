//! Records in and out: Produce with batches built from keys, values and
//! headers, Fetch, and the decoding of fetched batches (compressed ones
//! decompressed, control batches skipped, a partial last batch left for
//! the next fetch).
//!
//! Owns the record view a consumer prints ([`Record`]); it must not choose
//! partitions or offsets (the caller does) and never retries. Batches are
//! checked (length, magic, CRC-32C) before their records are read.

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use engine::batch::{self, BatchHeader, RecordSpec};
use net::kafka_protocol::messages::*;

use crate::cluster::Client;
use crate::compress::{decompress, Codec};
use crate::conn::{name, FETCH_VERSION, PRODUCE_VERSION};
use crate::error::{check, KafkaError};

/// Attribute bit 3: the broker's LogAppendTime replaces the records' times.
const LOG_APPEND_TIME_FLAG: i16 = 0x08;
/// Attribute bits 0-2: the compression codec.
const COMPRESSION_MASK: i16 = 0x07;
/// Where `batchLength` and `attributes` sit in a batch (the layout is
/// documented on `engine::batch`).
const LENGTH_AT: usize = 8;
const ATTRIBUTES_AT: usize = 21;
/// How long the broker may wait for acknowledgments of a produce.
pub const PRODUCE_TIMEOUT_MS: i32 = 30_000;
/// Bytes a fetch asks for per partition and in all (Kafka's consumer
/// defaults: max.partition.fetch.bytes and fetch.max.bytes).
pub const PARTITION_FETCH_BYTES_MAX: i32 = 1024 * 1024;
pub const FETCH_BYTES_MAX: i32 = 50 * 1024 * 1024;

/// A header of a record: a name and a possibly null value.
pub type Header = (Vec<u8>, Option<Vec<u8>>);

/// One record as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    /// Milliseconds since the epoch (CreateTime, or LogAppendTime when the
    /// topic says so).
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<Header>,
}

/// One record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// A batch of `records`, all with the headers `headers` and the time
/// `timestamp_ms`.
pub fn build_batch(records: &[NewRecord], headers: &[Header], timestamp_ms: i64) -> Vec<u8> {
    let hs: Vec<(&[u8], Option<&[u8]>)> =
        headers.iter().map(|(k, v)| (&k[..], v.as_deref())).collect();
    let specs: Vec<RecordSpec<'_>> = records
        .iter()
        .map(|r| RecordSpec { key: r.key.as_deref(), value: r.value.as_deref(), headers: &hs })
        .collect();
    batch::build_with_headers(&specs, timestamp_ms)
}

/// Produces `batches` (partition, batch) of `topic` to the broker at
/// `addr`, which must lead every one of those partitions. `acks` is 0, 1 or
/// -1 (all); with 0 nothing is awaited. Returns the base offset of each
/// partition's batch (-1 with acks 0); any partition's error fails the call.
pub fn produce(
    client: &mut Client,
    addr: &str,
    topic: &str,
    batches: &[(i32, Vec<u8>)],
    acks: i16,
) -> Result<Vec<(i32, i64)>> {
    use produce_request::{PartitionProduceData, TopicProduceData};
    let request = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(PRODUCE_TIMEOUT_MS)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(
                batches
                    .iter()
                    .map(|(p, b)| {
                        PartitionProduceData::default()
                            .with_index(*p)
                            .with_records(Some(Bytes::from(b.clone())))
                    })
                    .collect(),
            )]);
    if acks == 0 {
        client.conn(addr)?.send(ApiKey::Produce, PRODUCE_VERSION, &request)?;
        return Ok(batches.iter().map(|(p, _)| (*p, -1)).collect());
    }
    let r: ProduceResponse = client.call(addr, ApiKey::Produce, PRODUCE_VERSION, &request)?;
    let mut out = Vec::new();
    for t in &r.responses {
        for p in &t.partition_responses {
            check(p.error_code, p.error_message.as_ref())
                .with_context(|| format!("producing to {topic}-{}", p.index))?;
            out.push((p.index, p.base_offset));
        }
    }
    for (p, _) in batches {
        if !out.iter().any(|(q, _)| q == p) {
            bail!("producing to {topic}-{p}: no answer for the partition");
        }
    }
    Ok(out)
}

/// What a fetch returned for one partition.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub partition: i32,
    pub error: Option<KafkaError>,
    pub high_watermark: i64,
    /// Records at or after the fetch offset, in offset order.
    pub records: Vec<Record>,
    /// Where the next fetch starts: past every whole batch returned
    /// (control batches included), or the fetch offset if none was whole.
    pub next_offset: i64,
}

/// Fetches `positions` (partition, offset) of `topic` from the broker at
/// `addr`, waiting up to `max_wait_ms` for a first byte.
pub fn fetch(
    client: &mut Client,
    addr: &str,
    topic: &str,
    positions: &[(i32, i64)],
    max_wait_ms: i32,
) -> Result<Vec<Fetched>> {
    use fetch_request::{FetchPartition, FetchTopic};
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_BYTES_MAX)
        .with_isolation_level(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(name(topic)).with_partitions(
            positions
                .iter()
                .map(|&(p, o)| {
                    FetchPartition::default()
                        .with_partition(p)
                        .with_fetch_offset(o)
                        .with_partition_max_bytes(PARTITION_FETCH_BYTES_MAX)
                        .with_current_leader_epoch(-1)
                        .with_last_fetched_epoch(-1)
                        .with_log_start_offset(-1)
                })
                .collect(),
        )]);
    let r: FetchResponse = client.call(addr, ApiKey::Fetch, FETCH_VERSION, &request)?;
    check(r.error_code, None).with_context(|| format!("fetching from {addr}"))?;
    let mut out = Vec::new();
    for t in &r.responses {
        for p in &t.partitions {
            let from = positions
                .iter()
                .find(|(q, _)| *q == p.partition_index)
                .map(|(_, o)| *o)
                .with_context(|| format!("fetch answered {topic}-{}", p.partition_index))?;
            let mut fetched = Fetched {
                partition: p.partition_index,
                error: check(p.error_code, None).err(),
                high_watermark: p.high_watermark,
                records: Vec::new(),
                next_offset: from,
            };
            if fetched.error.is_none() {
                if let Some(data) = p.records.as_deref() {
                    fetched.next_offset = decode_batches(data, from, &mut fetched.records)
                        .with_context(|| format!("{topic}-{}", p.partition_index))?;
                }
            }
            out.push(fetched);
        }
    }
    Ok(out)
}

/// Appends to `out` the records at or after `from` in the whole batches of
/// `data`, and returns the offset after the last whole batch (`from` if
/// there is none). Control batches (transaction markers) are skipped.
pub fn decode_batches(data: &[u8], from: i64, out: &mut Vec<Record>) -> Result<i64> {
    let mut next = from;
    let mut at = 0;
    while let Some(h) = BatchHeader::parse(&data[at..]) {
        if h.size < batch::HEADER_BYTES || at + h.size > data.len() {
            break; // a partial batch: the fetch was cut at its byte limit
        }
        let bytes = &data[at..at + h.size];
        at += h.size;
        if h.magic != batch::MAGIC_V2 {
            bail!("a message set of format v{} (only record batches v2 are read)", h.magic);
        }
        let h = batch::validate_one(bytes)
            .map_err(|e| anyhow::anyhow!("batch at offset {}: {e}", h.base_offset))?;
        next = next.max(h.last_offset() + 1);
        if h.is_control() || h.last_offset() < from {
            continue;
        }
        decode_batch(bytes, &h, from, out)
            .with_context(|| format!("batch at offset {}", h.base_offset))?;
    }
    Ok(next)
}

fn decode_batch(bytes: &[u8], h: &BatchHeader, from: i64, out: &mut Vec<Record>) -> Result<()> {
    let codec = Codec::from_id(h.compression())?;
    // An uncompressed copy with the same header, so that the engine's
    // record parser (which checks the CRC) reads it.
    let plain;
    let uncompressed: &[u8] = if codec == Codec::None {
        bytes
    } else {
        let records = decompress(codec, &bytes[batch::HEADER_BYTES..])?;
        let mut b = Vec::with_capacity(batch::HEADER_BYTES + records.len());
        b.extend_from_slice(&bytes[..batch::HEADER_BYTES]);
        b.extend_from_slice(&records);
        let length = (b.len() - batch::LOG_OVERHEAD) as i32;
        b[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
        let attributes = h.attributes & !COMPRESSION_MASK;
        b[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
        batch::set_crc(&mut b);
        plain = b;
        &plain
    };
    let records = batch::parse_records(uncompressed).map_err(|e| anyhow::anyhow!("{e}"))?;
    let log_append = h.attributes & LOG_APPEND_TIME_FLAG != 0;
    for r in records {
        let offset = h.base_offset + r.offset_delta;
        if offset < from {
            continue;
        }
        out.push(Record {
            offset,
            timestamp: if log_append {
                h.max_timestamp
            } else {
                h.base_timestamp + r.timestamp_delta
            },
            key: r.key.map(<[u8]>::to_vec),
            value: r.value.map(<[u8]>::to_vec),
            headers: r.headers.iter().map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec))).collect(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::compress_batch;

    fn rec(k: &str, v: &str) -> NewRecord {
        NewRecord { key: Some(k.as_bytes().to_vec()), value: Some(v.as_bytes().to_vec()) }
    }

    fn stamped(mut b: Vec<u8>, base: i64) -> Vec<u8> {
        batch::stamp(&mut b, base, 0);
        b
    }

    #[test]
    fn batches_decode_with_keys_headers_and_compression() {
        let headers = vec![(b"h".to_vec(), Some(b"1".to_vec())), (b"n".to_vec(), None)];
        let built = build_batch(&[rec("a", "1"), rec("b", "2")], &headers, 1000);
        let mut data = stamped(built.clone(), 10);
        data.extend(stamped(compress_batch(&built, Codec::Zstd).unwrap(), 12));
        let partial = stamped(built, 14);
        data.extend_from_slice(&partial[..partial.len() - 3]);
        let mut out = Vec::new();
        assert_eq!(decode_batches(&data, 11, &mut out).unwrap(), 14);
        let offsets: Vec<i64> = out.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![11, 12, 13], "offset 10 is before the fetch offset");
        assert_eq!(out[1].key.as_deref(), Some(&b"a"[..]));
        assert_eq!(out[1].headers, headers);
        assert_eq!(out[2].timestamp, 1000);
    }

    #[test]
    fn control_batches_are_skipped_but_move_the_offset() {
        let mut marker = stamped(build_batch(&[rec("", "")], &[], 1), 5);
        let attributes =
            i16::from_be_bytes([marker[ATTRIBUTES_AT], marker[ATTRIBUTES_AT + 1]]) | 0x30;
        marker[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
        batch::set_crc(&mut marker);
        assert!(batch::validate_one(&marker).unwrap().is_control());
        let mut data = stamped(build_batch(&[rec("a", "1")], &[], 1), 4);
        data.extend(marker);
        data.extend(stamped(build_batch(&[rec("b", "2")], &[], 1), 6));
        let mut out = Vec::new();
        assert_eq!(decode_batches(&data, 4, &mut out).unwrap(), 7);
        assert_eq!(out.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![4, 6]);
    }

    #[test]
    fn a_corrupt_batch_is_an_error() {
        let mut b = stamped(build_batch(&[rec("a", "1")], &[], 1), 0);
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(decode_batches(&b, 0, &mut Vec::new()).is_err());
    }
}
