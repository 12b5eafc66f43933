//! The broker benchmarks' building blocks, `corelog bench produce`,
//! `consume` and `e2e`: a target broker (the one given, or a fresh child
//! process), a topic, the load generator, a printed summary and a JSON
//! result. The experiments (`kafka-2014`, `scaling`, ...) are sequences of
//! these phases.
//!
//! Runs on the benchmark process's main thread; the load runs on the
//! generator's threads ([`crate::load`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::load::broker::{own_cpu_seconds, OwnBroker, OwnCluster};
use crate::load::client::{self, Leaders};
use crate::load::compress::Codec;
use crate::load::consume::{self, ConsumeSpec};
use crate::load::kcat;
use crate::load::produce::{self, ProduceSpec, ProducerKind};
use crate::load::progress::Progress;
use crate::load::Outcome;
use crate::report;

/// The flags of the broker benchmarks.
#[derive(Debug, Clone)]
pub struct LoadArgs {
    /// A running broker; `None` starts one (`broker_exe serve`).
    pub bootstrap: Option<String>,
    /// How to reach `bootstrap` (`--command-config`): TLS, a SASL login.
    pub security: client::security::Security,
    pub broker_exe: Option<PathBuf>,
    pub topic: String,
    pub partitions: i32,
    /// Producer (or consumer) connections; at least one per leader.
    pub connections: usize,
    pub records: u64,
    pub record_size: usize,
    pub batch_records: usize,
    pub acks: i16,
    pub compression: Codec,
    pub in_flight: usize,
    pub keys: u64,
    pub rate: Option<f64>,
    /// Of the broker this benchmark starts.
    pub shards: u16,
    pub flush: String,
    /// More `corelog serve` flags for the broker it starts (experiments).
    pub broker_flags: Vec<String>,
    /// Repetitions of each measured phase (min/median/max reported).
    pub runs: usize,
    pub producer: ProducerKind,
    /// Records per connection between waits for every acknowledgment: a
    /// transaction's size; 0 for none.
    pub group_records: u64,
}

impl LoadArgs {
    pub fn defaults(quick: bool) -> LoadArgs {
        LoadArgs {
            bootstrap: None,
            security: Default::default(),
            broker_exe: None,
            topic: "bench".into(),
            partitions: 6,
            connections: 0,
            records: if quick { 5_000_000 } else { 20_000_000 },
            record_size: 100,
            batch_records: 1000,
            acks: -1,
            compression: Codec::None,
            in_flight: 5,
            keys: 0,
            rate: None,
            shards: std::thread::available_parallelism().map(|n| n.get() as u16).unwrap_or(1),
            flush: "fsync".into(),
            broker_flags: Vec::new(),
            runs: if quick { 1 } else { 3 },
            producer: ProducerKind::Plain,
            group_records: 0,
        }
    }

    pub fn produce_spec(&self) -> ProduceSpec {
        ProduceSpec {
            topic: self.topic.clone(),
            acks: self.acks,
            connections: self.connections,
            in_flight: self.in_flight,
            records: self.records,
            record_size: self.record_size,
            batch_records: self.batch_records,
            keys: self.keys,
            rate: self.rate,
            stamp: false,
            compression: self.compression,
            producer: self.producer,
            group_records: self.group_records,
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "topic": self.topic,
            "partitions": self.partitions,
            "connections": self.connections,
            "records": self.records,
            "record_size": self.record_size,
            "batch_records": self.batch_records,
            "acks": self.acks,
            "compression": format!("{:?}", self.compression).to_lowercase(),
            "in_flight": self.in_flight,
            "keys": self.keys,
            "rate": self.rate,
            "runs": self.runs,
            "producer": self.producer.name(),
            "group_records": self.group_records,
        })
    }
}

/// The broker a benchmark talks to: given, or started and owned (one
/// node, or a cluster for the replicated cases).
pub struct Target {
    pub bootstrap: String,
    pub security: client::security::Security,
    own: Option<OwnBroker>,
    cluster: Option<OwnCluster>,
}

