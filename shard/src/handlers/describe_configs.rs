//! DescribeConfigs v1-v4: a topic's configs (every name Kafka lists, with
//! Corelog's value and where it comes from: [`crate::configs`]), and a
//! broker's (this shard's, asked by its id or by the empty name:
//! [`crate::broker_configs`]).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use net::codec::Request;
use net::kafka_protocol;

use super::{respond, HandlerResult};
use crate::broker_configs::broker_configs;
use crate::configs::{config_type, documentation, effective, is_fixed, listed_topic_configs};
use crate::context::ConnContext;
use crate::shard::Shard;
use auth::acl::{Operation, ResourceType};

/// Kafka's resource types of a topic and of a broker.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;

pub async fn handle(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: DescribeConfigsRequest = request.decode_body()?;
    let version = request.version;
    let image = shard.metadata.image();
    let results = req
        .resources
        .iter()
        .map(|r| {
            let mut result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let config = &shard.config;
            let op = Operation::DescribeConfigs;
            if r.resource_type == BROKER {
                if !context.may_on_cluster(config, &image, op) {
                    result.error_code = ResponseError::ClusterAuthorizationFailed.code();
                    result.error_message = Some(StrBytes::from_static_str("Authorization failed."));
                    return result;
                }
                return describe_broker(shard, r, version, result);
            }
            if r.resource_type == TOPIC
                && !context.may(config, &image, op, ResourceType::Topic, &r.resource_name)
            {
                result.error_code = ResponseError::TopicAuthorizationFailed.code();
                result.error_message = Some(StrBytes::from_static_str("Authorization failed."));
                return result;
            }
            if r.resource_type != TOPIC {
                result.error_code = ResponseError::InvalidRequest.code();
                result.error_message = Some(StrBytes::from_static_str(
                    "only topic and broker configs can be described",
                ));
                return result;
            }
            let Some(topic) = image.topics.get(r.resource_name.as_str()) else {
                result.error_code = ResponseError::UnknownTopicOrPartition.code();
                result.error_message = Some(StrBytes::from_string(format!(
                    "topic '{}' does not exist",
                    &*r.resource_name
                )));
                return result;
            };
            result.configs = listed_topic_configs()
                .into_iter()
                .filter(|name| {
                    r.configuration_keys
                        .as_ref()
                        .is_none_or(|keys| keys.iter().any(|k| k.as_str() == *name))
                })
                .map(|name| {
                    let (value, source) = effective(name, &topic.configs, &shard.config);
                    let mut c = DescribeConfigsResourceResult::default()
                        .with_name(StrBytes::from_static_str(name))
                        .with_value(Some(StrBytes::from_string(value)))
                        .with_config_source(source)
                        .with_read_only(is_fixed(name));
                    if version >= 3 {
                        c.config_type = config_type(name);
                        if req.include_documentation {
                            c.documentation = Some(StrBytes::from_static_str(documentation(name)));
                        }
                    }
                    c
                })
                .collect();
            result
        })
        .collect();
    respond(request, &DescribeConfigsResponse::default().with_results(results))
}

/// A BROKER resource: this shard's configs, read-only. Kafka answers only
/// for the broker asked (by its id; the empty name is its dynamic
/// defaults, of which Corelog has none beyond what it describes).
fn describe_broker(
    shard: &Shard,
    r: &DescribeConfigsResource,
    version: i16,
    mut result: DescribeConfigsResult,
) -> DescribeConfigsResult {
    let me = shard.broker();
    let name = r.resource_name.as_str();
    if !name.is_empty() && name != me.0.to_string() {
        result.error_code = ResponseError::InvalidRequest.code();
        result.error_message = Some(StrBytes::from_string(format!(
            "unexpected broker id {name}: this is broker {}",
            me.0
        )));
        return result;
    }
    result.configs = broker_configs(&shard.config, me.shard())
        .into_iter()
        .filter(|c| {
            r.configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == c.name))
        })
        .map(|c| {
            let mut out = DescribeConfigsResourceResult::default()
                .with_name(StrBytes::from_static_str(c.name))
                .with_value(c.value.map(StrBytes::from_string))
                .with_config_source(c.source)
                .with_read_only(true);
            if version >= 3 {
                out.config_type = c.config_type;
            }
            out
        })
        .collect();
    result
}
