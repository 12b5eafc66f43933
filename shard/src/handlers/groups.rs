//! Consumer group APIs (classic protocol): FindCoordinator, JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup, DescribeGroups, ListGroups,
//! DeleteGroups. The decisions are the coordinator's
//! ([`crate::groups::Coordinator`]); this module decodes, routes and
//! encodes. A group request reaching a shard that does not coordinate the
//! group gets `NOT_COORDINATOR`, and the client asks FindCoordinator again.

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use net::codec::Request;
use net::kafka_protocol;

use super::{respond, HandlerResult, Reply};
use crate::context::ConnContext;
use crate::controller::Command;
use crate::groups::records::{self, partition_for, Committed};
use crate::groups::{
    answer, check_group_id, JoinAnswer, JoinRequest, SyncAnswer, OFFSETS_TOPIC,
    OFFSETS_TOPIC_PARTITIONS,
};
use crate::shard::Shard;
use crate::txns::TRANSACTION_TOPIC;
use auth::acl::{Operation, ResourceType};

/// DescribeGroups v3+ when the client did not ask for operations.
const OPERATIONS_OMITTED: i32 = i32::MIN;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// The `__consumer_offsets` partition of `group` if this shard coordinates
/// it and has loaded it; otherwise the error code to answer with.
pub fn locate(shard: &Shard, group: &str) -> Result<i32, i16> {
    check_group_id(group)?;
    let p = partition_for(group, OFFSETS_TOPIC_PARTITIONS);
    let image = shard.metadata.image();
    match image.leader(OFFSETS_TOPIC, p) {
        None => Err(ResponseError::CoordinatorNotAvailable.code()),
        Some(owner) if owner != shard.broker() => Err(ResponseError::NotCoordinator.code()),
        Some(_) if !shard.groups.is_loaded(p) => {
            Err(ResponseError::CoordinatorLoadInProgress.code())
        }
        Some(_) => Ok(p),
    }
}

/// [`locate`], after Kafka's check that the client may do `operation` to
/// the group (GROUP_AUTHORIZATION_FAILED, whatever the coordinator).
pub fn locate_for(
    shard: &Shard,
    context: &ConnContext,
    group: &str,
    operation: Operation,
) -> Result<i32, i16> {
    let image = shard.metadata.image();
    if !context.may(&shard.config, &image, operation, ResourceType::Group, group) {
        return Err(ResponseError::GroupAuthorizationFailed.code());
    }
    locate(shard, group)
}

/// FindCoordinator v0-v4: the broker leading the key's partition of
/// `__consumer_offsets` (key type 0, groups) or `__transaction_state` (key
/// type 1, transactional ids, v1+). The first transactional key makes the
/// controller create `__transaction_state`, as Kafka does.
pub async fn find_coordinator(
    shard: &Shard,
    request: &Request,
    context: &ConnContext,
) -> HandlerResult {
    let req: FindCoordinatorRequest = request.decode_body()?;
    let version = request.version;
    let keys: Vec<String> = if version >= 4 {
        req.coordinator_keys.iter().map(|k| k.to_string()).collect()
    } else {
        vec![req.key.to_string()]
    };
    let (resource, denied) = match req.key_type {
        1 => (ResourceType::TransactionalId, ResponseError::TransactionalIdAuthorizationFailed),
        _ => (ResourceType::Group, ResponseError::GroupAuthorizationFailed),
    };
    let image = shard.metadata.image();
    let describable =
        |key: &str| context.may(&shard.config, &image, Operation::Describe, resource, key);
    // The transaction topic is made for a client that may use it only.
    let transactional = req.key_type == 1 && keys.iter().any(|k| describable(k));
    if transactional && !image.topics.contains_key(TRANSACTION_TOPIC) {
        if let Err(e) = shard.controller.ask(Command::CreateTransactionTopic).await {
            log::warn!("shard {}: cannot create {TRANSACTION_TOPIC}: {e}", shard.id);
        }
    }
    let image = shard.metadata.image();
    let entries: Vec<CoordinatorEntry> = keys
        .into_iter()
        .map(|key| {
            let mut e = CoordinatorEntry::default()
                .with_key(s(key.clone()))
                .with_node_id(BrokerId(-1))
                .with_host(s(""))
                .with_port(-1);
            let fail = |mut e: CoordinatorEntry, code: ResponseError, msg: &str| {
                e.error_code = code.code();
                e.error_message = Some(s(msg));
                e
            };
            if req.key_type > 1 {
                return fail(e, ResponseError::InvalidRequest, "unknown key type");
            }
            if !context.may(&shard.config, &image, Operation::Describe, resource, &key) {
                return fail(e, denied, "not authorized to describe the coordinator's key");
            }
            let owner = match req.key_type {
                0 if check_group_id(&key).is_err() => {
                    return fail(e, ResponseError::InvalidRequest, "invalid group id");
                }
                0 => image.leader(OFFSETS_TOPIC, partition_for(&key, OFFSETS_TOPIC_PARTITIONS)),
                1 if crate::txns::check_transactional_id(&key).is_err() => {
                    return fail(e, ResponseError::InvalidRequest, "invalid transactional id");
                }
                1 => image.leader(TRANSACTION_TOPIC, crate::txns::partition_for(&key)),
                _ => return fail(e, ResponseError::InvalidRequest, "unknown key type"),
            };
            match owner.and_then(|o| Some((o, image.endpoint_on(o, context.protocol)?))) {
                None => fail(e, ResponseError::CoordinatorNotAvailable, "no coordinator yet"),
                Some((owner, (host, port))) => {
                    e.node_id = BrokerId(owner.0);
                    e.host = s(host);
                    e.port = i32::from(port);
                    e
                }
            }
        })
        .collect();
    let mut response = FindCoordinatorResponse::default();
    if version >= 4 {
        response.coordinators = entries;
    } else {
        let e = entries.into_iter().next().expect("one key");
        response.error_code = e.error_code;
        if version >= 1 {
            response.error_message = e.error_message;
        }
        response.node_id = e.node_id;
        response.host = e.host;
        response.port = e.port;
    }
    respond(request, &response)
}

