//! Transaction markers: the coordinator sending a prepared transaction's
//! COMMIT or ABORT markers to every partition of it, through each
//! partition's leader (this shard, another shard of this node over its
//! channel, another node as a WriteTxnMarkers request), and the
//! partitions' side of WriteTxnMarkers v0-v1: appending the markers a
//! shard leads and waiting for them to be replicated.
//!
//! On the shard that coordinates the transaction (sending) or leads the
//! partitions (writing). The coordinator's state and its retries are
//! [`super::txn`]'s; this module only moves and writes markers.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    ApiKey, ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use log::warn;
use net::codec::Request;
use net::kafka_protocol;

use super::txn::{code, local_peer, s, PEER_CALL_LIMIT};
use super::{led_log, respond, HandlerResult};
use crate::context::ConnContext;
use crate::groups::OFFSETS_TOPIC;
use crate::local::{self, LocalCall};
use crate::shard::Shard;
use crate::txns::{Marker, TRANSACTION_TOPIC};
use auth::acl::Operation;

/// This coordinator was deposed: its markers are refused.
pub(super) struct Fenced;

/// Writes `marker` to each partition of `pending` through its leader; the
/// partitions still to do are returned.
pub(super) async fn send_markers(
    shard: &Shard,
    marker: &Marker,
    pending: &BTreeSet<(String, i32)>,
) -> Result<BTreeSet<(String, i32)>, Fenced> {
    let image = shard.metadata.image();
    let mut left = BTreeSet::new();
    let mut by_leader: BTreeMap<crate::ids::BrokerId, Vec<(String, i32)>> = BTreeMap::new();
    for (t, p) in pending {
        match image.partition(t, *p) {
            None => {} // deleted: nothing to mark
            Some(m) => match m.leader {
                Some(b) => by_leader.entry(b).or_default().push((t.clone(), *p)),
                None => {
                    left.insert((t.clone(), *p));
                }
            },
        }
    }
    let me = shard.broker();
    for (leader, parts) in by_leader {
        let codes = if leader == me {
            write_markers_here(shard, marker, &parts).await
        } else if let Some(peer) = local_peer(shard, leader) {
            let asked = parts.clone();
            let call = local::call(peer, PEER_CALL_LIMIT, |reply| LocalCall::Markers {
                marker: *marker,
                partitions: asked,
                reply,
            });
            call.await.unwrap_or_else(|| parts.iter().map(|tp| (tp.clone(), -1)).collect())
        } else {
            match image.endpoint(leader) {
                Some((host, port)) => send_to(shard, host, port, marker, &parts).await,
                None => parts.iter().map(|tp| (tp.clone(), -1)).collect(),
            }
        };
        for (tp, c) in codes {
            match ResponseError::try_from_code(c) {
                None if c == 0 => {}
                Some(ResponseError::TransactionCoordinatorFenced) => return Err(Fenced),
                // Gone, or already past this producer epoch: nothing to write.
                Some(
                    ResponseError::UnknownTopicOrPartition | ResponseError::InvalidProducerEpoch,
                ) => {
                    warn!(
                        "marker of producer {} for {}-{}: error {c}, skipped",
                        marker.pid, tp.0, tp.1
                    );
                }
                _ => {
                    left.insert(tp);
                }
            }
        }
    }
    Ok(left)
}

/// WriteTxnMarkers to another node's broker; -1 for every partition when
/// the call itself failed.
async fn send_to(
    shard: &Shard,
    host: &str,
    port: u16,
    marker: &Marker,
    parts: &[(String, i32)],
) -> Vec<((String, i32), i16)> {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        topics.entry(t).or_default().push(*p);
    }
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(marker.pid))
            .with_producer_epoch(marker.epoch)
            .with_transaction_result(marker.commit)
            .with_coordinator_epoch(marker.coordinator_epoch)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        WritableTxnMarkerTopic::default()
                            .with_name(TopicName(s(t)))
                            .with_partition_indexes(ps)
                    })
                    .collect(),
            )]);
    let call = async {
        let what = "writing transaction markers";
        let r: WriteTxnMarkersResponse = shard
            .wires
            .call(
                &shard.peers,
                host,
                port,
                ApiKey::WriteTxnMarkers,
                1,
                &request,
                PEER_CALL_LIMIT,
                what,
            )
            .await
            .ok()?;
        let m = r.markers.into_iter().next()?;
        Some(
            m.topics
                .into_iter()
                .flat_map(|t| {
                    let name = t.name.0.to_string();
                    t.partitions
                        .into_iter()
                        .map(move |p| ((name.clone(), p.partition_index), p.error_code))
                })
                .collect::<Vec<_>>(),
        )
    };
    // Every partition asked for gets a code: one the answer left out
    // failed (it is retried), never written.
    let answered: BTreeMap<(String, i32), i16> =
        call.await.unwrap_or_default().into_iter().collect();
    parts.iter().map(|tp| (tp.clone(), answered.get(tp).copied().unwrap_or(-1))).collect()
}

