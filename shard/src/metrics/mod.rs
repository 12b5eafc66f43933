//! Metrics: each shard's own counters ([`ShardMetrics`]), the plain-data
//! [`Snapshot`] a shard hands out when asked, and the Prometheus text
//! rendering of all shards' snapshots ([`render`]).
//!
//! The counters live on their shard (`Cell`s, no atomics) and are bumped
//! inline by the request path. A scrape never touches them from another
//! thread: the node's metrics thread (`crate::node`) sends each shard a
//! [`MetricsRequest`] over its channel, the shard answers with a
//! [`Snapshot`] copied out in one go, and the thread renders. Nothing here
//! may block or allocate per record on the data path. [`http`] is the
//! endpoint.
//!
//! Not counted: records fetched. Cold fetches are spliced from the segment
//! files without being opened, so the broker knows their bytes, not their
//! records (Kafka has no records-out meter either); a group's lag gives the
//! records its consumers have not yet committed.

pub mod http;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::time::Duration;

use engine::flush::FlushStats;
use engine::stats::{Histogram, ReadStats};
use net::kafka_protocol::messages::ApiKey;

use crate::ids::{BrokerId, ShardId};
use crate::partitions::{Partition, Partitions};
use crate::splice::SpliceStats;

/// A request for one shard's snapshot (the reply channel).
pub type MetricsRequest = flume::Sender<Snapshot>;

/// One partition's traffic counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PartitionCounters {
    /// Records and bytes appended (offsets assigned).
    pub records_in: u64,
    pub bytes_in: u64,
    /// Record bytes returned by fetches.
    pub bytes_out: u64,
    pub produce_requests: u64,
    pub fetch_requests: u64,
}

/// Totals of glommio's I/O ring counters (glommio hands out and resets
/// them on each read, so the shard keeps the sums).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IoTotals {
    pub file_reads: u64,
    pub file_read_bytes: u64,
    pub buffered_reads: u64,
    pub buffered_read_bytes: u64,
    pub file_writes: u64,
    pub file_write_bytes: u64,
}

/// A shard's counters. Only its own shard touches them.
#[derive(Default)]
pub struct ShardMetrics {
    /// Per API key: requests handled and their latency (from the decoded
    /// frame to the response written).
    apis: RefCell<BTreeMap<i16, (u64, Histogram)>>,
    /// Per topic, by partition index (looked up by `&str`: no allocation
    /// on the request path once a partition has counters).
    partitions: RefCell<HashMap<String, Vec<PartitionCounters>>>,
    connections_active: Cell<u64>,
    connections_accepted: Cell<u64>,
    /// Connections closed for bad input (a malformed or oversized frame, an
    /// unknown API or version, a body that does not decode).
    protocol_errors: Cell<u64>,
    authentications_failed: Cell<u64>,
    reauthentications: Cell<u64>,
    throttled: Cell<u64>,
    throttle_ms: Cell<u64>,
    io: Cell<IoTotals>,
}

impl ShardMetrics {
    pub fn request_done(&self, api: ApiKey, took: Duration) {
        let mut apis = self.apis.borrow_mut();
        let (count, latency) = apis.entry(api as i16).or_default();
        *count += 1;
        latency.record(took);
    }

    pub fn connection_opened(&self) {
        self.connections_active.set(self.connections_active.get() + 1);
        self.connections_accepted.set(self.connections_accepted.get() + 1);
    }

    pub fn connection_closed(&self) {
        self.connections_active.set(self.connections_active.get().saturating_sub(1));
    }

    pub fn protocol_error(&self) {
        self.protocol_errors.set(self.protocol_errors.get() + 1);
    }

    pub fn authentication_failed(&self) {
        self.authentications_failed.set(self.authentications_failed.get() + 1);
    }

    /// A request over its client's quota, throttled `by`.
    pub fn throttled(&self, by: std::time::Duration) {
        self.throttled.set(self.throttled.get() + 1);
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.throttle_ms.set(self.throttle_ms.get().saturating_add(ms));
    }

    pub fn reauthenticated(&self, n: u64) {
        self.reauthentications.set(self.reauthentications.get() + n);
    }

