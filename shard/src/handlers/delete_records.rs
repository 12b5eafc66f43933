//! DeleteRecords v0-2: moves each partition's log start offset up to the
//! offset asked (-1: the high watermark), on the partition's leader, then
//! waits within the request's `timeout_ms` until every live replica has
//! moved its own (Kafka's `DelayedDeleteRecords`); the response's low
//! watermark is the lowest of them. Below it reads are out of range and
//! ListOffsets EARLIEST answers it; segments wholly below it are deleted.
//!
//! Refused, per partition: a follower (`NOT_LEADER_OR_FOLLOWER`), an
//! offset past the high watermark (`OFFSET_OUT_OF_RANGE`), a topic whose
//! `cleanup.policy` has no `delete` (`POLICY_VIOLATION`, as Kafka), a
//! replica that does not follow in time (`REQUEST_TIMED_OUT`), a leader
//! deposed meanwhile (`NOT_LEADER_OR_FOLLOWER`).

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use net::codec::Request;
use net::errors::log_error_code;
use net::kafka_protocol;

use super::produce::PRODUCE_WAIT_MAX;
use super::{led_log, respond, HandlerResult};
use crate::admission::within;
use crate::context::ConnContext;
use crate::shard::Shard;
use auth::acl::{Operation, ResourceType};

/// The high watermark, as the offset to delete before.
const HIGH_WATERMARK: i64 = -1;

pub async fn handle(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: DeleteRecordsRequest = request.decode_body()?;
    let mut topics = Vec::with_capacity(req.topics.len());
    // (topic index, partition index, partition id, offset) still to be
    // followed by the other replicas.
    let mut waiting = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let name = t.name.0.as_str();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let mut r = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            // The image of the moment: an earlier partition's move awaited.
            let image = shard.metadata.image();
            if !context.may(&shard.config, &image, Operation::Delete, ResourceType::Topic, name) {
                r.error_code = ResponseError::TopicAuthorizationFailed.code();
                partitions.push(r);
                continue;
            }
            match delete_before(shard, &image, name, p.partition_index, p.offset).await {
                Ok((id, offset)) => waiting.push((ti, partitions.len(), id, offset)),
                Err(e) => r.error_code = e.code(),
            }
            partitions.push(r);
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64).min(PRODUCE_WAIT_MAX);
    // Per partition: its low watermark once it reached the offset, or why
    // not (this shard no longer leads it: NOT_LEADER_OR_FOLLOWER).
    let states = |waiting: &[(usize, usize, _, i64)]| {
        let image = shard.metadata.image();
        waiting
            .iter()
            .map(|&(_, _, id, offset)| match shard.replicas.low_watermark(id, &image) {
                None => Err(ResponseError::NotLeaderOrFollower),
                Some(low) if low >= offset => Ok(Some(low)),
                Some(_) => Ok(None),
            })
            .collect::<Vec<_>>()
    };
    let _ = within(timeout, async {
        loop {
            let moved = shard.replicas.log_starts_changed();
            let roles = shard.replicas.roles_changed();
            if states(&waiting).iter().all(|s| !matches!(s, Ok(None))) {
                return;
            }
            futures_lite::future::or(moved, roles).await;
        }
    })
    .await;
    for ((ti, pi, _, _), state) in waiting.iter().zip(states(&waiting)) {
        let r = &mut topics[*ti].partitions[*pi];
        match state {
            Ok(Some(low)) => r.low_watermark = low,
            Ok(None) => r.error_code = ResponseError::RequestTimedOut.code(),
            Err(e) => r.error_code = e.code(),
        }
    }
    respond(request, &DeleteRecordsResponse::default().with_topics(topics))
}

/// Moves the leader's log start; the partition and the offset to wait for.
async fn delete_before(
    shard: &Shard,
    image: &crate::metadata::MetadataImage,
    topic: &str,
    index: i32,
    offset: i64,
) -> Result<(crate::ids::PartitionId, i64), ResponseError> {
    let log = led_log(shard, image, topic, index, -1)?;
    let id = shard.partitions.id(topic, index).ok_or(ResponseError::NotLeaderOrFollower)?;
    if !log.config().cleanup_delete {
        return Err(ResponseError::PolicyViolation);
    }
    let offset = if offset == HIGH_WATERMARK { log.high_watermark() } else { offset };
    if offset < 0 || offset > log.high_watermark() {
        return Err(ResponseError::OffsetOutOfRange);
    }
    log.advance_log_start(offset).await.map_err(|e| {
        ResponseError::try_from_code(log_error_code(&e)).unwrap_or(ResponseError::KafkaStorageError)
    })?;
    Ok((id, offset))
}
