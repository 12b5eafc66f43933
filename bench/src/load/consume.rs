//! Consumers: each connection fetches its partitions from a start offset
//! to an end offset, one Fetch in flight (as Kafka clients do per broker),
//! and counts records from the batch headers. In end-to-end mode it also
//! reads the send-time stamp from each batch's first record.
//!
//! Runs one thread per connection. Records are never decoded one by one
//! except for that stamp; CRCs are not checked (as librdkafka's default
//! `check.crcs=false`), so the consumer costs little beside the broker.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use engine::batch::{self, BatchHeader};
use net::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use net::kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse};
use net::kafka_protocol::protocol::Decodable;

use super::client::security::Security;
use super::client::{self, Conn, Leaders};
use super::produce::STAMP_BYTES;
use super::progress::Progress;
use super::Outcome;

/// Kafka consumers' defaults: `fetch.max.bytes` and
/// `max.partition.fetch.bytes`.
pub const FETCH_BYTES_MAX: i32 = 50 * 1024 * 1024;
pub const PARTITION_FETCH_BYTES_MAX: i32 = 1024 * 1024;

/// How long a fetch waits for data (Kafka's `fetch.max.wait.ms`: 500).
pub const FETCH_WAIT_MS: i32 = 500;

/// A consumer that receives nothing new for this long fails the run.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct ConsumeSpec {
    pub topic: String,
    pub connections: usize,
    /// Per partition: first offset to read, and the offset to stop at.
    pub from: BTreeMap<i32, i64>,
    pub to: BTreeMap<i32, i64>,
    /// Value bytes per record, for the MB/s figure.
    pub record_size: usize,
    /// Read the producers' send-time stamps (end-to-end latency).
    pub stamped: bool,
    /// Fetch with `read_committed` isolation (up to the last stable
    /// offset) instead of `read_uncommitted`. The aborted transactions a
    /// response lists are not subtracted: the topics read so have none.
    pub read_committed: bool,
}

/// Consumes every partition from `spec.from` to `spec.to`.
pub fn run(
    leaders: &Leaders,
    spec: &ConsumeSpec,
    base: Instant,
    progress: &Progress,
) -> Result<Outcome> {
    let plan = super::plan_connections(leaders, spec.connections, super::Split::Divide)?;
    let total: i64 =
        spec.to.iter().map(|(p, &end)| end - spec.from.get(p).copied().unwrap_or(0)).sum();
    progress.start(total.max(0) as u64);
    let start = Instant::now();
    let handles: Vec<_> = plan
        .into_iter()
        .map(|(addr, partitions)| {
            let (spec, progress) = (spec.clone(), progress.clone());
            let security = leaders.security.clone();
            std::thread::Builder::new()
                .name("bench-consumer".into())
                .spawn(move || fetch_lane(&addr, &security, &partitions, &spec, base, &progress))
                .expect("spawn consumer thread")
        })
        .collect();
    let mut outcome = super::join_lanes(handles)?;
    outcome.elapsed = start.elapsed();
    outcome.payload_bytes = outcome.records * spec.record_size as u64;
    progress.finish();
    Ok(outcome)
}

fn fetch_lane(
    addr: &str,
    security: &Security,
    partitions: &[i32],
    spec: &ConsumeSpec,
    base: Instant,
    progress: &Progress,
) -> super::LaneResult {
    let mut conn = Conn::connect_with(addr, security)?;
    let mut next: BTreeMap<i32, i64> =
        partitions.iter().map(|p| (*p, spec.from.get(p).copied().unwrap_or(0))).collect();
    let end = |p: &i32| spec.to.get(p).copied().unwrap_or(0);
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut hist = super::histogram();
    let mut correlation = 0;
    let mut last_progress = Instant::now();
    loop {
        let wanted: Vec<FetchPartition> = next
            .iter()
            .filter(|(p, &o)| o < end(p))
            .map(|(&p, &o)| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(o)
                    .with_partition_max_bytes(PARTITION_FETCH_BYTES_MAX)
                    .with_current_leader_epoch(-1)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
            })
            .collect();
        if wanted.is_empty() {
            return Ok(super::LaneCounts::new(records, bytes, hist));
        }
        if last_progress.elapsed() > STALL_TIMEOUT {
            bail!("consumer of {addr}: nothing new for {} s", STALL_TIMEOUT.as_secs());
        }
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(FETCH_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(FETCH_BYTES_MAX)
            .with_session_epoch(-1)
            .with_isolation_level(i8::from(spec.read_committed))
            .with_topics(vec![FetchTopic::default()
                .with_topic(client::name(&spec.topic))
                .with_partitions(wanted)]);
        correlation += 1;
        let frame =
            client::encode_frame(ApiKey::Fetch, client::FETCH_VERSION, correlation, &request)?;
        conn.write_frame(&frame)?;
        let mut body = conn.read_response(correlation)?;
        client::skip_response_header_tags(&mut body, ApiKey::Fetch, client::FETCH_VERSION)?;
        let response = FetchResponse::decode(&mut body, client::FETCH_VERSION)?;
        if response.error_code != 0 {
            bail!("fetch from {addr}: error {}", response.error_code);
        }
        for t in &response.responses {
            for p in &t.partitions {
                if p.error_code != 0 {
                    bail!("fetch {}-{}: error {}", spec.topic, p.partition_index, p.error_code);
                }
                let Some(data) = p.records.as_deref() else { continue };
                let offset = next.get_mut(&p.partition_index).context("unasked partition")?;
                let before = *offset;
                let (n, b) =
                    count_batches(data, offset, spec.stamped.then_some((base, &mut hist)))?;
                if *offset > before {
                    last_progress = Instant::now();
                }
                records += n;
                bytes += b;
                progress.add(n);
            }
        }
    }
}

