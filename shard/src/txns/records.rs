//! The records of `__transaction_state`: one per change of a transactional
//! id's state, in Kafka's own key and value layouts (`TransactionLogKey`,
//! `TransactionLogValue` version 0), so the topic reads the same as Kafka's.
//! The last record of an id is its state; compaction keeps only it.
//!
//! All integers big-endian, strings as `i16` length + UTF-8:
//!
//! - key: `version: i16 = 0`, `transactional_id: string`;
//! - value, version 0: `version: i16 = 0`, `producer_id: i64`,
//!   `producer_epoch: i16`, `transaction_timeout_ms: i32`,
//!   `transaction_status: i8` (0 Empty, 1 Ongoing, 2 PrepareCommit,
//!   3 PrepareAbort, 4 CompleteCommit, 5 CompleteAbort, 6 Dead,
//!   7 PrepareEpochFence), `transaction_partitions: i32 count` (-1: null)
//!   then per topic `topic: string`, `partition_ids: i32 count` and each
//!   `i32`, `last_update_timestamp_ms: i64`, `start_timestamp_ms: i64`;
//! - a null value (a tombstone) forgets the id.
//!
//! Pure functions, no I/O; used by the transaction coordinator on the
//! shard that leads the partition.

use std::collections::BTreeSet;

use crate::groups::records::Reader;

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;

/// Kafka's transaction states, with their stored codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnStatus {
    fn code(self) -> i8 {
        self as i8
    }

    fn from_code(code: i8) -> Option<TxnStatus> {
        use TxnStatus::*;
        [
            Empty,
            Ongoing,
            PrepareCommit,
            PrepareAbort,
            CompleteCommit,
            CompleteAbort,
            Dead,
            PrepareEpochFence,
        ]
        .get(usize::try_from(code).ok()?)
        .copied()
    }

    /// The state called `name` (Kafka's names, case-sensitive as Kafka).
    pub fn from_name(name: &str) -> Option<TxnStatus> {
        (0..8).filter_map(TxnStatus::from_code).find(|s| s.name() == name)
    }

    /// The name DescribeTransactions and ListTransactions report, Kafka's.
    pub fn name(self) -> &'static str {
        match self {
            TxnStatus::Empty => "Empty",
            TxnStatus::Ongoing => "Ongoing",
            TxnStatus::PrepareCommit => "PrepareCommit",
            TxnStatus::PrepareAbort => "PrepareAbort",
            TxnStatus::CompleteCommit => "CompleteCommit",
            TxnStatus::CompleteAbort => "CompleteAbort",
            TxnStatus::Dead => "Dead",
            TxnStatus::PrepareEpochFence => "PrepareEpochFence",
        }
    }
}

/// A transactional id's state as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    pub producer_id: i64,
    pub epoch: i16,
    pub timeout_ms: i32,
    pub status: TxnStatus,
    /// The partitions of the transaction, (topic, partition), sorted.
    pub partitions: BTreeSet<(String, i32)>,
    pub last_update_ms: i64,
    pub start_ms: i64,
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    // Transactional ids and topic names are bounded far below i16::MAX
    // by the handlers.
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

pub fn key(transactional_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + transactional_id.len());
    out.extend_from_slice(&KEY_VERSION.to_be_bytes());
    put_string(&mut out, transactional_id);
    out
}

pub fn value(r: &TxnRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&r.producer_id.to_be_bytes());
    out.extend_from_slice(&r.epoch.to_be_bytes());
    out.extend_from_slice(&r.timeout_ms.to_be_bytes());
    out.push(r.status.code() as u8);
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, p) in &r.partitions {
        match topics.last_mut() {
            Some((t, ps)) if *t == topic.as_str() => ps.push(*p),
            _ => topics.push((topic, vec![*p])),
        }
    }
    out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for (topic, ps) in topics {
        put_string(&mut out, topic);
        out.extend_from_slice(&(ps.len() as i32).to_be_bytes());
        for p in ps {
            out.extend_from_slice(&p.to_be_bytes());
        }
    }
    out.extend_from_slice(&r.last_update_ms.to_be_bytes());
    out.extend_from_slice(&r.start_ms.to_be_bytes());
    out
}

/// Decodes one record: the transactional id and its state (`None` for a
/// tombstone). Refuses layouts it does not know rather than guess.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<(String, Option<TxnRecord>), String> {
    let mut k = Reader { bytes: key, at: 0 };
    let version = k.i16()?;
    if version != KEY_VERSION {
        return Err(format!("unknown key version {version}"));
    }
    let id = k.string()?;
    let Some(value) = value else { return Ok((id, None)) };
    let mut v = Reader { bytes: value, at: 0 };
    let version = v.i16()?;
    if version != VALUE_VERSION {
        return Err(format!("unknown value version {version}"));
    }
    let producer_id = v.i64()?;
    let epoch = v.i16()?;
    let timeout_ms = v.i32()?;
    let code = v.i8()?;
    let status = TxnStatus::from_code(code).ok_or_else(|| format!("unknown status {code}"))?;
    let mut partitions = BTreeSet::new();
    let topics = v.i32()?;
    for _ in 0..topics.max(0) {
        let topic = v.string()?;
        let count = v.i32()?;
        for _ in 0..count.max(0) {
            partitions.insert((topic.clone(), v.i32()?));
        }
    }
    let last_update_ms = v.i64()?;
    let start_ms = v.i64()?;
    if v.at != value.len() {
        return Err("bytes after the value".into());
    }
    Ok((
        id,
        Some(TxnRecord {
            producer_id,
            epoch,
            timeout_ms,
            status,
            partitions,
            last_update_ms,
            start_ms,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_refused() {
        let r = TxnRecord {
            producer_id: 4000,
            epoch: 3,
            timeout_ms: 60_000,
            status: TxnStatus::Ongoing,
            partitions: [("a".to_string(), 0), ("a".to_string(), 2), ("b".to_string(), 1)]
                .into_iter()
                .collect(),
            last_update_ms: 1_700_000_000_123,
            start_ms: 1_700_000_000_000,
        };
        let (k, v) = (key("tx-1"), value(&r));
        assert_eq!(decode(&k, Some(&v)), Ok(("tx-1".to_string(), Some(r.clone()))));
        assert_eq!(decode(&k, None), Ok(("tx-1".to_string(), None)));
        // Kafka's layout: version 0, then the producer id.
        assert_eq!(&v[..10], &[0, 0, 0, 0, 0, 0, 0, 0, 0x0f, 0xa0]);
        assert!(decode(&k, Some(&v[..v.len() - 1])).is_err());
        let mut bad = v.clone();
        bad[16] = 9; // the status
        assert!(decode(&k, Some(&bad)).is_err());
        assert!(decode(&k[..3], Some(&v)).is_err());
        for status in 0..8 {
            assert_eq!(TxnStatus::from_code(status).unwrap().code(), status);
        }
    }
}
