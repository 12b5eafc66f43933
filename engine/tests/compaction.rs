//! Compaction on the memory disk: the latest value per key survives with its
//! offset, superseded records and expired tombstones go, the active segment
//! is never touched, and a failure or crash at any point leaves a readable
//! log with the same latest values.

mod common;

use bytes::BytesMut;
use common::*;
use engine::batch::BatchHeader;
use engine::disk::{Fault, MemDisk};
use engine::{Flush, LogConfig, PartitionLog};
use std::collections::BTreeMap;

fn compacted() -> LogConfig {
    LogConfig { cleanup_compact: true, cleanup_delete: false, delete_retention_ms: 1000, ..tiny() }
}

/// One batch of (key, value) records; `None` values are tombstones.
fn keyed(records: &[(&str, Option<String>)]) -> BytesMut {
    let kv: Vec<_> = records
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), v.as_ref().map(|v| v.as_bytes())))
        .collect();
    BytesMut::from(&engine::batch::build(&kv, T0)[..])
}

/// Every data record readable: offset → (key, value).
type View = BTreeMap<i64, (String, Option<String>)>;

async fn view(log: &PartitionLog<MemDisk>) -> View {
    data_and_markers(log).await.0
}

/// Every batch readable, with its header.
async fn batches(log: &PartitionLog<MemDisk>) -> Vec<(BatchHeader, Vec<u8>)> {
    let bytes = read_all(log, log.log_start_offset(), 1 << 20).await;
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let h = engine::batch::validate_one(&bytes[at..]).unwrap();
        let size = h.size;
        out.push((h, bytes[at..at + size].to_vec()));
        at += size;
    }
    out
}

/// The latest value of every key.
fn latest(v: &View) -> BTreeMap<String, Option<String>> {
    v.values().map(|(k, val)| (k.clone(), val.clone())).collect()
}

async fn write_history(log: &PartitionLog<MemDisk>, rounds: usize, tombstone: bool) {
    for i in 0..rounds {
        // Ten keys overwritten again and again, two records per batch;
        // key k9 is deleted halfway and never written again.
        let a = format!("k{}", i % 10);
        let b = format!("k{}", (i + 3) % 10);
        let mut records =
            vec![(a.as_str(), Some(format!("a{i}"))), (b.as_str(), Some(format!("b{i}")))];
        if tombstone && i == rounds / 2 {
            records.push(("k9", None));
        }
        if i > rounds / 2 {
            records.retain(|(k, _)| *k != "k9");
        }
        let info = log.append(keyed(&records), 0).await.unwrap();
        log.wait_acked(info.end_offset).await.unwrap();
    }
}

#[test]
fn compaction_keeps_the_latest_value_per_key_at_its_offset() {
    let env = Env::new(Flush::Fsync);
    let (before, after, compacted_to) = env.run(async {
        let log = env.open(compacted()).await;
        write_history(&log, 120, true).await;
        assert!(log.segment_count() > 5, "tiny segments rolled");
        let before = view(&log).await;
        let end = log.log_end_offset();
        let size = log.size_bytes();
        let report = log.compact().await.unwrap();
        assert!(report.segments_rewritten > 0 && report.records_removed > 0, "{report:?}");
        assert!(report.compacted_to > end / 2, "most segments were closed: {report:?}");
        assert!(log.size_bytes() < size);
        let after = view(&log).await;
        assert_eq!(log.log_end_offset(), end);
        // Nothing new: a second round has nothing to do.
        assert_eq!(log.compact().await.unwrap().segments_rewritten, 0);
        // Appends go on after the end.
        let info = log.append(keyed(&[("k0", Some("new".into()))]), 0).await.unwrap();
        assert_eq!(info.base_offset, end);
        log.wait_acked(info.end_offset).await.unwrap();
        (before, after, report.compacted_to)
    });
    // Same latest value per key (the tombstone is younger than
    // delete.retention.ms, so it stays).
    assert_eq!(latest(&after), latest(&before));
    assert_eq!(latest(&after).get("k9"), Some(&None));
    // Every surviving record is the one written at that offset.
    for (o, r) in &after {
        assert_eq!(before.get(o), Some(r), "offset {o}");
    }
    // In the compacted range each key appears once at most.
    let mut seen = std::collections::HashSet::new();
    for (_, (k, _)) in after.range(..compacted_to) {
        assert!(seen.insert(k.clone()), "{k} twice below {compacted_to}");
    }
}

#[test]
fn expired_tombstones_go_and_the_result_survives_reopen_and_crash() {
    for clean in [true, false] {
        let env = Env::new(Flush::Fsync);
        let expected = env.run(async {
            let log = env.open(compacted()).await;
            write_history(&log, 120, true).await;
            let first = log.compact().await.unwrap();
            assert!(view(&log).await.values().any(|(_, v)| v.is_none()), "young tombstone kept");
            // Past delete.retention.ms, with new data to start a round.
            env.clock.advance(2_000);
            write_history(&log, 40, false).await;
            let second = log.compact().await.unwrap();
            assert!(second.compacted_to > first.compacted_to);
            let v = view(&log).await;
            if clean {
                log.close().await.unwrap();
            }
            v
        });
        assert!(!expected.values().any(|(_, v)| v.is_none()), "the tombstone expired");
        if !clean {
            env.disk.crash(5);
        }
        let env2 = env.restart();
        env2.run(async {
            let log = env2.open(compacted()).await;
            assert_eq!(view(&log).await, expected, "clean: {clean}");
        });
    }
}

