//! What nodes ask the active controller, and its answers: JSON bodies of
//! [`super::frame`]s of kind `Request` and `Response`.
//!
//! | request | answer |
//! |---|---|
//! | `{"type":"register","node":{node record}}` | `{"ok":true}` |
//! | `{"type":"heartbeat","node":N}` | `{"ok":true}`, or `{"error":"unknown_node"}`: register again |
//! | `{"type":"unregister","node":N}` | `{"index":I,"answer":{"kind":"done"}}`: the node left (a clean stop) |
//! | `{"type":"fetch","from":I}` | committed metadata after log index `I`: `{"index":J,"snapshot":[records] or null,"entries":[[index,[records]],...]}`; waits up to [`FETCH_WAIT`] for some |
//! | `{"type":"command","command":{...}}` | `{"index":I,"answer":{...}}`: the command's records are committed at `I` |
//! | `{"type":"quorum"}` | `{"leader":N,"term":T,"high_watermark":I,"voters":[[N,log_end],...]}` |
//!
//! Every answer of a controller that is not the leader is
//! `{"error":"not_leader","leader":N or null}`. Pure encoding: no I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::acl_wire;
use crate::controller::machine::isr::IsrChange;
use crate::controller::ScramChange;
use crate::controller::{
    Answer, Command, ConfigChange, ConfigOp, Outcome, PartitionsSpec, QuorumState, QuotaChange,
    TopicOutcome, TopicSpec,
};
use crate::error::Refusal;
use crate::ids::{BrokerId, LeaderEpoch, NodeId, PartitionEpoch};
use crate::metadata::{records, MetadataRecord, NodeMeta, TopicMeta};

/// How long a fetch waits for new metadata before answering with none.
pub const FETCH_WAIT: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub enum Request {
    Register(NodeMeta),
    Heartbeat(NodeId),
    Unregister(NodeId),
    Fetch { from: u64 },
    Command(Command),
    Quorum,
}

/// Committed metadata for a fetcher: a snapshot when it is too far
/// behind, then the entries after it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fetched {
    /// The log index the fetcher is at once it has applied this.
    pub index: u64,
    pub snapshot: Option<Vec<MetadataRecord>>,
    pub entries: Vec<(u64, Vec<MetadataRecord>)>,
}

