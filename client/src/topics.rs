//! Topic administration: CreateTopics, DeleteTopics, DescribeConfigs and
//! IncrementalAlterConfigs, each sent to the bootstrap broker (Kafka
//! forwards them to its controller); DeleteRecords, sent to each
//! partition's leader.
//!
//! Owns the requests and the per-topic answers as [`KafkaError`]s; it must
//! not print or decide what an error means to a user.

use anyhow::{bail, Context, Result};
use net::kafka_protocol::messages::*;
use net::kafka_protocol::protocol::StrBytes;

use crate::cluster::Client;
use crate::conn::{name, str, Conn, CREATE_TOPICS_VERSION, DELETE_TOPICS_VERSION};
use crate::error::{check, KafkaError};
use crate::security::Security;

pub const DESCRIBE_CONFIGS_VERSION: i16 = 4;
pub const INCREMENTAL_ALTER_CONFIGS_VERSION: i16 = 1;
pub const DELETE_RECORDS_VERSION: i16 = 2;
/// The TOPIC resource type of DescribeConfigs and IncrementalAlterConfigs.
pub const RESOURCE_TOPIC: i8 = 2;
/// How long the broker may take to create or delete a topic.
pub const TOPIC_TIMEOUT_MS: i32 = 30_000;

/// A config entry's source, as DescribeConfigs v1+ reports it.
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub const SOURCE_DEFAULT: i8 = 5;

/// Creates `topic` with `partitions` partitions, the broker's default
/// replication factor (-1, KIP-464) and the given configs; an existing
/// topic is left as it is.
pub fn create_topic(
    bootstrap: &str,
    security: &Security,
    topic: &str,
    partitions: i32,
    configs: &[(&str, String)],
) -> Result<()> {
    use create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let mut conn = Conn::connect_with(bootstrap, security)?;
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_value(Some(StrBytes::from_string(v.clone())))
        })
        .collect();
    let response: CreateTopicsResponse = conn.call(
        ApiKey::CreateTopics,
        CREATE_TOPICS_VERSION,
        &CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![
            CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(-1)
                .with_configs(configs),
        ]),
    )?;
    match response.topics.first().map(|t| t.error_code) {
        Some(0) | Some(36) => Ok(()), // created, or TOPIC_ALREADY_EXISTS
        Some(code) => bail!("creating topic {topic}: error {code}"),
        None => bail!("creating topic {topic}: empty answer"),
    }
}

/// Deletes `topic` (its data goes from the broker's disk).
pub fn delete_topic(bootstrap: &str, security: &Security, topic: &str) -> Result<()> {
    let mut conn = Conn::connect_with(bootstrap, security)?;
    let response: DeleteTopicsResponse = conn.call(
        ApiKey::DeleteTopics,
        DELETE_TOPICS_VERSION,
        &DeleteTopicsRequest::default().with_timeout_ms(30_000).with_topic_names(vec![name(topic)]),
    )?;
    match response.responses.first().map(|t| t.error_code) {
        Some(0) | Some(3) => Ok(()), // deleted, or UNKNOWN_TOPIC_OR_PARTITION
        Some(code) => bail!("deleting topic {topic}: error {code}"),
        None => bail!("deleting topic {topic}: empty answer"),
    }
}

/// What [`create`] asks for.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    pub name: String,
    /// -1 for the broker's default.
    pub partitions: i32,
    /// -1 for the broker's default.
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

/// Creates one topic; the broker's refusal comes back as a [`KafkaError`]
/// inside the error.
pub fn create(client: &mut Client, topic: &NewTopic) -> Result<()> {
    use create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let configs = topic
        .configs
        .iter()
        .map(|(k, v)| CreatableTopicConfig::default().with_name(str(k)).with_value(Some(str(v))))
        .collect();
    let r: CreateTopicsResponse = client.call_bootstrap(
        ApiKey::CreateTopics,
        CREATE_TOPICS_VERSION,
        &CreateTopicsRequest::default().with_timeout_ms(TOPIC_TIMEOUT_MS).with_topics(vec![
            CreatableTopic::default()
                .with_name(name(&topic.name))
                .with_num_partitions(topic.partitions)
                .with_replication_factor(topic.replication_factor)
                .with_configs(configs),
        ]),
    )?;
    let t = r.topics.first().context("CreateTopics: empty answer")?;
    check(t.error_code, t.error_message.as_ref())?;
    Ok(())
}

/// Deletes `topics`; returns each topic's refusal, if any, in request order.
pub fn delete(client: &mut Client, topics: &[String]) -> Result<Vec<(String, Option<KafkaError>)>> {
    let r: DeleteTopicsResponse = client.call_bootstrap(
        ApiKey::DeleteTopics,
        DELETE_TOPICS_VERSION,
        &DeleteTopicsRequest::default()
            .with_timeout_ms(TOPIC_TIMEOUT_MS)
            .with_topic_names(topics.iter().map(|t| name(t)).collect()),
    )?;
    topics
        .iter()
        .map(|t| {
            let answer = r
                .responses
                .iter()
                .find(|a| a.name.as_ref().is_some_and(|n| n.0.as_str() == t))
                .with_context(|| format!("DeleteTopics: no answer for {t}"))?;
            Ok((t.clone(), check(answer.error_code, answer.error_message.as_ref()).err()))
        })
        .collect()
}

