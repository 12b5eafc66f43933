//! One consumer group's state in its coordinator: its members, the
//! generation and the protocol chosen, its committed offsets, and the
//! steps of Kafka's classic rebalance (the diagram is on [`super`]).
//!
//! Plain state on the coordinator's shard, changed only by
//! [`super::Coordinator`]; no I/O and no awaits here.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use log::info;
use net::kafka_protocol::error::ResponseError;

use super::records::{Committed, GroupRecord, MemberRecord};
use super::{GroupState, JoinAnswer, SyncAnswer};

/// A member, as its last JoinGroup described it, and its waiting answers.
pub(super) struct Member {
    pub(super) id: String,
    pub(super) instance_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) session_timeout: Duration,
    pub(super) rebalance_timeout: Duration,
    pub(super) protocol_type: String,
    pub(super) protocols: Vec<(String, Bytes)>,
    pub(super) assignment: Bytes,
    pub(super) last_seen: Instant,
    pub(super) join: Option<flume::Sender<JoinAnswer>>,
    pub(super) sync: Option<flume::Sender<SyncAnswer>>,
}

impl Member {
    pub(super) fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// A group: its members, generation and protocol, and committed offsets.
pub(super) struct Group {
    pub(super) id: String,
    pub(super) state: GroupState,
    pub(super) generation: i32,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol: Option<String>,
    pub(super) leader: Option<String>,
    pub(super) members: BTreeMap<String, Member>,
    /// Ids handed out with MEMBER_ID_REQUIRED, with when they expire.
    pub(super) pending: HashMap<String, Instant>,
    pub(super) rebalance_deadline: Option<Instant>,
    pub(super) offsets: HashMap<(String, i32), Committed>,
    /// Log offset of the record each committed offset came from: a slower
    /// acknowledgment never overwrites a newer commit.
    pub(super) offset_records: HashMap<(String, i32), i64>,
    /// Became stable or empty since its metadata was last written.
    pub(super) dirty: bool,
}

impl Group {
    pub(super) fn new(id: &str) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            rebalance_deadline: None,
            offsets: HashMap::new(),
            offset_records: HashMap::new(),
            dirty: false,
        }
    }

    /// The group's membership as its metadata record stores it.
    pub(super) fn record(&self) -> GroupRecord {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupRecord {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            timestamp: engine::Clock::now_ms(&engine::SystemClock),
            members: self
                .members
                .values()
                .map(|m| MemberRecord {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    subscription: m.metadata(&protocol).to_vec(),
                    assignment: m.assignment.to_vec(),
                })
                .collect(),
        }
    }

    /// Restores the membership of a stored record: a stable group whose
    /// members have a full session from now to come back.
    pub(super) fn restore(&mut self, r: GroupRecord) {
        let now = Instant::now();
        let protocol = r.protocol.clone().unwrap_or_default();
        self.generation = r.generation;
        self.protocol_type = Some(r.protocol_type.clone());
        self.protocol = r.protocol;
        self.leader = r.leader;
        self.members = r
            .members
            .into_iter()
            .map(|m| {
                let session = Duration::from_millis(m.session_timeout_ms.max(0) as u64);
                let member = Member {
                    id: m.member_id.clone(),
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout: session,
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64)
                        .max(session),
                    protocol_type: r.protocol_type.clone(),
                    protocols: vec![(protocol.clone(), Bytes::from(m.subscription))],
                    assignment: Bytes::from(m.assignment),
                    last_seen: now,
                    join: None,
                    sync: None,
                };
                (m.member_id, member)
            })
            .collect();
        self.state = if self.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
        self.dirty = false;
    }

    /// Protocols every member supports, in `first`'s order of preference.
    pub(super) fn common_protocols(&self, first: &[(String, Bytes)]) -> Vec<String> {
        first
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| self.members.values().all(|m| m.protocols.iter().any(|(p, _)| p == n)))
            .collect()
    }

    /// The error for a member id not in the group: a static member whose
    /// instance now runs under another id was fenced.
    pub(super) fn missing_member_error(&self, instance_id: Option<&str>) -> ResponseError {
        match instance_id.and_then(|i| self.static_member(i)) {
            Some(_) => ResponseError::FencedInstanceId,
            None => ResponseError::UnknownMemberId,
        }
    }

    pub(super) fn static_member(&self, instance_id: &str) -> Option<String> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance_id))
            .map(|m| m.id.clone())
    }

    /// Starts a rebalance: every member must join again.
    pub(super) fn prepare_rebalance(&mut self, why: &str) {
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(tx) = m.sync.take() {
                    let _ = tx.send(SyncAnswer::error(ResponseError::RebalanceInProgress.code()));
                }
            }
        }
        let timeout = self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or_default();
        self.state = GroupState::PreparingRebalance;
        self.rebalance_deadline = Some(Instant::now() + timeout);
        info!("group {}: rebalancing ({why}), generation {}", self.id, self.generation);
    }

    /// Completes the join phase once every member has joined again.
    pub(super) fn maybe_complete_join(&mut self) {
        if self.state == GroupState::PreparingRebalance
            && self.members.values().all(|m| m.join.is_some())
        {
            self.complete_join();
        }
    }

    /// Ends the join phase: members that did not join again are dropped, a
    /// new generation starts, and every waiting JoinGroup is answered.
    pub(super) fn complete_join(&mut self) {
        self.members.retain(|_, m| m.join.is_some());
        self.generation += 1;
        self.rebalance_deadline = None;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            self.dirty = true;
            info!("group {}: empty at generation {}", self.id, self.generation);
            return;
        }
        // The protocol: the one most members prefer among those all support.
        let leader = match &self.leader {
            Some(l) if self.members.contains_key(l) => l.clone(),
            _ => self.members.keys().next().expect("not empty").clone(),
        };
        let candidates = self.common_protocols(&self.members[&leader].protocols);
        let mut votes: Vec<(String, usize)> = candidates.iter().map(|c| (c.clone(), 0)).collect();
        for m in self.members.values() {
            let first = m.protocols.iter().map(|(p, _)| p).find(|p| candidates.contains(p));
            if let Some(v) = first.and_then(|p| votes.iter_mut().find(|(c, _)| c == p)) {
                v.1 += 1;
            }
        }
        // Most votes; ties go to the leader's preference (earlier in `votes`).
        let protocol = votes
            .iter()
            .enumerate()
            .max_by_key(|(i, (_, n))| (*n, std::cmp::Reverse(*i)))
            .map(|(_, (c, _))| c.clone());
        self.protocol = protocol.clone();
        self.protocol_type = self.members.values().next().map(|m| m.protocol_type.clone());
        self.leader = Some(leader.clone());
        self.state = GroupState::CompletingRebalance;
        let protocol = protocol.unwrap_or_default();
        let all: Vec<(String, Option<String>, Bytes)> = self
            .members
            .values()
            .map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(&protocol)))
            .collect();
        let now = Instant::now();
        info!(
            "group {}: generation {} with {} members, protocol {protocol}, leader {leader}",
            self.id,
            self.generation,
            all.len()
        );
        for m in self.members.values_mut() {
            m.last_seen = now;
            m.assignment = Bytes::new();
            let answer = JoinAnswer {
                error: 0,
                generation: self.generation,
                protocol_type: self.protocol_type.clone(),
                protocol: Some(protocol.clone()),
                leader: leader.clone(),
                member_id: m.id.clone(),
                members: if m.id == leader { all.clone() } else { Vec::new() },
            };
            if let Some(tx) = m.join.take() {
                let _ = tx.send(answer);
            }
        }
    }

    /// The answer to a member joining a group whose generation stays.
    pub(super) fn current(&self, member_id: &str) -> JoinAnswer {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        JoinAnswer {
            error: 0,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: leader.clone(),
            member_id: member_id.into(),
            members: if member_id == leader {
                self.members
                    .values()
                    .map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(&protocol)))
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Removes a member (left, expired or replaced) and rebalances the rest.
    pub(super) fn remove_member(&mut self, member_id: &str, why: &str) {
        let Some(mut m) = self.members.remove(member_id) else { return };
        if let Some(tx) = m.join.take() {
            let _ = tx.send(JoinAnswer::error(ResponseError::UnknownMemberId.code(), member_id));
        }
        if let Some(tx) = m.sync.take() {
            let _ = tx.send(SyncAnswer::error(ResponseError::UnknownMemberId.code()));
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(&format!("member {member_id} {why}"));
                self.maybe_complete_join();
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(),
            GroupState::Empty => {}
        }
    }
}
