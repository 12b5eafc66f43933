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

use std::collections::{BTreeMap, HashSet};

use net::kafka_protocol::error::ResponseError;

use crate::configs::{config_type, log_config, LIST_CONFIG, TOPIC_CONFIGS};
use crate::groups::{OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS};
use crate::metadata::{validate_topic_name, MetadataImage, MetadataRecord, TopicMeta};

/// Most partitions one topic may have: bounds the work (and files) one
/// CreateTopics can cause.
pub const TOPIC_PARTITIONS_MAX: i32 = 10_000;

/// Producer ids handed to a shard at once: one metadata record per block,
/// not per InitProducerId.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// What the node's configuration allows the controller to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Shards of the node: partitions are placed round robin over them.
    pub shards: u16,
    /// Kafka's `num.partitions`, for a topic created without a count.
    pub default_partitions: i32,
    /// Partitions the node serves, every topic's together (`--max-partitions`).
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
    /// Manual replica assignments were given (not supported).
    pub has_assignments: bool,
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
pub type TopicOutcome = Result<TopicMeta, (i16, String)>;

/// The answer for one topic of DeleteTopics, CreatePartitions or AlterConfigs.
pub type Outcome = Result<(), (i16, String)>;

/// A change the controller is asked for.
#[derive(Debug, Clone)]
pub enum Command {
    /// What a new metadata log starts with: the cluster id and
    /// `__consumer_offsets`, whichever the image lacks.
    Bootstrap {
        cluster_id: String,
    },
    CreateTopics {
        topics: Vec<TopicSpec>,
        validate_only: bool,
    },
    /// Topics by name; their data is deleted by the shards that lead them.
    DeleteTopics {
        names: Vec<String>,
    },
    /// (topic, new partition count).
    CreatePartitions {
        topics: Vec<(String, i32)>,
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
}

/// What the asker is told once the records are committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Bootstrapped,
    Topics(Vec<TopicOutcome>),
    Outcomes(Vec<Outcome>),
    /// Producer ids `start..end`.
    ProducerIds {
        start: i64,
        end: i64,
    },
}

