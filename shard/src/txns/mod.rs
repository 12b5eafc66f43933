//! The transaction coordinator's state on one shard: the transactional ids
//! whose `__transaction_state` partition this shard leads, each with its
//! last stored record ([`records`]), and the rules that change them
//! ([`state`]).
//!
//! Runs on the shard's own executor; all state is shard-local (`RefCell`,
//! never borrowed across an `.await`). A record is applied here only once
//! it is durable in the partition (the handlers write it, then call
//! [`Transactions::apply`]); while one is on its way the id is busy and
//! other requests for it are told `CONCURRENT_TRANSACTIONS`, as Kafka's
//! pending state does. The coordinator epoch of a partition is its leader
//! epoch when it was loaded: markers carry it, so a deposed coordinator's
//! late markers are refused by the partitions. This module must not touch
//! another shard's ids: a request for one gets `NOT_COORDINATOR`.

pub mod records;
pub mod state;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use engine::disk::DmaDisk;
use engine::{LogError, PartitionLog};
use log::info;

use records::{TxnRecord, TxnStatus};

/// Kafka's internal topic of transaction states, and its partition count
/// (`transaction.state.log.num.partitions`): 50, as Kafka, so ids land on
/// the same partition numbers.
pub const TRANSACTION_TOPIC: &str = "__transaction_state";
pub const TRANSACTION_TOPIC_PARTITIONS: i32 = 50;

/// Longest transactional id accepted: Kafka bounds it only by the
/// request size; Corelog keeps each stored key small.
pub const TRANSACTIONAL_ID_BYTES_MAX: usize = 1024;

/// Transactional ids one shard coordinates. An idle id is forgotten after
/// `transactional.id.expiration.ms` (7 days, as Kafka); Corelog also
/// bounds the count: past it, a new id is refused
/// (`COORDINATOR_NOT_AVAILABLE`) until older ones are forgotten. 100,000
/// ids of a few hundred bytes each is a few tens of MiB per shard.
pub const TRANSACTIONAL_IDS_MAX: usize = 100_000;

