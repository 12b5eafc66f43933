//! IncrementalAlterConfigs v0-v1 for topics (what `kafka-configs.sh
//! --alter` and `corelog topic alter-config` send): SET, DELETE, APPEND and
//! SUBTRACT on the topic configs Corelog applies. The controller validates
//! the resulting configs, writes the topic's new state to the metadata log
//! and every shard applies it to the open logs before the answer.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use net::codec::Request;
use net::kafka_protocol;

use super::{respond, HandlerResult, Outcomes};
use crate::controller::{Command, ConfigChange, ConfigOp};
use crate::error::Refusal;
use crate::shard::Shard;

/// Kafka's resource type of a topic.
const TOPIC: i8 = 2;

/// One resource's changes for the controller, or its error code and message.
type Parsed = Result<(String, Vec<ConfigChange>), Refusal>;

pub async fn handle(shard: &Shard, request: &Request) -> HandlerResult {
    let req: IncrementalAlterConfigsRequest = request.decode_body()?;
    // Per resource: the changes for the controller, or the error at once.
    let parsed: Vec<Parsed> = req.resources.iter().map(parse_resource).collect();
    let asked: Vec<(String, Vec<ConfigChange>)> =
        parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
    let mut outcomes = if asked.is_empty() {
        Outcomes::none()
    } else {
        let command = Command::AlterConfigs { topics: asked, validate_only: req.validate_only };
        Outcomes::of_changes(shard.controller.ask(command).await)
    };
    let responses = req
        .resources
        .iter()
        .zip(parsed)
        .map(|(r, p)| {
            let outcome = p.and_then(|_| outcomes.next_outcome());
            let mut response = AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            if let Err(refused) = outcome {
                response.error_code = refused.code();
                response.error_message = Some(StrBytes::from_string(refused.message));
            }
            response
        })
        .collect();
    respond(request, &IncrementalAlterConfigsResponse::default().with_responses(responses))
}

fn parse_resource(
    r: &kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource,
) -> Parsed {
    if r.resource_type != TOPIC {
        return Err(Refusal::new(
            ResponseError::InvalidRequest,
            format!(
                "only topic configs can be altered (resource type {} is not a topic)",
                r.resource_type
            ),
        ));
    }
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
