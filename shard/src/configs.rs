//! Topic configs: the Kafka names Corelog applies, their defaults, their
//! validation, and the engine's [`LogConfig`] they make. A config not listed
//! here is refused with `INVALID_CONFIG` rather than accepted and ignored.

use std::collections::BTreeMap;

use engine::LogConfig;

use crate::config::NodeConfig;

/// Kafka's ConfigSource values.
pub const DYNAMIC_TOPIC_CONFIG: i8 = 1;
pub const STATIC_BROKER_CONFIG: i8 = 4;
pub const DEFAULT_CONFIG: i8 = 5;

/// (name, Kafka's default)
pub const TOPIC_CONFIGS: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("retention.ms", "604800000"),
    ("retention.bytes", "-1"),
    ("segment.bytes", "1073741824"),
    ("segment.ms", "604800000"),
    ("max.message.bytes", "1048588"),
    ("index.interval.bytes", "4096"),
    ("delete.retention.ms", "86400000"),
    ("message.timestamp.before.max.ms", "9223372036854775807"),
    ("message.timestamp.after.max.ms", "3600000"),
    ("min.insync.replicas", "1"),
];

/// Kafka's ConfigType of a list config.
pub const LIST_CONFIG: i8 = 7;

/// Kafka's ConfigType of a topic config (DescribeConfigs v3+): INT 3, LONG 5, LIST 7.
pub fn config_type(name: &str) -> i8 {
    match name {
        "cleanup.policy" => LIST_CONFIG,
        "segment.bytes" | "max.message.bytes" | "index.interval.bytes" | "min.insync.replicas" => 3,
        _ => 5,
    }
}

/// One-line documentation of a topic config (DescribeConfigs v3+).
pub fn documentation(name: &str) -> &'static str {
    match name {
        "cleanup.policy" => {
            "delete: old segments go by retention; compact: closed segments keep the latest record per key; or both"
        }
        "retention.ms" => {
            "closed segments whose newest record is older than this are deleted; -1 keeps forever"
        }
        "retention.bytes" => {
            "oldest closed segments are deleted while the partition is larger; -1 keeps all"
        }
        "segment.bytes" => "a new segment starts when the active one would exceed this size",
        "segment.ms" => "a new segment starts when the active one is older than this",
        "max.message.bytes" => "largest record batch accepted",
        "index.interval.bytes" => "bytes of batches between two offset index entries",
        "delete.retention.ms" => "how long compaction keeps a tombstone (a record with a null value)",
        "message.timestamp.before.max.ms" => {
            "how far before the broker's clock a record's timestamp may be; older ones are refused with INVALID_TIMESTAMP"
        }
        "message.timestamp.after.max.ms" => {
            "how far after the broker's clock a record's timestamp may be; newer ones are refused with INVALID_TIMESTAMP"
        }
        "min.insync.replicas" => {
            "in-sync replicas an acks=all produce needs; fewer is NOT_ENOUGH_REPLICAS"
        }
        _ => "",
    }
}

/// What a topic config is on this node, and where the value comes from:
/// set on the topic, set on the node (`--min-insync-replicas`, Kafka's
/// broker config of the same name), or Kafka's default.
pub fn effective(name: &str, topic: &BTreeMap<String, String>, node: &NodeConfig) -> (String, i8) {
    if let Some(v) = topic.get(name) {
        return (v.clone(), DYNAMIC_TOPIC_CONFIG);
    }
    let default = TOPIC_CONFIGS.iter().find(|(n, _)| *n == name).map_or("", |(_, d)| d);
    match name {
        "min.insync.replicas" if node.min_insync_replicas.to_string() != default => {
            (node.min_insync_replicas.to_string(), STATIC_BROKER_CONFIG)
        }
        _ => (default.to_string(), DEFAULT_CONFIG),
    }
}

/// `min.insync.replicas` of a topic with these configs on this node.
pub fn min_insync_replicas(topic: &BTreeMap<String, String>, node: &NodeConfig) -> usize {
    topic
        .get("min.insync.replicas")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(usize::from(node.min_insync_replicas))
}

fn number(name: &str, value: &str) -> Result<i64, String> {
    value.trim().parse::<i64>().map_err(|_| format!("{name} must be a number, got {value:?}"))
}

/// The engine configuration of a topic with these configs (defaults for
/// the rest). Fails with a message for `INVALID_CONFIG`.
pub fn log_config(configs: &BTreeMap<String, String>) -> Result<LogConfig, String> {
    let mut c = LogConfig::default();
    for (name, value) in configs {
        match name.as_str() {
            "cleanup.policy" => {
                let policies: Vec<&str> = value.split(',').map(str::trim).collect();
                if policies.is_empty()
                    || policies.iter().any(|p| !matches!(*p, "delete" | "compact"))
                {
                    return Err(format!(
                        "cleanup.policy={value}: must be delete, compact or compact,delete"
                    ));
                }
                c.cleanup_delete = policies.contains(&"delete");
                c.cleanup_compact = policies.contains(&"compact");
            }
            "delete.retention.ms" => c.delete_retention_ms = number(name, value)?,
            "retention.ms" => c.retention_ms = number(name, value)?,
            "message.timestamp.before.max.ms" => c.timestamp_before_max_ms = number(name, value)?,
            "message.timestamp.after.max.ms" => c.timestamp_after_max_ms = number(name, value)?,
            "retention.bytes" => c.retention_bytes = number(name, value)?,
            "segment.bytes" => {
                c.segment_bytes = u64::try_from(number(name, value)?)
                    .map_err(|_| "segment.bytes must be positive")?
            }
            "segment.ms" => c.segment_ms = number(name, value)?,
            "max.message.bytes" => {
                c.max_message_bytes = usize::try_from(number(name, value)?)
                    .map_err(|_| "max.message.bytes must be positive")?
            }
            "index.interval.bytes" => {
                c.index_interval_bytes = u64::try_from(number(name, value)?)
                    .map_err(|_| "index.interval.bytes must be positive")?
            }
            // Not the engine's: the produce path reads it (`min_insync_replicas`).
            "min.insync.replicas" => {
                if !(1..=i64::from(i16::MAX)).contains(&number(name, value)?) {
                    return Err(format!("min.insync.replicas={value}: must be at least 1"));
                }
            }
            other => return Err(format!("unknown or unsupported topic config {other:?}")),
        }
    }
    c.validate()?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas_and_valid() {
        let defaults: BTreeMap<String, String> =
            TOPIC_CONFIGS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let c = log_config(&defaults).unwrap();
        assert_eq!(c.segment_bytes, 1 << 30);
        assert_eq!(c.max_message_bytes, 1048588);
        assert!(c.cleanup_delete && !c.cleanup_compact);
        let both: BTreeMap<String, String> =
            [("cleanup.policy".to_string(), "compact, delete".to_string())].into();
        let c = log_config(&both).unwrap();
        assert!(c.cleanup_delete && c.cleanup_compact);
    }

    #[test]
    fn bad_configs_are_refused() {
        for (k, v) in [
            ("retention.ms", "soon"),
            ("segment.bytes", "10"),
            ("cleanup.policy", "shred"),
            ("delete.retention.ms", "-5"),
            ("min.insync.replicas", "0"),
            ("x", "1"),
        ] {
            let m: BTreeMap<String, String> = [(k.to_string(), v.to_string())].into();
            assert!(log_config(&m).is_err(), "{k}={v}");
        }
    }
}
