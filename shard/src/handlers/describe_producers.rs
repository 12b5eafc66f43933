//! DescribeProducers v0 (KIP-664, `kafka-transactions.sh
//! describe-producers`): the producers a replica of each partition
//! remembers, with their epoch, last sequence, last batch timestamp, the
//! coordinator epoch of their last marker and the first offset of their
//! open transaction (-1: none). Any replica answers (the admin client may
//! pick one by broker id), as in Kafka.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use net::codec::Request;
use net::kafka_protocol;

use super::{held_log, respond, HandlerResult};
use crate::context::ConnContext;
use crate::shard::Shard;
use auth::acl::{Operation, ResourceType};
use kafka_protocol::error::ResponseError;

pub fn handle(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: DescribeProducersRequest = request.decode_body()?;
    let image = shard.metadata.image();
    let readable = |topic: &str| {
        context.may(&shard.config, &image, Operation::Read, ResourceType::Topic, topic)
    };
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    let mut r = PartitionResponse::default().with_partition_index(index);
                    let log = match readable(&t.name) {
                        true => held_log(shard, &image, &t.name, index, -1, true),
                        false => Err(ResponseError::TopicAuthorizationFailed),
                    };
                    match log {
                        Err(e) => r.error_code = e.code(),
                        Ok(log) => {
                            r.active_producers = log
                                .active_producers()
                                .into_iter()
                                .map(|p| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(p.producer_id))
                                        .with_producer_epoch(p.epoch.into())
                                        .with_last_sequence(p.last_sequence)
                                        .with_last_timestamp(p.last_timestamp)
                                        .with_coordinator_epoch(p.coordinator_epoch)
                                        .with_current_txn_start_offset(p.txn_start_offset)
                                })
                                .collect()
                        }
                    }
                    r
                })
                .collect();
            TopicResponse::default().with_name(t.name.clone()).with_partitions(partitions)
        })
        .collect();
    respond(request, &DescribeProducersResponse::default().with_topics(topics))
}
