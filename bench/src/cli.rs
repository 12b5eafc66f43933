//! The benchmark command line, shared by `corelog bench ...` and the
//! `bench` binary (`cargo run --release -p bench -- ...`): flags to
//! options, then one benchmark.

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::broker_bench::{self, LoadArgs};
use crate::load::produce::ProducerKind;
use crate::Common;

pub const USAGE: &str = "usage: corelog bench <benchmark> [--quick|--full] [options]

broker benchmarks (start their own broker unless --bootstrap is given):
  produce             producers at full speed (or --rate): records/s, MB/s, ack latency
  consume             consumers reading a topic from the beginning
  e2e                 end-to-end latency: send time stamped in the record, read at the
                      consumer (--rate default 100,000, --batch-records 10;
                      30 s, --quick 5 s)
  kafka-2014          Kafka's 2014 \"2 million writes per second\" set, on this machine
  scaling             1 to N shards: records/s, MB/s and broker CPU seconds per GB
  durability          fsync vs interval flush: latency at 25/50/75/100% of peak
  traps               64 connections, keyed small batches, retention while producing,
                      large records vs fio
  transactions        idempotent vs transactional producers in groups of 100 and
                      10,000 records, then read_committed vs read_uncommitted

engine benchmarks (no broker, against fio on the same disk):
  engine-append       append throughput and acknowledgment latency
  engine-read         cold sequential read throughput
  compaction-latency  append latency while the shard compacts vs idle
  validate            the cost of validating a produced batch, per codec, vs CRC-32C

common:
  --quick             a short run (under a minute)
  --full              the full run (default)
  --dir DIR           data files (default ./bench-data, on the disk to measure)
  --results DIR       where the JSON result goes (default bench/results)

broker benchmarks:
  --bootstrap HOST:PORT  a running broker (default: start corelog serve)
  --command-config FILE  how to reach it, as Kafka's tools read it: security.protocol,
                      sasl.mechanism, sasl.jaas.config or sasl.username/password,
                      ssl.ca.location, ssl.certificate.location/ssl.key.location
                      (the built-in generator only; kcat comparisons stay PLAINTEXT)
  --shards N          shards of the broker it starts (default: one per core)
  --flush MODE        fsync or interval:MS, of the broker it starts (default fsync)
  --serve-flags FLAGS more `corelog serve` flags for the broker it starts,
                      for example '--zero-copy-fetch false'
  --topic NAME        (default bench)       --partitions N   (default 6)
  --connections N     producer or consumer connections (default: one per shard)
  --records N         records in all (default 20,000,000; --quick 5,000,000)
  --record-size B     value bytes per record (default 100)
  --batch-records N   records per batch (default 1000)
  --acks 0|1|all      (default all)         --in-flight N    requests per connection (default 5)
  --keys N            keys drawn uniformly from N (default 0: null keys)
  --rate R            records/s to aim at (default: as fast as acknowledged)
  --runs N            repetitions of each measured phase, min/median/max reported
                      (default 3; --quick 1)
  --compression C     none, gzip, snappy, lz4 or zstd (default none; e2e: none only)
  --producer KIND     plain, idempotent or transactional (default plain; the last two
                      need --acks all)
  --group-records N   records per connection between waits for all its acknowledgments:
                      a flush, or a transaction with --producer transactional
                      (default: no waits; transactional: 10,000)

engine benchmarks:
  --partitions N      logs written at once (default 4)
  --in-flight N       appends in flight per partition (default 16)";

/// A transaction's records per connection when `--group-records` is not given.
const TRANSACTION_RECORDS: u64 = 10_000;

/// Length of an `e2e` run without `--records`, at its rate.
const E2E_QUICK_SECONDS: f64 = 5.0;
const E2E_FULL_SECONDS: f64 = 30.0;
const E2E_BATCH_RECORDS: usize = 10;

fn number<T: std::str::FromStr + PartialOrd + Default>(v: Option<String>, flag: &str) -> Result<T> {
    match v.as_deref().map(str::parse::<T>) {
        Some(Ok(n)) if n > T::default() => Ok(n),
        _ => bail!("{flag} takes a positive number"),
    }
}

fn value(v: Option<String>, flag: &str) -> Result<String> {
    v.ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
}

