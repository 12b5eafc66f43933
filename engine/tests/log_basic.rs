//! The log's behaviour on a healthy memory disk: append, read through cache
//! and file, roll, reopen, timestamps, truncation, retention, bad input.

mod common;

use common::*;
use engine::batch::{validate_one, BatchError};
use engine::{AppendError, Flush, LogConfig, LogError};

/// One test body for both read paths: from the cache and from the files.
fn for_both_read_paths(test: impl Fn(LogConfig)) {
    for cache in [0, usize::MAX] {
        test(LogConfig { cache_bytes_max: cache, ..tiny() });
    }
}

#[test]
fn appends_get_contiguous_offsets_and_read_back_identical() {
    for_both_read_paths(|config| {
        let env = Env::new(Flush::Fsync);
        env.run(async {
            let log = env.open(config.clone()).await;
            let mut expected = Vec::new();
            for tag in 0..60u64 {
                let b = batch(tag, 1 + tag as usize % 4, 20);
                let info = log.append(b.clone(), 3).await.unwrap();
                assert_eq!(info.base_offset, expected_offset(&expected));
                log.wait_acked(info.end_offset).await.unwrap();
                let mut stamped = b.to_vec();
                engine::batch::stamp(&mut stamped, info.base_offset, 3);
                expected.extend_from_slice(&stamped);
            }
            assert!(log.segment_count() > 5, "1 KiB segments roll");
            assert_eq!(read_all(&log, 0, 1 << 20).await, expected);
            // Small max_bytes still makes progress one whole batch at a time.
            assert_eq!(read_all(&log, 0, 1).await, expected);
            // A read from the middle of a batch starts with that batch.
            let r = log.read(5, 1, i64::MAX).await.unwrap();
            let b = log.read_bytes(&r.chunks[0]).await.unwrap();
            let h = validate_one(&b).unwrap();
            assert!(h.base_offset <= 5 && h.last_offset() >= 5);
        });
    });
}

fn expected_offset(bytes: &[u8]) -> i64 {
    let mut at = 0;
    let mut next = 0;
    while at < bytes.len() {
        let h = validate_one(&bytes[at..]).unwrap();
        next = h.last_offset() + 1;
        at += h.size;
    }
    next
}

#[test]
fn reopen_after_clean_close_and_after_crash_keeps_acknowledged_data() {
    for clean in [true, false] {
        for_both_read_paths(|config| {
            let env = Env::new(Flush::Fsync);
            let expected = env.run(async {
                let log = env.open(config.clone()).await;
                for tag in 0..40 {
                    let info = log.append(batch(tag, 3, 30), 0).await.unwrap();
                    log.wait_acked(info.end_offset).await.unwrap();
                }
                let all = read_all(&log, 0, 1 << 20).await;
                if clean {
                    log.close().await.unwrap();
                }
                all
            });
            if !clean {
                env.disk.crash(1);
            }
            let env2 = env.restart();
            env2.run(async {
                let log = env2.open(config.clone()).await;
                assert_eq!(log.recovery_report().clean_shutdown, clean);
                assert_eq!(log.log_end_offset(), 120);
                assert_eq!(read_all(&log, 0, 1 << 20).await, expected);
                // And the log goes on from there.
                let info = log.append(batch(99, 2, 10), 0).await.unwrap();
                assert_eq!(info.base_offset, 120);
                log.wait_acked(info.end_offset).await.unwrap();
            });
        });
    }
}

#[test]
fn indexes_missing_on_disk_are_rebuilt() {
    let env = Env::new(Flush::Fsync);
    let expected = env.run(async {
        let log = env.open(tiny()).await;
        for tag in 0..30 {
            let info = log.append(batch(tag, 2, 40), 0).await.unwrap();
            log.wait_acked(info.end_offset).await.unwrap();
        }
        log.close().await.unwrap();
        read_all(&log, 0, 1 << 20).await
    });
    for p in env.disk.paths() {
        if p.extension().is_some_and(|e| e == "index" || e == "timeindex") {
            futures_lite::future::block_on(engine::disk::Disk::remove_file(env.disk.as_ref(), &p))
                .unwrap();
        }
    }
    let env2 = env.restart();
    env2.run(async {
        let log = env2.open(LogConfig { cache_bytes_max: 0, ..tiny() }).await;
        assert!(log.recovery_report().rebuilt_indexes > 0);
        assert_eq!(read_all(&log, 0, 1 << 20).await, expected);
        assert_eq!(read_all(&log, 17, 1).await.len(), read_all(&log, 17, 1 << 20).await.len());
    });
}

