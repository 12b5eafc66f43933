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
use crate::shard::Shard;

pub fn handle(shard: &Shard, request: &Request) -> HandlerResult {
    let req: OffsetForLeaderEpochRequest = request.decode_body()?;
    let image = shard.metadata.image();
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
                    match led_log(shard, &image, &t.topic, p.partition, p.current_leader_epoch) {
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
