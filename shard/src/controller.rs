//! The controller: owner of the metadata log, on shard 0.
//!
//! It replays the metadata log (`<data>/__cluster_metadata-0`, an engine log
//! with `Flush::Fsync`) at startup, then serves [`ControllerMsg`]s one at a
//! time: validate, append the records, wait until they are durable, fold
//! them into a new image, and hand the image to every shard, waiting until
//! each has opened its new partitions. Only then does the request get its
//! answer, so a client that created a topic can produce to it at once.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use bytes::BytesMut;
use engine::batch::{build, parse_records};
use engine::disk::DmaDisk;
use engine::{LogConfig, PartitionLog, SystemClock};
use log::{info, warn};
use net::kafka_protocol::error::ResponseError;

use crate::configs::{config_type, log_config, LIST_CONFIG, TOPIC_CONFIGS};
use crate::groups::{OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS};
use crate::metadata::{validate_topic_name, MetadataImage, MetadataRecord, TopicMeta};
use crate::shard::{Shard, ShardMsg};

/// Most partitions one topic may have: bounds the work (and files) one
/// CreateTopics can cause.
pub const TOPIC_PARTITIONS_MAX: i32 = 10_000;

/// Producer ids handed to a shard at once: one metadata record per block,
/// not per InitProducerId.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// Directory name of the metadata log.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

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

/// The answer for one topic: its metadata, or a Kafka error code and message.
pub type TopicOutcome = Result<TopicMeta, (i16, String)>;

/// The answer for one topic of DeleteTopics or CreatePartitions.
pub type Outcome = Result<(), (i16, String)>;

