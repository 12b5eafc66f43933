//! The transaction coordinator's rules, as pure functions from a
//! transactional id's stored state and a request to the record to write
//! (or the error to answer): Kafka's `TransactionCoordinator` and
//! `TransactionMetadata` transitions.
//!
//! ```text
//! Empty/Complete* --AddPartitions--> Ongoing --EndTxn--> PrepareCommit/Abort
//!        ^                              |                        | markers written
//!        +-------- InitProducerId ------+ (aborts first,         v
//!                  (epoch + 1)            epoch + 1)       CompleteCommit/Abort
//! ```
//!
//! No I/O and no clock: the coordinator ([`super::Transactions`]) passes
//! `now`, writes the records and sends the markers.

use std::collections::BTreeSet;

use net::kafka_protocol::error::ResponseError;

use super::records::{TxnRecord, TxnStatus};

/// Kafka's `transaction.max.timeout.ms`: the longest
/// `transaction.timeout.ms` a producer may ask for (15 minutes).
pub const TRANSACTION_TIMEOUT_MAX_MS: i32 = 900_000;

fn code(e: ResponseError) -> i16 {
    e.code()
}

fn preparing(s: TxnStatus) -> bool {
    matches!(s, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort | TxnStatus::PrepareEpochFence)
}

/// What InitProducerId does with a transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Init {
    /// A producer id is needed first (a new id, or an epoch run out).
    NeedProducerId,
    /// Write this record, then answer with its producer id and epoch.
    Write(TxnRecord),
    /// The open transaction of an older producer instance is aborted first
    /// (this PrepareAbort record, with the epoch bumped to fence it, then
    /// its markers); the client is told to retry
    /// (`CONCURRENT_TRANSACTIONS`).
    AbortFirst(TxnRecord),
    /// A retry of an InitProducerId that took effect: answer as it.
    Current(i64, i16),
}

/// InitProducerId for a transactional id whose state is `current`.
/// `expected`: the producer id and epoch the client names (v3+; -1 when
/// none). `fresh`: a new producer id, when [`Init::NeedProducerId`] asked.
pub fn init(
    current: Option<&TxnRecord>,
    timeout_ms: i32,
    expected: (i64, i16),
    fresh: Option<i64>,
    now: i64,
) -> Result<Init, i16> {
    if timeout_ms <= 0 || timeout_ms > TRANSACTION_TIMEOUT_MAX_MS {
        return Err(code(ResponseError::InvalidTransactionTimeout));
    }
    let empty = |producer_id, epoch| TxnRecord {
        producer_id,
        epoch,
        timeout_ms,
        status: TxnStatus::Empty,
        partitions: BTreeSet::new(),
        last_update_ms: now,
        start_ms: -1,
    };
    let Some(cur) = current else {
        return Ok(match fresh {
            Some(id) => Init::Write(empty(id, 0)),
            None => Init::NeedProducerId,
        });
    };
    if expected.0 >= 0 {
        if expected.0 != cur.producer_id {
            return Err(code(ResponseError::ProducerFenced));
        }
        if expected.1 != cur.epoch {
            // The answer to an earlier bump was lost: that bump stands.
            if expected.1 == cur.epoch - 1 && cur.status == TxnStatus::Empty {
                return Ok(Init::Current(cur.producer_id, cur.epoch));
            }
            return Err(code(ResponseError::ProducerFenced));
        }
    }
    if preparing(cur.status) {
        return Err(code(ResponseError::ConcurrentTransactions));
    }
    if cur.status == TxnStatus::Ongoing {
        return Ok(Init::AbortFirst(TxnRecord {
            epoch: cur.epoch.saturating_add(1),
            status: TxnStatus::PrepareAbort,
            last_update_ms: now,
            ..cur.clone()
        }));
    }
    // Epochs run out a little before i16::MAX, as Kafka's: a new id then.
    if cur.epoch >= i16::MAX - 1 {
        return Ok(match fresh {
            Some(id) => Init::Write(empty(id, 0)),
            None => Init::NeedProducerId,
        });
    }
    Ok(Init::Write(empty(cur.producer_id, cur.epoch + 1)))
}

/// The producer id and epoch a request names against the stored ones.
fn check_producer(cur: Option<&TxnRecord>, pid: i64, epoch: i16) -> Result<&TxnRecord, i16> {
    let cur = cur.ok_or(code(ResponseError::InvalidProducerIdMapping))?;
    if cur.producer_id != pid {
        return Err(code(ResponseError::InvalidProducerIdMapping));
    }
    if cur.epoch != epoch {
        return Err(code(ResponseError::ProducerFenced));
    }
    Ok(cur)
}