#[derive(Debug, Clone)]
pub enum Response {
    Ok,
    UnknownNode,
    NotLeader { leader: Option<NodeId> },
    Fetched(Fetched),
    Committed { index: u64, answer: Answer },
    Quorum(QuorumState),
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a Value, String> {
    v.get(name).ok_or_else(|| format!("cluster message without {name}: {v}"))
}

fn u64_of(v: &Value, name: &str) -> Result<u64, String> {
    field(v, name)?.as_u64().ok_or_else(|| format!("{name} is not a count"))
}

fn str_of(v: &Value, name: &str) -> Result<String, String> {
    Ok(field(v, name)?.as_str().ok_or_else(|| format!("{name} is not a string"))?.to_string())
}

fn node_of(v: &Value) -> Result<NodeId, String> {
    v.as_i64()
        .and_then(|n| i32::try_from(n).ok())
        .filter(|n| (0..=crate::ids::NODE_ID_MAX).contains(n))
        .map(NodeId)
        .ok_or_else(|| format!("{v} is not a node id"))
}

fn records_json(records: &[MetadataRecord]) -> Value {
    Value::Array(records.iter().map(MetadataRecord::to_json).collect())
}

fn records_of(v: &Value) -> Result<Vec<MetadataRecord>, String> {
    // Records between nodes never carry legacy fields.
    let node = NodeId(0);
    v.as_array()
        .ok_or("records are not an array")?
        .iter()
        .map(|r| MetadataRecord::from_json(r, node))
        .collect()
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let v = match self {
            Request::Register(n) => {
                json!({"type": "register", "node": MetadataRecord::Node(n.clone()).to_json()})
            }
            Request::Heartbeat(n) => json!({"type": "heartbeat", "node": n.0}),
            Request::Unregister(n) => json!({"type": "unregister", "node": n.0}),
            Request::Fetch { from } => json!({"type": "fetch", "from": from}),
            Request::Command(c) => json!({"type": "command", "command": command_json(c)}),
            Request::Quorum => json!({"type": "quorum"}),
        };
        v.to_string().into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Request, String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("request: {e}"))?;
        match field(&v, "type")?.as_str() {
            Some("register") => match MetadataRecord::from_json(field(&v, "node")?, NodeId(0))? {
                MetadataRecord::Node(n) => Ok(Request::Register(n)),
                other => Err(format!("register with {other:?}")),
            },
            Some("heartbeat") => Ok(Request::Heartbeat(node_of(field(&v, "node")?)?)),
            Some("unregister") => Ok(Request::Unregister(node_of(field(&v, "node")?)?)),
            Some("fetch") => Ok(Request::Fetch { from: u64_of(&v, "from")? }),
            Some("command") => Ok(Request::Command(command_of(field(&v, "command")?)?)),
            Some("quorum") => Ok(Request::Quorum),
            _ => Err(format!("unknown request {v}")),
        }
    }
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        let v = match self {
            Response::Ok => json!({"ok": true}),
            Response::UnknownNode => json!({"error": "unknown_node"}),
            Response::NotLeader { leader } => {
                json!({"error": "not_leader", "leader": leader.map(|l| l.0)})
            }
            Response::Fetched(f) => json!({
                "index": f.index,
                "snapshot": f.snapshot.as_ref().map(|s| records_json(s)),
                "entries": f.entries.iter().map(|(i, r)| json!([i, records_json(r)])).collect::<Vec<_>>(),
            }),
            Response::Committed { index, answer } => {
                json!({"index": index, "answer": answer_json(answer)})
            }
            Response::Quorum(q) => json!({
                "leader": q.leader.0,
                "term": q.epoch,
                "high_watermark": q.high_watermark,
                "voters": q.voters.iter().map(|(n, end)| json!([n.0, end])).collect::<Vec<_>>(),
            }),
        };
        v.to_string().into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Response, String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("response: {e}"))?;
        if let Some(e) = v.get("error") {
            return match e.as_str() {
                Some("unknown_node") => Ok(Response::UnknownNode),
                Some("not_leader") => {
                    let leader = field(&v, "leader")?;
                    let leader = if leader.is_null() { None } else { Some(node_of(leader)?) };
                    Ok(Response::NotLeader { leader })
                }
                _ => Err(format!("unknown error {v}")),
            };
        }
        if v.get("ok").is_some() {
            return Ok(Response::Ok);
        }
        if let Some(answer) = v.get("answer") {
            return Ok(Response::Committed {
                index: u64_of(&v, "index")?,
                answer: answer_of(answer)?,
            });
        }
        if v.get("voters").is_some() {
            let voters = field(&v, "voters")?
                .as_array()
                .ok_or("voters is not an array")?
                .iter()
                .map(|p| match p.as_array().map(Vec::as_slice) {
                    Some([n, end]) => Ok((node_of(n)?, end.as_u64().ok_or("log end")?)),
                    _ => Err(format!("voter {p}")),
                })
                .collect::<Result<_, String>>()?;
            return Ok(Response::Quorum(QuorumState {
                leader: node_of(field(&v, "leader")?)?,
                epoch: u64_of(&v, "term")?,
                high_watermark: u64_of(&v, "high_watermark")?,
                voters,
            }));
        }
        let snapshot = field(&v, "snapshot")?;
        let entries = field(&v, "entries")?
            .as_array()
            .ok_or("entries is not an array")?
            .iter()
            .map(|e| match e.as_array().map(Vec::as_slice) {
                Some([i, records]) => Ok((i.as_u64().ok_or("entry index")?, records_of(records)?)),
                _ => Err(format!("entry {e}")),
            })
            .collect::<Result<_, String>>()?;
        Ok(Response::Fetched(Fetched {
            index: u64_of(&v, "index")?,
            snapshot: if snapshot.is_null() { None } else { Some(records_of(snapshot)?) },
            entries,
        }))
    }
}

fn configs_json(c: &BTreeMap<String, String>) -> Value {
    json!(c)
}

fn configs_of(v: &Value) -> Result<BTreeMap<String, String>, String> {
    v.as_object()
        .ok_or("configs is not an object")?
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.as_str().ok_or("config value")?.to_string())))
        .collect()
}

