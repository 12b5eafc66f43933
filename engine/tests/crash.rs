//! Crash test on the real disk: a child process appends with `Flush::Fsync`
//! and reports every acknowledged batch; the test SIGKILLs it after a random
//! number of acknowledgments, many times over the same directory. After each
//! kill every acknowledged batch reads back byte-identical at its offset and
//! offsets are contiguous from the log start.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;

use engine::batch::{stamp, validate_one};
use engine::disk::DmaDisk;
use engine::testkit::{make_batch, run_glommio, seed, Rng};
use engine::{Flush, LogConfig, PartitionLog, SystemClock};

fn batch_for(tag: u64) -> Vec<u8> {
    // Same shape as the child's (engine/src/bin/engine-crash-child.rs).
    make_batch(
        tag,
        1 + (tag % 7) as usize,
        10 + (tag % 300) as usize,
        1_700_000_000_000 + tag as i64,
    )
}

/// Runs the child until it has acknowledged `acks` batches, kills it with
/// SIGKILL and returns every acknowledgment it printed: tag → base offset.
fn run_child_and_kill(dir: &Path, first_tag: u64, acks: usize) -> BTreeMap<u64, i64> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_engine-crash-child"))
        .arg(dir)
        .arg(first_tag.to_string())
        .arg("4")
        .stdout(Stdio::piped())
        .spawn()
        .expect("child starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut acked = BTreeMap::new();
    let ready = lines.next().expect("child says READY").expect("utf-8");
    assert!(ready.starts_with("READY"), "{ready}");
    while acked.len() < acks {
        let Some(line) = lines.next() else { break };
        let line = line.expect("utf-8");
        let mut parts = line.split(' ');
        assert_eq!(parts.next(), Some("ACK"), "{line}");
        let tag: u64 = parts.next().unwrap().parse().unwrap();
        let base: i64 = parts.next().unwrap().parse().unwrap();
        acked.insert(tag, base);
    }
    child.kill().expect("SIGKILL");
    // Acknowledgments printed before death are still in the pipe.
    for line in lines {
        let line = line.expect("utf-8");
        let mut parts = line.split(' ');
        if parts.next() == Some("ACK") {
            let tag: u64 = parts.next().unwrap().parse().unwrap();
            let base: i64 = parts.next().unwrap().parse().unwrap();
            acked.insert(tag, base);
        }
    }
    let status = child.wait().expect("child exits");
    assert!(!status.success(), "the child was killed, not finished");
    acked
}

/// Reopens the log in this process and checks it against every
/// acknowledgment so far.
fn verify(dir: PathBuf, acked: BTreeMap<u64, i64>) -> i64 {
    run_glommio(Flush::Fsync, move |flusher| async move {
        let disk = Rc::new(DmaDisk::new(&dir).await.expect("direct I/O"));
        let config =
            LogConfig { segment_bytes: 256 * 1024, cache_bytes_max: 0, ..LogConfig::default() };
        let log = PartitionLog::open(disk, &dir, config, &flusher, Rc::new(SystemClock))
            .await
            .expect("reopen");
        // Read the whole log: contiguous, valid batches.
        let mut by_offset = BTreeMap::new();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let r = log.read(offset, 1 << 20, i64::MAX).await.expect("read");
            assert!(!r.chunks.is_empty(), "nothing at {offset}");
            for c in &r.chunks {
                let bytes = log.read_bytes(c).await.expect("valid bytes");
                let mut at = 0;
                while at < bytes.len() {
                    let h = validate_one(&bytes[at..]).expect("valid batch");
                    assert_eq!(h.base_offset, offset, "offsets are contiguous");
                    by_offset.insert(h.base_offset, bytes[at..at + h.size].to_vec());
                    offset = h.last_offset() + 1;
                    at += h.size;
                }
            }
        }
        for (tag, base) in &acked {
            let mut expected = batch_for(*tag);
            stamp(&mut expected, *base, 0);
            let got = by_offset
                .get(base)
                .unwrap_or_else(|| panic!("acknowledged batch {tag} at {base} lost"));
            assert_eq!(got, &expected, "acknowledged batch {tag} at {base} differs");
        }
        let end = log.log_end_offset();
        log.close().await.expect("close");
        end
    })
}

#[test]
fn every_acknowledged_batch_survives_sigkill() {
    let mut rng = Rng::new(seed("every_acknowledged_batch_survives_sigkill"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut all_acked = BTreeMap::new();
    let mut tag = 0;
    for _ in 0..25 {
        let acks = 1 + rng.below(400) as usize;
        let acked = run_child_and_kill(&dir, tag, acks);
        assert!(acked.len() >= acks, "the child acknowledged {} of {acks}", acked.len());
        tag = acked.keys().max().unwrap() + 1000;
        // Only the newest acknowledgments need checking again, but checking
        // all of them also proves older ones survive later crashes.
        all_acked.extend(acked);
        verify(dir.clone(), all_acked.clone());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
