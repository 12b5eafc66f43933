//! `corelog bench durability`: what `flush=fsync` costs against
//! `flush=interval:1000`: for each mode the peak, then producers paced at
//! 25, 50, 75 and 100% of that peak with consumers tailing the topic, so
//! each point has acknowledgment and end-to-end latency (a
//! latency-throughput curve, not only a peak).

use anyhow::Result;
use serde_json::{json, Value};

use crate::broker_bench::{
    produce_and_consume, produce_phase, LoadArgs, Target, BOUNDED_RETENTION_BYTES,
};
use crate::load::produce::ProduceSpec;
use crate::svg::{Chart, Series};
use crate::{report, Common};

/// Load levels, in % of the mode's measured peak.
pub const LOAD_PERCENTS: [u32; 4] = [25, 50, 75, 100];

/// The interval mode compared with fsync: Kafka's usual setting is no
/// fsync at all (the OS flushes); one second is the closest bounded choice.
pub const INTERVAL_MODE: &str = "interval:1000";

/// Retention runs every second, so that bounded topics stay bounded at
/// GB/s (the broker's default is 15 s).
const MAINTENANCE_MS: &str = "1000";

/// The peak run writes this many times `--records` (4 × 20 M: about 10 s here).
pub const PEAK_RECORDS_FACTOR: u64 = 4;

pub fn run(args: &LoadArgs, common: &Common) -> Result<()> {
    let seconds_per_level: f64 = if common.quick { 2.0 } else { 15.0 };
    let mut modes = Vec::new();
    for flush in ["fsync", INTERVAL_MODE] {
        let mut flags = args.broker_flags.clone();
        flags.extend(["--log-maintenance-ms".into(), MAINTENANCE_MS.into()]);
        let mode_args =
            LoadArgs { flush: flush.into(), bootstrap: None, broker_flags: flags, ..args.clone() };
        let target = Target::open(&mode_args, &common.dir)?;
        // Minutes at GB/s: retention keeps the disk from filling.
        target.ensure_space(&common.dir, 2 * args.partitions as u64 * BOUNDED_RETENTION_BYTES)?;
        let leaders = target.bounded_topic(&args.topic, args.partitions)?;
        // The peak over a run as long as a level's, so that it is a rate
        // the broker sustains and not a burst into empty queues.
        let spec = mode_args.produce_spec();
        let long = ProduceSpec { records: spec.records * PEAK_RECORDS_FACTOR, ..spec.clone() };
        let peak = produce_phase(&target, &leaders, &long, &format!("{flush}: peak"), args.runs)?;
        let peak_rate = peak.median.records_per_sec();
        let mut levels = Vec::new();
        for pct in LOAD_PERCENTS {
            let rate = peak_rate * pct as f64 / 100.0;
            let level = ProduceSpec {
                rate: Some(rate),
                records: (rate * seconds_per_level) as u64,
                stamp: true,
                ..spec.clone()
            };
            let label = format!("{flush}: {pct}% of peak");
            let (p, c) = produce_and_consume(&leaders, &level, 0, &label, args.runs)?;
            levels.push(json!({
                "load_percent": pct,
                "target_records_per_sec": rate.round(),
                "ack": p.json,
                "end_to_end": c.json,
            }));
        }
        target.stop()?;
        modes.push(json!({"flush": flush, "peak": peak.json, "levels": levels}));
    }
    // The disk's own durability latency, in the same run: a 16 KiB write
    // and fdatasync at a time (what one group commit costs at least).
    let fdatasync = if crate::fio::available() {
        match crate::fio::fdatasync_latency(&common.dir, 16 * 1024, 64 << 20) {
            Ok(r) => {
                json!({"p50_us": r.sync_p50_us, "p99_us": r.sync_p99_us, "p999_us": r.sync_p999_us})
            }
            Err(e) => json!({"error": format!("{e:#}")}),
        }
    } else {
        json!({"error": "fio is not installed"})
    };
    println!("fio fdatasync latency (16 KiB writes): {fdatasync}");
    let v = json!({
        "name": "durability",
        "commit": report::commit(),
        "machine": report::machine(),
        "config": args.json(),
        "modes": modes,
        "reference_fdatasync": fdatasync,
    });
    print_table(&v);
    curve(&v).write(&common.results_dir, "durability-latency.svg")?;
    report::write(&common.results_dir, "durability", &v)
}

fn levels(mode: &Value) -> impl Iterator<Item = &Value> {
    mode["levels"].as_array().into_iter().flatten()
}

fn print_table(v: &Value) {
    println!(
        "\n{:<15} {:>6} {:>14} {:>12} {:>12} {:>12} {:>12}",
        "flush", "load", "records/s", "ack p50 µs", "ack p99 µs", "e2e p50 µs", "e2e p99 µs"
    );
    for m in v["modes"].as_array().into_iter().flatten() {
        for l in levels(m) {
            println!(
                "{:<15} {:>5}% {:>14} {:>12} {:>12} {:>12} {:>12}",
                m["flush"].as_str().unwrap_or(""),
                l["load_percent"],
                l["ack"]["records_per_sec"],
                l["ack"]["p50_us"],
                l["ack"]["p99_us"],
                l["end_to_end"]["p50_us"],
                l["end_to_end"]["p99_us"]
            );
        }
    }
}

/// p99 acknowledgment and end-to-end latency against achieved records/s.
fn curve(v: &Value) -> Chart {
    let mut series = Vec::new();
    for m in v["modes"].as_array().into_iter().flatten() {
        for (what, key) in [("ack p99", "ack"), ("end-to-end p99", "end_to_end")] {
            series.push(Series {
                name: format!("{} {what}", m["flush"].as_str().unwrap_or("")),
                points: levels(m)
                    .map(|l| {
                        (
                            l["ack"]["records_per_sec"].as_f64().unwrap_or(0.0),
                            l[key]["p99_us"].as_f64().unwrap_or(0.0),
                        )
                    })
                    .collect(),
            });
        }
    }
    Chart {
        title: "Latency against throughput: fsync vs interval flush".into(),
        x_label: "records/s acknowledged".into(),
        y_label: "p99 latency (µs)".into(),
        log_x: false,
        series,
    }
}
