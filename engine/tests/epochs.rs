//! Leader epochs in the log (KIP-101): every batch's epoch is folded into
//! the log's epoch cache, which answers OffsetForLeaderEpoch, follows
//! truncation and retention, and comes back the same after a clean close,
//! a crash, or a damaged checkpoint.

mod common;

use common::*;
use engine::disk::Disk;
use engine::epochs::{EpochEntry, CHECKPOINT_FILE};
use engine::{Flush, PartitionLog, Writer};

fn entries(pairs: &[(i32, i64)]) -> Vec<EpochEntry> {
    pairs.iter().map(|&(epoch, start_offset)| EpochEntry { epoch, start_offset }).collect()
}

/// Five batches of three records per epoch, in order.
async fn append_epochs(log: &PartitionLog<engine::disk::MemDisk>, epochs: &[i32]) {
    for (i, &epoch) in epochs.iter().enumerate() {
        for k in 0..5 {
            let info = log.append(batch(i as u64 * 10 + k, 3, 40), epoch).await.unwrap();
            log.wait_acked(info.end_offset).await.unwrap();
        }
    }
}

#[test]
fn epochs_answer_offset_for_leader_epoch_across_restarts_and_truncation() {
    for clean in [true, false] {
        let env = Env::new(Flush::Fsync);
        env.run(async {
            let log = env.open(tiny()).await;
            append_epochs(&log, &[0, 2, 5]).await;
            assert!(log.segment_count() > 2, "the epochs span segments");
            assert_eq!(log.epochs(), entries(&[(0, 0), (2, 15), (5, 30)]));
            assert_eq!(log.end_offset_for_epoch(5), (5, 45));
            assert_eq!(log.end_offset_for_epoch(2), (2, 30));
            assert_eq!(log.end_offset_for_epoch(1), (0, 15));
            assert_eq!(log.end_offset_for_epoch(6), (-1, -1));
            if clean {
                log.close().await.unwrap();
            }
        });
        if !clean {
            env.disk.crash(3);
        }
        let env = env.restart();
        env.run(async {
            let log = env.open(tiny()).await;
            assert_eq!(log.epochs(), entries(&[(0, 0), (2, 15), (5, 30)]), "clean: {clean}");
            // A diverged suffix goes: the cut lands at the batch boundary 24,
            // inside epoch 2, and a new leader's epoch 7 follows it.
            assert_eq!(log.truncate_to(25, 0).await.unwrap(), 24);
            assert_eq!(log.epochs(), entries(&[(0, 0), (2, 15)]));
            append_epochs(&log, &[7]).await;
            append_epochs(&log, &[7]).await;
            assert_eq!(log.epochs(), entries(&[(0, 0), (2, 15), (7, 24)]));
            assert_eq!(log.end_offset_for_epoch(5), (2, 24));
        });
        // A crash after the truncation: the checkpoint of before it (which
        // named epoch 5 at 30, below the new log end) must not come back.
        env.disk.crash(5);
        let env = env.restart();
        env.run(async {
            let log = env.open(tiny()).await;
            assert_eq!(log.log_end_offset(), 54);
            assert_eq!(log.epochs(), entries(&[(0, 0), (2, 15), (7, 24)]), "clean: {clean}");
            // Retention: the epoch holding the new log start starts there.
            log.delete_segments_before(20).await.unwrap();
            let start = log.log_start_offset();
            assert!(start > 0 && start <= 20, "{start}");
            assert_eq!(log.epochs()[0].start_offset, start);
            log.close().await.unwrap();
        });
    }
}

#[test]
fn a_damaged_checkpoint_is_rebuilt_from_the_batches() {
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let log = env.open(tiny()).await;
        append_epochs(&log, &[1, 4]).await;
        log.close().await.unwrap();
        let path = dir().join(CHECKPOINT_FILE);
        env.disk.replace_file(&path, b"1\n30\n1\n9 0\ncrc 00000000\n").await.unwrap();
        let log = env.open(tiny()).await;
        assert_eq!(log.epochs(), entries(&[(1, 0), (4, 15)]));
    });
}

/// Recovery (or a truncation) cut the log below what the checkpoint
/// described: the checkpoint is rewritten before new batches arrive, so a
/// crash after them does not bring the cut epochs back.
#[test]
fn a_checkpoint_beyond_the_log_end_is_rewritten_before_new_batches() {
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let log = env.open(tiny()).await;
        append_epochs(&log, &[1, 3]).await;
        log.close().await.unwrap();
        // As if the log had held an epoch 4 from offset 35 and lost it.
        let path = dir().join(CHECKPOINT_FILE);
        let mut claimed = engine::epochs::LeaderEpochCache::default();
        for (epoch, offset) in [(1, 0), (3, 15), (4, 35)] {
            claimed.assign(epoch, offset);
        }
        env.disk.replace_file(&path, &claimed.encode(45)).await.unwrap();
        env.disk.sync_filesystem(&dir()).await.unwrap();
        let log = env.open(tiny()).await;
        assert_eq!(log.epochs(), entries(&[(1, 0), (3, 15)]));
        append_epochs(&log, &[5]).await;
        assert_eq!(log.log_end_offset(), 45);
    });
    env.disk.crash(9);
    let env = env.restart();
    env.run(async {
        let log = env.open(tiny()).await;
        assert_eq!(log.epochs(), entries(&[(1, 0), (3, 15), (5, 30)]));
    });
}