impl Target {
    pub fn open(args: &LoadArgs, dir: &std::path::Path) -> Result<Target> {
        let security = args.security.clone();
        if let Some(b) = &args.bootstrap {
            return Ok(Target { bootstrap: b.clone(), security, own: None, cluster: None });
        }
        if security.protocol() != "PLAINTEXT" {
            bail!("--command-config needs --bootstrap: the broker a benchmark starts serves PLAINTEXT");
        }
        let Some(exe) = &args.broker_exe else {
            bail!("no --bootstrap given and no corelog binary to start a broker with");
        };
        let own = OwnBroker::start(exe, dir, args.shards, &args.flush, &args.broker_flags)?;
        eprintln!(
            "started corelog serve: {} shards, flush {}, at {}",
            own.shards, own.flush, own.bootstrap
        );
        let bootstrap = own.bootstrap.clone();
        Ok(Target { bootstrap, security, own: Some(own), cluster: None })
    }

    /// Starts a cluster of `nodes` nodes of one shard each on this machine
    /// (replicas go to distinct nodes), topics replicated `nodes` times by
    /// default. Needs the corelog binary (`--bootstrap` names one broker).
    pub fn open_cluster(args: &LoadArgs, dir: &std::path::Path, nodes: u16) -> Result<Target> {
        let Some(exe) = &args.broker_exe else {
            bail!("the replicated cases start their own cluster: no corelog binary to start");
        };
        if args.security.protocol() != "PLAINTEXT" {
            bail!("--command-config: the cluster a benchmark starts serves PLAINTEXT");
        }
        let mut flags = vec!["--default-replication-factor".to_string(), nodes.to_string()];
        flags.extend(args.broker_flags.iter().cloned());
        let cluster = OwnCluster::start(exe, dir, nodes, 1, &args.flush, &flags)?;
        eprintln!(
            "started a corelog cluster: {nodes} nodes of 1 shard, flush {}, at {}",
            args.flush,
            cluster.bootstrap()
        );
        let bootstrap = cluster.nodes[0].bootstrap.clone();
        let security = Default::default();
        Ok(Target { bootstrap, security, own: None, cluster: Some(cluster) })
    }

    /// The broker's CPU seconds so far (every node's, for a cluster), when
    /// this benchmark runs it.
    pub fn cpu_seconds(&self) -> Option<f64> {
        match (&self.own, &self.cluster) {
            (Some(b), _) => b.cpu_seconds().ok(),
            (_, Some(c)) => c.cpu_seconds().ok(),
            _ => None,
        }
    }

    pub fn json(&self) -> Value {
        match (&self.own, &self.cluster) {
            (Some(b), _) => {
                json!({ "started_by_bench": true, "shards": b.shards, "flush": b.flush })
            }
            (_, Some(c)) => json!({
                "started_by_bench": true, "nodes": c.nodes.len(), "shards_per_node": 1,
                "flush": c.nodes[0].flush,
            }),
            _ => json!({
                "started_by_bench": false, "bootstrap": self.bootstrap,
                "security": format!("{:?}", self.security),
            }),
        }
    }

    pub fn stop(self) -> Result<()> {
        if let Some(b) = self.own {
            b.stop()?;
        }
        if let Some(c) = self.cluster {
            c.stop()?;
        }
        Ok(())
    }

    /// Creates the topic (kept if it exists) and finds its leaders.
    pub fn topic(&self, topic: &str, partitions: i32) -> Result<Leaders> {
        self.topic_with(topic, partitions, &[])
    }

    pub fn delete_topic(&self, topic: &str) -> Result<()> {
        client::delete_topic(&self.bootstrap, &self.security, topic)
    }

    /// Fails clearly when the broker this benchmark started would run out
    /// of disk for `bytes` more (a full disk fails produces with
    /// KAFKA_STORAGE_ERROR mid-run). A given broker's disk is not known.
    pub fn ensure_space(&self, dir: &std::path::Path, bytes: u64) -> Result<()> {
        if self.own.is_none() && self.cluster.is_none() {
            return Ok(());
        }
        let free = crate::load::broker::free_bytes(dir)?;
        if free < bytes + SPACE_MARGIN_BYTES {
            bail!(
                "this run needs about {:.1} GB free in {} and {:.1} GB are (use --dir, or --quick)",
                (bytes + SPACE_MARGIN_BYTES) as f64 / 1e9,
                dir.display(),
                free as f64 / 1e9
            );
        }
        Ok(())
    }

