//! A voter's Raft log as raft-rs reads it: the latest snapshot, the
//! entries after it, the hard state (term, vote, commit) and the voters.
//!
//! [`LogStore`] lives in memory, owned by one voter on one core. Every
//! change to it is also returned as a [`Write`], which the caller makes
//! durable (fdatasynced) before the voter's messages leave; replaying
//! the same writes into [`LogStore::new`] rebuilds the store after a
//! restart. The store never does I/O itself.

use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

/// One change to a voter's log, in the order it happened. Replayed in
/// that order onto a new store, the writes give the same store.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Entries from `entries[0].index` on: any entry at or after that
    /// index is replaced (a new leader overwrote an uncommitted tail).
    Entries(Vec<Entry>),
    /// The new hard state: term, vote and commit index.
    HardState(HardState),
    /// A snapshot of the state machine: entries up to its index are gone.
    Snapshot(Snapshot),
}

/// The in-memory log of one voter.
#[derive(Debug, Clone)]
pub struct LogStore {
    hard_state: HardState,
    /// The latest snapshot: its metadata (index, term, voters) and data.
    /// Index 0 before any.
    snapshot: Snapshot,
    /// The entries after the snapshot: `entries[i].index == snapshot index + 1 + i`.
    entries: Vec<Entry>,
}

impl LogStore {
    /// An empty log of a quorum of `voters`.
    pub fn new(voters: &[u64]) -> LogStore {
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().set_conf_state(ConfState::from((voters.to_vec(), Vec::new())));
        LogStore { hard_state: HardState::default(), snapshot, entries: Vec::new() }
    }