#[test]
fn a_bad_batch_refuses_the_whole_request() {
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let log = env.open(tiny()).await;
        let good = batch(1, 2, 10);
        let mut corrupt = good.clone();
        let n = corrupt.len();
        corrupt[n - 1] ^= 0x40;
        let mut request = good.clone();
        request.extend_from_slice(&corrupt);
        assert!(matches!(
            log.append(request, 0).await,
            Err(AppendError::Batch(BatchError::Corrupt(_)))
        ));
        let truncated = bytes::BytesMut::from(&good[..good.len() - 3]);
        assert!(matches!(
            log.append(truncated, 0).await,
            Err(AppendError::Batch(BatchError::Corrupt(_)))
        ));
        let big = batch(2, 20, 100);
        assert!(matches!(
            log.append(big, 0).await,
            Err(AppendError::Batch(BatchError::TooLarge { .. }))
        ));
        assert!(matches!(
            log.append(bytes::BytesMut::new(), 0).await,
            Err(AppendError::Batch(BatchError::Invalid(_)))
        ));
        assert_eq!(log.log_end_offset(), 0, "nothing of a refused request is appended");
        let info = log.append(good, 0).await.unwrap();
        assert_eq!(info.base_offset, 0);
    });
}

#[test]
fn offsets_by_timestamp_and_max_timestamp() {
    for_both_read_paths(|config| {
        let env = Env::new(Flush::Fsync);
        env.run(async {
            let log = env.open(config.clone()).await;
            // batch(tag) has timestamp T0 + tag; two records per batch.
            for tag in 0..50 {
                let info = log.append(batch(tag * 10, 2, 20), 0).await.unwrap();
                log.wait_acked(info.end_offset).await.unwrap();
            }
            assert_eq!(log.offset_for_timestamp(T0).await.unwrap(), Some((0, T0)));
            assert_eq!(log.offset_for_timestamp(T0 + 1).await.unwrap(), Some((2, T0 + 10)));
            assert_eq!(log.offset_for_timestamp(T0 + 250).await.unwrap(), Some((50, T0 + 250)));
            assert_eq!(log.offset_for_timestamp(T0 + 251).await.unwrap(), Some((52, T0 + 260)));
            assert_eq!(log.offset_for_timestamp(T0 + 491).await.unwrap(), None);
            assert_eq!(log.max_timestamp(), Some((T0 + 490, 98)));
        });
    });
}

#[test]
fn truncate_to_cuts_the_suffix_durably() {
    let env = Env::new(Flush::Fsync);
    let expected = env.run(async {
        let log = env.open(tiny()).await;
        for tag in 0..40 {
            log.append(batch(tag, 3, 20), 0).await.unwrap();
        }
        log.wait_acked(120).await.unwrap();
        // Offset 61 is inside the batch [60, 62]: the cut is at 60.
        assert_eq!(log.truncate_to(61, 0).await.unwrap(), 60);
        assert_eq!(log.log_end_offset(), 60);
        let info = log.append(batch(1000, 2, 20), 0).await.unwrap();
        assert_eq!(info.base_offset, 60);
        log.wait_acked(info.end_offset).await.unwrap();
        read_all(&log, 0, 1 << 20).await
    });
    env.disk.crash(7);
    let env2 = env.restart();
    env2.run(async {
        let log = env2.open(tiny()).await;
        assert_eq!(log.log_end_offset(), 62);
        assert_eq!(read_all(&log, 0, 1 << 20).await, expected);
    });
}

#[test]
fn retention_deletes_whole_old_segments() {
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let config = LogConfig { retention_bytes: 3000, ..tiny() };
        let log = env.open(config.clone()).await;
        for tag in 0..60 {
            let info = log.append(batch(tag, 2, 60), 0).await.unwrap();
            log.wait_acked(info.end_offset).await.unwrap();
        }
        let before = log.size_bytes();
        let deleted = log.apply_retention().await.unwrap();
        assert!(deleted > 0);
        assert!(log.size_bytes() < before && log.size_bytes() >= 3000 - 1024);
        let start = log.log_start_offset();
        assert!(start > 0);
        assert!(matches!(log.read(0, 100, i64::MAX).await, Err(LogError::OffsetOutOfRange { .. })));
        assert!(!read_all(&log, start, 1 << 20).await.is_empty());

        // By time: everything but the active segment is older than retention.ms.
        log.set_config(LogConfig { retention_ms: 1000, ..config }).unwrap();
        env.clock.advance(10_000);
        log.apply_retention().await.unwrap();
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.log_end_offset(), 120);
    });
}

