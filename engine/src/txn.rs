//! Transactions in the log: the control batches that end them (COMMIT and
//! ABORT markers) and the aborted-transactions index kept per segment.
//!
//! Pure formats, no I/O and no state: the producers' state
//! ([`crate::producers`]) decides what a marker completes, the log
//! ([`crate::PartitionLog`]) keeps the index entries of its segments in
//! memory and in `<base:020>.txnindex` files. Runs on the log's shard.
//!
//! **Control batch** (Kafka's `EndTransactionMarker`): a v2 batch with
//! attributes `transactional | control` (0x30), the producer's id and
//! epoch, base sequence -1, one uncompressed record whose key is
//! `version: i16 = 0, type: i16` (0 ABORT, 1 COMMIT) and whose value is
//! `version: i16 = 0, coordinator_epoch: i32`, no headers. It takes one
//! offset like any batch.
//!
//! **Aborted-transactions index** (`.txnindex`, Kafka's layout): a sequence
//! of 34-byte big-endian entries, `version: i16 = 0, producer_id: i64,
//! first_offset: i64, last_offset: i64, last_stable_offset: i64`, one per
//! aborted transaction, in the order of their markers, in the file of the
//! segment holding the marker. `first_offset` is the transaction's first
//! batch in this partition (the marker's own offset when it had none),
//! `last_offset` the marker's, `last_stable_offset` the partition's first
//! unstable offset right after the abort: a reader collecting the aborted
//! transactions below some offset can stop at the first entry whose
//! `last_stable_offset` reaches it.

use crate::batch::{self, BatchHeader, HEADER_BYTES};
use crate::types::{Offset, Timestamp};

pub const TXN_INDEX_SUFFIX: &str = "txnindex";

/// Bytes of one `.txnindex` entry.
pub const TXN_ENTRY_BYTES: usize = 34;

/// The attributes of a control batch: transactional and control.
const CONTROL_ATTRIBUTES: i16 = 0x30;

/// What a control batch says: the transaction's outcome and the epoch of
/// the coordinator that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// A transaction that a marker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: Offset,
    /// The marker's offset.
    pub last_offset: Offset,
    pub aborted: bool,
}

/// One entry of the aborted-transactions index (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: Offset,
    pub last_offset: Offset,
    pub last_stable_offset: Offset,
}

impl AbortedTxn {
    pub fn encode_all(entries: &[AbortedTxn]) -> Vec<u8> {
        let mut out = Vec::with_capacity(entries.len() * TXN_ENTRY_BYTES);
        for e in entries {
            out.extend_from_slice(&0i16.to_be_bytes());
            out.extend_from_slice(&e.producer_id.to_be_bytes());
            out.extend_from_slice(&e.first_offset.to_be_bytes());
            out.extend_from_slice(&e.last_offset.to_be_bytes());
            out.extend_from_slice(&e.last_stable_offset.to_be_bytes());
        }
        out
    }

    /// Reads a `.txnindex` file; `None` if it is not one (a length that is
    /// not a multiple of an entry, an unknown version).
    pub fn decode_all(bytes: &[u8]) -> Option<Vec<AbortedTxn>> {
        if !bytes.len().is_multiple_of(TXN_ENTRY_BYTES) {
            return None;
        }
        let i64_at =
            |e: &[u8], at: usize| i64::from_be_bytes(e[at..at + 8].try_into().expect("8 bytes"));
        bytes
            .chunks_exact(TXN_ENTRY_BYTES)
            .map(|e| {
                (e[0..2] == [0, 0]).then(|| AbortedTxn {
                    producer_id: i64_at(e, 2),
                    first_offset: i64_at(e, 10),
                    last_offset: i64_at(e, 18),
                    last_stable_offset: i64_at(e, 26),
                })
            })
            .collect()
    }
}

/// Builds the control batch that ends a transaction of `producer_id` at
/// `epoch` (offsets and leader epoch are stamped at append).
pub fn build_marker(producer_id: i64, epoch: i16, marker: Marker, now: Timestamp) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&i16::from(marker.commit).to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let mut b = batch::build(&[(Some(&key), Some(&value))], now);
    b[21..23].copy_from_slice(&CONTROL_ATTRIBUTES.to_be_bytes());
    batch::set_producer(&mut b, producer_id, epoch, -1);
    b
}

/// The marker a control batch carries, if it is a transaction marker
/// (KRaft's other control records, and damaged ones, are `None`).
pub fn parse_marker(header: &BatchHeader, bytes: &[u8]) -> Option<Marker> {
    if !header.is_control() || header.compression() != 0 || bytes.len() < HEADER_BYTES {
        return None;
    }
    let records = batch::parse_records(bytes).ok()?;
    let record = records.first()?;
    let key = record.key?;
    let value = record.value?;
    if key.len() != 4 || key[0..2] != [0, 0] {
        return None;
    }
    let commit = match i16::from_be_bytes([key[2], key[3]]) {
        0 => false,
        1 => true,
        _ => return None,
    };
    if value.len() < 6 {
        return None;
    }
    let coordinator_epoch = i32::from_be_bytes(value[2..6].try_into().expect("4 bytes"));
    Some(Marker { commit, coordinator_epoch })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_are_control_batches() {
        for commit in [true, false] {
            let m = Marker { commit, coordinator_epoch: 7 };
            let b = build_marker(42, 3, m, 1_700_000_000_000);
            let h = batch::validate_one(&b).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (42, 3, -1));
            assert_eq!(h.records_count, 1);
            assert_eq!(parse_marker(&h, &b), Some(m));
        }
        let data = batch::build(&[(Some(&b"k"[..]), Some(&b"v"[..]))], 0);
        assert_eq!(parse_marker(&batch::validate_one(&data).unwrap(), &data), None);
    }

    #[test]
    fn index_entries_round_trip_and_damage_is_refused() {
        let entries = vec![
            AbortedTxn {
                producer_id: 1,
                first_offset: 10,
                last_offset: 20,
                last_stable_offset: 21,
            },
            AbortedTxn {
                producer_id: 2,
                first_offset: 15,
                last_offset: 30,
                last_stable_offset: 25,
            },
        ];
        let bytes = AbortedTxn::encode_all(&entries);
        assert_eq!(bytes.len(), 2 * TXN_ENTRY_BYTES);
        assert_eq!(AbortedTxn::decode_all(&bytes), Some(entries));
        assert_eq!(AbortedTxn::decode_all(&bytes[..33]), None);
        let mut bad = bytes.clone();
        bad[1] = 9;
        assert_eq!(AbortedTxn::decode_all(&bad), None);
        assert_eq!(AbortedTxn::decode_all(&[]), Some(vec![]));
    }
}
