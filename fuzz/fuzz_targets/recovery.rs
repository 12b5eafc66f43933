//! Recovery of a partition directory from arbitrary bytes, on the memory
//! disk: the bytes become segment files (and optionally index files, a
//! producers snapshot and a clean-shutdown marker), `PartitionLog::open`
//! recovers them (`engine::recovery::scan` batch by batch, truncating at
//! the first bad one), and everything it kept is read back.
//!
//! Input: a flags byte, then length-prefixed parts (2-byte big-endian
//! length, clamped to what is left) in this order, each only if its flag
//! is set; the rest is the first segment's `.log` (base offset 0).
//! - bit 0: a `clean_shutdown` marker (indexes are trusted, no full scan);
//! - bit 1: `.index` and `.timeindex` of the first segment (two parts);
//! - bit 2: a producers snapshot: one byte (its offset), then a part;
//! - bit 3: a second segment: 8 bytes (its base offset, big-endian), then
//!   a part (its `.log`);
//! - bit 4: `index.interval.bytes` 1 (an index entry per batch), else 4096;
//! - bit 5: the batch cache on (reads from memory), else every read from
//!   the files;
//! - bit 6: after the read-back, append a batch, close cleanly, reopen,
//!   and check that the log reads back the same bytes;
//! - bit 7: 1 KiB segments (appends roll).
//!
//! Checks beyond "no panic" (or hang): a clean close and reopen changes
//! nothing that reads return. Without index files (bit 1 clear) every
//! segment is scanned at open, and then also: whatever `open` keeps reads
//! back, batch after batch, from the log start to the acknowledged end, as
//! intact batches with growing offsets, and replay sees the same batches.
//! With index files, segments are trusted up to their last index entry
//! (by design, as Kafka does), so a corrupt `baseOffset` there (outside the
//! CRC) is served as is; only panics, hangs and the restart check count.
#![no_main]

use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::BytesMut;
use engine::batch::validate_one;
use engine::disk::{write_file_atomic, Disk, MemDisk};
use engine::{Flush, Flusher, LogConfig, ManualClock, PartitionLog};
use libfuzzer_sys::fuzz_target;

const T0: i64 = 1_700_000_000_000;

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    fn part(&mut self) -> &'a [u8] {
        let len = match self.take(2) {
            [a, b] => u16::from_be_bytes([*a, *b]) as usize,
            _ => 0,
        };
        self.take(len)
    }
}

fn path(dir: &Path, offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{offset:020}.{suffix}"))
}

/// Every batch from the log start to the acknowledged end, as the bytes a
/// fetch would serve. `strict`: every segment was scanned at open, so each
/// read must succeed and return the batch holding the offset asked for,
/// then later ones. Otherwise (segments trusted up to their last index
/// entry, as after a clean shutdown and for closed segments) stop at the
/// first error or when reads stop making progress.
async fn read_all(log: &PartitionLog<MemDisk>, strict: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.acked_end_offset();
    while offset < end {
        let r = match log.read(offset, 4096, i64::MAX).await {
            Ok(r) => r,
            Err(e) if !strict => {
                let _ = e.to_string();
                break;
            }
            Err(e) => panic!("read at {offset} (start {}, end {end}): {e}", log.log_start_offset()),
        };
        assert!(
            !strict || !r.chunks.is_empty(),
            "read at {offset} below the end {end} returned nothing"
        );
        let before = offset;
        for c in &r.chunks {
            let bytes = match log.read_bytes(c).await {
                Ok(b) => b,
                Err(e) if !strict => {
                    let _ = e.to_string();
                    return out;
                }
                Err(e) => panic!("read_bytes at {offset}: {e}"),
            };
            let mut at = 0;
            while at < bytes.len() {
                let h = validate_one(&bytes[at..]).expect("a served batch is intact");
                assert!(
                    !strict || h.last_offset() >= offset,
                    "batch {} before {offset}",
                    h.base_offset
                );
                offset = offset.max(h.last_offset().saturating_add(1));
                at += h.size;
            }
            out.extend_from_slice(&bytes);
        }
        if offset <= before {
            assert!(!strict, "no progress at {before}");
            break;
        }
    }
    out
}