/// A superseded prefix goes a whole segment at a time: never a segment
/// holding `offset` or later, never the active one; survives a reopen.
#[test]
fn segments_before_an_offset_are_deleted_whole() {
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let log = env.open(tiny()).await;
        for tag in 0..60 {
            let info = log.append(batch(tag, 2, 60), 0).await.unwrap();
            log.wait_acked(info.end_offset).await.unwrap();
        }
        let segments = log.segment_count();
        assert_eq!(log.delete_segments_before(0).await.unwrap(), 0);
        assert!(log.delete_segments_before(70).await.unwrap() > 0);
        let start = log.log_start_offset();
        assert!(start > 0 && start <= 70, "start {start}");
        assert!(!read_all(&log, 70, 1 << 20).await.is_empty(), "offset 70 is kept");
        let left = log.segment_count();
        assert!(left < segments);
        assert_eq!(log.delete_segments_before(i64::MAX).await.unwrap(), left - 1);
        assert_eq!(log.segment_count(), 1, "the active segment stays");
        assert_eq!(log.log_end_offset(), 120);
        log.close().await.unwrap();
        let log = env.open(tiny()).await;
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.log_end_offset(), 120);
    });
}

/// DeleteRecords: the start moves inside a segment, reads below it are out
/// of range, the segments below it go, and a crash right after keeps it.
#[test]
fn the_log_start_moves_durably_and_never_back() {
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let log = env.open(tiny()).await;
        for tag in 0..60 {
            let info = log.append(batch(tag, 2, 60), 0).await.unwrap();
            log.wait_acked(info.end_offset).await.unwrap();
        }
        let segments = log.segment_count();
        assert!(matches!(log.advance_log_start(121).await, Err(LogError::OffsetOutOfRange { .. })));
        assert_eq!(log.advance_log_start(71).await.unwrap(), 71);
        assert_eq!(log.log_start_offset(), 71);
        assert!(log.segment_count() < segments, "the segments below went");
        assert!(matches!(log.read(70, 1 << 20, 120).await, Err(LogError::OffsetOutOfRange { .. })));
        assert!(!read_all(&log, 71, 1 << 20).await.is_empty());
        assert_eq!(log.advance_log_start(10).await.unwrap(), 71, "never back");
        // Lookups by time skip what is gone, inside the straddling batch too
        // (batch `tag` holds offsets 2 tag and 2 tag + 1 at T0 + tag).
        assert_eq!(log.offset_for_timestamp(T0).await.unwrap(), Some((71, T0 + 35)));
        assert_eq!(log.offset_for_timestamp(T0 + 36).await.unwrap(), Some((72, T0 + 36)));
        assert_eq!(log.offset_of_max_timestamp().await.unwrap(), Some((T0 + 59, 118)));
    });
    env.disk.crash(3);
    let env2 = env.restart();
    env2.run(async {
        let log = env2.open(tiny()).await;
        assert_eq!(log.log_start_offset(), 71);
        assert_eq!(log.log_end_offset(), 120);
        assert!(matches!(log.read(70, 1 << 20, 120).await, Err(LogError::OffsetOutOfRange { .. })));
    });
}

#[test]
fn segment_ms_rolls_by_age() {
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let log = env.open(LogConfig { segment_ms: 1000, ..LogConfig::default() }).await;
        log.append(batch(1, 1, 10), 0).await.unwrap();
        log.append(batch(2, 1, 10), 0).await.unwrap();
        assert_eq!(log.segment_count(), 1);
        env.clock.advance(1000);
        log.append(batch(3, 1, 10), 0).await.unwrap();
        assert_eq!(log.segment_count(), 2);
    });
}

#[test]
fn interval_mode_acknowledges_on_write_and_syncs_on_request() {
    let env = Env::new(Flush::Interval { ms: 1000 });
    env.run(async {
        let log = env.open(tiny()).await;
        let info = log.append(batch(1, 2, 10), 0).await.unwrap();
        log.wait_acked(info.end_offset).await.unwrap();
        let (_, syncs_before) = env.disk.io_counts();
        env.flusher.request_sync();
        let info = log.append(batch(2, 2, 10), 0).await.unwrap();
        log.wait_acked(info.end_offset).await.unwrap();
        log.close().await.unwrap();
        assert!(env.disk.io_counts().1 > syncs_before);
    });
}

