//! DeleteTopics v1-v6: through the controller; every shard closes the
//! deleted partitions it leads and removes their data before the answer.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use net::codec::Request;
use net::kafka_protocol;

use super::{respond, HandlerResult, Outcomes};
use crate::context::ConnContext;
use crate::controller::Command;
use crate::error::Refusal;
use crate::shard::Shard;
use auth::acl::{Operation, ResourceType};

pub async fn handle(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: DeleteTopicsRequest = request.decode_body()?;
    let version = request.version;
    // v6 names topics by name or id; earlier versions by name only.
    let image = shard.metadata.image();
    let wanted: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        req.topics
            .iter()
            .map(|t| match &t.name {
                Some(n) => (Some(n.0.to_string()), t.topic_id),
                None => {
                    (image.topic_by_id(t.topic_id.as_bytes()).map(|m| m.name.clone()), t.topic_id)
                }
            })
            .collect()
    } else {
        req.topic_names.iter().map(|n| (Some(n.0.to_string()), uuid::Uuid::nil())).collect()
    };
    let deletable = |name: &str| {
        context.may(&shard.config, &image, Operation::Delete, ResourceType::Topic, name)
    };
    let names: Vec<String> =
        wanted.iter().filter_map(|(n, _)| n.clone()).filter(|n| deletable(n)).collect();
    let mut outcomes =
        Outcomes::of_changes(shard.controller.ask(Command::DeleteTopics { names }).await);
    let responses = wanted
        .into_iter()
        .map(|(name, id)| {
            let mut r = DeletableTopicResult::default()
                .with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))));
            if version >= 6 {
                r.topic_id = name
                    .as_deref()
                    .and_then(|n| image.topics.get(n))
                    .map(|t| uuid::Uuid::from_bytes(t.id))
                    .unwrap_or(id);
            }
            let outcome = match &name {
                None => Err(Refusal::new(
                    ResponseError::UnknownTopicId,
                    format!("no topic with id {id}"),
                )),
                Some(n) if !deletable(n) => {
                    // Nothing the client did not give, unless it may
                    // describe the topic (Kafka's answer).
                    let op = Operation::Describe;
                    if !context.may(&shard.config, &image, op, ResourceType::Topic, n) {
                        if id.is_nil() {
                            r.topic_id = uuid::Uuid::nil();
                        } else {
                            r.name = None;
                        }
                    }
                    Err(Refusal::new(
                        ResponseError::TopicAuthorizationFailed,
                        "Authorization failed.",
                    ))
                }
                Some(_) => outcomes.next_outcome(),
            };
            if let Err(refused) = outcome {
                r.error_code = refused.code();
                if version >= 5 {
                    r.error_message = Some(StrBytes::from_string(refused.message));
                }
            }
            r
        })
        .collect();
    respond(request, &DeleteTopicsResponse::default().with_responses(responses))
}
