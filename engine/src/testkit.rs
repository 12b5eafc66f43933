//! Helpers for the engine's tests and benchmarks: a seeded random generator,
//! a way to run a test body next to the flusher without a runtime, and batch
//! builders. Not used by the broker.

use std::future::Future;

use crate::batch;
use crate::disk::Disk;
use crate::flush::Flusher;
use crate::types::Timestamp;

/// A small, fast, seeded generator (xorshift64*). Every randomized test takes
/// its seed from `CORELOG_SEED` when set, prints it, and so can be replayed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The seed for a randomized test: `CORELOG_SEED` if set, else one from the
/// clock. Printed so that a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed =
        std::env::var("CORELOG_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("{test}: seed {seed} (replay with CORELOG_SEED={seed})");
    seed
}

/// Runs `body` to completion on the current thread while the flusher runs
/// beside it. Works with any disk whose futures need no reactor (the memory disk).
pub fn run_with_flusher<D: Disk, T>(flusher: &Flusher<D>, body: impl Future<Output = T>) -> T {
    futures_lite::future::block_on(run_beside(flusher, body))
}

/// An uncompressed batch of `records` records whose values are `value_bytes`
/// long and derived from `tag` (so every batch's bytes differ).
pub fn make_batch(tag: u64, records: usize, value_bytes: usize, timestamp: Timestamp) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..records)
        .map(|r| (0..value_bytes).map(|i| (tag as usize * 31 + r * 7 + i) as u8).collect())
        .collect();
    let recs: Vec<batch::KeyValue<'_>> = values.iter().map(|v| (None, Some(&v[..]))).collect();
    batch::build(&recs, timestamp)
}

/// Runs `body` on a fresh glommio executor thread with the flusher running
/// beside it, and returns its result. For tests and benchmarks on real files.
pub fn run_glommio<T, F, Fut>(mode: crate::Flush, body: F) -> T
where
    T: Send + 'static,
    F: FnOnce(Flusher<crate::disk::DmaDisk>) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            let flusher = Flusher::new(mode);
            let body = body(flusher.clone());
            run_beside(&flusher, body).await
        })
        .expect("glommio executor starts")
        .join()
        .expect("glommio executor thread")
}

/// Polls `body` and the flusher's loop together until `body` completes.
async fn run_beside<D: Disk, T>(flusher: &Flusher<D>, body: impl Future<Output = T>) -> T {
    let run = async {
        flusher.run().await;
        std::future::pending::<T>().await
    };
    futures_lite::future::or(body, run).await
}
