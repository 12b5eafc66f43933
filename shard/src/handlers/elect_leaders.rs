//! ElectLeaders v0-v2 (KIP-183, KIP-460): preferred or unclean leader
//! elections through the controller ([`crate::controller::machine::elect`]).
//! Without a list of partitions it asks for every partition this shard's
//! image knows and answers, as Kafka does, only for those where an
//! election was needed (elected, or why not). Answered once the records
//! are committed; the new leaders take over as the image reaches them.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use kafka_protocol::protocol::StrBytes;
use net::codec::Request;
use net::kafka_protocol;

use super::{respond, HandlerResult, Outcomes};
use crate::context::ConnContext;
use crate::controller::Command;
use crate::error::Refusal;
use crate::shard::Shard;
use auth::acl::Operation;

/// `election_type` values (v1+; v0 elects preferred leaders only).
const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

pub async fn handle(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: ElectLeadersRequest = request.decode_body()?;
    let mut response = ElectLeadersResponse::default();
    let unclean = match (request.version, req.election_type) {
        (0, _) | (_, PREFERRED) => false,
        (_, UNCLEAN) => true,
        (_, other) => {
            response.error_code = ResponseError::InvalidRequest.code();
            log::debug!("ElectLeaders: election type {other} is neither preferred nor unclean");
            return respond(request, &response);
        }
    };
    let everything = req.topic_partitions.is_none();
    let mut partitions: Vec<(String, i32)> = match &req.topic_partitions {
        Some(topics) => topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|&p| (t.topic.0.to_string(), p)))
            .collect(),
        None => {
            let image = shard.metadata.image();
            image
                .topics
                .values()
                .flat_map(|t| (0..t.partitions.len() as i32).map(|p| (t.name.clone(), p)))
                .collect()
        }
    };
    let image = shard.metadata.image();
    let outcomes: Vec<Result<(), Refusal>> =
        if context.may_on_cluster(&shard.config, &image, Operation::Alter) {
            let command = Command::ElectLeaders { unclean, partitions: partitions.clone() };
            let mut outcomes = Outcomes::of_changes(shard.controller.ask(command).await);
            partitions.iter().map(|_| outcomes.next_outcome()).collect()
        } else {
            // Kafka's answer: the request refused (v1+), each named
            // partition too; an election of everything names none (no
            // topic leaks to whom may not elect).
            let denied = ResponseError::ClusterAuthorizationFailed;
            if request.version >= 1 {
                response.error_code = denied.code();
            }
            if everything {
                partitions.clear();
            }
            let refusal = Refusal::new(denied, "Cluster authorization failed.");
            partitions.iter().map(|_| Err(refusal.clone())).collect()
        };
    let mut results: Vec<ReplicaElectionResult> = Vec::new();
    for ((topic, partition), outcome) in partitions.into_iter().zip(outcomes) {
        let mut r = PartitionResult::default().with_partition_id(partition);
        if let Err(refused) = outcome {
            if everything && refused.error == ResponseError::ElectionNotNeeded {
                continue;
            }
            r.error_code = refused.code();
            r.error_message = Some(StrBytes::from_string(refused.message));
        }
        match results.last_mut().filter(|t| t.topic.0.as_str() == topic) {
            Some(t) => t.partition_result.push(r),
            None => results.push(
                ReplicaElectionResult::default()
                    .with_topic(StrBytes::from_string(topic).into())
                    .with_partition_result(vec![r]),
            ),
        }
    }
    response.replica_election_results = results;
    respond(request, &response)
}
