//! Fault injection on the memory disk: I/O errors, full disks, bit flips and
//! crashes. Acknowledged data is never lost or served corrupt; a failed write
//! or fdatasync takes the log offline for writes, never retried silently.

mod common;

use std::path::PathBuf;

use common::*;
use engine::disk::Fault;
use engine::error::StorageFailure;
use engine::testkit::{seed, Rng};
use engine::{AppendError, Flush, LogConfig, LogError};
use futures_util::future::join_all;

fn fill(env: &Env, config: LogConfig, batches: u64) -> Vec<u8> {
    env.run(async {
        let log = env.open(config).await;
        for tag in 0..batches {
            let info = log.append(batch(tag, 2, 50), 0).await.unwrap();
            log.wait_acked(info.end_offset).await.unwrap();
        }
        read_all(&log, 0, 1 << 20).await
    })
}

#[test]
fn a_failed_write_takes_the_log_offline_and_keeps_what_was_acknowledged() {
    // Segments large enough that no roll (and no segment closing, which
    // writes and syncs too) meets the fault first.
    let config = LogConfig { segment_bytes: 1 << 20, ..tiny() };
    for fault in [Fault::WriteError, Fault::SyncError, Fault::WriteNoSpace] {
        let env = Env::new(Flush::Fsync);
        let acked = fill(&env, config.clone(), 10);
        env.run(async {
            let log = env.open(config.clone()).await;
            env.disk.inject(fault);
            let info = log.append(batch(100, 2, 50), 0).await.unwrap();
            let err =
                log.wait_acked(info.end_offset).await.expect_err(&format!("{fault:?} went unseen"));
            let expected = match fault {
                Fault::WriteNoSpace => StorageFailure::NoSpace,
                _ => log.failure().unwrap(),
            };
            assert_eq!(err, AppendError::Storage(expected.clone()), "{fault:?}");
            assert!(matches!(expected, StorageFailure::NoSpace) == (fault == Fault::WriteNoSpace));
            // No retry: later appends are refused with the same failure.
            assert_eq!(
                log.append(batch(101, 1, 5), 0).await.unwrap_err(),
                AppendError::Storage(expected)
            );
            // Reads of acknowledged data keep working.
            assert_eq!(read_all(&log, 0, 1 << 20).await, acked, "{fault:?}");
        });
        // After a restart everything acknowledged is there.
        env.disk.crash(3);
        let env2 = env.restart();
        env2.run(async {
            let log = env2.open(config.clone()).await;
            assert!(log.log_end_offset() >= 20);
            assert_eq!(read_all(&log, 0, 1 << 20).await[..acked.len()], acked[..]);
        });
    }
}

#[test]
fn a_full_disk_at_reservation_refuses_the_append_without_harm() {
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let log = env.open(LogConfig::default()).await;
        env.disk.inject(Fault::ReserveNoSpace);
        assert_eq!(log.append(batch(1, 2, 50), 0).await.unwrap_err(), AppendError::NoSpace);
        assert_eq!(log.log_end_offset(), 0, "no offset assigned");
        assert!(log.failure().is_none(), "the log stays writable");
        let info = log.append(batch(2, 2, 50), 0).await.unwrap();
        log.wait_acked(info.end_offset).await.unwrap();
        assert_eq!(info.base_offset, 0);
    });
    // A disk with no room for the next append's bytes: same answer. (Set
    // after the open: recovery cuts the zeros written ahead of the data.)
    let env2 = env.restart();
    env2.run(async {
        let log = env2.open(LogConfig::default()).await;
        let used: u64 = env2.disk.paths().iter().filter_map(|p| env2.disk.file_len(p)).sum();
        env2.disk.set_capacity(Some(used));
        // Larger than the block the file already has.
        assert_eq!(log.append(batch(3, 100, 100), 0).await.unwrap_err(), AppendError::NoSpace);
        assert!(log.failure().is_none());
        assert_eq!(read_all(&log, 0, 1 << 20).await.len(), batch(2, 2, 50).len());
    });
}

/// Zeros written ahead of the data (decision 52) are an optimisation: a
/// full file system refuses them and the data still goes, acknowledged; an
/// I/O error writing them is the disk's failure, like any write's.
#[test]
fn zeros_ahead_refused_for_space_cost_nothing_and_their_io_errors_fail_the_log() {
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let log = env.open(LogConfig::default()).await;
        env.disk.inject(Fault::ZerosNoSpace);
        let info = log.append(batch(1, 2, 50), 0).await.unwrap();
        log.wait_acked(info.end_offset).await.unwrap();
        assert!(log.failure().is_none(), "the log stays writable");
        assert_eq!(read_all(&log, 0, 1 << 20).await.len(), batch(1, 2, 50).len());
    });
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let log = env.open(LogConfig::default()).await;
        env.disk.inject(Fault::ZerosError);
        let info = log.append(batch(1, 2, 50), 0).await.unwrap();
        assert!(matches!(log.wait_acked(info.end_offset).await, Err(AppendError::Storage(_))));
        assert!(log.failure().is_some());
    });
}