    /// Applies `f` to a partition's counters.
    pub fn partition(&self, topic: &str, partition: i32, f: impl FnOnce(&mut PartitionCounters)) {
        let Ok(index) = usize::try_from(partition) else { return };
        let mut all = self.partitions.borrow_mut();
        if !all.contains_key(topic) {
            all.insert(topic.to_string(), Vec::new());
        }
        let counters = all.get_mut(topic).expect("inserted above");
        if counters.len() <= index {
            counters.resize(index + 1, PartitionCounters::default());
        }
        f(&mut counters[index]);
    }

    fn counters(&self, topic: &str, partition: i32) -> PartitionCounters {
        let all = self.partitions.borrow();
        let index = usize::try_from(partition).unwrap_or(usize::MAX);
        all.get(topic).and_then(|c| c.get(index)).copied().unwrap_or_default()
    }

    /// Forgets the counters of topics this shard no longer has.
    pub fn retain_topics(&self, keep: impl Fn(&str) -> bool) {
        self.partitions.borrow_mut().retain(|t, _| keep(t));
    }
}

/// One partition as exported.
#[derive(Debug, Clone)]
pub struct PartitionSnapshot {
    pub topic: String,
    pub partition: i32,
    pub counters: PartitionCounters,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    pub size_bytes: u64,
    pub segments: u64,
    pub reads: ReadStats,
    /// The log refuses writes after a storage failure.
    pub offline: bool,
}

/// One consumer group as exported (by the shard that coordinates it).
#[derive(Debug, Clone)]
pub struct GroupSnapshot {
    pub group: String,
    pub state: &'static str,
    pub members: u64,
    pub generation: i32,
    /// (topic, partition, committed offset), sorted.
    pub committed: Vec<(String, i32, i64)>,
}

/// Everything one shard exports, copied out at once.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub shard: ShardId,
    pub broker_id: i32,
    /// (API key, requests, latency).
    pub apis: Vec<(i16, u64, Histogram)>,
    pub connections_active: u64,
    pub connections_accepted: u64,
    pub protocol_errors: u64,
    pub authentications_failed: u64,
    pub reauthentications: u64,
    pub throttled: u64,
    pub throttle_ms: u64,
    /// Request bytes held now against `queued.max.request.bytes`.
    pub request_bytes_queued: u64,
    pub flush: FlushStats,
    pub unwritten_bytes: u64,
    pub io: IoTotals,
    /// Zero-copy sends (all zero without a splicer).
    pub splice: SpliceStats,
    pub partitions: Vec<PartitionSnapshot>,
    pub groups: Vec<GroupSnapshot>,
}

/// What a shard's snapshot holds besides its counters.
pub struct Sources<'a> {
    pub shard: ShardId,
    pub broker: BrokerId,
    pub partitions: &'a Partitions,
    pub request_bytes_queued: usize,
    pub groups: Vec<GroupSnapshot>,
    pub splice: SpliceStats,
}

/// The shard's snapshot. Runs on the shard.
pub fn snapshot(m: &ShardMetrics, sources: Sources<'_>) -> Snapshot {
    let Sources { shard, broker, partitions, request_bytes_queued, groups, splice } = sources;
    let stats = glommio::executor().io_stats().all_rings();
    let mut io = m.io.get();
    io.file_reads += stats.file_reads().0;
    io.file_read_bytes += stats.file_reads().1;
    io.buffered_reads += stats.file_buffered_reads().0;
    io.buffered_read_bytes += stats.file_buffered_reads().1;
    io.file_writes += stats.file_writes().0;
    io.file_write_bytes += stats.file_writes().1;
    m.io.set(io);
    let flusher = partitions.flusher();
    let mut partitions: Vec<PartitionSnapshot> = partitions
        .all()
        .into_iter()
        .map(|Partition { topic, index: p, log, .. }| PartitionSnapshot {
            topic: topic.to_string(),
            partition: p,
            counters: m.counters(&topic, p),
            log_start_offset: log.log_start_offset(),
            log_end_offset: log.log_end_offset(),
            high_watermark: log.high_watermark(),
            size_bytes: log.size_bytes(),
            segments: log.segment_count() as u64,
            reads: log.read_stats(),
            offline: log.failure().is_some(),
        })
        .collect();
    partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Snapshot {
        shard,
        broker_id: broker.0,
        apis: m.apis.borrow().iter().map(|(&k, &(n, h))| (k, n, h)).collect(),
        connections_active: m.connections_active.get(),
        connections_accepted: m.connections_accepted.get(),
        protocol_errors: m.protocol_errors.get(),
        authentications_failed: m.authentications_failed.get(),
        reauthentications: m.reauthentications.get(),
        throttled: m.throttled.get(),
        throttle_ms: m.throttle_ms.get(),
        request_bytes_queued: request_bytes_queued as u64,
        flush: flusher.stats(),
        unwritten_bytes: flusher.unwritten_bytes() as u64,
        io,
        splice,
        partitions,
        groups,
    }
}

