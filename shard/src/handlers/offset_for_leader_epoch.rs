//! OffsetForLeaderEpoch v2-v4 (KIP-101, KIP-320): for each partition, the
//! largest leader epoch at most the one asked for that its log holds, and
//! the offset where the next epoch starts (the log end for the latest).
//! Consumers check with it that their position survived a leader change
//! (librdkafka does after every one); replicas find where they diverged.
//! Answered by the partition's leader from its log's epoch cache.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use net::codec::Request;
use net::kafka_protocol;

use super::{led_log, respond, HandlerResult};
use crate::context::ConnContext;
use crate::shard::Shard;
use auth::acl::{Operation, ResourceType};
use kafka_protocol::error::ResponseError;

/// CLUSTER_ACTION on the cluster (followers) or DESCRIBE on each topic,
/// whatever `replica_id` says: Kafka's check; TOPIC_AUTHORIZATION_FAILED
/// for a partition of a topic neither allows.
pub fn handle(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: OffsetForLeaderEpochRequest = request.decode_body()?;
    let image = shard.metadata.image();
    let config = &shard.config;
    let cluster_ok = context.may_on_cluster(config, &image, Operation::ClusterAction);
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut out = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let op = Operation::Describe;
                    let denied = !cluster_ok
                        && !context.may(config, &image, op, ResourceType::Topic, &t.topic);
                    let log = match denied {
                        true => Err(ResponseError::TopicAuthorizationFailed),
                        false => {
                            led_log(shard, &image, &t.topic, p.partition, p.current_leader_epoch)
                        }
                    };
                    match log {
                        Ok(log) => {
                            (out.leader_epoch, out.end_offset) =
                                log.end_offset_for_epoch(p.leader_epoch);
                        }
                        Err(e) => out.error_code = e.code(),
                    }
                    out
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    respond(request, &OffsetForLeaderEpochResponse::default().with_topics(topics))
}
