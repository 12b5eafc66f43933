//! Corelog's benchmarks. Each measures Corelog and, in the same run, a
//! reference (the raw disk through `fio`), and writes a JSON result to
//! `bench/results/<name>.json` with the machine and the commit.
//!
//! - [`engine_append`]: appends through the engine under both durability
//!   modes vs fio's sequential direct write and fdatasync latency.
//! - [`engine_read`]: cold sequential reads through the engine vs fio's
//!   sequential direct read.
//! - [`compaction_latency`]: append latency on a shard while it compacts
//!   another partition vs without compaction.
//! - [`validate`]: what validating a produced batch costs, per codec, against
//!   a CRC-32C pass over the same bytes.
//! - [`load`]: the Kafka load generator (producers, consumers, end-to-end).
//! - [`broker_bench`]: `produce`, `consume` and `e2e` against a broker.
//! - [`experiments`]: `kafka-2014` and `scaling`, sequences of those.
//! - [`cli`]: the command line of `corelog bench` and of this crate's binary.
//!
//! Engine benchmarks run on a glommio executor of their own; broker
//! benchmarks run the load generator's threads against a broker process.
//! Benchmarks never run in tests (CI only smoke-runs `--quick`).

pub mod broker_bench;
pub mod cli;
pub mod compaction_latency;
pub mod engine_append;
pub mod engine_read;
pub mod experiments;
pub mod fio;
pub mod load;
pub mod report;
pub mod svg;
pub mod validate;

/// Options every benchmark takes.
#[derive(Debug, Clone)]
pub struct Common {
    /// A short run (well under a minute), for CI smoke runs and quick checks.
    pub quick: bool,
    /// Where data files go; must be on the disk being measured.
    pub dir: std::path::PathBuf,
    /// Where the JSON result goes.
    pub results_dir: std::path::PathBuf,
    /// Partitions (logs) written at once.
    pub partitions: usize,
    /// Appends in flight per partition (producers waiting for acknowledgment).
    pub in_flight: usize,
}
