//! The controller's state machine: what a [`Command`] becomes, as metadata
//! records and an answer, given the current [`MetadataImage`].
//!
//! Pure: no sockets, files, clocks, randomness or shards. The topic ids it
//! needs come from the caller, so the same image, command and ids always
//! give the same records (a seeded simulation replays them). The driver
//! (`super`) appends the records to the metadata log and folds each into
//! the image with [`MetadataImage::apply`]; with a quorum only the leader
//! proposes, and every node folds the same committed records.
//!
//! Runs wherever the controller runs; never blocks or does I/O.
//!
//! - [`placement`]: where new partitions' replicas and leaders go.
//! - [`nodes`]: registration and fencing, and the leader elections they cause.
//! - [`isr`]: ISR changes leaders ask for; [`elect`]: elections operators ask for.
//! - SCRAM credentials ([`ScramChange`]): set and deleted as records, the
//!   salting done before (by the admin client, or at startup for seeds).
//! - ACLs: bindings added (checked as Kafka checks them), and removed by
//!   the filters of a DeleteAcls, matched against the image here, where
//!   the records are made.

pub mod elect;
#[cfg(test)]
mod elect_tests;
pub mod isr;
pub mod nodes;
pub mod placement;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};

use auth::acl::{AclBinding, AclFilter};
use auth::scram::{Mechanism, ScramCredential};
use net::kafka_protocol::error::ResponseError;

use crate::configs::{config_type, default_of, log_config, LIST_CONFIG};
use crate::error::{ControllerError, Refusal};
use crate::groups::{OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS, OFFSETS_TOPIC_REPLICATION_FACTOR};
use crate::ids::NodeId;
use crate::metadata::{
    validate_topic_name, MetadataImage, MetadataRecord, NodeMeta, PartitionMeta, TopicMeta,
};
use crate::txns::TRANSACTION_TOPIC;

/// Most partitions one topic may have: bounds the work (and files) one
/// CreateTopics can cause.
pub const TOPIC_PARTITIONS_MAX: i32 = 10_000;

/// Producer ids handed to a shard at once: one metadata record per block,
/// not per InitProducerId.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// What the node's configuration allows the controller to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Kafka's `num.partitions`, for a topic created without a count.
    pub default_partitions: i32,
    /// Kafka's `default.replication.factor`, for a topic created without one.
    pub default_replication_factor: i16,
    /// Replicas one node may hold, every topic's together
    /// (`--max-partitions` of the controller's node, taken for every node).
    pub partitions_max: usize,
    /// `segment.bytes` of `__consumer_offsets` when it is created.
    pub offsets_segment_bytes: u64,
}

/// A topic to create, as requested.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    /// -1 for the default.
    pub partitions: i32,
    /// -1 for the default.
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    /// Replicas assigned by hand: (partition index, broker ids), in any
    /// order; empty for the placement's choice.
    pub assignments: Vec<(i32, Vec<i32>)>,
}

