//! `engine-read`: cold sequential reads through the engine (file ranges read
//! with direct I/O and CRC-checked), against fio's sequential direct read of
//! the same volume in the same run.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use anyhow::Result;
use bytes::BytesMut;
use engine::disk::DmaDisk;
use engine::{Flush, Flusher, LogConfig, PartitionLog, SystemClock};
use serde_json::{json, Value};

use crate::engine_append::batch_near;
use crate::report::round1;
use crate::{fio, report, Common};

/// Bytes asked per read: a consumer's `fetch.max.bytes`-sized request.
pub const READ_BYTES: usize = 1 << 20;

pub fn run(common: &Common) -> Result<Value> {
    let volume: u64 = if common.quick { 512 << 20 } else { 4 << 30 };
    let dir = common.dir.join("engine-read");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let d = dir.clone();
    let partitions = common.partitions;
    let (mb_per_sec, bytes) = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move { load_and_read(&d, volume, partitions).await })
        .map_err(|e| anyhow::anyhow!("starting the benchmark executor: {e}"))?
        .join()
        .map_err(|e| anyhow::anyhow!("benchmark executor: {e}"))??;
    let _ = std::fs::remove_dir_all(&dir);
    let reference = if fio::available() {
        Some(fio::sequential(&common.dir, "read", READ_BYTES, 4, volume)?)
    } else {
        None
    };
    let ratio = reference.map(|r| mb_per_sec / r.mb_per_sec);
    println!(
        "engine cold read {:.1} MB/s ({} bytes), fio sequential direct read {} MB/s, ratio {}",
        mb_per_sec,
        bytes,
        reference.map(|r| format!("{:.1}", r.mb_per_sec)).unwrap_or("-".into()),
        ratio.map(|r| format!("{r:.2}")).unwrap_or("-".into())
    );
    let result = json!({
        "name": "engine-read",
        "commit": report::commit(),
        "machine": report::machine(),
        "config": {
            "volume_bytes": volume,
            "partitions": common.partitions,
            "read_bytes": READ_BYTES,
            "readers": common.partitions,
            "quick": common.quick,
            "fio": "sequential direct read, io_uring, 1 MiB blocks, iodepth 4",
        },
        "mb_per_sec": round1(mb_per_sec),
        "reference_mb_per_sec": reference.map(|r| round1(r.mb_per_sec)),
        "ratio": ratio.map(|r| (r * 1000.0).round() / 1000.0),
    });
    report::write(&common.results_dir, "engine-read", &result)?;
    Ok(result)
}

async fn load_and_read(
    dir: &std::path::Path,
    volume: u64,
    partitions: usize,
) -> Result<(f64, u64)> {
    let disk = Rc::new(DmaDisk::new(dir).await?);
    let config =
        LogConfig { max_message_bytes: 2 << 20, cache_bytes_max: 0, ..LogConfig::default() };
    // Load with interval flushing (fast), then close.
    {
        let flusher = Flusher::new(Flush::Interval { ms: 1000 });
        let runner = flusher.clone();
        let task = glommio::spawn_local(async move { runner.run().await });
        let (batch, _) = batch_near(1 << 20);
        let per_partition = volume / partitions as u64 / batch.len() as u64 + 1;
        for p in 0..partitions {
            let log = PartitionLog::open(
                disk.clone(),
                &dir.join(format!("bench-{p}")),
                config.clone(),
                &flusher,
                Rc::new(SystemClock),
            )
            .await?;
            for _ in 0..per_partition {
                log.append(BytesMut::from(&batch[..]), 0).await?;
            }
            log.close().await?;
        }
        flusher.stop();
        task.await;
    }
    // Read everything back, cold, one reader per partition.
    let flusher = Flusher::new(Flush::Fsync);
    let mut logs = Vec::new();
    for p in 0..partitions {
        logs.push(
            PartitionLog::open(
                disk.clone(),
                &dir.join(format!("bench-{p}")),
                config.clone(),
                &flusher,
                Rc::new(SystemClock),
            )
            .await?,
        );
    }
    let total = Rc::new(Cell::new(0u64));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for log in logs {
        let total = total.clone();
        tasks.push(glommio::spawn_local(async move {
            let mut offset = log.log_start_offset();
            while offset < log.log_end_offset() {
                let r = log.read(offset, READ_BYTES, i64::MAX).await?;
                for c in &r.chunks {
                    let bytes = log.read_bytes(c).await?;
                    total.set(total.get() + bytes.len() as u64);
                    let mut at = 0;
                    while at < bytes.len() {
                        let h = engine::batch::BatchHeader::parse(&bytes[at..]).expect("validated");
                        offset = h.last_offset() + 1;
                        at += h.size;
                    }
                }
            }
            Ok::<_, engine::LogError>(())
        }));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok((total.get() as f64 / elapsed / 1e6, total.get()))
}
