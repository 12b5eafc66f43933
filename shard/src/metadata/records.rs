//! The metadata log's records and their format.
//!
//! Each record is the value of one Kafka record in the metadata log, a
//! JSON object (readable with `kcat`-like tools and in a hex dump; the
//! log is small and written rarely):
//!
//! | `type` | fields | meaning |
//! |---|---|---|
//! | `cluster` | `id` (22 chars) | the cluster id, first record |
//! | `node` | `id`, `host`, `port`, `shards`, `rack`, `fenced`, optional `listeners` | a node registered, or its new endpoint; its shard `k` is broker `id*1000+k` at `host:port+k`; `listeners` (`["SASL_PLAINTEXT://h:9093", ...]`, the first `host:port`) are where clients of each security protocol reach it, absent: PLAINTEXT at `host:port` only |
//! | `fence` / `unfence` | `node` | the node missed its heartbeats / is back |
//! | `unregister` | `node` | the node left the cluster (a clean stop) |
//! | `topic` | `name`, `id` (32 hex), `partitions`, `configs` | a topic, or its new state (more partitions, new configs) |
//! | `partition` | `topic`, `partition`, `state` | one partition's new state |
//! | `delete_topic` | `name` | the topic and its data are gone |
//! | `producer_ids` | `next` | producer ids below `next` are handed out |
//! | `scram` | `user`, `mechanism`, `salt`, `iterations`, `stored_key`, `server_key` (bytes in hex) | a user's SCRAM credential for one mechanism (`SCRAM-SHA-256`), new or replaced: never a password |
//! | `scram_delete` | `user`, `mechanism` | that credential is gone |
//! | `quota` | `entity` (`[["user","alice"],["client-id",null]]`: type and name, null for the default), `key` (`producer_byte_rate`, `consumer_byte_rate`, `request_percentage`), `value` (a number, or null: removed) | a client quota set or removed |
//! | `acl` / `acl_delete` | `resource_type`, `name`, `pattern`, `principal`, `host`, `operation`, `permission` (the enums as Kafka's protocol numbers them) | an ACL binding added / removed |
//!
//! A partition's state is the array `[replicas, isr, leader, leader_epoch,
//! partition_epoch]`, e.g. `[[1000,2001],[1000],1000,4,7]`, leader `-1` for
//! none: a 10,000-partition topic stays near 300 KB. Records written
//! before nodes were registered carry `"shards":[0,1,0]` instead of
//! `partitions`: partition `p` had one replica, shard `shards[p]` of the
//! node that wrote the log; [`MetadataRecord::decode`] reads them as such.

use std::collections::BTreeMap;

use auth::acl::{AclBinding, Operation, PatternType, Permission, ResourceType};
use auth::scram::{Mechanism, ScramCredential};
use serde_json::{json, Value};

use super::{NodeMeta, PartitionMeta, TopicMeta};
use crate::ids::{BrokerId, LeaderEpoch, NodeId, PartitionEpoch, NODE_ID_MAX};
use crate::listener::Listener;
use crate::quotas::{QuotaEntity, QuotaValue};

/// One change to the metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    Cluster { id: String },
    Node(NodeMeta),
    Fence { node: NodeId },
    Unfence { node: NodeId },
    Unregister { node: NodeId },
    Topic(TopicMeta),
    Partition { topic: String, partition: i32, state: PartitionMeta },
    DeleteTopic { name: String },
    ProducerIds { next: i64 },
    Scram { user: String, credential: ScramCredential },
    ScramDelete { user: String, mechanism: Mechanism },
    Acl(AclBinding),
    AclDelete(AclBinding),
    Quota { entity: QuotaEntity, key: String, value: Option<QuotaValue> },
}

impl MetadataRecord {
    pub fn encode(&self) -> Vec<u8> {
        self.to_json().to_string().into_bytes()
    }

