//! Committed offsets: OffsetCommit v2-v8, OffsetFetch v1-v8, OffsetDelete
//! v0, on the shard that coordinates the group. A commit is appended to the
//! group's `__consumer_offsets` partition in request order and answered
//! once durable (so an acknowledged commit survives SIGKILL under
//! `fsync`); only then is it visible to OffsetFetch.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use net::codec::Request;
use net::kafka_protocol;

use super::groups::{append_offsets, locate_for, wait_offsets, write_offsets};
use super::{respond, HandlerResult, Reply};
use crate::context::ConnContext;
use crate::groups::records::Committed;
use crate::groups::OFFSET_METADATA_BYTES_MAX;
use crate::ids::{LeaderEpoch, Offset};
use crate::shard::Shard;
use auth::acl::{Operation, ResourceType};

pub async fn offset_commit(shard: &Rc<Shard>, request: &Request, context: &ConnContext) -> Reply {
    let req: OffsetCommitRequest = match request.decode_body() {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    let group = req.group_id.0.to_string();
    let image = shard.metadata.image();
    let config = &shard.config;
    let now = engine::Clock::now_ms(&engine::SystemClock);
    let allowed = locate_for(shard, context, &group, Operation::Read).and_then(|p| {
        shard.groups.check_commit(&group, req.generation_id_or_member_epoch, &req.member_id)?;
        Ok(p)
    });
    // Each partition: an error now, or an offset to write.
    let mut codes: Vec<Vec<i16>> = Vec::with_capacity(req.topics.len());
    let mut entries = Vec::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        let exists = image.topics.get(&name);
        let readable = context.may(config, &image, Operation::Read, ResourceType::Topic, &name);
        codes.push(
            t.partitions
                .iter()
                .map(|p| {
                    if let Err(code) = allowed {
                        return code;
                    }
                    if !readable {
                        return ResponseError::TopicAuthorizationFailed.code();
                    }
                    let metadata = p.committed_metadata.as_deref().unwrap_or("");
                    if exists.is_none_or(|m| {
                        p.partition_index < 0 || p.partition_index as usize >= m.partitions.len()
                    }) {
                        return ResponseError::UnknownTopicOrPartition.code();
                    }
                    if metadata.len() > OFFSET_METADATA_BYTES_MAX {
                        return ResponseError::OffsetMetadataTooLarge.code();
                    }
                    entries.push((
                        (name.clone(), p.partition_index),
                        Some(Committed {
                            offset: Offset(p.committed_offset),
                            leader_epoch: LeaderEpoch(if request.version >= 6 {
                                p.committed_leader_epoch
                            } else {
                                -1
                            }),
                            metadata: metadata.to_string(),
                            commit_timestamp: now,
                        }),
                    ));
                    0
                })
                .collect(),
        );
    }
    // The append happens now, in request order; the wait comes later.
    let appended = match allowed {
        Ok(p) if !entries.is_empty() => Some(append_offsets(shard, p, &group, &entries).await),
        _ => None,
    };
    let (shard, request) = (shard.clone(), request.clone());
    Reply::Later(Box::pin(async move {
        // Every written partition shares the append's outcome.
        let written = match appended {
            None => Ok(()),
            Some(Err(code)) => Err(code),
            Some(Ok(appended)) => wait_offsets(&shard, appended, &group, entries).await,
        };
        let topics = req
            .topics
            .iter()
            .zip(codes)
            .map(|(t, codes)| {
                let partitions = t
                    .partitions
                    .iter()
                    .zip(codes)
                    .map(|(p, code)| {
                        let code = if code == 0 { written.err().unwrap_or(0) } else { code };
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code)
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        respond(&request, &OffsetCommitResponse::default().with_topics(topics))
    }))
}

/// The partitions asked for, by topic.
type Wanted = Vec<(TopicName, Vec<i32>)>;

pub fn offset_fetch(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: OffsetFetchRequest = request.decode_body()?;
    let image = shard.metadata.image();
    let config = &shard.config;
    let describable =
        |topic: &str| context.may(config, &image, Operation::Describe, ResourceType::Topic, topic);
    let version = request.version;
    // (group, wanted topics: None for all) as v8 batches them.
    let wanted: Vec<(GroupId, Option<Wanted>)> = if version >= 8 {
        req.groups
            .iter()
            .map(|g| {
                let topics = g.topics.as_ref().map(|ts| {
                    ts.iter().map(|t| (t.name.clone(), t.partition_indexes.clone())).collect()
                });
                (g.group_id.clone(), topics)
            })
            .collect()
    } else {
        let topics = req
            .topics
            .as_ref()
            .map(|ts| ts.iter().map(|t| (t.name.clone(), t.partition_indexes.clone())).collect());
        vec![(req.group_id.clone(), topics)]
    };
    // Per group: the error, and (topic, [(partition, committed or not, code)]).
    type Rows = Vec<(TopicName, Vec<(i32, Option<Committed>, i16)>)>;
    let answers: Vec<(GroupId, i16, Rows)> = wanted
        .into_iter()
        .map(|(group, topics)| {
            let id = group.0.to_string();
            if let Err(code) = locate_for(shard, context, &id, Operation::Describe) {
                // Each asked partition carries the error too (all that v1 has).
                let rows = topics
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, ps)| (name, ps.into_iter().map(|p| (p, None, code)).collect()))
                    .collect();
                return (group, code, rows);
            }
            let rows: Rows = match topics {
                Some(topics) => topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        // A topic the client may not describe: Kafka's
                        // TOPIC_AUTHORIZATION_FAILED on its partitions.
                        let denied = !describable(&name.0);
                        let rows = partitions
                            .into_iter()
                            .map(|p| match denied {
                                true => (p, None, ResponseError::TopicAuthorizationFailed.code()),
                                false => (p, shard.groups.committed(&id, &name.0, p), 0),
                            })
                            .collect();
                        (name, rows)
                    })
                    .collect(),
                None => {
                    let mut rows: Rows = Vec::new();
                    // Every committed offset, of the topics it may describe.
                    let all = shard.groups.all_committed(&id);
                    for ((topic, p), c) in all.into_iter().filter(|((t, _), _)| describable(t)) {
                        match rows.last_mut() {
                            Some((name, ps)) if name.0.as_str() == topic => {
                                ps.push((p, Some(c), 0))
                            }
                            _ => rows.push((
                                TopicName(StrBytes::from_string(topic)),
                                vec![(p, Some(c), 0)],
                            )),
                        }
                    }
                    rows
                }
            };
            // KIP-447: a consumer asking for stable offsets (read_committed)
            // waits while a transaction holds one of the partition's.
            let rows = if req.require_stable {
                let unstable = ResponseError::UnstableOffsetCommit.code();
                rows.into_iter()
                    .map(|(name, ps)| {
                        let ps = ps
                            .into_iter()
                            .map(|(p, c, code)| {
                                let tp = (name.0.to_string(), p);
                                match shard.groups.has_unstable_offset(&id, &tp) {
                                    true if code == 0 => (p, None, unstable),
                                    _ => (p, c, code),
                                }
                            })
                            .collect();
                        (name, ps)
                    })
                    .collect()
            } else {
                rows
            };
            (group, 0, rows)
        })
        .collect();
    let metadata = |c: &Option<Committed>| {
        Some(StrBytes::from_string(c.as_ref().map(|c| c.metadata.clone()).unwrap_or_default()))
    };
    let mut response = OffsetFetchResponse::default();
    if version >= 8 {
        response.groups = answers
            .into_iter()
            .map(|(group, code, rows)| {
                let topics = rows
                    .into_iter()
                    .map(|(name, ps)| {
                        let partitions = ps
                            .into_iter()
                            .map(|(p, c, code)| {
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(c.as_ref().map_or(-1, |c| c.offset.0))
                                    .with_committed_leader_epoch(
                                        c.as_ref().map_or(-1, |c| c.leader_epoch.0),
                                    )
                                    .with_metadata(metadata(&c))
                                    .with_error_code(code)
                            })
                            .collect();
                        OffsetFetchResponseTopics::default()
                            .with_name(name)
                            .with_partitions(partitions)
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(group)
                    .with_topics(topics)
                    .with_error_code(code)
            })
            .collect();
    } else {
        let (_, code, rows) = answers.into_iter().next().expect("one group");
        response.topics = rows
            .into_iter()
            .map(|(name, ps)| {
                let partitions = ps
                    .into_iter()
                    .map(|(p, c, pcode)| {
                        let mut r = OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(c.as_ref().map_or(-1, |c| c.offset.0))
                            .with_metadata(metadata(&c))
                            // Before v2 the group's error is each partition's.
                            .with_error_code(if version < 2 && code != 0 { code } else { pcode });
                        if version >= 5 {
                            r.committed_leader_epoch = c.as_ref().map_or(-1, |c| c.leader_epoch.0);
                        }
                        r
                    })
                    .collect();
                OffsetFetchResponseTopic::default().with_name(name).with_partitions(partitions)
            })
            .collect();
        if version >= 2 {
            response.error_code = code;
        }
    }
    respond(request, &response)
}

/// OffsetDelete: removes a group's committed offsets for partitions of
/// topics no member subscribes to (`GROUP_SUBSCRIBED_TO_TOPIC` otherwise).
pub async fn offset_delete(
    shard: &Shard,
    request: &Request,
    context: &ConnContext,
) -> HandlerResult {
    let req: OffsetDeleteRequest = request.decode_body()?;
    let group = req.group_id.0.to_string();
    let partition = match locate_for(shard, context, &group, Operation::Delete) {
        Ok(p) => match shard.groups.describe(&group) {
            None => Err(ResponseError::GroupIdNotFound.code()),
            Some(_) => Ok(p),
        },
        Err(code) => Err(code),
    };
    let p = match partition {
        Ok(p) => p,
        Err(code) => {
            return respond(request, &OffsetDeleteResponse::default().with_error_code(code))
        }
    };
    let subscribed = shard.groups.subscribed_topics(&group);
    let image = shard.metadata.image();
    let mut entries = Vec::new();
    let mut codes: Vec<Vec<i16>> = Vec::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        codes.push(
            t.partitions
                .iter()
                .map(|p| {
                    if !context.may(
                        &shard.config,
                        &image,
                        Operation::Read,
                        ResourceType::Topic,
                        &name,
                    ) {
                        return ResponseError::TopicAuthorizationFailed.code();
                    }
                    if subscribed.contains(&name) {
                        return ResponseError::GroupSubscribedToTopic.code();
                    }
                    if shard.groups.committed(&group, &name, p.partition_index).is_some() {
                        entries.push(((name.clone(), p.partition_index), None));
                    }
                    0
                })
                .collect(),
        );
    }
    let written = write_offsets(shard, p, &group, entries).await;
    let topics = req
        .topics
        .iter()
        .zip(with_write_outcome(codes, written))
        .map(|(t, codes)| {
            let partitions = t
                .partitions
                .iter()
                .zip(codes)
                .map(|(p, code)| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    respond(request, &OffsetDeleteResponse::default().with_topics(topics))
}

/// Per topic, per partition: the error found before the write, or the
/// write's outcome for a partition that was written.
pub(super) fn with_write_outcome(codes: Vec<Vec<i16>>, written: Result<(), i16>) -> Vec<Vec<i16>> {
    let outcome = written.err().unwrap_or(0);
    codes
        .into_iter()
        .map(|row| row.into_iter().map(|c| if c == 0 { outcome } else { c }).collect())
        .collect()
}
