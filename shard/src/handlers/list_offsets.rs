//! ListOffsets v1-v7: earliest (-2), latest (-1, the high watermark), max
//! timestamp (-3, v7: the record with the largest timestamp), or the first
//! record at or after a timestamp. Answers are per record, inside
//! compressed batches too, as Kafka's. Under `isolation_level=1`
//! (read_committed, v2+) what a consumer can read ends at the last stable
//! offset instead of the high watermark.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use net::codec::Request;
use net::errors::log_error_code;
use net::kafka_protocol;

use super::{led_log, respond, HandlerResult};
use crate::context::ConnContext;
use crate::shard::Shard;
use auth::acl::{Operation, ResourceType};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub async fn handle(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: ListOffsetsRequest = request.decode_body()?;
    let image = shard.metadata.image();
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let name = t.name.0.as_str();
        let described =
            context.may(&shard.config, &image, Operation::Describe, ResourceType::Topic, name);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let mut r = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1)
                .with_leader_epoch(-1);
            // v4+ name the leader epoch the client knows; v0-v3 none.
            let current = if request.version >= 4 { p.current_leader_epoch } else { -1 };
            let log = match described {
                true => led_log(shard, &image, name, p.partition_index, current),
                false => Err(ResponseError::TopicAuthorizationFailed),
            };
            match log {
                Err(e) => r.error_code = e.code(),
                Ok(log) => {
                    let visible = match req.isolation_level {
                        1 => log.last_stable_offset(),
                        _ => log.high_watermark(),
                    };
                    match p.timestamp {
                        EARLIEST => r.offset = log.log_start_offset(),
                        LATEST => r.offset = visible,
                        // The record with the largest timestamp, when
                        // consumers can read it (below the high watermark
                        // or the last stable offset; otherwise no answer,
                        // as Kafka).
                        MAX_TIMESTAMP if request.version >= 7 => {
                            match log.offset_of_max_timestamp().await {
                                Ok(Some((ts, offset))) if offset < visible => {
                                    r.timestamp = ts;
                                    r.offset = offset;
                                }
                                Ok(_) => {}
                                Err(e) => r.error_code = log_error_code(&e),
                            }
                        }
                        ts if ts >= 0 => match log.offset_for_timestamp(ts).await {
                            // Only what consumers can read, as Kafka.
                            Ok(Some((offset, found))) if offset < visible => {
                                r.offset = offset;
                                r.timestamp = found;
                            }
                            Ok(_) => {}
                            Err(e) => r.error_code = log_error_code(&e),
                        },
                        _ => r.error_code = ResponseError::InvalidRequest.code(),
                    }
                    // v4+: the log's latest epoch for LATEST, as Kafka;
                    // otherwise the epoch of the batch holding the offset.
                    if request.version >= 4 && r.offset >= 0 {
                        let epoch = match p.timestamp {
                            LATEST => log.latest_epoch().map(|e| e.epoch),
                            _ => log.epoch_of(r.offset),
                        };
                        r.leader_epoch = epoch.unwrap_or(-1);
                    }
                }
            }
            partitions.push(r);
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    respond(request, &ListOffsetsResponse::default().with_topics(topics))
}
