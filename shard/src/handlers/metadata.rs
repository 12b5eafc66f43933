//! Metadata v0-v12: every shard of every live node is a broker (rack =
//! the node), at the listener the request came in on (a node without
//! that listener is left out, as Kafka leaves it out); topics with their partitions' leaders, leader epochs,
//! replicas and ISR. Unknown topics are created when auto-creation is on
//! and the request allows it.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use net::codec::Request;
use net::kafka_protocol;

use super::may_create;
use super::{respond, HandlerResult, Outcomes};
use crate::context::ConnContext;
use crate::controller::{Command, TopicOutcome, TopicSpec};
use crate::listener::SecurityProtocol;
use crate::metadata::{validate_topic_name, MetadataImage, TopicMeta};
use crate::shard::Shard;
use auth::acl::{Operation, ResourceType, CLUSTER_NAME};

/// Kafka's "authorized operations not requested" value.
const OPERATIONS_OMITTED: i32 = i32::MIN;

pub async fn handle(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: MetadataRequest = request.decode_body()?;
    let version = request.version;
    // Which topics: all (null, or an empty list in v0), or the named ones.
    let wanted: Option<Vec<Result<String, uuid::Uuid>>> = match &req.topics {
        None => None,
        Some(t) if version == 0 && t.is_empty() => None,
        Some(t) => Some(
            t.iter()
                .map(|t| match &t.name {
                    Some(n) => Ok(n.0.to_string()),
                    None => Err(t.topic_id),
                })
                .collect(),
        ),
    };
    let allow_create = version < 4 || req.allow_auto_topic_creation;
    let config = &shard.config;
    let describable = |image: &MetadataImage, name: &str| {
        context.may(config, image, Operation::Describe, ResourceType::Topic, name)
    };
    if let (Some(wanted), true) = (&wanted, allow_create && shard.config.auto_create_topics) {
        let image = shard.metadata.image();
        let missing: Vec<String> = wanted
            .iter()
            .filter_map(|w| w.as_ref().ok())
            .filter(|n| {
                !image.topics.contains_key(*n)
                    && validate_topic_name(n).is_ok()
                    && !n.starts_with("__")
                    && describable(&image, n)
                    && may_create(context, config, &image, n)
            })
            .cloned()
            .collect();
        if !missing.is_empty() {
            create_default_topics(shard, missing).await;
        }
    }
    let image = shard.metadata.image();
    let creating = allow_create && config.auto_create_topics;
    let topics: Vec<MetadataResponseTopic> = match wanted {
        // Every topic the client may describe; the others are not named.
        None => image
            .topics
            .values()
            .filter(|t| describable(&image, &t.name))
            .map(|t| topic_response(&image, t, version, context.protocol))
            .collect(),
        Some(wanted) => wanted
            .into_iter()
            .map(|w| {
                let found = match &w {
                    Ok(name) => image.topics.get(name),
                    Err(id) => image.topic_by_id(id.as_bytes()),
                };
                // Kafka's: not describable, or missing where auto-creation
                // was asked but the client may not create it.
                let denied = match (&w, found) {
                    (_, Some(t)) => !describable(&image, &t.name),
                    (Ok(name), None) => {
                        !describable(&image, name)
                            || (creating && !may_create(context, config, &image, name))
                    }
                    (Err(_), None) => false,
                };
                if denied {
                    return MetadataResponseTopic::default()
                        .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                        .with_name(
                            w.as_ref().ok().map(|n| TopicName(StrBytes::from_string(n.clone()))),
                        )
                        .with_topic_id(w.as_ref().err().copied().unwrap_or_default())
                        .with_topic_authorized_operations(OPERATIONS_OMITTED);
                }
                match found {
                    Some(t) => topic_response(&image, t, version, context.protocol),
                    None => {
                        let code = match &w {
                            Ok(name) if validate_topic_name(name).is_err() => {
                                ResponseError::InvalidTopicException
                            }
                            Ok(_) => ResponseError::UnknownTopicOrPartition,
                            Err(_) => ResponseError::UnknownTopicId,
                        };
                        MetadataResponseTopic::default()
                            .with_error_code(code.code())
                            .with_name(
                                w.as_ref()
                                    .ok()
                                    .map(|n| TopicName(StrBytes::from_string(n.clone()))),
                            )
                            .with_topic_id(if version >= 10 {
                                w.err().unwrap_or_default()
                            } else {
                                Default::default()
                            })
                            .with_topic_authorized_operations(OPERATIONS_OMITTED)
                    }
                }
            })
            .collect(),
    };
    let brokers = image
        .live_brokers()
        .filter_map(|(b, n)| Some((b, n, n.endpoint_on(b, context.protocol)?)))
        .map(|(b, n, (host, port))| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.0))
                .with_host(StrBytes::from_string(host.to_string()))
                .with_port(i32::from(port))
                .with_rack((version >= 1).then(|| StrBytes::from_string(n.rack.clone())))
        })
        .collect();
    // Fields newer than the request's version stay at their defaults: the
    // codec refuses to encode them otherwise.
    let mut response = MetadataResponse::default().with_brokers(brokers).with_topics(topics);
    if version >= 1 {
        response.controller_id = BrokerId(shard.metadata.controller_broker());
    }
    if version >= 2 {
        response.cluster_id = Some(StrBytes::from_string(image.cluster_id.clone()));
    }
    // authorized_operations when asked (v8+): of every topic answered but
    // the ones the principal may not describe, and of the cluster (v8-10).
    if version >= 8 && req.include_topic_authorized_operations {
        let denied = ResponseError::TopicAuthorizationFailed.code();
        for t in response.topics.iter_mut().filter(|t| t.error_code != denied) {
            if let Some(name) = &t.name {
                t.topic_authorized_operations =
                    context.authorized_operations(config, &image, ResourceType::Topic, name);
            }
        }
    }
    if (8..=10).contains(&version) && req.include_cluster_authorized_operations {
        response.cluster_authorized_operations =
            context.authorized_operations(config, &image, ResourceType::Cluster, CLUSTER_NAME);
    }
    respond(request, &response)
}

