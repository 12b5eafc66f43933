//! The load generator: Kafka producers and consumers that speak the wire
//! protocol directly, so that a benchmark measures the broker and not the
//! client.
//!
//! Runs on plain threads of the benchmark process, two per connection (a
//! writer and a reader), never inside a broker. Producers send pre-built
//! record batches (built once, re-sent with a new correlation id: no work
//! per record; an idempotent or transactional producer also stamps its
//! producer id and sequences into each batch and computes its CRC again,
//! as a Kafka producer does), with up to `in_flight` requests pipelined per connection;
//! consumers count records from batch headers without decoding records.
//! The end-to-end mode stamps each batch's first record with its send time
//! and reads it back at the consumer.
//!
//! - [`client`]: frames, metadata, topic creation, end offsets (the
//!   workspace's `client` crate, re-exported here).
//! - [`compress`]: compressed batches (gzip, snappy, lz4, zstd), from it too.
//! - [`kcat`]: the same loads through kcat (librdkafka), a real client.
//! - [`produce`], [`consume`]: the workers and what they measure.
//! - [`broker`]: a `corelog serve` child process when no broker is given.
//! - [`progress`]: the live progress line.

pub mod broker;
pub mod consume;
pub mod kcat;
pub mod produce;
pub mod progress;

use std::time::Duration;

pub use ::client;
pub use ::client::compress;
use anyhow::Result;
use hdrhistogram::Histogram;

/// Latency histograms hold microseconds from 1 µs to 10 minutes.
pub const LATENCY_US_MAX: u64 = 600_000_000;

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds")
}

/// What one phase (producing or consuming) achieved.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Records acknowledged (producer) or received (consumer).
    pub records: u64,
    /// Record payload: `records × record_size` for producers, as reported
    /// by the producer for consumers.
    pub payload_bytes: u64,
    /// Record batch bytes on the wire (headers and record framing included).
    pub batch_bytes: u64,
    /// Record batches acknowledged (producer); 0 where not counted.
    pub batches: u64,
    pub elapsed: Duration,
    /// Per record, in microseconds: acknowledgment latency (producer) or
    /// send-to-receive latency (end-to-end consumer). Empty otherwise.
    pub latency_us: Histogram<u64>,
    /// Per group of a producer that waits between groups (a transaction,
    /// or a flush), in microseconds: from its start to its last
    /// acknowledgment, or to its commit's answer. Empty otherwise.
    pub group_us: Histogram<u64>,
    /// A transactional producer's control calls.
    pub txn: TxnTimes,
}

/// Where a transaction's time goes beside its produces: its calls to the
/// coordinator, in microseconds each, and the CONCURRENT_TRANSACTIONS
/// answers (the previous transaction's markers still being written)
/// that AddPartitionsToTxn retried.
#[derive(Debug, Clone)]
pub struct TxnTimes {
    /// AddPartitionsToTxn, retries included.
    pub add_partitions_us: Histogram<u64>,
    pub end_txn_us: Histogram<u64>,
    pub concurrent_retries: u64,
}

impl TxnTimes {
    pub fn new() -> TxnTimes {
        TxnTimes { add_partitions_us: histogram(), end_txn_us: histogram(), concurrent_retries: 0 }
    }

    fn add(&mut self, other: &TxnTimes) -> Result<()> {
        let histograms = |e| anyhow::anyhow!("histograms: {e:?}");
        self.add_partitions_us.add(&other.add_partitions_us).map_err(histograms)?;
        self.end_txn_us.add(&other.end_txn_us).map_err(histograms)?;
        self.concurrent_retries += other.concurrent_retries;
        Ok(())
    }

    fn json(&self) -> serde_json::Value {
        let q = |h: &Histogram<u64>, q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q));
        serde_json::json!({
            "add_partitions_p50_us": q(&self.add_partitions_us, 0.5),
            "add_partitions_p99_us": q(&self.add_partitions_us, 0.99),
            "end_txn_p50_us": q(&self.end_txn_us, 0.5),
            "end_txn_p99_us": q(&self.end_txn_us, 0.99),
            "concurrent_retries": self.concurrent_retries,
        })
    }
}