impl Answer {
    /// The answer when the records could not be committed: every accepted
    /// part becomes the error `code` with `message`.
    pub fn failed(self, code: i16, message: &str) -> Result<Answer, String> {
        let error = (code, message.to_string());
        Ok(match self {
            Answer::Topics(t) => {
                Answer::Topics(t.into_iter().map(|o| o.and(Err(error.clone()))).collect())
            }
            Answer::Outcomes(o) => {
                Answer::Outcomes(o.into_iter().map(|o| o.and(Err(error.clone()))).collect())
            }
            Answer::Bootstrapped | Answer::ProducerIds { .. } => return Err(message.to_string()),
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
        Command::Bootstrap { cluster_id } => {
            if image.cluster_id.is_empty() {
                p.records.push(MetadataRecord::Cluster { id: cluster_id });
            }
            if !image.topics.contains_key(OFFSETS_TOPIC) {
                p.records.push(MetadataRecord::Topic(offsets_topic(limits, new_id())));
            }
            Answer::Bootstrapped
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
            let outcomes = topics.iter().map(|(name, n)| p.create_partitions(name, *n)).collect();
            p.only_validating(validate_only);
            Answer::Outcomes(outcomes)
        }
        Command::AlterConfigs { topics, validate_only } => {
            let outcomes = topics.iter().map(|(name, c)| p.alter_configs(name, c)).collect();
            p.only_validating(validate_only);
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

    /// Partitions the node would serve after the records so far.
    fn partitions(&self) -> usize {
        let mut counts: BTreeMap<&str, usize> =
            self.image.topics.values().map(|t| (t.name.as_str(), t.shards.len())).collect();
        for r in &self.records {
            match r {
                MetadataRecord::Topic(t) => {
                    counts.insert(&t.name, t.shards.len());
                }
                MetadataRecord::DeleteTopic { name } => {
                    counts.remove(name.as_str());
                }
                _ => {}
            }
        }
        counts.values().sum()
    }

    /// Whether `more` partitions fit in the node's budget (`--max-partitions`,
    /// by default what the open-files limit allows): past it a topic would
    /// be announced whose partitions cannot all open.
    fn within_partition_budget(&self, more: usize) -> Result<(), (i16, String)> {
        let max = self.limits.partitions_max;
        let now = self.partitions();
        if now + more > max {
            return Err((
                ResponseError::InvalidPartitions.code(),
                format!(
                    "the node serves {now} partitions and at most {max} (--max-partitions, by default \
                     what the open-files limit allows); {more} more do not fit"
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
        let err = |e: ResponseError, m: String| Err((e.code(), m));
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
        if spec.has_assignments {
            return err(
                ResponseError::InvalidRequest,
                "manual replica assignment is not supported".into(),
            );
        }
        let partitions =
            if spec.partitions == -1 { self.limits.default_partitions } else { spec.partitions };
        if !(1..=TOPIC_PARTITIONS_MAX).contains(&partitions) {
            return err(
                ResponseError::InvalidPartitions,
                format!("number of partitions must be between 1 and {TOPIC_PARTITIONS_MAX}"),
            );
        }
        if spec.replication_factor != -1 && spec.replication_factor != 1 {
            return err(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "replication factor {} is larger than the 1 available broker node",
                    spec.replication_factor
                ),
            );
        }
        if let Err(m) = log_config(&spec.configs) {
            return err(ResponseError::InvalidConfig, m);
        }
        self.within_partition_budget(partitions as usize)?;
        // Each topic's first partition goes to the next shard, so topics
        // spread too: the count of topics (this command's included) picks it.
        let shards = i32::from(self.limits.shards.max(1));
        let created = self.records.iter().filter(|r| matches!(r, MetadataRecord::Topic(_))).count();
        let start = ((self.image.topics.len() + created) % shards as usize) as i32;
        let meta = TopicMeta {
            name: spec.name.clone(),
            id: new_id(),
            shards: (0..partitions).map(|p| ((start + p) % shards) as u16).collect(),
            configs: spec.configs.clone(),
        };
        self.records.push(MetadataRecord::Topic(meta.clone()));
        Ok(meta)
    }

    fn delete_topic(&mut self, name: &str) -> Outcome {
        if self.topic(name).is_none() {
            let code = ResponseError::UnknownTopicOrPartition.code();
            return Err((code, format!("topic '{name}' does not exist")));
        }
        if name == OFFSETS_TOPIC {
            let code = ResponseError::InvalidTopicException.code();
            return Err((code, format!("'{name}' is internal and cannot be deleted")));
        }
        self.records.push(MetadataRecord::DeleteTopic { name: name.to_string() });
        Ok(())
    }

    fn create_partitions(&mut self, name: &str, count: i32) -> Outcome {
        let Some(topic) = self.image.topics.get(name) else {
            let code = ResponseError::UnknownTopicOrPartition.code();
            return Err((code, format!("topic '{name}' does not exist")));
        };
        if name == OFFSETS_TOPIC {
            return Err((
                ResponseError::InvalidRequest.code(),
                format!("'{name}' is internal: its partition count places the groups"),
            ));
        }
        let current = topic.shards.len() as i32;
        if count <= current || count > TOPIC_PARTITIONS_MAX {
            return Err((
                ResponseError::InvalidPartitions.code(),
                format!(
                    "topic '{name}' has {current} partitions; the new count must be larger and at most {TOPIC_PARTITIONS_MAX}"
                ),
            ));
        }
        if self.touched(name) {
            return Err(appears_twice(name));
        }
        self.within_partition_budget((count - current) as usize)?;
        // New partitions continue the topic's round robin over shards.
        let shards = i32::from(self.limits.shards.max(1));
        let first = topic.shards.first().copied().map_or(0, i32::from);
        let mut grown = topic.clone();
        grown.shards.extend((current..count).map(|p| ((first + p) % shards) as u16));
        self.records.push(MetadataRecord::Topic(grown));
        Ok(())
    }

    fn alter_configs(&mut self, name: &str, changes: &[ConfigChange]) -> Outcome {
        let Some(topic) = self.image.topics.get(name) else {
            let code = ResponseError::UnknownTopicOrPartition.code();
            return Err((code, format!("topic '{name}' does not exist")));
        };
        if !self.seen.insert(name.to_string()) {
            return Err(appears_twice(name));
        }
        let configs = apply_config_changes(&topic.configs, changes)
            .map_err(|m| (ResponseError::InvalidConfig.code(), m))?;
        log_config(&configs).map_err(|m| (ResponseError::InvalidConfig.code(), m))?;
        let mut altered = topic.clone();
        altered.configs = configs;
        if altered != *topic {
            self.records.push(MetadataRecord::Topic(altered));
        }
        Ok(())
    }
}

/// The error for a topic named twice in one request.
fn appears_twice(name: &str) -> (i16, String) {
    (ResponseError::InvalidRequest.code(), format!("topic '{name}' appears twice"))
}

/// A topic's configs after `changes`, in order. List operations start
/// from the current value, or the default when the config is not set.
pub fn apply_config_changes(
    configs: &BTreeMap<String, String>,
    changes: &[ConfigChange],
) -> Result<BTreeMap<String, String>, String> {
    let mut out = configs.clone();
    for c in changes {
        let Some(&(_, default)) = TOPIC_CONFIGS.iter().find(|(n, _)| *n == c.name) else {
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

/// `__consumer_offsets`: Kafka's 50 partitions, round robin over shards
/// from shard 0, compacted.
fn offsets_topic(limits: &Limits, id: [u8; 16]) -> TopicMeta {
    let segment_bytes = limits.offsets_segment_bytes.to_string();
    let configs = [("cleanup.policy", "compact"), ("segment.bytes", segment_bytes.as_str())];
    let shards = i32::from(limits.shards.max(1));
    TopicMeta {
        name: OFFSETS_TOPIC.to_string(),
        id,
        shards: (0..OFFSETS_TOPIC_PARTITIONS).map(|p| (p % shards) as u16).collect(),
        configs: configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

#[cfg(test)]
mod tests {
    use engine::testkit::{seed, Rng};

    use super::*;

    fn limits() -> Limits {
        Limits {
            shards: 2,
            default_partitions: 3,
            partitions_max: 120,
            offsets_segment_bytes: 1 << 20,
        }
    }

    /// Ids 1, 2, 3, ...: deterministic.
    fn ids() -> impl FnMut() -> [u8; 16] {
        let mut n = 0u64;
        move || {
            n += 1;
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&n.to_be_bytes());
            id
        }
    }

    fn spec(name: &str, partitions: i32) -> TopicSpec {
        TopicSpec {
            name: name.into(),
            partitions,
            replication_factor: -1,
            configs: BTreeMap::new(),
            has_assignments: false,
        }
    }

    /// Proposes and folds the records, as the driver does after a commit.
    fn run(
        image: &mut MetadataImage,
        command: Command,
        ids: &mut dyn FnMut() -> [u8; 16],
    ) -> Answer {
        let p = propose(image, &limits(), command, ids);
        for r in &p.records {
            *image = image.apply(r);
        }
        p.answer
    }

    fn bootstrapped() -> MetadataImage {
        let mut image = MetadataImage::default();
        run(&mut image, Command::Bootstrap { cluster_id: "c".into() }, &mut ids());
        image
    }

    fn code(e: ResponseError) -> i16 {
        e.code()
    }

    #[test]
    fn bootstrap_writes_what_is_missing_once() {
        let image = bootstrapped();
        assert_eq!(image.cluster_id, "c");
        let offsets = &image.topics[OFFSETS_TOPIC];
        assert_eq!(offsets.shards.len(), OFFSETS_TOPIC_PARTITIONS as usize);
        assert_eq!(&offsets.shards[..4], &[0, 1, 0, 1]);
        let again =
            propose(&image, &limits(), Command::Bootstrap { cluster_id: "d".into() }, &mut ids());
        assert!(again.records.is_empty());
    }

    #[test]
    fn topics_are_placed_round_robin_and_checked_in_request_order() {
        let mut image = bootstrapped();
        let command = Command::CreateTopics {
            topics: vec![spec("a", 3), spec("a", 1), spec("b", -1), spec("__x", 1), spec("c", 0)],
            validate_only: false,
        };
        let Answer::Topics(out) = run(&mut image, command, &mut ids()) else { panic!() };
        // One topic existed (offsets): "a" starts on shard 1, "b" on shard 0.
        assert_eq!(out[0].as_ref().unwrap().shards, vec![1, 0, 1]);
        assert_eq!(out[1].as_ref().unwrap_err().0, code(ResponseError::TopicAlreadyExists));
        assert_eq!(out[2].as_ref().unwrap().shards, vec![0, 1, 0], "default partition count");
        assert_eq!(out[3].as_ref().unwrap_err().0, code(ResponseError::InvalidTopicException));
        assert_eq!(out[4].as_ref().unwrap_err().0, code(ResponseError::InvalidPartitions));
        assert_eq!(image.topics.len(), 3);
    }

    #[test]
    fn validate_only_and_refusals_write_nothing() {
        let image = bootstrapped();
        let only = Command::CreateTopics { topics: vec![spec("a", 1)], validate_only: true };
        let p = propose(&image, &limits(), only, &mut ids());
        assert!(p.records.is_empty());
        assert!(matches!(&p.answer, Answer::Topics(t) if t[0].is_ok()));
        // 50 offsets partitions + 70 = the budget of 120; one more is refused.
        let mut image = image;
        let fits = Command::CreateTopics { topics: vec![spec("a", 70)], validate_only: false };
        assert!(matches!(run(&mut image, fits, &mut ids()), Answer::Topics(t) if t[0].is_ok()));
        let over = Command::CreateTopics { topics: vec![spec("b", 1)], validate_only: false };
        let p = propose(&image, &limits(), over, &mut ids());
        assert!(p.records.is_empty());
        assert!(
            matches!(&p.answer, Answer::Topics(t) if t[0].as_ref().unwrap_err().0 == code(ResponseError::InvalidPartitions))
        );
        let grow =
            Command::CreatePartitions { topics: vec![("a".into(), 71)], validate_only: false };
        assert!(propose(&image, &limits(), grow, &mut ids()).records.is_empty());
    }

    #[test]
    fn deletes_partitions_and_configs() {
        let mut image = bootstrapped();
        run(
            &mut image,
            Command::CreateTopics { topics: vec![spec("a", 2)], validate_only: false },
            &mut ids(),
        );
        let Answer::Outcomes(out) = run(
            &mut image,
            Command::CreatePartitions {
                topics: vec![("a".into(), 5), ("a".into(), 6)],
                validate_only: false,
            },
            &mut ids(),
        ) else {
            panic!()
        };
        assert!(out[0].is_ok());
        assert_eq!(out[1].as_ref().unwrap_err().0, code(ResponseError::InvalidRequest));
        assert_eq!(image.topics["a"].shards, vec![1, 0, 1, 0, 1]);
        let set = |v: &str| ConfigChange {
            name: "retention.ms".into(),
            op: ConfigOp::Set,
            value: Some(v.into()),
        };
        let Answer::Outcomes(out) = run(
            &mut image,
            Command::AlterConfigs {
                topics: vec![("a".into(), vec![set("bad")]), ("a".into(), vec![set("5")])],
                validate_only: false,
            },
            &mut ids(),
        ) else {
            panic!()
        };
        assert_eq!(out[0].as_ref().unwrap_err().0, code(ResponseError::InvalidConfig));
        assert_eq!(
            out[1].as_ref().unwrap_err().0,
            code(ResponseError::InvalidRequest),
            "named twice"
        );
        assert!(image.topics["a"].configs.is_empty());
        let Answer::Outcomes(out) = run(
            &mut image,
            Command::DeleteTopics {
                names: vec!["a".into(), "a".into(), OFFSETS_TOPIC.into(), "z".into()],
            },
            &mut ids(),
        ) else {
            panic!()
        };
        assert!(out[0].is_ok());
        assert_eq!(out[1].as_ref().unwrap_err().0, code(ResponseError::UnknownTopicOrPartition));
        assert_eq!(out[2].as_ref().unwrap_err().0, code(ResponseError::InvalidTopicException));
        assert_eq!(out[3].as_ref().unwrap_err().0, code(ResponseError::UnknownTopicOrPartition));
        assert!(!image.topics.contains_key("a"));
    }

    #[test]
    fn a_failed_commit_turns_every_acceptance_into_the_error() {
        let answer = Answer::Outcomes(vec![Ok(()), Err((3, "no".into()))]);
        let failed = answer.failed(56, "disk").unwrap();
        assert_eq!(failed, Answer::Outcomes(vec![Err((56, "disk".into())), Err((3, "no".into()))]));
        assert!(Answer::ProducerIds { start: 0, end: 1 }.failed(56, "disk").is_err());
    }

    /// Random commands from a seed: the same seed gives the same records;
    /// folding every record from an empty image gives the image (what a
    /// restart or a follower sees); no topic is placed off the shards and
    /// the budget holds; producer id blocks never overlap.
    #[test]
    fn random_commands_replay_to_the_same_image() {
        let seed = seed("random_commands_replay_to_the_same_image");
        let history = |seed: u64| {
            let mut rng = Rng::new(seed);
            let mut image = bootstrapped();
            let mut records = Vec::new();
            let mut next_id = ids();
            let mut last_end = 0;
            let name = |rng: &mut Rng| format!("t{}", rng.below(6));
            for _ in 0..300 {
                let command = match rng.below(5) {
                    0 => Command::CreateTopics {
                        topics: (0..1 + rng.below(3))
                            .map(|_| spec(&name(&mut rng), rng.below(12) as i32))
                            .collect(),
                        validate_only: rng.chance(10),
                    },
                    1 => Command::DeleteTopics { names: vec![name(&mut rng)] },
                    2 => Command::CreatePartitions {
                        topics: vec![(name(&mut rng), rng.below(20) as i32)],
                        validate_only: false,
                    },
                    3 => Command::AlterConfigs {
                        topics: vec![(
                            name(&mut rng),
                            vec![ConfigChange {
                                name: "cleanup.policy".into(),
                                op: if rng.chance(50) {
                                    ConfigOp::Append
                                } else {
                                    ConfigOp::Subtract
                                },
                                value: Some("compact".into()),
                            }],
                        )],
                        validate_only: false,
                    },
                    _ => Command::AllocateProducerIds,
                };
                let p = propose(&image, &limits(), command, &mut next_id);
                if let Answer::ProducerIds { start, end } = p.answer {
                    assert!(start >= last_end && end == start + PRODUCER_ID_BLOCK, "seed {seed}");
                    last_end = end;
                }
                for r in &p.records {
                    image = image.apply(r);
                }
                records.extend(p.records);
                let partitions: usize = image.topics.values().map(|t| t.shards.len()).sum();
                assert!(partitions <= limits().partitions_max, "seed {seed}");
                assert!(
                    image.topics.values().all(|t| t.shards.iter().all(|&s| s < 2)),
                    "seed {seed}"
                );
            }
            (image, records)
        };
        let (image, records) = history(seed);
        assert_eq!(history(seed).1, records, "seed {seed}: not deterministic");
        let mut replayed = bootstrapped();
        for r in &records {
            replayed = replayed.apply(r);
        }
        assert_eq!(replayed, image, "seed {seed}");
    }
}
