//! `corelog bench traps`: the cases careful benchmarkers try because they
//! break brokers that only shine on the easy path: many producer
//! connections, keyed small batches, a run long enough for retention to
//! delete segments while producing, and large records against the raw
//! disk bandwidth that fio measures in the same run.

use anyhow::Result;
use serde_json::{json, Value};

use crate::broker_bench::{produce_phase, stored_bytes, LoadArgs, Target};
use crate::load::client;
use crate::load::produce::ProduceSpec;
use crate::{fio, report, Common};

/// Producer connections of the many-producers case (50+ is the trap).
pub const MANY_CONNECTIONS: usize = 64;

/// Retention case: segments and retention small enough that a short run
/// deletes many segments while it produces; maintenance every second.
const RETENTION_SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
const RETENTION_BYTES: u64 = 64 * 1024 * 1024;
const MAINTENANCE_MS: &str = "1000";

pub fn run(args: &LoadArgs, common: &Common) -> Result<()> {
    let quick = common.quick;
    let mut flags = args.broker_flags.clone();
    flags.extend(["--log-maintenance-ms".into(), MAINTENANCE_MS.into()]);
    let target = Target::open(&LoadArgs { broker_flags: flags, ..args.clone() }, &common.dir)?;
    let base = args.produce_spec();
    let mut cases = Vec::new();

    // Large records against the raw disk, the last case, with fio after it.
    let large = ProduceSpec {
        topic: "traps-large".into(),
        record_size: 100_000,
        batch_records: 10,
        records: if quick { 5_000 } else { 50_000 },
        ..base.clone()
    };
    let fio_bytes: u64 = if quick { 1 << 30 } else { 4 << 30 };

    // Each case's topic is deleted after it, so the disk must hold the
    // largest case (or fio's file, written once the broker has stopped).
    let largest = [stored_bytes(&base, args.runs), stored_bytes(&large, args.runs), fio_bytes];
    target.ensure_space(&common.dir, largest.into_iter().max().unwrap_or(0))?;

    // The easy path first, as the reference the traps compare with.
    let leaders = target.topic("traps-baseline", args.partitions)?;
    let baseline = ProduceSpec { topic: "traps-baseline".into(), ..base.clone() };
    let r = produce_phase(&target, &leaders, &baseline, "baseline", args.runs)?;
    let baseline_rate = r.median.records_per_sec();
    cases.push(json!({"case": "baseline: one connection per shard, 1000-record batches, 5 in flight", "result": r.json}));

    target.delete_topic("traps-baseline")?;

    let leaders = target.topic("traps-many", args.partitions)?;
    let many = ProduceSpec {
        topic: "traps-many".into(),
        connections: MANY_CONNECTIONS,
        batch_records: 100,
        in_flight: 1,
        ..base.clone()
    };
    let r = produce_phase(&target, &leaders, &many, "64 producer connections", args.runs)?;
    cases.push(json!({"case": "many producers: 64 connections, 100-record batches, 1 in flight each", "result": r.json, "ratio_to_baseline": report::round2(r.median.records_per_sec() / baseline_rate)}));

    target.delete_topic("traps-many")?;

    let leaders = target.topic("traps-keyed", args.partitions)?;
    let keyed = ProduceSpec {
        topic: "traps-keyed".into(),
        keys: 100_000,
        batch_records: 10,
        records: base.records / 4,
        ..base.clone()
    };
    let r = produce_phase(&target, &leaders, &keyed, "keyed small batches", args.runs)?;
    cases.push(json!({"case": "keyed small batches: 100,000 keys, 10-record batches", "result": r.json, "ratio_to_baseline": report::round2(r.median.records_per_sec() / baseline_rate)}));

    // Retention: produce several times the retained bytes, in rounds, and
    // check that the log start offsets moved.
    let configs = [
        ("segment.bytes", RETENTION_SEGMENT_BYTES.to_string()),
        ("retention.bytes", RETENTION_BYTES.to_string()),
    ];
    target.delete_topic("traps-keyed")?;
    let leaders = target.topic_with("traps-retention", args.partitions, &configs)?;
    let rounds = if quick { 3 } else { 10 };
    let round =
        ProduceSpec { topic: "traps-retention".into(), records: base.records, ..base.clone() };
    let mut retention_rounds = Vec::new();
    for i in 0..rounds {
        let label = format!("retention, round {}/{rounds}", i + 1);
        let r = produce_phase(&target, &leaders, &round, &label, 1)?;
        let starts = client::offsets(&leaders, &round.topic, -2)?;
        retention_rounds.push(json!({
            "round": i + 1,
            "log_start_offsets": starts.values().collect::<Vec<_>>(),
            "result": r.json,
        }));
    }
    // A short run may end before the next maintenance round: wait for it
    // (a few rounds at most), so the result says whether retention works
    // under this load, not whether the run happened to be long enough.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let deleted = loop {
        let moved = client::offsets(&leaders, &round.topic, -2)?.values().all(|&o| o > 0);
        if moved || std::time::Instant::now() > deadline {
            break moved;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    cases.push(json!({
        "case": format!("retention while producing: retention.bytes {RETENTION_BYTES}, segment.bytes {RETENTION_SEGMENT_BYTES}"),
        "segments_deleted": deleted,
        "rounds": retention_rounds,
    }));

    // Large records against the raw disk (fio measured right after).
    target.delete_topic("traps-retention")?;
    let leaders = target.topic("traps-large", args.partitions)?;
    let r = produce_phase(&target, &leaders, &large, "100 KB records", args.runs)?;
    target.stop()?;
    let fio_json = raw_disk(&common.dir, fio_bytes);
    let ratio =
        fio_json["mb_per_sec"].as_f64().map(|f| report::round2(r.median.batch_mb_per_sec() / f));
    cases.push(json!({
        "case": "100 KB records in 1 MB batches vs fio sequential direct write (1 MiB, depth 4)",
        "result": r.json,
        "fio": fio_json,
        "ratio_to_fio": ratio,
    }));

    let v = json!({
        "name": "traps",
        "commit": report::commit(),
        "machine": report::machine(),
        "config": args.json(),
        "broker": {"flush": args.flush, "shards": args.shards, "log_maintenance_ms": MAINTENANCE_MS},
        "cases": cases,
    });
    println!();
    for c in v["cases"].as_array().into_iter().flatten() {
        println!("{}: {}", c["case"].as_str().unwrap_or(""), c["result"]["records_per_sec"]);
    }
    println!("segments deleted by retention while producing: {deleted}");
    if let Some(r) = ratio {
        println!("large records: {r} of fio's sequential write bandwidth");
    }
    report::write(&common.results_dir, "traps", &v)
}

/// fio's sequential direct write (1 MiB blocks, 4 in flight), or why not.
fn raw_disk(dir: &std::path::Path, bytes: u64) -> Value {
    if !fio::available() {
        return json!({"error": "fio is not installed"});
    }
    match fio::sequential(dir, "write", 1 << 20, 4, bytes) {
        Ok(r) => json!({"mb_per_sec": report::round1(r.mb_per_sec)}),
        Err(e) => json!({"error": format!("{e:#}")}),
    }
}
