//! Batches appended as received (`Batches::Received`, a slice of the
//! request, not copied): stored with their offsets and epoch stamped, on
//! disk and in the cache, while the request's bytes stay as they came;
//! those validation must rewrite are copied first.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use engine::batch::{set_max_timestamp, stamp, validate_one, HEADER_BYTES};
use engine::{Batches, Flush, LogConfig};

/// Two batches in one buffer, as a request carries them for a partition.
fn request(tag: u64) -> Bytes {
    let mut b = batch(tag, 1 + tag as usize % 3, 25);
    b.extend_from_slice(&batch(tag + 1000, 2, 25));
    b.freeze()
}

/// `bytes`' batches stamped from `base` with `epoch`, as the log stores them.
fn stamped(bytes: &[u8], mut base: i64, epoch: i32) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut at = 0;
    while at < out.len() {
        let h = validate_one(&out[at..]).unwrap();
        stamp(&mut out[at..at + h.size], base, epoch);
        base = h.last_offset() - h.base_offset + base + 1;
        at += h.size;
    }
    out
}

#[test]
fn received_batches_are_stored_stamped_and_the_request_is_left_as_it_came() {
    for cache in [0, usize::MAX] {
        let config = LogConfig { cache_bytes_max: cache, ..tiny() };
        let env = Env::new(Flush::Fsync);
        let expected = env.run(async {
            let log = env.open(config.clone()).await;
            let mut expected = Vec::new();
            for tag in 0..30u64 {
                let received = request(tag);
                let before = received.to_vec();
                // Received and owned appends interleave in one log.
                let info = if tag % 3 == 2 {
                    log.append(BytesMut::from(&received[..]), 7).await.unwrap()
                } else {
                    log.append(Batches::Received(received.clone()), 7).await.unwrap()
                };
                assert_eq!(received.to_vec(), before, "the request's bytes are not changed");
                log.wait_acked(info.end_offset).await.unwrap();
                expected.extend(stamped(&received, info.base_offset, 7));
            }
            // Twice: the first read from the cache stamps it, the second
            // finds it stamped; with no cache both read the files.
            assert_eq!(read_all(&log, 0, 1 << 20).await, expected, "cache {cache}");
            assert_eq!(read_all(&log, 0, 300).await, expected, "cache {cache}");
            log.close().await.unwrap();
            expected
        });
        let env2 = env.restart();
        env2.run(async {
            let log = env2.open(config.clone()).await;
            assert_eq!(read_all(&log, 0, 1 << 20).await, expected, "reopened, cache {cache}");
        });
    }
}

#[test]
fn received_batches_validation_rewrites_are_made_on_a_copy() {
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let log = env.open(tiny()).await;
        // A producer's maxTimestamp below its records': stored as the records'.
        let mut wrong = batch(5, 3, 20);
        let right = validate_one(&wrong).unwrap().max_timestamp;
        set_max_timestamp(&mut wrong, right - 1000);
        let received = wrong.freeze();
        let before = received.to_vec();
        let info = log.append(Batches::Received(received.clone()), 2).await.unwrap();
        log.wait_acked(info.end_offset).await.unwrap();
        assert_eq!(received.to_vec(), before, "the request's bytes are not changed");
        let stored = read_all(&log, 0, 1 << 20).await;
        let h = validate_one(&stored).expect("stored with a valid CRC");
        assert_eq!((h.max_timestamp, h.base_offset, h.leader_epoch), (right, 0, 2));
        assert_eq!(stored[HEADER_BYTES..], before[HEADER_BYTES..], "records unchanged");
    });
}

#[test]
fn received_batches_of_a_log_append_time_log_are_stamped_with_the_clock() {
    let env = Env::new(Flush::Fsync);
    env.run(async {
        let config = LogConfig { log_append_time: true, ..tiny() };
        let log = env.open(config).await;
        let received = request(9);
        let before = received.to_vec();
        let info = log.append(Batches::Received(received.clone()), 1).await.unwrap();
        log.wait_acked(info.end_offset).await.unwrap();
        assert_eq!(received.to_vec(), before, "the request's bytes are not changed");
        assert_eq!(info.log_append_time, T0, "the clock when the offsets were assigned");
        let stored = read_all(&log, 0, 1 << 20).await;
        let mut at = 0;
        while at < stored.len() {
            let h = validate_one(&stored[at..]).expect("stored with a valid CRC");
            assert_eq!(h.max_timestamp, info.log_append_time);
            assert!(h.attributes & engine::batch::LOG_APPEND_TIME != 0);
            at += h.size;
        }
    });
}
