//! One voter of the metadata quorum: raft-rs's `RawNode` over a
//! [`LogStore`], driven by the caller's ticks and messages.
//!
//! Runs on the core that runs its node's controller; never blocks, reads
//! a clock or does I/O. Each [`Voter::ready`] hands back what the caller
//! must do, in this order: make the [`Output::writes`] durable, then send
//! the [`Output::messages`], then restore [`Output::snapshot`] if any and
//! apply [`Output::committed`]. A vote or an appended entry is thus never
//! acknowledged before it is on disk.

use raft::prelude::{Entry, EntryType, Message, Snapshot};
use raft::{Config, RawNode, SnapshotStatus, StateRole};

use crate::store::{LogStore, Write};
use crate::QuorumError;

/// Ticks between heartbeats of a leader.
pub const HEARTBEAT_TICKS: usize = 2;

/// Ticks without a leader before a follower stands for election (a
/// random timeout in `[ELECTION_TICKS, 2 * ELECTION_TICKS)` by default).
pub const ELECTION_TICKS: usize = 10;

/// Bytes of entries in one append message: a metadata command's records
/// fit many times over; a follower far behind catches up in steps.
pub const MESSAGE_BYTES_MAX: u64 = 1 << 20;

/// Append messages in flight to one follower.
pub const INFLIGHT_APPENDS_MAX: usize = 64;

/// The election timeout range of a voter, in ticks: `[min, max)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionTimeout {
    pub min: usize,
    pub max: usize,
}

impl Default for ElectionTimeout {
    fn default() -> Self {
        ElectionTimeout { min: ELECTION_TICKS, max: 2 * ELECTION_TICKS }
    }
}

/// What a voter's caller must do after a step, in field order.
#[derive(Debug, Default)]
pub struct Output {
    /// To make durable before any message is sent.
    pub writes: Vec<Write>,
    /// To send once the writes are durable.
    pub messages: Vec<Message>,
    /// The state machine restarts from this snapshot's data.
    pub snapshot: Option<Snapshot>,
    /// Committed entries with data, in log order, after the snapshot.
    pub committed: Vec<Entry>,
}

/// Where a proposal went: it is committed if an entry of this term
/// commits at this index; an entry of another term there means it was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposed {
    pub index: u64,
    pub term: u64,
}

pub struct Voter {
    node: RawNode<LogStore>,
}

impl Voter {
    /// Voter `id` over `store` (new, or rebuilt from its durable writes),
    /// whose state machine has applied up to `applied`.
    pub fn new(
        id: u64,
        store: LogStore,
        applied: u64,
        timeout: ElectionTimeout,
    ) -> Result<Voter, QuorumError> {
        let config = Config {
            id,
            election_tick: timeout.min,
            min_election_tick: timeout.min,
            max_election_tick: timeout.max,
            heartbeat_tick: HEARTBEAT_TICKS,
            applied,
            max_size_per_msg: MESSAGE_BYTES_MAX,
            max_inflight_msgs: INFLIGHT_APPENDS_MAX,
            // A leader cut off from a majority steps down; a voter back
            // from a partition does not disrupt a healthy leader.
            check_quorum: true,
            pre_vote: true,
            ..Config::default()
        };
        config.validate().map_err(|e| QuorumError::Config(e.to_string()))?;
        // raft-rs panics on a commit index outside the log; a log that
        // lost entries it had acknowledged is an error to report instead.
        let (first, last) = (store.snapshot_ref().get_metadata().index, store.last_entry_index());
        let commit = store.hard_state().commit;
        if commit < first || commit > last || applied > commit {
            return Err(QuorumError::Config(format!(
                "the raft log holds entries {first}..={last} but its commit index is {commit} \
                 and {applied} is applied: entries it acknowledged are missing"
            )));
        }
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let node = RawNode::new(&config, store, &logger)
            .map_err(|e| QuorumError::Config(e.to_string()))?;
        Ok(Voter { node })
    }

    pub fn id(&self) -> u64 {
        self.node.raft.id
    }

    /// One tick of the caller's clock.
    pub fn tick(&mut self) {
        self.node.tick();
    }

    /// A message from another voter. Messages for another voter, from a
    /// voter outside the quorum, or of a local kind are refused.
    pub fn step(&mut self, message: Message) -> Result<(), QuorumError> {
        let voters = self.voters();
        if message.to != self.id() || !voters.contains(&message.from) {
            return Err(QuorumError::Misdirected { from: message.from, to: message.to });
        }
        if raft::raw_node::is_local_msg(message.get_msg_type()) {
            return Err(QuorumError::Misdirected { from: message.from, to: message.to });
        }
        self.node.step(message).map_err(|e| QuorumError::Raft(e.to_string()))
    }

