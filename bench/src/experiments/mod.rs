//! The experiments: fixed sequences of broker benchmark phases, each with
//! one command, a table, a JSON result and charts.
//!
//! - [`kafka_2014`]: Jay Kreps' "Benchmarking Apache Kafka: 2 Million
//!   Writes Per Second (On Three Cheap Machines)" (2014), case by case,
//!   with Kafka's figures beside ours.
//! - [`scaling`]: 1 to N shards, throughput and broker CPU per GB.
//! - [`durability`]: fsync vs interval flush, latency at 25-100% of peak.
//! - [`traps`]: many connections, keyed small batches, retention while
//!   producing, large records vs the raw disk.
//! - [`transactions`]: idempotent vs transactional producers, and
//!   read_committed vs read_uncommitted consumers.
//!
//! Runs on the benchmark process's main thread; each phase's load runs on
//! the generator's threads.

pub mod durability;
pub mod transactions;
pub mod traps;

use anyhow::Result;
use serde_json::{json, Value};

use crate::broker_bench::{
    consume_phase, kcat_consume, kcat_produce, offsets_span, produce_and_consume, produce_phase,
    stored_bytes, LoadArgs, Target, RECORD_FRAMING_BYTES,
};
use crate::load::produce::ProduceSpec;
use crate::svg::{Chart, Series};
use crate::{report, Common};

/// Records per second the end-to-end case (and `corelog bench e2e`) aims
/// at by default: well below this machine's peak, as a latency test must be.
pub const E2E_RATE: f64 = 100_000.0;

/// Kafka 2014's producer `batch.size` (bytes): batches of that size are what
/// its producers sent.
pub const KAFKA_2014_BATCH_BYTES: usize = 8196;

/// Kafka's 2014 figures (records/s; latency in ms), three 6-core machines,
/// 6 partitions, 100-byte records.
pub mod kafka_2014_figures {
    pub const SINGLE_PRODUCER: f64 = 821_557.0;
    pub const THREE_PRODUCERS: f64 = 2_024_032.0;
    pub const ASYNC_3X: f64 = 786_980.0;
    pub const ACKS_ALL_3X: f64 = 421_823.0;
    pub const SINGLE_CONSUMER: f64 = 940_521.0;
    pub const THREE_CONSUMERS: f64 = 2_615_968.0;
    pub const PRODUCER_AND_CONSUMER: f64 = 795_064.0;
    pub const E2E_P50_MS: f64 = 2.0;
    pub const E2E_P99_MS: f64 = 3.0;
    pub const E2E_P999_MS: f64 = 14.0;
}

/// Records of `record_size` bytes in a Kafka 2014 batch.
fn kafka_2014_batch_records(record_size: usize) -> usize {
    ((KAFKA_2014_BATCH_BYTES - engine::batch::HEADER_BYTES) / (record_size + RECORD_FRAMING_BYTES))
        .max(1)
}

fn row(case: &str, kafka: Option<f64>, outcome: Value, note: &str) -> Value {
    let ours = outcome["records_per_sec"].as_f64();
    json!({
        "case": case,
        "kafka_2014_records_per_sec": kafka,
        "ratio_to_kafka_2014": match (ours, kafka) { (Some(o), Some(k)) => Some(report::round2(o / k)), _ => None },
        "result": outcome,
        "note": note,
    })
}

/// Kafka 2014's replicated producer cases, on a cluster of three nodes of
/// one shard started for them (so three brokers, as in 2014, sharing this
/// machine's cores with the idle single node): acks=1 (asynchronous
/// replication) and acks=all with min.insync.replicas=2 (synchronous).
/// Each case's topic is deleted after it: a case stores its data three
/// times.
fn replicated(
    args: &LoadArgs,
    common: &Common,
    base: &ProduceSpec,
    runs: usize,
) -> Result<Vec<Value>> {
    use kafka_2014_figures as k;
    let cluster = Target::open_cluster(args, &common.dir, 3)?;
    cluster.ensure_space(&common.dir, 3 * stored_bytes(base, runs))?;
    let mut rows = Vec::new();
    let cases = [
        ("single producer, 3x asynchronous replication", k::ASYNC_3X, 1),
        ("single producer, acks=all, 3x replication", k::ACKS_ALL_3X, -1),
    ];
    for (i, (case, kafka, acks)) in cases.into_iter().enumerate() {
        let topic = format!("kafka-2014-3x-{i}");
        let leaders = cluster.topic_with(&topic, 6, &[("min.insync.replicas", "2".into())])?;
        let spec = ProduceSpec { topic: topic.clone(), acks, connections: 3, ..base.clone() };
        let r = produce_phase(&cluster, &leaders, &spec, case, runs)?;
        let note = format!(
            "acks={}, three nodes of one shard on this machine's cores, one connection to each leader",
            if acks == 1 { "1" } else { "all, min.insync.replicas=2" }
        );
        let mut row = row(case, Some(kafka), r.json, &note);
        row["target"] = cluster.json();
        rows.push(row);
        cluster.delete_topic(&topic)?;
    }
    cluster.stop()?;
    Ok(rows)
}

