//! DescribeCluster v0-v1: the same brokers as Metadata (one per shard of
//! every live node, at the listener the request came in on), and the
//! cluster's authorized operations when asked.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;
use net::codec::Request;
use net::kafka_protocol;

use super::{respond, HandlerResult};
use crate::context::ConnContext;
use crate::shard::Shard;

pub fn handle(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: DescribeClusterRequest = request.decode_body()?;
    let image = shard.metadata.image();
    let brokers = image
        .live_brokers()
        .filter_map(|(b, n)| Some((b, n, n.endpoint_on(b, context.protocol)?)))
        .map(|(b, n, (host, port))| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.0))
                .with_host(StrBytes::from_string(host.to_string()))
                .with_port(i32::from(port))
                .with_rack(Some(StrBytes::from_string(n.rack.clone())))
        })
        .collect();
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(image.cluster_id.clone()))
        .with_controller_id(BrokerId(shard.metadata.controller_broker()))
        .with_brokers(brokers);
    if req.include_cluster_authorized_operations {
        response.cluster_authorized_operations = context.authorized_operations(
            &shard.config,
            &image,
            auth::acl::ResourceType::Cluster,
            auth::acl::CLUSTER_NAME,
        );
    }
    respond(request, &response)
}
