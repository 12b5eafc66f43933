//! The group coordinator of one shard: the consumer groups whose
//! `__consumer_offsets` partition this shard leads, with Kafka's classic
//! group protocol and their committed offsets.
//!
//! Runs on the shard's own executor; all state is shard-local (`RefCell`,
//! never borrowed across an `.await`). A group's state machine is Kafka's:
//!
//! ```text
//! Empty --join--> PreparingRebalance --all joined / rebalance timeout--> CompletingRebalance
//!   ^                 ^      ^                                              | leader's SyncGroup
//!   |  last member    |      +------------- join, leave, expiry ------------+ v
//!   +-- leaves -------+----------------------- join, leave, expiry ------ Stable
//! ```
//!
//! JoinGroup and SyncGroup answers wait on one-shot channels that the state
//! machine completes; [`Coordinator::tick`] (every [`TICK`]) expires members
//! whose session ran out and completes rebalances whose timeout passed.
//! Committed offsets are appended to `__consumer_offsets` ([`records`]) and
//! applied in memory only once durable; they are replayed when the shard
//! opens the partition; group metadata records are written by [`persist`].
//! One group's members and rebalance steps are [`group`]'s; this module
//! routes requests to them and owns the coordinator's map of groups.
//! This module must not touch another shard's groups:
//! a request for a group coordinated elsewhere gets `NOT_COORDINATOR`.

mod group;
mod load;
mod persist;
pub mod records;
pub mod txn_offsets;
mod write;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use log::{info, warn};
use net::kafka_protocol::error::ResponseError;

pub use write::{commit_error_code, wait_committed, write_error_code, OFFSETS_COMMIT_TIMEOUT};

use group::{Group, Member};
use records::{Committed, GroupRecord};

/// Kafka's internal topic for offsets and its partition count
/// (`offsets.topic.num.partitions`): 50, as Kafka, so groups land on the
/// same partition numbers.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
pub const OFFSETS_TOPIC_PARTITIONS: i32 = 50;

/// Replicas of each `__consumer_offsets` partition in a cluster of at
/// least this many nodes (Kafka's `offsets.topic.replication.factor`);
/// smaller clusters replicate it on every node.
pub const OFFSETS_TOPIC_REPLICATION_FACTOR: usize = 3;

/// How often sessions and rebalance timeouts are checked. Expiry is late by
/// at most this much; 100 ms is far below any session timeout allowed.
pub const TICK: Duration = Duration::from_millis(100);

/// Kafka's `group.min.session.timeout.ms` and `group.max.session.timeout.ms`.
pub const SESSION_TIMEOUT_MIN_MS: i32 = 6_000;
pub const SESSION_TIMEOUT_MAX_MS: i32 = 1_800_000;

/// Kafka's `offset.metadata.max.bytes`: the free-form string committed
/// with an offset.
pub const OFFSET_METADATA_BYTES_MAX: usize = 4096;

/// Kafka's `group.max.size` is unbounded by default; Corelog bounds members
/// per group so one group cannot hold unbounded memory (each member keeps
/// its subscription and assignment).
pub const GROUP_MEMBERS_MAX: usize = 1000;

/// Longest group id accepted (bounds every string written to the log).
pub const GROUP_ID_BYTES_MAX: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    /// The name Kafka's DescribeGroups and ListGroups use.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// What a JoinGroup gets back.
#[derive(Debug, Clone, Default)]
pub struct JoinAnswer {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// For the leader only: every member's id, instance id and metadata for
    /// the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinAnswer {
    fn error(code: i16, member_id: &str) -> JoinAnswer {
        JoinAnswer {
            error: code,
            generation: -1,
            member_id: member_id.into(),
            ..Default::default()
        }
    }
}

/// What a SyncGroup gets back.
#[derive(Debug, Clone, Default)]
pub struct SyncAnswer {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub assignment: Bytes,
}

impl SyncAnswer {
    fn error(code: i16) -> SyncAnswer {
        SyncAnswer { error: code, ..Default::default() }
    }
}

/// Either an answer now, or a channel the answer will arrive on.
pub enum Pending<T> {
    Now(T),
    Later(flume::Receiver<T>),
}

