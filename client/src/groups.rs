//! Consumer group administration: ListGroups (asked of every broker, since
//! each coordinates its own groups), DescribeGroups, DeleteGroups, and
//! committed offsets (OffsetFetch, OffsetCommit), each sent to the group's
//! coordinator.
//!
//! Owns coordinator routing with bounded retries (a coordinator that moved
//! or is loading is asked again); it must not join groups (that is
//! [`crate::member`]).

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::{Buf, Bytes, BytesMut};
use net::kafka_protocol::messages::*;
use net::kafka_protocol::protocol::{Decodable, Encodable, Message};

use crate::cluster::{retriable, Client, RETRY_BACKOFF, RETRY_FOR};
use crate::conn::{name, str};
use crate::error::{check, KafkaError};

pub const LIST_GROUPS_VERSION: i16 = 4;
pub const DESCRIBE_GROUPS_VERSION: i16 = 5;
pub const DELETE_GROUPS_VERSION: i16 = 2;
pub const OFFSET_FETCH_VERSION: i16 = 7;
pub const OFFSET_COMMIT_VERSION: i16 = 8;

/// Partitions per topic: what an assignment or a subscription lists.
pub type TopicPartitions = BTreeMap<String, Vec<i32>>;

/// Runs `f` against `group`'s coordinator; when the answer is "not the
/// coordinator" or "loading", finds the coordinator again and retries,
/// for at most [`RETRY_FOR`].
pub fn with_coordinator<T>(
    client: &mut Client,
    group: &str,
    mut f: impl FnMut(&mut Client, &str) -> Result<T>,
) -> Result<T> {
    let deadline = Instant::now() + RETRY_FOR;
    let mut reconnected = false;
    loop {
        let addr = client.coordinator(group)?;
        match f(client, &addr) {
            Ok(v) => return Ok(v),
            Err(e) => {
                let moved =
                    e.chain().any(|c| c.downcast_ref::<KafkaError>().is_some_and(retriable));
                // A broken connection to a remembered coordinator: it may
                // have moved; ask again once.
                let broken = !reconnected && e.chain().any(|c| c.is::<std::io::Error>());
                if !(moved || broken) || Instant::now() >= deadline {
                    return Err(e);
                }
                reconnected |= broken;
                client.forget_coordinator(group);
                if moved {
                    std::thread::sleep(RETRY_BACKOFF);
                }
            }
        }
    }
}

/// One group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub id: String,
    pub protocol_type: String,
    pub state: String,
}

/// Every group of the cluster, sorted by id.
pub fn list(client: &mut Client) -> Result<Vec<ListedGroup>> {
    let md = client.metadata(Some(&[]))?;
    let mut out = BTreeMap::new();
    for b in md.brokers.values() {
        let r: ListGroupsResponse = client.call(
            &b.addr(),
            ApiKey::ListGroups,
            LIST_GROUPS_VERSION,
            &ListGroupsRequest::default(),
        )?;
        check(r.error_code, None)
            .with_context(|| format!("listing the groups of broker {}", b.id))?;
        for g in r.groups {
            let id = g.group_id.0.to_string();
            out.insert(
                id.clone(),
                ListedGroup {
                    id,
                    protocol_type: g.protocol_type.to_string(),
                    state: g.group_state.to_string(),
                },
            );
        }
    }
    Ok(out.into_values().collect())
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Decoded from the consumer protocol; empty when the group is not a
    /// consumer group or the assignment does not decode.
    pub assignment: TopicPartitions,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub id: String,
    /// `Empty`, `Stable`, `PreparingRebalance`, `CompletingRebalance`, or
    /// `Dead` for a group that does not exist.
    pub state: String,
    pub protocol_type: String,
    /// The assignor chosen (`range`, `roundrobin`, ...).
    pub protocol: String,
    pub members: Vec<GroupMember>,
}

impl GroupDescription {
    /// Empty and Dead groups have no members that could commit.
    pub fn is_inactive(&self) -> bool {
        self.state == "Empty" || self.state == "Dead"
    }
}

pub fn describe(client: &mut Client, group: &str) -> Result<GroupDescription> {
    with_coordinator(client, group, |client, addr| {
        let r: DescribeGroupsResponse = client.call(
            addr,
            ApiKey::DescribeGroups,
            DESCRIBE_GROUPS_VERSION,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(str(group))]),
        )?;
        let g = r.groups.into_iter().next().context("DescribeGroups: empty answer")?;
        check(g.error_code, g.error_message.as_ref())
            .with_context(|| format!("describing group {group}"))?;
        let consumer = g.protocol_type.as_str() == "consumer";
        Ok(GroupDescription {
            id: group.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members: g
                .members
                .iter()
                .map(|m| GroupMember {
                    member_id: m.member_id.to_string(),
                    instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
                    client_id: m.client_id.to_string(),
                    client_host: m.client_host.to_string(),
                    assignment: if consumer {
                        decode_assignment(&m.member_assignment).unwrap_or_default()
                    } else {
                        TopicPartitions::new()
                    },
                })
                .collect(),
        })
    })
}

/// Deletes `groups`; returns each group's refusal, if any, in order.
pub fn delete(client: &mut Client, groups: &[String]) -> Result<Vec<(String, Option<KafkaError>)>> {
    let mut out = Vec::new();
    for group in groups {
        let outcome = with_coordinator(client, group, |client, addr| {
            let r: DeleteGroupsResponse = client.call(
                addr,
                ApiKey::DeleteGroups,
                DELETE_GROUPS_VERSION,
                &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str(group))]),
            )?;
            let res = r.results.first().context("DeleteGroups: empty answer")?;
            let e = check(res.error_code, None).err();
            // Retry "not the coordinator" through with_coordinator; keep others.
            match e {
                Some(e) if retriable(&e) => Err(anyhow::Error::new(e)),
                e => Ok(e),
            }
        })?;
        out.push((group.clone(), outcome));
    }
    Ok(out)
}