/// A new leader's epoch starts at its log end before any batch of it
/// (Kafka's `makeLeader`), so that a follower holding an epoch this log
/// never saw (a leader elected and deposed while this replica was away)
/// learns where that epoch ends here. Deposed before appending, a replica
/// drops that entry when its next leader's answer truncates it to its own
/// end, or every fetch would diverge again; the drop survives a restart.
#[test]
fn a_leader_epoch_starts_at_the_log_end_and_goes_unused_on_truncation() {
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let log = env.open(tiny()).await;
        append_epochs(&log, &[0]).await;
        log.set_replicated(true);
        log.set_writer(Writer::Leader(2));
        assert_eq!(log.epochs(), entries(&[(0, 0), (2, 15)]));
        assert_eq!(log.end_offset_for_epoch(1), (0, 15), "epoch 1 ends where 2 starts");
        assert_eq!(log.end_offset_for_epoch(2), (2, 15));
        log.set_writer(Writer::Leader(2));
        let info = log.append(batch(90, 3, 40), 2).await.unwrap();
        log.wait_acked(info.end_offset).await.unwrap();
        assert_eq!(log.epochs(), entries(&[(0, 0), (2, 15)]), "its batches keep the entry");

        // Leader at 3 without appending, then a follower whose leader
        // (at 4, without a batch of 3) answers that epoch 2 ends at 18.
        log.set_writer(Writer::Leader(3));
        assert_eq!(log.latest_epoch().map(|e| e.epoch), Some(3));
        log.set_writer(Writer::Follower(4));
        assert_eq!(log.truncate_to(18, 4).await.unwrap(), 18, "nothing to cut");
        assert_eq!(log.epochs(), entries(&[(0, 0), (2, 15)]));
        log.close().await.unwrap();
    });
    let env = env.restart();
    env.run(async {
        let log = env.open(tiny()).await;
        assert_eq!(log.epochs(), entries(&[(0, 0), (2, 15)]));
        assert_eq!(log.log_end_offset(), 18);
    });
}

/// A replica elected while its log is being cut: either the cut is
/// abandoned (the role changed before bytes went) or it completes; either
/// way the new leader's epoch starts at its log end, and the log says it
/// is being cut for exactly as long as it is.
#[test]
fn a_replica_elected_during_a_truncation_starts_its_epoch_at_its_end() {
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let log = env.open(tiny()).await;
        append_epochs(&log, &[1, 3]).await;
        log.set_replicated(true);
        log.set_writer(Writer::Follower(4));
        assert!(!log.is_truncating());
        let mut cut = Box::pin(log.truncate_to(20, 4));
        assert!(futures_lite::future::poll_once(&mut cut).await.is_none(), "waits for its sync");
        assert!(log.is_truncating());
        log.set_writer(Writer::Leader(5));
        let outcome = cut.await;
        assert!(!log.is_truncating());
        let end = log.log_end_offset();
        match outcome {
            Ok(new_end) => assert_eq!((new_end, end), (18, 18)),
            Err(e) => assert!(matches!(e, engine::LogError::Fenced(_)) && end == 30, "{e:?}"),
        }
        assert_eq!(log.latest_epoch().map(|e| (e.epoch, e.start_offset)), Some((5, end)));
        assert_eq!(log.end_offset_for_epoch(4), (3, end), "where a follower's epoch 4 ends");
    });
}

/// A leader's epoch that starts at the log end reaches the checkpoint
/// when the log closes before its first batch; the next open does not
/// take it for a batch's, so the batches of an older epoch that follow
/// (fetched from the next leader) keep theirs, across a crash too.
#[test]
fn an_epoch_at_the_checkpoints_end_describes_no_batch() {
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let log = env.open(tiny()).await;
        append_epochs(&log, &[1, 3]).await;
        log.set_writer(Writer::Leader(5));
        log.close().await.unwrap();
        let log = env.open(tiny()).await;
        assert_eq!(log.epochs(), entries(&[(1, 0), (3, 15)]));
        append_epochs(&log, &[4]).await;
    });
    env.disk.crash(5);
    let env = env.restart();
    env.run(async {
        let log = env.open(tiny()).await;
        assert_eq!(log.epochs(), entries(&[(1, 0), (3, 15), (4, 30)]));
    });
}