/// Appends `marker` to each of `parts` this shard leads and waits until
/// each is on its partition's ISR (markers are acks=all writes).
pub(crate) async fn write_markers_here(
    shard: &Shard,
    marker: &Marker,
    parts: &[(String, i32)],
) -> Vec<((String, i32), i16)> {
    let image = shard.metadata.image();
    let mut appended = Vec::with_capacity(parts.len());
    let mut codes = Vec::with_capacity(parts.len());
    if marker.pid < 0 || marker.epoch < 0 {
        let c = code(ResponseError::InvalidProducerIdMapping);
        return parts.iter().map(|tp| (tp.clone(), c)).collect();
    }
    // A coordinator epoch no coordinator has (a client's WriteTxnMarkers
    // would otherwise fence every real marker of the producer for good):
    // refused, retriable, as a coordinator ahead of this image is.
    let highest = image
        .topics
        .get(TRANSACTION_TOPIC)
        .and_then(|t| t.partitions.iter().map(|p| p.leader_epoch.0).max());
    if highest.is_none_or(|h| marker.coordinator_epoch > h) {
        let c = code(ResponseError::CoordinatorNotAvailable);
        return parts.iter().map(|tp| (tp.clone(), c)).collect();
    }
    for (t, p) in parts {
        let log = match led_log(shard, &image, t, *p, -1) {
            Ok(log) => log,
            Err(e) => {
                codes.push(((t.clone(), *p), e.code()));
                continue;
            }
        };
        let leader_epoch = image.partition(t, *p).map_or(0, |m| m.leader_epoch.0);
        let m = engine::txn::Marker {
            commit: marker.commit,
            coordinator_epoch: marker.coordinator_epoch,
        };
        match log.append_marker(marker.pid, marker.epoch, m, leader_epoch).await {
            Ok(info) => appended.push(((t.clone(), *p), log, info.end_offset, leader_epoch)),
            Err(e) => codes.push(((t.clone(), *p), net::errors::append_error_code(&e))),
        }
    }
    // Every partition's wait at once: the call takes one limit at most.
    let waits = appended.into_iter().map(|(tp, log, end, epoch)| async move {
        let c = match crate::admission::within(PEER_CALL_LIMIT, log.wait_replicated(end, epoch))
            .await
        {
            Some(Ok(())) => 0,
            Some(Err(e)) => net::errors::append_error_code(&e),
            None => code(ResponseError::RequestTimedOut),
        };
        (tp, c)
    });
    for (tp, c) in futures_util::future::join_all(waits).await {
        // The group coordinator (this shard leads the partition) applies
        // or drops the transaction's offsets.
        if c == 0 && tp.0 == OFFSETS_TOPIC {
            shard.groups.end_txn_offsets(tp.1, marker.pid, marker.commit);
        }
        codes.push((tp, c));
    }
    codes
}

/// Brokers only: CLUSTER_ACTION on the cluster, else every partition is
/// CLUSTER_AUTHORIZATION_FAILED and no marker is written.
pub async fn write_txn_markers(
    shard: &Shard,
    request: &Request,
    context: &ConnContext,
) -> HandlerResult {
    let req: WriteTxnMarkersRequest = request.decode_body()?;
    let image = shard.metadata.image();
    let allowed = context.may_on_cluster(&shard.config, &image, Operation::ClusterAction);
    drop(image);
    let mut results = Vec::with_capacity(req.markers.len());
    for m in &req.markers {
        let marker = Marker {
            pid: m.producer_id.0,
            epoch: m.producer_epoch,
            commit: m.transaction_result,
            coordinator_epoch: m.coordinator_epoch,
        };
        let parts: Vec<(String, i32)> = m
            .topics
            .iter()
            .flat_map(|t| t.partition_indexes.iter().map(move |&p| (t.name.0.to_string(), p)))
            .collect();
        let codes = match allowed {
            true => write_markers_here(shard, &marker, &parts).await,
            false => {
                let denied = code(ResponseError::ClusterAuthorizationFailed);
                parts.into_iter().map(|tp| (tp, denied)).collect()
            }
        };
        let mut by_topic: BTreeMap<String, Vec<WritableTxnMarkerPartitionResult>> = BTreeMap::new();
        for ((t, p), c) in codes {
            by_topic.entry(t).or_default().push(
                WritableTxnMarkerPartitionResult::default()
                    .with_partition_index(p)
                    .with_error_code(c),
            );
        }
        let topics = by_topic
            .into_iter()
            .map(|(t, partitions)| {
                WritableTxnMarkerTopicResult::default()
                    .with_name(TopicName(s(&t)))
                    .with_partitions(partitions)
            })
            .collect();
        results.push(
            WritableTxnMarkerResult::default().with_producer_id(m.producer_id).with_topics(topics),
        );
    }
    respond(request, &WriteTxnMarkersResponse::default().with_markers(results))
}
