//! `compaction-latency`: the acknowledgment latency of appends on one shard
//! while that shard compacts another partition, against the same appends
//! with no compaction running, in the same run.
//!
//! Setup: a compacted log filled with keyed 100-byte records (every key
//! overwritten several times, so compaction removes most of it), all its
//! segments closed. Then a producer appends 16 KiB batches, one in flight,
//! under `Fsync`, first while the shard is otherwise idle, then while the
//! compaction of the other log runs beside it on the same executor.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use anyhow::Result;
use bytes::BytesMut;
use engine::disk::DmaDisk;
use engine::{Flush, Flusher, LogConfig, PartitionLog, SystemClock};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::engine_append::batch_near;
use crate::report::percentiles;
use crate::{report, Common};

/// Keys of the compacted log; each is written `fill / (keys * 100 B)` times.
pub const KEYS: usize = 100_000;
pub const RECORDS_PER_BATCH: usize = 100;

struct Outcome {
    idle: Histogram<u64>,
    busy: Histogram<u64>,
    compaction_secs: f64,
    report: engine::CompactionReport,
    fill_bytes: u64,
}

/// Appends one batch at a time until `done` says stop (or `count` acks).
async fn produce(
    log: &PartitionLog<DmaDisk>,
    batch: &[u8],
    hist: &RefCell<Histogram<u64>>,
    count: usize,
    done: &Cell<bool>,
) -> Result<()> {
    let mut n = 0;
    while n < count && !done.get() {
        let t0 = Instant::now();
        let info = log.append(BytesMut::from(batch), 0).await?;
        log.wait_acked(info.end_offset).await?;
        hist.borrow_mut().saturating_record(t0.elapsed().as_micros().max(1) as u64);
        n += 1;
    }
    Ok(())
}

async fn run_on_shard(
    dir: std::path::PathBuf,
    fill_bytes: u64,
    idle_acks: usize,
    limit: Option<u64>,
) -> Result<Outcome> {
    let disk = Rc::new(DmaDisk::new(&dir).await?);
    let flusher = Flusher::new(Flush::Fsync);
    let runner = flusher.clone();
    let flusher_task = glommio::spawn_local(async move { runner.run().await });
    let clock = Rc::new(SystemClock);
    let compacted_config = LogConfig {
        segment_bytes: 8 << 20,
        cleanup_compact: true,
        cleanup_delete: false,
        ..LogConfig::default()
    };
    let keyed = PartitionLog::open(
        disk.clone(),
        &dir.join("keyed-0"),
        compacted_config,
        &flusher,
        clock.clone(),
    )
    .await?;
    let target = PartitionLog::open(
        disk.clone(),
        &dir.join("target-0"),
        LogConfig::default(),
        &flusher,
        clock,
    )
    .await?;
    // Fill: batches of keyed records, several versions of every key.
    let value = [b'v'; 100];
    let mut written = 0u64;
    let mut next_key = 0usize;
    while written < fill_bytes {
        let keys: Vec<Vec<u8>> = (0..RECORDS_PER_BATCH)
            .map(|i| format!("key-{:08}", (next_key + i) % KEYS).into_bytes())
            .collect();
        next_key += RECORDS_PER_BATCH;
        let kv: Vec<_> = keys.iter().map(|k| (Some(&k[..]), Some(&value[..]))).collect();
        let batch = engine::batch::build(&kv, engine::Clock::now_ms(&SystemClock));
        written += batch.len() as u64;
        let info = keyed.append(BytesMut::from(&batch[..]), 0).await?;
        if next_key.is_multiple_of(RECORDS_PER_BATCH * 64) {
            keyed.wait_acked(info.end_offset).await?;
        }
    }
    // One more segment so that everything written is in closed segments.
    let info = keyed
        .append(BytesMut::from(&engine::batch::build(&[(Some(b"last"), None)], 0)[..]), 0)
        .await?;
    keyed.wait_acked(info.end_offset).await?;

    let (batch, _) = batch_near(16 * 1024);
    let idle = RefCell::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?);
    let never = Cell::new(false);
    produce(&target, &batch, &idle, idle_acks, &never).await?;

    let busy = RefCell::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?);
    let done = Rc::new(Cell::new(false));
    let compacting = {
        let (keyed, done) = (keyed.clone(), done.clone());
        glommio::spawn_local(async move {
            let t0 = Instant::now();
            let r = match limit {
                Some(l) => keyed.compact_paced(&mut engine::log::RatePacer::new(l)).await,
                None => keyed.compact().await,
            };
            done.set(true);
            r.map(|r| (r, t0.elapsed().as_secs_f64()))
        })
    };
    produce(&target, &batch, &busy, usize::MAX, &done).await?;
    let (report, compaction_secs) = compacting.await?;
    keyed.close().await?;
    target.close().await?;
    flusher.stop();
    flusher_task.await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Outcome {
        idle: idle.into_inner(),
        busy: busy.into_inner(),
        compaction_secs,
        report,
        fill_bytes: written,
    })
}

