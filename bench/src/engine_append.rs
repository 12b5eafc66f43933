//! `engine-append`: batches of 100-byte records appended through the engine
//! on real files, for a fixed volume, under `Fsync` and `Interval` flushing;
//! beside it, in the same run, fio's sequential direct write of the same
//! block size and the disk's fdatasync latency.
//!
//! Load: `PARTITIONS` logs on one shard, each with `PRODUCERS_PER_PARTITION`
//! producers that append a pre-built batch and wait for its acknowledgment,
//! in a loop: the in-flight window of a pipelining client.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::BytesMut;
use engine::disk::DmaDisk;
use engine::testkit::make_batch;
use engine::{Flush, Flusher, LogConfig, PartitionLog, SystemClock};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::report::{percentiles, round1};
use crate::{fio, report, Common};

/// Default load: 4 partitions with 16 appends in flight each, 64 in all,
/// like a few pipelining clients.
pub const PARTITIONS: usize = 4;
pub const IN_FLIGHT_PER_PARTITION: usize = 16;
pub const RECORD_BYTES: usize = 100;
/// fdatasync interval of the `interval` mode (Kafka acknowledges before any
/// fsync by default; one second is a common explicit setting).
pub const INTERVAL_MS: u64 = 1000;

/// What one engine run measured.
pub struct Measured {
    pub mb_per_sec: f64,
    pub records_per_sec: f64,
    pub ack: Histogram<u64>,
    pub fdatasyncs: u64,
    pub rounds: u64,
    pub batch_bytes: usize,
    pub records_per_batch: usize,
}

/// A batch of 100-byte records as close to `target_bytes` as possible.
pub fn batch_near(target_bytes: usize) -> (Vec<u8>, usize) {
    let one = make_batch(1, 1, RECORD_BYTES, 0).len();
    let two = make_batch(1, 2, RECORD_BYTES, 0).len();
    let per_record = two - one;
    let mut n = ((target_bytes.saturating_sub(one)) / per_record + 1).max(1);
    loop {
        let b = make_batch(7, n, RECORD_BYTES, 1_700_000_000_000);
        if b.len() <= target_bytes || n == 1 {
            return (b, n);
        }
        n -= 1;
    }
}

/// Appends `volume_bytes` in batches of about `batch_bytes` into fresh logs
/// under `dir` and measures throughput and acknowledgment latency.
pub fn measure(
    dir: &std::path::Path,
    batch_bytes: usize,
    flush: Flush,
    volume_bytes: u64,
    (partitions, in_flight): (usize, usize),
) -> Result<Measured> {
    let dir = dir.to_path_buf();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("bench-shard")
        .spawn(move || async move {
            run_load(&dir, batch_bytes, flush, volume_bytes, partitions, in_flight).await
        })
        .map_err(|e| anyhow::anyhow!("starting the benchmark executor: {e}"))?
        .join()
        .map_err(|e| anyhow::anyhow!("benchmark executor: {e}"))??;
    Ok(result)
}