pub fn join_group(shard: &Shard, request: &Request, context: &ConnContext) -> Reply {
    let req: JoinGroupRequest = match request.decode_body() {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    let version = request.version;
    let group = req.group_id.0.to_string();
    let respond_with = move |request: &Request, a: JoinAnswer| {
        let mut r = JoinGroupResponse::default()
            .with_error_code(a.error)
            .with_generation_id(a.generation)
            .with_leader(s(a.leader))
            .with_member_id(s(a.member_id))
            .with_members(
                a.members
                    .into_iter()
                    .map(|(id, instance, metadata)| {
                        JoinGroupResponseMember::default()
                            .with_member_id(s(id))
                            .with_group_instance_id(if version >= 5 {
                                instance.map(s)
                            } else {
                                None
                            })
                            .with_metadata(metadata)
                    })
                    .collect(),
            );
        if version >= 7 {
            r.protocol_type = a.protocol_type.map(s);
        }
        r.protocol_name =
            if version >= 7 { a.protocol.map(s) } else { Some(s(a.protocol.unwrap_or_default())) };
        respond(request, &r)
    };
    if let Err(code) = locate_for(shard, context, &group, Operation::Read) {
        return Reply::Now(respond_with(
            request,
            JoinAnswer {
                error: code,
                generation: -1,
                member_id: req.member_id.to_string(),
                ..Default::default()
            },
        ));
    }
    let host = context.peer.map_or_else(|| "?".to_string(), |a| a.ip().to_string());
    let join = JoinRequest {
        group,
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
        client_id: request.header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default(),
        client_host: format!("/{host}"),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 { req.rebalance_timeout_ms } else { -1 },
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect(),
        require_known_member_id: version >= 4,
    };
    let fallback = JoinAnswer {
        error: ResponseError::NotCoordinator.code(),
        generation: -1,
        member_id: join.member_id.clone(),
        ..Default::default()
    };
    let pending = shard.groups.join(join);
    let request = request.clone();
    Reply::Later(Box::pin(async move {
        let a = answer(pending, fallback).await;
        respond_with(&request, a)
    }))
}

pub fn sync_group(shard: &Shard, request: &Request, context: &ConnContext) -> Reply {
    let req: SyncGroupRequest = match request.decode_body() {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    let version = request.version;
    let respond_with = move |request: &Request, a: SyncAnswer| {
        let mut r =
            SyncGroupResponse::default().with_error_code(a.error).with_assignment(a.assignment);
        if version >= 5 {
            r.protocol_type = a.protocol_type.map(s);
            r.protocol_name = a.protocol.map(s);
        }
        respond(request, &r)
    };
    let group = req.group_id.0.to_string();
    if let Err(code) = locate_for(shard, context, &group, Operation::Read) {
        return Reply::Now(respond_with(request, SyncAnswer { error: code, ..Default::default() }));
    }
    let pending = shard.groups.sync(
        &group,
        req.generation_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.protocol_type.as_deref(),
        req.protocol_name.as_deref(),
        req.assignments.iter().map(|a| (a.member_id.to_string(), a.assignment.clone())).collect(),
    );
    let request = request.clone();
    let fallback = SyncAnswer { error: ResponseError::NotCoordinator.code(), ..Default::default() };
    Reply::Later(Box::pin(async move {
        let a = answer(pending, fallback).await;
        respond_with(&request, a)
    }))
}

pub fn heartbeat(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: HeartbeatRequest = request.decode_body()?;
    let group = req.group_id.0.to_string();
    let code = match locate_for(shard, context, &group, Operation::Read) {
        Err(code) => code,
        Ok(_) => shard.groups.heartbeat(
            &group,
            req.generation_id,
            &req.member_id,
            req.group_instance_id.as_deref(),
        ),
    };
    respond(request, &HeartbeatResponse::default().with_error_code(code))
}

pub fn leave_group(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: LeaveGroupRequest = request.decode_body()?;
    let version = request.version;
    let group = req.group_id.0.to_string();
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|i| i.to_string())))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let outcome = locate_for(shard, context, &group, Operation::Read)
        .and_then(|_| shard.groups.leave(&group, &members));
    let mut response = LeaveGroupResponse::default();
    match outcome {
        Err(code) => response.error_code = code,
        Ok(codes) if version >= 3 => {
            response.members = members
                .into_iter()
                .zip(codes)
                .map(|((id, instance), code)| {
                    MemberResponse::default()
                        .with_member_id(s(id))
                        .with_group_instance_id(instance.map(s))
                        .with_error_code(code)
                })
                .collect();
        }
        Ok(codes) => response.error_code = codes[0],
    }
    respond(request, &response)
}