/// A topic's partitions as the client on `protocol`'s listener sees them:
/// a leader it cannot reach there (its node lacks that listener) is none,
/// with LISTENER_NOT_FOUND from v6 on, as Kafka answers.
fn topic_response(
    image: &MetadataImage,
    t: &TopicMeta,
    version: i16,
    protocol: SecurityProtocol,
) -> MetadataResponseTopic {
    let ids = |b: &[crate::ids::BrokerId]| b.iter().map(|b| BrokerId(b.0)).collect::<Vec<_>>();
    let partitions = t
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let offline: Vec<_> =
                p.replicas.iter().copied().filter(|&b| !image.is_live(b)).collect();
            let unreachable = p.leader.is_some_and(|l| image.endpoint_on(l, protocol).is_none());
            let leader = p.leader.filter(|_| !unreachable);
            let mut r = MetadataResponsePartition::default()
                .with_partition_index(i as i32)
                .with_leader_id(BrokerId(leader.map_or(-1, |l| l.0)))
                .with_leader_epoch(if version >= 7 { p.leader_epoch.0 } else { -1 })
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr));
            if version >= 5 {
                r.offline_replicas = ids(&offline);
            }
            if unreachable && version >= 6 {
                r.error_code = ResponseError::ListenerNotFound.code();
            } else if leader.is_none() {
                r.error_code = ResponseError::LeaderNotAvailable.code();
            }
            r
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_topic_id(if version >= 10 { uuid::Uuid::from_bytes(t.id) } else { uuid::Uuid::nil() })
        .with_partitions(partitions)
        .with_is_internal(version >= 1 && crate::controller::machine::is_internal(&t.name))
        .with_topic_authorized_operations(OPERATIONS_OMITTED)
}

/// Asks the controller to create topics with default settings (auto-creation).
pub async fn create_default_topics(shard: &Shard, names: Vec<String>) -> Vec<TopicOutcome> {
    let topics = names
        .into_iter()
        .map(|name| TopicSpec {
            name,
            partitions: -1,
            replication_factor: -1,
            configs: BTreeMap::new(),
            assignments: Vec::new(),
        })
        .collect();
    ask_controller(shard, topics, false).await
}

/// Sends a CreateTopics to the node's controller and waits for it.
pub async fn ask_controller(
    shard: &Shard,
    topics: Vec<TopicSpec>,
    validate_only: bool,
) -> Vec<TopicOutcome> {
    let n = topics.len();
    let answer = shard.controller.ask(Command::CreateTopics { topics, validate_only }).await;
    let mut outcomes = Outcomes::of_topics(answer);
    (0..n).map(|_| outcomes.next_outcome()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{BrokerId as Broker, NodeId, ShardId};
    use crate::listener::Listener;
    use crate::metadata::{MetadataRecord, NodeMeta, PartitionMeta};

    #[test]
    fn a_leader_without_the_request_s_listener_is_no_leader() {
        let node = |id: i32, listeners: Vec<Listener>| {
            MetadataRecord::Node(NodeMeta {
                id: NodeId(id),
                host: "h".into(),
                port: 9092,
                listeners,
                shards: 1,
                rack: String::new(),
                fenced: false,
            })
        };
        let both = vec![
            Listener::parse("PLAINTEXT://h:9092").unwrap(),
            Listener::parse("SASL_PLAINTEXT://h:9192").unwrap(),
        ];
        let leader = |n| PartitionMeta::single(Broker::of(NodeId(n), ShardId(0)));
        let topic = TopicMeta {
            name: "t".into(),
            id: [1; 16],
            partitions: vec![leader(1), leader(2)],
            configs: BTreeMap::new(),
        };
        // Node 2 has only the PLAINTEXT listener (a record without any).
        let image = MetadataImage::default().applied(&[
            node(1, both),
            node(2, Vec::new()),
            MetadataRecord::Topic(topic.clone()),
        ]);
        let sasl = SecurityProtocol::SaslPlaintext;
        let seen = |version, protocol| {
            topic_response(&image, &topic, version, protocol)
                .partitions
                .iter()
                .map(|p| (p.leader_id.0, p.error_code))
                .collect::<Vec<_>>()
        };
        let not_found = ResponseError::ListenerNotFound.code();
        assert_eq!(seen(12, sasl), vec![(1000, 0), (-1, not_found)]);
        let not_available = ResponseError::LeaderNotAvailable.code();
        assert_eq!(seen(5, sasl), vec![(1000, 0), (-1, not_available)]);
        assert_eq!(seen(12, SecurityProtocol::Plaintext), vec![(1000, 0), (2000, 0)]);
    }
}
