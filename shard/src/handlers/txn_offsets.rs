//! A transaction's consumer offsets (`send_offsets_to_transaction`):
//! AddOffsetsToTxn v0-v3 on the transaction coordinator adds the group's
//! `__consumer_offsets` partition to the transaction; TxnOffsetCommit
//! v0-v3 on the group coordinator writes the offsets as a transactional
//! batch of the producer, held until the transaction's marker reaches the
//! partition ([`crate::groups::txn_offsets`]).
//!
//! The group coordinator checks with the transaction coordinator that the
//! transaction holds the partition before it writes (KIP-890), and the
//! write is refused if a marker of the producer landed meanwhile, so
//! offsets never open a transaction no coordinator would end.

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};
use net::codec::Request;
use net::kafka_protocol;

use super::groups::locate as locate_group;
use super::{respond, HandlerResult};
use crate::context::ConnContext;
use crate::groups::records::{self, partition_for, Committed};
use crate::groups::txn_offsets::PendingOffset;
use crate::groups::{OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS, OFFSET_METADATA_BYTES_MAX};
use crate::ids::{LeaderEpoch, Offset};
use crate::shard::Shard;
use auth::acl::{Operation, ResourceType};

/// Needs WRITE on the transactional id and READ on the group.
pub async fn add_offsets_to_txn(
    shard: &Shard,
    request: &Request,
    context: &ConnContext,
) -> HandlerResult {
    let req: AddOffsetsToTxnRequest = request.decode_body()?;
    let group = req.group_id.0.as_str();
    let image = shard.metadata.image();
    let may = |op, rt, name: &str| context.may(&shard.config, &image, op, rt, name);
    let outcome = match crate::groups::check_group_id(group) {
        _ if !may(Operation::Write, ResourceType::TransactionalId, &req.transactional_id) => {
            Err(ResponseError::TransactionalIdAuthorizationFailed.code())
        }
        _ if !may(Operation::Read, ResourceType::Group, group) => {
            Err(ResponseError::GroupAuthorizationFailed.code())
        }
        Err(c) => Err(c),
        Ok(()) => {
            let p = partition_for(group, OFFSETS_TOPIC_PARTITIONS);
            let wanted = [(OFFSETS_TOPIC.to_string(), p)];
            let (id, pid, epoch) =
                (req.transactional_id.0.as_str(), req.producer_id.0, req.producer_epoch);
            super::txn::add_here(shard, id, pid, epoch, &wanted).await
        }
    };
    let code = super::txn::fenced_as(outcome.err().unwrap_or(0), request.version < 2);
    respond(request, &AddOffsetsToTxnResponse::default().with_error_code(code))
}

