//! Topic configs: every name Kafka lists for a topic, with Corelog's value
//! and where it comes from. [`TOPIC_CONFIGS`] are applied: their defaults,
//! their validation, the engine's [`LogConfig`] they make.
//! [`FIXED_TOPIC_CONFIGS`] are listed as they are in Corelog, which does
//! not let them vary: a topic may set one only to that value (tools that
//! write every config back), anything else is `INVALID_CONFIG`. A name
//! in neither list is refused rather than accepted and ignored.

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
    ("message.timestamp.type", "CreateTime"),
    ("unclean.leader.election.enable", "false"),
];

/// (name, Corelog's value, why) of the topic configs Kafka lists that
/// Corelog does not let vary.
pub const FIXED_TOPIC_CONFIGS: &[(&str, &str, &str)] = &[
    ("compression.type", "producer", "batches are stored as the producer compressed them"),
    ("compression.gzip.level", "-1", "unused: batches are never recompressed"),
    ("compression.lz4.level", "9", "unused: batches are never recompressed"),
    ("compression.zstd.level", "3", "unused: batches are never recompressed"),
    ("file.delete.delay.ms", "0", "deleted segments' files are removed at once"),
    (
        "flush.messages",
        "9223372036854775807",
        "the node's --flush decides (fsync: every group commit)",
    ),
    ("flush.ms", "9223372036854775807", "the node's --flush decides (fsync: every group commit)"),
    ("follower.replication.throttled.replicas", "", "replication is not throttled"),
    ("leader.replication.throttled.replicas", "", "replication is not throttled"),
    ("local.retention.bytes", "-2", "no tiered storage: retention.bytes applies"),
    ("local.retention.ms", "-2", "no tiered storage: retention.ms applies"),
    ("max.compaction.lag.ms", "9223372036854775807", "compaction runs on closed segments"),
    (
        "message.downconversion.enable",
        "false",
        "fetch versions without record batch v2 are not served",
    ),
    ("message.format.version", "3.0-IV1", "record batch v2 only"),
    (
        "message.timestamp.difference.max.ms",
        "9223372036854775807",
        "see message.timestamp.before.max.ms",
    ),
    ("min.cleanable.dirty.ratio", "0", "every closed segment not yet compacted is compacted"),
    ("min.compaction.lag.ms", "0", "a segment is compacted once closed"),
    ("preallocate", "false", "segment files grow as they are written"),
    ("remote.storage.enable", "false", "no tiered storage"),
    ("segment.index.bytes", "10485760", "indexes are sparse and sized by their segment"),
    ("segment.jitter.ms", "0", "segments roll at segment.ms exactly"),
];

/// Every topic config name Corelog lists, applied or fixed, sorted as
/// Kafka lists them.
pub fn listed_topic_configs() -> Vec<&'static str> {
    let mut names: Vec<&str> = TOPIC_CONFIGS
        .iter()
        .map(|(n, _)| *n)
        .chain(FIXED_TOPIC_CONFIGS.iter().map(|(n, _, _)| *n))
        .collect();
    names.sort_unstable();
    names
}

/// The default of a listed config (a fixed one's value); `None` for a
/// name Corelog does not list.
pub fn default_of(name: &str) -> Option<&'static str> {
    TOPIC_CONFIGS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| *d)
        .or_else(|| FIXED_TOPIC_CONFIGS.iter().find(|(n, _, _)| *n == name).map(|(_, v, _)| *v))
}

/// Whether `name` is listed but fixed in Corelog.
pub fn is_fixed(name: &str) -> bool {
    FIXED_TOPIC_CONFIGS.iter().any(|(n, _, _)| *n == name)
}

/// Kafka's ConfigType of a list config.
pub const LIST_CONFIG: i8 = 7;

/// Kafka's ConfigType of a topic config (DescribeConfigs v3+): BOOLEAN 1,
/// STRING 2, INT 3, LONG 5, DOUBLE 6, LIST 7.
pub fn config_type(name: &str) -> i8 {
    match name {
        "cleanup.policy"
        | "follower.replication.throttled.replicas"
        | "leader.replication.throttled.replicas" => LIST_CONFIG,
        "segment.bytes"
        | "max.message.bytes"
        | "index.interval.bytes"
        | "min.insync.replicas"
        | "segment.index.bytes"
        | "compression.gzip.level"
        | "compression.lz4.level"
        | "compression.zstd.level" => 3,
        "unclean.leader.election.enable"
        | "message.downconversion.enable"
        | "preallocate"
        | "remote.storage.enable" => 1,
        "message.timestamp.type" | "compression.type" | "message.format.version" => 2,
        "min.cleanable.dirty.ratio" => 6,
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
        "message.timestamp.type" => {
            "CreateTime keeps the producer's timestamps; LogAppendTime stamps each batch with the broker's clock"
        }
        "unclean.leader.election.enable" => {
            "true: with no in-sync replica live, a live replica outside the ISR leads (acknowledged records may be lost)"
        }
        fixed => FIXED_TOPIC_CONFIGS
            .iter()
            .find(|(n, _, _)| *n == fixed)
            .map_or("", |(_, _, why)| why),
    }
}

/// What a topic config is on this node, and where the value comes from:
/// set on the topic, set on the node (`--min-insync-replicas`, Kafka's
/// broker config of the same name), or Kafka's default.
pub fn effective(name: &str, topic: &BTreeMap<String, String>, node: &NodeConfig) -> (String, i8) {
    if let Some(v) = topic.get(name) {
        return (v.clone(), DYNAMIC_TOPIC_CONFIG);
    }
    let default = default_of(name).unwrap_or("");
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
            "message.timestamp.type" => {
                c.log_append_time = match value.trim() {
                    "CreateTime" => false,
                    "LogAppendTime" => true,
                    _ => {
                        return Err(format!(
                            "message.timestamp.type={value}: must be CreateTime or LogAppendTime"
                        ))
                    }
                }
            }
            // Not the engine's: the controller reads it when it elects.
            "unclean.leader.election.enable" => {
                if !matches!(value.trim(), "true" | "false") {
                    return Err(format!("{name}={value}: must be true or false"));
                }
            }
            fixed if is_fixed(fixed) => {
                let only = default_of(fixed).unwrap_or("");
                if value.trim() != only {
                    return Err(format!(
                        "{fixed}={value}: Corelog fixes {fixed} at {only:?} ({})",
                        documentation(fixed)
                    ));
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
        // A fixed config set to Corelog's value is accepted.
        let fixed: BTreeMap<String, String> =
            FIXED_TOPIC_CONFIGS.iter().map(|(k, v, _)| (k.to_string(), v.to_string())).collect();
        assert_eq!(log_config(&fixed).unwrap(), LogConfig::default());
        let lat: BTreeMap<String, String> =
            [("message.timestamp.type".to_string(), "LogAppendTime".to_string())].into();
        assert!(log_config(&lat).unwrap().log_append_time);
    }

    #[test]
    fn bad_configs_are_refused() {
        for (k, v) in [
            ("retention.ms", "soon"),
            ("segment.bytes", "10"),
            ("cleanup.policy", "shred"),
            ("delete.retention.ms", "-5"),
            ("min.insync.replicas", "0"),
            ("message.timestamp.type", "Tuesday"),
            ("unclean.leader.election.enable", "yes"),
            ("compression.type", "zstd"),
            ("preallocate", "true"),
            ("x", "1"),
        ] {
            let m: BTreeMap<String, String> = [(k.to_string(), v.to_string())].into();
            assert!(log_config(&m).is_err(), "{k}={v}");
        }
    }
}