    /// The record as a JSON value (what [`MetadataRecord::encode`] writes).
    pub fn to_json(&self) -> Value {
        match self {
            MetadataRecord::Cluster { id } => json!({"type": "cluster", "id": id}),
            MetadataRecord::Node(n) => {
                let mut v = json!({
                    "type": "node",
                    "id": n.id.0,
                    "host": n.host,
                    "port": n.port,
                    "shards": n.shards,
                    "rack": n.rack,
                    "fenced": n.fenced,
                });
                if !n.listeners.is_empty() {
                    let listeners: Vec<String> =
                        n.listeners.iter().map(|l| l.to_string()).collect();
                    v["listeners"] = json!(listeners);
                }
                v
            }
            MetadataRecord::Fence { node } => json!({"type": "fence", "node": node.0}),
            MetadataRecord::Unfence { node } => json!({"type": "unfence", "node": node.0}),
            MetadataRecord::Unregister { node } => json!({"type": "unregister", "node": node.0}),
            MetadataRecord::Topic(t) => json!({
                "type": "topic",
                "name": t.name,
                "id": hex(&t.id),
                "partitions": t.partitions.iter().map(partition_json).collect::<Vec<_>>(),
                "configs": t.configs,
            }),
            MetadataRecord::Partition { topic, partition, state } => json!({
                "type": "partition",
                "topic": topic,
                "partition": partition,
                "state": partition_json(state),
            }),
            MetadataRecord::DeleteTopic { name } => json!({"type": "delete_topic", "name": name}),
            MetadataRecord::ProducerIds { next } => json!({"type": "producer_ids", "next": next}),
            MetadataRecord::Quota { entity, key, value } => json!({
                "type": "quota",
                "entity": entity_json(entity),
                "key": key,
                "value": value.map(|v| v.0),
            }),
            MetadataRecord::Acl(b) => acl_json("acl", b),
            MetadataRecord::AclDelete(b) => acl_json("acl_delete", b),
            MetadataRecord::Scram { user, credential: c } => json!({
                "type": "scram",
                "user": user,
                "mechanism": c.mechanism.name(),
                "salt": hex_bytes(&c.salt),
                "iterations": c.iterations,
                "stored_key": hex_bytes(&c.stored_key),
                "server_key": hex_bytes(&c.server_key),
            }),
            MetadataRecord::ScramDelete { user, mechanism } => json!({
                "type": "scram_delete", "user": user, "mechanism": mechanism.name(),
            }),
        }
    }

