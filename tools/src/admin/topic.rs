//! `corelog topic create|list|describe|delete|alter-config|delete-records`,
//! in the habits of Kafka's `kafka-topics.sh`, `kafka-configs.sh` and
//! `kafka-delete-records.sh`.
//!
//! Owns the flags and the output layout; it must not build requests (those
//! are `client::topics`').

use anyhow::{Context, Result};
use client::error::KafkaError;
use client::topics::{self, ConfigChange, NewTopic};
use net::kafka_protocol::error::ResponseError;

use super::flags::{parse, repeated, switch, value};
use super::{base64, subcommand};

const USAGE: &str = "usage: corelog topic <subcommand> [options]

subcommands:
  create NAME       create a topic
  list              list topic names, one per line
  describe [NAME..] partitions, leaders, topic id and the topic's own configs
  delete NAME..     delete topics
  alter-config NAME set or delete configs of a topic (IncrementalAlterConfigs)
  delete-records NAME  delete the records before an offset (DeleteRecords)

Every subcommand takes --bootstrap HOST:PORT (default 127.0.0.1:9092),
--command-config FILE and --help.";

const CREATE_USAGE: &str = "usage: corelog topic create NAME [options]

  --partitions N            partitions (default: the broker's num.partitions)
  --replication-factor R    replicas of each partition (default: the broker's)
  --config KEY=VALUE        a topic config, e.g. retention.ms=3600000 (repeatable)
  --if-not-exists           succeed silently when the topic exists
  --bootstrap HOST:PORT     a broker to ask (default 127.0.0.1:9092)
  --command-config FILE     TLS and SASL: security.protocol, sasl.*, ssl.* lines";

const LIST_USAGE: &str = "usage: corelog topic list [options]

  --internal                include internal topics (__consumer_offsets)
  --bootstrap HOST:PORT     a broker to ask (default 127.0.0.1:9092)
  --command-config FILE     TLS and SASL: security.protocol, sasl.*, ssl.* lines";

const DESCRIBE_USAGE: &str = "usage: corelog topic describe [NAME ...] [options]

Without names, every topic except internal ones.

  --bootstrap HOST:PORT     a broker to ask (default 127.0.0.1:9092)
  --command-config FILE     TLS and SASL: security.protocol, sasl.*, ssl.* lines";

const DELETE_USAGE: &str = "usage: corelog topic delete NAME ... [options]

  --bootstrap HOST:PORT     a broker to ask (default 127.0.0.1:9092)
  --command-config FILE     TLS and SASL: security.protocol, sasl.*, ssl.* lines";

const ALTER_USAGE: &str = "usage: corelog topic alter-config NAME [options]

  --set KEY=VALUE           set a config (repeatable)
  --delete KEY              remove a config, back to the default (repeatable)
  --bootstrap HOST:PORT     a broker to ask (default 127.0.0.1:9092)
  --command-config FILE     TLS and SASL: security.protocol, sasl.*, ssl.* lines";

const DELETE_RECORDS_USAGE: &str = "usage: corelog topic delete-records NAME [options]

Moves the log start offset of partitions: the records before it are gone
for consumers, and their segments are deleted.

  --offset PARTITION=OFFSET delete the partition's records before OFFSET;
                            -1: all of them, up to the high watermark (repeatable)
  --timeout-ms MS           how long the leader waits for its followers
                            (default 30000, at most 50000)
  --bootstrap HOST:PORT     a broker to ask (default 127.0.0.1:9092)
  --command-config FILE     TLS and SASL: security.protocol, sasl.*, ssl.* lines";

/// The longest wait the CLI asks of a leader: its connection gives up on
/// an answer after a minute (`client::conn::RESPONSE_TIMEOUT`).
const DELETE_RECORDS_TIMEOUT_MAX_MS: i32 = 50_000;

pub fn run(args: Vec<String>) -> Result<()> {
    let Some((sub, args)) = subcommand("topic", USAGE, &args)? else { return Ok(()) };
    match sub {
        "create" => create(args),
        "list" => list(args),
        "describe" => describe(args),
        "delete" => delete(args),
        "alter-config" => alter_config(args),
        "delete-records" => delete_records(args),
        other => Err(super::flags::usage("topic", format!("unknown subcommand {other:?}"))),
    }
}

fn create(args: Vec<String>) -> Result<()> {
    let p = parse(
        "topic create",
        args,
        &[
            value("--partitions"),
            value("--replication-factor"),
            repeated("--config"),
            switch("--if-not-exists"),
        ],
    )?;
    if p.help {
        println!("{CREATE_USAGE}");
        return Ok(());
    }
    p.positional_exactly(1, "topic name")?;
    let name = p.positional[0].clone();
    let partitions = p.num::<i32>("--partitions", "a positive number")?.unwrap_or(-1);
    if p.has("--partitions") && partitions < 1 {
        return Err(p.usage("--partitions must be at least 1"));
    }
    let replication_factor =
        p.num::<i16>("--replication-factor", "a positive number")?.unwrap_or(-1);
    if p.has("--replication-factor") && replication_factor < 1 {
        return Err(p.usage("--replication-factor must be at least 1"));
    }
    let topic = NewTopic {
        name: name.clone(),
        partitions,
        replication_factor,
        configs: p.pairs("--config")?,
    };
    let mut client = p.client()?;
    match topics::create(&mut client, &topic) {
        Err(e)
            if p.has("--if-not-exists")
                && e.downcast_ref::<KafkaError>()
                    .is_some_and(|k| k.is(ResponseError::TopicAlreadyExists)) =>
        {
            Ok(())
        }
        other => {
            other.with_context(|| format!("creating topic {name}"))?;
            // What kafka-topics.sh says.
            println!("Created topic {name}.");
            Ok(())
        }
    }
}

fn list(args: Vec<String>) -> Result<()> {
    let p = parse("topic list", args, &[switch("--internal")])?;
    if p.help {
        println!("{LIST_USAGE}");
        return Ok(());
    }
    p.positional_exactly(0, "")?;
    let md = p.client()?.metadata(None)?;
    let mut names: Vec<&str> = md
        .topics
        .iter()
        .filter(|t| p.has("--internal") || !(t.internal || t.name.starts_with("__")))
        .map(|t| t.name.as_str())
        .collect();
    names.sort_unstable();
    for n in names {
        println!("{n}");
    }
    Ok(())
}

fn describe(args: Vec<String>) -> Result<()> {
    let p = parse("topic describe", args, &[])?;
    if p.help {
        println!("{DESCRIBE_USAGE}");
        return Ok(());
    }
    let mut client = p.client()?;
    let wanted: Vec<&str> = p.positional.iter().map(String::as_str).collect();
    let md = client.metadata((!wanted.is_empty()).then_some(&wanted[..]))?;
    let mut names: Vec<String> = if wanted.is_empty() {
        md.topics
            .iter()
            .filter(|t| !t.internal && !t.name.starts_with("__"))
            .map(|t| t.name.clone())
            .collect()
    } else {
        wanted.iter().map(|t| t.to_string()).collect()
    };
    if wanted.is_empty() {
        names.sort();
    }
    let mut out = String::new();
    for name in &names {
        let t = md.topic(name)?;
        let configs = topics::describe_configs(&mut client, name)?;
        let overrides: Vec<String> = configs
            .iter()
            .filter(|c| c.is_topic_override())
            .map(|c| {
                let v = if c.sensitive { "<sensitive>" } else { c.value.as_deref().unwrap_or("") };
                format!("{}={v}", c.name)
            })
            .collect();
        let rf = t.partitions.first().map(|p| p.replicas.len()).unwrap_or(0);
        out += &format!(
            "Topic: {name}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {rf}\tConfigs: {}\n",
            base64(&t.id, true),
            t.partitions.len(),
            overrides.join(",")
        );
        for part in &t.partitions {
            let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
            out += &format!(
                "\tTopic: {name}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}\n",
                part.partition,
                if part.leader < 0 { "none".to_string() } else { part.leader.to_string() },
                ids(&part.replicas),
                ids(&part.isr)
            );
        }
    }
    print!("{out}");
    Ok(())
}

fn delete(args: Vec<String>) -> Result<()> {
    let p = parse("topic delete", args, &[])?;
    if p.help {
        println!("{DELETE_USAGE}");
        return Ok(());
    }
    if p.positional.is_empty() {
        return Err(p.usage("missing topic name"));
    }
    let outcome = topics::delete(&mut p.client()?, &p.positional)?;
    let failed: Vec<String> =
        outcome.iter().filter_map(|(t, e)| e.as_ref().map(|e| format!("topic {t}: {e}"))).collect();
    if !failed.is_empty() {
        anyhow::bail!("deleting {}", failed.join("; "));
    }
    Ok(())
}

fn alter_config(args: Vec<String>) -> Result<()> {
    let p = parse("topic alter-config", args, &[repeated("--set"), repeated("--delete")])?;
    if p.help {
        println!("{ALTER_USAGE}");
        return Ok(());
    }
    p.positional_exactly(1, "topic name")?;
    let name = &p.positional[0];
    let mut changes: Vec<ConfigChange> =
        p.pairs("--set")?.into_iter().map(|(k, v)| ConfigChange::Set(k, v)).collect();
    for k in p.all("--delete") {
        if k.is_empty() || k.contains('=') {
            return Err(p.usage(format!("--delete {k:?}: expected a config name")));
        }
        changes.push(ConfigChange::Delete(k.clone()));
    }
    if changes.is_empty() {
        return Err(p.usage("nothing to change: give --set KEY=VALUE or --delete KEY"));
    }
    topics::alter_configs(&mut p.client()?, name, &changes)
        .with_context(|| format!("altering the configs of topic {name}"))?;
    // What kafka-configs.sh says.
    println!("Completed updating config for topic {name}.");
    Ok(())
}

fn delete_records(args: Vec<String>) -> Result<()> {
    let p = parse("topic delete-records", args, &[repeated("--offset"), value("--timeout-ms")])?;
    if p.help {
        println!("{DELETE_RECORDS_USAGE}");
        return Ok(());
    }
    p.positional_exactly(1, "topic name")?;
    let name = &p.positional[0];
    let mut before = std::collections::BTreeMap::new();
    for (k, v) in p.pairs("--offset")? {
        let partition = k.parse::<i32>().ok().filter(|&p| p >= 0);
        let offset = v.parse::<i64>().ok().filter(|&o| o >= -1);
        match (partition, offset) {
            (Some(partition), Some(offset)) => before.insert(partition, offset),
            _ => return Err(p.usage(format!("--offset {k}={v}: expected PARTITION=OFFSET"))),
        };
    }
    if before.is_empty() {
        return Err(p.usage("nothing to delete: give --offset PARTITION=OFFSET"));
    }
    let timeout_ms = p.num::<i32>("--timeout-ms", "milliseconds")?.unwrap_or(30_000);
    if !(0..=DELETE_RECORDS_TIMEOUT_MAX_MS).contains(&timeout_ms) {
        return Err(p.usage(format!(
            "--timeout-ms must be 0 to {DELETE_RECORDS_TIMEOUT_MAX_MS} (the CLI waits for the answer at most a minute)"
        )));
    }
    let outcome = topics::delete_records(&mut p.client()?, name, &before, timeout_ms)
        .with_context(|| format!("deleting records of topic {name}"))?;
    // What kafka-delete-records.sh says.
    println!("Records delete operation completed:");
    let mut failed = Vec::new();
    for (partition, result) in &outcome {
        match result {
            Ok(low) => println!("partition: {name}-{partition}\tlow_watermark: {low}"),
            Err(e) => {
                println!("partition: {name}-{partition}\terror: {e}");
                failed.push(format!("{name}-{partition}: {e}"));
            }
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("deleting records of {}", failed.join("; "));
    }
    Ok(())
}