    /// Like [`Target::topic`], with topic configs.
    pub fn topic_with(
        &self,
        topic: &str,
        partitions: i32,
        configs: &[(&str, String)],
    ) -> Result<Leaders> {
        client::create_topic(&self.bootstrap, &self.security, topic, partitions, configs)?;
        client::leaders(&self.bootstrap, &self.security, topic)
    }
}

/// Free space left beyond a run's estimate (indexes, other files, slack).
pub const SPACE_MARGIN_BYTES: u64 = 2_000_000_000;

/// CPU used by the broker and by the load generator during one phase.
pub struct CpuMeter {
    broker: Option<f64>,
    generator: f64,
}

impl CpuMeter {
    pub fn start(target: &Target) -> CpuMeter {
        CpuMeter { broker: target.cpu_seconds(), generator: own_cpu_seconds() }
    }

    /// `broker_cpu_seconds`, `generator_cpu_seconds`, the broker's CPU
    /// seconds per GB of record payload and, for producers, its CPU
    /// microseconds per record batch acknowledged.
    pub fn json(&self, target: &Target, outcome: &Outcome) -> Value {
        let broker = match (self.broker, target.cpu_seconds()) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let gb = outcome.payload_bytes as f64 / 1e9;
        json!({
            "broker_cpu_seconds": broker.map(report::round2),
            "broker_cpu_seconds_per_gb": broker.filter(|_| gb > 0.0).map(|s| report::round2(s / gb)),
            "broker_cpu_us_per_batch": broker
                .filter(|_| outcome.batches > 0)
                .map(|s| report::round2(s * 1e6 / outcome.batches as f64)),
            "generator_cpu_seconds": report::round2(own_cpu_seconds() - self.generator),
        })
    }
}

/// Repetitions of one phase. The run with the median records/s is the
/// headline (its figures are the JSON's top-level fields); with more than
/// one run, `runs` lists every run and `spread` gives [min, median, max]
/// of each figure across them.
pub struct Repeated {
    pub median: Outcome,
    pub json: Value,
}

/// The figures whose spread over repetitions is reported.
const SPREAD_FIELDS: [&str; 6] =
    ["records_per_sec", "mb_per_sec", "batch_mb_per_sec", "p50_us", "p99_us", "p999_us"];

/// Runs `once` `runs` times (at least once) and summarizes.
pub fn repeated(
    runs: usize,
    once: impl FnMut(usize) -> Result<(Outcome, Value)>,
) -> Result<Repeated> {
    let all = (0..runs.max(1)).map(once).collect::<Result<Vec<_>>>()?;
    Ok(summarize(all, Rank::Throughput))
}

/// Which run of several is the median one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    /// By records/s: for phases that run as fast as they can.
    Throughput,
    /// By p99 latency: for phases paced at a rate, whose records/s is the
    /// rate whatever happens.
    Latency,
}

/// Summarizes runs of one phase, each an outcome and its extra fields.
pub fn summarize(mut all: Vec<(Outcome, Value)>, rank: Rank) -> Repeated {
    assert!(!all.is_empty());
    let runs: Vec<Value> = all.iter().map(|(o, extra)| merged(o.json(), extra)).collect();
    let p99 = |o: &Outcome| o.percentiles().map(|p| p.1).unwrap_or(0);
    match rank {
        Rank::Throughput => {
            all.sort_by(|a, b| a.0.records_per_sec().total_cmp(&b.0.records_per_sec()))
        }
        Rank::Latency => all.sort_by_key(|a| p99(&a.0)),
    }
    let (median, extra) = all.swap_remove(all.len() / 2);
    let mut json = merged(median.json(), &extra);
    if runs.len() > 1 {
        let mut spread = serde_json::Map::new();
        for field in SPREAD_FIELDS {
            let mut values: Vec<f64> = runs.iter().filter_map(|r| r[field].as_f64()).collect();
            values.sort_by(f64::total_cmp);
            if let (Some(min), Some(max)) = (values.first(), values.last()) {
                spread.insert(field.into(), json!([min, values[values.len() / 2], max]));
            }
        }
        println!(
            "  {} runs: records/s min {} median {} max {}",
            runs.len(),
            spread["records_per_sec"][0],
            spread["records_per_sec"][1],
            spread["records_per_sec"][2]
        );
        json["spread"] = Value::Object(spread);
        json["runs"] = Value::Array(runs);
    }
    Repeated { median, json }
}

