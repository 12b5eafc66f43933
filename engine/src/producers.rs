//! Idempotent producers' state in one partition: for each producer id, its
//! epoch and the sequence numbers and offsets of its last
//! [`PRODUCER_BATCHES_KEPT`] batches, so that a retried batch is recognised
//! and answered with its original offsets instead of being appended twice.
//!
//! Owned by the [`crate::PartitionLog`] of the partition (its shard); no I/O
//! here: the log persists [`ProducerStates::encode`] as a snapshot and
//! replays batches after it on open.
//!
//! Rules (Kafka's, for non-transactional batches with a producer id):
//! - an epoch below the known one is `InvalidProducerEpoch`;
//! - a newer epoch must start at sequence 0 (its state starts afresh);
//! - a batch equal (first and last sequence) to one of the last five of its
//!   producer is a duplicate;
//! - otherwise its first sequence must follow the last one (wrapping after
//!   `i32::MAX`), else `OutOfOrderSequence`;
//! - a producer the partition does not know may start at any sequence (its
//!   state may have been removed with old segments).

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::batch::BatchHeader;
use crate::types::{Offset, Timestamp, NO_TIMESTAMP};

/// Batches remembered per producer: Kafka's limit on in-flight requests per
/// connection for idempotent producers (`max.in.flight.requests.per.connection`
/// <= 5), so any batch a producer may retry is among them.
pub const PRODUCER_BATCHES_KEPT: usize = 5;

/// Producers remembered per partition. Kafka expires idle producers after
/// `producer.id.expiration.ms` (1 day); Corelog bounds the count instead and
/// forgets the least recently written producer beyond it (its next batch is
/// then accepted at any sequence, as an unknown producer's).
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;

/// One remembered batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: Offset,
    pub last_offset: Offset,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Producer {
    epoch: i16,
    batches: VecDeque<ProducerBatch>,
    /// Log offset of its newest batch, for forgetting the idlest producer.
    last_offset: Offset,
    /// `maxTimestamp` of its newest batch (DescribeProducers).
    last_timestamp: Timestamp,
}

/// A producer as DescribeProducers reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub epoch: i16,
    /// The last sequence of its newest batch.
    pub last_sequence: i32,
    pub last_timestamp: Timestamp,
}

/// The first byte of a version-2 snapshot. Version 1 (no timestamps)
/// starts with its producer count, whose first byte is 0 (at most
/// [`PRODUCERS_PER_PARTITION_MAX`]).
const SNAPSHOT_V2: u8 = 2;

/// Why a batch of an idempotent producer is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceError {
    /// The batch's epoch is older than the producer's current one.
    InvalidProducerEpoch { producer_id: i64, epoch: i16, current: i16 },
    /// The batch does not follow the producer's last batch.
    OutOfOrder { producer_id: i64, expected: i32, got: i32 },
}

impl std::fmt::Display for SequenceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SequenceError::InvalidProducerEpoch { producer_id, epoch, current } => write!(
                f,
                "producer {producer_id}: epoch {epoch} is older than the current epoch {current}"
            ),
            SequenceError::OutOfOrder { producer_id, expected, got } => write!(
                f,
                "producer {producer_id}: sequence {got} out of order, expected {expected}"
            ),
        }
    }
}

/// What the check of an append found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Append the batches.
    Append,
    /// The append repeats an earlier batch: answer with its offsets.
    Duplicate(ProducerBatch),
}

/// The producers of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerStates {
    producers: HashMap<i64, Producer>,
    /// (last offset, producer id) of every producer: the idlest is first,
    /// so forgetting one beyond the bound costs a log, not a scan of
    /// 10,000 (a request of many batches with distinct ids did that per
    /// batch, with the shard blocked).
    by_last_offset: BTreeSet<(Offset, i64)>,
}

