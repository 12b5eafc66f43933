//! DescribeConfigs v1-v4 for topics: every topic config Corelog applies, with
//! Kafka's names and defaults, and where each value comes from.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use net::codec::Request;
use net::kafka_protocol;

use super::{respond, HandlerResult};
use crate::configs::{config_type, documentation, effective, is_fixed, listed_topic_configs};
use crate::shard::Shard;

/// Kafka's resource type of a topic.
const TOPIC: i8 = 2;

pub async fn handle(shard: &Shard, request: &Request) -> HandlerResult {
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
            if r.resource_type != TOPIC {
                result.error_code = ResponseError::InvalidRequest.code();
                result.error_message =
                    Some(StrBytes::from_static_str("only topic configs can be described"));
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