#[test]
fn a_flipped_bit_in_a_closed_segment_is_never_served() {
    let env = Env::new(Flush::Fsync);
    fill(&env, tiny(), 30);
    env.run(async {
        let log = env.open(tiny()).await;
        log.close().await.unwrap();
    });
    let first: PathBuf = dir().join("00000000000000000000.log");
    env.disk.flip_bit(&first, 100, 2);
    let env2 = env.restart();
    env2.run(async {
        let log = env2.open(LogConfig { cache_bytes_max: 0, ..tiny() }).await;
        let r = log.read(0, 1 << 20, i64::MAX).await.unwrap();
        let err = log.read_bytes(&r.chunks[0]).await.unwrap_err();
        assert!(matches!(err, LogError::Corrupt { segment_base: 0, .. }), "{err}");
    });
}

#[test]
fn a_flipped_bit_in_the_active_segment_ends_the_log_there_after_a_crash() {
    let env = Env::new(Flush::Fsync);
    let config = LogConfig { segment_bytes: 1 << 20, ..tiny() };
    let all = fill(&env, config.clone(), 20);
    // Batches are the same size: flip a bit inside the 11th.
    let batch_len = all.len() / 20;
    env.disk.flip_bit(&dir().join("00000000000000000000.log"), (batch_len * 10 + 70) as u64, 0);
    let env2 = env.restart();
    env2.run(async {
        let log = env2.open(config).await;
        let report = log.recovery_report();
        assert!(!report.clean_shutdown);
        assert!(report.truncated_bytes > 0, "{report:?}");
        assert_eq!(log.log_end_offset(), 20, "ten batches of two records remain");
        assert_eq!(read_all(&log, 0, 1 << 20).await, all[..batch_len * 10]);
    });
}

#[test]
fn acknowledged_appends_survive_crashes_with_torn_and_lost_writes() {
    let seed = seed("acknowledged_appends_survive_crashes_with_torn_and_lost_writes");
    let mut rng = Rng::new(seed);
    for round in 0..30 {
        let env = Env::new(Flush::Fsync);
        let config = LogConfig { segment_bytes: 2048 + rng.below(8) * 1024, ..tiny() };
        // Two logs on one flusher: group commit across partitions.
        let appends = 5 + rng.below(40);
        let (acked, all) = env.run(async {
            let a = env.open_at(&dir(), config.clone()).await;
            let b = env.open_at(&PathBuf::from("/data/topic-1"), config.clone()).await;
            let mut waits = Vec::new();
            let mut acked_goal = [0i64; 2];
            for tag in 0..appends {
                let log = if tag % 2 == 0 { &a } else { &b };
                let info = log.append(batch(tag, 1 + tag as usize % 3, 40), 0).await.unwrap();
                if rng.chance(60) {
                    waits.push((log.clone(), info.end_offset));
                }
                acked_goal[(tag % 2) as usize] = info.end_offset;
            }
            join_all(waits.iter().map(|(log, end)| log.wait_acked(*end))).await;
            let acked = [a.acked_end_offset(), b.acked_end_offset()];
            let all = [read_all(&a, 0, 1 << 20).await, read_all(&b, 0, 1 << 20).await];
            (acked, all)
        });
        env.disk.crash(rng.next_u64());
        let env2 = env.restart();
        env2.run(async {
            for (i, d) in [dir(), PathBuf::from("/data/topic-1")].iter().enumerate() {
                let log = env2.open_at(d, config.clone()).await;
                let ctx = format!("seed {seed} round {round} log {i}");
                assert!(log.log_end_offset() >= acked[i], "{ctx}: acknowledged data lost");
                let got = read_all(&log, 0, 1 << 20).await;
                assert!(
                    all[i].starts_with(&got) || got.starts_with(&all[i]),
                    "{ctx}: bytes differ"
                );
                assert!(got.len() <= all[i].len() || acked[i] == log.log_end_offset(), "{ctx}");
            }
        });
    }
}

#[test]
fn one_fdatasync_serves_many_concurrent_appends() {
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let a = env.open_at(&dir(), LogConfig::default()).await;
        let b = env.open_at(&PathBuf::from("/data/topic-1"), LogConfig::default()).await;
        let (_, syncs_before) = env.disk.io_counts();
        let appends = (0..200u64).map(|tag| {
            let log = if tag % 2 == 0 { a.clone() } else { b.clone() };
            async move {
                let info = log.append(batch(tag, 1, 20), 0).await.unwrap();
                log.wait_acked(info.end_offset).await.unwrap();
            }
        });
        join_all(appends).await;
        let syncs = env.disk.io_counts().1 - syncs_before;
        assert!(syncs <= 20, "{syncs} fdatasyncs for 200 appends: group commit is not grouping");
        assert_eq!(a.log_end_offset() + b.log_end_offset(), 200);
    });
}