/// `corelog bench kafka-2014`.
pub fn kafka_2014(args: &LoadArgs, common: &Common) -> Result<()> {
    use kafka_2014_figures as k;
    let quick = common.quick;
    // Kafka's run: 50 M records per producer case.
    let records: u64 = if quick { 2_000_000 } else { 50_000_000 };
    let target = Target::open(args, &common.dir)?;
    let leaders = target.topic("kafka-2014", 6)?;
    let runs = args.runs;
    let shards = leaders.by_broker().len();
    let mut rows = Vec::new();
    let base = ProduceSpec {
        topic: "kafka-2014".into(),
        acks: 1,
        connections: shards,
        in_flight: 5,
        records,
        record_size: 100,
        batch_records: kafka_2014_batch_records(100),
        keys: 0,
        rate: None,
        stamp: false,
        compression: crate::load::compress::Codec::None,
        producer: crate::load::produce::ProducerKind::Plain,
        group_records: 0,
    };

    // The producer cases' data stays until the consumer cases read it
    // (kcat's too); later cases delete their topics when done.
    target.ensure_space(&common.dir, stored_bytes(&base, 2 * runs + 1))?;
    let r = produce_phase(&target, &leaders, &base, "single producer", runs)?;
    let mut single = row(
        "single producer, no replication",
        Some(k::SINGLE_PRODUCER),
        r.json,
        "acks=1, one connection per shard, 8196-byte batches, 5 in flight",
    );
    single["librdkafka_kcat"] = kcat_produce(&target, "kafka-2014-kcat", 6, &base)?;
    rows.push(single);

    let three = ProduceSpec { connections: 3 * shards, ..base.clone() };
    let r = produce_phase(&target, &leaders, &three, "three producers", runs)?;
    rows.push(row(
        "three producers, no replication",
        Some(k::THREE_PRODUCERS),
        r.json,
        "three producers' connections to every shard",
    ));

    rows.extend(replicated(args, common, &base, runs)?);

    // Consumers read as many records as a producer case wrote, from the
    // beginning (cold: written before, not in the shards' caches).
    let limit = Some(records);
    let r =
        consume_phase(&target, &leaders, &base.topic, shards, 100, "single consumer", runs, limit)?;
    let mut single = row(
        "single consumer",
        Some(k::SINGLE_CONSUMER),
        r.json,
        "from the beginning, one connection per shard",
    );
    let kcat_leaders = target.topic("kafka-2014-kcat", 6)?;
    let kcat_records = offsets_span(&kcat_leaders, "kafka-2014-kcat")?;
    single["librdkafka_kcat"] = kcat_consume(&target, "kafka-2014-kcat", kcat_records, 100)?;
    rows.push(single);

    let r = consume_phase(
        &target,
        &leaders,
        &base.topic,
        3.max(shards),
        100,
        "three consumers",
        runs,
        limit,
    )?;
    rows.push(row(
        "three consumers",
        Some(k::THREE_CONSUMERS),
        r.json,
        "one group of three splitting the six partitions",
    ));
    target.delete_topic("kafka-2014")?;
    target.delete_topic("kafka-2014-kcat")?;

    let together = ProduceSpec { topic: "kafka-2014-together".into(), ..base.clone() };
    let leaders_t = target.topic(&together.topic, 6)?;
    let (p, c) = produce_and_consume(&leaders_t, &together, shards, "producer and consumer", runs)?;
    let mut both = p.json.clone();
    both["consumer"] = c.json;
    rows.push(row(
        "producer and consumer together",
        Some(k::PRODUCER_AND_CONSUMER),
        both,
        "the consumer tails what the producer writes; figures are the producer's",
    ));
    target.delete_topic(&together.topic)?;

    let e2e = ProduceSpec {
        topic: "kafka-2014-e2e".into(),
        records: (E2E_RATE * if quick { 3.0 } else { 30.0 }) as u64,
        batch_records: 10,
        rate: Some(E2E_RATE),
        stamp: true,
        ..base.clone()
    };
    let leaders_e = target.topic(&e2e.topic, 6)?;
    let (_, c) = produce_and_consume(&leaders_e, &e2e, shards, "end-to-end latency", runs)?;
    let mut e2e_row = row(
        "end-to-end latency",
        None,
        c.json,
        &format!("{E2E_RATE} records/s in batches of 10, send time to consumer receipt"),
    );
    e2e_row["kafka_2014_ms"] =
        json!({"p50": k::E2E_P50_MS, "p99": k::E2E_P99_MS, "p999": k::E2E_P999_MS});
    rows.push(e2e_row);
    target.delete_topic(&e2e.topic)?;

    // Throughput against record size: the same bytes at each size.
    let sizes: [usize; 5] = [10, 100, 1000, 10_000, 100_000];
    let bytes_per_size: u64 = if quick { 100_000_000 } else { 2_000_000_000 };
    let mut by_size = Vec::new();
    for size in sizes {
        let spec = ProduceSpec {
            topic: format!("kafka-2014-size-{size}"),
            records: (bytes_per_size / size as u64).max(1),
            record_size: size,
            batch_records: kafka_2014_batch_records(size),
            ..base.clone()
        };
        let leaders_s = target.topic(&spec.topic, 6)?;
        let r = produce_phase(&target, &leaders_s, &spec, &format!("record size {size} B"), runs)?;
        by_size.push(
            json!({"record_size": size, "batch_records": spec.batch_records, "result": r.json}),
        );
        target.delete_topic(&spec.topic)?;
    }

    // Throughput as stored data grows: one topic filled chunk by chunk
    // (each chunk one run: the chunks are the series).
    let chunks = if quick { 4 } else { 10 };
    let chunk_records: u64 = if quick { 2_000_000 } else { 20_000_000 };
    let grow =
        ProduceSpec { topic: "kafka-2014-growth".into(), records: chunk_records, ..base.clone() };
    target.ensure_space(&common.dir, stored_bytes(&grow, chunks))?;
    let leaders_g = target.topic(&grow.topic, 6)?;
    let mut growth = Vec::new();
    let mut stored = 0u64;
    for i in 0..chunks {
        let label = format!("stored data, chunk {}/{chunks}", i + 1);
        let r = produce_phase(&target, &leaders_g, &grow, &label, 1)?;
        growth.push(
            json!({"stored_gb_before": report::round2(stored as f64 / 1e9), "result": r.json}),
        );
        stored += r.median.batch_bytes;
    }

    let v = json!({
        "name": "kafka-2014",
        "commit": report::commit(),
        "machine": report::machine(),
        "broker": target.json(),
        "quick": quick,
        "reference": "Jay Kreps, Benchmarking Apache Kafka: 2 Million Writes Per Second (On Three Cheap Machines), 2014: three 6-core machines, 6 partitions, 100-byte records",
        "cases": rows,
        "record_size": by_size,
        "stored_data_growth": growth,
    });
    target.stop()?;
    print_table(&v);
    size_chart(&v).write(&common.results_dir, "kafka-2014-record-size.svg")?;
    report::write(&common.results_dir, "kafka-2014", &v)
}

