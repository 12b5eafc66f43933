//! A replicated log: the high watermark moves only when told and never
//! past the durable end; a follower's appends keep the leader's offsets,
//! epochs and producers' state, and refuse batches out of order.

mod common;

use bytes::BytesMut;
use common::*;
use engine::batch::{stamp, validate_one};
use engine::disk::{Disk, MemDisk};
use engine::{AppendError, Flush, LogError, PartitionLog, Writer};

/// The batches of `bytes`, each as its own bytes.
fn split(bytes: &[u8]) -> Vec<BytesMut> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let h = validate_one(&bytes[at..]).unwrap();
        out.push(BytesMut::from(&bytes[at..at + h.size]));
        at += h.size;
    }
    out
}

#[test]
fn the_high_watermark_of_a_replicated_log_moves_only_when_told() {
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let log = env.open(tiny()).await;
        let info = log.append(batch(1, 3, 20), 0).await.unwrap();
        log.wait_acked(info.end_offset).await.unwrap();
        assert_eq!(log.high_watermark(), 3, "one replica: the durable end");

        log.set_replicated(true);
        assert_eq!(log.high_watermark(), 0, "replicated: nothing is known to be on the others");
        assert_eq!(log.set_high_watermark(3), 3);
        let info = log.append(batch(2, 4, 20), 0).await.unwrap();
        log.wait_acked(info.end_offset).await.unwrap();
        assert_eq!((log.acked_end_offset(), log.high_watermark()), (7, 3));
        let hw = log.high_watermark();
        let visible = log.read(0, 1 << 20, hw).await.unwrap();
        let bytes = log.read_bytes(&visible.chunks[0]).await.unwrap();
        assert_eq!(split(&bytes).len(), 1, "consumers read below the high watermark only");

        assert_eq!(log.set_high_watermark(100), 7, "never past the durable end");
        assert_eq!(log.set_high_watermark(5), 7, "never back, though the target falls");
        let info = log.append(batch(5, 1, 20), 0).await.unwrap();
        log.wait_acked(info.end_offset).await.unwrap();
        assert_eq!(log.high_watermark(), 7, "held at the target");
        assert_eq!(log.set_high_watermark(100), 8);
        // The ISR holds more than this replica has made durable: the high
        // watermark follows the durable end up to it.
        let waiting = log.wait_replicated(10, 0);
        let info = log.append(batch(3, 2, 20), 0).await.unwrap();
        log.wait_acked(info.end_offset).await.unwrap();
        waiting.await.unwrap();
        assert_eq!(log.high_watermark(), 10);

        assert_eq!(log.truncate_to(7, 0).await.unwrap(), 7);
        assert_eq!(log.high_watermark(), 7, "a truncation lowers it");
        assert_eq!(log.set_high_watermark(7), 7, "and what it aims at");
        assert!(matches!(log.wait_replicated(9, 0).await, Err(AppendError::Closed)));
        log.set_replicated(false);
        let info = log.append(batch(4, 1, 20), 0).await.unwrap();
        log.wait_acked(info.end_offset).await.unwrap();
        assert_eq!(log.high_watermark(), 8, "unreplicated again: the durable end");
    });
}

