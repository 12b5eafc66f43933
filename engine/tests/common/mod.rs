//! Shared setup for the engine's tests on the memory disk.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::BytesMut;
use engine::disk::MemDisk;
use engine::testkit::make_batch;
use engine::{Flush, Flusher, LogConfig, ManualClock, PartitionLog};

pub const T0: i64 = 1_700_000_000_000;

pub fn dir() -> PathBuf {
    PathBuf::from("/data/topic-0")
}

/// Tiny knobs: 1 KiB segments and an index entry per batch, so rolling,
/// indexing and recovery run many times in a small test.
pub fn tiny() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        max_message_bytes: 1024,
        index_interval_bytes: 1,
        ..LogConfig::default()
    }
}

pub struct Env {
    pub disk: Rc<MemDisk>,
    pub clock: Rc<ManualClock>,
    pub flusher: Flusher<MemDisk>,
}

impl Env {
    pub fn new(mode: Flush) -> Env {
        Env {
            disk: Rc::new(MemDisk::new()),
            clock: Rc::new(ManualClock::new(T0)),
            flusher: Flusher::new(mode),
        }
    }

    /// Same disk and clock, a fresh flusher (as after a restart).
    pub fn restart(&self) -> Env {
        Env {
            disk: self.disk.clone(),
            clock: self.clock.clone(),
            flusher: Flusher::new(self.flusher.mode()),
        }
    }

    pub async fn open(&self, config: LogConfig) -> PartitionLog<MemDisk> {
        self.open_at(&dir(), config).await
    }

    pub async fn open_at(&self, dir: &Path, config: LogConfig) -> PartitionLog<MemDisk> {
        PartitionLog::open(self.disk.clone(), dir, config, &self.flusher, self.clock.clone())
            .await
            .expect("open")
    }

    pub fn run<T>(&self, body: impl std::future::Future<Output = T>) -> T {
        engine::testkit::run_with_flusher(&self.flusher, body)
    }
}

pub fn batch(tag: u64, records: usize, value_bytes: usize) -> BytesMut {
    BytesMut::from(&make_batch(tag, records, value_bytes, T0 + tag as i64)[..])
}

/// A batch of an idempotent producer: `pid`, `epoch`, first sequence `seq`.
pub fn producer_batch(tag: u64, records: usize, pid: i64, epoch: i16, seq: i32) -> BytesMut {
    let mut b = batch(tag, records, 10);
    engine::batch::set_producer(&mut b, pid, epoch, seq);
    b
}

/// Reads every batch from `from` to the acknowledged end, through whatever
/// path the log picks, as bytes.
pub async fn read_all(log: &PartitionLog<MemDisk>, from: i64, max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = from;
    let end = log.acked_end_offset();
    while offset < end {
        let r = log.read(offset, max_bytes, i64::MAX).await.expect("read");
        assert!(!r.chunks.is_empty(), "read at {offset} below the end {end} returned nothing");
        for c in &r.chunks {
            let bytes = log.read_bytes(c).await.expect("read bytes");
            let mut at = 0;
            while at < bytes.len() {
                let h = engine::batch::validate_one(&bytes[at..]).expect("valid batch");
                assert!(
                    h.last_offset() >= offset,
                    "batch {} before requested {offset}",
                    h.base_offset
                );
                offset = h.last_offset() + 1;
                at += h.size;
            }
            out.extend_from_slice(&bytes);
        }
    }
    out
}
