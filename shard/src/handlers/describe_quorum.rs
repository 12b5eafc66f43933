//! DescribeQuorum v0-v1: the metadata quorum as its leader sees it, for
//! `__cluster_metadata` partition 0 (what `kafka-metadata-quorum.sh
//! describe --status` and `corelog cluster describe` show). Voters are
//! named by node id, as KRaft names controllers; a single node is its own
//! quorum's only voter. Asked of any broker, answered by the active
//! controller through this node's.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use net::codec::Request;
use net::kafka_protocol;

use super::{respond, HandlerResult};
use crate::context::ConnContext;
use crate::controller::{QuorumState, METADATA_TOPIC};
use crate::shard::Shard;
use auth::acl::Operation;

pub async fn handle(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: DescribeQuorumRequest = request.decode_body()?;
    let image = shard.metadata.image();
    if !context.may_on_cluster(&shard.config, &image, Operation::Describe) {
        let code = ResponseError::ClusterAuthorizationFailed.code();
        return respond(request, &DescribeQuorumResponse::default().with_error_code(code));
    }
    let wanted = |t: &str, p: i32| t == METADATA_TOPIC && p == 0;
    let asks_quorum = req
        .topics
        .iter()
        .any(|t| t.partitions.iter().any(|p| wanted(&t.topic_name.0, p.partition_index)));
    let state = match asks_quorum {
        true => Some(shard.controller.describe_quorum().await),
        false => None,
    };
    let mut response = DescribeQuorumResponse::default();
    if let Some(Err(e)) = &state {
        log::warn!("shard {}: DescribeQuorum: {e}", shard.id);
        response.error_code = e.refusal().code();
        return respond(request, &response);
    }
    response.topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut out = PartitionData::default().with_partition_index(p.partition_index);
                    match (&state, wanted(&t.topic_name.0, p.partition_index)) {
                        (Some(Ok(q)), true) => fill(&mut out, q),
                        _ => out.error_code = ResponseError::UnknownTopicOrPartition.code(),
                    }
                    out
                })
                .collect();
            TopicData::default().with_topic_name(t.topic_name.clone()).with_partitions(partitions)
        })
        .collect();
    respond(request, &response)
}

fn fill(out: &mut PartitionData, q: &QuorumState) {
    out.leader_id = BrokerId(q.leader.0);
    out.leader_epoch = i32::try_from(q.epoch).unwrap_or(i32::MAX);
    out.high_watermark = q.high_watermark as i64;
    out.current_voters = q
        .voters
        .iter()
        .map(|(node, end)| {
            ReplicaState::default()
                .with_replica_id(BrokerId(node.0))
                .with_log_end_offset(*end as i64)
                .with_last_fetch_timestamp(-1)
                .with_last_caught_up_timestamp(-1)
        })
        .collect();
}
