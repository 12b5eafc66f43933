//! CreatePartitions v0-v3: grows topics through the controller; new
//! partitions continue the topic's round robin over brokers, or go where
//! the request assigns them.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use net::codec::Request;
use net::kafka_protocol;

use super::{respond, HandlerResult, Outcomes};
use crate::controller::{Command, PartitionsSpec};
use crate::shard::Shard;

pub async fn handle(shard: &Shard, request: &Request) -> HandlerResult {
    let req: CreatePartitionsRequest = request.decode_body()?;
    let asked: Vec<PartitionsSpec> = req
        .topics
        .iter()
        .map(|t| PartitionsSpec {
            name: t.name.0.to_string(),
            count: t.count,
            assignments: t.assignments.as_ref().map(|lists| {
                lists.iter().map(|a| a.broker_ids.iter().map(|b| b.0).collect()).collect()
            }),
        })
        .collect();
    let command = Command::CreatePartitions { topics: asked, validate_only: req.validate_only };
    let mut outcomes = Outcomes::of_changes(shard.controller.ask(command).await);
    let results = req
        .topics
        .iter()
        .map(|t| {
            let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            if let Err(refused) = outcomes.next_outcome() {
                r.error_code = refused.code();
                r.error_message = Some(StrBytes::from_string(refused.message));
            }
            r
        })
        .collect();
    respond(request, &CreatePartitionsResponse::default().with_results(results))
}