/// `a`'s fields with `b`'s added.
fn merged(mut a: Value, b: &Value) -> Value {
    if let (Some(obj), Some(extra)) = (a.as_object_mut(), b.as_object()) {
        obj.extend(extra.clone());
    }
    a
}

/// Produces `spec.records` records `runs` times, with CPU figures.
pub fn produce_phase(
    target: &Target,
    leaders: &Leaders,
    spec: &ProduceSpec,
    label: &str,
    runs: usize,
) -> Result<Repeated> {
    repeated(runs, |_| {
        let cpu = CpuMeter::start(target);
        let outcome = produce::run(leaders, spec, Instant::now(), &Progress::new(label))?;
        let cpu_json = cpu.json(target, &outcome);
        println!("{}", outcome.summary(label));
        Ok((outcome, cpu_json))
    })
}

/// Reads from the earliest offsets to the latest (or `limit` records in
/// all, spread evenly over the partitions) with `consumers` consumers,
/// `runs` times.
#[allow(clippy::too_many_arguments)]
pub fn consume_phase(
    target: &Target,
    leaders: &Leaders,
    topic: &str,
    consumers: usize,
    record_size: usize,
    label: &str,
    runs: usize,
    limit: Option<u64>,
) -> Result<Repeated> {
    let from = client::offsets(leaders, topic, -2)?;
    let mut to = client::offsets(leaders, topic, -1)?;
    if let Some(limit) = limit {
        let per_partition = limit.div_ceil(from.len().max(1) as u64) as i64;
        for (p, end) in to.iter_mut() {
            *end = (*end).min(from.get(p).copied().unwrap_or(0) + per_partition);
        }
    }
    let spec = ConsumeSpec {
        topic: topic.to_string(),
        connections: consumers,
        from,
        to,
        record_size,
        stamped: false,
        read_committed: false,
    };
    repeated(runs, |_| {
        let cpu = CpuMeter::start(target);
        let outcome = consume::run(leaders, &spec, Instant::now(), &Progress::new(label))?;
        let cpu_json = cpu.json(target, &outcome);
        println!("{}", outcome.summary(label));
        Ok((outcome, cpu_json))
    })
}

/// Producers and consumers at once, `runs` times: the consumers read what
/// the producers write, from the current end. Returns (producers,
/// consumers), each summarized over the runs.
pub fn produce_and_consume(
    leaders: &Leaders,
    spec: &ProduceSpec,
    consumers: usize,
    label: &str,
    runs: usize,
) -> Result<(Repeated, Repeated)> {
    let (mut produced, mut consumed) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        let (p, c) = produce_and_consume_once(leaders, spec, consumers, label)?;
        produced.push((p, json!({})));
        consumed.push((c, json!({})));
    }
    let rank = if spec.rate.is_some() { Rank::Latency } else { Rank::Throughput };
    Ok((summarize(produced, rank), summarize(consumed, rank)))
}

fn produce_and_consume_once(
    leaders: &Leaders,
    spec: &ProduceSpec,
    consumers: usize,
    label: &str,
) -> Result<(Outcome, Outcome)> {
    let base = Instant::now();
    let from = client::offsets(leaders, &spec.topic, -1)?;
    let adds = produce::records_per_partition(leaders, spec)?;
    let to: BTreeMap<i32, i64> =
        from.iter().map(|(p, &o)| (*p, o + adds.get(p).copied().unwrap_or(0) as i64)).collect();
    let consume_spec = ConsumeSpec {
        topic: spec.topic.clone(),
        connections: consumers,
        from,
        to,
        record_size: spec.record_size,
        stamped: spec.stamp,
        read_committed: false,
    };
    let consumer = {
        let (leaders, progress) = (leaders.clone(), Progress::new(&format!("{label} (consumer)")));
        std::thread::spawn(move || consume::run(&leaders, &consume_spec, base, &progress))
    };
    let produced = produce::run(leaders, spec, base, &Progress::new(label));
    let consumed = consumer.join().map_err(|_| anyhow::anyhow!("consumer panicked"))?;
    let (produced, consumed) = (produced?, consumed?);
    println!("{}", produced.summary(&format!("{label}, producers")));
    println!("{}", consumed.summary(&format!("{label}, consumers")));
    Ok((produced, consumed))
}

