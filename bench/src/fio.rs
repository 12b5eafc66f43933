//! The raw disk reference: runs `fio` and reads its JSON output.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// What one fio job measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct FioResult {
    pub mb_per_sec: f64,
    /// Latency percentiles of fdatasync calls, when the job synced.
    pub sync_p50_us: Option<f64>,
    pub sync_p99_us: Option<f64>,
    pub sync_p999_us: Option<f64>,
}

/// Whether fio is installed.
pub fn available() -> bool {
    Command::new("fio").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Sequential direct I/O (`rw` = "write" or "read") of `size_bytes` in
/// blocks of `block_bytes` with `iodepth` in flight, through io_uring.
pub fn sequential(
    dir: &Path,
    rw: &str,
    block_bytes: usize,
    iodepth: usize,
    size_bytes: u64,
) -> Result<FioResult> {
    run(
        dir,
        &[
            format!("--rw={rw}"),
            format!("--bs={block_bytes}"),
            format!("--iodepth={iodepth}"),
            format!("--size={size_bytes}"),
            "--ioengine=io_uring".into(),
            "--direct=1".into(),
        ],
    )
}

/// Writes of `block_bytes`, each followed by fdatasync, one at a time: the
/// disk's own durability latency.
pub fn fdatasync_latency(dir: &Path, block_bytes: usize, size_bytes: u64) -> Result<FioResult> {
    run(
        dir,
        &[
            "--rw=write".into(),
            format!("--bs={block_bytes}"),
            "--iodepth=1".into(),
            format!("--size={size_bytes}"),
            "--ioengine=psync".into(),
            "--direct=1".into(),
            "--fdatasync=1".into(),
        ],
    )
}

fn run(dir: &Path, args: &[String]) -> Result<FioResult> {
    let file = dir.join("fio-reference.dat");
    let out = Command::new("fio")
        .arg("--name=reference")
        .arg(format!("--filename={}", file.display()))
        .arg("--output-format=json")
        .arg("--end_fsync=1")
        .args(args)
        .output()
        .context("running fio (install it: apt-get install fio)")?;
    let _ = std::fs::remove_file(&file);
    if !out.status.success() {
        bail!("fio failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let json: Value = serde_json::from_slice(&out.stdout).context("fio's JSON output")?;
    let job = &json["jobs"][0];
    let side = if args.iter().any(|a| a == "--rw=read") { "read" } else { "write" };
    let bw = job[side]["bw_bytes"].as_f64().context("fio bw_bytes")?;
    let pct = |p: &str| job["sync"]["lat_ns"]["percentile"][p].as_f64().map(|ns| ns / 1000.0);
    Ok(FioResult {
        mb_per_sec: bw / 1e6,
        sync_p50_us: pct("50.000000"),
        sync_p99_us: pct("99.000000"),
        sync_p999_us: pct("99.900000"),
    })
}