pub fn describe_groups(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: DescribeGroupsRequest = request.decode_body()?;
    let version = request.version;
    let groups = req
        .groups
        .iter()
        .map(|g| {
            let id = g.0.to_string();
            let mut d = DescribedGroup::default()
                .with_group_id(g.clone())
                .with_authorized_operations(OPERATIONS_OMITTED);
            match locate_for(shard, context, &id, Operation::Describe) {
                Err(code) => {
                    d.error_code = code;
                    d.group_state = s("");
                }
                Ok(_) => {
                    if version >= 3 && req.include_authorized_operations {
                        let image = shard.metadata.image();
                        let rt = ResourceType::Group;
                        d.authorized_operations =
                            context.authorized_operations(&shard.config, &image, rt, &id);
                    }
                    describe_into(shard, &id, version, &mut d);
                }
            }
            d
        })
        .collect();
    respond(request, &DescribeGroupsResponse::default().with_groups(groups))
}

/// A group's state and members into its DescribeGroups entry.
fn describe_into(shard: &Shard, id: &str, version: i16, d: &mut DescribedGroup) {
    match shard.groups.describe(id) {
        // Unknown groups are "Dead", as Kafka reports them.
        None => d.group_state = s("Dead"),
        Some(view) => {
            d.group_state = s(view.state.name());
            d.protocol_type = s(view.protocol_type);
            d.protocol_data = s(view.protocol);
            d.members = view
                .members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(s(m.id))
                        .with_group_instance_id(if version >= 4 {
                            m.instance_id.map(s)
                        } else {
                            None
                        })
                        .with_client_id(s(m.client_id))
                        .with_client_host(s(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect();
        }
    }
}

/// ListGroups: every group with DESCRIBE on the cluster, else the groups
/// the client may describe (Kafka's filter).
pub fn list_groups(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: ListGroupsRequest = request.decode_body()?;
    let image = shard.metadata.image();
    let config = &shard.config;
    let all = context.may_on_cluster(config, &image, Operation::Describe);
    let visible =
        |id: &str| all || context.may(config, &image, Operation::Describe, ResourceType::Group, id);
    let wanted: Vec<String> =
        req.states_filter.iter().map(|f| f.to_string().to_lowercase()).collect();
    let groups = shard
        .groups
        .list()
        .into_iter()
        .filter(|(_, _, state)| wanted.is_empty() || wanted.contains(&state.name().to_lowercase()))
        .filter(|(id, _, _)| visible(id))
        .map(|(id, protocol_type, state)| {
            let mut l = ListedGroup::default()
                .with_group_id(GroupId(s(id)))
                .with_protocol_type(s(protocol_type));
            if request.version >= 4 {
                l.group_state = s(state.name());
            }
            l
        })
        .collect();
    respond(request, &ListGroupsResponse::default().with_groups(groups))
}

/// DeleteGroups: each empty group's offsets are deleted with tombstones.
pub async fn delete_groups(
    shard: &Shard,
    request: &Request,
    context: &ConnContext,
) -> HandlerResult {
    let req: DeleteGroupsRequest = request.decode_body()?;
    let mut results = Vec::with_capacity(req.groups_names.len());
    for g in &req.groups_names {
        let id = g.0.to_string();
        let outcome = match locate_for(shard, context, &id, Operation::Delete) {
            Err(code) => Err(code),
            Ok(p) => match shard.groups.check_delete(&id) {
                Err(code) => Err(code),
                Ok(()) => {
                    let gone: Vec<_> = shard
                        .groups
                        .all_committed(&id)
                        .into_iter()
                        .map(|(tp, _)| (tp, None))
                        .collect();
                    match write_offsets(shard, p, &id, gone).await {
                        Ok(()) => delete_group_record(shard, p, &id).await,
                        Err(code) => Err(code),
                    }
                }
            },
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(g.clone())
                .with_error_code(outcome.err().unwrap_or(0)),
        );
    }
    respond(request, &DeleteGroupsResponse::default().with_results(results))
}

/// The leader epoch the coordinator stamps on its `__consumer_offsets`
/// records: the partition's, as this shard's image has it.
fn offsets_epoch(shard: &Shard, partition: i32) -> i32 {
    shard.metadata.image().partition(OFFSETS_TOPIC, partition).map_or(0, |p| p.leader_epoch.0)
}

/// Tombstones a group's metadata record and forgets the group.
async fn delete_group_record(shard: &Shard, partition: i32, group: &str) -> Result<(), i16> {
    let log = shard
        .partitions
        .log(OFFSETS_TOPIC, partition)
        .ok_or(ResponseError::NotCoordinator.code())?;
    let key = records::group_key(group);
    let batch = engine::batch::build(
        &[(Some(&key[..]), None)],
        engine::Clock::now_ms(&engine::SystemClock),
    );
    let epoch = offsets_epoch(shard, partition);
    let info = log
        .append(BytesMut::from(&batch[..]), epoch)
        .await
        .map_err(|e| crate::groups::write_error_code(&e))?;
    crate::groups::wait_committed(&log, info.end_offset, epoch).await?;
    shard.groups.forget(group);
    Ok(())
}

/// Appends offset records (a `None` value is a tombstone) for `group` to
/// its `__consumer_offsets` partition, waits until its ISR holds them
/// durably, then applies them in memory.
pub async fn write_offsets(
    shard: &Shard,
    partition: i32,
    group: &str,
    entries: Vec<((String, i32), Option<Committed>)>,
) -> Result<(), i16> {
    let appended = append_offsets(shard, partition, group, &entries).await?;
    wait_offsets(shard, appended, group, entries).await
}

type OffsetsLog = engine::PartitionLog<engine::disk::DmaDisk>;

/// Offsets records appended: the log, the first record's offset, and the
/// leader epoch they were appended at.
pub type AppendedOffsets = (OffsetsLog, i64, i32);

/// The append half of [`write_offsets`]: assigns the records' offsets.
pub async fn append_offsets(
    shard: &Shard,
    partition: i32,
    group: &str,
    entries: &[((String, i32), Option<Committed>)],
) -> Result<AppendedOffsets, i16> {
    let log = shard
        .partitions
        .log(OFFSETS_TOPIC, partition)
        .ok_or(ResponseError::NotCoordinator.code())?;
    let epoch = offsets_epoch(shard, partition);
    if entries.is_empty() {
        return Ok((log, -1, epoch));
    }
    let keys: Vec<Vec<u8>> =
        entries.iter().map(|((t, p), _)| records::offset_key(group, t, *p)).collect();
    let values: Vec<Option<Vec<u8>>> =
        entries.iter().map(|(_, v)| v.as_ref().map(records::offset_value)).collect();
    let kv: Vec<_> = keys.iter().zip(&values).map(|(k, v)| (Some(&k[..]), v.as_deref())).collect();
    let batch = engine::batch::build(&kv, engine::Clock::now_ms(&engine::SystemClock));
    let info = log
        .append(BytesMut::from(&batch[..]), epoch)
        .await
        .map_err(|e| crate::groups::commit_error_code(net::errors::append_error_code(&e)))?;
    Ok((log, info.base_offset, epoch))
}

/// The waiting half of [`write_offsets`].
pub async fn wait_offsets(
    shard: &Shard,
    (log, base, epoch): AppendedOffsets,
    group: &str,
    entries: Vec<((String, i32), Option<Committed>)>,
) -> Result<(), i16> {
    if entries.is_empty() {
        return Ok(());
    }
    let end = base + entries.len() as i64;
    crate::groups::wait_committed(&log, end, epoch).await?;
    // The partition's leadership moved meanwhile: the new coordinator
    // loads the commit from its replica; this one no longer keeps groups.
    if !shard.groups.is_loaded(partition_for(group, OFFSETS_TOPIC_PARTITIONS)) {
        return Err(ResponseError::NotCoordinator.code());
    }
    for (i, (tp, value)) in entries.into_iter().enumerate() {
        shard.groups.apply(group, tp, value, base + i as i64);
    }
    Ok(())
}
