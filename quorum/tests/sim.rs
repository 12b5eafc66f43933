//! The quorum under a seeded, simulated network: 3 or 5 voters, messages
//! dropped, delayed, duplicated and reordered, voters cut off from each
//! other and crashed and restarted from what they made durable. Every
//! message and every durable write goes through its byte encoding.
//!
//! Checked at every step: no two voters ever apply different entries at
//! one index (state machine safety). Checked at the end, once the network
//! heals and every voter is back: a leader commits again, every voter
//! holds the same log, and every proposal a leader saw committed is in
//! it, once, where it was committed. A failure prints its seed; run again
//! with `SEED=<seed>` to replay it.

use std::collections::BTreeMap;

use engine::testkit::{seed, Rng};
use quorum::voter::committed_entries;
use quorum::wire::{decode_message, decode_write, encode_message, encode_write};
use quorum::{ElectionTimeout, LogStore, MessageType, Proposed, Voter};

/// Entries applied between two snapshots of a voter's state machine:
/// small, so that snapshots are taken, sent and installed often.
const SNAPSHOT_EVERY: u64 = 16;

/// Histories per run of the test, each with its own seed.
const HISTORIES: u64 = 40;

/// A voter's state machine: the payloads applied, with their indexes.
type State = Vec<(u64, Vec<u8>)>;

