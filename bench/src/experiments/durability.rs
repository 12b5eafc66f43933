//! `corelog bench durability`: what `flush=fsync` costs against
//! `flush=interval:1000`: for each mode the peak, then producers paced at
//! 25, 50, 75 and 100% of that peak with consumers tailing the topic, so
//! each point has acknowledgment and end-to-end latency (a
//! latency-throughput curve, not only a peak).

use anyhow::Result;
use serde_json::{json, Value};

use crate::broker_bench::{
    produce_and_consume, produce_phase, stored_bytes, summarize, LoadArgs, Rank, Target,
};
use crate::load::produce::ProduceSpec;
use crate::svg::{Chart, Series};
use crate::{report, Common};

/// Load levels, in % of the mode's measured peak.
pub const LOAD_PERCENTS: [u32; 4] = [25, 50, 75, 100];

/// The interval mode compared with fsync: Kafka's usual setting is no
/// fsync at all (the OS flushes); one second is the closest bounded choice.
pub const INTERVAL_MODE: &str = "interval:1000";

/// The peak run writes this many times `--records` (4 × 20 M: about 10 s here).
pub const PEAK_RECORDS_FACTOR: u64 = 4;

pub fn run(args: &LoadArgs, common: &Common) -> Result<()> {
    let seconds_per_level: f64 = if common.quick { 2.0 } else { 15.0 };
    let mut modes = Vec::new();
    for flush in ["fsync", INTERVAL_MODE] {
        let mode_args = LoadArgs { flush: flush.into(), bootstrap: None, ..args.clone() };
        let target = Target::open(&mode_args, &common.dir)?;
        // Every run writes into a topic of its own, deleted after it (not
        // while measuring): minutes at GB/s would fill the disk, and
        // retention deleting segments under the load would measure
        // retention, not durability (the traps experiment does that).
        let spec = mode_args.produce_spec();
        // The peak over a run as long as a level's, so that it is a rate
        // the broker sustains and not a burst into empty queues.
        let long = ProduceSpec { records: spec.records * PEAK_RECORDS_FACTOR, ..spec.clone() };
        target.ensure_space(&common.dir, stored_bytes(&long, 1))?;
        let mut peaks = Vec::new();
        for run in 0..args.runs.max(1) {
            let topic = format!("{}-peak-{run}", args.topic);
            let leaders = target.topic(&topic, args.partitions)?;
            let one = ProduceSpec { topic: topic.clone(), ..long.clone() };
            let r = produce_phase(&target, &leaders, &one, &format!("{flush}: peak"), 1)?;
            peaks.push((r.median, r.json));
            target.delete_topic(&topic)?;
        }
        let peak = summarize(peaks, Rank::Throughput);
        let peak_rate = peak.median.records_per_sec();
        let mut levels = Vec::new();
        for pct in LOAD_PERCENTS {
            let rate = peak_rate * pct as f64 / 100.0;
            let (mut acks, mut e2e) = (Vec::new(), Vec::new());
            for run in 0..args.runs.max(1) {
                let topic = format!("{}-{pct}-{run}", args.topic);
                let leaders = target.topic(&topic, args.partitions)?;
                let level = ProduceSpec {
                    topic: topic.clone(),
                    rate: Some(rate),
                    records: (rate * seconds_per_level) as u64,
                    stamp: true,
                    ..spec.clone()
                };
                let label = format!("{flush}: {pct}% of peak");
                let (p, c) = produce_and_consume(&leaders, &level, 0, &label, 1)?;
                acks.push((p.median, p.json));
                e2e.push((c.median, c.json));
                target.delete_topic(&topic)?;
            }
            levels.push(json!({
                "load_percent": pct,
                "target_records_per_sec": rate.round(),
                "ack": summarize(acks, Rank::Latency).json,
                "end_to_end": summarize(e2e, Rank::Latency).json,
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
