//! Result files and tables: machine description, commit, JSON output.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::{json, Value};

/// The machine, as honestly as `/proc` tells it.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": model,
        "memory_gib": (mem_kb as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": kernel.trim(),
    })
}

/// The commit being measured, with `-dirty` if the tree has changes.
pub fn commit() -> String {
    let head = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output();
    let dirty =
        Command::new("git").args(["status", "--porcelain", "--untracked-files=no"]).output();
    match (head, dirty) {
        (Ok(h), Ok(d)) if h.status.success() => {
            let mut c = String::from_utf8_lossy(&h.stdout).trim().to_string();
            if !d.stdout.is_empty() {
                c.push_str("-dirty");
            }
            c
        }
        _ => "unknown".into(),
    }
}

/// Writes `bench/results/<name>.json`.
pub fn write(results_dir: &Path, name: &str, value: &Value) -> Result<()> {
    std::fs::create_dir_all(results_dir)?;
    let path = results_dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(value)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Latency percentiles from a histogram of microseconds.
pub fn percentiles(h: &hdrhistogram::Histogram<u64>) -> (f64, f64, f64) {
    (
        h.value_at_quantile(0.5) as f64,
        h.value_at_quantile(0.99) as f64,
        h.value_at_quantile(0.999) as f64,
    )
}

pub fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

pub fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
