//! Producers: each connection sends Produce requests holding one pre-built
//! batch per partition it writes, with up to `in_flight` requests
//! pipelined, and measures each request's acknowledgment latency.
//!
//! Runs two threads per connection: a writer that paces and sends frames,
//! and a reader that takes the responses in order. The window between them
//! is a bounded channel of permits, so no more than `in_flight` requests
//! are ever outstanding. Unpaced, latency counts from when the window let
//! a request go; with a target rate, from its scheduled send time (no
//! coordinated omission: a stalled broker shows as latency, not as fewer
//! samples).
//!
//! An idempotent or transactional producer stamps each batch with its
//! producer id, epoch and sequence before sending it (and its CRC again),
//! as a Kafka producer does. Producing in groups (`group_records`), a
//! connection waits for every acknowledgment of a group before the next
//! one: a flush, or for a transactional producer the transaction's end
//! (AddPartitionsToTxn before its first request, EndTxn after its last
//! acknowledgment, on a connection to the coordinator).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use engine::batch;
use engine::testkit::Rng;
use net::kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use net::kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use net::kafka_protocol::protocol::Decodable;

use super::client::security::Security;
use super::client::txn::{self, ProducerIdentity, Transactions};
use super::client::{self, Conn, Leaders};
use super::compress::{compress_batch, Codec};
use super::progress::Progress;
use super::Outcome;

/// Distinct pre-built request frames per connection, sent in turn, so that
/// consecutive batches differ (keys and values) as real traffic does.
pub const FRAME_VARIANTS: usize = 4;

/// Size of the send-time stamp written into the first record of each batch
/// in end-to-end mode: nanoseconds since the run's start, big-endian.
pub const STAMP_BYTES: usize = 8;

/// A transactional producer's `transaction.timeout.ms` (Kafka's default).
pub const TRANSACTION_TIMEOUT_MS: i32 = 60_000;

/// Which producer the generator plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerKind {
    /// No producer id (Kafka clients before idempotence was the default).
    Plain,
    /// A producer id per connection, sequences per partition.
    Idempotent,
    /// A `transactional.id` per connection; every group a transaction.
    Transactional,
}

