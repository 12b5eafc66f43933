//! Property test: random appends (valid and invalid), reads, truncations,
//! retention, clean reopens and crashes against a simple in-memory model.
//! After every step the log equals the model; after a crash it holds every
//! acknowledged batch, byte for byte, and nothing that was never appended.
//!
//! Seeded: the seed is printed, `CORELOG_SEED=<n>` replays it.

mod common;

use bytes::BytesMut;
use common::*;
use engine::batch::{stamp, validate_one};
use engine::disk::MemDisk;
use engine::testkit::{make_batch, seed, Rng};
use engine::{Flush, LogConfig, PartitionLog};

/// The model: every batch of the log, stamped, in order.
#[derive(Default, Clone)]
struct Model {
    /// (base offset, last offset, max timestamp, bytes)
    batches: Vec<(i64, i64, i64, Vec<u8>)>,
    log_start: i64,
}

impl Model {
    fn end(&self) -> i64 {
        self.batches.last().map(|b| b.1 + 1).unwrap_or(self.log_start)
    }

    fn bytes_from(&self, offset: i64, upper: i64) -> Vec<u8> {
        self.batches
            .iter()
            .filter(|b| b.1 >= offset && b.1 < upper)
            .flat_map(|b| b.3.clone())
            .collect()
    }

    fn cut_at(&mut self, end: i64) {
        self.batches.retain(|b| b.0 < end);
    }

    fn drop_before(&mut self, start: i64) {
        self.batches.retain(|b| b.0 >= start);
        self.log_start = start;
    }
}

fn random_config(rng: &mut Rng) -> LogConfig {
    LogConfig {
        segment_bytes: 1024 + rng.below(8) * 1024,
        max_message_bytes: 1024,
        index_interval_bytes: 1 + rng.below(2048),
        cache_bytes_max: if rng.chance(50) { 0 } else { rng.below(4096) as usize },
        ..LogConfig::default()
    }
}

async fn read_everything(log: &PartitionLog<MemDisk>, from: i64, max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = from;
    let end = log.acked_end_offset();
    while offset < end {
        let r = log.read(offset, max_bytes, end).await.expect("read");
        assert!(!r.chunks.is_empty(), "empty read at {offset} < {end}: {}", log.describe());
        for c in &r.chunks {
            let bytes = log.read_bytes(c).await.expect("read bytes");
            let mut at = 0;
            while at < bytes.len() {
                let h = validate_one(&bytes[at..]).expect("valid batch");
                offset = h.last_offset() + 1;
                at += h.size;
            }
            out.extend_from_slice(&bytes);
        }
    }
    out
}

#[test]
fn log_equals_model_under_random_operations() {
    let base_seed = seed("log_equals_model_under_random_operations");
    for round in 0..40 {
        run_one(base_seed.wrapping_add(round));
    }
}