#[test]
fn offsets_by_timestamp_are_per_record_compressed_or_not() {
    for_both_read_paths(|config| {
        let env = Env::new(Flush::Fsync);
        env.run(async {
            let log = env.open(LogConfig { segment_bytes: 1 << 20, ..config.clone() }).await;
            // Two batches of five records: timestamps T0+0,10,..,40, then a
            // gzip batch of T0+50,60,90,70,80 (its largest in the middle).
            for (b, deltas) in [[0i64, 10, 20, 30, 40], [0, 10, 40, 20, 30]].iter().enumerate() {
                let values: Vec<Vec<u8>> = (0..5).map(|i| vec![i as u8; 10]).collect();
                let kv: Vec<_> = values.iter().map(|v| (None, Some(&v[..]))).collect();
                let mut batch = engine::batch::build_timed(&kv, T0 + b as i64 * 50, deltas);
                if b == 1 {
                    let mut z = flate2::write::GzEncoder::new(Vec::new(), Default::default());
                    std::io::Write::write_all(&mut z, &batch[engine::batch::HEADER_BYTES..])
                        .unwrap();
                    let records = z.finish().unwrap();
                    batch = engine::batch::with_compressed_records(&batch, 1, &records);
                }
                let info = log.append(bytes::BytesMut::from(&batch[..]), 0).await.unwrap();
                log.wait_acked(info.end_offset).await.unwrap();
            }
            assert_eq!(log.offset_for_timestamp(T0).await.unwrap(), Some((0, T0)));
            assert_eq!(log.offset_for_timestamp(T0 + 11).await.unwrap(), Some((2, T0 + 20)));
            assert_eq!(log.offset_for_timestamp(T0 + 40).await.unwrap(), Some((4, T0 + 40)));
            assert_eq!(log.offset_for_timestamp(T0 + 41).await.unwrap(), Some((5, T0 + 50)));
            assert_eq!(log.offset_for_timestamp(T0 + 61).await.unwrap(), Some((7, T0 + 90)));
            assert_eq!(log.offset_for_timestamp(T0 + 91).await.unwrap(), None);
            assert_eq!(log.max_timestamp(), Some((T0 + 90, 5)), "the batch");
            assert_eq!(log.offset_of_max_timestamp().await.unwrap(), Some((T0 + 90, 7)));
        });
    });
}

/// An idempotent producer's batch: `records` records from sequence `seq`.
#[test]
fn idempotent_producers_are_deduplicated_across_clean_and_unclean_restarts() {
    use engine::producers::SequenceError;
    use engine::AppendError;
    for clean in [true, false] {
        let env = Env::new(Flush::Fsync);
        env.run(async {
            let log = env.open(tiny()).await;
            for i in 0..10 {
                let info = log.append(producer_batch(i, 2, 42, 0, i as i32 * 2), 0).await.unwrap();
                assert_eq!(info.base_offset, i as i64 * 2);
                log.wait_acked(info.end_offset).await.unwrap();
            }
            // A retry of the last batch: its original offsets, nothing appended.
            let dup = log.append(producer_batch(9, 2, 42, 0, 18), 0).await.unwrap();
            assert_eq!((dup.base_offset, dup.end_offset), (18, 20));
            assert_eq!(log.log_end_offset(), 20);
            // A gap and an old epoch are refused.
            let gap = log.append(producer_batch(10, 1, 42, 0, 25), 0).await;
            assert!(matches!(gap, Err(AppendError::Sequence(SequenceError::OutOfOrder { .. }))));
            if clean {
                log.close().await.unwrap();
            }
        });
        if !clean {
            env.disk.crash(3);
        }
        let env2 = env.restart();
        env2.run(async {
            let log = env2.open(tiny()).await;
            assert_eq!(log.log_end_offset(), 20);
            // The state came back (from the snapshot, or by replaying).
            let dup = log.append(producer_batch(8, 2, 42, 0, 16), 0).await.unwrap();
            assert_eq!((dup.base_offset, dup.end_offset), (16, 18), "clean: {clean}");
            let next = log.append(producer_batch(10, 1, 42, 0, 20), 0).await.unwrap();
            assert_eq!(next.base_offset, 20);
            log.wait_acked(next.end_offset).await.unwrap();
            let bumped = log.append(producer_batch(11, 1, 42, 1, 0), 0).await.unwrap();
            log.wait_acked(bumped.end_offset).await.unwrap();
            let stale = log.append(producer_batch(12, 1, 42, 0, 21), 0).await;
            assert!(matches!(
                stale,
                Err(AppendError::Sequence(SequenceError::InvalidProducerEpoch { .. }))
            ));
            // Truncation forgets the batches it cuts: the cut batch can be
            // written again, with a new offset.
            assert_eq!(log.truncate_to(21, 0).await.unwrap(), 21);
            let again = log.append(producer_batch(11, 1, 42, 1, 0), 0).await.unwrap();
            assert_eq!(again.base_offset, 21);
        });
    }
}