/// AddPartitionsToTxn (and AddOffsetsToTxn): the record that adds
/// `partitions` to the transaction, opening it if needed; `None` when
/// they are all in it already.
pub fn add_partitions(
    current: Option<&TxnRecord>,
    pid: i64,
    epoch: i16,
    partitions: &BTreeSet<(String, i32)>,
    now: i64,
) -> Result<Option<TxnRecord>, i16> {
    let cur = check_producer(current, pid, epoch)?;
    if preparing(cur.status) {
        return Err(code(ResponseError::ConcurrentTransactions));
    }
    if cur.status == TxnStatus::Dead {
        return Err(code(ResponseError::InvalidTxnState));
    }
    let open = cur.status == TxnStatus::Ongoing;
    if open && partitions.is_subset(&cur.partitions) {
        return Ok(None);
    }
    let mut all = if open { cur.partitions.clone() } else { BTreeSet::new() };
    all.extend(partitions.iter().cloned());
    Ok(Some(TxnRecord {
        status: TxnStatus::Ongoing,
        partitions: all,
        last_update_ms: now,
        start_ms: if open { cur.start_ms } else { now },
        ..cur.clone()
    }))
}

/// KIP-890's check of a partition leader before it takes a producer's
/// first transactional batch: the transaction is open, of this producer
/// and epoch, and holds the partition.
pub fn verify(
    current: Option<&TxnRecord>,
    pid: i64,
    epoch: i16,
    partition: &(String, i32),
) -> Result<(), i16> {
    let cur = check_producer(current, pid, epoch)?;
    if cur.status == TxnStatus::Ongoing && cur.partitions.contains(partition) {
        Ok(())
    } else {
        Err(code(ResponseError::InvalidTxnState))
    }
}

/// What EndTxn does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Write this PrepareCommit or PrepareAbort record, answer, then write
    /// the markers.
    Prepare(TxnRecord),
    /// A retry of an EndTxn that completed: answer success.
    Done,
}

/// EndTxn: commit (`commit`) or abort the open transaction.
pub fn end(
    current: Option<&TxnRecord>,
    pid: i64,
    epoch: i16,
    commit: bool,
    now: i64,
) -> Result<End, i16> {
    let cur = check_producer(current, pid, epoch)?;
    match (cur.status, commit) {
        (TxnStatus::Ongoing, _) => Ok(End::Prepare(TxnRecord {
            status: if commit { TxnStatus::PrepareCommit } else { TxnStatus::PrepareAbort },
            last_update_ms: now,
            ..cur.clone()
        })),
        (TxnStatus::CompleteCommit, true) | (TxnStatus::CompleteAbort, false) => Ok(End::Done),
        (TxnStatus::PrepareCommit, true) | (TxnStatus::PrepareAbort, false) => {
            Err(code(ResponseError::ConcurrentTransactions))
        }
        _ => Err(code(ResponseError::InvalidTxnState)),
    }
}

/// The record that completes a prepared transaction once its markers are
/// written everywhere; `None` if `current` is not prepared.
pub fn complete(current: &TxnRecord, now: i64) -> Option<TxnRecord> {
    let status = match current.status {
        TxnStatus::PrepareCommit => TxnStatus::CompleteCommit,
        TxnStatus::PrepareAbort => TxnStatus::CompleteAbort,
        _ => return None,
    };
    Some(TxnRecord { status, partitions: BTreeSet::new(), last_update_ms: now, ..current.clone() })
}

/// The record that aborts a transaction open past its timeout, with the
/// epoch bumped so the producer that let it run out is fenced (Kafka's
/// abort of expired transactions); `None` if it has not run out.
pub fn expire(current: &TxnRecord, now: i64) -> Option<TxnRecord> {
    let deadline = current.start_ms.saturating_add(i64::from(current.timeout_ms));
    (current.status == TxnStatus::Ongoing && now > deadline).then(|| TxnRecord {
        epoch: current.epoch.saturating_add(1).min(i16::MAX - 1),
        status: TxnStatus::PrepareAbort,
        last_update_ms: now,
        ..current.clone()
    })
}

