//! DescribeCluster v0-v1: the same brokers as Metadata (one per shard).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;
use net::codec::Request;
use net::kafka_protocol;

use super::{respond, HandlerResult};
use crate::shard::Shard;

pub fn handle(shard: &Shard, request: &Request) -> HandlerResult {
    let _: DescribeClusterRequest = request.decode_body()?;
    let config = &shard.config;
    let brokers = (0..config.shards)
        .map(|s| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(config.broker_id(s)))
                .with_host(StrBytes::from_string(config.advertised_host().to_string()))
                .with_port(config.advertised_port_of(s) as i32)
                .with_rack(Some(StrBytes::from_string(config.rack())))
        })
        .collect();
    let response = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(shard.image.borrow().cluster_id.clone()))
        .with_controller_id(BrokerId(config.broker_id(0)))
        .with_brokers(brokers);
    respond(request, &response)
}
