//! Fetch v4-v16 (topics by id from v13): whole batches from each partition's log on this shard, at
//! most `partition_max_bytes` per partition and `max_bytes` in all (but at
//! least one batch, KIP-74), up to the high watermark (the acknowledged end).
//! Below `min_bytes` the request waits, up to `max_wait_ms`, for any of its
//! partitions to grow. No fetch sessions: `session_id` is always 0, so
//! clients send full fetches.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::future::select_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use net::codec::Request;
use net::errors::log_error_code;
use net::kafka_protocol;

use super::{respond, HandlerResult};
use crate::shard::Shard;

/// Longest wait a fetch may ask for; Kafka clients use 500 ms by default.
pub const FETCH_WAIT_MAX: Duration = Duration::from_secs(30);

pub async fn handle(shard: &Shard, request: &Request) -> HandlerResult {
    let req: FetchRequest = request.decode_body()?;
    let deadline =
        Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64).min(FETCH_WAIT_MAX);
    let max_bytes = if req.max_bytes > 0 { req.max_bytes as usize } else { usize::MAX };
    loop {
        let (response, total) = read_all(shard, &req, request.version, max_bytes).await;
        let now = Instant::now();
        if total >= req.min_bytes.max(1) as usize || now >= deadline || shard.stopping.get() {
            return respond(request, &response);
        }
        // Wait for any partition to grow past its fetch offset, or the deadline.
        let mut waits: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>> = Vec::new();
        let image = shard.image.borrow().clone();
        for t in &req.topics {
            let Some(name) = topic_name(&image, t, request.version) else { continue };
            for p in &t.partitions {
                if let Some(log) = shard.log(&name, p.partition) {
                    let offset = p.fetch_offset;
                    waits.push(Box::pin(async move { log.wait_acked_past(offset).await }));
                }
            }
        }
        waits.push(Box::pin(glommio::timer::sleep(deadline - now)));
        select_all(waits).await;
    }
}

async fn read_all(
    shard: &Shard,
    req: &FetchRequest,
    version: i16,
    max_bytes: usize,
) -> (FetchResponse, usize) {
    let image = shard.image.borrow().clone();
    let mut total = 0usize;
    let mut responses = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let name = topic_name(&image, t, version);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let mut data = PartitionData::default()
                .with_partition_index(p.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(BrokerId(-1))
                .with_records(Some(Bytes::new()));
            let log = match name.as_deref().map(|n| (n, image.leader(n, p.partition))) {
                None => Err(ResponseError::UnknownTopicId.code()),
                Some((_, None)) => Err(ResponseError::UnknownTopicOrPartition.code()),
                Some((_, Some(s))) if s != shard.id => {
                    Err(ResponseError::NotLeaderOrFollower.code())
                }
                Some((n, Some(_))) => {
                    shard.log(n, p.partition).ok_or(ResponseError::NotLeaderOrFollower.code())
                }
            };
            match log {
                Err(code) => data.error_code = code,
                Ok(log) => {
                    let high_watermark = log.acked_end_offset();
                    data.high_watermark = high_watermark;
                    data.last_stable_offset = high_watermark;
                    if version >= 5 {
                        data.log_start_offset = log.log_start_offset();
                    }
                    data.aborted_transactions = Some(Vec::new());
                    let room = max_bytes.saturating_sub(total);
                    let limit = (p.partition_max_bytes.max(0) as usize).min(room);
                    // Past the response's max_bytes only the first partition
                    // with data may still return one batch (KIP-74).
                    if limit > 0 || total == 0 {
                        match read_partition(&log, p.fetch_offset, limit.max(1), high_watermark)
                            .await
                        {
                            Ok(bytes) => {
                                total += bytes.len();
                                data.records = Some(bytes);
                            }
                            Err(code) => data.error_code = code,
                        }
                    }
                }
            }
            partitions.push(data);
        }
        // From v13 topics are named by id only (the codec refuses the name).
        let mut topic = FetchableTopicResponse::default().with_partitions(partitions);
        if version >= 13 {
            topic.topic_id = t.topic_id;
        } else {
            topic.topic = t.topic.clone();
        }
        responses.push(topic);
    }
    (FetchResponse::default().with_responses(responses), total)
}

/// The name of a requested topic: by name before v13, by id from v13.
/// `None` for an id that names no topic (`UNKNOWN_TOPIC_ID`).
fn topic_name(
    image: &crate::metadata::MetadataImage,
    t: &kafka_protocol::messages::fetch_request::FetchTopic,
    version: i16,
) -> Option<String> {
    if version >= 13 {
        image.topic_by_id(t.topic_id.as_bytes()).map(|m| m.name.clone())
    } else {
        Some(t.topic.0.to_string())
    }
}

async fn read_partition(
    log: &engine::PartitionLog<engine::disk::DmaDisk>,
    offset: i64,
    max_bytes: usize,
    high_watermark: i64,
) -> Result<Bytes, i16> {
    let read = log.read(offset, max_bytes, high_watermark).await.map_err(|e| log_error_code(&e))?;
    if read.chunks.len() == 1 {
        return log.read_bytes(&read.chunks[0]).await.map_err(|e| log_error_code(&e));
    }
    let mut out = BytesMut::with_capacity(read.bytes);
    for chunk in &read.chunks {
        out.extend_from_slice(&log.read_bytes(chunk).await.map_err(|e| log_error_code(&e))?);
    }
    Ok(out.freeze())
}