/// The same produce through kcat (librdkafka) into `topic`, as JSON (or
/// why it did not run), printed beside the generator's figure.
pub fn kcat_produce(
    target: &Target,
    topic: &str,
    partitions: i32,
    spec: &ProduceSpec,
) -> Result<Value> {
    if !kcat::available() {
        return Ok(json!({"error": "kcat is not installed"}));
    }
    if target.security.protocol() != "PLAINTEXT" {
        return Ok(json!({"error": "the kcat comparison speaks PLAINTEXT only"}));
    }
    let leaders = target.topic(topic, partitions)?;
    let o = kcat::produce(
        &target.bootstrap,
        &leaders,
        topic,
        spec.records,
        spec.record_size,
        spec.acks,
    )?;
    println!("{}", o.summary("  kcat (librdkafka) producing the same"));
    Ok(o.json())
}

/// Offsets from the earliest to the latest of `topic`: its records, when
/// it holds no transaction markers.
pub fn offsets_span(leaders: &Leaders, topic: &str) -> Result<u64> {
    let from = client::offsets(leaders, topic, -2)?;
    let to = client::offsets(leaders, topic, -1)?;
    let span: i64 = to.iter().map(|(p, e)| e - from.get(p).copied().unwrap_or(0)).sum();
    Ok(span.max(0) as u64)
}

/// Reading all of `topic` with kcat (librdkafka), `expected` records, as
/// JSON.
pub fn kcat_consume(
    target: &Target,
    topic: &str,
    expected: u64,
    record_size: usize,
) -> Result<Value> {
    if !kcat::available() {
        return Ok(json!({"error": "kcat is not installed"}));
    }
    if target.security.protocol() != "PLAINTEXT" {
        return Ok(json!({"error": "the kcat comparison speaks PLAINTEXT only"}));
    }
    let o = kcat::consume(&target.bootstrap, topic, expected, record_size)?;
    println!("{}", o.summary("  kcat (librdkafka) reading the same"));
    Ok(o.json())
}

fn result(name: &str, args: &LoadArgs, target: &Target, extra: Value) -> Value {
    let mut v = json!({
        "name": name,
        "commit": report::commit(),
        "machine": report::machine(),
        "config": args.json(),
        "broker": target.json(),
    });
    if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), extra) {
        obj.extend(extra);
    }
    v
}

/// Bytes `runs` runs of `spec` store: values plus the record framing.
pub fn stored_bytes(spec: &ProduceSpec, runs: usize) -> u64 {
    let key = if spec.keys > 0 { 15 } else { 0 };
    runs.max(1) as u64 * spec.records * (spec.record_size + RECORD_FRAMING_BYTES + key) as u64
}

/// Bytes a record adds to its value in a batch (length, attributes,
/// deltas, key length, value length, header count), about.
pub const RECORD_FRAMING_BYTES: usize = 8;

/// `corelog bench produce`.
pub fn produce(args: &LoadArgs, common: &crate::Common) -> Result<()> {
    let target = Target::open(args, &common.dir)?;
    // The generator's run and kcat's.
    target.ensure_space(&common.dir, stored_bytes(&args.produce_spec(), args.runs + 1))?;
    let leaders = target.topic(&args.topic, args.partitions)?;
    let mut fields =
        produce_phase(&target, &leaders, &args.produce_spec(), "produce", args.runs)?.json;
    fields["librdkafka_kcat"] = kcat_produce(
        &target,
        &format!("{}-kcat", args.topic),
        args.partitions,
        &args.produce_spec(),
    )?;
    let v = result("produce", args, &target, fields);
    target.stop()?;
    report::write(&common.results_dir, "produce", &v)
}