impl ProducerKind {
    pub fn parse(s: &str) -> Result<ProducerKind> {
        match s {
            "plain" => Ok(ProducerKind::Plain),
            "idempotent" => Ok(ProducerKind::Idempotent),
            "transactional" => Ok(ProducerKind::Transactional),
            other => bail!("producer {other:?}: expected plain, idempotent or transactional"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ProducerKind::Plain => "plain",
            ProducerKind::Idempotent => "idempotent",
            ProducerKind::Transactional => "transactional",
        }
    }
}

/// What to produce.
#[derive(Debug, Clone)]
pub struct ProduceSpec {
    pub topic: String,
    /// 0 (no response), 1 or -1 (all).
    pub acks: i16,
    pub connections: usize,
    /// Requests in flight per connection (Kafka clients default to 5).
    pub in_flight: usize,
    /// Records in all; rounded up to whole batches per partition.
    pub records: u64,
    /// Value bytes per record (Kafka's benchmark: 100).
    pub record_size: usize,
    pub batch_records: usize,
    /// Keys drawn uniformly from this many; 0 for null keys.
    pub keys: u64,
    /// Total records per second to aim at; `None` for as fast as acknowledged.
    pub rate: Option<f64>,
    /// Stamp each batch's first record with its send time (end-to-end mode).
    pub stamp: bool,
    pub compression: Codec,
    pub producer: ProducerKind,
    /// Records per connection between waits for every acknowledgment
    /// (rounded up to whole requests): a transaction, or a flush; 0 for
    /// no waits. A transactional producer needs groups.
    pub group_records: u64,
}

/// One connection's pre-built traffic.
struct Lane {
    addr: String,
    /// How to connect to `addr` (the leaders').
    security: Security,
    partitions: Vec<i32>,
    /// Its `transactional.id`, for a transactional producer.
    transactional_id: Option<String>,
    frames: Vec<Vec<u8>>,
    /// Where each batch lies in each frame, and its first value (the
    /// stamp's place): (batch start, batch end, value start), all frame
    /// offsets.
    batches: Vec<Vec<(usize, usize, usize)>>,
    requests: u64,
    records_per_request: u64,
    batch_bytes_per_request: u64,
}

/// Produces `spec.records` records into `spec.topic`. `base` is the
/// instant end-to-end stamps count from.
pub fn run(
    leaders: &Leaders,
    spec: &ProduceSpec,
    base: Instant,
    progress: &Progress,
) -> Result<Outcome> {
    anyhow::ensure!(spec.batch_records > 0 && spec.in_flight > 0, "empty batches or window");
    anyhow::ensure!(
        !spec.stamp || spec.record_size >= STAMP_BYTES,
        "end-to-end mode needs records of at least {STAMP_BYTES} bytes"
    );
    anyhow::ensure!(
        !spec.stamp || spec.compression == Codec::None,
        "end-to-end mode sends uncompressed batches (a stamp would need a new compression per request)"
    );
    anyhow::ensure!(
        spec.producer == ProducerKind::Plain || spec.acks == -1,
        "an {} producer needs acks=all, as Kafka's producers do",
        spec.producer.name()
    );
    anyhow::ensure!(
        spec.producer != ProducerKind::Transactional || spec.group_records > 0,
        "a transactional producer needs a transaction size (records per group)"
    );
    anyhow::ensure!(
        !spec.stamp || spec.producer != ProducerKind::Transactional,
        "end-to-end mode counts offsets, and transaction markers take offsets too"
    );
    anyhow::ensure!(
        spec.group_records == 0 || spec.acks != 0,
        "groups wait for acknowledgments: acks=0 has none"
    );
    let mut rng = Rng::new(0x0C0D_E106 ^ spec.record_size as u64);
    let mut lanes = Vec::new();
    // Distinct per process and run, so that runs never fence each other.
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let run_id = format!("{}-{}", std::process::id(), RUNS.fetch_add(1, Ordering::Relaxed));
    for (i, (addr, lane_partitions, requests)) in plan(leaders, spec)?.into_iter().enumerate() {
        let tid = (spec.producer == ProducerKind::Transactional)
            .then(|| format!("corelog-bench-{run_id}-{i}"));
        let mut lane = build_lane(&addr, &lane_partitions, tid, spec, requests, &mut rng)?;
        lane.security = leaders.security.clone();
        lanes.push(lane);
    }
    let total: u64 = lanes.iter().map(|l| l.requests * l.records_per_request).sum();
    progress.start(total);

    let stored_before: i64 =
        if spec.acks == 0 { client::offsets(leaders, &spec.topic, -1)?.values().sum() } else { 0 };
    let start = Instant::now();
    let per_lane_rate = spec.rate.map(|r| r / lanes.len() as f64);
    let handles: Vec<_> = lanes
        .into_iter()
        .map(|lane| {
            let (spec, progress) = (spec.clone(), progress.clone());
            std::thread::Builder::new()
                .name("bench-producer".into())
                .spawn(move || drive(lane, &spec, per_lane_rate, start, base, &progress))
                .expect("spawn producer thread")
        })
        .collect();
    let mut outcome = super::join_lanes(handles)?;
    if spec.acks == 0 {
        // Nothing was acknowledged: the run ends when the broker holds it all.
        wait_stored(leaders, &spec.topic, stored_before, outcome.records)?;
    }
    outcome.elapsed = start.elapsed();
    outcome.payload_bytes = outcome.records * spec.record_size as u64;
    progress.finish();
    Ok(outcome)
}

/// Connections with their partitions and request counts: every partition
/// gets the same number of batches, shared by the connections writing it
/// (all connections to a broker write all of its partitions).
fn plan(leaders: &Leaders, spec: &ProduceSpec) -> Result<Vec<(String, Vec<i32>, u64)>> {
    let plan = super::plan_connections(leaders, spec.connections, super::Split::Share)?;
    let partitions = leaders.partitions.len() as u64;
    let batches_per_partition = spec.records.div_ceil(spec.batch_records as u64 * partitions);
    let mut writers_of = BTreeMap::<i32, u64>::new();
    for (_, lane) in &plan {
        for &p in lane {
            *writers_of.entry(p).or_default() += 1;
        }
    }
    Ok(plan
        .into_iter()
        .map(|(addr, lane)| {
            let requests = batches_per_partition.div_ceil(writers_of[&lane[0]]).max(1);
            (addr, lane, requests)
        })
        .collect())
}

/// The records a run of `spec` writes into each partition.
pub fn records_per_partition(leaders: &Leaders, spec: &ProduceSpec) -> Result<BTreeMap<i32, u64>> {
    let mut out = BTreeMap::new();
    for (_, lane, requests) in plan(leaders, spec)? {
        for p in lane {
            *out.entry(p).or_default() += requests * spec.batch_records as u64;
        }
    }
    Ok(out)
}

fn build_lane(
    addr: &str,
    partitions: &[i32],
    transactional_id: Option<String>,
    spec: &ProduceSpec,
    requests: u64,
    rng: &mut Rng,
) -> Result<Lane> {
    let mut frames = Vec::new();
    let mut places_all = Vec::new();
    let mut batch_bytes = 0;
    for _ in 0..FRAME_VARIANTS {
        let batches: Vec<Vec<u8>> = partitions
            .iter()
            .map(|_| {
                let mut b = compress_batch(&make_batch(spec, rng), spec.compression)?;
                if transactional_id.is_some() {
                    batch::set_transactional(&mut b);
                }
                Ok(b)
            })
            .collect::<Result<_>>()?;
        batch_bytes = batches.iter().map(|b| b.len() as u64).sum();
        let request = ProduceRequest::default()
            .with_transactional_id(transactional_id.as_deref().map(|t| client::conn::str(t).into()))
            .with_acks(spec.acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(client::name(&spec.topic))
                .with_partition_data(
                    partitions
                        .iter()
                        .zip(&batches)
                        .map(|(&p, b)| {
                            PartitionProduceData::default()
                                .with_index(p)
                                .with_records(Some(Bytes::from(b.clone())))
                        })
                        .collect(),
                )]);
        let frame = client::encode_frame(ApiKey::Produce, client::PRODUCE_VERSION, 0, &request)?;
        let mut at = 0;
        let mut places = Vec::new();
        for b in &batches {
            let start = find(&frame, b, at).context("batch not found in its frame")?;
            let value_at = if spec.stamp { first_value_at(b)? } else { 0 };
            places.push((start, start + b.len(), start + value_at));
            at = start + b.len();
        }
        frames.push(frame);
        places_all.push(places);
    }
    Ok(Lane {
        addr: addr.to_string(),
        security: Security::default(),
        partitions: partitions.to_vec(),
        transactional_id,
        frames,
        batches: places_all,
        requests,
        records_per_request: (spec.batch_records * partitions.len()) as u64,
        batch_bytes_per_request: batch_bytes,
    })
}