/// While fdatasyncs are slow, the flusher's task keeps waking (every append,
/// every write landing). A pending sync must not be polled again on each of
/// those wakes: glommio keeps a waker clone per poll of a pending DMA I/O,
/// counted in 16 bits, and a shard with 30 partitions syncing through ~1,100
/// wakes aborted (found by `bench/stop.sh`, 9,000 partitions per topic).
#[test]
fn a_slow_fdatasync_is_not_polled_on_every_wake_of_the_flusher() {
    let env = Env::new(Flush::Fsync);
    let config = LogConfig { segment_bytes: 1 << 20, ..tiny() };
    env.run(async {
        let mut logs = Vec::new();
        for i in 0..20 {
            logs.push(env.open_at(&PathBuf::from(format!("/data/wide-{i}")), config.clone()).await);
        }
        env.disk.hold_syncs();
        let mut ends = Vec::new();
        for (i, log) in logs.iter().enumerate() {
            ends.push(log.append(batch(i as u64, 1, 10), 0).await.unwrap().end_offset);
        }
        // 2,000 appends, each written by the flusher while the syncs wait.
        for tag in 0..2_000u64 {
            let log = &logs[tag as usize % logs.len()];
            log.append(batch(100 + tag, 1, 10), 0).await.unwrap();
            futures_lite::future::yield_now().await;
        }
        let polls = env.disk.held_sync_polls();
        env.disk.release_syncs();
        for (log, end) in logs.iter().zip(ends) {
            log.wait_acked(end).await.unwrap();
        }
        assert!(polls <= 4 * logs.len() as u64, "held fdatasyncs polled {polls} times");
        assert_eq!(logs.iter().map(|l| l.log_end_offset()).sum::<i64>(), 2_020);
    });
}

/// A stop closes many logs in steps: each closes unsynced, the file system
/// is synced, each is marked clean, the file system is synced again. A
/// crash after any step loses nothing acknowledged, and a log is opened as
/// cleanly shut down only after the last step.
#[test]
fn a_crash_between_the_steps_of_a_stop_loses_nothing() {
    let config = tiny();
    // Steps done before the crash: 1 closed, 2 synced, 3 marked, 4 synced.
    for steps in 1..=4 {
        for crash_seed in 1..=5u64 {
            let env = Env::new(Flush::Fsync);
            let dirs: Vec<PathBuf> =
                (0..3).map(|i| PathBuf::from(format!("/data/stop-{i}"))).collect();
            let expected = env.run(async {
                let mut all = Vec::new();
                let mut logs = Vec::new();
                for (i, d) in dirs.iter().enumerate() {
                    let log = env.open_at(d, config.clone()).await;
                    for tag in 0..25 {
                        let info = log.append(batch(100 * i as u64 + tag, 2, 40), 0).await.unwrap();
                        log.wait_acked(info.end_offset).await.unwrap();
                    }
                    all.push(read_all(&log, 0, 1 << 20).await);
                    logs.push(log);
                }
                for log in &logs {
                    log.close_unsynced().await.unwrap();
                }
                if steps >= 2 {
                    logs[0].sync_filesystem().await.unwrap();
                }
                if steps >= 3 {
                    for log in &logs {
                        log.mark_clean().await.unwrap();
                    }
                }
                if steps >= 4 {
                    logs[0].sync_filesystem().await.unwrap();
                }
                all
            });
            env.disk.crash(crash_seed);
            let env2 = env.restart();
            env2.run(async {
                for (d, expected) in dirs.iter().zip(&expected) {
                    let log = env2.open_at(d, config.clone()).await;
                    let clean = log.recovery_report().clean_shutdown;
                    assert_eq!(clean, steps >= 3, "steps {steps}, seed {crash_seed}");
                    assert_eq!(log.log_end_offset(), 50, "steps {steps}, seed {crash_seed}");
                    assert_eq!(&read_all(&log, 0, 1 << 20).await, expected);
                }
            });
        }
    }
}

/// A stale or damaged offset index must never cut data: the scan from its
/// last entry fails, and the segment is scanned whole instead (before, the
/// segment was truncated at the entry and every later segment dropped).
#[test]
fn a_wrong_index_entry_is_rebuilt_never_trusted_to_cut_data() {
    let env = Env::new(Flush::Fsync);
    let all = fill(&env, tiny(), 30);
    env.run(async {
        let log = env.open(tiny()).await;
        assert!(log.segment_count() > 2, "closed segments with indexes");
        log.close().await.unwrap();
    });
    let index: PathBuf = dir().join("00000000000000000000.index");
    let len = env.disk.file_len(&index).expect("the first segment has an index");
    assert!(len >= 8, "at least one entry");
    // The last entry's position, one byte off.
    env.disk.flip_bit(&index, len - 1, 0);
    let env2 = env.restart();
    env2.run(async {
        let log = env2.open(tiny()).await;
        let report = log.recovery_report();
        assert!(report.clean_shutdown);
        assert_eq!(report.truncated_bytes, 0, "{report:?}");
        assert!(report.rebuilt_indexes >= 1, "{report:?}");
        assert_eq!(read_all(&log, 0, 1 << 20).await, all);
    });
}