#[test]
fn a_follower_stores_the_leaders_batches_as_they_are() {
    let env = Env::new(Flush::Fsync);
    let leader_dir = dir().join("leader");
    let follower_dir = dir().join("follower");
    let expected = env.run(async {
        let leader = env.open_at(&leader_dir, tiny()).await;
        for (tag, epoch) in [(1, 0), (2, 0), (3, 4), (4, 4), (5, 6)] {
            let info = leader.append(batch(tag, 3, 50), epoch).await.unwrap();
            leader.wait_acked(info.end_offset).await.unwrap();
        }
        let idempotent = producer_batch(9, 2, 77, 0, 0);
        let first = leader.append(idempotent.clone(), 6).await.unwrap();
        leader.wait_acked(first.end_offset).await.unwrap();
        let all = read_all(&leader, 0, 1 << 20).await;

        let follower = env.open_at(&follower_dir, tiny()).await;
        let batches = split(&all);
        // Fetched in two responses, as a replica fetcher would.
        let (a, b) = batches.split_at(2);
        for part in [a, b] {
            let bytes: BytesMut = part.iter().flat_map(|b| b.iter().copied()).collect();
            let info = follower.append_replicated(bytes, 0).await.unwrap();
            follower.wait_acked(info.end_offset).await.unwrap();
        }
        assert_eq!(read_all(&follower, 0, 1 << 20).await, all, "byte-identical");
        assert_eq!(follower.log_end_offset(), leader.log_end_offset());
        assert_eq!(follower.epochs(), leader.epochs());
        // Batches before the log end, or out of order, are refused whole.
        assert!(follower.append_replicated(batches[3].clone(), 0).await.is_err());
        let mut late = batch(20, 2, 10);
        stamp(&mut late, 100, 7);
        let mut early = batch(21, 2, 10);
        stamp(&mut early, 50, 7);
        let both: BytesMut = late.iter().chain(early.iter()).copied().collect();
        assert!(follower.append_replicated(both, 0).await.is_err());
        assert!(follower.append_replicated(BytesMut::new(), 0).await.is_err());
        assert_eq!(follower.log_end_offset(), leader.log_end_offset());
        // A gap (the leader's compaction removed offsets) is kept.
        let info = follower.append_replicated(late, 0).await.unwrap();
        assert_eq!((info.base_offset, info.end_offset), (100, 102));
        follower.wait_acked(info.end_offset).await.unwrap();
        assert_eq!(follower.end_offset_for_epoch(6), (6, 100));
        // Promoted, the follower knows the idempotent producer's retry.
        let retry = follower.append(idempotent, 8).await.unwrap();
        assert_eq!((retry.base_offset, retry.end_offset), (first.base_offset, first.end_offset));
        read_all(&follower, 0, 1 << 20).await
    });
    env.disk.crash(11);
    let env = env.restart();
    env.run(async {
        let follower: PartitionLog<MemDisk> = env.open_at(&follower_dir, tiny()).await;
        assert_eq!(read_all(&follower, 0, 1 << 20).await, expected);
        assert_eq!(follower.log_end_offset(), 102);
        assert_eq!(follower.epochs().last().map(|e| (e.epoch, e.start_offset)), Some((7, 100)));
    });
}

#[test]
fn only_the_writer_of_the_moment_appends() {
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let log = env.open(tiny()).await;
        // No role set: the metadata and Raft logs append as they like.
        let info = log.append(batch(1, 2, 20), 0).await.unwrap();
        log.wait_acked(info.end_offset).await.unwrap();
        let mut fetched = batch(2, 2, 20);
        stamp(&mut fetched, 2, 0);
        log.append_replicated(fetched.clone(), 0).await.unwrap();

        log.set_writer(Writer::Leader(3));
        log.append(batch(3, 1, 20), 3).await.unwrap();
        let mut more = batch(4, 1, 20);
        stamp(&mut more, log.log_end_offset(), 3);
        for refused in [
            log.append(batch(5, 1, 20), 2).await,
            log.append(batch(5, 1, 20), 4).await,
            log.append_replicated(more.clone(), 0).await,
        ] {
            assert!(matches!(refused, Err(AppendError::Fenced(_))), "{refused:?}");
        }

        // Deposed: its producers' appends are refused, the new leader's
        // batches go in, and only those of the leader at its epoch.
        log.set_writer(Writer::Follower(4));
        let end = log.log_end_offset();
        assert!(matches!(log.append(batch(6, 1, 20), 3).await, Err(AppendError::Fenced(_))));
        let stale = log.append_replicated(more.clone(), 3).await;
        assert!(matches!(stale, Err(AppendError::Fenced(_))), "{stale:?}");
        assert_eq!(log.log_end_offset(), end, "nothing appended");
        let info = log.append_replicated(more, 4).await.unwrap();
        assert_eq!(info.base_offset, end);
    });
}

