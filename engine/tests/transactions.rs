//! Transactions in the log: markers take offsets and end their producer's
//! transaction, the last stable offset holds at the first open one, and the
//! aborted-transactions index answers what a read_committed reader needs,
//! across segment rolls, a clean restart, a crash and a truncation.

mod common;

use std::collections::BTreeMap;

use bytes::BytesMut;
use common::*;
use engine::disk::MemDisk;
use engine::producers::SequenceError;
use engine::testkit::{seed, Rng};
use engine::txn::{AbortedTxn, Marker};
use engine::{AppendError, Flush, LogConfig, PartitionLog};

/// A transactional batch of `pid` at `epoch`, first sequence `seq`.
fn txn_batch(tag: u64, records: usize, pid: i64, epoch: i16, seq: i32) -> BytesMut {
    let mut b = producer_batch(tag, records, pid, epoch, seq);
    b[21..23].copy_from_slice(&0x10i16.to_be_bytes());
    engine::batch::set_crc(&mut b);
    b
}

fn marker(commit: bool) -> Marker {
    Marker { commit, coordinator_epoch: 0 }
}

/// (producer, first offset, marker offset) of each aborted transaction.
type Aborts = Vec<(i64, i64, i64)>;

async fn aborted(log: &PartitionLog<MemDisk>, from: i64, upper: i64) -> Vec<AbortedTxn> {
    log.aborted_transactions(from, upper).await.expect("aborted transactions")
}

fn ranges(entries: &[AbortedTxn]) -> Aborts {
    entries.iter().map(|e| (e.producer_id, e.first_offset, e.last_offset)).collect()
}

/// What a read of `[from, upper)` must be told.
fn expected(all: &Aborts, from: i64, upper: i64) -> Aborts {
    all.iter().filter(|(_, first, last)| *last >= from && *first < upper).copied().collect()
}

#[test]
fn markers_end_transactions_and_hold_the_stable_offset() {
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let log = env.open(tiny()).await;
        let a = log.append(txn_batch(1, 2, 10, 0, 0), 0).await.unwrap();
        assert_eq!(a.base_offset, 0);
        let b = log.append(producer_batch(2, 1, 20, 0, 0), 0).await.unwrap();
        let c = log.append(txn_batch(3, 1, 30, 0, 0), 0).await.unwrap();
        log.wait_acked(c.end_offset).await.unwrap();
        assert_eq!(log.high_watermark(), 4);
        assert_eq!(log.last_stable_offset(), 0, "producer 10's transaction is open from 0");
        // Non-transactional data of an open transaction's producer is refused.
        let refused = log.append(producer_batch(4, 1, 10, 0, 2), 0).await;
        assert!(matches!(
            refused,
            Err(AppendError::Sequence(SequenceError::InvalidTxnState { producer_id: 10, .. }))
        ));
        let m = log.append_marker(10, 0, marker(false), 0).await.unwrap();
        assert_eq!(m.base_offset, 4, "a marker takes an offset");
        assert_eq!(log.last_stable_offset(), 0, "until the marker is acknowledged");
        log.wait_acked(m.end_offset).await.unwrap();
        assert_eq!(log.last_stable_offset(), c.base_offset, "now producer 30's holds");
        let entries = aborted(&log, 0, 5).await;
        assert_eq!(ranges(&entries), vec![(10, 0, 4)]);
        assert_eq!(entries[0].last_stable_offset, 3);
        assert!(aborted(&log, 5, 6).await.is_empty(), "a read after the marker");
        let m = log.append_marker(30, 0, marker(true), 0).await.unwrap();
        log.wait_acked(m.end_offset).await.unwrap();
        assert_eq!(log.last_stable_offset(), 6);
        assert_eq!(ranges(&aborted(&log, 0, 6).await), vec![(10, 0, 4)], "commits are not listed");
        // Zombies: an older producer epoch or coordinator epoch is refused.
        log.append_marker(30, 1, Marker { commit: true, coordinator_epoch: 5 }, 0).await.unwrap();
        assert!(matches!(
            log.append_marker(30, 0, marker(true), 0).await,
            Err(AppendError::Sequence(SequenceError::InvalidProducerEpoch { .. }))
        ));
        assert!(matches!(
            log.append_marker(30, 1, Marker { commit: false, coordinator_epoch: 4 }, 0).await,
            Err(AppendError::Sequence(SequenceError::CoordinatorFenced { .. }))
        ));
        let _ = b;
    });
}

