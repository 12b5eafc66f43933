//! CreatePartitions v0-v3: grows topics through the controller; new
//! partitions continue the topic's round robin over shards.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use net::codec::Request;
use net::kafka_protocol;

use super::{respond, HandlerResult};
use crate::controller::ControllerMsg;
use crate::shard::Shard;

pub async fn handle(shard: &Shard, request: &Request) -> HandlerResult {
    let req: CreatePartitionsRequest = request.decode_body()?;
    // Manual assignments are refused per topic; the rest go to the controller.
    let asked: Vec<(String, i32)> = req
        .topics
        .iter()
        .filter(|t| t.assignments.is_none())
        .map(|t| (t.name.0.to_string(), t.count))
        .collect();
    let (reply, answer) = flume::bounded(1);
    let msg =
        ControllerMsg::CreatePartitions { topics: asked, validate_only: req.validate_only, reply };
    let outcomes = match shard.controller.send_async(msg).await {
        Ok(()) => answer.recv_async().await.ok(),
        Err(_) => None,
    };
    let mut outcomes = outcomes.map(|o| o.into_iter());
    let results = req
        .topics
        .iter()
        .map(|t| {
            let outcome = if t.assignments.is_some() {
                Err((
                    ResponseError::InvalidRequest.code(),
                    "manual replica assignment is not supported".to_string(),
                ))
            } else {
                match outcomes.as_mut() {
                    Some(o) => o.next().unwrap_or(Ok(())),
                    None => {
                        Err((ResponseError::NotController.code(), "controller unavailable".into()))
                    }
                }
            };
            let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            if let Err((code, message)) = outcome {
                r.error_code = code;
                r.error_message = Some(StrBytes::from_string(message));
            }
            r
        })
        .collect();
    respond(request, &CreatePartitionsResponse::default().with_results(results))
}