#[test]
fn a_failed_compaction_changes_nothing() {
    for fault in [Fault::WriteError, Fault::SyncError] {
        let env = Env::new(Flush::Fsync);
        let before = env.run(async {
            let log = env.open(compacted()).await;
            write_history(&log, 80, true).await;
            let before = view(&log).await;
            env.disk.inject(fault);
            assert!(log.compact().await.is_err(), "{fault:?}");
            assert_eq!(view(&log).await, before);
            before
        });
        env.disk.crash(9);
        let env2 = env.restart();
        env2.run(async {
            let log = env2.open(compacted()).await;
            assert_eq!(view(&log).await, before, "{fault:?}");
            // And it compacts fine afterwards.
            assert!(log.compact().await.unwrap().segments_rewritten > 0);
            assert_eq!(latest(&view(&log).await), latest(&before));
        });
    }
}

/// A transactional batch of producer `pid` (epoch 0) from sequence `seq`.
fn txn_keyed(records: &[(&str, Option<String>)], pid: i64, seq: i32) -> BytesMut {
    let mut b = keyed(records);
    engine::batch::set_producer(&mut b, pid, 0, seq);
    engine::batch::set_transactional(&mut b);
    b
}

/// Every data record readable, offset → (key, value); and the markers.
async fn data_and_markers(log: &PartitionLog<MemDisk>) -> (View, usize) {
    let (mut out, mut markers) = (View::new(), 0);
    for (h, b) in batches(log).await {
        if h.is_control() {
            markers += 1;
            continue;
        }
        for r in engine::batch::parse_records(&b).unwrap() {
            let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            let value = r.value.map(|v| String::from_utf8(v.to_vec()).unwrap());
            out.insert(h.base_offset + r.offset_delta, (key, value));
        }
    }
    (out, markers)
}

#[test]
fn aborted_transactions_go_committed_ones_compact_open_ones_stay_whole() {
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let log = env.open(compacted()).await;
        let put = |b: BytesMut| async {
            let info = log.append(b, 0).await.unwrap();
            log.wait_acked(info.end_offset).await.unwrap();
        };
        let v = |s: &str| Some(s.to_string());
        put(keyed(&[("k0", v("plain0")), ("k2", v("plain2"))])).await;
        // Producer 100 aborts, producer 200 commits, both writing k0.
        put(txn_keyed(&[("k0", v("aborted0")), ("k1", v("aborted1"))], 100, 0)).await;
        put(txn_keyed(&[("k0", v("committed0"))], 200, 0)).await;
        let m = engine::txn::Marker { commit: false, coordinator_epoch: 0 };
        log.wait_acked(log.append_marker(100, 0, m, 0).await.unwrap().end_offset).await.unwrap();
        let m = engine::txn::Marker { commit: true, coordinator_epoch: 0 };
        log.wait_acked(log.append_marker(200, 0, m, 0).await.unwrap().end_offset).await.unwrap();
        for i in 0..30 {
            put(keyed(&[(&format!("f{}", i % 7), v(&format!("fill{i}")))])).await;
        }
        // Producer 300's transaction stays open, over k2: nothing from it
        // on is cleaned (not even plain records), as readers cannot all
        // see it yet.
        put(txn_keyed(&[("k2", v("open2"))], 300, 0)).await;
        for i in 0..30 {
            put(keyed(&[("k2", v(&format!("late{i}")))])).await;
        }
        let stable = log.last_stable_offset();
        let (before, markers) = data_and_markers(&log).await;
        let report = log.compact().await.unwrap();
        assert!(report.segments_rewritten > 0, "{report:?}");
        let (after, markers_after) = data_and_markers(&log).await;
        let values: Vec<&str> = after.values().filter_map(|(_, v)| v.as_deref()).collect();
        assert!(!values.iter().any(|v| v.starts_with("aborted")), "aborted records removed");
        assert!(values.contains(&"committed0") && !values.contains(&"plain0"), "k0: the commit");
        // The open transaction and what follows it are untouched: every
        // late k2 is still there, and plain2 below is not superseded.
        assert!(values.contains(&"open2") && values.contains(&"plain2"), "{values:?}");
        assert_eq!(values.iter().filter(|v| v.starts_with("late")).count(), 30);
        assert!(report.compacted_to <= stable, "{report:?} past {stable}");
        assert_eq!(markers_after, markers, "markers kept");
        // The aborted batch stays as an empty one: its producer's
        // sequence is there for a replay after a crash.
        let of_100: Vec<i32> = batches(&log)
            .await
            .iter()
            .filter(|(h, _)| h.producer_id == 100 && !h.is_control())
            .map(|(h, _)| h.records_count)
            .collect();
        assert_eq!(of_100, [0], "one empty batch of the aborted producer");
        for (o, r) in &after {
            assert_eq!(before.get(o), Some(r), "offset {o}");
        }
        assert_eq!(log.last_stable_offset(), stable);
        let aborted = log.aborted_transactions(0, log.log_end_offset()).await.unwrap();
        assert_eq!(aborted.iter().map(|a| a.producer_id).collect::<Vec<_>>(), vec![100]);
    });
}