/// Runs the benchmark `args` name. `broker_exe` is the `corelog` binary
/// that broker benchmarks start when no `--bootstrap` is given.
pub fn run(args: Vec<String>, broker_exe: Option<PathBuf>) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut it = args.into_iter();
    let mut name = None;
    let mut common = Common {
        quick,
        dir: PathBuf::from("bench-data"),
        results_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results"),
        partitions: crate::engine_append::PARTITIONS,
        in_flight: crate::engine_append::IN_FLIGHT_PER_PARTITION,
    };
    let mut load = LoadArgs::defaults(quick);
    load.broker_exe = broker_exe;
    let (mut partitions_set, mut in_flight_set, mut records_set) = (None, None, false);
    let mut batch_set = false;
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => {}
            "--full" => common.quick = false,
            "--dir" => common.dir = PathBuf::from(value(it.next(), &a)?),
            "--results" => common.results_dir = PathBuf::from(value(it.next(), &a)?),
            "--partitions" => partitions_set = Some(number::<usize>(it.next(), &a)?),
            "--in-flight" => in_flight_set = Some(number::<usize>(it.next(), &a)?),
            "--bootstrap" => load.bootstrap = Some(value(it.next(), &a)?),
            "--command-config" => {
                let path = PathBuf::from(value(it.next(), &a)?);
                load.security = client::security::Security::from_file(&path)?;
            }
            "--shards" => load.shards = number(it.next(), &a)?,
            "--flush" => load.flush = value(it.next(), &a)?,
            "--topic" => load.topic = value(it.next(), &a)?,
            "--connections" => load.connections = number(it.next(), &a)?,
            "--records" => {
                load.records = number(it.next(), &a)?;
                records_set = true;
            }
            "--record-size" => load.record_size = number(it.next(), &a)?,
            "--batch-records" => {
                load.batch_records = number(it.next(), &a)?;
                batch_set = true;
            }
            "--acks" => {
                load.acks = match value(it.next(), &a)?.as_str() {
                    "0" => 0,
                    "1" => 1,
                    "all" | "-1" => -1,
                    other => bail!("--acks {other:?}: expected 0, 1 or all"),
                }
            }
            "--keys" => {
                load.keys = value(it.next(), &a)?
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--keys takes a number"))?
            }
            "--runs" => load.runs = number(it.next(), &a)?,
            "--serve-flags" => {
                load.broker_flags =
                    value(it.next(), &a)?.split_whitespace().map(String::from).collect()
            }
            "--rate" => load.rate = Some(number::<f64>(it.next(), &a)?),
            "--producer" => load.producer = ProducerKind::parse(&value(it.next(), &a)?)?,
            "--group-records" => load.group_records = number(it.next(), &a)?,
            "--compression" => {
                load.compression = crate::load::compress::Codec::parse(&value(it.next(), &a)?)?
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other if name.is_none() && !other.starts_with('-') => name = Some(other.to_string()),
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    if let Some(p) = partitions_set {
        common.partitions = p;
        load.partitions = i32::try_from(p)?;
    }
    if load.producer == ProducerKind::Transactional && load.group_records == 0 {
        load.group_records = TRANSACTION_RECORDS;
    }
    if let Some(n) = in_flight_set {
        common.in_flight = n;
        load.in_flight = n;
    }
    std::fs::create_dir_all(&common.dir)?;
    common.dir = std::fs::canonicalize(&common.dir)?;
    match name.as_deref() {
        Some("produce") => broker_bench::produce(&load, &common),
        Some("consume") => broker_bench::consume(&load, &common),
        Some("e2e") => {
            let rate = *load.rate.get_or_insert(crate::experiments::E2E_RATE);
            if !batch_set {
                // Latency, not throughput: small batches, as Kafka 2014's case.
                load.batch_records = E2E_BATCH_RECORDS;
            }
            if !records_set {
                // A latency run is about time at a rate, not a volume.
                let seconds = if common.quick { E2E_QUICK_SECONDS } else { E2E_FULL_SECONDS };
                load.records = (rate * seconds).max(1.0) as u64;
            }
            broker_bench::e2e(&load, &common)
        }
        Some("kafka-2014") => crate::experiments::kafka_2014(&load, &common),
        Some("scaling") => crate::experiments::scaling(&load, &common),
        Some("durability") => crate::experiments::durability::run(&load, &common),
        Some("traps") => crate::experiments::traps::run(&load, &common),
        Some("transactions") => crate::experiments::transactions::run(&load, &common),
        Some("engine-append") => crate::engine_append::run(&common).map(|_| ()),
        Some("engine-read") => crate::engine_read::run(&common).map(|_| ()),
        Some("compaction-latency") => crate::compaction_latency::run(&common).map(|_| ()),
        Some("validate") => crate::validate::run(&common).map(|_| ()),
        Some(other) => bail!("unknown benchmark {other:?}\n\n{USAGE}"),
        None => bail!("{USAGE}"),
    }
}
