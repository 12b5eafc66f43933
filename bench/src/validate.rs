//! `validate`: what checking a produced batch costs the appending shard,
//! against the CRC-32C pass every batch needed before record validation
//! (and still needs), over the same bytes in the same run.
//!
//! For each codec (none, gzip, snappy, lz4, zstd) it builds one batch of
//! 1,000 records of 100 bytes (values drawn from a small alphabet, so they
//! compress as text does), then times `engine::validate::validate_for_append`
//! and `crc32c` over that batch, alternating rounds so drift hits both. The
//! figures are nanoseconds per batch and per record, and validation's cost
//! as a multiple of the CRC pass. No disk, no broker: one core, plain loops.

use std::time::Instant;

use anyhow::Result;
use client::compress::{compress_batch, Codec};
use engine::batch::{build, KeyValue};
use engine::validate::{validate_for_append, Rules};
use serde_json::{json, Value};

use crate::report::{self, round1, round2};
use crate::Common;

const RECORDS: usize = 1000;
const VALUE_BYTES: usize = 100;

fn batch(codec: Codec, now_ms: i64) -> Result<Vec<u8>> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let values: Vec<Vec<u8>> = (0..RECORDS)
        .map(|_| {
            (0..VALUE_BYTES)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    b"abcdefgh ijklmnop"[(seed % 17) as usize]
                })
                .collect()
        })
        .collect();
    let keys: Vec<String> = (0..RECORDS).map(|i| format!("key-{i}")).collect();
    let records: Vec<KeyValue<'_>> =
        keys.iter().zip(&values).map(|(k, v)| (Some(k.as_bytes()), Some(&v[..]))).collect();
    compress_batch(&build(&records, now_ms), codec)
}

/// Nanoseconds per call of `f`, timing `rounds` rounds of `iters` calls.
fn time(iters: u32, mut f: impl FnMut()) -> f64 {
    let t0 = Instant::now();
    for _ in 0..iters {
        f();
    }
    t0.elapsed().as_nanos() as f64 / iters as f64
}

pub fn run(common: &Common) -> Result<Value> {
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let rules = Rules { now_ms, ..Rules::lenient(64 << 20) };
    let (rounds, iters) = if common.quick { (3, 50) } else { (9, 400) };
    let mut rows = Vec::new();
    println!("validate: one batch of {RECORDS} records of {VALUE_BYTES} bytes, {rounds} rounds of {iters}");
    println!("| codec | batch bytes | validate ns/batch | ns/record | CRC-32C ns/batch | validate / CRC |");
    println!("|---|---|---|---|---|---|");
    for codec in [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
        let original = batch(codec, now_ms)?;
        let mut scratch = original.clone();
        let (mut validate_ns, mut crc_ns) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            validate_ns.push(time(iters, || {
                scratch.copy_from_slice(&original);
                let h = validate_for_append(&mut scratch, &rules).expect("a valid batch");
                std::hint::black_box(h);
            }));
            crc_ns.push(time(iters, || {
                scratch.copy_from_slice(&original);
                std::hint::black_box(crc32c::crc32c(&scratch[21..]));
            }));
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (v, c) = (median(&mut validate_ns), median(&mut crc_ns));
        let name = format!("{codec:?}").to_lowercase();
        println!(
            "| {name} | {} | {:.0} | {:.1} | {:.0} | {:.1} |",
            original.len(),
            v,
            v / RECORDS as f64,
            c,
            v / c
        );
        rows.push(json!({
            "codec": name,
            "batch_bytes": original.len(),
            "validate_ns_per_batch": round1(v),
            "validate_ns_per_record": round2(v / RECORDS as f64),
            "crc32c_ns_per_batch": round1(c),
            "validate_over_crc": round2(v / c),
        }));
    }
    let result = json!({
        "benchmark": "validate",
        "records_per_batch": RECORDS,
        "value_bytes": VALUE_BYTES,
        "rounds": rounds,
        "iterations": iters,
        "codecs": rows,
        "machine": report::machine(),
        "commit": report::commit(),
    });
    report::write(&common.results_dir, "validate", &result)?;
    Ok(result)
}