/// Longest string of a group's metadata record: Kafka writes them with an
/// i16 length.
pub const GROUP_STRING_BYTES_MAX: usize = i16::MAX as usize;

/// Bytes of the client id that start a new member id (`<client id>-<uuid>`):
/// a client id may be 32,767 bytes, and the member id must stay within
/// [`GROUP_STRING_BYTES_MAX`].
pub const MEMBER_ID_CLIENT_ID_BYTES_MAX: usize = 255;

/// The start of `client_id` used in member ids, cut at a char boundary.
fn client_id_prefix(client_id: &str) -> &str {
    let mut end = client_id.len().min(MEMBER_ID_CLIENT_ID_BYTES_MAX);
    while !client_id.is_char_boundary(end) {
        end -= 1;
    }
    &client_id[..end]
}

/// A JoinGroup request, decoded.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a new member must first get its id (MEMBER_ID_REQUIRED).
    pub require_known_member_id: bool,
}

/// The groups this shard coordinates.
#[derive(Default)]
pub struct Coordinator {
    groups: RefCell<HashMap<String, Group>>,
    /// `__consumer_offsets` partitions whose records are loaded.
    loaded: RefCell<HashSet<i32>>,
    /// Offsets of open transactions, by partition and producer
    /// ([`txn_offsets`]).
    txn_offsets: RefCell<HashMap<(i32, i64), Vec<txn_offsets::PendingOffset>>>,
}

/// Why a group request cannot be served here.
pub fn check_group_id(group: &str) -> Result<(), i16> {
    if group.is_empty() || group.len() > GROUP_ID_BYTES_MAX {
        return Err(ResponseError::InvalidGroupId.code());
    }
    Ok(())
}