pub enum ControllerMsg {
    CreateTopics {
        topics: Vec<TopicSpec>,
        validate_only: bool,
        reply: flume::Sender<Vec<TopicOutcome>>,
    },
    /// Topics by name; their data is deleted by the shards that lead them.
    DeleteTopics { names: Vec<String>, reply: flume::Sender<Vec<Outcome>> },
    /// A block of [`PRODUCER_ID_BLOCK`] fresh producer ids: `start..end`.
    AllocateProducerIds { reply: flume::Sender<Result<(i64, i64), String>> },
    /// (topic, new partition count).
    CreatePartitions {
        topics: Vec<(String, i32)>,
        validate_only: bool,
        reply: flume::Sender<Vec<Outcome>>,
    },
    /// Topic config changes (IncrementalAlterConfigs): per topic, applied
    /// in order, all or none for that topic.
    AlterConfigs {
        topics: Vec<(String, Vec<ConfigChange>)>,
        validate_only: bool,
        reply: flume::Sender<Vec<Outcome>>,
    },
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

/// Runs the controller on shard 0 until the channel closes.
pub async fn run(
    shard: Rc<Shard>,
    inbox: flume::Receiver<ControllerMsg>,
    peers: Vec<flume::Sender<ShardMsg>>,
) {
    let mut controller = match Controller::open(shard.clone(), peers).await {
        Ok(c) => c,
        Err(e) => {
            // Without metadata no shard can serve: stop the node.
            eprintln!("fatal: metadata log: {e}");
            std::process::exit(1);
        }
    };
    while let Ok(msg) = inbox.recv_async().await {
        match msg {
            ControllerMsg::CreateTopics { topics, validate_only, reply } => {
                let outcome = controller.create_topics(topics, validate_only).await;
                let _ = reply.send(outcome);
            }
            ControllerMsg::DeleteTopics { names, reply } => {
                let outcome = controller.delete_topics(names).await;
                let _ = reply.send(outcome);
            }
            ControllerMsg::AllocateProducerIds { reply } => {
                let start = controller.image.next_producer_id;
                let end = start + PRODUCER_ID_BLOCK;
                let outcome = controller
                    .commit(vec![MetadataRecord::ProducerIds { next: end }])
                    .await
                    .map(|()| (start, end));
                let _ = reply.send(outcome);
            }
            ControllerMsg::CreatePartitions { topics, validate_only, reply } => {
                let outcome = controller.create_partitions(topics, validate_only).await;
                let _ = reply.send(outcome);
            }
            ControllerMsg::AlterConfigs { topics, validate_only, reply } => {
                let outcome = controller.alter_configs(topics, validate_only).await;
                let _ = reply.send(outcome);
            }
        }
    }
}

struct Controller {
    shard: Rc<Shard>,
    log: PartitionLog<DmaDisk>,
    image: Arc<MetadataImage>,
    peers: Vec<flume::Sender<ShardMsg>>,
    /// Where the next topic's first partition goes, so topics spread too.
    next_shard: u16,
}

impl Controller {
    async fn open(
        shard: Rc<Shard>,
        peers: Vec<flume::Sender<ShardMsg>>,
    ) -> Result<Controller, String> {
        let dir = shard.config.data_dir.join(format!("{METADATA_TOPIC}-0"));
        let log = PartitionLog::open(
            shard.disk.clone(),
            &dir,
            LogConfig::default(),
            &shard.flusher,
            Rc::new(SystemClock),
        )
        .await
        .map_err(|e| e.to_string())?;
        shard.logs.borrow_mut().insert((METADATA_TOPIC.to_string(), 0), log.clone());
        let mut image = MetadataImage::default();
        log.replay(log.log_start_offset(), |_, batch| {
            let invalid = |e: String| engine::LogError::Invalid(format!("metadata log: {e}"));
            for r in parse_records(batch).map_err(|e| invalid(e.to_string()))? {
                let value = r.value.ok_or_else(|| invalid("record without a value".into()))?;
                image = image.apply(&MetadataRecord::decode(value).map_err(invalid)?);
            }
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())?;
        let next_shard = (image.topics.len() % shard.config.shards as usize) as u16;
        let shard_count = shard.config.shards;
        let mut c = Controller { shard, log, image: Arc::new(image), peers, next_shard };
        if c.image.cluster_id.is_empty() {
            let id = random_id();
            c.commit(vec![MetadataRecord::Cluster { id }]).await?;
        }
        if !c.image.topics.contains_key(OFFSETS_TOPIC) {
            let segment_bytes = c.shard.config.offsets_segment_bytes;
            c.commit(vec![MetadataRecord::Topic(offsets_topic(shard_count, segment_bytes))])
                .await?;
        }
        info!(
            "controller: metadata epoch {} with {} topics, cluster id {}",
            c.image.epoch,
            c.image.topics.len(),
            c.image.cluster_id
        );
        c.broadcast().await;
        Ok(c)
    }

    /// Appends records durably and folds them into the image.
    async fn commit(&mut self, records: Vec<MetadataRecord>) -> Result<(), String> {
        if records.is_empty() {
            return Ok(());
        }
        let values: Vec<Vec<u8>> = records.iter().map(|r| r.encode()).collect();
        let kv: Vec<_> = values.iter().map(|v| (None, Some(&v[..]))).collect();
        let batch = build(&kv, engine::Clock::now_ms(&SystemClock));
        let info =
            self.log.append(BytesMut::from(&batch[..]), 0).await.map_err(|e| e.to_string())?;
        self.log.wait_acked(info.end_offset).await.map_err(|e| e.to_string())?;
        let mut image = (*self.image).clone();
        for r in &records {
            image = image.apply(r);
        }
        self.image = Arc::new(image);
        Ok(())
    }

    /// Hands the image to every shard and waits until each has applied it.
    async fn broadcast(&self) {
        let mut waits = Vec::new();
        for peer in &self.peers {
            let (done, wait) = flume::bounded(1);
            if peer.send_async(ShardMsg::Image { image: self.image.clone(), done }).await.is_ok() {
                waits.push(wait);
            }
        }
        for w in waits {
            let _ = w.recv_async().await;
        }
    }

    async fn create_topics(
        &mut self,
        topics: Vec<TopicSpec>,
        validate_only: bool,
    ) -> Vec<TopicOutcome> {
        let mut outcomes = Vec::with_capacity(topics.len());
        let mut records = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut added = 0usize;
        for spec in topics {
            let mut outcome = self.validate(&spec, &seen);
            if let Ok(meta) = &outcome {
                if let Err(e) = self.within_partition_budget(added + meta.shards.len()) {
                    outcome = Err(e);
                }
            }
            if let Ok(meta) = &outcome {
                added += meta.shards.len();
                seen.insert(meta.name.clone());
                records.push(MetadataRecord::Topic(meta.clone()));
            }
            outcomes.push(outcome);
        }
        if validate_only || records.is_empty() {
            return outcomes;
        }
        if let Err(e) = self.commit(records).await {
            warn!("controller: metadata log append failed: {e}");
            let code = ResponseError::KafkaStorageError.code();
            return outcomes.into_iter().map(|o| o.and(Err((code, e.clone())))).collect();
        }
        self.broadcast().await;
        outcomes
    }

    /// Commits `records` and broadcasts the new image; on failure every
    /// accepted outcome becomes a storage error.
    async fn commit_outcomes(
        &mut self,
        records: Vec<MetadataRecord>,
        outcomes: Vec<Outcome>,
    ) -> Vec<Outcome> {
        if records.is_empty() {
            return outcomes;
        }
        if let Err(e) = self.commit(records).await {
            warn!("controller: metadata log append failed: {e}");
            let code = ResponseError::KafkaStorageError.code();
            return outcomes.into_iter().map(|o| o.and(Err((code, e.clone())))).collect();
        }
        self.broadcast().await;
        outcomes
    }

    async fn delete_topics(&mut self, names: Vec<String>) -> Vec<Outcome> {
        let mut records: Vec<MetadataRecord> = Vec::new();
        let mut outcomes = Vec::with_capacity(names.len());
        for name in &names {
            let twice = records
                .iter()
                .any(|r| matches!(r, MetadataRecord::DeleteTopic { name: n } if n == name));
            if !self.image.topics.contains_key(name) || twice {
                let code = ResponseError::UnknownTopicOrPartition.code();
                outcomes.push(Err((code, format!("topic '{name}' does not exist"))));
                continue;
            }
            if name == OFFSETS_TOPIC {
                let code = ResponseError::InvalidTopicException.code();
                outcomes.push(Err((code, format!("'{name}' is internal and cannot be deleted"))));
                continue;
            }
            records.push(MetadataRecord::DeleteTopic { name: name.clone() });
            outcomes.push(Ok(()));
        }
        self.commit_outcomes(records, outcomes).await
    }

    async fn create_partitions(
        &mut self,
        topics: Vec<(String, i32)>,
        validate_only: bool,
    ) -> Vec<Outcome> {
        let mut records: Vec<MetadataRecord> = Vec::new();
        let mut outcomes = Vec::with_capacity(topics.len());
        let shards = self.shard.config.shards as i32;
        for (name, count) in &topics {
            let Some(topic) = self.image.topics.get(name) else {
                let code = ResponseError::UnknownTopicOrPartition.code();
                outcomes.push(Err((code, format!("topic '{name}' does not exist"))));
                continue;
            };
            if name == OFFSETS_TOPIC {
                outcomes.push(Err((
                    ResponseError::InvalidRequest.code(),
                    format!("'{name}' is internal: its partition count places the groups"),
                )));
                continue;
            }
            let current = topic.shards.len() as i32;
            if *count <= current || *count > TOPIC_PARTITIONS_MAX {
                outcomes.push(Err((
                    ResponseError::InvalidPartitions.code(),
                    format!(
                        "topic '{name}' has {current} partitions; the new count must be larger and at most {TOPIC_PARTITIONS_MAX}"
                    ),
                )));
                continue;
            }
            if records.iter().any(|r| matches!(r, MetadataRecord::Topic(t) if &t.name == name)) {
                outcomes.push(Err(appears_twice(name)));
                continue;
            }
            let added: usize = records
                .iter()
                .map(|r| match r {
                    MetadataRecord::Topic(t) => {
                        let before = self.image.topics.get(&t.name).map_or(0, |o| o.shards.len());
                        t.shards.len().saturating_sub(before)
                    }
                    _ => 0,
                })
                .sum();
            if let Err(e) = self.within_partition_budget(added + (*count - current) as usize) {
                outcomes.push(Err(e));
                continue;
            }
            // New partitions continue the topic's round robin over shards.
            let first = topic.shards.first().copied().unwrap_or(0) as i32;
            let mut grown = topic.clone();
            grown.shards.extend((current..*count).map(|p| ((first + p) % shards) as u16));
            records.push(MetadataRecord::Topic(grown));
            outcomes.push(Ok(()));
        }
        if validate_only {
            return outcomes;
        }
        self.commit_outcomes(records, outcomes).await
    }

    async fn alter_configs(
        &mut self,
        topics: Vec<(String, Vec<ConfigChange>)>,
        validate_only: bool,
    ) -> Vec<Outcome> {
        let mut records: Vec<MetadataRecord> = Vec::new();
        let mut outcomes = Vec::with_capacity(topics.len());
        let mut seen = std::collections::HashSet::new();
        for (name, changes) in &topics {
            let Some(topic) = self.image.topics.get(name) else {
                let code = ResponseError::UnknownTopicOrPartition.code();
                outcomes.push(Err((code, format!("topic '{name}' does not exist"))));
                continue;
            };
            if !seen.insert(name.as_str()) {
                outcomes.push(Err(appears_twice(name)));
                continue;
            }
            let configs = match apply_config_changes(&topic.configs, changes) {
                Ok(c) => c,
                Err(m) => {
                    outcomes.push(Err((ResponseError::InvalidConfig.code(), m)));
                    continue;
                }
            };
            if let Err(m) = log_config(&configs) {
                outcomes.push(Err((ResponseError::InvalidConfig.code(), m)));
                continue;
            }
            let mut altered = topic.clone();
            altered.configs = configs;
            if altered != *topic {
                records.push(MetadataRecord::Topic(altered));
            }
            outcomes.push(Ok(()));
        }
        if validate_only {
            return outcomes;
        }
        self.commit_outcomes(records, outcomes).await
    }

    /// Checks one topic and places its partitions.
    /// Whether `more` partitions fit in the node's budget (`--max-partitions`,
    /// by default what the open-files limit allows): past it a topic would
    /// be announced whose partitions cannot all open.
    fn within_partition_budget(&self, more: usize) -> Result<(), (i16, String)> {
        let max = self.shard.config.partitions_max.unwrap_or(usize::MAX);
        let now: usize = self.image.topics.values().map(|t| t.shards.len()).sum();
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

    fn validate(
        &mut self,
        spec: &TopicSpec,
        seen: &std::collections::HashSet<String>,
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
        if self.image.topics.contains_key(&spec.name) || seen.contains(&spec.name) {
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
        let partitions = if spec.partitions == -1 {
            self.shard.config.default_partitions
        } else {
            spec.partitions
        };
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
        let shards = self.shard.config.shards;
        let start = self.next_shard;
        self.next_shard = (self.next_shard + 1) % shards;
        Ok(TopicMeta {
            name: spec.name.clone(),
            id: random_bytes(),
            shards: (0..partitions).map(|p| ((start as i32 + p) % shards as i32) as u16).collect(),
            configs: spec.configs.clone(),
        })
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
fn offsets_topic(shards: u16, segment_bytes: u64) -> TopicMeta {
    let segment_bytes = segment_bytes.to_string();
    let configs = [("cleanup.policy", "compact"), ("segment.bytes", segment_bytes.as_str())];
    TopicMeta {
        name: OFFSETS_TOPIC.to_string(),
        id: random_bytes(),
        shards: (0..OFFSETS_TOPIC_PARTITIONS).map(|p| (p % shards as i32) as u16).collect(),
        configs: configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

/// 16 random bytes from the kernel.
pub fn random_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    // SAFETY: `b` is a valid buffer of 16 bytes.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    assert_eq!(n, 16, "getrandom");
    b
}

/// A Kafka-style cluster id: 16 random bytes in URL-safe base64, no padding.
pub fn random_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = random_bytes();
    let mut bits: u128 = u128::from_be_bytes(bytes);
    let mut out = Vec::with_capacity(22);
    // 22 characters of 6 bits cover 128 bits (the first holds 2).
    for _ in 0..22 {
        out.push(ALPHABET[(bits & 63) as usize]);
        bits >>= 6;
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}