fn encode_state(state: &State) -> Vec<u8> {
    let mut out = Vec::new();
    for (index, data) in state {
        out.extend_from_slice(&index.to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(data);
    }
    out
}

fn decode_state(mut bytes: &[u8]) -> State {
    let mut state = Vec::new();
    while !bytes.is_empty() {
        let index = u64::from_be_bytes(bytes[..8].try_into().unwrap());
        let len = u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
        state.push((index, bytes[12..12 + len].to_vec()));
        bytes = &bytes[12 + len..];
    }
    state
}

struct Node {
    id: u64,
    /// `None` while crashed.
    voter: Option<Voter>,
    /// Every write this voter made durable, applied in order.
    disk: LogStore,
    state: State,
    /// The highest index applied to `state` (or restored from a snapshot).
    applied: u64,
    /// Proposals this voter made as leader, not yet seen committed or lost.
    pending: Vec<(Proposed, Vec<u8>)>,
}

struct Packet {
    at: u64,
    from: u64,
    to: u64,
    bytes: Vec<u8>,
}

struct Sim {
    /// How to replay this history.
    replay: String,
    rng: Rng,
    now: u64,
    nodes: Vec<Node>,
    network: Vec<Packet>,
    /// Side of each voter while the network is split; `None` when whole.
    sides: Option<Vec<bool>>,
    /// Percent of messages dropped, and duplicated.
    drop_percent: u64,
    dup_percent: u64,
    /// What each committed index holds, as the first voter to apply it saw.
    committed: BTreeMap<u64, Vec<u8>>,
    /// Proposals a leader saw committed: payload -> index.
    acked: BTreeMap<Vec<u8>, u64>,
    next_payload: u64,
}

impl Sim {
    fn new(seed: u64, replay: String) -> Sim {
        let mut rng = Rng::new(seed);
        let n = if rng.chance(50) { 3 } else { 5 };
        let voters: Vec<u64> = (1..=n).collect();
        let mut sim = Sim {
            replay,
            nodes: Vec::new(),
            now: 0,
            network: Vec::new(),
            sides: None,
            drop_percent: 5 + rng.below(15),
            dup_percent: rng.below(10),
            committed: BTreeMap::new(),
            acked: BTreeMap::new(),
            next_payload: 0,
            rng,
        };
        for &id in &voters {
            let mut node = Node {
                id,
                voter: None,
                disk: LogStore::new(&voters),
                state: Vec::new(),
                applied: 0,
                pending: Vec::new(),
            };
            sim.start(&mut node);
            sim.nodes.push(node);
        }
        sim
    }

    fn why(&self) -> String {
        format!("{}, tick {}", self.replay, self.now)
    }

    /// Starts a voter from what its disk holds: the snapshot's state, then
    /// the committed entries after it.
    fn start(&mut self, node: &mut Node) {
        let store = node.disk.clone();
        let snapshot = store.snapshot_ref();
        node.state = decode_state(&snapshot.data);
        node.applied = snapshot.get_metadata().index;
        for e in committed_entries(&store) {
            node.state.push((e.index, e.data.to_vec()));
        }
        node.applied = node.applied.max(store.hard_state().commit);
        for (index, data) in node.state.clone() {
            self.check_committed(index, &data);
        }
        // Distinct fixed timeouts, from the seed: raft-rs would draw them
        // from the thread's random generator, which no seed replays.
        let min = 10 + self.rng.below(10) as usize;
        let timeout = ElectionTimeout { min, max: min + 1 };
        node.voter = Some(
            Voter::new(node.id, store, node.applied, timeout)
                .unwrap_or_else(|e| panic!("{}: voter {} restarts: {e}", self.why(), node.id)),
        );
        node.pending.clear();
    }

    fn check_committed(&mut self, index: u64, data: &[u8]) {
        match self.committed.get(&index) {
            Some(seen) => assert_eq!(
                seen,
                data,
                "{}: two voters applied different entries at {index}",
                self.why()
            ),
            None => {
                self.committed.insert(index, data.to_vec());
            }
        }
    }

    fn connected(&self, a: u64, b: u64) -> bool {
        match &self.sides {
            None => true,
            Some(sides) => sides[a as usize - 1] == sides[b as usize - 1],
        }
    }

    /// One tick: faults, ticks, deliveries, proposals, readies.
    fn step(&mut self, faults: bool) {
        self.now += 1;
        if faults {
            self.faults();
        }
        for node in &mut self.nodes {
            if let Some(v) = node.voter.as_mut() {
                v.tick();
            }
        }
        self.deliver();
        if self.rng.chance(30) {
            self.propose();
        }
        for i in 0..self.nodes.len() {
            self.drain(i);
        }
    }

    fn faults(&mut self) {
        let n = self.nodes.len() as u64;
        if self.rng.chance(1) {
            self.sides = if self.sides.is_some() && self.rng.chance(60) {
                None
            } else {
                Some((0..n).map(|_| self.rng.chance(50)).collect())
            };
        }
        if self.rng.chance(1) {
            let i = self.rng.below(n) as usize;
            if self.nodes[i].voter.is_some() {
                self.nodes[i].voter = None;
            } else {
                let mut node = std::mem::replace(&mut self.nodes[i], placeholder());
                self.start(&mut node);
                self.nodes[i] = node;
            }
        }
    }

    fn deliver(&mut self) {
        let now = self.now;
        let (due, later): (Vec<Packet>, Vec<Packet>) =
            std::mem::take(&mut self.network).into_iter().partition(|p| p.at <= now);
        self.network = later;
        let mut due = due;
        // Same-tick messages arrive in any order.
        for i in (1..due.len()).rev() {
            due.swap(i, self.rng.below(i as u64 + 1) as usize);
        }
        for p in due {
            let why = self.why();
            let m = decode_message(&p.bytes).unwrap_or_else(|e| panic!("{why}: {e}"));
            let lost =
                !self.connected(p.from, p.to) || self.nodes[p.to as usize - 1].voter.is_none();
            if m.get_msg_type() == MessageType::MsgSnapshot {
                // What a transport knows: whether the snapshot arrived.
                if let Some(sender) = self.nodes[p.from as usize - 1].voter.as_mut() {
                    sender.report_snapshot(p.to, !lost);
                }
            }
            if lost {
                continue;
            }
            let Some(v) = self.nodes[p.to as usize - 1].voter.as_mut() else { continue };
            // A stale message may be refused; a refusal must not break the voter.
            let _ = v.step(m);
        }
    }

    fn propose(&mut self) {
        let payload = format!("p{}", self.next_payload).into_bytes();
        for node in &mut self.nodes {
            let Some(v) = node.voter.as_mut().filter(|v| v.is_leader()) else { continue };
            if let Ok(at) = v.propose(payload.clone()) {
                node.pending.push((at, payload));
                self.next_payload += 1;
            }
            return;
        }
    }

    /// Carries out a voter's outputs until it has none.
    fn drain(&mut self, i: usize) {
        loop {
            let Some(v) = self.nodes[i].voter.as_mut() else { return };
            let out = v.ready();
            if out.writes.is_empty() && out.messages.is_empty() && out.committed.is_empty() {
                return;
            }
            for w in &out.writes {
                let durable = decode_write(&encode_write(w)).expect("a write decodes");
                assert_eq!(&durable, w);
                self.nodes[i].disk.write(&durable);
            }
            for m in &out.messages {
                if self.rng.chance(self.drop_percent) {
                    if m.get_msg_type() == MessageType::MsgSnapshot {
                        self.nodes[i].voter.as_mut().expect("running").report_snapshot(m.to, false);
                    }
                    continue;
                }
                let copies = if self.rng.chance(self.dup_percent) { 2 } else { 1 };
                for _ in 0..copies {
                    let at = self.now + self.rng.below(4);
                    let bytes = encode_message(m);
                    self.network.push(Packet { at, from: m.from, to: m.to, bytes });
                }
            }
            if let Some(s) = &out.snapshot {
                let state = decode_state(&s.data);
                for (index, data) in &state {
                    self.check_committed(*index, data);
                }
                let node = &mut self.nodes[i];
                node.state = state;
                node.applied = s.get_metadata().index;
            }
            for e in &out.committed {
                let node = &mut self.nodes[i];
                assert!(e.index > node.applied, "{}: entry {} applied twice", self.why(), e.index);
                node.state.push((e.index, e.data.to_vec()));
                node.applied = e.index;
                let data = e.data.to_vec();
                self.check_committed(e.index, &data);
                let node = &mut self.nodes[i];
                if let Some(at) = node.pending.iter().position(|(p, _)| p.index == e.index) {
                    let (_, payload) = node.pending.remove(at);
                    if payload == data {
                        self.acked.insert(payload, e.index);
                    }
                }
            }
            let node = &mut self.nodes[i];
            if node.applied >= node.disk.snapshot_ref().get_metadata().index + SNAPSHOT_EVERY {
                let data = encode_state(&node.state);
                let v = node.voter.as_mut().expect("running");
                if let Some(w) = v.compact(node.applied, data) {
                    node.disk.write(&w);
                }
            }
        }
    }

    /// Heals everything and runs until a leader commits a last proposal on
    /// every voter; then compares the logs.
    fn settle(&mut self) {
        self.sides = None;
        self.drop_percent = 0;
        for i in 0..self.nodes.len() {
            if self.nodes[i].voter.is_none() {
                let mut node = std::mem::replace(&mut self.nodes[i], placeholder());
                self.start(&mut node);
                self.nodes[i] = node;
            }
        }
        let last = b"last".to_vec();
        for _ in 0..3000 {
            self.step(false);
            if !self.acked.contains_key(&last) {
                for node in &mut self.nodes {
                    let v = node.voter.as_mut().expect("running");
                    if v.is_leader() && node.pending.iter().all(|(_, p)| *p != last) {
                        if let Ok(at) = v.propose(last.clone()) {
                            node.pending.push((at, last.clone()));
                        }
                    }
                }
                continue;
            }
            let index = self.acked[&last];
            if self.nodes.iter().all(|n| n.applied >= index) {
                return self.compare();
            }
        }
        let voters: Vec<String> = self
            .nodes
            .iter()
            .map(|n| {
                let v = n.voter.as_ref().expect("running");
                format!(
                    "voter {}: term {} leader {:?} commit {} applied {} pending {:?}",
                    n.id,
                    v.term(),
                    v.leader(),
                    v.commit_index(),
                    n.applied,
                    n.pending.iter().map(|(p, _)| p.index).collect::<Vec<_>>()
                )
            })
            .collect();
        panic!(
            "{}: no leader committed on every voter within 3000 ticks of healing: {voters:#?}",
            self.why()
        );
    }

    fn compare(&self) {
        let first = &self.nodes[0].state;
        for node in &self.nodes[1..] {
            let common = first.len().min(node.state.len());
            assert_eq!(
                &first[..common],
                &node.state[..common],
                "{}: voters 1 and {} hold different logs",
                self.why(),
                node.id
            );
        }
        let longest = self.nodes.iter().map(|n| &n.state).max_by_key(|s| s.len()).unwrap();
        let mut seen = BTreeMap::new();
        for (index, data) in longest {
            assert!(seen.insert(data.clone(), *index).is_none(), "{}: {data:?} twice", self.why());
        }
        for (payload, index) in &self.acked {
            assert_eq!(
                seen.get(payload),
                Some(index),
                "{}: acknowledged {:?} is not at {index}",
                self.why(),
                String::from_utf8_lossy(payload)
            );
        }
    }
}

fn placeholder() -> Node {
    Node {
        id: 0,
        voter: None,
        disk: LogStore::new(&[]),
        state: Vec::new(),
        applied: 0,
        pending: Vec::new(),
    }
}

/// One seeded history: faults for `ticks`, then healing. Returns the
/// final log, to compare runs of one seed.
fn history(seed: u64, k: u64, ticks: u64) -> (State, usize) {
    let replay = format!("history {k} of CORELOG_SEED={seed}");
    let mut sim = Sim::new(seed.wrapping_add(k), replay);
    for _ in 0..ticks {
        sim.step(true);
    }
    sim.settle();
    (sim.nodes[0].state.clone(), sim.acked.len())
}

#[test]
fn committed_entries_survive_a_hostile_network_and_crashes() {
    let base = seed("committed_entries_survive_a_hostile_network_and_crashes");
    let mut acked = 0;
    for k in 0..HISTORIES {
        let (_, n) = history(base, k, 3000);
        acked += n;
    }
    // The faults must leave room for progress, or the test proves nothing.
    assert!(acked > 100 * HISTORIES as usize, "seed {base}: only {acked} proposals committed");
}

#[test]
fn a_seed_replays_the_same_history() {
    let s = seed("a_seed_replays_the_same_history");
    assert_eq!(history(s, 0, 1500), history(s, 0, 1500), "seed {s}");
}
