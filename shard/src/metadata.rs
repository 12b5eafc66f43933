//! The cluster metadata: topics, their partitions' leader shards and their
//! configs, as an immutable [`MetadataImage`] that every shard holds and the
//! controller replaces.
//!
//! The image is a fold of [`MetadataRecord`]s, the records of the metadata
//! log (`<data>/__cluster_metadata-0`, an engine log on shard 0). Each record
//! is the value of one record of one batch, as a JSON object:
//!
//! - `{"type":"cluster","id":"<22 chars>"}`: the cluster id, first record.
//! - `{"type":"topic","name":"t","id":"<32 hex>","shards":[0,1,0],"configs":{"retention.ms":"1000"}}`:
//!   a topic, or a topic's new state (more partitions); partition `p` is led
//!   by shard `shards[p]`.
//! - `{"type":"delete_topic","name":"t"}`: the topic and its data are gone.
//! - `{"type":"producer_ids","next":2000}`: producer ids below `next` are
//!   handed out (InitProducerId), so none is given twice across restarts.
//!
//! Shared across shards (`Send + Sync` behind an `Arc`), never mutated.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// Kafka's limit on topic name length.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

/// A topic's partitions, with the shard that leads each one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    pub name: String,
    pub id: [u8; 16],
    /// Leader shard of each partition, by partition index.
    pub shards: Vec<u16>,
    /// Topic configs set at creation (Kafka names), defaults omitted.
    pub configs: BTreeMap<String, String>,
}

/// One change to the metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    Cluster { id: String },
    Topic(TopicMeta),
    DeleteTopic { name: String },
    ProducerIds { next: i64 },
}

impl MetadataRecord {
    pub fn encode(&self) -> Vec<u8> {
        let v = match self {
            MetadataRecord::Cluster { id } => json!({"type": "cluster", "id": id}),
            MetadataRecord::Topic(t) => json!({
                "type": "topic",
                "name": t.name,
                "id": hex(&t.id),
                "shards": t.shards,
                "configs": t.configs,
            }),
            MetadataRecord::DeleteTopic { name } => json!({"type": "delete_topic", "name": name}),
            MetadataRecord::ProducerIds { next } => json!({"type": "producer_ids", "next": next}),
        };
        v.to_string().into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<MetadataRecord, String> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("metadata record: {e}"))?;
        let field =
            |name: &str| v.get(name).ok_or_else(|| format!("metadata record without {name}: {v}"));
        match field("type")?.as_str() {
            Some("cluster") => Ok(MetadataRecord::Cluster {
                id: field("id")?.as_str().ok_or("cluster id is not a string")?.to_string(),
            }),
            Some("topic") => {
                let shards = field("shards")?
                    .as_array()
                    .ok_or("shards is not an array")?
                    .iter()
                    .map(|s| {
                        s.as_u64()
                            .and_then(|s| u16::try_from(s).ok())
                            .ok_or("shard is not a shard number")
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let configs = field("configs")?
                    .as_object()
                    .ok_or("configs is not an object")?
                    .iter()
                    .map(|(k, v)| {
                        Ok((
                            k.clone(),
                            v.as_str().ok_or("config value is not a string")?.to_string(),
                        ))
                    })
                    .collect::<Result<BTreeMap<_, _>, String>>()?;
                Ok(MetadataRecord::Topic(TopicMeta {
                    name: field("name")?.as_str().ok_or("name is not a string")?.to_string(),
                    id: unhex(field("id")?.as_str().ok_or("id is not a string")?)?,
                    shards,
                    configs,
                }))
            }
            Some("delete_topic") => Ok(MetadataRecord::DeleteTopic {
                name: field("name")?.as_str().ok_or("name is not a string")?.to_string(),
            }),
            Some("producer_ids") => Ok(MetadataRecord::ProducerIds {
                next: field("next")?.as_i64().ok_or("next is not a number")?,
            }),
            _ => Err(format!("unknown metadata record: {v}")),
        }
    }
}

fn hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Result<[u8; 16], String> {
    if s.len() != 32 || !s.is_ascii() {
        return Err(format!("topic id {s:?} is not 32 hex digits"));
    }
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
            .map_err(|e| format!("topic id {s:?}: {e}"))?;
    }
    Ok(id)
}

/// The state of the cluster's metadata at one point of the metadata log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    /// Number of records applied; grows with every change.
    pub epoch: u64,
    pub cluster_id: String,
    pub topics: BTreeMap<String, TopicMeta>,
    /// The first producer id not handed out yet.
    pub next_producer_id: i64,
}

impl MetadataImage {
    /// The image after `record`.
    pub fn apply(&self, record: &MetadataRecord) -> MetadataImage {
        let mut next = self.clone();
        next.epoch += 1;
        match record {
            MetadataRecord::Cluster { id } => next.cluster_id = id.clone(),
            MetadataRecord::Topic(t) => {
                next.topics.insert(t.name.clone(), t.clone());
            }
            MetadataRecord::DeleteTopic { name } => {
                next.topics.remove(name);
            }
            MetadataRecord::ProducerIds { next: n } => next.next_producer_id = *n,
        }
        next
    }

    /// The leader shard of a partition, if the partition exists.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<u16> {
        let t = self.topics.get(topic)?;
        usize::try_from(partition).ok().and_then(|p| t.shards.get(p)).copied()
    }

    /// Topics by id.
    pub fn topic_by_id(&self, id: &[u8; 16]) -> Option<&TopicMeta> {
        self.topics.values().find(|t| &t.id == id)
    }
}

/// Kafka's topic name rule: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(format!("topic name must be 1 to {TOPIC_NAME_BYTES_MAX} characters"));
    }
    if name == "." || name == ".." {
        return Err("topic name cannot be '.' or '..'".into());
    }
    if let Some(c) =
        name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!("topic name {name:?} contains {c:?}: only [a-zA-Z0-9._-] are legal"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_fold() {
        let t = TopicMeta {
            name: "orders".into(),
            id: [7; 16],
            shards: vec![0, 1, 0],
            configs: [("retention.ms".to_string(), "1000".to_string())].into(),
        };
        let records = [
            MetadataRecord::Cluster { id: "abc".into() },
            MetadataRecord::Topic(t.clone()),
            MetadataRecord::Topic(TopicMeta { name: "gone".into(), ..t.clone() }),
            MetadataRecord::DeleteTopic { name: "gone".into() },
            MetadataRecord::ProducerIds { next: 1000 },
        ];
        let mut image = MetadataImage::default();
        for r in &records {
            assert_eq!(&MetadataRecord::decode(&r.encode()).unwrap(), r);
            image = image.apply(r);
        }
        assert_eq!(image.epoch, 5);
        assert_eq!(image.next_producer_id, 1000);
        assert!(!image.topics.contains_key("gone"));
        assert_eq!(image.leader("orders", 1), Some(1));
        assert_eq!(image.leader("orders", 3), None);
        assert_eq!(image.leader("orders", -1), None);
        assert_eq!(image.topic_by_id(&[7; 16]).unwrap().name, "orders");
    }

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("a.b_c-D9").is_ok());
        for bad in ["", ".", "..", "a b", "ü", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }
}