/// One config of a topic, from DescribeConfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    /// [`SOURCE_DYNAMIC_TOPIC`], [`SOURCE_DEFAULT`], or another Kafka source.
    pub source: i8,
    pub read_only: bool,
    pub sensitive: bool,
}

impl ConfigEntry {
    /// Set on the topic itself (what `kafka-topics.sh --describe` shows).
    pub fn is_topic_override(&self) -> bool {
        self.source == SOURCE_DYNAMIC_TOPIC
    }
}

/// Every config of `topic` with its value and source.
pub fn describe_configs(client: &mut Client, topic: &str) -> Result<Vec<ConfigEntry>> {
    use describe_configs_request::DescribeConfigsResource;
    let r: DescribeConfigsResponse = client.call_bootstrap(
        ApiKey::DescribeConfigs,
        DESCRIBE_CONFIGS_VERSION,
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(str(topic))
            .with_configuration_keys(None)]),
    )?;
    let res = r.results.first().context("DescribeConfigs: empty answer")?;
    check(res.error_code, res.error_message.as_ref())
        .with_context(|| format!("describing the configs of topic {topic}"))?;
    Ok(res
        .configs
        .iter()
        .map(|c| ConfigEntry {
            name: c.name.to_string(),
            value: c.value.as_ref().map(|v| v.to_string()),
            source: c.config_source,
            read_only: c.read_only,
            sensitive: c.is_sensitive,
        })
        .collect())
}

/// One change of [`alter_configs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// Operation SET (0).
    Set(String, String),
    /// Operation DELETE (1): back to the default.
    Delete(String),
}

/// Changes configs of `topic` with IncrementalAlterConfigs (API 44): other
/// configs stay as they are.
pub fn alter_configs(client: &mut Client, topic: &str, changes: &[ConfigChange]) -> Result<()> {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    if changes.is_empty() {
        bail!("no config change given");
    }
    let configs = changes
        .iter()
        .map(|c| match c {
            ConfigChange::Set(k, v) => AlterableConfig::default()
                .with_name(str(k))
                .with_config_operation(0)
                .with_value(Some(str(v))),
            ConfigChange::Delete(k) => AlterableConfig::default()
                .with_name(str(k))
                .with_config_operation(1)
                .with_value(None::<StrBytes>),
        })
        .collect();
    let r: IncrementalAlterConfigsResponse = client.call_bootstrap(
        ApiKey::IncrementalAlterConfigs,
        INCREMENTAL_ALTER_CONFIGS_VERSION,
        &IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(str(topic))
                .with_configs(configs),
        ]),
    )?;
    let res = r.responses.first().context("IncrementalAlterConfigs: empty answer")?;
    check(res.error_code, res.error_message.as_ref())?;
    Ok(())
}

/// DeleteRecords: moves the log start of each partition of `topic` in
/// `before` (partition → offset, -1 for the high watermark), each asked
/// of its leader with `timeout_ms` to wait for the other replicas. Returns
/// each partition's low watermark or refusal.
pub fn delete_records(
    client: &mut Client,
    topic: &str,
    before: &std::collections::BTreeMap<i32, i64>,
    timeout_ms: i32,
) -> Result<std::collections::BTreeMap<i32, Result<i64, KafkaError>>> {
    use delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
    let md = client.topic_metadata(topic)?;
    let partitions: Vec<i32> = before.keys().copied().collect();
    let mut out = std::collections::BTreeMap::new();
    for (addr, ps) in md.by_leader(topic, &partitions)? {
        let request =
            DeleteRecordsRequest::default().with_timeout_ms(timeout_ms).with_topics(vec![
                DeleteRecordsTopic::default().with_name(name(topic)).with_partitions(
                    ps.iter()
                        .map(|p| {
                            DeleteRecordsPartition::default()
                                .with_partition_index(*p)
                                .with_offset(before[p])
                        })
                        .collect(),
                ),
            ]);
        let r: DeleteRecordsResponse =
            client.call(&addr, ApiKey::DeleteRecords, DELETE_RECORDS_VERSION, &request)?;
        for p in r.topics.iter().flat_map(|t| &t.partitions) {
            out.insert(p.partition_index, check(p.error_code, None).map(|()| p.low_watermark));
        }
    }
    for p in &partitions {
        if !out.contains_key(p) {
            bail!("DeleteRecords {topic}-{p}: no answer for the partition");
        }
    }
    Ok(out)
}