/// New partitions for a topic (CreatePartitions).
#[derive(Debug, Clone)]
pub struct PartitionsSpec {
    pub name: String,
    /// The new partition count.
    pub count: i32,
    /// Broker ids of each new partition, assigned by hand.
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// One change to one topic config, as IncrementalAlterConfigs names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChange {
    pub name: String,
    pub op: ConfigOp,
    /// `None` only for [`ConfigOp::Delete`].
    pub value: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigOp {
    /// Set the value.
    Set,
    /// Back to the default.
    Delete,
    /// Add list elements (list configs only: `cleanup.policy`).
    Append,
    /// Remove list elements (list configs only).
    Subtract,
}

/// The answer for one topic: its metadata, or a Kafka error code and message.
pub type TopicOutcome = Result<TopicMeta, Refusal>;

/// The answer for one topic of DeleteTopics, CreatePartitions or AlterConfigs.
pub type Outcome = Result<(), Refusal>;

/// A change the controller is asked for.
#[derive(Debug, Clone)]
pub enum Command {
    /// What a new metadata log starts with: the cluster id, and
    /// `__consumer_offsets` once a node is live; whichever the image lacks.
    Bootstrap {
        cluster_id: String,
        /// `--scram-credential` seeds, written with the cluster id only
        /// (into a new metadata log, as `kafka-storage format --add-scram`).
        scram: Vec<(String, ScramCredential)>,
    },
    /// A node starts (or restarts): it is live.
    RegisterNode(NodeMeta),
    /// A node missed its heartbeats.
    FenceNode(NodeId),
    /// A fenced node heartbeats again.
    UnfenceNode(NodeId),
    /// A node stops cleanly.
    UnregisterNode(NodeId),
    CreateTopics {
        topics: Vec<TopicSpec>,
        validate_only: bool,
    },
    /// Topics by name; their data is deleted by the shards that lead them.
    DeleteTopics {
        names: Vec<String>,
    },
    CreatePartitions {
        topics: Vec<PartitionsSpec>,
        validate_only: bool,
    },
    /// Topic config changes (IncrementalAlterConfigs): per topic, applied
    /// in order, all or none for that topic.
    AlterConfigs {
        topics: Vec<(String, Vec<ConfigChange>)>,
        validate_only: bool,
    },
    /// A block of [`PRODUCER_ID_BLOCK`] fresh producer ids.
    AllocateProducerIds,
    /// `__transaction_state`, if the image lacks it (Kafka creates it at
    /// the first FindCoordinator for a transactional id).
    CreateTransactionTopic,
    /// ISR changes partitions' leaders ask for (AlterPartition).
    AlterPartitions {
        changes: Vec<isr::IsrChange>,
    },
    /// Leader elections (ElectLeaders): preferred, or unclean; one
    /// outcome per partition, in order.
    ElectLeaders {
        unclean: bool,
        partitions: Vec<(String, i32)>,
    },
    /// SCRAM credential changes (AlterUserScramCredentials), one outcome
    /// each, in order.
    AlterScram {
        changes: Vec<ScramChange>,
    },
    /// ACL bindings added (CreateAcls), one outcome each, in order.
    CreateAcls {
        bindings: Vec<AclBinding>,
    },
    /// ACL bindings removed (DeleteAcls): per filter, those it matches.
    DeleteAcls {
        filters: Vec<AclFilter>,
    },
    /// Client quotas set and removed (AlterClientQuotas), checked by the
    /// handler first.
    AlterClientQuotas {
        changes: Vec<QuotaChange>,
    },
}

/// One entity's quota changes: each key set to a value, or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaChange {
    pub entity: crate::quotas::QuotaEntity,
    pub ops: Vec<(String, Option<crate::quotas::QuotaValue>)>,
}

/// One change of a user's SCRAM credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScramChange {
    Upsert { user: String, credential: ScramCredential },
    Delete { user: String, mechanism: Mechanism },
}

/// What the asker is told once the records are committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Bootstrap and node changes: nothing to tell but that it is done.
    Done,
    Topics(Vec<TopicOutcome>),
    Outcomes(Vec<Outcome>),
    /// Producer ids `start..end`.
    ProducerIds {
        start: i64,
        end: i64,
    },
    /// Per ISR change: the partition after it, or why not.
    Partitions(Vec<isr::IsrOutcome>),
    /// Per DeleteAcls filter: the bindings it removed, or why not.
    Acls(Vec<Result<Vec<AclBinding>, Refusal>>),
}

impl Answer {
    /// The answer when the records could not be committed: every accepted
    /// part becomes the error `code` with `message`.
    pub fn failed(self, error: ResponseError, message: &str) -> Result<Answer, ControllerError> {
        let error = Refusal::new(error, message);
        Ok(match self {
            Answer::Topics(t) => {
                Answer::Topics(t.into_iter().map(|o| o.and(Err(error.clone()))).collect())
            }
            Answer::Outcomes(o) => {
                Answer::Outcomes(o.into_iter().map(|o| o.and(Err(error.clone()))).collect())
            }
            Answer::Partitions(o) => {
                Answer::Partitions(o.into_iter().map(|o| o.and(Err(error.clone()))).collect())
            }
            Answer::Acls(o) => {
                Answer::Acls(o.into_iter().map(|o| o.and(Err(error.clone()))).collect())
            }
            Answer::Done | Answer::ProducerIds { .. } => {
                return Err(ControllerError::Storage(message.to_string()))
            }
        })
    }
}

/// The records a command appends (none when it is refused or only
/// validated), and the answer once they are committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub records: Vec<MetadataRecord>,
    pub answer: Answer,
}