fn config(flags: u8) -> LogConfig {
    LogConfig {
        segment_bytes: if flags & 0x80 != 0 { 1024 } else { 1024 * 1024 },
        index_interval_bytes: if flags & 0x10 != 0 { 1 } else { 4096 },
        cache_bytes_max: if flags & 0x20 != 0 { 1 << 20 } else { 0 },
        ..LogConfig::default()
    }
}

async fn open(
    disk: &Rc<MemDisk>,
    dir: &Path,
    flags: u8,
    flusher: &Flusher<MemDisk>,
) -> Option<PartitionLog<MemDisk>> {
    let clock = Rc::new(ManualClock::new(T0));
    match PartitionLog::open(disk.clone(), dir, config(flags), flusher, clock).await {
        Ok(log) => Some(log),
        Err(e) => {
            let _ = e.to_string();
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let flags = input.take(1).first().copied().unwrap_or(0);
    // Without index files every segment is scanned batch by batch at open.
    let strict = flags & 2 == 0;
    let dir = PathBuf::from("/data/topic-0");
    let disk = Rc::new(MemDisk::new());
    let flusher = Flusher::new(Flush::Fsync);
    let opened = engine::testkit::run_with_flusher(&flusher, async {
        disk.create_dir_all(&dir).await.unwrap();
        let mut files: Vec<(PathBuf, &[u8])> = Vec::new();
        if flags & 1 != 0 {
            files.push((dir.join("clean_shutdown"), &[][..]));
        }
        if flags & 2 != 0 {
            files.push((path(&dir, 0, "index"), input.part()));
            files.push((path(&dir, 0, "timeindex"), input.part()));
        }
        if flags & 4 != 0 {
            let at = input.take(1).first().copied().unwrap_or(0) as i64;
            files.push((path(&dir, at, "producers"), input.part()));
        }
        if flags & 8 != 0 {
            let mut base = [0u8; 8];
            let b = input.take(8);
            base[..b.len()].copy_from_slice(b);
            let base = i64::from_be_bytes(base);
            files.push((path(&dir, base, "log"), input.part()));
        }
        files.push((path(&dir, 0, "log"), input.0));
        for (p, bytes) in &files {
            write_file_atomic(disk.as_ref(), p, bytes).await.unwrap();
        }

        let log = open(&disk, &dir, flags, &flusher).await?;
        let report = log.recovery_report();
        let _ = (report.notes.len(), log.describe(), log.max_timestamp());
        let data = read_all(&log, strict).await;
        // Replay (how internal logs are folded) sees the same batches.
        let mut replayed = Vec::new();
        let replay = log.replay(log.log_start_offset(), |_, b| {
            replayed.extend_from_slice(b);
            Ok(())
        });
        match replay.await {
            Ok(()) if strict => assert_eq!(replayed, data, "replay and reads disagree"),
            Ok(()) => {}
            Err(e) if strict => panic!("replay: {e}"),
            Err(e) => drop(e.to_string()),
        }
        for ts in [-1, 0, T0, i64::MAX] {
            let _ = log.offset_for_timestamp(ts).await;
        }
        if flags & 0x40 == 0 {
            return None;
        }
        // Appends go on after what recovery kept, and a clean restart keeps it all.
        let batch = engine::testkit::make_batch(7, 2, 20, T0);
        let mut expected = data;
        let end = log.log_end_offset();
        if let Ok(info) = log.append(BytesMut::from(&batch[..]), 1).await {
            assert!(info.base_offset >= end);
            log.wait_acked(info.end_offset).await.unwrap_or_else(|e| panic!("ack: {e}"));
            expected = read_all(&log, strict).await;
        }
        log.close().await.ok()?;
        Some(expected)
    });
    let Some(expected) = opened else { return };
    let flusher = Flusher::new(Flush::Fsync);
    engine::testkit::run_with_flusher(&flusher, async {
        let log = open(&disk, &dir, flags, &flusher).await.expect("a cleanly closed log reopens");
        assert!(log.recovery_report().clean_shutdown);
        assert_eq!(read_all(&log, strict).await, expected, "a clean restart changed the log");
    });
});
