//! IncrementalAlterConfigs v0-v1 for topics (what `kafka-configs.sh
//! --alter` and `corelog topic alter-config` send): SET, DELETE, APPEND and
//! SUBTRACT on the topic configs Corelog applies; and the legacy
//! AlterConfigs v0-v2 (Sarama's `ClusterAdmin.AlterConfig`, kafka-python's
//! `alter_configs`), whose entries replace every config the topic sets.
//! The controller validates the resulting configs, writes the topic's new
//! state to the metadata log and every shard applies it to the open logs
//! before the answer. Broker configs are the node's flags: read-only.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use net::codec::Request;
use net::kafka_protocol;

use super::{respond, HandlerResult, Outcomes};
use crate::configs::listed_topic_configs;
use crate::context::ConnContext;
use crate::controller::{Command, ConfigChange, ConfigOp};
use crate::error::Refusal;
use crate::shard::Shard;
use auth::acl::{Operation, ResourceType};

/// Kafka's resource types of a topic and of a broker.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// One resource's changes for the controller, or its error code and message.
type Parsed = Result<(String, Vec<ConfigChange>), Refusal>;

pub async fn handle(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: IncrementalAlterConfigsRequest = request.decode_body()?;
    // Per resource: the changes for the controller, or the error at once.
    let parsed: Vec<Parsed> = req.resources.iter().map(parse_resource).collect();
    let outcomes = decide(shard, context, parsed, req.validate_only).await;
    let responses = req
        .resources
        .iter()
        .zip(outcomes)
        .map(|(r, outcome)| {
            let (code, message) = error_fields(outcome);
            AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    respond(request, &IncrementalAlterConfigsResponse::default().with_responses(responses))
}

/// The legacy AlterConfigs: each topic's entries become its whole set of
/// configs. Sent to the controller as a DELETE of every other config
/// Corelog lists, then a SET of each entry, in one command: the topic's
/// configs end up exactly the entries whatever it set before.
pub async fn handle_legacy(
    shard: &Shard,
    request: &Request,
    context: &ConnContext,
) -> HandlerResult {
    use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse as Out;
    use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
    let req: AlterConfigsRequest = request.decode_body()?;
    let parsed: Vec<Parsed> = req
        .resources
        .iter()
        .map(|r| {
            topic_only(r.resource_type)?;
            let set: Vec<(String, Option<String>)> = r
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect();
            if let Some((name, _)) = set.iter().find(|(_, v)| v.is_none()) {
                return Err(Refusal::new(
                    ResponseError::InvalidConfig,
                    format!("{name} needs a value"),
                ));
            }
            let deletes: Vec<ConfigChange> = listed_topic_configs()
                .into_iter()
                .filter(|n| !set.iter().any(|(s, _)| s == n))
                .map(|n| ConfigChange { name: n.to_string(), op: ConfigOp::Delete, value: None })
                .collect();
            let sets = set.into_iter().map(|(name, value)| ConfigChange {
                name,
                op: ConfigOp::Set,
                value,
            });
            Ok((r.resource_name.to_string(), deletes.into_iter().chain(sets).collect()))
        })
        .collect();
    let outcomes = decide(shard, context, parsed, req.validate_only).await;
    let responses = req
        .resources
        .iter()
        .zip(outcomes)
        .map(|(r, outcome)| {
            let (code, message) = error_fields(outcome);
            Out::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    respond(request, &AlterConfigsResponse::default().with_responses(responses))
}

/// Asks the controller for the parsed resources' changes, in one command;
/// one outcome per resource, in order. A topic the client may not
/// ALTER_CONFIGS is TOPIC_AUTHORIZATION_FAILED and not asked.
async fn decide(
    shard: &Shard,
    context: &ConnContext,
    parsed: Vec<Parsed>,
    validate_only: bool,
) -> Vec<Result<(), Refusal>> {
    let image = shard.metadata.image();
    let parsed: Vec<Parsed> = parsed
        .into_iter()
        .map(|p| {
            p.and_then(|(topic, changes)| {
                let op = Operation::AlterConfigs;
                if context.may(&shard.config, &image, op, ResourceType::Topic, &topic) {
                    Ok((topic, changes))
                } else {
                    Err(Refusal::new(
                        ResponseError::TopicAuthorizationFailed,
                        "Authorization failed.",
                    ))
                }
            })
        })
        .collect();
    let asked: Vec<(String, Vec<ConfigChange>)> =
        parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
    let mut outcomes = if asked.is_empty() {
        Outcomes::none()
    } else {
        let command = Command::AlterConfigs { topics: asked, validate_only };
        Outcomes::of_changes(shard.controller.ask(command).await)
    };
    parsed.into_iter().map(|p| p.and_then(|_| outcomes.next_outcome())).collect()
}

/// A resource's `error_code` and `error_message`.
fn error_fields(outcome: Result<(), Refusal>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err(refused) => (refused.code(), Some(StrBytes::from_string(refused.message))),
    }
}

/// Only topics' configs change; a broker's are its node's flags.
fn topic_only(resource_type: i8) -> Result<(), Refusal> {
    match resource_type {
        TOPIC => Ok(()),
        BROKER => Err(Refusal::new(
            ResponseError::InvalidRequest,
            "broker configs are the node's flags and read-only: restart the node with others",
        )),
        other => Err(Refusal::new(
            ResponseError::InvalidRequest,
            format!("only topic configs can be altered (resource type {other} is not a topic)"),
        )),
    }
}

fn parse_resource(
    r: &kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource,
) -> Parsed {
    topic_only(r.resource_type)?;
    let mut changes = Vec::with_capacity(r.configs.len());
    for c in &r.configs {
        let op = match c.config_operation {
            0 => ConfigOp::Set,
            1 => ConfigOp::Delete,
            2 => ConfigOp::Append,
            3 => ConfigOp::Subtract,
            other => {
                return Err(Refusal::new(
                    ResponseError::InvalidRequest,
                    format!("unknown config operation {other} for {}", &*c.name),
                ))
            }
        };
        let value = c.value.as_ref().map(|v| v.to_string());
        if value.is_none() && op != ConfigOp::Delete {
            return Err(Refusal::new(
                ResponseError::InvalidConfig,
                format!("{} needs a value", &*c.name),
            ));
        }
        changes.push(ConfigChange { name: c.name.to_string(), op, value });
    }
    Ok((r.resource_name.to_string(), changes))
}