/// What `command` makes of `image`. `new_id` gives each new topic its id.
pub fn propose(
    image: &MetadataImage,
    limits: &Limits,
    command: Command,
    new_id: &mut dyn FnMut() -> [u8; 16],
) -> Proposal {
    let mut p = Proposer { image, limits, records: Vec::new(), seen: HashSet::new() };
    let answer = match command {
        Command::Bootstrap { cluster_id, scram } => {
            if image.cluster_id.is_empty() {
                p.records.push(MetadataRecord::Cluster { id: cluster_id });
                p.records.extend(
                    scram
                        .into_iter()
                        .map(|(user, credential)| MetadataRecord::Scram { user, credential }),
                );
            }
            if !image.topics.contains_key(OFFSETS_TOPIC) && image.live_nodes().next().is_some() {
                p.records.push(MetadataRecord::Topic(offsets_topic(image, limits, new_id())));
            }
            Answer::Done
        }
        Command::RegisterNode(node) => {
            p.records = nodes::register(image, node);
            Answer::Done
        }
        Command::FenceNode(node) => {
            p.records = nodes::fence(image, node);
            Answer::Done
        }
        Command::UnfenceNode(node) => {
            p.records = nodes::unfence(image, node);
            Answer::Done
        }
        Command::UnregisterNode(node) => {
            p.records = nodes::unregister(image, node);
            Answer::Done
        }
        Command::CreateTopics { topics, validate_only } => {
            let outcomes = topics.iter().map(|spec| p.create_topic(spec, new_id)).collect();
            p.only_validating(validate_only);
            Answer::Topics(outcomes)
        }
        Command::DeleteTopics { names } => {
            Answer::Outcomes(names.iter().map(|n| p.delete_topic(n)).collect())
        }
        Command::CreatePartitions { topics, validate_only } => {
            let outcomes = topics.iter().map(|spec| p.create_partitions(spec)).collect();
            p.only_validating(validate_only);
            Answer::Outcomes(outcomes)
        }
        Command::AlterConfigs { topics, validate_only } => {
            let outcomes = topics.iter().map(|(name, c)| p.alter_configs(name, c)).collect();
            p.only_validating(validate_only);
            Answer::Outcomes(outcomes)
        }
        Command::AlterPartitions { changes } => {
            let (records, outcomes) = isr::alter(image, changes);
            p.records = records;
            Answer::Partitions(outcomes)
        }
        Command::ElectLeaders { unclean, partitions } => {
            let (records, outcomes) = elect::elect(image, unclean, &partitions);
            p.records = records;
            Answer::Outcomes(outcomes)
        }
        Command::CreateTransactionTopic => {
            if !image.topics.contains_key(TRANSACTION_TOPIC) && image.live_nodes().next().is_some()
            {
                p.records.push(MetadataRecord::Topic(transaction_topic(image, limits, new_id())));
            }
            Answer::Done
        }
        Command::AlterScram { changes } => {
            Answer::Outcomes(changes.into_iter().map(|c| p.alter_scram(c)).collect())
        }
        Command::CreateAcls { bindings } => {
            Answer::Outcomes(bindings.into_iter().map(|b| p.create_acl(b)).collect())
        }
        Command::DeleteAcls { filters } => {
            // A binding two filters match is removed once, listed twice.
            let mut removed = std::collections::BTreeSet::new();
            let per_filter = filters
                .iter()
                .map(|f| {
                    let matched: Vec<AclBinding> =
                        image.acls.iter().filter(|b| f.matches(b)).cloned().collect();
                    for b in &matched {
                        if removed.insert(b.clone()) {
                            p.records.push(MetadataRecord::AclDelete(b.clone()));
                        }
                    }
                    Ok(matched)
                })
                .collect();
            Answer::Acls(per_filter)
        }
        Command::AlterClientQuotas { changes } => {
            let outcomes = changes.iter().map(|_| Ok(())).collect();
            for change in changes {
                for (key, value) in change.ops {
                    let entity = change.entity.clone();
                    p.records.push(MetadataRecord::Quota { entity, key, value });
                }
            }
            Answer::Outcomes(outcomes)
        }
        Command::AllocateProducerIds => {
            let start = image.next_producer_id;
            let end = start.saturating_add(PRODUCER_ID_BLOCK);
            p.records.push(MetadataRecord::ProducerIds { next: end });
            Answer::ProducerIds { start, end }
        }
    };
    Proposal { records: p.records, answer }
}

/// One command's work: the image it started from and the records so far
/// (later topics of a request see the earlier ones).
struct Proposer<'a> {
    image: &'a MetadataImage,
    limits: &'a Limits,
    records: Vec<MetadataRecord>,
    /// Topics this command altered the configs of, or tried to.
    seen: HashSet<String>,
}