/// "min–max" of a figure over the runs, when there were several.
fn range(result: &Value, field: &str) -> String {
    match result["spread"][field].as_array().map(|a| (a[0].as_f64(), a[2].as_f64())) {
        Some((Some(min), Some(max))) => format!("{min:.0}–{max:.0}"),
        _ => String::new(),
    }
}

fn print_table(v: &Value) {
    println!(
        "\n{:<45} {:>14} {:>22} {:>12} {:>7}",
        "case", "records/s", "min–max over runs", "Kafka 2014", "ratio"
    );
    for r in v["cases"].as_array().into_iter().flatten() {
        let ours = r["result"]["records_per_sec"].as_f64();
        println!(
            "{:<45} {:>14} {:>22} {:>12} {:>7}",
            r["case"].as_str().unwrap_or(""),
            ours.map(|o| format!("{o:.0}")).unwrap_or_else(|| "pending".into()),
            range(&r["result"], "records_per_sec"),
            r["kafka_2014_records_per_sec"].as_f64().map(|k| format!("{k:.0}")).unwrap_or_default(),
            r["ratio_to_kafka_2014"].as_f64().map(|x| format!("{x:.2}")).unwrap_or_default(),
        );
        if let Some(kcat) = r["librdkafka_kcat"]["records_per_sec"].as_f64() {
            println!("{:<45} {:>14.0}", "  the same through kcat (librdkafka)", kcat);
        }
        if r["case"] == "end-to-end latency" {
            println!(
                "{:<45} p50 {} µs, p99 {} µs ({}), p99.9 {} µs (Kafka 2014: 2 / 3 / 14 ms)",
                "",
                r["result"]["p50_us"],
                r["result"]["p99_us"],
                range(&r["result"], "p99_us"),
                r["result"]["p999_us"]
            );
        }
    }
}