/// Whether an id in `r` is idle past `expiration_ms` at `now`: no
/// transaction open or ending, and no change since (Kafka's
/// `transactional.id.expiration.ms`, checked on the same states).
pub fn idle(r: &TxnRecord, now: i64, expiration_ms: i64) -> bool {
    matches!(r.status, TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort)
        && r.last_update_ms.saturating_add(expiration_ms) <= now
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(list: &[(&str, i32)]) -> BTreeSet<(String, i32)> {
        list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    }

    fn applied(r: Result<Option<TxnRecord>, i16>) -> TxnRecord {
        r.unwrap().unwrap()
    }

    #[test]
    fn a_transaction_runs_its_course_and_retries_are_answered() {
        let none = (-1, -1);
        assert_eq!(init(None, 60_000, none, None, 0), Ok(Init::NeedProducerId));
        let Ok(Init::Write(r)) = init(None, 60_000, none, Some(7), 0) else { panic!() };
        assert_eq!((r.producer_id, r.epoch, r.status), (7, 0, TxnStatus::Empty));
        assert_eq!(
            end(Some(&r), 7, 0, true, 1),
            Err(ResponseError::InvalidTxnState.code()),
            "nothing to end"
        );
        let r = applied(add_partitions(Some(&r), 7, 0, &parts(&[("a", 0)]), 10));
        assert_eq!((r.status, r.start_ms), (TxnStatus::Ongoing, 10));
        assert_eq!(add_partitions(Some(&r), 7, 0, &parts(&[("a", 0)]), 11), Ok(None));
        let r = applied(add_partitions(Some(&r), 7, 0, &parts(&[("b", 1)]), 12));
        assert_eq!((r.partitions.len(), r.start_ms), (2, 10));
        assert_eq!(verify(Some(&r), 7, 0, &("b".into(), 1)), Ok(()));
        assert!(verify(Some(&r), 7, 0, &("c".into(), 0)).is_err());
        assert_eq!(
            verify(Some(&r), 7, 1, &("b".into(), 1)),
            Err(ResponseError::ProducerFenced.code())
        );
        let Ok(End::Prepare(r)) = end(Some(&r), 7, 0, true, 20) else { panic!() };
        assert_eq!(r.status, TxnStatus::PrepareCommit);
        assert_eq!(
            end(Some(&r), 7, 0, true, 21),
            Err(ResponseError::ConcurrentTransactions.code())
        );
        assert!(add_partitions(Some(&r), 7, 0, &parts(&[("a", 0)]), 21).is_err());
        assert!(verify(Some(&r), 7, 0, &("a".into(), 0)).is_err(), "a late produce cannot join");
        assert!(!idle(&r, 1_000_000, 10), "a transaction ending is never idle");
        let r = complete(&r, 30).unwrap();
        assert_eq!((r.status, r.partitions.len()), (TxnStatus::CompleteCommit, 0));
        assert!(!idle(&r, 39, 10) && idle(&r, 40, 10), "idle from the last change on");
        assert_eq!(end(Some(&r), 7, 0, true, 31), Ok(End::Done), "a retried commit");
        assert_eq!(end(Some(&r), 7, 0, false, 31), Err(ResponseError::InvalidTxnState.code()));
        // A new producer instance bumps the epoch; the old one is fenced.
        let Ok(Init::Write(r)) = init(Some(&r), 60_000, none, None, 40) else { panic!() };
        assert_eq!(r.epoch, 1);
        assert_eq!(
            add_partitions(Some(&r), 7, 0, &parts(&[("a", 0)]), 41),
            Err(ResponseError::ProducerFenced.code())
        );
        assert_eq!(init(Some(&r), 60_000, (7, 0), None, 42), Ok(Init::Current(7, 1)));
        assert_eq!(
            init(Some(&r), 60_000, (8, 1), None, 42),
            Err(ResponseError::ProducerFenced.code())
        );
        assert!(init(Some(&r), TRANSACTION_TIMEOUT_MAX_MS + 1, none, None, 42).is_err());
    }

    #[test]
    fn an_open_transaction_is_aborted_by_a_new_instance_or_its_timeout() {
        let Ok(Init::Write(r)) = init(None, 1_000, (-1, -1), Some(9), 0) else { panic!() };
        let r = applied(add_partitions(Some(&r), 9, 0, &parts(&[("a", 0)]), 100));
        assert_eq!(expire(&r, 1_100), None);
        let aborted = expire(&r, 1_101).unwrap();
        assert_eq!((aborted.status, aborted.epoch), (TxnStatus::PrepareAbort, 1));
        let Ok(Init::AbortFirst(fence)) = init(Some(&r), 1_000, (-1, -1), None, 200) else {
            panic!()
        };
        assert_eq!(
            (fence.status, fence.epoch, fence.partitions.len()),
            (TxnStatus::PrepareAbort, 1, 1)
        );
        assert_eq!(
            init(Some(&fence), 1_000, (-1, -1), None, 201),
            Err(ResponseError::ConcurrentTransactions.code())
        );
        let done = complete(&fence, 300).unwrap();
        let Ok(Init::Write(r)) = init(Some(&done), 1_000, (-1, -1), None, 301) else { panic!() };
        assert_eq!((r.epoch, r.status), (2, TxnStatus::Empty));
    }
}