/// A leader's wait for its high watermark ends as `Fenced` the moment it
/// is deposed: what the high watermark covers afterwards may be another
/// leader's batches at the same offsets.
#[test]
fn a_deposed_leader_stops_waiting_for_its_high_watermark() {
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let log = env.open(tiny()).await;
        log.set_replicated(true);
        log.set_writer(Writer::Leader(1));
        let info = log.append(batch(1, 4, 20), 1).await.unwrap();
        log.wait_acked(info.end_offset).await.unwrap();
        let mut waiting = Box::pin(log.wait_replicated(info.end_offset, 1));
        assert!(futures_lite::future::poll_once(&mut waiting).await.is_none(), "the ISR lacks it");
        log.set_writer(Writer::Follower(2));
        assert_eq!(log.set_high_watermark(info.end_offset), info.end_offset);
        let deposed = waiting.await;
        assert!(matches!(deposed, Err(AppendError::Fenced(_))), "{deposed:?}");
        log.set_writer(Writer::Leader(3));
        let stale = log.wait_replicated(info.end_offset, 1).await;
        assert!(matches!(stale, Err(AppendError::Fenced(_))), "another epoch: {stale:?}");
        log.wait_replicated(info.end_offset, 3).await.unwrap();
    });
}

/// A leader's log is never truncated, nor a follower's by an answer of a
/// leader it no longer follows: such an answer arrived after the replica
/// was elected, or moved on, and is stale.
#[test]
fn a_leaders_log_refuses_truncation() {
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let log = env.open(tiny()).await;
        let info = log.append(batch(1, 4, 20), 1).await.unwrap();
        log.wait_acked(info.end_offset).await.unwrap();
        let info = log.append(batch(2, 4, 20), 1).await.unwrap();
        log.wait_acked(info.end_offset).await.unwrap();
        log.set_writer(Writer::Leader(2));
        for (to, following) in [(4, 1), (8, 2)] {
            let refused = log.truncate_to(to, following).await;
            assert!(matches!(refused, Err(LogError::Fenced(_))), "{refused:?}");
        }
        assert_eq!((log.log_end_offset(), log.latest_epoch().map(|e| e.epoch)), (8, Some(2)));
        log.set_writer(Writer::Follower(3));
        let stale = log.truncate_to(4, 2).await;
        assert!(matches!(stale, Err(LogError::Fenced(_))), "{stale:?}");
        assert_eq!(log.truncate_to(4, 3).await.unwrap(), 4);
    });
}

#[test]
fn a_replicated_log_starts_from_its_checkpointed_high_watermark() {
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let log = env.open(tiny()).await;
        let info = log.append(batch(1, 10, 20), 0).await.unwrap();
        log.wait_acked(info.end_offset).await.unwrap();
        assert!(!log.checkpoint_high_watermark().await.unwrap(), "not replicated: nothing to keep");
        log.set_replicated(true);
        assert_eq!(log.set_high_watermark(6), 6);
        assert!(log.checkpoint_high_watermark().await.unwrap());
        assert!(!log.checkpoint_high_watermark().await.unwrap(), "unchanged: not written again");
        log.close().await.unwrap();

        // Reopened: the high watermark starts at the checkpoint.
        let log = env.open(tiny()).await;
        log.set_replicated(true);
        assert_eq!(log.high_watermark(), 6);
        // A truncation lowers it, and the next checkpoint says so.
        assert_eq!(log.truncate_to(3, 0).await.unwrap(), 0, "one batch of ten");
        assert_eq!(log.high_watermark(), 0);
        assert!(log.checkpoint_high_watermark().await.unwrap());
        log.close().await.unwrap();
        let log = env.open(tiny()).await;
        log.set_replicated(true);
        assert_eq!(log.high_watermark(), 0);
        log.close().await.unwrap();

        // A damaged checkpoint is ignored: the log start, as without one.
        let path = dir().join(engine::log::HIGH_WATERMARK_FILE);
        let mut damaged = engine::log::OffsetCheckpoint(9).encode();
        damaged[3] ^= 1;
        env.disk.replace_file(&path, &damaged).await.unwrap();
        let log = env.open(tiny()).await;
        let info = log.append(batch(2, 5, 20), 0).await.unwrap();
        log.wait_acked(info.end_offset).await.unwrap();
        log.set_replicated(true);
        assert_eq!(log.high_watermark(), 0);
    });
}