impl Proposer<'_> {
    /// A SCRAM credential set, or deleted if it exists (Kafka's
    /// `RESOURCE_NOT_FOUND` otherwise).
    fn alter_scram(&mut self, change: ScramChange) -> Outcome {
        match change {
            // Checked by the handler that asked; again here, where the
            // record is made, for a command from any node.
            ScramChange::Upsert { user, credential } => {
                if user.is_empty() || !credential.iterations_allowed() {
                    return Err(Refusal::new(
                        ResponseError::UnacceptableCredential,
                        "an empty user name or iterations out of bounds",
                    ));
                }
                self.records.push(MetadataRecord::Scram { user, credential });
            }
            ScramChange::Delete { user, mechanism } => {
                let exists =
                    self.image.scram.get(&user).is_some_and(|c| c.contains_key(&mechanism));
                if !exists {
                    return Err(Refusal::new(
                        ResponseError::ResourceNotFound,
                        "Attempt to delete a user credential that does not exist",
                    ));
                }
                self.records.push(MetadataRecord::ScramDelete { user, mechanism });
            }
        }
        Ok(())
    }

    /// An ACL binding added, unless Kafka would refuse it
    /// (`INVALID_REQUEST`); one already in force is no new record.
    fn create_acl(&mut self, binding: AclBinding) -> Outcome {
        if let Some(why) = binding.invalid() {
            return Err(Refusal::new(ResponseError::InvalidRequest, &why));
        }
        if !self.image.acls.contains(&binding) {
            self.records.push(MetadataRecord::Acl(binding));
        }
        Ok(())
    }

    fn only_validating(&mut self, validate_only: bool) {
        if validate_only {
            self.records.clear();
        }
    }

    /// The topic as this command leaves it so far.
    fn topic(&self, name: &str) -> Option<&TopicMeta> {
        let mut found = self.image.topics.get(name);
        for r in &self.records {
            match r {
                MetadataRecord::Topic(t) if t.name == name => found = Some(t),
                MetadataRecord::DeleteTopic { name: n } if n == name => found = None,
                _ => {}
            }
        }
        found
    }

    /// Whether this command already has a record for `name`.
    fn touched(&self, name: &str) -> bool {
        self.records.iter().any(|r| match r {
            MetadataRecord::Topic(t) => t.name == name,
            MetadataRecord::DeleteTopic { name: n } => n == name,
            _ => false,
        })
    }

    /// Replicas each node would hold after the records so far.
    fn replicas_by_node(&self) -> BTreeMap<NodeId, usize> {
        let mut topics: BTreeMap<&str, &TopicMeta> =
            self.image.topics.values().map(|t| (t.name.as_str(), t)).collect();
        for r in &self.records {
            match r {
                MetadataRecord::Topic(t) => {
                    topics.insert(&t.name, t);
                }
                MetadataRecord::DeleteTopic { name } => {
                    topics.remove(name.as_str());
                }
                _ => {}
            }
        }
        let mut counts = BTreeMap::new();
        for p in topics.values().flat_map(|t| &t.partitions) {
            for b in &p.replicas {
                *counts.entry(b.node()).or_default() += 1;
            }
        }
        counts
    }

    /// Whether the `new` partitions fit in every node's budget
    /// (`--max-partitions`, by default what the open-files limit allows):
    /// past it a topic would be announced whose partitions cannot all open.
    fn within_partition_budget(&self, new: &[PartitionMeta]) -> Result<(), Refusal> {
        let max = self.limits.partitions_max;
        let mut counts = self.replicas_by_node();
        let now = counts.clone();
        for b in new.iter().flat_map(|p| &p.replicas) {
            *counts.entry(b.node()).or_default() += 1;
        }
        if let Some((node, &after)) = counts.iter().find(|(_, &n)| n > max) {
            let before = now.get(node).copied().unwrap_or(0);
            return Err(Refusal::new(
                ResponseError::InvalidPartitions,
                format!(
                    "node {node} holds {before} partitions and at most {max} (--max-partitions, by \
                     default what the open-files limit allows); {} more do not fit",
                    after - before
                ),
            ));
        }
        Ok(())
    }

    fn create_topic(
        &mut self,
        spec: &TopicSpec,
        new_id: &mut dyn FnMut() -> [u8; 16],
    ) -> TopicOutcome {
        let err = |e: ResponseError, m: String| Err(Refusal::new(e, m));
        if let Err(m) = validate_topic_name(&spec.name) {
            return err(ResponseError::InvalidTopicException, m);
        }
        if spec.name.starts_with("__") {
            return err(
                ResponseError::InvalidTopicException,
                "names starting with '__' are reserved".into(),
            );
        }
        if self.topic(&spec.name).is_some() {
            return err(
                ResponseError::TopicAlreadyExists,
                format!("topic '{}' already exists", spec.name),
            );
        }
        if let Err(m) = log_config(&spec.configs) {
            return err(ResponseError::InvalidConfig, m);
        }
        let partitions = if spec.assignments.is_empty() {
            let count = if spec.partitions == -1 {
                self.limits.default_partitions
            } else {
                spec.partitions
            };
            if !(1..=TOPIC_PARTITIONS_MAX).contains(&count) {
                return err(
                    ResponseError::InvalidPartitions,
                    format!("number of partitions must be between 1 and {TOPIC_PARTITIONS_MAX}"),
                );
            }
            let factor = match spec.replication_factor {
                -1 => self.limits.default_replication_factor,
                f => f,
            };
            let factor = placement::check_replication_factor(self.image, factor)?;
            // Each topic's first partition goes to the next broker, so
            // topics spread too: the count of topics (this command's
            // included) picks it.
            let created =
                self.records.iter().filter(|r| matches!(r, MetadataRecord::Topic(_))).count();
            let start = self.image.topics.len() + created;
            placement::place(self.image, start, 0, count as usize, factor)
        } else {
            if spec.partitions != -1 || spec.replication_factor != -1 {
                return err(
                    ResponseError::InvalidRequest,
                    "a partition count or replication factor cannot be given with replica \
                     assignments"
                        .into(),
                );
            }
            let mut by_index = spec.assignments.clone();
            by_index.sort_by_key(|(p, _)| *p);
            let consecutive = by_index.iter().enumerate().all(|(i, (p, _))| *p == i as i32);
            if !consecutive || by_index.len() > TOPIC_PARTITIONS_MAX as usize {
                return err(
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "assigned partitions must be 0, 1, 2, ... each once, at most {TOPIC_PARTITIONS_MAX}"
                    ),
                );
            }
            let lists: Vec<Vec<i32>> = by_index.into_iter().map(|(_, ids)| ids).collect();
            placement::assigned(self.image, 0, &lists, None)?
        };
        self.within_partition_budget(&partitions)?;
        let meta = TopicMeta {
            name: spec.name.clone(),
            id: new_id(),
            partitions,
            configs: spec.configs.clone(),
        };
        self.records.push(MetadataRecord::Topic(meta.clone()));
        Ok(meta)
    }

    fn delete_topic(&mut self, name: &str) -> Outcome {
        if self.topic(name).is_none() {
            let code = ResponseError::UnknownTopicOrPartition;
            return Err(Refusal::new(code, format!("topic '{name}' does not exist")));
        }
        if is_internal(name) {
            let code = ResponseError::InvalidTopicException;
            return Err(Refusal::new(code, format!("'{name}' is internal and cannot be deleted")));
        }
        self.records.push(MetadataRecord::DeleteTopic { name: name.to_string() });
        Ok(())
    }

    fn create_partitions(&mut self, spec: &PartitionsSpec) -> Outcome {
        let (name, count) = (spec.name.as_str(), spec.count);
        let Some(topic) = self.image.topics.get(name) else {
            let code = ResponseError::UnknownTopicOrPartition;
            return Err(Refusal::new(code, format!("topic '{name}' does not exist")));
        };
        if is_internal(name) {
            return Err(Refusal::new(
                ResponseError::InvalidRequest,
                format!("'{name}' is internal: its partition count places its keys"),
            ));
        }
        let current = topic.partitions.len() as i32;
        if count <= current || count > TOPIC_PARTITIONS_MAX {
            return Err(Refusal::new(ResponseError::InvalidPartitions,
                format!(
                    "topic '{name}' has {current} partitions; the new count must be larger and at most {TOPIC_PARTITIONS_MAX}"
                ),
            ));
        }
        if self.touched(name) {
            return Err(appears_twice(name));
        }
        let factor = topic.partitions.first().map_or(1, |p| p.replicas.len());
        let (first, more) = (current as usize, (count - current) as usize);
        let new = match &spec.assignments {
            Some(lists) => {
                if lists.len() != more {
                    return Err(Refusal::new(
                        ResponseError::InvalidReplicaAssignment,
                        format!(
                            "{more} new partitions of '{name}' but {} assignments",
                            lists.len()
                        ),
                    ));
                }
                placement::assigned(self.image, first, lists, Some(factor))?
            }
            None => {
                placement::check_replication_factor(self.image, factor as i16)?;
                // New partitions continue the topic's round robin.
                let order = placement::leader_order(self.image);
                let leader0 = topic.partitions.first().and_then(|p| p.replicas.first());
                let start = leader0.and_then(|b| order.iter().position(|o| o == b)).unwrap_or(0);
                placement::place(self.image, start, first, more, factor)
            }
        };
        self.within_partition_budget(&new)?;
        let mut grown = topic.clone();
        grown.partitions.extend(new);
        self.records.push(MetadataRecord::Topic(grown));
        Ok(())
    }

    fn alter_configs(&mut self, name: &str, changes: &[ConfigChange]) -> Outcome {
        let Some(topic) = self.image.topics.get(name) else {
            let code = ResponseError::UnknownTopicOrPartition;
            return Err(Refusal::new(code, format!("topic '{name}' does not exist")));
        };
        if !self.seen.insert(name.to_string()) {
            return Err(appears_twice(name));
        }
        let configs = apply_config_changes(&topic.configs, changes)
            .map_err(|m| Refusal::new(ResponseError::InvalidConfig, m))?;
        log_config(&configs).map_err(|m| Refusal::new(ResponseError::InvalidConfig, m))?;
        let mut altered = topic.clone();
        altered.configs = configs;
        if altered != *topic {
            let record = MetadataRecord::Topic(altered);
            let after = self.image.apply(&record);
            self.records.push(record);
            self.records.extend(nodes::elect_leaderless_in(&after, |t| t.name == name));
        }
        Ok(())
    }
}