    /// The record encoded in `bytes`. `legacy_node` is the node whose
    /// shards a record written before node registration names.
    pub fn decode(bytes: &[u8], legacy_node: NodeId) -> Result<MetadataRecord, String> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("metadata record: {e}"))?;
        MetadataRecord::from_json(&v, legacy_node)
    }

    /// The record a JSON value holds (see [`MetadataRecord::decode`]).
    pub fn from_json(v: &Value, legacy_node: NodeId) -> Result<MetadataRecord, String> {
        let f = Fields(v);
        match f.get("type")?.as_str() {
            Some("cluster") => Ok(MetadataRecord::Cluster { id: f.string("id")? }),
            Some("node") => Ok(MetadataRecord::Node(NodeMeta {
                id: f.node("id")?,
                host: f.string("host")?,
                port: u16::try_from(f.i64("port")?).map_err(|_| "port is not a port")?,
                shards: u16::try_from(f.i64("shards")?)
                    .ok()
                    .filter(|&s| (1..=crate::ids::SHARDS_PER_NODE_MAX).contains(&s))
                    .ok_or("shards is not a shard count")?,
                rack: f.string("rack")?,
                fenced: f.get("fenced")?.as_bool().ok_or("fenced is not a boolean")?,
                listeners: match v.get("listeners") {
                    None => Vec::new(),
                    Some(l) => l
                        .as_array()
                        .ok_or("listeners is not an array")?
                        .iter()
                        .map(|l| Listener::parse(l.as_str().ok_or("a listener is not a string")?))
                        .collect::<Result<_, _>>()?,
                },
            })),
            Some("fence") => Ok(MetadataRecord::Fence { node: f.node("node")? }),
            Some("unfence") => Ok(MetadataRecord::Unfence { node: f.node("node")? }),
            Some("unregister") => Ok(MetadataRecord::Unregister { node: f.node("node")? }),
            Some("topic") => {
                let partitions = match v.get("partitions") {
                    Some(p) => p
                        .as_array()
                        .ok_or("partitions is not an array")?
                        .iter()
                        .map(partition_from_json)
                        .collect::<Result<Vec<_>, _>>()?,
                    None => legacy_partitions(f.get("shards")?, legacy_node)?,
                };
                let configs = f
                    .get("configs")?
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
                    name: f.string("name")?,
                    id: unhex(f.get("id")?.as_str().ok_or("id is not a string")?)?,
                    partitions,
                    configs,
                }))
            }
            Some("partition") => Ok(MetadataRecord::Partition {
                topic: f.string("topic")?,
                partition: f.i32("partition")?,
                state: partition_from_json(f.get("state")?)?,
            }),
            Some("delete_topic") => Ok(MetadataRecord::DeleteTopic { name: f.string("name")? }),
            Some("producer_ids") => Ok(MetadataRecord::ProducerIds { next: f.i64("next")? }),
            Some("quota") => Ok(MetadataRecord::Quota {
                entity: entity_of(f.get("entity")?)?,
                key: f.string("key")?,
                value: quota_value_of(f.get("value")?)?,
            }),
            Some("acl") => Ok(MetadataRecord::Acl(f.acl()?)),
            Some("acl_delete") => Ok(MetadataRecord::AclDelete(f.acl()?)),
            Some("scram") => Ok(MetadataRecord::Scram {
                user: f.string("user")?,
                credential: ScramCredential {
                    mechanism: f.mechanism()?,
                    salt: f.hex("salt")?,
                    iterations: u32::try_from(f.i32("iterations")?)
                        .map_err(|_| "iterations is not a count")?,
                    stored_key: f.hex("stored_key")?,
                    server_key: f.hex("server_key")?,
                },
            }),
            Some("scram_delete") => Ok(MetadataRecord::ScramDelete {
                user: f.string("user")?,
                mechanism: f.mechanism()?,
            }),
            _ => Err(format!("unknown metadata record: {v}")),
        }
    }
}

/// A quota entity as records write it: `[["user","alice"],["client-id",null]]`.
pub fn entity_json(entity: &QuotaEntity) -> Value {
    entity.parts().iter().map(|(t, n)| json!([t, n])).collect()
}

/// The entity [`entity_json`] wrote.
pub fn entity_of(v: &Value) -> Result<QuotaEntity, String> {
    let parts = v.as_array().ok_or("entity is not an array")?;
    let parts = parts
        .iter()
        .map(|p| match p.as_array().map(Vec::as_slice) {
            Some([t, n]) => Ok((t.as_str().ok_or("bad entity type")?, n.as_str())),
            _ => Err("an entity part is not [type, name]"),
        })
        .collect::<Result<Vec<_>, _>>()?;
    QuotaEntity::from_parts(parts)
}

/// A quota's value, null for removed.
pub fn quota_value_of(v: &Value) -> Result<Option<QuotaValue>, String> {
    match v.as_f64() {
        Some(x) => Ok(Some(QuotaValue(x))),
        None if v.is_null() => Ok(None),
        None => Err("a quota value is not a number".into()),
    }
}

/// An ACL binding as a record of `kind` (`acl`, `acl_delete`).
fn acl_json(kind: &str, b: &AclBinding) -> Value {
    json!({
        "type": kind,
        "resource_type": b.resource_type.code(),
        "name": b.name,
        "pattern": b.pattern.code(),
        "principal": b.principal,
        "host": b.host,
        "operation": b.operation.code(),
        "permission": b.permission.code(),
    })
}

/// Typed access to a record's fields, with errors that name the field.
struct Fields<'a>(&'a Value);