/// Counts the records at or after `*next` in the whole batches of `data`
/// (a fetch may end with a partial batch), advances `*next` past them, and
/// records stamped latencies. Transaction markers (control batches) take
/// offsets but are no records a consumer sees: they are not counted.
/// Returns (records, batch bytes).
fn count_batches(
    data: &[u8],
    next: &mut i64,
    mut stamps: Option<(Instant, &mut hdrhistogram::Histogram<u64>)>,
) -> Result<(u64, u64)> {
    let (mut records, mut bytes, mut at) = (0u64, 0u64, 0usize);
    while let Some(h) = BatchHeader::parse(&data[at..]) {
        if h.size < batch::HEADER_BYTES || at + h.size > data.len() {
            break;
        }
        if h.last_offset() >= *next && h.is_control() {
            bytes += h.size as u64;
            *next = h.last_offset() + 1;
        } else if h.last_offset() >= *next {
            let n = if h.base_offset >= *next {
                h.records_count.max(0) as u64
            } else {
                (h.last_offset() - *next + 1) as u64
            };
            if let Some((base, hist)) = stamps.as_mut() {
                let sent = stamp_of(&data[at..at + h.size])?;
                let now = base.elapsed().as_nanos() as u64;
                let us = (now.saturating_sub(sent) / 1000).max(1);
                hist.saturating_record_n(us, n);
            }
            records += n;
            bytes += h.size as u64;
            *next = h.last_offset() + 1;
        }
        at += h.size;
    }
    Ok((records, bytes))
}

/// The send time (ns since the run's base instant) in a batch's first record.
fn stamp_of(b: &[u8]) -> Result<u64> {
    let records = batch::parse_records(b).map_err(|e| anyhow::anyhow!("fetched batch: {e}"))?;
    let value = records.first().and_then(|r| r.value).context("stamped batch without a value")?;
    anyhow::ensure!(value.len() >= STAMP_BYTES, "record too short for a stamp");
    Ok(u64::from_be_bytes(value[..STAMP_BYTES].try_into().expect("8 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamped_batch(base_offset: i64, records: usize, stamp: u64) -> Vec<u8> {
        let values: Vec<Vec<u8>> = (0..records)
            .map(|i| {
                let mut v = stamp.to_be_bytes().to_vec();
                v.extend_from_slice(&[i as u8; 4]);
                v
            })
            .collect();
        let kv: Vec<batch::KeyValue<'_>> = values.iter().map(|v| (None, Some(&v[..]))).collect();
        let mut b = batch::build(&kv, 0);
        batch::stamp(&mut b, base_offset, 0);
        b
    }

    #[test]
    fn counts_records_from_the_fetch_offset_and_skips_a_partial_last_batch() {
        let mut data = stamped_batch(10, 5, 7);
        data.extend(stamped_batch(15, 3, 7));
        let partial = stamped_batch(18, 4, 7);
        data.extend_from_slice(&partial[..partial.len() - 1]);
        // The fetch asked for offset 12: records 12-14 of the first batch count.
        let mut next = 12;
        let (records, bytes) = count_batches(&data, &mut next, None).unwrap();
        assert_eq!(records, 3 + 3);
        assert_eq!(next, 18, "the partial batch is fetched again");
        assert_eq!(bytes as usize, data.len() - (partial.len() - 1));
    }

    #[test]
    fn markers_take_offsets_but_are_not_counted_as_records() {
        let mut data = stamped_batch(0, 5, 7);
        let mut marker = engine::txn::build_marker(
            7,
            0,
            engine::txn::Marker { commit: true, coordinator_epoch: 0 },
            0,
        );
        batch::stamp(&mut marker, 5, 0);
        data.extend_from_slice(&marker);
        data.extend(stamped_batch(6, 2, 7));
        let mut next = 0;
        let (records, bytes) = count_batches(&data, &mut next, None).unwrap();
        assert_eq!((records, next), (5 + 2, 8));
        assert_eq!(bytes as usize, data.len());
    }

    #[test]
    fn end_to_end_latency_comes_from_the_first_record_s_stamp() {
        // Sent 5 ms after a base instant that lies 10 ms in the past: the
        // monotonic clock makes the latency at least 5 ms, with no waiting.
        let base = Instant::now().checked_sub(Duration::from_millis(10)).unwrap();
        let data = stamped_batch(0, 4, 5_000_000);
        let mut hist = crate::load::histogram();
        let mut next = 0;
        count_batches(&data, &mut next, Some((base, &mut hist))).unwrap();
        assert_eq!(hist.len(), 4, "one sample per record");
        assert!(hist.min() >= 4_900, "latency counts from the stamp: {} µs", hist.min());
    }
}