fn size_chart(v: &Value) -> Chart {
    let points = |f: &dyn Fn(&Value) -> f64| -> Vec<(f64, f64)> {
        v["record_size"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| (p["record_size"].as_f64().unwrap_or(0.0), f(&p["result"])))
            .collect()
    };
    Chart {
        title: "Produce throughput against record size (one node, 2 cores)".into(),
        x_label: "record size (bytes, log scale)".into(),
        y_label: "MB/s of record values".into(),
        log_x: true,
        series: vec![Series {
            name: "MB/s".into(),
            points: points(&|r| r["mb_per_sec"].as_f64().unwrap_or(0.0)),
        }],
    }
}

/// `corelog bench scaling`: the same load into 1, 2, ... N shards (N =
/// cores), a fresh broker each time.
pub fn scaling(args: &LoadArgs, common: &Common) -> Result<()> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as u16;
    let mut steps = Vec::new();
    for shards in 1..=cores {
        let step_args = LoadArgs { shards, bootstrap: None, ..args.clone() };
        let target = Target::open(&step_args, &common.dir)?;
        target.ensure_space(&common.dir, stored_bytes(&step_args.produce_spec(), args.runs + 1))?;
        let leaders = target.topic(&args.topic, args.partitions)?;
        let label = format!("{shards} shard(s)");
        let r = produce_phase(&target, &leaders, &step_args.produce_spec(), &label, args.runs)?;
        let kcat = kcat_produce(
            &target,
            &format!("{}-kcat", args.topic),
            args.partitions,
            &step_args.produce_spec(),
        )?;
        target.stop()?;
        steps.push(json!({"shards": shards, "result": r.json, "librdkafka_kcat": kcat}));
    }
    let v = json!({
        "name": "scaling",
        "commit": report::commit(),
        "machine": report::machine(),
        "config": args.json(),
        "flush": args.flush,
        "steps": steps,
    });
    println!(
        "\n{:>6} {:>14} {:>10} {:>18} {:>18}",
        "shards", "records/s", "MB/s", "broker CPU s/GB", "generator CPU s"
    );
    for s in v["steps"].as_array().into_iter().flatten() {
        let r = &s["result"];
        println!(
            "{:>6} {:>14} {:>10} {:>18} {:>18}   (records/s over runs: {})",
            s["shards"],
            r["records_per_sec"],
            r["mb_per_sec"],
            r["broker_cpu_seconds_per_gb"],
            r["generator_cpu_seconds"],
            range(r, "records_per_sec")
        );
    }
    let series = |key: &str| -> Vec<(f64, f64)> {
        v["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                (s["shards"].as_f64().unwrap_or(0.0), s["result"][key].as_f64().unwrap_or(0.0))
            })
            .collect()
    };
    Chart {
        title: "Produce throughput by shards (one node)".into(),
        x_label: "shards".into(),
        y_label: "records/s".into(),
        log_x: false,
        series: vec![Series { name: "records/s".into(), points: series("records_per_sec") }],
    }
    .write(&common.results_dir, "scaling-throughput.svg")?;
    Chart {
        title: "Broker CPU seconds per GB ingested, by shards".into(),
        x_label: "shards".into(),
        y_label: "CPU seconds per GB".into(),
        log_x: false,
        series: vec![Series {
            name: "broker CPU s/GB".into(),
            points: series("broker_cpu_seconds_per_gb"),
        }],
    }
    .write(&common.results_dir, "scaling-cpu.svg")?;
    report::write(&common.results_dir, "scaling", &v)
}