impl Fields<'_> {
    fn get(&self, name: &str) -> Result<&Value, String> {
        self.0.get(name).ok_or_else(|| format!("metadata record without {name}: {}", self.0))
    }

    fn string(&self, name: &str) -> Result<String, String> {
        Ok(self.get(name)?.as_str().ok_or_else(|| format!("{name} is not a string"))?.to_string())
    }

    fn i64(&self, name: &str) -> Result<i64, String> {
        self.get(name)?.as_i64().ok_or_else(|| format!("{name} is not a number"))
    }

    fn i32(&self, name: &str) -> Result<i32, String> {
        i32::try_from(self.i64(name)?).map_err(|_| format!("{name} is not a 32-bit number"))
    }

    /// Bytes in hex; an error names the field, never its (secret) value.
    fn hex(&self, name: &str) -> Result<Vec<u8>, String> {
        let s = self.string(name)?;
        unhex_bytes(&s).ok_or_else(|| format!("{name} is not hex digits ({} characters)", s.len()))
    }

    fn code<T>(&self, name: &str, from: impl Fn(i8) -> Option<T>) -> Result<T, String> {
        let code = self.i64(name)?;
        i8::try_from(code).ok().and_then(from).ok_or_else(|| format!("{name} {code} is not known"))
    }

    fn acl(&self) -> Result<AclBinding, String> {
        Ok(AclBinding {
            resource_type: self.code("resource_type", ResourceType::from_code)?,
            name: self.string("name")?,
            pattern: self.code("pattern", PatternType::from_code)?,
            principal: self.string("principal")?,
            host: self.string("host")?,
            operation: self.code("operation", Operation::from_code)?,
            permission: self.code("permission", Permission::from_code)?,
        })
    }

    fn mechanism(&self) -> Result<Mechanism, String> {
        let name = self.string("mechanism")?;
        Mechanism::parse(&name)
            .ok_or_else(|| format!("mechanism {name:?} is not a SCRAM mechanism"))
    }

    fn node(&self, name: &str) -> Result<NodeId, String> {
        let id = self.i32(name)?;
        if !(0..=NODE_ID_MAX).contains(&id) {
            return Err(format!("{name} {id} is not a node id (0..={NODE_ID_MAX})"));
        }
        Ok(NodeId(id))
    }
}

fn partition_json(p: &PartitionMeta) -> Value {
    let ids = |b: &[BrokerId]| b.iter().map(|b| b.0).collect::<Vec<_>>();
    json!([
        ids(&p.replicas),
        ids(&p.isr),
        p.leader.map_or(-1, |b| b.0),
        p.leader_epoch.0,
        p.partition_epoch.0
    ])
}

fn partition_from_json(v: &Value) -> Result<PartitionMeta, String> {
    let bad = || format!("partition state {v} is not [replicas, isr, leader, epoch, epoch]");
    let a = v.as_array().filter(|a| a.len() == 5).ok_or_else(bad)?;
    let int = |v: &Value| v.as_i64().and_then(|n| i32::try_from(n).ok()).ok_or_else(bad);
    let brokers = |v: &Value| -> Result<Vec<BrokerId>, String> {
        v.as_array().ok_or_else(bad)?.iter().map(|b| int(b).map(BrokerId)).collect()
    };
    let leader = int(&a[2])?;
    Ok(PartitionMeta {
        replicas: brokers(&a[0])?,
        isr: brokers(&a[1])?,
        leader: (leader >= 0).then_some(BrokerId(leader)),
        leader_epoch: LeaderEpoch(int(&a[3])?),
        partition_epoch: PartitionEpoch(int(&a[4])?),
    })
}

/// A topic record from before node registration: one replica per
/// partition, shard `shards[p]` of `node`, leader epoch 0.
fn legacy_partitions(shards: &Value, node: NodeId) -> Result<Vec<PartitionMeta>, String> {
    shards
        .as_array()
        .ok_or("shards is not an array")?
        .iter()
        .map(|s| {
            let shard = s
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .filter(|&s| s < crate::ids::SHARDS_PER_NODE_MAX)
                .ok_or("shard is not a shard number")?;
            Ok(PartitionMeta::single(BrokerId::of(node, crate::ids::ShardId(shard))))
        })
        .collect()
}

fn hex(id: &[u8; 16]) -> String {
    hex_bytes(id)
}

fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from hex digits (a credential's salt and keys: at most a few
/// hundred bytes, bounded by the record).
fn unhex_bytes(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()).collect()
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
