//! `bench`: runs one benchmark. Usage:
//!
//! ```text
//! cargo run --release -p bench -- <engine-append|engine-read> [--quick] [--dir DIR] [--results DIR]
//! ```

use std::path::PathBuf;

use anyhow::{bail, Result};
use bench::Common;

const USAGE: &str = "usage: bench <engine-append|engine-read|compaction-latency> [--quick] [--dir DIR] [--results DIR]
                    [--partitions N] [--in-flight N]

  engine-append  append throughput and acknowledgment latency vs fio (raw disk)
  engine-read    cold sequential read throughput vs fio
  compaction-latency  append latency while the shard compacts vs idle
  --quick        a short run (under a minute)
  --dir DIR      where data files go (default: ./bench-data, on the disk to measure)
  --results DIR  where the JSON result goes (default: bench/results)
  --partitions N partitions written (and read) at once (default 4)
  --in-flight N  appends in flight per partition (default 16)";

fn number(v: Option<String>, flag: &str) -> Result<usize> {
    match v.as_deref().map(str::parse::<usize>) {
        Some(Ok(n)) if n > 0 => Ok(n),
        _ => bail!("{flag} takes a positive number"),
    }
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut name = None;
    let mut common = Common {
        quick: false,
        dir: PathBuf::from("bench-data"),
        results_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results"),
        partitions: bench::engine_append::PARTITIONS,
        in_flight: bench::engine_append::IN_FLIGHT_PER_PARTITION,
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => common.quick = true,
            "--full" => common.quick = false,
            "--dir" => common.dir = PathBuf::from(args.next().unwrap_or_default()),
            "--results" => common.results_dir = PathBuf::from(args.next().unwrap_or_default()),
            "--partitions" => common.partitions = number(args.next(), "--partitions")?,
            "--in-flight" => common.in_flight = number(args.next(), "--in-flight")?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other if name.is_none() && !other.starts_with('-') => name = Some(other.to_string()),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    std::fs::create_dir_all(&common.dir)?;
    common.dir = std::fs::canonicalize(&common.dir)?;
    match name.as_deref() {
        Some("engine-append") => bench::engine_append::run(&common).map(|_| ()),
        Some("engine-read") => bench::engine_read::run(&common).map(|_| ()),
        Some("compaction-latency") => bench::compaction_latency::run(&common).map(|_| ()),
        Some(other) => bail!("unknown benchmark {other:?}\n{USAGE}"),
        None => bail!("{USAGE}"),
    }
}