async fn run_load(
    dir: &std::path::Path,
    batch_bytes: usize,
    flush: Flush,
    volume_bytes: u64,
    partitions: usize,
    in_flight: usize,
) -> Result<Measured> {
    let disk = Rc::new(DmaDisk::new(dir).await?);
    let flusher = Flusher::new(flush);
    let runner = flusher.clone();
    let flusher_task = glommio::spawn_local(async move { runner.run().await });
    let ticker = flusher.clone();
    let stop_ticker = Rc::new(Cell::new(false));
    let stop = stop_ticker.clone();
    let timer = glommio::spawn_local(async move {
        if let Flush::Interval { ms } = ticker.mode() {
            while !stop.get() {
                glommio::timer::sleep(Duration::from_millis(ms)).await;
                ticker.request_sync();
            }
        }
    });
    let config = LogConfig { max_message_bytes: 2 << 20, ..LogConfig::default() };
    let mut logs = Vec::new();
    for p in 0..partitions {
        let d = dir.join(format!("bench-{p}"));
        logs.push(
            PartitionLog::open(disk.clone(), &d, config.clone(), &flusher, Rc::new(SystemClock))
                .await?,
        );
    }
    let (batch, records_per_batch) = batch_near(batch_bytes);
    let batch = Rc::new(batch);
    let total_batches = (volume_bytes / batch.len() as u64).max(1);
    let issued = Rc::new(Cell::new(0u64));
    let hist = Rc::new(RefCell::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for log in &logs {
        for _ in 0..in_flight {
            let (log, batch, issued, hist) =
                (log.clone(), batch.clone(), issued.clone(), hist.clone());
            tasks.push(glommio::spawn_local(async move {
                while issued.get() < total_batches {
                    issued.set(issued.get() + 1);
                    let t0 = Instant::now();
                    let info = log.append(BytesMut::from(&batch[..]), 0).await?;
                    log.wait_acked(info.end_offset).await?;
                    let us = t0.elapsed().as_micros().max(1) as u64;
                    hist.borrow_mut().saturating_record(us);
                }
                Ok::<_, engine::AppendError>(())
            }));
        }
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let stats = flusher.stats();
    stop_ticker.set(true);
    for log in &logs {
        log.close().await?;
    }
    flusher.stop();
    flusher_task.await;
    timer.cancel().await;
    let bytes = total_batches * batch.len() as u64;
    let _ = std::fs::remove_dir_all(dir);
    let ack = hist.borrow().clone();
    Ok(Measured {
        mb_per_sec: bytes as f64 / elapsed / 1e6,
        records_per_sec: (total_batches * records_per_batch as u64) as f64 / elapsed,
        ack,
        fdatasyncs: stats.fdatasyncs,
        rounds: stats.rounds,
        batch_bytes: batch.len(),
        records_per_batch,
    })
}

fn flush_name(f: Flush) -> String {
    match f {
        Flush::Fsync => "fsync".into(),
        Flush::Interval { ms } => format!("interval:{ms}"),
    }
}

/// Runs every case and writes `bench/results/engine-append.json`.
pub fn run(common: &Common) -> Result<Value> {
    let volume: u64 = if common.quick { 512 << 20 } else { 4 << 30 };
    let have_fio = fio::available();
    if !have_fio {
        eprintln!("fio not found: the raw disk reference is missing (apt-get install fio)");
    }
    let sync_ref = if have_fio {
        Some(fio::fdatasync_latency(
            &common.dir,
            16 * 1024,
            if common.quick { 32 << 20 } else { 256 << 20 },
        )?)
    } else {
        None
    };
    let best_ref = if have_fio {
        Some(fio::sequential(&common.dir, "write", 1 << 20, 4, volume)?)
    } else {
        None
    };
    let mut cases = Vec::new();
    println!(
        "{:>9} {:>12} {:>9} {:>12} {:>9} {:>7} {:>8} {:>8} {:>9} {:>10}",
        "batch",
        "flush",
        "MB/s",
        "records/s",
        "fio MB/s",
        "ratio",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "fdatasyncs"
    );
    for batch_target in [16 * 1024, 1 << 20] {
        let reference = if have_fio {
            Some(fio::sequential(&common.dir, "write", batch_target, 4, volume)?)
        } else {
            None
        };
        for flush in [Flush::Fsync, Flush::Interval { ms: INTERVAL_MS }] {
            let load = (common.partitions, common.in_flight);
            let m = measure(&common.dir.join("engine-append"), batch_target, flush, volume, load)?;
            let (p50, p99, p999) = percentiles(&m.ack);
            let ref_mb = reference.map(|r| r.mb_per_sec);
            let ratio = ref_mb.map(|r| m.mb_per_sec / r);
            println!(
                "{:>9} {:>12} {:>9.1} {:>12.0} {:>9} {:>7} {:>8.0} {:>8.0} {:>9.0} {:>10}",
                m.batch_bytes,
                flush_name(flush),
                m.mb_per_sec,
                m.records_per_sec,
                ref_mb.map(|r| format!("{r:.1}")).unwrap_or("-".into()),
                ratio.map(|r| format!("{r:.2}")).unwrap_or("-".into()),
                p50,
                p99,
                p999,
                m.fdatasyncs
            );
            cases.push(json!({
                "batch_bytes": m.batch_bytes,
                "records_per_batch": m.records_per_batch,
                "record_bytes": RECORD_BYTES,
                "flush": flush_name(flush),
                "mb_per_sec": round1(m.mb_per_sec),
                "records_per_sec": m.records_per_sec.round(),
                "reference_mb_per_sec": ref_mb.map(round1),
                "ratio": ratio.map(|r| (r * 1000.0).round() / 1000.0),
                "reference_best_mb_per_sec": best_ref.map(|r| round1(r.mb_per_sec)),
                "ratio_to_best": best_ref.map(|r| (m.mb_per_sec / r.mb_per_sec * 1000.0).round() / 1000.0),
                "ack_p50_us": p50,
                "ack_p99_us": p99,
                "ack_p999_us": p999,
                "reference_fdatasync_p50_us": sync_ref.and_then(|r| r.sync_p50_us),
                "reference_fdatasync_p99_us": sync_ref.and_then(|r| r.sync_p99_us),
                "reference_fdatasync_p999_us": sync_ref.and_then(|r| r.sync_p999_us),
                "fdatasyncs": m.fdatasyncs,
                "flush_rounds": m.rounds,
            }));
        }
    }
    if let Some(s) = sync_ref {
        println!(
            "fio fdatasync latency (16 KiB writes): p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us",
            s.sync_p50_us.unwrap_or(f64::NAN),
            s.sync_p99_us.unwrap_or(f64::NAN),
            s.sync_p999_us.unwrap_or(f64::NAN)
        );
    }
    // Acknowledgment latency without queueing: one append in flight, the
    // figure to hold against the disk's own fdatasync latency.
    let unloaded_volume = if common.quick { 16 << 20 } else { 128 << 20 };
    let m = measure(
        &common.dir.join("engine-append"),
        16 * 1024,
        Flush::Fsync,
        unloaded_volume,
        (1, 1),
    )?;
    let (p50, p99, p999) = percentiles(&m.ack);
    println!(
        "unloaded (1 append in flight, {} B batches, fsync): ack p50 {p50:.0} us, p99 {p99:.0} us, p99.9 {p999:.0} us, {:.1} MB/s",
        m.batch_bytes, m.mb_per_sec
    );
    let unloaded = json!({
        "batch_bytes": m.batch_bytes,
        "flush": "fsync",
        "partitions": 1,
        "in_flight": 1,
        "mb_per_sec": round1(m.mb_per_sec),
        "ack_p50_us": p50,
        "ack_p99_us": p99,
        "ack_p999_us": p999,
        "reference_fdatasync_p99_us": sync_ref.and_then(|r| r.sync_p99_us),
        "ack_p99_minus_reference_us": sync_ref.and_then(|r| r.sync_p99_us).map(|r| (p99 - r).round()),
    });
    let headline = cases[0].clone();
    let mut result = json!({
        "name": "engine-append",
        "commit": report::commit(),
        "machine": report::machine(),
        "config": {
            "volume_bytes": volume,
            "partitions": common.partitions,
            "in_flight_per_partition": common.in_flight,
            "record_bytes": RECORD_BYTES,
            "quick": common.quick,
            "fio": "sequential direct write, io_uring, iodepth 4, same block size as the batch; fdatasync: 16 KiB psync writes each followed by fdatasync",
        },
        "cases": cases,
        "unloaded": unloaded,
    });
    // The headline case (16 KiB batches, fsync) at the top level.
    for key in [
        "mb_per_sec",
        "records_per_sec",
        "reference_mb_per_sec",
        "ratio",
        "ack_p50_us",
        "ack_p99_us",
        "ack_p999_us",
        "reference_fdatasync_p99_us",
    ] {
        result[key] = headline[key].clone();
    }
    report::write(&common.results_dir, "engine-append", &result)?;
    Ok(result)
}