/// The committed offsets of `group`: of every topic when `topics` is
/// `None`. Partitions without a committed offset are left out.
pub fn committed(
    client: &mut Client,
    group: &str,
    topics: Option<&TopicPartitions>,
) -> Result<BTreeMap<(String, i32), i64>> {
    use offset_fetch_request::OffsetFetchRequestTopic;
    with_coordinator(client, group, |client, addr| {
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(str(group)))
            .with_require_stable(false)
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(name(t))
                            .with_partition_indexes(ps.clone())
                    })
                    .collect()
            }));
        let r: OffsetFetchResponse =
            client.call(addr, ApiKey::OffsetFetch, OFFSET_FETCH_VERSION, &request)?;
        check(r.error_code, None).with_context(|| format!("committed offsets of group {group}"))?;
        let mut out = BTreeMap::new();
        for t in &r.topics {
            for p in &t.partitions {
                check(p.error_code, None).with_context(|| {
                    format!("committed offset of {}-{}", t.name.0, p.partition_index)
                })?;
                if p.committed_offset >= 0 {
                    out.insert((t.name.0.to_string(), p.partition_index), p.committed_offset);
                }
            }
        }
        Ok(out)
    })
}

/// Commits `offsets` ((topic, partition) → next offset to read) for
/// `group` as member `member_id` of `generation`; generation -1 with an
/// empty member id commits for a group without members (an admin reset).
pub fn commit(
    client: &mut Client,
    group: &str,
    generation: i32,
    member_id: &str,
    offsets: &BTreeMap<(String, i32), i64>,
) -> Result<()> {
    use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    if offsets.is_empty() {
        return Ok(());
    }
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), o) in offsets {
        by_topic.entry(t).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
                .with_committed_leader_epoch(-1),
        );
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(str(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(str(member_id))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default().with_name(name(t)).with_partitions(ps)
                })
                .collect(),
        );
    with_coordinator(client, group, |client, addr| {
        let r: OffsetCommitResponse =
            client.call(addr, ApiKey::OffsetCommit, OFFSET_COMMIT_VERSION, &request)?;
        for t in &r.topics {
            for p in &t.partitions {
                check(p.error_code, None).with_context(|| {
                    format!(
                        "committing the offset of {}-{} for group {group}",
                        t.name.0, p.partition_index
                    )
                })?;
            }
        }
        Ok(())
    })
}

/// Versions of the consumer protocol's subscription and assignment written
/// here: v0, which every client reads.
pub const CONSUMER_PROTOCOL_VERSION: i16 = 0;

/// A consumer protocol message as JoinGroup and SyncGroup carry it: its
/// version (i16), then the message in that version.
fn encode_versioned<M: Encodable>(m: &M, version: i16) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&version.to_be_bytes());
    m.encode(&mut buf, version)?;
    Ok(buf.freeze())
}

/// Reads a versioned consumer protocol message; a version newer than the
/// codec knows is read as the newest it knows (newer versions only add
/// fields at the end, as the consumer protocol promises).
fn decode_versioned<M: Decodable + Message>(data: &Bytes) -> Result<M> {
    let mut buf = data.clone();
    let version = buf.try_get_i16().context("empty consumer protocol message")?;
    let version = version.clamp(M::VERSIONS.min, M::VERSIONS.max);
    M::decode(&mut buf, version)
}

pub fn encode_subscription(topics: &[String]) -> Result<Bytes> {
    let s = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| str(t)).collect());
    encode_versioned(&s, CONSUMER_PROTOCOL_VERSION)
}

pub fn decode_subscription(data: &Bytes) -> Result<Vec<String>> {
    let s: ConsumerProtocolSubscription = decode_versioned(data)?;
    Ok(s.topics.iter().map(|t| t.to_string()).collect())
}

pub fn encode_assignment(assignment: &TopicPartitions) -> Result<Bytes> {
    use consumer_protocol_assignment::TopicPartition;
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        assignment
            .iter()
            .map(|(t, ps)| {
                TopicPartition::default().with_topic(name(t)).with_partitions(ps.clone())
            })
            .collect(),
    );
    encode_versioned(&a, CONSUMER_PROTOCOL_VERSION)
}

/// An empty assignment (no bytes) decodes to no partitions.
pub fn decode_assignment(data: &Bytes) -> Result<TopicPartitions> {
    if data.is_empty() {
        return Ok(TopicPartitions::new());
    }
    let a: ConsumerProtocolAssignment = decode_versioned(data)?;
    let mut out = TopicPartitions::new();
    for tp in a.assigned_partitions {
        out.entry(tp.topic.0.to_string()).or_default().extend(tp.partitions);
    }
    for ps in out.values_mut() {
        ps.sort_unstable();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_protocol_round_trips() {
        let s = encode_subscription(&["a".into(), "b".into()]).unwrap();
        assert_eq!(&s[..2], &[0, 0], "version 0 first");
        assert_eq!(decode_subscription(&s).unwrap(), vec!["a", "b"]);
        let mut a = TopicPartitions::new();
        a.insert("t".into(), vec![0, 2]);
        assert_eq!(decode_assignment(&encode_assignment(&a).unwrap()).unwrap(), a);
        assert!(decode_assignment(&Bytes::new()).unwrap().is_empty());
    }
}
