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
//!
//! Transactions (Kafka's `ProducerStateManager`): a producer's first
//! transactional batch opens its transaction at that batch's offset; a
//! non-transactional batch while one is open is `InvalidTxnState`; a
//! COMMIT or ABORT marker ([`crate::txn`]) of its epoch or a newer one, from
//! a coordinator epoch no older than the last it saw, ends it. The first
//! offset of every open transaction, and of every ended one whose marker
//! the high watermark has not passed yet, holds back the last stable
//! offset ([`ProducerStates::first_unstable`]).

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::batch::BatchHeader;
use crate::txn::{CompletedTxn, Marker};
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
    /// The epoch of the coordinator that wrote its last marker; -1: none.
    coordinator_epoch: i32,
    /// The first offset of its open transaction.
    txn_first: Option<Offset>,
    /// The offset of its last marker appended since the log opened (not
    /// in the snapshot): a broker's KIP-890 check compares it before and
    /// after asking the coordinator.
    last_marker: Option<Offset>,
}

/// A producer as DescribeProducers reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub epoch: i16,
    /// The last sequence of its newest batch.
    pub last_sequence: i32,
    pub last_timestamp: Timestamp,
    pub coordinator_epoch: i32,
    /// The first offset of its open transaction; -1: none.
    pub txn_start_offset: Offset,
}

/// The first byte of a version-2 and a version-3 snapshot. Version 1 (no
/// timestamps) starts with its producer count, whose first byte is 0 (at
/// most [`PRODUCERS_PER_PARTITION_MAX`]).
const SNAPSHOT_V2: u8 = 2;
const SNAPSHOT_V3: u8 = 3;

/// Why a batch of an idempotent producer is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceError {
    /// The batch's epoch is older than the producer's current one.
    InvalidProducerEpoch { producer_id: i64, epoch: i16, current: i16 },
    /// The batch does not follow the producer's last batch.
    OutOfOrder { producer_id: i64, expected: i32, got: i32 },
    /// A non-transactional batch while the producer's transaction is open.
    InvalidTxnState { producer_id: i64, txn_first: Offset },
    /// A marker from a coordinator older than one the producer saw.
    CoordinatorFenced { producer_id: i64, coordinator_epoch: i32, current: i32 },
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
            SequenceError::InvalidTxnState { producer_id, txn_first } => write!(
                f,
                "producer {producer_id}: a non-transactional batch while its transaction \
                 from offset {txn_first} is open"
            ),
            SequenceError::CoordinatorFenced { producer_id, coordinator_epoch, current } => {
                write!(
                    f,
                    "producer {producer_id}: marker of coordinator epoch {coordinator_epoch} \
                     is older than {current}"
                )
            }
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

/// What an append checks of its batches' producers, beyond validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerCheck {
    /// Epochs and sequences: a client's produce ([`crate::PartitionLog::append`]).
    Sequences,
    /// As `Sequences`, for a producer's transactional batches after the
    /// broker asked the coordinator whether the transaction holds this
    /// partition (KIP-890): `last_marker` is the producer's last marker as
    /// [`crate::PartitionLog::producer_txn`] saw it before asking. A marker
    /// appended meanwhile ended the transaction the answer was about, so
    /// the append is refused (`InvalidTxnState`) rather than open a
    /// transaction no coordinator knows of.
    Verified { producer_id: i64, last_marker: Option<Offset> },
    /// As `Verified`, but epochs only: the broker's own transactional
    /// writes for a producer (TxnOffsetCommit into `__consumer_offsets`),
    /// which carry its id and epoch but none of its sequences, as Kafka's
    /// coordinator writes.
    Coordinator { producer_id: i64, last_marker: Option<Offset> },
}