fn command_json(c: &Command) -> Value {
    match c {
        Command::CreateTopics { topics, validate_only } => json!({
            "kind": "create_topics",
            "validate_only": validate_only,
            "topics": topics.iter().map(|t| json!({
                "name": t.name,
                "partitions": t.partitions,
                "replication_factor": t.replication_factor,
                "configs": configs_json(&t.configs),
                "assignments": t.assignments,
            })).collect::<Vec<_>>(),
        }),
        Command::DeleteTopics { names } => json!({"kind": "delete_topics", "names": names}),
        Command::CreatePartitions { topics, validate_only } => json!({
            "kind": "create_partitions",
            "validate_only": validate_only,
            "topics": topics.iter().map(|t| json!({
                "name": t.name, "count": t.count, "assignments": t.assignments,
            })).collect::<Vec<_>>(),
        }),
        Command::AlterConfigs { topics, validate_only } => json!({
            "kind": "alter_configs",
            "validate_only": validate_only,
            "topics": topics.iter().map(|(name, changes)| json!([name, changes.iter().map(|c| json!({
                "name": c.name,
                "op": match c.op {
                    ConfigOp::Set => "set",
                    ConfigOp::Delete => "delete",
                    ConfigOp::Append => "append",
                    ConfigOp::Subtract => "subtract",
                },
                "value": c.value,
            })).collect::<Vec<_>>()])).collect::<Vec<_>>(),
        }),
        Command::AllocateProducerIds => json!({"kind": "producer_ids"}),
        Command::CreateTransactionTopic => json!({"kind": "transaction_topic"}),
        // Salted credentials travel between controllers as the records
        // they become.
        Command::AlterScram { changes } => json!({
            "kind": "alter_scram",
            "changes": changes.iter().map(|c| match c {
                ScramChange::Upsert { user, credential } => MetadataRecord::Scram {
                    user: user.clone(),
                    credential: credential.clone(),
                },
                ScramChange::Delete { user, mechanism } => {
                    MetadataRecord::ScramDelete { user: user.clone(), mechanism: *mechanism }
                }
            }.to_json()).collect::<Vec<_>>(),
        }),
        Command::CreateAcls { bindings } => {
            json!({"kind": "create_acls", "bindings": acl_wire::bindings_json(bindings)})
        }
        Command::AlterClientQuotas { changes } => json!({
            "kind": "alter_client_quotas",
            "changes": changes.iter().map(|c| json!({
                "entity": records::entity_json(&c.entity),
                "ops": c.ops.iter().map(|(k, v)| json!([k, v.map(|v| v.0)])).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
        Command::DeleteAcls { filters } => json!({
            "kind": "delete_acls",
            "filters": filters.iter().map(acl_wire::filter_json).collect::<Vec<_>>(),
        }),
        Command::AlterPartitions { changes } => json!({
            "kind": "alter_partitions",
            "changes": changes.iter().map(|c| json!({
                "topic": c.topic,
                "partition": c.partition,
                "leader": c.leader.0,
                "leader_epoch": c.leader_epoch.0,
                "partition_epoch": c.partition_epoch.0,
                "isr": c.isr.iter().map(|b| b.0).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
        Command::ElectLeaders { unclean, partitions } => json!({
            "kind": "elect_leaders", "unclean": unclean, "partitions": partitions,
        }),
        // Node changes and bootstrap are the controller's own; they never
        // travel, but encode for completeness of the format.
        Command::Bootstrap { cluster_id, scram } => json!({
            "kind": "bootstrap",
            "cluster_id": cluster_id,
            "scram": scram.iter().map(|(user, credential)| MetadataRecord::Scram {
                user: user.clone(),
                credential: credential.clone(),
            }.to_json()).collect::<Vec<_>>(),
        }),
        Command::RegisterNode(n) => {
            json!({"kind": "register", "node": MetadataRecord::Node(n.clone()).to_json()})
        }
        Command::FenceNode(n) => json!({"kind": "fence", "node": n.0}),
        Command::UnfenceNode(n) => json!({"kind": "unfence", "node": n.0}),
        Command::UnregisterNode(n) => json!({"kind": "unregister", "node": n.0}),
    }
}

fn bool_of(v: &Value, name: &str) -> Result<bool, String> {
    field(v, name)?.as_bool().ok_or_else(|| format!("{name} is not a boolean"))
}

fn i64_of(v: &Value, name: &str) -> Result<i64, String> {
    field(v, name)?.as_i64().ok_or_else(|| format!("{name} is not a number"))
}

fn ints(v: &Value) -> Result<Vec<i32>, String> {
    v.as_array()
        .ok_or("not an array")?
        .iter()
        .map(|b| b.as_i64().and_then(|b| i32::try_from(b).ok()).ok_or_else(|| format!("{b}")))
        .collect()
}

fn command_of(v: &Value) -> Result<Command, String> {
    let topics = || field(v, "topics")?.as_array().ok_or_else(|| "topics".to_string());
    match field(v, "kind")?.as_str() {
        Some("create_topics") => Ok(Command::CreateTopics {
            validate_only: bool_of(v, "validate_only")?,
            topics: topics()?
                .iter()
                .map(|t| {
                    Ok(TopicSpec {
                        name: str_of(t, "name")?,
                        partitions: i32::try_from(i64_of(t, "partitions")?)
                            .map_err(|e| e.to_string())?,
                        replication_factor: i16::try_from(i64_of(t, "replication_factor")?)
                            .map_err(|e| e.to_string())?,
                        configs: configs_of(field(t, "configs")?)?,
                        assignments: field(t, "assignments")?
                            .as_array()
                            .ok_or("assignments")?
                            .iter()
                            .map(|a| match a.as_array().map(Vec::as_slice) {
                                Some([p, ids]) => Ok((
                                    p.as_i64()
                                        .and_then(|p| i32::try_from(p).ok())
                                        .ok_or("partition")?,
                                    ints(ids)?,
                                )),
                                _ => Err(format!("assignment {a}")),
                            })
                            .collect::<Result<_, String>>()?,
                    })
                })
                .collect::<Result<_, String>>()?,
        }),
        Some("delete_topics") => Ok(Command::DeleteTopics {
            names: field(v, "names")?
                .as_array()
                .ok_or("names")?
                .iter()
                .map(|n| n.as_str().map(str::to_string).ok_or_else(|| format!("{n}")))
                .collect::<Result<_, String>>()?,
        }),
        Some("create_partitions") => Ok(Command::CreatePartitions {
            validate_only: bool_of(v, "validate_only")?,
            topics: topics()?
                .iter()
                .map(|t| {
                    let a = field(t, "assignments")?;
                    Ok(PartitionsSpec {
                        name: str_of(t, "name")?,
                        count: i32::try_from(i64_of(t, "count")?).map_err(|e| e.to_string())?,
                        assignments: if a.is_null() {
                            None
                        } else {
                            Some(
                                a.as_array()
                                    .ok_or("assignments")?
                                    .iter()
                                    .map(ints)
                                    .collect::<Result<_, _>>()?,
                            )
                        },
                    })
                })
                .collect::<Result<_, String>>()?,
        }),
        Some("alter_configs") => Ok(Command::AlterConfigs {
            validate_only: bool_of(v, "validate_only")?,
            topics: topics()?
                .iter()
                .map(|t| match t.as_array().map(Vec::as_slice) {
                    Some([name, changes]) => Ok((
                        name.as_str().ok_or("topic name")?.to_string(),
                        changes
                            .as_array()
                            .ok_or("changes")?
                            .iter()
                            .map(|c| {
                                let value = field(c, "value")?;
                                Ok(ConfigChange {
                                    name: str_of(c, "name")?,
                                    op: match str_of(c, "op")?.as_str() {
                                        "set" => ConfigOp::Set,
                                        "delete" => ConfigOp::Delete,
                                        "append" => ConfigOp::Append,
                                        "subtract" => ConfigOp::Subtract,
                                        o => return Err(format!("config op {o}")),
                                    },
                                    value: value.as_str().map(str::to_string),
                                })
                            })
                            .collect::<Result<_, String>>()?,
                    )),
                    _ => Err(format!("alter {t}")),
                })
                .collect::<Result<_, String>>()?,
        }),
        Some("producer_ids") => Ok(Command::AllocateProducerIds),
        Some("transaction_topic") => Ok(Command::CreateTransactionTopic),
        Some("alter_scram") => Ok(Command::AlterScram {
            changes: field(v, "changes")?
                .as_array()
                .ok_or("changes")?
                .iter()
                .map(|c| match MetadataRecord::from_json(c, NodeId(0))? {
                    MetadataRecord::Scram { user, credential } => {
                        Ok(ScramChange::Upsert { user, credential })
                    }
                    MetadataRecord::ScramDelete { user, mechanism } => {
                        Ok(ScramChange::Delete { user, mechanism })
                    }
                    other => Err(format!("a SCRAM change as {other:?}")),
                })
                .collect::<Result<_, String>>()?,
        }),
        Some("create_acls") => {
            Ok(Command::CreateAcls { bindings: acl_wire::bindings_of(field(v, "bindings")?)? })
        }
        Some("alter_client_quotas") => Ok(Command::AlterClientQuotas {
            changes: field(v, "changes")?
                .as_array()
                .ok_or("changes")?
                .iter()
                .map(|c| {
                    let ops = field(c, "ops")?.as_array().ok_or("ops")?;
                    let ops = ops
                        .iter()
                        .map(|op| match op.as_array().map(Vec::as_slice) {
                            Some([k, v]) => Ok((
                                k.as_str().ok_or("a quota key")?.to_string(),
                                records::quota_value_of(v)?,
                            )),
                            _ => Err("a quota op is not [key, value]".to_string()),
                        })
                        .collect::<Result<_, String>>()?;
                    Ok(QuotaChange { entity: records::entity_of(field(c, "entity")?)?, ops })
                })
                .collect::<Result<_, String>>()?,
        }),
        Some("delete_acls") => Ok(Command::DeleteAcls {
            filters: field(v, "filters")?
                .as_array()
                .ok_or("filters")?
                .iter()
                .map(acl_wire::filter_of)
                .collect::<Result<_, String>>()?,
        }),
        Some("alter_partitions") => Ok(Command::AlterPartitions {
            changes: field(v, "changes")?
                .as_array()
                .ok_or("changes")?
                .iter()
                .map(|c| {
                    let int = |name| {
                        i32::try_from(i64_of(c, name)?).map_err(|_| format!("{name} out of range"))
                    };
                    Ok(IsrChange {
                        topic: str_of(c, "topic")?,
                        partition: int("partition")?,
                        leader: BrokerId(int("leader")?),
                        leader_epoch: LeaderEpoch(int("leader_epoch")?),
                        partition_epoch: PartitionEpoch(int("partition_epoch")?),
                        isr: ints(field(c, "isr")?)?.into_iter().map(BrokerId).collect(),
                    })
                })
                .collect::<Result<_, String>>()?,
        }),
        Some("elect_leaders") => Ok(Command::ElectLeaders {
            unclean: bool_of(v, "unclean")?,
            partitions: field(v, "partitions")?
                .as_array()
                .ok_or("partitions")?
                .iter()
                .map(|tp| match tp.as_array().map(Vec::as_slice) {
                    Some([t, p]) => Ok((
                        t.as_str().ok_or("topic")?.to_string(),
                        p.as_i64().and_then(|p| i32::try_from(p).ok()).ok_or("partition")?,
                    )),
                    _ => Err(format!("partition {tp}")),
                })
                .collect::<Result<_, String>>()?,
        }),
        _ => Err(format!("a command no node sends: {v}")),
    }
}

fn refusal_json(e: &Refusal) -> Value {
    json!([e.code(), e.message])
}

fn refusal_of(v: &Value) -> Result<Refusal, String> {
    match v.as_array().map(Vec::as_slice) {
        Some([code, message]) => Ok(Refusal::from_code(
            code.as_i64().and_then(|c| i16::try_from(c).ok()).ok_or("error code")?,
            message.as_str().ok_or("error message")?.to_string(),
        )),
        _ => Err(format!("refusal {v}")),
    }
}

fn answer_json(a: &Answer) -> Value {
    match a {
        Answer::Done => json!({"kind": "done"}),
        Answer::ProducerIds { start, end } => {
            json!({"kind": "producer_ids", "start": start, "end": end})
        }
        Answer::Topics(outcomes) => json!({
            "kind": "topics",
            "outcomes": outcomes.iter().map(|o: &TopicOutcome| match o {
                Ok(t) => json!({"ok": MetadataRecord::Topic(t.clone()).to_json()}),
                Err(e) => json!({"error": refusal_json(e)}),
            }).collect::<Vec<_>>(),
        }),
        Answer::Outcomes(outcomes) => json!({
            "kind": "outcomes",
            "outcomes": outcomes.iter().map(|o: &Outcome| match o {
                Ok(()) => Value::Null,
                Err(e) => refusal_json(e),
            }).collect::<Vec<_>>(),
        }),
        Answer::Partitions(outcomes) => json!({
            "kind": "partitions",
            "outcomes": outcomes.iter().map(|o| match o {
                Ok(state) => json!({"ok": MetadataRecord::Partition {
                    topic: String::new(), partition: 0, state: state.clone(),
                }.to_json()}),
                Err(e) => json!({"error": refusal_json(e)}),
            }).collect::<Vec<_>>(),
        }),
        Answer::Acls(outcomes) => json!({
            "kind": "acls",
            "outcomes": outcomes.iter().map(|o| match o {
                Ok(bindings) => json!({"ok": acl_wire::bindings_json(bindings)}),
                Err(e) => json!({"error": refusal_json(e)}),
            }).collect::<Vec<_>>(),
        }),
    }
}

fn answer_of(v: &Value) -> Result<Answer, String> {
    let outcomes = || field(v, "outcomes")?.as_array().ok_or_else(|| "outcomes".to_string());
    match field(v, "kind")?.as_str() {
        Some("done") => Ok(Answer::Done),
        Some("producer_ids") => {
            Ok(Answer::ProducerIds { start: i64_of(v, "start")?, end: i64_of(v, "end")? })
        }
        Some("topics") => Ok(Answer::Topics(
            outcomes()?
                .iter()
                .map(|o| match (o.get("ok"), o.get("error")) {
                    (Some(t), _) => match MetadataRecord::from_json(t, NodeId(0))? {
                        MetadataRecord::Topic(t) => Ok(Ok::<TopicMeta, _>(t)),
                        other => Err(format!("topic outcome {other:?}")),
                    },
                    (None, Some(e)) => Ok(Err(refusal_of(e)?)),
                    _ => Err(format!("topic outcome {o}")),
                })
                .collect::<Result<_, String>>()?,
        )),
        Some("partitions") => Ok(Answer::Partitions(
            outcomes()?
                .iter()
                .map(|o| match (o.get("ok"), o.get("error")) {
                    (Some(p), _) => match MetadataRecord::from_json(p, NodeId(0))? {
                        MetadataRecord::Partition { state, .. } => Ok(Ok(state)),
                        other => Err(format!("partition outcome {other:?}")),
                    },
                    (None, Some(e)) => Ok(Err(refusal_of(e)?)),
                    _ => Err(format!("partition outcome {o}")),
                })
                .collect::<Result<_, String>>()?,
        )),
        Some("acls") => Ok(Answer::Acls(
            outcomes()?
                .iter()
                .map(|o| match (o.get("ok"), o.get("error")) {
                    (Some(b), _) => Ok(Ok(acl_wire::bindings_of(b)?)),
                    (None, Some(e)) => Ok(Err(refusal_of(e)?)),
                    _ => Err(format!("ACL outcome {o}")),
                })
                .collect::<Result<_, String>>()?,
        )),
        Some("outcomes") => Ok(Answer::Outcomes(
            outcomes()?
                .iter()
                .map(|o| if o.is_null() { Ok(Ok(())) } else { Ok(Err(refusal_of(o)?)) })
                .collect::<Result<_, String>>()?,
        )),
        _ => Err(format!("unknown answer {v}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use auth::acl::{
        AclBinding, AclFilter, Operation, PatternFilter, PatternType, Permission, ResourceType,
    };

    fn acl() -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Group,
            name: "g".into(),
            pattern: PatternType::Literal,
            principal: "User:alice".into(),
            host: "10.0.0.1".into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        }
    }

    #[test]
    fn requests_and_answers_survive_the_wire() {
        let change =
            ConfigChange { name: "retention.ms".into(), op: ConfigOp::Append, value: None };
        let commands = [
            Command::CreateTopics {
                topics: vec![TopicSpec {
                    name: "t".into(),
                    partitions: -1,
                    replication_factor: 3,
                    configs: [("a".to_string(), "b".to_string())].into(),
                    assignments: vec![(0, vec![1000, 2000])],
                }],
                validate_only: true,
            },
            Command::DeleteTopics { names: vec!["x".into()] },
            Command::CreatePartitions {
                topics: vec![
                    PartitionsSpec { name: "t".into(), count: 4, assignments: None },
                    PartitionsSpec { name: "u".into(), count: 2, assignments: Some(vec![vec![1]]) },
                ],
                validate_only: false,
            },
            Command::AlterConfigs {
                topics: vec![("t".into(), vec![change])],
                validate_only: false,
            },
            Command::AllocateProducerIds,
            Command::CreateTransactionTopic,
            Command::AlterPartitions {
                changes: vec![IsrChange {
                    topic: "t".into(),
                    partition: 2,
                    leader: BrokerId(2001),
                    leader_epoch: LeaderEpoch(4),
                    partition_epoch: PartitionEpoch(9),
                    isr: vec![BrokerId(2001), BrokerId(3000)],
                }],
            },
            Command::ElectLeaders {
                unclean: true,
                partitions: vec![("t".into(), 0), ("u".into(), 3)],
            },
            Command::CreateAcls { bindings: vec![acl()] },
            Command::AlterClientQuotas {
                changes: vec![QuotaChange {
                    entity: crate::quotas::QuotaEntity::from_parts([
                        ("user", Some("alice")),
                        ("client-id", None),
                    ])
                    .unwrap(),
                    ops: vec![
                        ("producer_byte_rate".into(), Some(crate::quotas::QuotaValue(1024.0))),
                        ("request_percentage".into(), None),
                    ],
                }],
            },
            Command::DeleteAcls {
                filters: vec![
                    AclFilter {
                        resource_type: Some(ResourceType::Topic),
                        name: Some("orders".into()),
                        pattern: PatternFilter::Match,
                        principal: None,
                        host: Some("*".into()),
                        operation: None,
                        permission: Some(Permission::Deny),
                    },
                    AclFilter {
                        resource_type: None,
                        name: None,
                        pattern: PatternFilter::Exactly(PatternType::Prefixed),
                        principal: Some("User:bob".into()),
                        host: None,
                        operation: Some(Operation::Read),
                        permission: None,
                    },
                ],
            },
        ];
        for c in commands {
            let again = Request::decode(&Request::Command(c.clone()).encode()).unwrap();
            let Request::Command(again) = again else { panic!() };
            assert_eq!(format!("{again:?}"), format!("{c:?}"));
        }
        // A credential's Debug hides its keys: compared whole.
        let m = auth::Mechanism::ScramSha512;
        let changes = vec![
            ScramChange::Upsert {
                user: "alice".into(),
                credential: auth::ScramCredential::derive(m, b"pw", b"salt", 4096).unwrap(),
            },
            ScramChange::Delete { user: "bob".into(), mechanism: m },
        ];
        let c = Command::AlterScram { changes: changes.clone() };
        let again = Request::decode(&Request::Command(c).encode()).unwrap();
        let Request::Command(Command::AlterScram { changes: again }) = again else { panic!() };
        assert_eq!(again, changes);
        let topic = TopicMeta {
            name: "t".into(),
            id: [1; 16],
            partitions: vec![crate::metadata::PartitionMeta::single(crate::ids::BrokerId(1000))],
            configs: BTreeMap::new(),
        };
        for answer in [
            Answer::Done,
            Answer::ProducerIds { start: 1000, end: 2000 },
            Answer::Topics(vec![Ok(topic.clone()), Err(Refusal::from_code(36, "exists"))]),
            Answer::Outcomes(vec![Ok(()), Err(Refusal::from_code(3, "unknown"))]),
            Answer::Acls(vec![Ok(vec![acl()]), Ok(vec![]), Err(Refusal::from_code(42, "bad"))]),
            Answer::Partitions(vec![
                Ok(topic.partitions[0].clone()),
                Err(Refusal::from_code(95, "stale")),
            ]),
        ] {
            let r = Response::decode(
                &Response::Committed { index: 7, answer: answer.clone() }.encode(),
            );
            let Ok(Response::Committed { index: 7, answer: again }) = r else { panic!("{r:?}") };
            assert_eq!(again, answer);
        }
        let fetched = Fetched {
            index: 9,
            snapshot: Some(vec![MetadataRecord::Cluster { id: "c".into() }]),
            entries: vec![(9, vec![MetadataRecord::Topic(topic)])],
        };
        let Response::Fetched(again) =
            Response::decode(&Response::Fetched(fetched.clone()).encode()).unwrap()
        else {
            panic!()
        };
        assert_eq!(again, fetched);
        for bad in [
            &b"{}"[..],
            b"[1]",
            br#"{"type":"heartbeat","node":-4}"#,
            br#"{"type":"command","command":{"kind":"fence","node":1}}"#,
        ] {
            assert!(Request::decode(bad).is_err());
        }
    }
}