    /// Checks that `write` can follow what this store holds: entries that
    /// leave no gap after its log. Writes read back from a file go through
    /// this before [`LogStore::write`], whose assertion is for the voter's
    /// own writes.
    pub fn check(&self, write: &Write) -> Result<(), crate::QuorumError> {
        if let Write::Entries(entries) = write {
            if let Some(first) = entries.iter().find(|e| e.index >= self.first()) {
                if first.index > self.last() + 1 {
                    return Err(crate::QuorumError::Decode(format!(
                        "a gap in the raft log: entry {} after {}",
                        first.index,
                        self.last()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Applies one write (a voter's own, or one replayed after a restart).
    pub fn write(&mut self, write: &Write) {
        match write {
            Write::Entries(entries) => self.append(entries),
            Write::HardState(hs) => self.hard_state = hs.clone(),
            Write::Snapshot(s) => self.install(s.clone()),
        }
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The latest snapshot (index 0 before any).
    pub fn snapshot_ref(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The entries after the snapshot.
    pub fn entries_after_snapshot(&self) -> &[Entry] {
        &self.entries
    }

    /// The index of the last entry (the snapshot's when none follows it).
    pub fn last_entry_index(&self) -> u64 {
        self.last()
    }

    fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    fn first(&self) -> u64 {
        self.snapshot_index() + 1
    }

    fn last(&self) -> u64 {
        self.snapshot_index() + self.entries.len() as u64
    }

    /// Appends `entries`, replacing any from their first index on.
    /// Entries already covered by the snapshot are skipped.
    fn append(&mut self, entries: &[Entry]) {
        let skip = entries.iter().take_while(|e| e.index < self.first()).count();
        let entries = &entries[skip..];
        let Some(first) = entries.first() else { return };
        assert!(
            first.index <= self.last() + 1,
            "a gap in the raft log: entry {} after {}",
            first.index,
            self.last()
        );
        self.entries.truncate((first.index - self.first()) as usize);
        self.entries.extend_from_slice(entries);
    }

    /// Installs a snapshot (from the leader, or taken here): entries up to
    /// its index go; later ones stay if they follow it in the same term.
    fn install(&mut self, snapshot: Snapshot) {
        let (index, term) = (snapshot.get_metadata().index, snapshot.get_metadata().term);
        if index <= self.snapshot_index() {
            return;
        }
        let keeps_tail = self.entry_term(index) == Some(term);
        if keeps_tail {
            self.entries.drain(..(index - self.snapshot_index()) as usize);
        } else {
            self.entries.clear();
        }
        if self.hard_state.commit < index {
            self.hard_state.commit = index;
        }
        self.snapshot = snapshot;
    }

    /// The term of the entry at `index`, if this log has it.
    fn entry_term(&self, index: u64) -> Option<u64> {
        if index == self.snapshot_index() {
            return Some(self.snapshot.get_metadata().term);
        }
        if index < self.first() || index > self.last() {
            return None;
        }
        Some(self.entries[(index - self.first()) as usize].term)
    }

    /// A snapshot at `index` (applied by the state machine) holding `data`;
    /// `None` when `index` is not in this log after the current snapshot.
    pub fn snapshot_at(&self, index: u64, data: Vec<u8>) -> Option<Snapshot> {
        if index <= self.snapshot_index() || index > self.hard_state.commit {
            return None;
        }
        let term = self.entry_term(index)?;
        let mut s = Snapshot::default();
        s.set_data(data.into());
        let meta = s.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.snapshot.get_metadata().get_conf_state().clone());
        Some(s)
    }
}

fn unavailable(e: StorageError) -> raft::Error {
    raft::Error::Store(e)
}

impl Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.snapshot.get_metadata().get_conf_state().clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(unavailable(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(unavailable(StorageError::Unavailable));
        }
        let from = (low - self.first()) as usize;
        let to = (high - self.first()) as usize;
        let mut out = Vec::with_capacity(to - from);
        let mut bytes = 0u64;
        let max = max_size.into().unwrap_or(u64::MAX);
        for e in &self.entries[from..to] {
            bytes += protobuf::Message::compute_size(e) as u64;
            // At least one entry, as raft-rs requires.
            if !out.is_empty() && bytes > max {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx < self.snapshot_index() {
            return Err(unavailable(StorageError::Compacted));
        }
        self.entry_term(idx).ok_or(unavailable(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot_index() < request_index {
            // Not taken yet: raft-rs asks again later.
            return Err(unavailable(StorageError::SnapshotTemporarilyUnavailable));
        }
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: format!("{index}@{term}").into_bytes().into(),
            ..Default::default()
        }
    }

    #[test]
    fn appends_replace_tails_and_snapshots_drop_prefixes() {
        let mut s = LogStore::new(&[1, 2, 3]);
        s.write(&Write::Entries((1..=5).map(|i| entry(i, 1)).collect()));
        s.write(&Write::Entries(vec![entry(4, 2)]));
        assert!(s.check(&Write::Entries(vec![entry(6, 2)])).is_err(), "a gap after 4");
        assert!(s.check(&Write::Entries(vec![entry(5, 2)])).is_ok());
        assert_eq!((s.first(), s.last()), (1, 4));
        assert_eq!(s.term(4).unwrap(), 2);
        s.write(&Write::HardState(HardState { commit: 3, ..Default::default() }));
        assert!(s.snapshot_at(4, vec![]).is_none(), "not committed");
        let snap = s.snapshot_at(3, b"state".to_vec()).unwrap();
        s.write(&Write::Snapshot(snap.clone()));
        assert_eq!((s.first(), s.last()), (4, 4));
        assert_eq!(s.term(3).unwrap(), 1, "the snapshot keeps its last term");
        assert!(
            s.term(2).is_err() && s.entries(3, 4, None, GetEntriesContext::empty(false)).is_err()
        );
        assert_eq!(s.snapshot(3, 2).unwrap(), snap);
        assert!(s.snapshot(4, 2).is_err());
        // A leader's snapshot past the log replaces it all.
        let mut far = snap.clone();
        far.mut_metadata().index = 10;
        far.mut_metadata().term = 3;
        s.write(&Write::Snapshot(far));
        assert_eq!((s.first(), s.last(), s.hard_state().commit), (11, 10, 10));
        s.write(&Write::Entries(vec![entry(9, 3), entry(11, 3)]));
        assert_eq!(s.last(), 11, "entries under the snapshot are skipped");
    }
}
