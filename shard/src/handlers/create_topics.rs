//! CreateTopics v2-v7, through the controller on shard 0. Names, partition
//! counts, replication factor (1 on a single node) and configs are checked
//! there; with `validate_only` nothing is created.

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use net::codec::Request;
use net::kafka_protocol;

use super::metadata::ask_controller;
use super::{may_create, respond, HandlerResult};
use crate::configs::{effective, is_fixed, listed_topic_configs};
use crate::context::ConnContext;
use crate::controller::TopicSpec;
use crate::error::Refusal;
use crate::shard::Shard;
use kafka_protocol::error::ResponseError;

pub async fn handle(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: CreateTopicsRequest = request.decode_body()?;
    // CREATE on the cluster or the topic (Kafka's check); the others are
    // not asked of the controller.
    let image = shard.metadata.image();
    let allowed: Vec<bool> =
        req.topics.iter().map(|t| may_create(context, &shard.config, &image, &t.name)).collect();
    let specs: Vec<TopicSpec> = req
        .topics
        .iter()
        .zip(&allowed)
        .filter(|(_, &ok)| ok)
        .map(|(t, _)| TopicSpec {
            name: t.name.0.to_string(),
            partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            configs: t
                .configs
                .iter()
                .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
                .collect(),
            assignments: t
                .assignments
                .iter()
                .map(|a| (a.partition_index, a.broker_ids.iter().map(|b| b.0).collect()))
                .collect(),
        })
        .collect();
    let mut outcomes = ask_controller(shard, specs, req.validate_only).await.into_iter();
    let topics = req
        .topics
        .iter()
        .zip(allowed)
        .map(|(t, ok)| {
            let outcome = match ok {
                true => outcomes.next().unwrap_or_else(|| {
                    Err(Refusal::new(ResponseError::UnknownServerError, "no outcome"))
                }),
                false => Err(Refusal::new(
                    ResponseError::TopicAuthorizationFailed,
                    "Authorization failed.",
                )),
            };
            let mut r = CreatableTopicResult::default().with_name(t.name.clone());
            let version = request.version;
            match outcome {
                Ok(_) if version < 5 => {}
                Ok(meta) => {
                    if version >= 7 {
                        r.topic_id = uuid::Uuid::from_bytes(meta.id);
                    }
                    r.num_partitions = meta.partitions.len() as i32;
                    r.replication_factor =
                        meta.partitions.first().map_or(0, |p| p.replicas.len() as i16);
                    r.configs = Some(
                        listed_topic_configs()
                            .into_iter()
                            .map(|name| {
                                let (value, source) = effective(name, &meta.configs, &shard.config);
                                CreatableTopicConfigs::default()
                                    .with_name(StrBytes::from_static_str(name))
                                    .with_value(Some(StrBytes::from_string(value)))
                                    .with_config_source(source)
                                    .with_read_only(is_fixed(name))
                            })
                            .collect(),
                    );
                }
                Err(refused) => {
                    r.error_code = refused.code();
                    r.error_message = Some(StrBytes::from_string(refused.message));
                    if version >= 5 {
                        r.num_partitions = -1;
                        r.replication_factor = -1;
                    }
                }
            }
            r
        })
        .collect();
    respond(request, &CreateTopicsResponse::default().with_topics(topics))
}