/// Compaction I/O limit of the paced case: a quarter of what compaction
/// reaches unpaced here (~250 MB/s).
pub const PACED_BYTES_PER_SEC: u64 = 64 * 1000 * 1000;

fn one_case(common: &Common, limit: Option<u64>) -> Result<Outcome> {
    let fill: u64 = if common.quick { 64 << 20 } else { 512 << 20 };
    let idle_acks = if common.quick { 1000 } else { 5000 };
    let dir = common.dir.join("compaction-latency");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("bench-shard")
        .spawn(move || async move { run_on_shard(dir, fill, idle_acks, limit).await })
        .map_err(|e| anyhow::anyhow!("starting the benchmark executor: {e}"))?
        .join()
        .map_err(|e| anyhow::anyhow!("benchmark executor: {e}"))?
}

pub fn run(common: &Common) -> Result<Value> {
    let mut cases = Vec::new();
    println!(
        "{:>34} {:>8} {:>8} {:>9} {:>6} {:>10}",
        "appends (16 KiB, fsync, 1 in flight)",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "acks",
        "compaction"
    );
    for limit in [None, Some(PACED_BYTES_PER_SEC)] {
        let o = one_case(common, limit)?;
        let (i50, i99, i999) = percentiles(&o.idle);
        let (b50, b99, b999) = percentiles(&o.busy);
        let label = match limit {
            None => "compaction unpaced".to_string(),
            Some(l) => format!("compaction paced at {} MB/s", l / 1_000_000),
        };
        println!(
            "{:>34} {:>8.0} {:>8.0} {:>9.0} {:>6} {:>10}",
            "no compaction",
            i50,
            i99,
            i999,
            o.idle.len(),
            "-"
        );
        println!(
            "{:>34} {:>8.0} {:>8.0} {:>9.0} {:>6} {:>9.2}s",
            label,
            b50,
            b99,
            b999,
            o.busy.len(),
            o.compaction_secs
        );
        cases.push(json!({
            "compaction_io_limit_bytes_per_sec": limit,
            "fill_bytes": o.fill_bytes,
            "compaction": {
                "seconds": (o.compaction_secs * 100.0).round() / 100.0,
                "segments_rewritten": o.report.segments_rewritten,
                "records_removed": o.report.records_removed,
                "bytes_before": o.report.bytes_before,
                "bytes_after": o.report.bytes_after,
            },
            "no_compaction": {"ack_p50_us": i50, "ack_p99_us": i99, "ack_p999_us": i999, "acks": o.idle.len()},
            "compaction_running": {"ack_p50_us": b50, "ack_p99_us": b99, "ack_p999_us": b999, "acks": o.busy.len()},
            "ratio_p50": (b50 / i50 * 100.0).round() / 100.0,
            "ratio_p99": (b99 / i99 * 100.0).round() / 100.0,
        }));
    }
    let result = json!({
        "name": "compaction-latency",
        "commit": report::commit(),
        "machine": report::machine(),
        "config": {
            "keys": KEYS,
            "records_per_batch": RECORDS_PER_BATCH,
            "segment_bytes": 8 << 20,
            "append_batch_bytes": 16 * 1024,
            "in_flight": 1,
            "flush": "fsync",
            "quick": common.quick,
        },
        "cases": cases,
    });
    report::write(&common.results_dir, "compaction-latency", &result)?;
    Ok(result)
}