/// One metric family being written: its HELP and TYPE once, then samples.
struct Out {
    text: String,
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        for (le, count) in h.cumulative() {
            let le = match le {
                Some(us) => seconds(us),
                None => "+Inf".to_string(),
            };
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&format!("{name}_bucket"), &with_le, count);
        }
        self.sample(&format!("{name}_sum"), labels, seconds(h.sum_us()));
        self.sample(&format!("{name}_count"), labels, h.count());
    }
}

/// Microseconds as seconds, exactly (no float rounding noise).
fn seconds(us: u64) -> String {
    let s = format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A label value in the text format: backslash, quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The Prometheus text exposition (format 0.0.4) of every shard's snapshot.
/// `missing` lists shards that did not answer in time.
pub fn render(snapshots: &[Snapshot], missing: &[ShardId], node_id: i32) -> String {
    let mut o = Out { text: String::with_capacity(64 * 1024) };
    let node = node_id.to_string();
    o.family("corelog_build_info", "gauge", "Always 1; the version and node in labels.");
    o.sample("corelog_build_info", &[("version", env!("CARGO_PKG_VERSION")), ("node", &node)], 1);
    o.family("corelog_shard_up", "gauge", "1 if the shard answered this scrape in time.");
    let mut shards: Vec<(ShardId, bool)> = snapshots.iter().map(|s| (s.shard, true)).collect();
    shards.extend(missing.iter().map(|&s| (s, false)));
    shards.sort();
    for (s, up) in shards {
        o.sample("corelog_shard_up", &[("shard", &s.to_string())], up as u8);
    }

    let per_shard: Vec<(String, &Snapshot)> =
        snapshots.iter().map(|s| (s.shard.to_string(), s)).collect();
    type Get = fn(&Snapshot) -> u64;
    let shard_series: &[(&str, &str, &str, Get)] = &[
        ("corelog_connections_active", "gauge", "Open client connections.", |s| {
            s.connections_active
        }),
        ("corelog_connections_accepted_total", "counter", "Client connections accepted.", |s| {
            s.connections_accepted
        }),
        (
            "corelog_protocol_errors_total",
            "counter",
            "Connections closed for bad input: malformed or oversized frames, unknown APIs or versions.",
            |s| s.protocol_errors,
        ),
        (
            "corelog_failed_authentication_total",
            "counter",
            "SASL exchanges that failed (Kafka's failed-authentication-total): answered and closed after a delay.",
            |s| s.authentications_failed,
        ),
        (
            "corelog_successful_reauthentication_total",
            "counter",
            "SASL sessions renewed in band on their connection (KIP-368, --connections-max-reauth-ms).",
            |s| s.reauthentications,
        ),
        (
            "corelog_throttled_requests_total",
            "counter",
            "Requests over their client's quota (producer_byte_rate, consumer_byte_rate, request_percentage): answered with throttle_time_ms, the connection muted.",
            |s| s.throttled,
        ),
        (
            "corelog_throttle_time_ms_total",
            "counter",
            "Throttle time told to clients over their quota, in milliseconds.",
            |s| s.throttle_ms,
        ),
        (
            "corelog_request_bytes_queued",
            "gauge",
            "Request bytes held from their size until their reply is written (queued.max.request.bytes bounds them).",
            |s| s.request_bytes_queued,
        ),
        ("corelog_fdatasync_total", "counter", "fdatasync calls on log files.", |s| {
            s.flush.fdatasyncs
        }),
        ("corelog_disk_writes_total", "counter", "Direct writes of log data.", |s| s.flush.writes),
        ("corelog_disk_written_bytes_total", "counter", "Bytes of log data written.", |s| {
            s.flush.bytes_written
        }),
        (
            "corelog_disk_zero_writes_total",
            "counter",
            "Writes of zeros ahead of active segments' data, so that small writes overwrite written blocks (decision 52).",
            |s| s.flush.zero_writes,
        ),
        ("corelog_disk_zero_bytes_total", "counter", "Bytes of zeros written ahead of active segments' data.", |s| {
            s.flush.zero_bytes
        }),
        (
            "corelog_unwritten_bytes",
            "gauge",
            "Bytes appended and not yet written (bounded per shard).",
            |s| s.unwritten_bytes,
        ),
        ("corelog_io_uring_file_reads_total", "counter", "Direct file reads on the shard's io_uring rings.", |s| {
            s.io.file_reads
        }),
        ("corelog_io_uring_file_read_bytes_total", "counter", "Bytes of direct file reads on the rings.", |s| {
            s.io.file_read_bytes
        }),
        (
            "corelog_io_uring_buffered_reads_total",
            "counter",
            "Buffered (page cache) reads on the rings, as glommio counts them (the zero-copy ring's wake-ups included).",
            |s| s.io.buffered_reads,
        ),
        ("corelog_io_uring_file_writes_total", "counter", "Direct file writes on the rings.", |s| {
            s.io.file_writes
        }),
        ("corelog_io_uring_file_write_bytes_total", "counter", "Bytes of direct file writes on the rings.", |s| {
            s.io.file_write_bytes
        }),
        (
            "corelog_splice_file_bytes_total",
            "counter",
            "Bytes of segment files spliced to clients (cold fetches, no userspace copy).",
            |s| s.splice.file_bytes,
        ),
        (
            "corelog_splice_read_ahead_hints_total",
            "counter",
            "Read-ahead hints for file ranges of zero-copy responses (each response's ranges after its first).",
            |s| s.splice.read_ahead_hints,
        ),
        (
            "corelog_splice_read_ahead_requested_bytes_total",
            "counter",
            "Bytes the read-ahead hints asked for (the kernel reads at most its readahead window of each).",
            |s| s.splice.read_ahead_requested_bytes,
        ),
        (
            "corelog_splice_read_ahead_failures_total",
            "counter",
            "Read-ahead hints the kernel refused (the splices read without them).",
            |s| s.splice.read_ahead_failures,
        ),
    ];
    for (name, kind, help, get) in shard_series {
        o.family(name, kind, help);
        for (label, s) in &per_shard {
            o.sample(name, &[("shard", label)], get(s));
        }
    }
    o.family(
        "corelog_fdatasync_round_duration_seconds",
        "histogram",
        "Duration of each group-commit fdatasync round (what an acks=all produce waits for after its write).",
    );
    for (label, s) in &per_shard {
        o.histogram(
            "corelog_fdatasync_round_duration_seconds",
            &[("shard", label)],
            &s.flush.sync_latency,
        );
    }

    o.family("corelog_requests_total", "counter", "Kafka requests handled, by API.");
    for (label, s) in &per_shard {
        for (api, n, _) in &s.apis {
            o.sample("corelog_requests_total", &[("shard", label), ("api", &api_name(*api))], n);
        }
    }
    o.family(
        "corelog_request_duration_seconds",
        "histogram",
        "Request latency by API, from the decoded request to the written response.",
    );
    for (label, s) in &per_shard {
        for (api, _, h) in &s.apis {
            o.histogram(
                "corelog_request_duration_seconds",
                &[("shard", label), ("api", &api_name(*api))],
                h,
            );
        }
    }

    // Per partition, labelled with the leading shard.
    let partitions: Vec<(&str, &PartitionSnapshot)> = per_shard
        .iter()
        .flat_map(|(label, s)| s.partitions.iter().map(move |p| (label.as_str(), p)))
        .collect();
    type GetP = fn(&PartitionSnapshot) -> u64;
    let partition_series: &[(&str, &str, &str, GetP)] = &[
        ("corelog_partition_records_in_total", "counter", "Records appended.", |p| {
            p.counters.records_in
        }),
        ("corelog_partition_bytes_in_total", "counter", "Record batch bytes appended.", |p| {
            p.counters.bytes_in
        }),
        (
            "corelog_partition_bytes_out_total",
            "counter",
            "Record batch bytes returned by fetches.",
            |p| p.counters.bytes_out,
        ),
        (
            "corelog_partition_produce_requests_total",
            "counter",
            "Produce requests with data for the partition.",
            |p| p.counters.produce_requests,
        ),
        (
            "corelog_partition_fetch_requests_total",
            "counter",
            "Fetch requests that read the partition.",
            |p| p.counters.fetch_requests,
        ),
        ("corelog_partition_log_start_offset", "gauge", "First offset in the log.", |p| {
            p.log_start_offset.max(0) as u64
        }),
        ("corelog_partition_log_end_offset", "gauge", "Offset the next record gets.", |p| {
            p.log_end_offset.max(0) as u64
        }),
        (
            "corelog_partition_high_watermark",
            "gauge",
            "Offsets below are acknowledged and readable by consumers.",
            |p| p.high_watermark.max(0) as u64,
        ),
        ("corelog_partition_size_bytes", "gauge", "Bytes of the log's segments on disk.", |p| {
            p.size_bytes
        }),
        ("corelog_partition_segments", "gauge", "Segment files of the log.", |p| p.segments),
        (
            "corelog_partition_cache_bytes",
            "gauge",
            "Bytes of recent batches cached in memory.",
            |p| p.reads.cache_bytes,
        ),
        (
            "corelog_partition_cache_reads_total",
            "counter",
            "Reads served from the cache (hits).",
            |p| p.reads.cache_reads,
        ),
        (
            "corelog_partition_file_reads_total",
            "counter",
            "Reads served from segment files (cache misses: cold data).",
            |p| p.reads.file_reads,
        ),
        (
            "corelog_partition_offline",
            "gauge",
            "1 if the log refuses writes after a storage failure.",
            |p| p.offline as u64,
        ),
    ];
    for (name, kind, help, get) in partition_series {
        o.family(name, kind, help);
        for (shard, p) in &partitions {
            let partition = p.partition.to_string();
            o.sample(
                name,
                &[("shard", shard), ("topic", &p.topic), ("partition", &partition)],
                get(p),
            );
        }
    }

    // Groups, with lag against the partitions' high watermarks (from
    // whichever shard leads them).
    let high_watermarks: HashMap<(&str, i32), i64> = partitions
        .iter()
        .map(|(_, p)| ((p.topic.as_str(), p.partition), p.high_watermark))
        .collect();
    let groups: Vec<&GroupSnapshot> = snapshots.iter().flat_map(|s| s.groups.iter()).collect();
    o.family("corelog_group_members", "gauge", "Members of the consumer group.");
    for g in &groups {
        o.sample("corelog_group_members", &[("group", &g.group)], g.members);
    }
    o.family("corelog_group_generation", "gauge", "The group's generation id.");
    for g in &groups {
        o.sample("corelog_group_generation", &[("group", &g.group)], g.generation);
    }
    o.family("corelog_group_state", "gauge", "1 for the group's current state, 0 for the others.");
    for g in &groups {
        for state in ["Empty", "PreparingRebalance", "CompletingRebalance", "Stable"] {
            o.sample(
                "corelog_group_state",
                &[("group", &g.group), ("state", state)],
                (g.state == state) as u8,
            );
        }
    }
    o.family("corelog_group_committed_offset", "gauge", "The group's committed offset.");
    for g in &groups {
        for (topic, p, offset) in &g.committed {
            let partition = p.to_string();
            o.sample(
                "corelog_group_committed_offset",
                &[("group", &g.group), ("topic", topic), ("partition", &partition)],
                offset,
            );
        }
    }
    o.family(
        "corelog_group_lag",
        "gauge",
        "Records below the high watermark the group has not committed.",
    );
    for g in &groups {
        for (topic, p, offset) in &g.committed {
            let Some(&hw) = high_watermarks.get(&(topic.as_str(), *p)) else { continue };
            let partition = p.to_string();
            o.sample(
                "corelog_group_lag",
                &[("group", &g.group), ("topic", topic), ("partition", &partition)],
                (hw - offset).max(0),
            );
        }
    }
    o.text
}

/// Kafka's name of an API, as the `api` label.
/// Kafka's name of an API (its key's variant name, as Kafka spells it).
/// Only served APIs are counted, so every key has one; a key without is
/// labelled by its number, never merged with another.
fn api_name(key: i16) -> String {
    match ApiKey::try_from(key) {
        Ok(api) => format!("{api:?}"),
        Err(_) => format!("Key{key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every served API is counted under a name of its own.
    #[test]
    fn served_apis_have_distinct_names() {
        let names: std::collections::BTreeSet<String> =
            net::versions::SUPPORTED.iter().map(|(api, _, _)| api_name(*api as i16)).collect();
        assert_eq!(names.len(), net::versions::SUPPORTED.len());
        assert!(names.contains("WriteTxnMarkers") && names.contains("DescribeQuorum"));
    }

    /// A shard leading topic `t<shard>`; shard 0 also coordinates group `g"1`.
    fn snapshot(shard: ShardId) -> Snapshot {
        let mut latency = Histogram::default();
        latency.record_us(700);
        Snapshot {
            shard,
            broker_id: i32::from(shard.0),
            apis: vec![(ApiKey::Produce as i16, 3, latency)],
            connections_active: 1,
            connections_accepted: 2,
            protocol_errors: 0,
            authentications_failed: 0,
            reauthentications: 0,
            throttled: 0,
            throttle_ms: 0,
            request_bytes_queued: 0,
            flush: FlushStats::default(),
            unwritten_bytes: 0,
            io: IoTotals::default(),
            splice: SpliceStats::default(),
            partitions: vec![PartitionSnapshot {
                topic: format!("t{shard}"),
                partition: 0,
                counters: PartitionCounters { records_in: 10, ..Default::default() },
                log_start_offset: 0,
                log_end_offset: 10,
                high_watermark: 10,
                size_bytes: 100,
                segments: 1,
                reads: ReadStats::default(),
                offline: false,
            }],
            groups: if shard.0 == 0 {
                vec![GroupSnapshot {
                    group: "g\"1".into(),
                    state: "Empty",
                    members: 0,
                    generation: 2,
                    committed: vec![("t1".into(), 0, 4), ("gone".into(), 0, 4)],
                }]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn families_once_lag_across_shards_and_escaped_labels() {
        let text = render(&[snapshot(ShardId(0)), snapshot(ShardId(1))], &[ShardId(2)], 0);
        assert_eq!(text.matches("# TYPE corelog_requests_total counter").count(), 1);
        assert!(text.contains("corelog_shard_up{shard=\"2\"} 0"));
        // Group on shard 0, partition on shard 1: lag 10 - 4, once.
        let lag = "corelog_group_lag{group=\"g\\\"1\",topic=\"t1\",partition=\"0\"} 6\n";
        assert_eq!(text.matches(lag).count(), 1);
        assert_eq!(text.matches("corelog_group_members{").count(), 1);
        // No lag for a partition nobody leads.
        assert!(!text.contains("corelog_group_lag{group=\"g\\\"1\",topic=\"gone\""));
        assert!(text.contains(
            "corelog_request_duration_seconds_bucket{shard=\"0\",api=\"Produce\",le=\"0.001\"} 1"
        ));
        assert!(text.contains(
            "corelog_request_duration_seconds_bucket{shard=\"0\",api=\"Produce\",le=\"0.0005\"} 0"
        ));
        assert!(text
            .contains("corelog_request_duration_seconds_sum{shard=\"0\",api=\"Produce\"} 0.0007"));
    }

    #[test]
    fn seconds_are_exact() {
        assert_eq!(seconds(50), "0.00005");
        assert_eq!(seconds(1_000_000), "1");
        assert_eq!(seconds(2_500_000), "2.5");
        assert_eq!(seconds(0), "0");
    }
}
