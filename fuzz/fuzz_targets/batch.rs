//! The records section of a produce request for one partition, through the
//! engine's append validation (`engine::validate::validate_for_append`),
//! the engine's record parser (`engine::batch::parse_records`) and its
//! record-time walk for ListOffsets (`engine::times`).
//!
//! Input: a mode byte, then the data.
//! - Mode byte odd: the data is taken as is (CRC failures, truncation).
//! - Mode byte even (structured): the data is a sequence of batches, each
//!   a 2-byte big-endian length then that many bytes (the last one takes
//!   what is left), padded to a header if short; each gets a correct
//!   `batchLength`, magic 2 and CRC-32C, so that mutations reach the
//!   header rules, the record walk and decompression instead of failing
//!   the CRC.
//! - Mode bits 1-4 pick the rules: compacted topic (records need keys),
//!   a small `max.message.bytes`, timestamp bounds around a fixed clock,
//!   LogAppendTime.
//!
//! Checks beyond "no panic": an accepted request is whole batches that
//! still pass the structural check (CRC recomputed after `maxTimestamp`
//! was rewritten) with the headers returned, and every accepted
//! uncompressed batch parses with `parse_records` into `recordsCount`
//! records (compaction parses what the validator accepted), and the
//! record-time walk of every accepted batch, compressed or not, visits
//! its offsets in order from its base, at most `recordsCount` of them (a
//! LogAppendTime batch at the broker's clock).
#![no_main]

use engine::batch::{
    parse_records, set_crc, validate_one, HEADER_BYTES, LOG_APPEND_TIME, LOG_OVERHEAD, MAGIC_V2,
};
use engine::times::for_each_record_time;
use engine::validate::{validate_for_append, Rules};
use libfuzzer_sys::fuzz_target;

const NOW_MS: i64 = 1_700_000_000_000;

fn rules(mode: u8) -> Rules {
    let mut r = Rules::lenient(1024 * 1024 + 12);
    r.compacted = mode & 0b10 != 0;
    if mode & 0b100 != 0 {
        r.max_batch_bytes = 200;
    }
    if mode & 0b1000 != 0 {
        r.now_ms = NOW_MS;
        r.timestamp_before_max_ms = 7 * 24 * 3600 * 1000;
        r.timestamp_after_max_ms = 3600 * 1000;
    }
    r.log_append_time = mode & 0b1_0000 != 0;
    r
}

/// Batches with correct lengths, magic and CRCs around fuzzed bytes.
fn structured(mut data: &[u8]) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::with_capacity(data.len() + HEADER_BYTES);
    let mut starts = Vec::new();
    while !data.is_empty() {
        let len = match data {
            [a, b, rest @ ..] => {
                data = rest;
                (u16::from_be_bytes([*a, *b]) as usize).min(rest.len())
            }
            _ => data.len(),
        };
        let (chunk, rest) = data.split_at(len);
        data = rest;
        let start = out.len();
        starts.push(start);
        out.extend_from_slice(chunk);
        if chunk.len() < HEADER_BYTES {
            out.resize(start + HEADER_BYTES, 0);
        }
        let batch = &mut out[start..];
        let length = (batch.len() - LOG_OVERHEAD) as i32;
        batch[8..12].copy_from_slice(&length.to_be_bytes());
        batch[16] = MAGIC_V2 as u8;
        set_crc(batch);
    }
    (out, starts)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let (mut buf, starts) = if mode & 1 == 0 { structured(rest) } else { (rest.to_vec(), vec![0]) };
    // The engine's own parser on each batch as given (it serves internal
    // logs and compaction; it must refuse garbage without panicking).
    for &s in &starts {
        if let Ok(records) = parse_records(&buf[s..]) {
            let _ = records.iter().map(|r| r.raw.len()).sum::<usize>();
        }
        let _ = for_each_record_time(&buf[s..], |_, _| true);
    }
    // The same bytes as an old client's message set (Produce v0-v2).
    let _ = engine::legacy::upconvert(rest, 1 << 20);
    let rules = rules(mode);
    match validate_for_append(&mut buf, &rules) {
        Ok(headers) => {
            assert!(!headers.is_empty());
            // Fetch v0-v3's view: every record of every accepted data
            // batch comes back as a message, and the messages convert
            // back into one batch of that many records (small inputs:
            // a large one may hold a 64 MiB decompression, too slow here).
            let magic = (mode >> 5) & 1;
            if buf.len() <= 1024 {
                let set = engine::legacy::downconvert(&buf, 0, magic, usize::MAX);
                let records: i32 =
                    headers.iter().filter(|h| !h.is_control()).map(|h| h.records_count).sum();
                match engine::legacy::upconvert(&set, rules.max_batch_bytes) {
                    Ok(batches) => {
                        let mut at = 0;
                        let mut converted = 0;
                        while at < batches.len() {
                            let h = validate_one(&batches[at..]).unwrap();
                            converted += h.records_count;
                            at += h.size;
                        }
                        assert_eq!(converted, records);
                    }
                    Err(_) => assert!(set.is_empty() && records == 0, "{records} records, none"),
                }
            } else {
                let _ = engine::legacy::downconvert(&buf, 0, magic, 1 << 20);
            }
            let mut at = 0;
            for h in &headers {
                let batch = &buf[at..at + h.size];
                let again = validate_one(batch).expect("an accepted batch stays intact");
                assert_eq!(&again, h, "returned header differs from the stored one");
                assert!(h.size <= rules.max_batch_bytes);
                let mut seen = Vec::new();
                for_each_record_time(batch, |offset, ts| {
                    seen.push((offset, ts));
                    true
                })
                .expect("an accepted batch's records walk");
                assert!(seen.len() <= h.records_count as usize);
                assert!(seen.iter().enumerate().all(|(i, (o, _))| *o == h.base_offset + i as i64));
                if rules.log_append_time {
                    assert_eq!(
                        (h.attributes & LOG_APPEND_TIME, h.max_timestamp),
                        (LOG_APPEND_TIME, rules.now_ms)
                    );
                    assert!(seen.iter().all(|(_, ts)| *ts == rules.now_ms));
                }
                if h.compression() == 0 {
                    let records = parse_records(batch).unwrap_or_else(|e| {
                        panic!("validate_for_append accepted a batch parse_records refuses: {e}")
                    });
                    assert_eq!(records.len(), h.records_count as usize);
                    if rules.compacted {
                        assert!(records.iter().all(|r| r.key.is_some()));
                    }
                }
                at += h.size;
            }
            assert_eq!(at, buf.len(), "accepted batches cover the request");
        }
        Err(e) => {
            let _ = (e.to_string(), e.record_index());
        }
    }
});