fn run_one(seed: u64) {
    let mut rng = Rng::new(seed);
    let mut env = Env::new(Flush::Fsync);
    let mut model = Model::default();
    let mut tag = 0u64;
    let mut config = random_config(&mut rng);
    for epoch in 0..8 {
        let crash = rng.chance(50);
        let steps = 20 + rng.below(60);
        let env_ref = &env;
        let (m, acked_end, r) = env.run({
            let env = env_ref;
            let mut model = model.clone();
            let config = config.clone();
            let mut rng = rng.clone();
            let tag = &mut tag;
            async move {
                let log = env.open(config.clone()).await;
                assert_eq!(log.log_start_offset(), model.log_start, "seed {seed} epoch {epoch}");
                assert_eq!(log.log_end_offset(), model.end(), "seed {seed} epoch {epoch}");
                for step in 0..steps {
                    let ctx = format!("seed {seed} epoch {epoch} step {step}");
                    let op = rng.below(100);
                    if std::env::var_os("CORELOG_TRACE").is_some() {
                        eprintln!("{ctx} op {op}: {}", log.describe());
                    }
                    match op {
                        0..=49 => {
                            // A request of 1-3 batches, sometimes with a corrupt one.
                            let n = 1 + rng.below(3) as usize;
                            let mut req = Vec::new();
                            for _ in 0..n {
                                *tag += 1;
                                let records = 1 + rng.below(5) as usize;
                                let value = rng.below(150) as usize;
                                req.push(make_batch(*tag, records, value, T0 + *tag as i64 % 97));
                            }
                            let corrupt = rng.chance(10);
                            if corrupt {
                                let b = &mut req[rng.below(n as u64) as usize];
                                let i = 21 + rng.below(b.len() as u64 - 21) as usize;
                                b[i] ^= 1 << rng.below(8);
                            }
                            let bytes: Vec<u8> = req.concat();
                            let result = log.append(BytesMut::from(&bytes[..]), epoch).await;
                            if corrupt {
                                assert!(result.is_err(), "{ctx}: corrupt request accepted");
                                assert_eq!(log.log_end_offset(), model.end(), "{ctx}");
                                continue;
                            }
                            let info =
                                result.unwrap_or_else(|e| panic!("{ctx}: append failed: {e}"));
                            assert_eq!(info.base_offset, model.end(), "{ctx}");
                            let mut offset = info.base_offset;
                            for mut b in req {
                                stamp(&mut b, offset, epoch);
                                let h = validate_one(&b).unwrap();
                                model.batches.push((
                                    offset,
                                    h.last_offset(),
                                    h.max_timestamp,
                                    b.clone(),
                                ));
                                offset = h.last_offset() + 1;
                            }
                            if rng.chance(70) {
                                log.wait_acked(info.end_offset).await.unwrap();
                            }
                        }
                        50..=69 => {
                            let end = log.acked_end_offset();
                            if end > model.log_start {
                                let offset = model.log_start
                                    + rng.below((end - model.log_start) as u64) as i64;
                                let max_bytes = 1 + rng.below(3000) as usize;
                                let got = read_everything(&log, offset, max_bytes).await;
                                assert_eq!(
                                    got,
                                    model.bytes_from(offset, end),
                                    "{ctx}: read from {offset}"
                                );
                            }
                        }
                        70..=77 => {
                            let end = model.end();
                            if end > model.log_start {
                                let target = model.log_start
                                    + rng.below((end - model.log_start) as u64) as i64;
                                let new_end = log.truncate_to(target, 0).await.unwrap();
                                let holder = model.batches.iter().find(|b| b.1 >= target).unwrap();
                                assert_eq!(new_end, holder.0, "{ctx}: truncation to {target}");
                                model.cut_at(new_end);
                                assert_eq!(log.log_end_offset(), model.end(), "{ctx}");
                            }
                        }
                        78..=84 => {
                            let mut c = log.config();
                            c.retention_bytes = rng.below(6000) as i64;
                            log.set_config(c).unwrap();
                            log.apply_retention().await.unwrap();
                            let start = log.log_start_offset();
                            assert!(start >= model.log_start, "{ctx}");
                            assert!(
                                start == model.end() || model.batches.iter().any(|b| b.0 == start),
                                "{ctx}: log start {start} is not a batch boundary"
                            );
                            model.drop_before(start);
                        }
                        85..=92 => {
                            let ts = T0 + rng.below(100) as i64;
                            let end = log.acked_end_offset();
                            let expected = model
                                .batches
                                .iter()
                                .find(|b| b.2 >= ts)
                                .filter(|b| b.0 < end)
                                .map(|b| (b.0, b.2));
                            let first_at_or_after = model.batches.iter().find(|b| b.2 >= ts);
                            let got = log.offset_for_timestamp(ts).await.unwrap();
                            if first_at_or_after.is_some_and(|b| b.0 < end) {
                                assert_eq!(got, expected, "{ctx}: timestamp {ts}");
                            }
                        }
                        _ => {
                            let got = read_everything(&log, model.log_start, 1 << 20).await;
                            let end = log.acked_end_offset();
                            assert_eq!(
                                got,
                                model.bytes_from(model.log_start, end),
                                "{ctx}: full read"
                            );
                        }
                    }
                }
                let acked_end = log.acked_end_offset();
                if !crash {
                    log.close().await.unwrap();
                }
                (model, acked_end, rng)
            }
        });
        rng = r;
        if crash {
            env.disk.crash(rng.next_u64());
        }
        // Reopen and check: every acknowledged batch is there, and whatever
        // else survived is a prefix of what was appended.
        env = env.restart();
        let next_config = if rng.chance(30) { random_config(&mut rng) } else { config.clone() };
        let env_ref = &env;
        model = env.run({
            let env = env_ref;
            let mut model = m;
            let config = next_config.clone();
            async move {
                let log = env.open(config).await;
                if std::env::var_os("CORELOG_TRACE").is_some() {
                    eprintln!("reopen: {} {:?}", log.describe(), log.recovery_report());
                }
                let end = log.log_end_offset();
                let ctx = format!("seed {seed} epoch {epoch} reopen (crash: {crash})");
                assert!(
                    end >= acked_end,
                    "{ctx}: acknowledged end {acked_end} lost, log ends at {end}"
                );
                assert!(end <= model.end(), "{ctx}: log ends past anything appended");
                model.cut_at(end);
                assert_eq!(end, model.end(), "{ctx}: recovery ended inside a batch");
                let got = read_everything(&log, model.log_start, 1 << 20).await;
                assert_eq!(got, model.bytes_from(model.log_start, end), "{ctx}: recovered bytes");
                log.close().await.unwrap();
                model
            }
        });
        config = next_config;
        env = env.restart();
    }
}