/// Random transactions of several producers over many small segments:
/// the index answers every range like a model, and answers the same after
/// a clean restart, after a crash, and (up to the cut) after a truncation.
#[test]
fn the_aborted_index_survives_rolls_restarts_crashes_and_truncation() {
    let seed = seed("the_aborted_index_survives_rolls_restarts_crashes_and_truncation");
    let mut rng = Rng::new(seed);
    let env = Env::new(Flush::Fsync);
    let (all, end, open_first) = env.run(async {
        let log = env.open(tiny()).await;
        let mut all: Aborts = Vec::new();
        // producer -> (next sequence, first offset of its open transaction)
        let mut producers: BTreeMap<i64, (i32, Option<i64>)> = BTreeMap::new();
        for tag in 0..300u64 {
            let pid = rng.below(5) as i64;
            let (seq, open) = producers.entry(pid).or_insert((0, None));
            if open.is_some() && rng.chance(30) {
                let commit = rng.chance(50);
                let m = log.append_marker(pid, 0, marker(commit), 0).await.unwrap();
                if !commit {
                    all.push((pid, open.unwrap(), m.base_offset));
                }
                *open = None;
            } else {
                let records = 1 + rng.below(3) as usize;
                let info = log.append(txn_batch(tag, records, pid, 0, *seq), 0).await.unwrap();
                *seq += records as i32;
                open.get_or_insert(info.base_offset);
            }
        }
        let end = log.log_end_offset();
        log.wait_acked(end).await.unwrap();
        assert!(log.segment_count() > 10, "{}", log.describe());
        check_ranges(&log, &all, end, &mut rng).await;
        let open_first = producers.values().filter_map(|(_, o)| *o).min();
        assert_eq!(log.last_stable_offset(), open_first.unwrap_or(end));
        log.close().await.unwrap();
        (all, end, open_first)
    });
    let env = env.restart();
    let kept = env.run(async {
        let log = env.open(tiny()).await;
        assert!(log.recovery_report().clean_shutdown);
        check_ranges(&log, &all, end, &mut rng).await;
        assert_eq!(log.last_stable_offset(), open_first.unwrap_or(end));
        // More aborts after the restart, then a crash: the replay finds
        // them again, the files keep the older ones.
        let mut all = all.clone();
        for pid in 100..104 {
            let info = log.append(txn_batch(pid as u64, 2, pid, 0, 0), 0).await.unwrap();
            let m = log.append_marker(pid, 0, marker(false), 0).await.unwrap();
            all.push((pid, info.base_offset, m.base_offset));
        }
        let end = log.log_end_offset();
        log.wait_acked(end).await.unwrap();
        env.disk.crash(seed);
        (all, end)
    });
    let (all, end) = kept;
    let env = env.restart();
    env.run(async {
        let log = env.open(tiny()).await;
        assert!(!log.recovery_report().clean_shutdown);
        check_ranges(&log, &all, end, &mut rng).await;
        // Cut in the middle: markers at or past the cut are gone, and
        // transactions they ended are open again.
        let cut = log.truncate_to(end / 2, 0).await.unwrap();
        let left: Aborts = all.iter().filter(|(_, _, m)| *m < cut).copied().collect();
        check_ranges(&log, &left, cut, &mut rng).await;
        let reopened = all.iter().filter(|(_, f, m)| *f < cut && *m >= cut).map(|(_, f, _)| *f);
        if let Some(first) = reopened.min() {
            assert!(log.last_stable_offset() <= first, "{first} open again");
        }
    });
}

async fn check_ranges(log: &PartitionLog<MemDisk>, all: &Aborts, end: i64, rng: &mut Rng) {
    assert_eq!(ranges(&aborted(log, 0, end).await), *all);
    for _ in 0..50 {
        let from = rng.below(end as u64) as i64;
        let upper = from + 1 + rng.below((end - from) as u64) as i64;
        let got = ranges(&aborted(log, from, upper).await);
        assert_eq!(got, expected(all, from, upper), "range {from}..{upper}");
        // A read's upper bound covers what it read, within the limit.
        let max_bytes = 1 + rng.below(3000) as usize;
        let read = log.read(from, max_bytes, upper).await.unwrap();
        let mut last = from - 1;
        for chunk in &read.chunks {
            let bytes = log.read_bytes(chunk).await.unwrap();
            let mut at = 0;
            while at < bytes.len() {
                let h = engine::batch::validate_one(&bytes[at..]).unwrap();
                last = h.last_offset();
                at += h.size;
            }
        }
        assert!(last < read.upper_bound && read.upper_bound <= upper.max(from), "{from}..{upper}");
    }
}

/// A truncation inside a segment whose aborted transactions are partly in
/// its file (from a clean close) keeps them through a crash before the
/// segment closes again; a damaged file is rebuilt from the log.
#[test]
fn a_truncation_keeps_older_aborts_through_a_crash_and_damage_is_rebuilt() {
    let env = Env::new(Flush::Fsync);
    let first = env.run(async {
        let log = env.open(LogConfig::default()).await;
        let info = log.append(txn_batch(1, 2, 7, 0, 0), 0).await.unwrap();
        let m = log.append_marker(7, 0, marker(false), 0).await.unwrap();
        log.wait_acked(m.end_offset).await.unwrap();
        log.close().await.unwrap();
        (7, info.base_offset, m.base_offset)
    });
    let env = env.restart();
    env.run(async {
        let log = env.open(LogConfig::default()).await;
        let snapshot_at = log.log_end_offset();
        for tag in 10..14 {
            let info = log.append(batch(tag, 2, 10), 0).await.unwrap();
            log.wait_acked(info.end_offset).await.unwrap();
        }
        assert_eq!(log.truncate_to(snapshot_at, 0).await.unwrap(), snapshot_at);
        env.disk.crash(1);
    });
    let env = env.restart();
    env.run(async {
        let log = env.open(LogConfig::default()).await;
        assert_eq!(ranges(&aborted(&log, 0, log.log_end_offset()).await), vec![first]);
        log.close().await.unwrap();
    });
    // Damage the only segment's index: the next open rebuilds it.
    let path = dir().join(format!("{:020}.txnindex", 0));
    env.disk.flip_bit(&path, 1, 0);
    let env = env.restart();
    env.run(async {
        let log = env.open(LogConfig::default()).await;
        assert_eq!(log.recovery_report().damaged_txn_indexes, 1);
        assert_eq!(ranges(&aborted(&log, 0, log.log_end_offset()).await), vec![first]);
    });
}