/// The producers of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerStates {
    producers: HashMap<i64, Producer>,
    /// (last offset, producer id) of every producer without an open
    /// transaction: the idlest is first, so forgetting one beyond the
    /// bound costs a log, not a scan of 10,000 (a request of many batches
    /// with distinct ids did that per batch, with the shard blocked). A
    /// producer with an open transaction is never forgotten: its first
    /// offset holds the last stable offset until its marker.
    by_last_offset: BTreeSet<(Offset, i64)>,
    /// (first offset, producer id) of every open transaction.
    ongoing: BTreeSet<(Offset, i64)>,
    /// (first offset, marker offset) of ended transactions, in marker
    /// order, until the high watermark passes their marker. Not in the
    /// snapshot: replay finds them again.
    completed: VecDeque<(Offset, Offset)>,
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
        // Later batches of the same producer in this append follow earlier
        // ones: (epoch, last sequence, its transaction open).
        let mut pending: HashMap<i64, (i16, i32, bool)> = HashMap::new();
        for h in headers {
            if h.producer_id < 0 {
                continue;
            }
            let known = self.producers.get(&h.producer_id);
            let (epoch, last, in_txn) = match pending.get(&h.producer_id) {
                Some(&(e, s, t)) => (Some(e), Some(s), t),
                None => (
                    known.map(|p| p.epoch),
                    known.and_then(|p| p.batches.back()).map(|b| b.last_seq),
                    known.is_some_and(|p| p.txn_first.is_some()),
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
            if in_txn && !h.is_transactional() {
                let txn_first = known.and_then(|p| p.txn_first).unwrap_or(-1);
                return Err(SequenceError::InvalidTxnState {
                    producer_id: h.producer_id,
                    txn_first,
                });
            }
            let in_txn = in_txn || h.is_transactional();
            pending.insert(h.producer_id, (h.producer_epoch, last_seq(h), in_txn));
        }
        Ok(Check::Append)
    }

    /// Checks only the producers' epochs (not their sequences) of an
    /// append: the broker's own writes for a producer.
    pub fn check_epochs(&self, headers: &[BatchHeader]) -> Result<(), SequenceError> {
        for h in headers.iter().filter(|h| h.producer_id >= 0) {
            if let Some(p) = self.producers.get(&h.producer_id) {
                if h.producer_epoch < p.epoch {
                    return Err(SequenceError::InvalidProducerEpoch {
                        producer_id: h.producer_id,
                        epoch: h.producer_epoch,
                        current: p.epoch,
                    });
                }
            }
        }
        Ok(())
    }

    /// Checks a transaction marker for `producer_id` before it is appended:
    /// its epoch is the producer's or newer, its coordinator epoch no older
    /// than the last marker's.
    pub fn check_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        marker: Marker,
    ) -> Result<(), SequenceError> {
        let Some(p) = self.producers.get(&producer_id) else { return Ok(()) };
        if epoch < p.epoch {
            return Err(SequenceError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current: p.epoch,
            });
        }
        if marker.coordinator_epoch < p.coordinator_epoch {
            return Err(SequenceError::CoordinatorFenced {
                producer_id,
                coordinator_epoch: marker.coordinator_epoch,
                current: p.coordinator_epoch,
            });
        }
        Ok(())
    }

    /// Records an appended batch (its `base_offset` assigned); `marker` is
    /// what a control batch says ([`crate::txn::parse_marker`]). Returns the
    /// transaction a marker ended.
    pub fn apply(&mut self, h: &BatchHeader, marker: Option<Marker>) -> Option<CompletedTxn> {
        if h.producer_id < 0 {
            return None;
        }
        if h.is_control() {
            return marker.map(|m| self.apply_marker(h, m));
        }
        let batch = ProducerBatch {
            first_seq: h.base_sequence,
            last_seq: last_seq(h),
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
        };
        let p = self.touch(h);
        if h.producer_epoch != p.epoch {
            p.epoch = h.producer_epoch;
            p.batches.clear();
        }
        p.batches.push_back(batch);
        while p.batches.len() > PRODUCER_BATCHES_KEPT {
            p.batches.pop_front();
        }
        if h.is_transactional() && p.txn_first.is_none() {
            p.txn_first = Some(h.base_offset);
            self.by_last_offset.remove(&(batch.last_offset, h.producer_id));
            self.ongoing.insert((h.base_offset, h.producer_id));
        }
        self.forget_idlest();
        None
    }

    /// The producer of `h`, created if new, its newest offset and time
    /// moved to `h`'s.
    fn touch(&mut self, h: &BatchHeader) -> &mut Producer {
        let last_offset = h.last_offset();
        let p = self.producers.entry(h.producer_id).or_insert(Producer {
            epoch: h.producer_epoch,
            batches: VecDeque::new(),
            last_offset,
            last_timestamp: NO_TIMESTAMP,
            coordinator_epoch: -1,
            txn_first: None,
            last_marker: None,
        });
        p.last_timestamp = h.max_timestamp;
        if p.txn_first.is_none() {
            self.by_last_offset.remove(&(p.last_offset, h.producer_id));
            self.by_last_offset.insert((last_offset, h.producer_id));
        }
        p.last_offset = last_offset;
        p
    }

    fn apply_marker(&mut self, h: &BatchHeader, m: Marker) -> CompletedTxn {
        let p = self.touch(h);
        if h.producer_epoch != p.epoch {
            p.epoch = h.producer_epoch;
            p.batches.clear();
        }
        p.coordinator_epoch = m.coordinator_epoch;
        p.last_marker = Some(h.base_offset);
        let first = p.txn_first.take();
        if let Some(first) = first {
            self.ongoing.remove(&(first, h.producer_id));
            self.by_last_offset.insert((h.last_offset(), h.producer_id));
        }
        let first_offset = first.unwrap_or(h.base_offset);
        self.completed.push_back((first_offset, h.base_offset));
        self.forget_idlest();
        CompletedTxn {
            producer_id: h.producer_id,
            first_offset,
            last_offset: h.base_offset,
            aborted: !m.commit,
        }
    }

    fn forget_idlest(&mut self) {
        if self.producers.len() > PRODUCERS_PER_PARTITION_MAX {
            if let Some((_, id)) = self.by_last_offset.pop_first() {
                self.producers.remove(&id);
            }
        }
        debug_assert_eq!(self.producers.len(), self.by_last_offset.len() + self.ongoing.len());
    }

    /// Whether `producer_id` has a transaction open at `epoch`, and the
    /// offset of its last marker since the log opened.
    pub fn txn_of(&self, producer_id: i64, epoch: i16) -> (bool, Option<Offset>) {
        match self.producers.get(&producer_id) {
            Some(p) => (p.epoch == epoch && p.txn_first.is_some(), p.last_marker),
            None => (false, None),
        }
    }

    /// The first offset of an open transaction other than `producer_id`'s,
    /// else `after`: an aborted transaction's `last_stable_offset`.
    pub fn next_unstable(&self, producer_id: i64, after: Offset) -> Offset {
        self.ongoing.iter().find(|(_, id)| *id != producer_id).map_or(after, |(first, _)| *first)
    }

    /// The first offset a read_committed reader may not pass: the first
    /// offset of an open transaction, or of an ended one whose marker is
    /// at or past `high_watermark` (its outcome not yet replicated);
    /// `None` when there is none. Forgets the ended transactions the high
    /// watermark passed.
    pub fn first_unstable(&mut self, high_watermark: Offset) -> Option<Offset> {
        self.forget_replicated(high_watermark);
        let open = self.ongoing.first().map(|(first, _)| *first);
        let ended = self.completed.iter().map(|(first, _)| *first).min();
        open.into_iter().chain(ended).min()
    }

    /// Forgets the ended transactions whose markers are below the high
    /// watermark (called as it moves, so the queue stays as short as the
    /// markers not yet replicated).
    pub fn forget_replicated(&mut self, high_watermark: Offset) {
        while self.completed.front().is_some_and(|(_, marker)| *marker < high_watermark) {
            self.completed.pop_front();
        }
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
                coordinator_epoch: p.coordinator_epoch,
                txn_start_offset: p.txn_first.unwrap_or(-1),
            })
            .collect();
        out.sort_unstable_by_key(|p| p.producer_id);
        out
    }

    /// The snapshot format (all big-endian), written by the log as
    /// `<offset:020>.producers`, version 3: the byte 3, `count: u32`, then
    /// per producer `producer_id: i64`, `epoch: i16`, `last_timestamp:
    /// i64`, `coordinator_epoch: i32`, `txn_first: i64` (-1: no open
    /// transaction), `batches: u8`, then per batch `first_seq: i32`,
    /// `last_seq: i32`, `base_offset: i64`, `last_offset: i64`; then a
    /// CRC-32 (IEEE) of everything before it. Read, never written: version
    /// 2 (the byte 2, no coordinator epoch nor transaction) and version 1
    /// (no leading byte, no timestamps either).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + self.producers.len() * 84);
        out.push(SNAPSHOT_V3);
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let p = &self.producers[&id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&p.epoch.to_be_bytes());
            out.extend_from_slice(&p.last_timestamp.to_be_bytes());
            out.extend_from_slice(&p.coordinator_epoch.to_be_bytes());
            out.extend_from_slice(&p.txn_first.unwrap_or(-1).to_be_bytes());
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
        let version = match body.first() {
            Some(&SNAPSHOT_V3) => 3,
            Some(&SNAPSHOT_V2) => 2,
            _ => 1,
        };
        let mut at = usize::from(version > 1);
        let mut take = |n: usize| {
            let s = body.get(at..at + n)?;
            at += n;
            Some(s)
        };
        let count = u32::from_be_bytes(take(4)?.try_into().ok()?);
        let mut states = ProducerStates::default();
        for _ in 0..count {
            let id = i64::from_be_bytes(take(8)?.try_into().ok()?);
            let epoch = i16::from_be_bytes(take(2)?.try_into().ok()?);
            let last_timestamp = if version > 1 {
                i64::from_be_bytes(take(8)?.try_into().ok()?)
            } else {
                NO_TIMESTAMP
            };
            let (coordinator_epoch, txn_first) = if version > 2 {
                let c = i32::from_be_bytes(take(4)?.try_into().ok()?);
                let t = i64::from_be_bytes(take(8)?.try_into().ok()?);
                (c, (t >= 0).then_some(t))
            } else {
                (-1, None)
            };
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
            let last_offset =
                batches.back().map_or(-1, |b| b.last_offset).max(txn_first.unwrap_or(-1));
            match txn_first {
                Some(first) => states.ongoing.insert((first, id)),
                None => states.by_last_offset.insert((last_offset, id)),
            };
            let p = Producer {
                epoch,
                batches,
                last_offset,
                last_timestamp,
                coordinator_epoch,
                txn_first,
                last_marker: None,
            };
            if states.producers.insert(id, p).is_some() {
                return None; // an id twice: not a snapshot this code wrote
            }
        }
        if take(1).is_some() {
            return None; // bytes left over: not a snapshot of this format
        }
        Some(states)
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
        s.apply(&b1, None);
        let b2 = batch(7, 0, 13, 2, 103);
        assert_eq!(s.check(&[b2]), Ok(Check::Append));
        s.apply(&b2, None);
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
        s.apply(&batch(7, 1, 0, 1, 105), None);
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
            s.apply(&batch(1, 0, i, 1, i as i64), None);
        }
        assert!(matches!(s.check(&[batch(1, 0, 2, 1, -1)]), Ok(Check::Duplicate(_))));
        assert!(s.check(&[batch(1, 0, 1, 1, -1)]).is_err(), "forgotten: out of order");
        let mut s = ProducerStates::default();
        s.apply(&batch(2, 0, i32::MAX - 1, 2, 0), None);
        assert_eq!(s.check(&[batch(2, 0, 0, 1, -1)]), Ok(Check::Append));
    }

    #[test]
    fn snapshots_round_trip_and_damage_is_detected() {
        let mut s = ProducerStates::default();
        for i in 0..8 {
            s.apply(&batch(i % 3, 1, i as i32 * 2, 2, i * 2), None);
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
        s.apply(&b, None);
        assert_eq!(
            s.active(),
            vec![ActiveProducer {
                producer_id: 7,
                epoch: 3,
                last_sequence: 11,
                last_timestamp: 1_700_000_000_000,
                coordinator_epoch: -1,
                txn_start_offset: -1,
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

    fn txn(pid: i64, epoch: i16, seq: i32, records: i32, offset: Offset) -> BatchHeader {
        BatchHeader { attributes: 0x10, ..batch(pid, epoch, seq, records, offset) }
    }

    fn marker(pid: i64, epoch: i16, offset: Offset) -> BatchHeader {
        BatchHeader { attributes: 0x30, base_sequence: -1, ..batch(pid, epoch, -1, 1, offset) }
    }

    #[test]
    fn transactions_open_end_and_hold_the_stable_offset() {
        let mut s = ProducerStates::default();
        s.apply(&batch(1, 0, 0, 2, 0), None);
        assert_eq!(s.first_unstable(2), None);
        // Producer 2 opens a transaction at 2, producer 3 at 5.
        s.apply(&txn(2, 0, 0, 3, 2), None);
        s.apply(&txn(3, 0, 0, 1, 5), None);
        s.apply(&txn(2, 0, 3, 1, 6), None);
        assert_eq!(s.first_unstable(7), Some(2));
        assert_eq!(s.active()[1].txn_start_offset, 2);
        // A non-transactional batch of an open transaction's producer is refused.
        assert!(matches!(
            s.check(&[batch(2, 0, 4, 1, -1)]),
            Err(SequenceError::InvalidTxnState { producer_id: 2, txn_first: 2 })
        ));
        assert_eq!(s.check(&[txn(2, 0, 4, 1, -1)]), Ok(Check::Append));
        // Producer 2 aborts at 7: its range is 2..=7, the next unstable is 5.
        let m = Marker { commit: false, coordinator_epoch: 4 };
        assert_eq!(s.check_marker(2, 0, m), Ok(()));
        let done = s.apply(&marker(2, 0, 7), Some(m)).unwrap();
        assert_eq!(
            done,
            CompletedTxn { producer_id: 2, first_offset: 2, last_offset: 7, aborted: true }
        );
        assert_eq!(s.next_unstable(2, 8), 5);
        // Until the high watermark passes the marker, 2 still holds.
        assert_eq!(s.first_unstable(7), Some(2));
        assert_eq!(s.first_unstable(8), Some(5));
        // Markers from an older coordinator or epoch are refused.
        assert!(matches!(
            s.check_marker(2, 0, Marker { commit: true, coordinator_epoch: 3 }),
            Err(SequenceError::CoordinatorFenced { current: 4, .. })
        ));
        assert!(matches!(
            s.check_marker(3, -1, m),
            Err(SequenceError::InvalidProducerEpoch { .. })
        ));
        // Producer 3 commits with a bumped epoch (KIP-890's marker epoch).
        let c = Marker { commit: true, coordinator_epoch: 4 };
        let done = s.apply(&marker(3, 1, 8), Some(c)).unwrap();
        assert_eq!((done.first_offset, done.aborted), (5, false));
        assert_eq!(s.first_unstable(9), None);
        assert!(matches!(
            s.check(&[txn(3, 0, 1, 1, -1)]),
            Err(SequenceError::InvalidProducerEpoch { .. })
        ));
        // A marker of a producer with no open transaction spans itself.
        let done = s.apply(&marker(9, 0, 9), Some(m)).unwrap();
        assert_eq!((done.first_offset, done.last_offset), (9, 9));
    }

    #[test]
    fn open_transactions_survive_snapshots_and_are_never_forgotten() {
        let mut s = ProducerStates::default();
        s.apply(&txn(1, 2, 0, 2, 10), None);
        s.apply(&batch(2, 0, 0, 1, 12), None);
        s.apply(&marker(2, 0, 13), Some(Marker { commit: true, coordinator_epoch: 6 }));
        let mut loaded = ProducerStates::decode(&s.encode()).unwrap();
        assert_eq!(loaded.active(), s.active());
        assert_eq!(loaded.first_unstable(100), Some(10));
        for id in 100..100 + PRODUCERS_PER_PARTITION_MAX as i64 {
            loaded.apply(&batch(id, 0, 0, 1, id * 2), None);
        }
        assert_eq!(loaded.len(), PRODUCERS_PER_PARTITION_MAX);
        assert_eq!(loaded.first_unstable(i64::MAX), Some(10), "the open transaction stays");
    }
}