/// How often the coordinator looks for transactions past their timeout
/// and prepared ones no task completes (Kafka's
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms` is 10 s;
/// an abort is late by at most this much).
pub const TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// The `__transaction_state` partition of a transactional id: Kafka's
/// `abs(hashCode) % 50`.
pub fn partition_for(transactional_id: &str) -> i32 {
    crate::groups::records::partition_for(transactional_id, TRANSACTION_TOPIC_PARTITIONS)
}

/// Why a transactional id cannot be served here.
pub fn check_transactional_id(id: &str) -> Result<(), i16> {
    if id.is_empty() || id.len() > TRANSACTIONAL_ID_BYTES_MAX {
        return Err(net::kafka_protocol::error::ResponseError::InvalidRequest.code());
    }
    Ok(())
}

/// The marker of one transaction, as the coordinator writes it to each
/// partition of the transaction.
#[derive(Debug, Clone, Copy)]
pub struct Marker {
    pub pid: i64,
    pub epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
}

struct Entry {
    record: TxnRecord,
    /// A record for this id is being written.
    busy: bool,
    /// `record` is durable (false: a new id's placeholder until its first
    /// record is).
    stored: bool,
}

/// The ids this shard coordinates.
#[derive(Default)]
pub struct Transactions {
    ids: RefCell<HashMap<String, Entry>>,
    /// Loaded partitions and their coordinator epochs.
    loaded: RefCell<HashMap<i32, i32>>,
    /// Prepared ids whose markers a task is writing (the handlers'
    /// completion), with its claim; a prepared id outside it is picked up
    /// by the tick.
    completing: RefCell<HashMap<String, u64>>,
    next_token: Cell<u64>,
    /// Partitions being loaded now.
    loading: Cell<usize>,
}

/// What [`Transactions::due`] finds.
#[derive(Debug, Default)]
pub struct Due {
    /// Open transactions past their timeout: to abort.
    pub expired: Vec<String>,
    /// Prepared transactions no task completes (after a failure or a
    /// load): to complete.
    pub stalled: Vec<String>,
    /// Ids idle past `transactional.id.expiration.ms`, with the state
    /// read: to forget.
    pub idle: Vec<(String, TxnRecord)>,
}

/// A write taken by [`Transactions::begin`], at a coordinator epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub epoch: i32,
}

impl Transactions {
    /// Replays one `__transaction_state` partition into memory, with
    /// `coordinator_epoch` (its leader epoch here). Prepared transactions
    /// found are returned: their markers must be written again (the tick
    /// finds them).
    pub async fn load(
        &self,
        partition: i32,
        coordinator_epoch: i32,
        log: &PartitionLog<DmaDisk>,
    ) -> Result<Vec<String>, String> {
        self.loading.set(self.loading.get() + 1);
        let replayed = self.replay(partition, log).await;
        self.loading.set(self.loading.get() - 1);
        Ok(self.install(partition, coordinator_epoch, replayed?))
    }

    /// Each id's last record in the partition (`None`: forgotten).
    async fn replay(
        &self,
        partition: i32,
        log: &PartitionLog<DmaDisk>,
    ) -> Result<HashMap<String, Option<TxnRecord>>, String> {
        let mut found: HashMap<String, Option<TxnRecord>> = HashMap::new();
        log.replay(log.log_start_offset(), |header, batch| {
            if header.is_control() {
                return Ok(());
            }
            let invalid =
                |e: String| LogError::Invalid(format!("{TRANSACTION_TOPIC}-{partition}: {e}"));
            for r in engine::batch::parse_records(batch).map_err(|e| invalid(e.to_string()))? {
                let key = r.key.ok_or_else(|| invalid("record without a key".into()))?;
                let (id, value) = records::decode(key, r.value).map_err(invalid)?;
                found.insert(id, value);
            }
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())?;
        Ok(found)
    }

    /// Installs a replayed partition's ids.
    fn install(
        &self,
        partition: i32,
        coordinator_epoch: i32,
        found: HashMap<String, Option<TxnRecord>>,
    ) -> Vec<String> {
        let mut prepared = Vec::new();
        let mut ids = self.ids.borrow_mut();
        for (id, record) in found {
            match record {
                None => {
                    ids.remove(&id);
                }
                Some(record) => {
                    if matches!(record.status, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort) {
                        prepared.push(id.clone());
                    }
                    ids.insert(id, Entry { record, busy: false, stored: true });
                }
            }
        }
        self.loaded.borrow_mut().insert(partition, coordinator_epoch);
        if !prepared.is_empty() {
            info!(
                "{TRANSACTION_TOPIC}-{partition}: loaded at coordinator epoch {coordinator_epoch}, {} prepared to complete",
                prepared.len()
            );
        }
        prepared
    }

    /// Forgets the ids of a partition this shard no longer leads.
    pub fn unload(&self, partition: i32) {
        self.loaded.borrow_mut().remove(&partition);
        self.ids.borrow_mut().retain(|id, _| partition_for(id) != partition);
        self.completing.borrow_mut().retain(|id, _| partition_for(id) != partition);
    }

    pub fn stop(&self) {
        self.loaded.borrow_mut().clear();
        self.ids.borrow_mut().clear();
    }

    /// The coordinator epoch of a loaded partition.
    pub fn coordinator_epoch(&self, partition: i32) -> Option<i32> {
        self.loaded.borrow().get(&partition).copied()
    }

    /// The stored state of `id`.
    pub fn get(&self, id: &str) -> Option<TxnRecord> {
        self.ids.borrow().get(id).map(|e| e.record.clone())
    }

    /// Takes `id` for a write of `new` over `expected` (what the caller
    /// read, with nothing awaited since): refused with
    /// `CONCURRENT_TRANSACTIONS` if a write for it is on its way or its
    /// state changed, `NOT_COORDINATOR` if its partition is not loaded,
    /// `COORDINATOR_NOT_AVAILABLE` for a new id beyond
    /// [`TRANSACTIONAL_IDS_MAX`]. The ticket names the coordinator epoch the
    /// write is made at.
    pub fn begin(
        &self,
        id: &str,
        expected: Option<&TxnRecord>,
        new: &TxnRecord,
    ) -> Result<Ticket, i16> {
        use net::kafka_protocol::error::ResponseError;
        let epoch = self
            .coordinator_epoch(partition_for(id))
            .ok_or(ResponseError::NotCoordinator.code())?;
        let mut ids = self.ids.borrow_mut();
        let count = ids.len();
        match ids.get_mut(id) {
            Some(e) if e.busy || Some(&e.record) != expected => {
                Err(ResponseError::ConcurrentTransactions.code())
            }
            Some(e) => {
                e.busy = true;
                Ok(Ticket { epoch })
            }
            None if expected.is_some() => Err(ResponseError::ConcurrentTransactions.code()),
            None if count >= TRANSACTIONAL_IDS_MAX => {
                Err(ResponseError::CoordinatorNotAvailable.code())
            }
            None => {
                // A placeholder until the first record is durable: busy, so
                // no other request sees it as stored.
                ids.insert(
                    id.to_string(),
                    Entry { record: new.clone(), busy: true, stored: false },
                );
                Ok(Ticket { epoch })
            }
        }
    }

    /// The write taken by [`Self::begin`] is durable (`Some`) or failed.
    /// `was`: the state before, restored on failure (`None`: the id was
    /// new). Nothing changes if the partition was unloaded or loaded again
    /// meanwhile (the load read the log): then `false`.
    pub fn finish(
        &self,
        id: &str,
        ticket: Ticket,
        written: Option<TxnRecord>,
        was: Option<TxnRecord>,
    ) -> bool {
        if self.coordinator_epoch(partition_for(id)) != Some(ticket.epoch) {
            return false;
        }
        let mut ids = self.ids.borrow_mut();
        match (written, was) {
            (Some(record), _) | (None, Some(record)) => {
                ids.insert(id.to_string(), Entry { record, busy: false, stored: true });
            }
            (None, None) => {
                ids.remove(id);
            }
        }
        true
    }

    /// Whether a new id would be refused ([`TRANSACTIONAL_IDS_MAX`]).
    pub fn is_full(&self) -> bool {
        self.ids.borrow().len() >= TRANSACTIONAL_IDS_MAX
    }

    /// Whether `id` is busy with a write.
    pub fn is_busy(&self, id: &str) -> bool {
        self.ids.borrow().get(id).is_some_and(|e| e.busy)
    }

    /// Claims the completion of `id`'s prepared transaction for one task:
    /// `None` if a task holds it already.
    pub fn claim_completion(&self, id: &str) -> Option<u64> {
        let mut tasks = self.completing.borrow_mut();
        if tasks.contains_key(id) {
            return None;
        }
        let token = self.next_token.get();
        self.next_token.set(token + 1);
        tasks.insert(id.to_string(), token);
        Some(token)
    }

    /// The task holding `token` is done with `id` (a task of an earlier
    /// load does not release a later one's claim).
    pub fn release_completion(&self, id: &str, token: u64) {
        let mut tasks = self.completing.borrow_mut();
        if tasks.get(id) == Some(&token) {
            tasks.remove(id);
        }
    }

    /// The ids with work for the coordinator's tick at `now`.
    pub fn due(&self, now: i64, expiration_ms: i64) -> Due {
        let ids = self.ids.borrow();
        let completing = self.completing.borrow();
        let mut due = Due::default();
        for (id, e) in ids.iter().filter(|(_, e)| !e.busy && e.stored) {
            if state::expire(&e.record, now).is_some() {
                due.expired.push(id.clone());
            } else if matches!(e.record.status, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort)
                && !completing.contains_key(id)
            {
                due.stalled.push(id.clone());
            } else if state::idle(&e.record, now, expiration_ms) && !completing.contains_key(id) {
                due.idle.push((id.clone(), e.record.clone()));
            }
        }
        due
    }

    /// Forgets `id` after its tombstone was written with `ticket`
    /// (nothing changes if the partition was loaded again meanwhile).
    pub fn forget(&self, id: &str, ticket: Ticket) {
        if self.coordinator_epoch(partition_for(id)) == Some(ticket.epoch) {
            self.ids.borrow_mut().remove(id);
        }
    }

    /// The durable state of `id`, also while a write for it is on its
    /// way (DescribeTransactions).
    pub fn stored(&self, id: &str) -> Option<TxnRecord> {
        self.ids.borrow().get(id).filter(|e| e.stored).map(|e| e.record.clone())
    }

    /// Every id with its durable state (ListTransactions).
    pub fn list(&self) -> Vec<(String, TxnRecord)> {
        let ids = self.ids.borrow();
        ids.iter().filter(|(_, e)| e.stored).map(|(id, e)| (id.clone(), e.record.clone())).collect()
    }

    /// Whether a partition is being loaded now.
    pub fn is_loading(&self) -> bool {
        self.loading.get() > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: TxnStatus, last_update_ms: i64) -> TxnRecord {
        TxnRecord {
            producer_id: 7,
            epoch: 0,
            timeout_ms: 60_000,
            status,
            partitions: Default::default(),
            last_update_ms,
            start_ms: -1,
        }
    }

    #[test]
    fn writes_apply_at_their_epoch_only_and_idle_ids_are_due_to_forget() {
        let t = Transactions::default();
        let p = partition_for("tid");
        t.loaded.borrow_mut().insert(p, 1);
        let r = record(TxnStatus::Empty, 100);
        let ticket = t.begin("tid", None, &r).unwrap();
        assert!(t.is_busy("tid") && t.stored("tid").is_none(), "a placeholder, not stored");
        // The partition is loaded again at a new epoch meanwhile: the
        // write is not applied (the load read the log) and says so.
        t.unload(p);
        t.loaded.borrow_mut().insert(p, 2);
        assert!(!t.finish("tid", ticket, Some(r.clone()), None));
        assert!(t.get("tid").is_none());
        let ticket = t.begin("tid", None, &r).unwrap();
        assert!(t.finish("tid", ticket, Some(r.clone()), None));
        assert_eq!(t.stored("tid"), Some(r.clone()));

        let due = t.due(1_099, 1_000);
        assert!(due.idle.is_empty() && due.expired.is_empty() && due.stalled.is_empty());
        let due = t.due(1_100, 1_000);
        assert_eq!(due.idle, vec![("tid".to_string(), r.clone())]);
        let ticket = t.begin("tid", Some(&r), &r).unwrap();
        assert!(t.due(5_000, 1_000).idle.is_empty(), "busy: not due");
        t.forget("tid", ticket);
        assert!(t.get("tid").is_none() && t.list().is_empty());
    }
}