    /// Proposes `data` as the next entry; only the leader takes proposals.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<Proposed, QuorumError> {
        if !self.is_leader() {
            return Err(QuorumError::NotLeader { leader: self.leader() });
        }
        let index = self.node.raft.raft_log.last_index() + 1;
        let term = self.node.raft.term;
        self.node.propose(Vec::new(), data).map_err(|e| QuorumError::Raft(e.to_string()))?;
        Ok(Proposed { index, term })
    }

    pub fn is_leader(&self) -> bool {
        self.node.raft.state == StateRole::Leader
    }

    /// The leader this voter knows of.
    pub fn leader(&self) -> Option<u64> {
        Some(self.node.raft.leader_id).filter(|&l| l != raft::INVALID_ID)
    }

    pub fn term(&self) -> u64 {
        self.node.raft.term
    }

    /// The index of the last entry in the log (persisted or not).
    pub fn last_index(&self) -> u64 {
        self.node.raft.raft_log.last_index()
    }

    /// The index of the last committed entry handed out by [`Voter::ready`].
    pub fn applied_index(&self) -> u64 {
        self.node.raft.raft_log.applied
    }

    /// The highest index known committed.
    pub fn commit_index(&self) -> u64 {
        self.node.raft.raft_log.committed
    }

    pub fn voters(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.node.raft.prs().conf().voters().ids().iter().collect();
        v.sort_unstable();
        v
    }

    /// The log end of each voter as the leader knows it (index of the
    /// last entry it has); `None` on a follower.
    pub fn progress(&self) -> Option<Vec<(u64, u64)>> {
        if !self.is_leader() {
            return None;
        }
        let mut out: Vec<(u64, u64)> =
            self.node.raft.prs().iter().map(|(&id, p)| (id, p.matched)).collect();
        out.sort_unstable();
        Some(out)
    }

    /// Hands leadership to voter `to` (the leader brings it up to date,
    /// then tells it to stand for election at once): a planned stop of the
    /// leader costs a round trip instead of an election timeout.
    pub fn transfer_leadership(&mut self, to: u64) {
        if self.is_leader() && to != self.id() {
            self.node.transfer_leader(to);
        }
    }

    /// Tells the leader whether a snapshot message to `to` went out
    /// (`true`) or could not be sent (`false`, and it is sent again). The
    /// leader sends nothing more to a voter whose snapshot is in flight
    /// until this is called.
    pub fn report_snapshot(&mut self, to: u64, sent: bool) {
        let status = if sent { SnapshotStatus::Finish } else { SnapshotStatus::Failure };
        self.node.report_snapshot(to, status);
    }

    /// The store as it stands (what the writes so far describe).
    pub fn store(&self) -> &LogStore {
        self.node.store()
    }

    /// Takes a snapshot at `index`, which the state machine has applied and
    /// whose state `data` is; entries up to it leave the log. `None` when
    /// `index` is not past the last snapshot or not committed.
    pub fn compact(&mut self, index: u64, data: Vec<u8>) -> Option<Write> {
        let snapshot = self.node.store().snapshot_at(index, data)?;
        let write = Write::Snapshot(snapshot);
        self.node.mut_store().write(&write);
        Some(write)
    }

    /// What to do after the ticks, steps and proposals so far.
    pub fn ready(&mut self) -> Output {
        let mut out = Output::default();
        if !self.node.has_ready() {
            return out;
        }
        let mut ready = self.node.ready();
        out.messages = ready.take_messages();
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            self.record(&mut out, Write::Snapshot(snapshot.clone()));
            out.snapshot = Some(snapshot);
        }
        out.committed.extend(ready.take_committed_entries());
        if !ready.entries().is_empty() {
            self.record(&mut out, Write::Entries(ready.take_entries()));
        }
        if let Some(hs) = ready.hs() {
            self.record(&mut out, Write::HardState(hs.clone()));
        }
        out.messages.extend(ready.take_persisted_messages());
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            let mut hs = self.node.store().hard_state().clone();
            hs.commit = commit;
            self.record(&mut out, Write::HardState(hs));
        }
        out.messages.extend(light.take_messages());
        out.committed.extend(light.take_committed_entries());
        self.node.advance_apply();
        // The empty entry of each new leader, and configuration changes
        // (the voters are fixed), are not the state machine's.
        out.committed
            .retain(|e| e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty());
        out
    }

    fn record(&mut self, out: &mut Output, write: Write) {
        self.node.mut_store().write(&write);
        out.writes.push(write);
    }
}

/// The committed entries with data a restarted voter's state machine
/// applies after restoring the store's snapshot, in order.
pub fn committed_entries(store: &LogStore) -> impl Iterator<Item = &Entry> {
    let commit = store.hard_state().commit;
    store
        .entries_after_snapshot()
        .iter()
        .take_while(move |e| e.index <= commit)
        .filter(|e| e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty())
}

#[cfg(test)]
mod tests {
    use raft::prelude::HardState;

    use super::*;

    #[test]
    fn a_log_missing_acknowledged_entries_is_refused_not_a_panic() {
        let mut store = LogStore::new(&[1, 2, 3]);
        store.write(&Write::HardState(HardState { commit: 5, ..Default::default() }));
        let err = Voter::new(1, store, 0, ElectionTimeout::default()).err().unwrap();
        assert!(err.to_string().contains("commit index is 5"), "{err}");
        assert!(Voter::new(1, LogStore::new(&[1, 2, 3]), 0, ElectionTimeout::default()).is_ok());
    }
}