impl Coordinator {
    /// The metadata records of groups that became stable or empty since
    /// they were last taken: (group, record).
    pub fn take_dirty(&self) -> Vec<(String, GroupRecord)> {
        let mut out = Vec::new();
        for g in self.groups.borrow_mut().values_mut() {
            if std::mem::take(&mut g.dirty) {
                out.push((g.id.clone(), g.record()));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub fn is_loaded(&self, partition: i32) -> bool {
        self.loaded.borrow().contains(&partition)
    }

    /// Applies a durable offset record (or tombstone) to memory.
    pub fn apply(
        &self,
        group: &str,
        tp: (String, i32),
        value: Option<Committed>,
        record_offset: i64,
    ) {
        let mut groups = self.groups.borrow_mut();
        let g = groups.entry(group.to_string()).or_insert_with(|| Group::new(group));
        if g.offset_records.get(&tp).is_some_and(|&o| o > record_offset) {
            return;
        }
        g.offset_records.insert(tp.clone(), record_offset);
        match value {
            Some(c) => {
                g.offsets.insert(tp, c);
            }
            None => {
                g.offsets.remove(&tp);
            }
        }
        if g.offsets.is_empty() && g.members.is_empty() && g.state == GroupState::Empty {
            groups.remove(group);
        }
    }

    pub fn join(&self, req: JoinRequest) -> Pending<JoinAnswer> {
        let err = |e: ResponseError| Pending::Now(JoinAnswer::error(e.code(), &req.member_id));
        if !(SESSION_TIMEOUT_MIN_MS..=SESSION_TIMEOUT_MAX_MS).contains(&req.session_timeout_ms) {
            return err(ResponseError::InvalidSessionTimeout);
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return err(ResponseError::InconsistentGroupProtocol);
        }
        // Group metadata records hold these strings with i16 lengths
        // (Kafka's format); a longer one would make the record unreadable.
        let strings = [&req.group, &req.member_id, &req.protocol_type, &req.client_host]
            .into_iter()
            .chain(req.instance_id.as_ref())
            .chain(req.protocols.iter().map(|(name, _)| name));
        if strings.into_iter().any(|s| s.len() > GROUP_STRING_BYTES_MAX) {
            return err(ResponseError::InvalidRequest);
        }
        let mut groups = self.groups.borrow_mut();
        let g = groups.entry(req.group.clone()).or_insert_with(|| Group::new(&req.group));
        if !g.members.is_empty()
            && (g.protocol_type.as_deref().is_some_and(|t| t != req.protocol_type)
                || g.common_protocols(&req.protocols).is_empty())
        {
            return err(ResponseError::InconsistentGroupProtocol);
        }
        let now = Instant::now();
        let session = Duration::from_millis(req.session_timeout_ms as u64);
        // A rebalance timeout of -1 (JoinGroup v0) means the session timeout.
        let rebalance = if req.rebalance_timeout_ms > 0 {
            Duration::from_millis(req.rebalance_timeout_ms as u64)
        } else {
            session
        };
        let (tx, rx) = flume::bounded(1);
        let new_member = |id: String| Member {
            id,
            instance_id: req.instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout: session,
            rebalance_timeout: rebalance,
            protocol_type: req.protocol_type.clone(),
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            last_seen: now,
            join: Some(tx.clone()),
            sync: None,
        };
        if req.member_id.is_empty() {
            let id = format!(
                "{}-{}",
                client_id_prefix(&req.client_id),
                uuid::Uuid::from_bytes(crate::ids::random_bytes()).hyphenated()
            );
            if let Some(instance) = &req.instance_id {
                if let Some(old_id) = g.static_member(instance) {
                    // A static member back with a new id: it takes its old
                    // place; the old id is fenced.
                    let mut old = g.members.remove(&old_id).expect("found");
                    if let Some(t) = old.join.take() {
                        let _ = t.send(JoinAnswer::error(
                            ResponseError::FencedInstanceId.code(),
                            &old_id,
                        ));
                    }
                    if let Some(t) = old.sync.take() {
                        let _ = t.send(SyncAnswer::error(ResponseError::FencedInstanceId.code()));
                    }
                    let unchanged = old.protocols == req.protocols;
                    let mut m = new_member(id.clone());
                    m.assignment = old.assignment.clone();
                    if g.leader.as_deref() == Some(old_id.as_str()) {
                        g.leader = Some(id.clone());
                    }
                    if g.state == GroupState::Stable && unchanged {
                        m.join = None;
                        g.members.insert(id.clone(), m);
                        g.dirty = true;
                        let mut answer = g.current(&id);
                        answer.members.clear();
                        return Pending::Now(answer);
                    }
                    g.members.insert(id.clone(), m);
                    return Self::rebalance_with(g, &id, rx, "a static member rejoined");
                }
            } else if req.require_known_member_id {
                g.pending.insert(id.clone(), now + session);
                return Pending::Now(JoinAnswer::error(
                    ResponseError::MemberIdRequired.code(),
                    &id,
                ));
            }
            if g.members.len() >= GROUP_MEMBERS_MAX {
                return err(ResponseError::GroupMaxSizeReached);
            }
            g.members.insert(id.clone(), new_member(id.clone()));
            return Self::rebalance_with(g, &id, rx, "a member joined");
        }
        let id = req.member_id.clone();
        let Some(m) = g.members.get_mut(&id) else {
            if g.pending.remove(&id).is_some() {
                if g.members.len() >= GROUP_MEMBERS_MAX {
                    return err(ResponseError::GroupMaxSizeReached);
                }
                g.members.insert(id.clone(), new_member(id.clone()));
                return Self::rebalance_with(g, &id, rx, "a member joined");
            }
            return err(ResponseError::UnknownMemberId);
        };
        if m.instance_id != req.instance_id {
            return err(ResponseError::FencedInstanceId);
        }
        let changed = m.protocols != req.protocols;
        m.protocols = req.protocols.clone();
        m.session_timeout = session;
        m.rebalance_timeout = rebalance;
        m.last_seen = now;
        let is_leader = g.leader.as_deref() == Some(id.as_str());
        match g.state {
            GroupState::PreparingRebalance => {
                g.members.get_mut(&id).expect("member").join = Some(tx);
                g.maybe_complete_join();
                Pending::Later(rx)
            }
            GroupState::CompletingRebalance if !changed => Pending::Now(g.current(&id)),
            GroupState::Stable if !changed && !is_leader => Pending::Now(g.current(&id)),
            _ => {
                g.members.get_mut(&id).expect("member").join = Some(tx);
                Self::rebalance_with(g, &id, rx, "a member rejoined")
            }
        }
    }

    fn rebalance_with(
        g: &mut Group,
        member: &str,
        rx: flume::Receiver<JoinAnswer>,
        why: &str,
    ) -> Pending<JoinAnswer> {
        debug_assert!(g.members.get(member).is_some_and(|m| m.join.is_some()));
        if g.state != GroupState::PreparingRebalance {
            g.prepare_rebalance(why);
        }
        g.maybe_complete_join();
        Pending::Later(rx)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        protocol_type: Option<&str>,
        protocol: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> Pending<SyncAnswer> {
        let err = |e: ResponseError| Pending::Now(SyncAnswer::error(e.code()));
        let mut groups = self.groups.borrow_mut();
        let Some(g) = groups.get_mut(group) else { return err(ResponseError::UnknownMemberId) };
        let Some(m) = g.members.get(member_id) else {
            return err(g.missing_member_error(instance_id));
        };
        if m.instance_id.as_deref() != instance_id {
            return err(ResponseError::FencedInstanceId);
        }
        if generation != g.generation {
            return err(ResponseError::IllegalGeneration);
        }
        if protocol_type.is_some_and(|t| Some(t) != g.protocol_type.as_deref())
            || protocol.is_some_and(|p| Some(p) != g.protocol.as_deref())
        {
            return err(ResponseError::InconsistentGroupProtocol);
        }
        match g.state {
            GroupState::Empty => err(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => err(ResponseError::RebalanceInProgress),
            GroupState::Stable => Pending::Now(SyncAnswer {
                error: 0,
                protocol_type: g.protocol_type.clone(),
                protocol: g.protocol.clone(),
                assignment: m.assignment.clone(),
            }),
            GroupState::CompletingRebalance => {
                let (tx, rx) = flume::bounded(1);
                g.members.get_mut(member_id).expect("member").sync = Some(tx);
                g.members.get_mut(member_id).expect("member").last_seen = Instant::now();
                if g.leader.as_deref() == Some(member_id) {
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in g.members.values_mut() {
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                    }
                    g.state = GroupState::Stable;
                    g.dirty = true;
                    info!("group {}: stable at generation {}", g.id, g.generation);
                    for m in g.members.values_mut() {
                        if let Some(tx) = m.sync.take() {
                            let _ = tx.send(SyncAnswer {
                                error: 0,
                                protocol_type: g.protocol_type.clone(),
                                protocol: g.protocol.clone(),
                                assignment: m.assignment.clone(),
                            });
                        }
                    }
                }
                Pending::Later(rx)
            }
        }
    }

    pub fn heartbeat(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> i16 {
        let mut groups = self.groups.borrow_mut();
        let Some(g) = groups.get_mut(group) else {
            return ResponseError::UnknownMemberId.code();
        };
        let state = g.state;
        let current = g.generation;
        let fenced = g.missing_member_error(instance_id);
        let Some(m) = g.members.get_mut(member_id) else {
            return fenced.code();
        };
        if m.instance_id.as_deref() != instance_id {
            return ResponseError::FencedInstanceId.code();
        }
        m.last_seen = Instant::now();
        match state {
            GroupState::Empty => ResponseError::UnknownMemberId.code(),
            GroupState::PreparingRebalance => ResponseError::RebalanceInProgress.code(),
            _ if generation != current => ResponseError::IllegalGeneration.code(),
            _ => 0,
        }
    }

    /// LeaveGroup for each (member id, instance id): the error of each.
    pub fn leave(
        &self,
        group: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<i16>, i16> {
        let mut groups = self.groups.borrow_mut();
        let Some(g) = groups.get_mut(group) else {
            return Err(ResponseError::UnknownMemberId.code());
        };
        Ok(members
            .iter()
            .map(|(id, instance)| {
                // A static member may leave by instance id alone.
                let id = match (id.is_empty(), instance) {
                    (true, Some(i)) => g.static_member(i).unwrap_or_default(),
                    _ => id.clone(),
                };
                if g.pending.remove(&id).is_some() {
                    return 0;
                }
                match g.members.get(&id) {
                    None => ResponseError::UnknownMemberId.code(),
                    Some(m) if instance.is_some() && m.instance_id != *instance => {
                        ResponseError::FencedInstanceId.code()
                    }
                    Some(_) => {
                        g.remove_member(&id, "left");
                        0
                    }
                }
            })
            .collect())
    }

    /// Expires members whose session ran out and completes rebalances
    /// whose timeout passed.
    pub fn tick(&self) {
        let now = Instant::now();
        let mut groups = self.groups.borrow_mut();
        for g in groups.values_mut() {
            g.pending.retain(|_, until| *until > now);
            let expired: Vec<String> = g
                .members
                .values()
                .filter(|m| {
                    m.join.is_none() && m.sync.is_none() && now - m.last_seen > m.session_timeout
                })
                .map(|m| m.id.clone())
                .collect();
            for id in expired {
                warn!("group {}: member {id} expired (no heartbeat within its session)", g.id);
                g.remove_member(&id, "expired");
            }
            if g.state == GroupState::PreparingRebalance
                && g.rebalance_deadline.is_some_and(|d| d <= now)
            {
                g.complete_join();
            }
        }
        // A group is forgotten once nothing is left of it; a member id
        // handed out with MEMBER_ID_REQUIRED keeps it until that member
        // rejoins or the id expires.
        groups.retain(|_, g| {
            g.dirty
                || !g.pending.is_empty()
                || !(g.state == GroupState::Empty && g.members.is_empty() && g.offsets.is_empty())
        });
    }

    /// Forgets the groups of `partition` of `__consumer_offsets`, whose
    /// leadership moved away: their waiting members are answered
    /// NOT_COORDINATOR and find the new coordinator, which loads the
    /// partition's records from its replica.
    pub fn unload(&self, partition: i32) {
        if !self.loaded.borrow_mut().remove(&partition) {
            return;
        }
        self.drop_txn_offsets(partition);
        let ours = |g: &Group| records::partition_for(&g.id, OFFSETS_TOPIC_PARTITIONS) == partition;
        self.answer_waiting(|g| ours(g));
        let mut groups = self.groups.borrow_mut();
        let before = groups.len();
        groups.retain(|_, g| !ours(g));
        info!("{OFFSETS_TOPIC}-{partition}: unloaded {} groups", before - groups.len());
    }

    /// Answers every waiting JoinGroup and SyncGroup (shutdown): clients go
    /// and find the coordinator again.
    pub fn stop(&self) {
        self.answer_waiting(|_| true);
    }

    /// Answers NOT_COORDINATOR to the waiting members of the groups `which`
    /// picks.
    fn answer_waiting(&self, which: impl Fn(&Group) -> bool) {
        let code = ResponseError::NotCoordinator.code();
        for g in self.groups.borrow_mut().values_mut().filter(|g| which(g)) {
            for m in g.members.values_mut() {
                if let Some(tx) = m.join.take() {
                    let _ = tx.send(JoinAnswer::error(code, &m.id));
                }
                if let Some(tx) = m.sync.take() {
                    let _ = tx.send(SyncAnswer::error(code));
                }
            }
        }
    }

    /// Whether `member_id` of `generation` may commit offsets now: `Ok` or
    /// the error for every partition. A commit with generation -1 and no
    /// member is a "simple" commit (assign(), kcat), allowed while the
    /// group has no members.
    pub fn check_commit(&self, group: &str, generation: i32, member_id: &str) -> Result<(), i16> {
        let groups = self.groups.borrow();
        let Some(g) = groups.get(group) else {
            return if generation < 0 {
                Ok(())
            } else {
                Err(ResponseError::IllegalGeneration.code())
            };
        };
        if generation < 0 && g.state == GroupState::Empty {
            return Ok(());
        }
        if g.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress.code());
        }
        if !g.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId.code());
        }
        if generation != g.generation {
            return Err(ResponseError::IllegalGeneration.code());
        }
        Ok(())
    }

    /// The committed offset of one partition.
    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<Committed> {
        self.groups
            .borrow()
            .get(group)
            .and_then(|g| g.offsets.get(&(topic.to_string(), partition)).cloned())
    }

    /// Every committed offset of a group, sorted by topic and partition.
    pub fn all_committed(&self, group: &str) -> Vec<((String, i32), Committed)> {
        let groups = self.groups.borrow();
        let mut all: Vec<_> = groups
            .get(group)
            .map(|g| g.offsets.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// A group as DescribeGroups shows it, `None` if unknown here.
    pub fn describe(&self, group: &str) -> Option<GroupView> {
        let groups = self.groups.borrow();
        let g = groups.get(group)?;
        Some(GroupView {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: g.protocol.clone().unwrap_or_default(),
            members: g
                .members
                .values()
                .map(|m| MemberView {
                    id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if g.state == GroupState::Stable {
                        m.metadata(g.protocol.as_deref().unwrap_or_default())
                    } else {
                        Bytes::new()
                    },
                    assignment: if g.state == GroupState::Stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        })
    }

    /// Every group here with its state, members and committed offsets
    /// (sorted), for metrics.
    pub fn metrics_view(&self) -> Vec<crate::metrics::GroupSnapshot> {
        let groups = self.groups.borrow();
        let mut all: Vec<_> = groups
            .values()
            .map(|g| {
                let mut committed: Vec<_> =
                    g.offsets.iter().map(|((t, p), c)| (t.clone(), *p, c.offset.0)).collect();
                committed.sort();
                crate::metrics::GroupSnapshot {
                    group: g.id.clone(),
                    state: g.state.name(),
                    members: g.members.len() as u64,
                    generation: g.generation,
                    committed,
                }
            })
            .collect();
        all.sort_by(|a, b| a.group.cmp(&b.group));
        all
    }

    /// Every group here: (id, protocol type, state).
    pub fn list(&self) -> Vec<(String, String, GroupState)> {
        let mut all: Vec<_> = self
            .groups
            .borrow()
            .values()
            .map(|g| (g.id.clone(), g.protocol_type.clone().unwrap_or_default(), g.state))
            .collect();
        all.sort();
        all
    }

    /// Forgets a deleted group (its records are tombstoned).
    pub fn forget(&self, group: &str) {
        self.groups.borrow_mut().remove(group);
    }

    /// Whether the group may be deleted: known and without members.
    pub fn check_delete(&self, group: &str) -> Result<(), i16> {
        match self.groups.borrow().get(group) {
            None => Err(ResponseError::GroupIdNotFound.code()),
            Some(g) if !g.members.is_empty() || g.state != GroupState::Empty => {
                Err(ResponseError::NonEmptyGroup.code())
            }
            Some(_) => Ok(()),
        }
    }

    /// The topics the group's members subscribe to (consumer protocol).
    pub fn subscribed_topics(&self, group: &str) -> HashSet<String> {
        let groups = self.groups.borrow();
        let Some(g) = groups.get(group) else { return HashSet::new() };
        if g.protocol_type.as_deref() != Some("consumer") {
            return HashSet::new();
        }
        let protocol = g.protocol.clone().unwrap_or_default();
        g.members.values().flat_map(|m| subscription_topics(&m.metadata(&protocol))).collect()
    }
}

/// The topics of a consumer protocol subscription (`version: i16`, then
/// `topics: [string]`, which every version starts with).
fn subscription_topics(metadata: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    if metadata.len() < 6 {
        return out;
    }
    let count = i32::from_be_bytes(metadata[2..6].try_into().expect("4 bytes"));
    let mut at = 6;
    for _ in 0..count.max(0) {
        let Some(len) = metadata.get(at..at + 2) else { break };
        let len = i16::from_be_bytes(len.try_into().expect("2 bytes")).max(0) as usize;
        let Some(name) = metadata.get(at + 2..at + 2 + len) else { break };
        out.push(String::from_utf8_lossy(name).into_owned());
        at += 2 + len;
    }
    out
}

/// A group for DescribeGroups.
pub struct GroupView {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberView>,
}

pub struct MemberView {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// Waits for a pending answer, or gives `fallback` if the coordinator
/// dropped the channel (never happens while the shard runs).
pub async fn answer<T>(pending: Pending<T>, fallback: T) -> T {
    match pending {
        Pending::Now(a) => a,
        Pending::Later(rx) => rx.recv_async().await.unwrap_or(fallback),
    }
}

#[cfg(test)]
mod tests;