/// Needs WRITE on the transactional id, READ on the group and on each
/// topic (TOPIC_AUTHORIZATION_FAILED for a topic's partitions).
pub async fn txn_offset_commit(
    shard: &Shard,
    request: &Request,
    context: &ConnContext,
) -> HandlerResult {
    let req: TxnOffsetCommitRequest = request.decode_body()?;
    let group = req.group_id.0.to_string();
    let image = shard.metadata.image();
    let config = &shard.config;
    let now = engine::Clock::now_ms(&engine::SystemClock);
    let tid_ok = context.may(
        config,
        &image,
        Operation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id,
    );
    let group_ok = context.may(config, &image, Operation::Read, ResourceType::Group, &group);
    let allowed = async {
        if !tid_ok {
            return Err(ResponseError::TransactionalIdAuthorizationFailed.code());
        }
        if !group_ok {
            return Err(ResponseError::GroupAuthorizationFailed.code());
        }
        let p = locate_group(shard, &group)?;
        // The member and generation a v3+ commit names must be the
        // group's; without them the commit is a producer's own, as Kafka
        // allows.
        if request.version >= 3 {
            let instance = req.group_instance_id.as_deref();
            shard.groups.check_txn_commit(&group, req.generation_id, &req.member_id, instance)?;
        }
        let (pid, epoch) = (req.producer_id.0, req.producer_epoch);
        // The guard is read before asking: a marker landing while the
        // coordinator answers refuses the write.
        let log = shard.partitions.log(OFFSETS_TOPIC, p);
        let log = log.ok_or(ResponseError::NotCoordinator.code())?;
        let (_, last_marker) = log.producer_txn(pid, epoch);
        let tid = req.transactional_id.0.as_str();
        super::txn::verify(shard, tid, pid, epoch, OFFSETS_TOPIC, p).await.map_err(|c| {
            // Retriable for a transactional commit, as Kafka answers it.
            match ResponseError::try_from_code(c) {
                Some(ResponseError::NotEnoughReplicas) => {
                    ResponseError::CoordinatorNotAvailable.code()
                }
                _ => c,
            }
        })?;
        Ok((p, last_marker))
    }
    .await;
    let mut codes: Vec<Vec<i16>> = Vec::with_capacity(req.topics.len());
    let mut entries = Vec::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        let exists = image.topics.get(&name);
        let readable = context.may(config, &image, Operation::Read, ResourceType::Topic, &name);
        let row = t.partitions.iter().map(|p| {
            if let Err(code) = allowed {
                return code;
            }
            if !readable {
                return ResponseError::TopicAuthorizationFailed.code();
            }
            let metadata = p.committed_metadata.as_deref().unwrap_or("");
            let known = exists.is_some_and(|m| {
                p.partition_index >= 0 && (p.partition_index as usize) < m.partitions.len()
            });
            if !known {
                return ResponseError::UnknownTopicOrPartition.code();
            }
            if metadata.len() > OFFSET_METADATA_BYTES_MAX {
                return ResponseError::OffsetMetadataTooLarge.code();
            }
            let leader_epoch = if request.version >= 2 { p.committed_leader_epoch } else { -1 };
            entries.push((
                (name.clone(), p.partition_index),
                Committed {
                    offset: Offset(p.committed_offset),
                    leader_epoch: LeaderEpoch(leader_epoch),
                    metadata: metadata.to_string(),
                    commit_timestamp: now,
                },
            ));
            0
        });
        codes.push(row.collect());
    }
    drop(image);
    let written = match allowed {
        Ok((p, last_marker)) if !entries.is_empty() => {
            write(shard, p, last_marker, &group, &req, entries)
                .await
                .map_err(crate::groups::commit_error_code)
        }
        _ => Ok(()),
    };
    let topics = req
        .topics
        .iter()
        .zip(super::offsets::with_write_outcome(codes, written))
        .map(|(t, codes)| {
            let partitions = t
                .partitions
                .iter()
                .zip(codes)
                .map(|(p, code)| {
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    respond(request, &TxnOffsetCommitResponse::default().with_topics(topics))
}

/// Writes the offsets as one transactional batch of the producer into the
/// group's partition, waits for the ISR, then holds them for the marker.
async fn write(
    shard: &Shard,
    p: i32,
    last_marker: Option<i64>,
    group: &str,
    req: &TxnOffsetCommitRequest,
    entries: Vec<((String, i32), Committed)>,
) -> Result<(), i16> {
    let not_coordinator = ResponseError::NotCoordinator.code();
    let log = shard.partitions.log(OFFSETS_TOPIC, p).ok_or(not_coordinator)?;
    let (pid, epoch) = (req.producer_id.0, req.producer_epoch);
    let keys: Vec<Vec<u8>> =
        entries.iter().map(|((t, q), _)| records::offset_key(group, t, *q)).collect();
    let values: Vec<Vec<u8>> = entries.iter().map(|(_, c)| records::offset_value(c)).collect();
    let kv: Vec<_> = keys.iter().zip(&values).map(|(k, v)| (Some(&k[..]), Some(&v[..]))).collect();
    let mut batch = engine::batch::build(&kv, engine::Clock::now_ms(&engine::SystemClock));
    engine::batch::set_transactional(&mut batch);
    engine::batch::set_producer(&mut batch, pid, epoch, 0);
    let leader_epoch =
        shard.metadata.image().partition(OFFSETS_TOPIC, p).map_or(0, |m| m.leader_epoch.0);
    let check = engine::ProducerCheck::Coordinator { producer_id: pid, last_marker };
    let info = log
        .append_checked(BytesMut::from(&batch[..]), leader_epoch, check)
        .await
        .map_err(|e| net::errors::append_error_code(&e))?;
    // Held from the append on (nothing awaits in between): the marker,
    // which can only come later, finds them.
    let held = entries
        .into_iter()
        .enumerate()
        .map(|(i, (tp, value))| PendingOffset {
            group: group.to_string(),
            tp,
            value,
            record_offset: info.base_offset + i as i64,
        })
        .collect();
    shard.groups.hold_txn_offsets(p, pid, held);
    crate::groups::wait_committed(&log, info.end_offset, leader_epoch).await?;
    if !shard.groups.is_loaded(p) {
        return Err(not_coordinator);
    }
    Ok(())
}