/// The error for a topic named twice in one request.
fn appears_twice(name: &str) -> Refusal {
    Refusal::new(ResponseError::InvalidRequest, format!("topic '{name}' appears twice"))
}

/// A topic's configs after `changes`, in order. List operations start
/// from the current value, or the default when the config is not set.
pub fn apply_config_changes(
    configs: &BTreeMap<String, String>,
    changes: &[ConfigChange],
) -> Result<BTreeMap<String, String>, String> {
    let mut out = configs.clone();
    for c in changes {
        let Some(default) = default_of(&c.name) else {
            return Err(format!("unknown or unsupported topic config {:?}", c.name));
        };
        let value = c.value.clone().unwrap_or_default();
        match c.op {
            ConfigOp::Set => {
                out.insert(c.name.clone(), value);
            }
            ConfigOp::Delete => {
                out.remove(&c.name);
            }
            ConfigOp::Append | ConfigOp::Subtract => {
                if config_type(&c.name) != LIST_CONFIG {
                    return Err(format!(
                        "{} is not a list: APPEND and SUBTRACT do not apply",
                        c.name
                    ));
                }
                let current = out.get(&c.name).map(String::as_str).unwrap_or(default);
                let mut items: Vec<String> = current
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if c.op == ConfigOp::Append {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                if items.is_empty() {
                    return Err(format!("{} cannot be empty", c.name));
                }
                out.insert(c.name.clone(), items.join(","));
            }
        }
    }
    Ok(out)
}

/// The topics the brokers write themselves: never deleted, never grown.
pub fn is_internal(name: &str) -> bool {
    name == OFFSETS_TOPIC || name == TRANSACTION_TOPIC
}

/// `__transaction_state`: Kafka's 50 partitions
/// (`transaction.state.log.num.partitions`), replicated as
/// `__consumer_offsets`, compacted.
fn transaction_topic(image: &MetadataImage, limits: &Limits, id: [u8; 16]) -> TopicMeta {
    TopicMeta { name: TRANSACTION_TOPIC.to_string(), ..offsets_topic(image, limits, id) }
}

/// `__consumer_offsets`: Kafka's 50 partitions, round robin over the
/// live brokers from the first, one replica each until replication
/// exists (issue 14), compacted.
fn offsets_topic(image: &MetadataImage, limits: &Limits, id: [u8; 16]) -> TopicMeta {
    let factor = OFFSETS_TOPIC_REPLICATION_FACTOR.min(image.live_nodes().count());
    let segment_bytes = limits.offsets_segment_bytes.to_string();
    let configs = [("cleanup.policy", "compact"), ("segment.bytes", segment_bytes.as_str())];
    TopicMeta {
        name: OFFSETS_TOPIC.to_string(),
        id,
        partitions: placement::place(image, 0, 0, OFFSETS_TOPIC_PARTITIONS as usize, factor),
        configs: configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}