impl Default for TxnTimes {
    fn default() -> TxnTimes {
        TxnTimes::new()
    }
}

impl Outcome {
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn mb_per_sec(&self) -> f64 {
        self.payload_bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn batch_mb_per_sec(&self) -> f64 {
        self.batch_bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// p50, p99 and p99.9 in microseconds, when latency was measured.
    pub fn percentiles(&self) -> Option<(u64, u64, u64)> {
        let h = &self.latency_us;
        (!h.is_empty()).then(|| {
            (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.value_at_quantile(0.999))
        })
    }

    /// The JSON fields every result file carries.
    pub fn json(&self) -> serde_json::Value {
        let (p50, p99, p999) = self.percentiles().unwrap_or((0, 0, 0));
        let has = !self.latency_us.is_empty();
        serde_json::json!({
            "records": self.records,
            "batches": (self.batches > 0).then_some(self.batches),
            "seconds": crate::report::round3(self.elapsed.as_secs_f64()),
            "records_per_sec": self.records_per_sec().round(),
            "mb_per_sec": crate::report::round1(self.mb_per_sec()),
            "batch_mb_per_sec": crate::report::round1(self.batch_mb_per_sec()),
            "p50_us": has.then_some(p50),
            "p99_us": has.then_some(p99),
            "p999_us": has.then_some(p999),
            "groups": self.group_us.len(),
            "group_p50_us": self.group_percentile(0.5),
            "group_p99_us": self.group_percentile(0.99),
            "transactions": (!self.txn.end_txn_us.is_empty()).then(|| self.txn.json()),
        })
    }

    /// A quantile of the group latencies, when groups were measured.
    pub fn group_percentile(&self, q: f64) -> Option<u64> {
        (!self.group_us.is_empty()).then(|| self.group_us.value_at_quantile(q))
    }

    /// One line for the terminal.
    pub fn summary(&self, what: &str) -> String {
        let mut s = format!(
            "{what}: {} records in {:.2} s: {:.0} records/s, {:.1} MB/s",
            self.records,
            self.elapsed.as_secs_f64(),
            self.records_per_sec(),
            self.mb_per_sec()
        );
        if let Some((p50, p99, p999)) = self.percentiles() {
            s += &format!(", latency p50 {p50} µs, p99 {p99} µs, p99.9 {p999} µs");
        }
        if let (Some(p50), Some(p99)) = (self.group_percentile(0.5), self.group_percentile(0.99)) {
            s += &format!("; {} groups, p50 {p50} µs, p99 {p99} µs", self.group_us.len());
        }
        let t = &self.txn;
        if !t.end_txn_us.is_empty() {
            s += &format!(
                "; AddPartitionsToTxn p50 {} µs, EndTxn p50 {} µs, {} CONCURRENT_TRANSACTIONS retries",
                t.add_partitions_us.value_at_quantile(0.5),
                t.end_txn_us.value_at_quantile(0.5),
                t.concurrent_retries
            );
        }
        s
    }
}

/// What one connection's thread did.
pub struct LaneCounts {
    pub records: u64,
    pub batch_bytes: u64,
    /// Record batches acknowledged; 0 where not counted (consumers).
    pub batches: u64,
    pub latency_us: Histogram<u64>,
    pub group_us: Histogram<u64>,
    pub txn: TxnTimes,
}

impl LaneCounts {
    pub fn new(records: u64, batch_bytes: u64, latency_us: Histogram<u64>) -> LaneCounts {
        let (group_us, txn) = (histogram(), TxnTimes::new());
        LaneCounts { records, batch_bytes, batches: 0, latency_us, group_us, txn }
    }
}

pub type LaneResult = Result<LaneCounts>;

/// Joins the lanes' threads and adds up what they did (the first error
/// wins). `elapsed` and `payload_bytes` are left for the caller.
pub fn join_lanes(handles: Vec<std::thread::JoinHandle<LaneResult>>) -> Result<Outcome> {
    let mut outcome = Outcome {
        records: 0,
        payload_bytes: 0,
        batch_bytes: 0,
        batches: 0,
        elapsed: Duration::ZERO,
        latency_us: histogram(),
        group_us: histogram(),
        txn: TxnTimes::new(),
    };
    let mut first_error = None;
    for h in handles {
        match h.join().map_err(|_| anyhow::anyhow!("load thread panicked"))? {
            Ok(lane) => {
                outcome.records += lane.records;
                outcome.batch_bytes += lane.batch_bytes;
                outcome.batches += lane.batches;
                let histograms = |e| anyhow::anyhow!("histograms: {e:?}");
                outcome.latency_us.add(&lane.latency_us).map_err(histograms)?;
                outcome.group_us.add(&lane.group_us).map_err(histograms)?;
                outcome.txn.add(&lane.txn)?;
            }
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(outcome),
    }
}

/// Splits `items` over `n` lanes round robin (lane `i` gets items `i`,
/// `i + n`, ...); empty lanes are dropped.
pub fn spread<T: Clone>(items: &[T], n: usize) -> Vec<Vec<T>> {
    let mut lanes: Vec<Vec<T>> = vec![Vec::new(); n.max(1)];
    for (i, item) in items.iter().enumerate() {
        lanes[i % n.max(1)].push(item.clone());
    }
    lanes.retain(|l| !l.is_empty());
    lanes
}

/// How connections to one broker divide its partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Every connection writes every partition its broker leads, as each
    /// Kafka producer writes every partition (producers).
    Share,
    /// Each partition goes to one connection, as a consumer group assigns
    /// partitions (consumers); connections beyond the partitions stay idle.
    Divide,
}

/// Connections to open for `connections` producers or consumers over the
/// partitions' leaders: at least one per leader, then spread over them.
/// Returns (leader address, partitions) per connection.
pub fn plan_connections(
    leaders: &client::Leaders,
    connections: usize,
    split: Split,
) -> Result<Vec<(String, Vec<i32>)>> {
    let by_broker: Vec<(String, Vec<i32>)> = leaders.by_broker().into_iter().collect();
    anyhow::ensure!(!by_broker.is_empty(), "the topic has no partitions");
    let mut per_broker = vec![0usize; by_broker.len()];
    for i in 0..connections.max(by_broker.len()) {
        per_broker[i % by_broker.len()] += 1;
    }
    let mut plan = Vec::new();
    for ((addr, partitions), n) in by_broker.iter().zip(per_broker) {
        match split {
            Split::Share => plan.extend((0..n).map(|_| (addr.clone(), partitions.clone()))),
            Split::Divide => {
                plan.extend(spread(partitions, n).into_iter().map(|lane| (addr.clone(), lane)))
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaders(partitions: &[(i32, &str)]) -> client::Leaders {
        client::Leaders {
            partitions: partitions.iter().map(|(p, a)| (*p, a.to_string())).collect(),
            security: Default::default(),
        }
    }

    #[test]
    fn producers_share_a_broker_s_partitions_and_consumers_divide_them() {
        let l = leaders(&[(0, "a"), (1, "b"), (2, "a"), (3, "b"), (4, "a"), (5, "b")]);
        let share = plan_connections(&l, 4, Split::Share).unwrap();
        assert_eq!(share.len(), 4);
        assert_eq!(share.iter().filter(|(a, ps)| a == "a" && ps == &vec![0, 2, 4]).count(), 2);
        assert_eq!(share.iter().filter(|(a, ps)| a == "b" && ps == &vec![1, 3, 5]).count(), 2);

        let divide = plan_connections(&l, 4, Split::Divide).unwrap();
        let mut all: Vec<i32> = divide.iter().flat_map(|(_, ps)| ps.clone()).collect();
        all.sort();
        assert_eq!(all, vec![0, 1, 2, 3, 4, 5], "each partition read by exactly one connection");
        assert_eq!(divide.len(), 4);

        // Fewer connections than leaders: still one per leader.
        assert_eq!(plan_connections(&l, 1, Split::Share).unwrap().len(), 2);
        // More consumers than partitions: the extra ones get nothing.
        assert_eq!(plan_connections(&l, 10, Split::Divide).unwrap().len(), 6);
    }
}