/// One uncompressed batch of `spec.batch_records` records with random
/// values (so that nothing compresses better than real data would).
fn make_batch(spec: &ProduceSpec, rng: &mut Rng) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..spec.batch_records)
        .map(|_| (0..spec.record_size).map(|_| rng.next_u64() as u8).collect())
        .collect();
    let keys: Vec<Option<Vec<u8>>> = (0..spec.batch_records)
        .map(|_| (spec.keys > 0).then(|| format!("key-{:010}", rng.below(spec.keys)).into_bytes()))
        .collect();
    let records: Vec<batch::KeyValue<'_>> =
        keys.iter().zip(&values).map(|(k, v)| (k.as_deref(), Some(&v[..]))).collect();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    batch::build(&records, now_ms)
}

/// Position of the first record's value inside a batch built by [`make_batch`].
fn first_value_at(b: &[u8]) -> Result<usize> {
    let records = batch::parse_records(b).map_err(|e| anyhow::anyhow!("own batch: {e}"))?;
    let value = records.first().and_then(|r| r.value).context("batch without a value")?;
    Ok(value.as_ptr() as usize - b.as_ptr() as usize)
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack[from..].windows(needle.len()).position(|w| w == needle).map(|i| i + from)
}

/// Sends one lane's requests and takes their responses; returns the
/// records acknowledged, their batch bytes and the latency histograms.
fn drive(
    mut lane: Lane,
    spec: &ProduceSpec,
    rate: Option<f64>,
    start: Instant,
    base: Instant,
    progress: &Progress,
) -> super::LaneResult {
    let mut txns = match &lane.transactional_id {
        Some(tid) => {
            Some(Transactions::init(&lane.addr, &lane.security, tid, TRANSACTION_TIMEOUT_MS)?)
        }
        None => None,
    };
    let identity: Option<ProducerIdentity> = match (spec.producer, &txns) {
        (ProducerKind::Plain, _) => None,
        (_, Some(t)) => Some(t.producer),
        (_, None) => {
            Some(txn::init_idempotent(&mut Conn::connect_with(&lane.addr, &lane.security)?)?)
        }
    };
    let mut writer = Conn::connect_with(&lane.addr, &lane.security)?;
    let acks = spec.acks;
    // The window: a permit per outstanding request (the reader holds one
    // while it waits for that response, the channel the rest), and the
    // send times in request order.
    let (permit_tx, permit_rx) = mpsc::sync_channel::<()>(spec.in_flight - 1);
    let (time_tx, time_rx) = mpsc::channel::<Instant>();
    let requests = lane.requests;
    let records_per_request = lane.records_per_request;
    // Producing in groups, the reader says which request it has taken the
    // answer of, and the writer waits for a group's last one.
    let per_group = match spec.group_records {
        0 => None,
        n => Some(n.div_ceil(records_per_request).max(1)),
    };
    let (done_tx, done_rx) = mpsc::channel::<u64>();
    let done_tx = per_group.map(|_| done_tx);
    let acked = Arc::new(AtomicU64::new(0));
    let reader = if acks != 0 {
        let mut conn = writer.try_clone()?;
        let (acked, progress) = (acked.clone(), progress.clone());
        Some(
            std::thread::Builder::new()
                .name("bench-acks".into())
                .spawn(move || -> Result<hdrhistogram::Histogram<u64>> {
                    let mut hist = super::histogram();
                    for i in 0..requests {
                        permit_rx.recv().context("writer stopped")?;
                        let mut body = conn.read_response(i as i32 + 1)?;
                        check_response(&mut body)?;
                        let sent = time_rx.recv().context("writer stopped")?;
                        let us = sent.elapsed().as_micros().max(1) as u64;
                        hist.saturating_record_n(us, records_per_request);
                        acked.fetch_add(records_per_request, Ordering::Relaxed);
                        progress.add(records_per_request);
                        if let Some(done) = &done_tx {
                            // The writer stops listening only when it failed.
                            let _ = done.send(i);
                        }
                    }
                    Ok(hist)
                })
                .expect("spawn reader thread"),
        )
    } else {
        None
    };
    let interval = rate.map(|r| Duration::from_secs_f64(records_per_request as f64 / r));
    let mut group_us = super::histogram();
    let mut txn_times = super::TxnTimes::new();
    let micros = |since: Instant| since.elapsed().as_micros().max(1) as u64;
    let mut group_start = Instant::now();
    // A transaction begun and not ended: aborted if the lane fails, so
    // that it does not hold readers back until it times out.
    let mut open = false;
    let mut write_error = None;
    for i in 0..requests {
        let scheduled = interval.map(|every| {
            let at = start + every * i as u32;
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            at
        });
        if per_group.is_some_and(|n| i % n == 0) {
            group_start = scheduled.unwrap_or_else(Instant::now);
            if let Some(t) = &mut txns {
                let called = Instant::now();
                if let Err(e) = t.add_partitions(&spec.topic, &lane.partitions) {
                    write_error = Some(e);
                    break;
                }
                txn_times.add_partitions_us.saturating_record(micros(called));
                open = true;
            }
        }
        if acks != 0 && permit_tx.send(()).is_err() {
            break; // the reader failed; its error is reported below
        }
        // Paced, latency counts from the schedule (a request held back by
        // a full window is late); unpaced, from when the window let it go.
        let sent = scheduled.unwrap_or_else(Instant::now);
        if acks != 0 && time_tx.send(sent).is_err() {
            break;
        }
        let v = i as usize % lane.frames.len();
        let frame = &mut lane.frames[v];
        client::set_correlation(frame, i as i32 + 1);
        let stamp = spec.stamp.then(|| sent.saturating_duration_since(base).as_nanos() as u64);
        // Kafka's sequences wrap to 0 after i32::MAX.
        let sequence = ((i * spec.batch_records as u64) % (1 << 31)) as i32;
        for &(b_start, b_end, value_at) in &lane.batches[v] {
            if let Some(nanos) = stamp {
                frame[value_at..value_at + STAMP_BYTES].copy_from_slice(&nanos.to_be_bytes());
            }
            match identity {
                // Sets the CRC too.
                Some(p) => batch::set_producer(&mut frame[b_start..b_end], p.id, p.epoch, sequence),
                None if spec.stamp => batch::set_crc(&mut frame[b_start..b_end]),
                None => {}
            }
        }
        if let Err(e) = writer.write_frame(frame) {
            write_error = Some(e);
            break;
        }
        if acks == 0 {
            acked.fetch_add(records_per_request, Ordering::Relaxed);
            progress.add(records_per_request);
        }
        if per_group.is_some_and(|n| (i + 1) % n == 0 || i + 1 == requests) {
            if !answered(i, &done_rx) {
                break; // the reader failed; its error is reported below
            }
            if let Some(t) = &mut txns {
                let called = Instant::now();
                if let Err(e) = t.end(true) {
                    write_error = Some(e);
                    break;
                }
                txn_times.end_txn_us.saturating_record(micros(called));
                open = false;
            }
            group_us.saturating_record(micros(group_start));
        }
    }
    drop((permit_tx, time_tx));
    let read = match reader {
        Some(r) => r.join().map_err(|_| anyhow::anyhow!("reader thread panicked"))?,
        None => Ok(super::histogram()),
    };
    if open && (write_error.is_some() || read.is_err()) {
        if let Some(t) = &mut txns {
            // Best effort: the lane's own error is the one reported.
            let _ = t.end(false);
        }
    }
    // A failed write also stops the reader; the write error is the cause.
    if let Some(e) = write_error {
        return Err(e);
    }
    let hist = read?;
    let records = acked.load(Ordering::Relaxed);
    let requests = records / records_per_request;
    let batch_bytes = requests * lane.batch_bytes_per_request;
    let batches = requests * lane.partitions.len() as u64;
    txn_times.concurrent_retries = txns.map_or(0, |t| t.concurrent_retries);
    let latency_us = hist;
    Ok(super::LaneCounts { records, batch_bytes, batches, latency_us, group_us, txn: txn_times })
}

/// Waits until request `last`'s answer is in; false if the reader
/// stopped first (it failed, and says why).
fn answered(last: u64, done: &mpsc::Receiver<u64>) -> bool {
    loop {
        match done.recv() {
            Ok(i) if i >= last => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

/// Fails on any partition error in a Produce response.
fn check_response(body: &mut Bytes) -> Result<()> {
    client::skip_response_header_tags(body, ApiKey::Produce, client::PRODUCE_VERSION)?;
    let response = ProduceResponse::decode(body, client::PRODUCE_VERSION)?;
    for t in &response.responses {
        for p in &t.partition_responses {
            if p.error_code != 0 {
                bail!("produce to {}-{}: error {}", t.name.0, p.index, p.error_code);
            }
        }
    }
    Ok(())
}

/// Waits (at most a minute) until the topic's partitions hold `records`
/// more records than the `before` they held at the start: the end of an
/// acks=0 run.
fn wait_stored(leaders: &Leaders, topic: &str, before: i64, records: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ends = client::offsets(leaders, topic, -1)?;
        let stored: i64 = ends.values().sum::<i64>() - before;
        if stored as u64 >= records {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("acks=0: only {stored} of {records} records stored after a minute");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