/// `corelog bench consume`: when this benchmark starts the broker, it
/// first produces `--records` records (not timed as consumption), and
/// its first run reads them from the disk (they were written with direct
/// I/O, so none is in the page cache): that run is compared with fio's
/// sequential direct read on the same disk, measured once the broker has
/// stopped (DESIGN §8: cold fetch ≥ 90% of it).
pub fn consume(args: &LoadArgs, common: &crate::Common) -> Result<()> {
    let target = Target::open(args, &common.dir)?;
    let stored = stored_bytes(&args.produce_spec(), 1);
    let fio_bytes = stored.clamp(COLD_READ_FIO_BYTES_MIN, COLD_READ_FIO_BYTES_MAX);
    // fio's file is written once the broker (and its data) is gone.
    target.ensure_space(&common.dir, stored.max(fio_bytes))?;
    let leaders = target.topic(&args.topic, args.partitions)?;
    if args.bootstrap.is_none() {
        produce_phase(&target, &leaders, &args.produce_spec(), "load", 1)?;
    }
    let r = consume_phase(
        &target,
        &leaders,
        &args.topic,
        args.connections,
        args.record_size,
        "consume",
        args.runs,
        None,
    )?;
    let mut fields = r.json;
    // As many as the generator's consumer counted (markers are no records).
    fields["librdkafka_kcat"] =
        kcat_consume(&target, &args.topic, r.median.records, args.record_size)?;
    let own = args.bootstrap.is_none();
    let mut v = result("consume", args, &target, fields);
    target.stop()?;
    if own {
        v["cold_read"] = cold_read_vs_fio(&v, &common.dir, fio_bytes);
    }
    report::write(&common.results_dir, "consume", &v)
}

/// Smallest fio file for the cold-read reference: large enough to
/// measure the disk, not the device's cache.
const COLD_READ_FIO_BYTES_MIN: u64 = 1 << 30;
/// Largest: the topic's size beyond it adds seconds, not precision.
const COLD_READ_FIO_BYTES_MAX: u64 = 4 << 30;

/// The first consume run (from the disk) against fio's sequential direct
/// read (1 MiB blocks, depth 4), in batch bytes per second.
fn cold_read_vs_fio(consume: &Value, dir: &std::path::Path, fio_bytes: u64) -> Value {
    let first = match consume["runs"].as_array() {
        Some(runs) => &runs[0],
        None => consume,
    };
    let cold = first["batch_mb_per_sec"].as_f64();
    let fio = if crate::fio::available() {
        match crate::fio::sequential(dir, "read", 1 << 20, 4, fio_bytes) {
            Ok(r) => json!({"mb_per_sec": report::round1(r.mb_per_sec)}),
            Err(e) => json!({"error": format!("{e:#}")}),
        }
    } else {
        json!({"error": "fio is not installed"})
    };
    let ratio = match (cold, fio["mb_per_sec"].as_f64()) {
        (Some(c), Some(f)) if f > 0.0 => Some(report::round2(c / f)),
        _ => None,
    };
    let v = json!({
        "case": "first consume run (from the disk) vs fio sequential direct read (1 MiB, depth 4)",
        "batch_mb_per_sec": cold,
        "fio": fio,
        "ratio_to_fio": ratio,
    });
    println!("cold read: {v}");
    v
}

/// `corelog bench e2e`: producers at `--rate` stamp each batch with its
/// send time; consumers tailing the topic record the latency per record.
pub fn e2e(args: &LoadArgs, common: &crate::Common) -> Result<()> {
    let target = Target::open(args, &common.dir)?;
    target.ensure_space(&common.dir, stored_bytes(&args.produce_spec(), args.runs))?;
    let leaders = target.topic(&args.topic, args.partitions)?;
    let spec = ProduceSpec { stamp: true, ..args.produce_spec() };
    let (produced, consumed) =
        produce_and_consume(&leaders, &spec, args.connections, "e2e", args.runs)?;
    // The headline fields are the consumers' (send to receipt); the
    // producers' acknowledgment figures are kept beside them.
    let mut fields = consumed.json;
    fields["produce"] = produced.json;
    let v = result("e2e", args, &target, fields);
    target.stop()?;
    report::write(&common.results_dir, "e2e", &v)
}
