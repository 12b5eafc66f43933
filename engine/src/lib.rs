//! Corelog's storage engine: the per-partition commit log.
//!
//! The engine owns everything below the Kafka request: record batch validation,
//! segments and their indexes, the direct-I/O append path, group commit,
//! recovery after a crash, and retention. It knows nothing of Kafka requests,
//! sockets or cores: a [`PartitionLog`] is owned by exactly one shard (it is
//! `!Send`, it takes no locks) and all of its I/O goes through the small
//! [`disk::Disk`] trait, implemented by glommio's DMA files ([`disk::DmaDisk`])
//! in production and by an in-memory, fault-injecting disk ([`disk::MemDisk`])
//! in tests.
//!
//! Table of contents:
//! - [`batch`]: the Kafka record batch v2 header, structural checks and stamping.
//! - [`validate`]: Kafka's log validator: every rule a produced batch passes.
//! - [`compression`]: decompressing records (gzip, snappy, lz4, zstd) to check them.
//! - [`limits`]: every bound of the engine, with its reason.
//! - [`disk`]: the I/O trait and its two implementations.
//! - [`index`]: the sparse offset and time indexes.
//! - [`segment`]: one `.log` file with its indexes.
//! - [`log`]: [`PartitionLog`], the public face: append, read, truncate, retention.
//! - [`flush`]: [`Flusher`], the shard's write-and-fdatasync loop (group commit).
//! - [`recovery`]: scanning segments after an unclean shutdown.
//! - [`producers`]: idempotent and transactional producers' state per partition.
//! - [`txn`]: transaction markers and the aborted-transactions index format.
//! - [`stats`]: latency histograms and read counters for metrics.
//! - [`sync`]: tiny single-threaded async primitives the engine needs.

pub mod batch;
pub mod clock;
pub mod compression;
pub mod config;
pub mod disk;
pub mod epochs;
pub mod error;
pub mod flush;
pub mod index;
pub mod legacy;
pub mod limits;
pub mod log;
pub mod producers;
pub mod recovery;
pub mod segment;
pub mod stats;
pub mod sync;
mod tail;
pub mod testkit;
pub mod times;
pub mod txn;
pub mod types;
pub mod validate;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Flush, LogConfig};
pub use error::{AppendError, LogError};
pub use flush::Flusher;
pub use log::{AppendInfo, Batches, CompactionReport, PartitionLog, ReadChunk, ReadResult, Writer};
pub use producers::ProducerCheck;
pub use types::{FilePosition, LeaderEpoch, Offset, Timestamp};
