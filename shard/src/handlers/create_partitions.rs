//! CreatePartitions v0-v3: grows topics through the controller; new
//! partitions continue the topic's round robin over brokers, or go where
//! the request assigns them.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use net::codec::Request;
use net::kafka_protocol;

use super::{respond, HandlerResult, Outcomes};
use crate::context::ConnContext;
use crate::controller::{Command, PartitionsSpec};
use crate::error::Refusal;
use crate::shard::Shard;
use auth::acl::{Operation, ResourceType};
use kafka_protocol::error::ResponseError;

pub async fn handle(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: CreatePartitionsRequest = request.decode_body()?;
    let image = shard.metadata.image();
    let alterable: Vec<bool> = req
        .topics
        .iter()
        .map(|t| context.may(&shard.config, &image, Operation::Alter, ResourceType::Topic, &t.name))
        .collect();
    let asked: Vec<PartitionsSpec> = req
        .topics
        .iter()
        .zip(&alterable)
        .filter(|(_, &ok)| ok)
        .map(|(t, _)| PartitionsSpec {
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
        .zip(alterable)
        .map(|(t, ok)| {
            let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let outcome = match ok {
                true => outcomes.next_outcome(),
                false => Err(Refusal::new(
                    ResponseError::TopicAuthorizationFailed,
                    "Authorization failed.",
                )),
            };
            if let Err(refused) = outcome {
                r.error_code = refused.code();
                r.error_message = Some(StrBytes::from_string(refused.message));
            }
            r
        })
        .collect();
    respond(request, &CreatePartitionsResponse::default().with_results(results))
}
