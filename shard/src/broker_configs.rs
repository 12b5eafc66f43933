//! What a broker (one shard) describes of itself for DescribeConfigs'
//! BROKER resource: Kafka's names for what the node's flags set, with
//! Corelog's values. Tools (kafka-configs.sh `--entity-type brokers`,
//! admin UIs, Sarama's ClusterAdmin) read them to learn a cluster's
//! defaults. All read-only: nothing of a running broker changes without a
//! restart with other flags.
//!
//! Pure: computed from the node's configuration by the shard asked.

use crate::config::NodeConfig;
use crate::configs::{DEFAULT_CONFIG, LIST_CONFIG, STATIC_BROKER_CONFIG};
use crate::groups::{OFFSETS_TOPIC_PARTITIONS, OFFSETS_TOPIC_REPLICATION_FACTOR};
use crate::ids::ShardId;

/// Kafka's ConfigTypes used here.
const BOOLEAN: i8 = 1;
const STRING: i8 = 2;
const INT: i8 = 3;
const SHORT: i8 = 4;
const LONG: i8 = 5;

/// One described broker config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    pub name: &'static str,
    pub value: Option<String>,
    /// [`STATIC_BROKER_CONFIG`] where the node's flags make it differ from
    /// Kafka's default, else [`DEFAULT_CONFIG`].
    pub source: i8,
    pub config_type: i8,
}

/// The configs of broker `shard` of this node, sorted by name.
pub fn broker_configs(node: &NodeConfig, shard: ShardId) -> Vec<BrokerConfig> {
    let broker = node.broker(shard).0.to_string();
    // This shard's port of every listener, as Kafka lists them.
    let of_shard = |all: Vec<crate::listener::Listener>| {
        let each: Vec<String> = all
            .into_iter()
            .map(|l| crate::listener::Listener { port: l.port_of(shard), ..l }.to_string())
            .collect();
        each.join(",")
    };
    let listener = of_shard(node.listeners());
    let advertised = of_shard(node.advertised_listeners());
    let mechanisms: Vec<&str> = node.sasl_mechanisms.iter().map(|m| m.name()).collect();
    let reauth_ms = node.connections_max_reauth.map_or(0, |d| d.as_millis() as u64);
    let voters = node.controller_quorum.as_ref().map(|q| {
        q.voters.iter().map(|v| format!("{}@{}", v.node.0, v.addr())).collect::<Vec<_>>().join(",")
    });
    let controller = node
        .controller_quorum
        .as_ref()
        .is_none_or(|q| q.voters.iter().any(|v| v.node.0 == node.node_id));
    let (flush_messages, flush_ms) = match node.flush {
        engine::Flush::Fsync => ("1".to_string(), "0".to_string()),
        engine::Flush::Interval { ms } => (i64::MAX.to_string(), ms.to_string()),
    };
    let roles = if controller { "broker,controller" } else { "broker" };
    // (name, Corelog's value, Kafka's default, type)
    let entries: Vec<(&'static str, Option<String>, Option<&str>, i8)> = vec![
        ("advertised.listeners", Some(advertised), None, LIST_CONFIG),
        (
            "auto.create.topics.enable",
            Some(node.auto_create_topics.to_string()),
            Some("true"),
            BOOLEAN,
        ),
        ("broker.id", Some(broker.clone()), Some("-1"), INT),
        ("broker.rack", Some(node.rack()), None, STRING),
        (
            "broker.session.timeout.ms",
            Some(node.broker_session_timeout_ms.to_string()),
            Some("9000"),
            INT,
        ),
        (
            "connections.max.idle.ms",
            Some(node.connections_max_idle.as_millis().to_string()),
            Some("600000"),
            LONG,
        ),
        ("connections.max.reauth.ms", Some(reauth_ms.to_string()), Some("0"), LONG),
        ("controller.quorum.voters", voters, None, LIST_CONFIG),
        (
            "default.replication.factor",
            Some(node.default_replication_factor.to_string()),
            Some("1"),
            INT,
        ),
        ("listeners", Some(listener), Some("PLAINTEXT://:9092"), LIST_CONFIG),
        ("log.cleanup.policy", Some("delete".into()), Some("delete"), LIST_CONFIG),
        ("log.dirs", Some(node.data_dir.display().to_string()), Some("/tmp/kafka-logs"), STRING),
        ("log.flush.interval.messages", Some(flush_messages), Some("9223372036854775807"), LONG),
        ("log.flush.interval.ms", Some(flush_ms), None, LONG),
        ("log.message.timestamp.type", Some("CreateTime".into()), Some("CreateTime"), STRING),
        ("log.retention.ms", Some("604800000".into()), Some("604800000"), LONG),
        ("log.segment.bytes", Some("1073741824".into()), Some("1073741824"), INT),
        ("message.max.bytes", Some("1048588".into()), Some("1048588"), INT),
        ("min.insync.replicas", Some(node.min_insync_replicas.to_string()), Some("1"), INT),
        ("node.id", Some(broker), Some("-1"), INT),
        ("num.partitions", Some(node.default_partitions.to_string()), Some("1"), INT),
        (
            "offsets.topic.num.partitions",
            Some(OFFSETS_TOPIC_PARTITIONS.to_string()),
            Some("50"),
            INT,
        ),
        (
            "offsets.topic.replication.factor",
            Some(OFFSETS_TOPIC_REPLICATION_FACTOR.to_string()),
            Some("3"),
            SHORT,
        ),
        (
            "offsets.topic.segment.bytes",
            Some(node.offsets_segment_bytes.to_string()),
            Some("104857600"),
            INT,
        ),
        ("process.roles", Some(roles.into()), None, LIST_CONFIG),
        (
            "replica.lag.time.max.ms",
            Some(node.replica_lag_time_max_ms.to_string()),
            Some("30000"),
            LONG,
        ),
        ("sasl.enabled.mechanisms", Some(mechanisms.join(",")), Some("GSSAPI"), LIST_CONFIG),
        (
            "security.inter.broker.protocol",
            Some(node.protocol.name().to_string()),
            Some("PLAINTEXT"),
            STRING,
        ),
        (
            "transactional.id.expiration.ms",
            Some(node.transactional_id_expiration_ms.to_string()),
            Some("604800000"),
            INT,
        ),
        ("unclean.leader.election.enable", Some("false".into()), Some("false"), BOOLEAN),
    ];
    entries
        .into_iter()
        .map(|(name, value, default, config_type)| {
            let source =
                if value.as_deref() == default { DEFAULT_CONFIG } else { STATIC_BROKER_CONFIG };
            BrokerConfig { name, value, source, config_type }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sorted_and_flags_are_static_configs() {
        let node = NodeConfig { default_partitions: 3, ..NodeConfig::default() };
        let configs = broker_configs(&node, ShardId(1));
        let names: Vec<&str> = configs.iter().map(|c| c.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        let get = |n: &str| configs.iter().find(|c| c.name == n).unwrap().clone();
        assert_eq!(get("num.partitions").value.as_deref(), Some("3"));
        assert_eq!(get("num.partitions").source, STATIC_BROKER_CONFIG);
        assert_eq!(get("message.max.bytes").source, DEFAULT_CONFIG);
        assert_eq!(get("broker.id").value, Some(node.broker(ShardId(1)).0.to_string()));
    }
}
