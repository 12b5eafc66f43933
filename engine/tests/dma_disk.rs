//! The same log behaviour on real files through glommio's DMA files.

use std::rc::Rc;

use bytes::BytesMut;
use engine::disk::DmaDisk;
use engine::testkit::{make_batch, run_glommio};
use engine::{Flush, LogConfig, PartitionLog, SystemClock};

fn config(cache: usize) -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        index_interval_bytes: 512,
        cache_bytes_max: cache,
        ..LogConfig::default()
    }
}

#[test]
fn append_close_reopen_read_on_real_files() {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("dma-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let dir = tmp.join("t-0");
    for (mode, cache) in [(Flush::Fsync, 0), (Flush::Interval { ms: 10 }, usize::MAX)] {
        let d = dir.clone();
        let expected = run_glommio(mode, move |flusher| async move {
            let log = PartitionLog::open(
                disk(&d).await,
                &d,
                config(cache),
                &flusher,
                Rc::new(SystemClock),
            )
            .await
            .expect("open");
            let start = log.log_end_offset();
            let mut expected = Vec::new();
            for tag in 0..300u64 {
                let b = make_batch(tag, 10, 100, 1_700_000_000_000);
                let info = log.append(BytesMut::from(&b[..]), 1).await.expect("append");
                let mut stamped = b.clone();
                engine::batch::stamp(&mut stamped, info.base_offset, 1);
                expected.extend_from_slice(&stamped);
            }
            log.wait_acked(log.log_end_offset()).await.expect("acked");
            assert!(log.segment_count() > 3, "64 KiB segments roll");
            let got = read_range(&log, start).await;
            assert_eq!(got, expected);
            log.close().await.expect("close");
            (start, expected)
        });
        let d = dir.clone();
        run_glommio(mode, move |flusher| async move {
            let log =
                PartitionLog::open(disk(&d).await, &d, config(0), &flusher, Rc::new(SystemClock))
                    .await
                    .expect("reopen");
            assert!(log.recovery_report().clean_shutdown);
            assert_eq!(read_range(&log, expected.0).await, expected.1);
            log.close().await.expect("close");
        });
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// Small rounds write zeros ahead of the active segment's data (decision
/// 52); a stop without a close leaves them in the file, and the next open
/// cuts them as the zero tail they are, without calling them damage.
#[test]
fn zeros_written_ahead_are_cut_at_the_next_open() {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("dma-zeros-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let dir = tmp.join("t-0");
    let file = dir.join("00000000000000000000.log");
    let big = LogConfig { segment_bytes: 1 << 30, ..config(0) };
    let (d, f, c) = (dir.clone(), file.clone(), big.clone());
    let expected = run_glommio(Flush::Fsync, move |flusher| async move {
        let log = PartitionLog::open(disk(&d).await, &d, c, &flusher, Rc::new(SystemClock))
            .await
            .expect("open");
        let mut expected = Vec::new();
        for tag in 0..200u64 {
            let b = make_batch(tag, 10, 100, 1_700_000_000_000);
            let info = log.append(BytesMut::from(&b[..]), 1).await.expect("append");
            log.wait_acked(info.end_offset).await.expect("acked");
            let mut stamped = b.clone();
            engine::batch::stamp(&mut stamped, info.base_offset, 1);
            expected.extend_from_slice(&stamped);
        }
        let stats = flusher.stats();
        assert!(stats.zero_writes > 0 && stats.zero_bytes > 0, "{stats:?}");
        // Far fewer than the rounds: each step of zeros serves several.
        assert!(stats.zero_writes * 4 <= stats.rounds, "{stats:?}");
        let len = std::fs::metadata(&f).unwrap().len();
        assert!(len > expected.len() as u64 + 4096, "zeros ahead: {len} for {}", expected.len());
        assert_eq!(read_range(&log, 0).await, expected);
        // Dropped without a close: the next open finds the zeros.
        expected
    });
    let (d, f) = (dir.clone(), file.clone());
    run_glommio(Flush::Fsync, move |flusher| async move {
        let log = PartitionLog::open(disk(&d).await, &d, big, &flusher, Rc::new(SystemClock))
            .await
            .expect("reopen");
        let report = log.recovery_report().clone();
        assert!(!report.clean_shutdown);
        assert_eq!(report.truncated_bytes, 0, "zeros are no damage: {report:?}");
        assert_eq!(std::fs::metadata(&f).unwrap().len(), expected.len() as u64, "zeros cut");
        assert_eq!(read_range(&log, 0).await, expected);
        log.close().await.expect("close");
        assert_eq!(std::fs::metadata(&f).unwrap().len(), expected.len() as u64);
    });
    std::fs::remove_dir_all(&tmp).unwrap();
}

async fn disk(dir: &std::path::Path) -> Rc<DmaDisk> {
    std::fs::create_dir_all(dir).unwrap();
    Rc::new(DmaDisk::new(dir).await.expect("direct I/O works here"))
}

async fn read_range(log: &PartitionLog<DmaDisk>, from: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.acked_end_offset() {
        let r = log.read(offset, 5000, i64::MAX).await.expect("read");
        for c in &r.chunks {
            let bytes = log.read_bytes(c).await.expect("bytes");
            let mut at = 0;
            while at < bytes.len() {
                let h = engine::batch::validate_one(&bytes[at..]).expect("valid");
                offset = h.last_offset() + 1;
                at += h.size;
            }
            out.extend_from_slice(&bytes);
        }
    }
    out
}

/// Every append's bytes are promised before offsets are assigned and given
/// back as they are written, so the promises always equal what is
/// accepted and not yet on disk (nextest runs each test in its own
/// process: the ledger is this test's alone).
#[test]
fn free_space_is_promised_until_written() {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("dma-promise-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let dir = tmp.join("t-0");
    run_glommio(Flush::Fsync, move |flusher| async move {
        let log =
            PartitionLog::open(disk(&dir).await, &dir, config(0), &flusher, Rc::new(SystemClock))
                .await
                .expect("open");
        assert_eq!(engine::disk::promised_bytes(), 0);
        for i in 0..20 {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
            let batch = make_batch(i, 60, 100, now.as_millis() as i64); // > 4 KiB
            let info = log.append(BytesMut::from(&batch[..]), 0).await.expect("append");
            // The first goes past the file's end; later ones may land in
            // the zeros the flusher wrote ahead, which need no promise.
            if i == 0 {
                assert!(engine::disk::promised_bytes() > 0, "append {i}: its bytes are promised");
            }
            log.wait_acked(info.end_offset).await.expect("acked");
            // Written (and synced): nothing is owed beyond the partial last
            // block the next write rewrites.
            assert!(engine::disk::promised_bytes() < 4096, "{}", engine::disk::promised_bytes());
        }
        log.close().await.expect("close");
        assert_eq!(engine::disk::promised_bytes(), 0, "closing gives every promise back");
    });
    std::fs::remove_dir_all(&tmp).unwrap();
}