fn last_seq(h: &BatchHeader) -> i32 {
    // Sequences wrap after i32::MAX, as Kafka's DefaultRecordBatch.
    ((h.base_sequence as i64 + h.last_offset_delta as i64) % (i32::MAX as i64 + 1)) as i32
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerStates {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Checks the batches of one append (in order) without changing the
    /// state. A duplicate anywhere makes the whole append a duplicate, as
    /// Kafka answers it.
    pub fn check(&self, headers: &[BatchHeader]) -> Result<Check, SequenceError> {
        // Later batches of the same producer in this append follow earlier ones.
        let mut pending: HashMap<i64, (i16, i32)> = HashMap::new();
        for h in headers {
            if h.producer_id < 0 {
                continue;
            }
            let known = self.producers.get(&h.producer_id);
            let (epoch, last) = match pending.get(&h.producer_id) {
                Some(&(e, s)) => (Some(e), Some(s)),
                None => (
                    known.map(|p| p.epoch),
                    known.and_then(|p| p.batches.back()).map(|b| b.last_seq),
                ),
            };
            match epoch {
                Some(current) if h.producer_epoch < current => {
                    return Err(SequenceError::InvalidProducerEpoch {
                        producer_id: h.producer_id,
                        epoch: h.producer_epoch,
                        current,
                    });
                }
                Some(current) if h.producer_epoch > current && h.base_sequence != 0 => {
                    return Err(SequenceError::OutOfOrder {
                        producer_id: h.producer_id,
                        expected: 0,
                        got: h.base_sequence,
                    });
                }
                // A newer epoch starting at 0: its state starts afresh.
                Some(current) if h.producer_epoch > current => {}
                Some(_) => {
                    if !pending.contains_key(&h.producer_id) {
                        // The newest match: an older one would be a batch
                        // the log no longer holds at those offsets.
                        if let Some(dup) = known.and_then(|p| {
                            p.batches.iter().rev().find(|b| {
                                b.first_seq == h.base_sequence && b.last_seq == last_seq(h)
                            })
                        }) {
                            return Ok(Check::Duplicate(*dup));
                        }
                    }
                    if let Some(last) = last {
                        if h.base_sequence != next_seq(last) {
                            return Err(SequenceError::OutOfOrder {
                                producer_id: h.producer_id,
                                expected: next_seq(last),
                                got: h.base_sequence,
                            });
                        }
                    }
                }
                None => {}
            }
            pending.insert(h.producer_id, (h.producer_epoch, last_seq(h)));
        }
        Ok(Check::Append)
    }

    /// Records an appended batch (its `base_offset` assigned).
    pub fn apply(&mut self, h: &BatchHeader) {
        if h.producer_id < 0 {
            return;
        }
        let batch = ProducerBatch {
            first_seq: h.base_sequence,
            last_seq: last_seq(h),
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
        };
        let p = self.producers.entry(h.producer_id).or_insert(Producer {
            epoch: h.producer_epoch,
            batches: VecDeque::new(),
            last_offset: batch.last_offset,
            last_timestamp: NO_TIMESTAMP,
        });
        p.last_timestamp = h.max_timestamp;
        self.by_last_offset.remove(&(p.last_offset, h.producer_id));
        self.by_last_offset.insert((batch.last_offset, h.producer_id));
        if h.producer_epoch != p.epoch {
            p.epoch = h.producer_epoch;
            p.batches.clear();
        }
        p.batches.push_back(batch);
        while p.batches.len() > PRODUCER_BATCHES_KEPT {
            p.batches.pop_front();
        }
        p.last_offset = batch.last_offset;
        if self.producers.len() > PRODUCERS_PER_PARTITION_MAX {
            if let Some((_, id)) = self.by_last_offset.pop_first() {
                self.producers.remove(&id);
            }
        }
        debug_assert_eq!(self.producers.len(), self.by_last_offset.len());
    }

    /// Every producer remembered, by id.
    pub fn active(&self) -> Vec<ActiveProducer> {
        let mut out: Vec<ActiveProducer> = self
            .producers
            .iter()
            .map(|(&producer_id, p)| ActiveProducer {
                producer_id,
                epoch: p.epoch,
                last_sequence: p.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: p.last_timestamp,
            })
            .collect();
        out.sort_unstable_by_key(|p| p.producer_id);
        out
    }

    /// The snapshot format (all big-endian), written by the log as
    /// `<offset:020>.producers`, version 2: the byte 2, `count: u32`, then
    /// per producer `producer_id: i64`, `epoch: i16`, `last_timestamp:
    /// i64`, `batches: u8`, then per batch `first_seq: i32`, `last_seq:
    /// i32`, `base_offset: i64`, `last_offset: i64`; then a CRC-32 (IEEE)
    /// of everything before it. Version 1 (read, never written) had no
    /// leading byte and no timestamps.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + self.producers.len() * 72);
        out.push(SNAPSHOT_V2);
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let p = &self.producers[&id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&p.epoch.to_be_bytes());
            out.extend_from_slice(&p.last_timestamp.to_be_bytes());
            out.push(p.batches.len() as u8);
            for b in &p.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads a snapshot; `None` if it is damaged (the log then replays).
    pub fn decode(bytes: &[u8]) -> Option<ProducerStates> {
        let (body, crc) = bytes.split_at(bytes.len().checked_sub(4)?);
        if crc32fast::hash(body).to_be_bytes() != crc {
            return None;
        }
        let v2 = body.first() == Some(&SNAPSHOT_V2);
        let mut at = usize::from(v2);
        let mut take = |n: usize| {
            let s = body.get(at..at + n)?;
            at += n;
            Some(s)
        };
        let count = u32::from_be_bytes(take(4)?.try_into().ok()?);
        let mut producers = HashMap::new();
        for _ in 0..count {
            let id = i64::from_be_bytes(take(8)?.try_into().ok()?);
            let epoch = i16::from_be_bytes(take(2)?.try_into().ok()?);
            let last_timestamp =
                if v2 { i64::from_be_bytes(take(8)?.try_into().ok()?) } else { NO_TIMESTAMP };
            let n = take(1)?[0];
            let mut batches = VecDeque::new();
            for _ in 0..n {
                batches.push_back(ProducerBatch {
                    first_seq: i32::from_be_bytes(take(4)?.try_into().ok()?),
                    last_seq: i32::from_be_bytes(take(4)?.try_into().ok()?),
                    base_offset: i64::from_be_bytes(take(8)?.try_into().ok()?),
                    last_offset: i64::from_be_bytes(take(8)?.try_into().ok()?),
                });
            }
            let last_offset = batches.back().map_or(-1, |b| b.last_offset);
            producers.insert(id, Producer { epoch, batches, last_offset, last_timestamp });
        }
        if take(1).is_some() {
            return None; // bytes left over: not a snapshot of this format
        }
        let by_last_offset = producers.iter().map(|(&id, p)| (p.last_offset, id)).collect();
        Some(ProducerStates { producers, by_last_offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pid: i64, epoch: i16, seq: i32, records: i32, offset: Offset) -> BatchHeader {
        BatchHeader {
            base_offset: offset,
            size: 61,
            leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: records,
        }
    }

    #[test]
    fn duplicates_gaps_and_epochs() {
        let mut s = ProducerStates::default();
        // Unknown producer: any first sequence.
        let b1 = batch(7, 0, 10, 3, 100);
        assert_eq!(s.check(&[b1]), Ok(Check::Append));
        s.apply(&b1);
        let b2 = batch(7, 0, 13, 2, 103);
        assert_eq!(s.check(&[b2]), Ok(Check::Append));
        s.apply(&b2);
        // A retry of either is a duplicate with its original offsets.
        let dup = ProducerBatch { first_seq: 10, last_seq: 12, base_offset: 100, last_offset: 102 };
        assert_eq!(s.check(&[batch(7, 0, 10, 3, -1)]), Ok(Check::Duplicate(dup)));
        assert!(matches!(s.check(&[batch(7, 0, 13, 2, -1)]), Ok(Check::Duplicate(_))));
        // A gap, and a stale epoch.
        assert_eq!(
            s.check(&[batch(7, 0, 16, 1, -1)]),
            Err(SequenceError::OutOfOrder { producer_id: 7, expected: 15, got: 16 })
        );
        assert_eq!(s.check(&[batch(7, 0, 15, 1, -1)]), Ok(Check::Append));
        s.apply(&batch(7, 1, 0, 1, 105));
        assert!(matches!(
            s.check(&[batch(7, 0, 15, 1, -1)]),
            Err(SequenceError::InvalidProducerEpoch { current: 1, .. })
        ));
        // A newer epoch starts at 0.
        assert!(matches!(s.check(&[batch(7, 2, 5, 1, -1)]), Err(SequenceError::OutOfOrder { .. })));
        assert_eq!(s.check(&[batch(7, 2, 0, 1, -1)]), Ok(Check::Append));
        // Batches without a producer id are never checked.
        assert_eq!(s.check(&[batch(-1, -1, -1, 5, -1)]), Ok(Check::Append));
        // Two batches of one producer in one append must follow each other.
        assert_eq!(s.check(&[batch(7, 1, 1, 1, -1), batch(7, 1, 2, 1, -1)]), Ok(Check::Append));
        assert!(s.check(&[batch(7, 1, 1, 1, -1), batch(7, 1, 3, 1, -1)]).is_err());
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_sequences_wrap() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            s.apply(&batch(1, 0, i, 1, i as i64));
        }
        assert!(matches!(s.check(&[batch(1, 0, 2, 1, -1)]), Ok(Check::Duplicate(_))));
        assert!(s.check(&[batch(1, 0, 1, 1, -1)]).is_err(), "forgotten: out of order");
        let mut s = ProducerStates::default();
        s.apply(&batch(2, 0, i32::MAX - 1, 2, 0));
        assert_eq!(s.check(&[batch(2, 0, 0, 1, -1)]), Ok(Check::Append));
    }

    #[test]
    fn snapshots_round_trip_and_damage_is_detected() {
        let mut s = ProducerStates::default();
        for i in 0..8 {
            s.apply(&batch(i % 3, 1, i as i32 * 2, 2, i * 2));
        }
        let bytes = s.encode();
        assert_eq!(ProducerStates::decode(&bytes), Some(s));
        let mut bad = bytes.clone();
        bad[5] ^= 1;
        assert_eq!(ProducerStates::decode(&bad), None);
        assert_eq!(ProducerStates::decode(&bytes[..3]), None);
    }

    /// A version-1 snapshot (before timestamps) still loads, its
    /// producers' last timestamps unknown until their next batch.
    #[test]
    fn version_1_snapshots_load_without_timestamps() {
        let mut s = ProducerStates::default();
        let mut b = batch(7, 3, 10, 2, 100);
        b.max_timestamp = 1_700_000_000_000;
        s.apply(&b);
        assert_eq!(
            s.active(),
            vec![ActiveProducer {
                producer_id: 7,
                epoch: 3,
                last_sequence: 11,
                last_timestamp: 1_700_000_000_000
            }]
        );
        let mut v1 = Vec::new();
        v1.extend_from_slice(&1u32.to_be_bytes());
        v1.extend_from_slice(&7i64.to_be_bytes());
        v1.extend_from_slice(&3i16.to_be_bytes());
        v1.push(1);
        for v in [10i32, 11] {
            v1.extend_from_slice(&v.to_be_bytes());
        }
        for v in [100i64, 101] {
            v1.extend_from_slice(&v.to_be_bytes());
        }
        let crc = crc32fast::hash(&v1);
        v1.extend_from_slice(&crc.to_be_bytes());
        let loaded = ProducerStates::decode(&v1).unwrap();
        assert_eq!(loaded.active()[0].last_timestamp, NO_TIMESTAMP);
        assert_eq!(loaded.check(&[batch(7, 3, 10, 2, -1)]), s.check(&[batch(7, 3, 10, 2, -1)]));
    }
}
