//! `corelog quota list|set|remove`: client quotas, as `kafka-configs
//! --entity-type users|clients --describe|--alter` manages them
//! (DescribeClientQuotas, AlterClientQuotas).
//!
//! Owns the flags and the output layout; the requests are
//! `client::quotas`'s.

use anyhow::{bail, Result};
use client::quotas::{self, Entity, Match};

use super::flags::{parse, repeated, switch, value, Parsed};
use super::{subcommand, table};

const USAGE: &str = "usage: corelog quota <subcommand> [options]

subcommands:
  list      quotas in force, one line per entity and key (an entity's flags narrow it)
  set       set quotas of an entity: --producer-byte-rate N, --consumer-byte-rate N,
            --request-percentage P
  remove    remove quotas of an entity (--key KEY, repeatable; default: every key)

An entity is --user NAME or --user-default, and/or --client-id ID or --client-id-default
(the user is the principal's name: ANONYMOUS without a login). Every subcommand takes
--bootstrap HOST:PORT (default 127.0.0.1:9092), --command-config FILE and --help.";

const LIST_USAGE: &str = "usage: corelog quota list [options]

  --user NAME | --user-default            entities of this user (or the default user)
  --client-id ID | --client-id-default    entities of this client id (or the default)
  --bootstrap HOST:PORT                   a broker to ask (default 127.0.0.1:9092)
  --command-config FILE                   TLS and SASL: security.protocol, sasl.*, ssl.* lines";

const SET_USAGE: &str = "usage: corelog quota set ENTITY [options]

  --user NAME | --user-default            the entity's user (or the default user)
  --client-id ID | --client-id-default    the entity's client id (or the default)
  --producer-byte-rate N                  bytes of produce requests per second, per shard
  --consumer-byte-rate N                  bytes of fetch responses per second, per shard
  --request-percentage P                  percent of a shard's core (100: one core)
  --bootstrap HOST:PORT                   a broker to ask (default 127.0.0.1:9092)
  --command-config FILE                   TLS and SASL: security.protocol, sasl.*, ssl.* lines";

const REMOVE_USAGE: &str = "usage: corelog quota remove ENTITY [options]

  --user NAME | --user-default            the entity's user (or the default user)
  --client-id ID | --client-id-default    the entity's client id (or the default)
  --key KEY                               producer_byte_rate, consumer_byte_rate or
                                          request_percentage; repeatable (default: all)
  --bootstrap HOST:PORT                   a broker to ask (default 127.0.0.1:9092)
  --command-config FILE                   TLS and SASL: security.protocol, sasl.*, ssl.* lines";

const ENTITY_FLAGS: [super::flags::Flag; 4] = [
    value("--user"),
    switch("--user-default"),
    value("--client-id"),
    switch("--client-id-default"),
];

/// The rates `set` takes, by flag and quota key.
const RATES: [(&str, &str); 3] = [
    ("--producer-byte-rate", "producer_byte_rate"),
    ("--consumer-byte-rate", "consumer_byte_rate"),
    ("--request-percentage", "request_percentage"),
];

pub fn run(args: Vec<String>) -> Result<()> {
    let Some((sub, args)) = subcommand("quota", USAGE, &args)? else { return Ok(()) };
    match sub {
        "list" => list(args),
        "set" => set(args),
        "remove" => remove(args),
        other => Err(super::flags::usage("quota", format!("unknown subcommand {other:?}"))),
    }
}

/// The entity's parts the flags name: each type by name, by default, or
/// not at all.
fn entity_parts(p: &Parsed) -> Result<Vec<(&'static str, Match)>> {
    let mut parts = Vec::new();
    for (kind, named, default) in
        [("user", "--user", "--user-default"), ("client-id", "--client-id", "--client-id-default")]
    {
        match (p.get(named), p.has(default)) {
            (Some(_), true) => {
                return Err(p.usage(format!("{named} and {default} exclude each other")))
            }
            (Some(name), false) => parts.push((kind, Match::Exactly(name.to_string()))),
            (None, true) => parts.push((kind, Match::Default)),
            (None, false) => {}
        }
    }
    Ok(parts)
}

/// The entity `set` and `remove` change: at least one type.
fn entity(p: &Parsed) -> Result<Entity> {
    let parts = entity_parts(p)?;
    if parts.is_empty() {
        return Err(p.usage(
            "name an entity: --user NAME, --user-default, --client-id ID or --client-id-default",
        ));
    }
    Ok(parts
        .into_iter()
        .map(|(kind, m)| match m {
            Match::Exactly(name) => (kind.to_string(), Some(name)),
            _ => (kind.to_string(), None),
        })
        .collect())
}

/// `user=alice,client-id=<default>`, kafka-configs' way of naming an entity.
fn entity_name(entity: &Entity) -> String {
    let parts: Vec<String> = entity
        .iter()
        .map(|(kind, name)| format!("{kind}={}", name.as_deref().unwrap_or("<default>")))
        .collect();
    parts.join(",")
}

fn list(args: Vec<String>) -> Result<()> {
    let p = parse("quota list", args, &ENTITY_FLAGS)?;
    if p.help {
        println!("{LIST_USAGE}");
        return Ok(());
    }
    let components: Vec<(String, Match)> =
        entity_parts(&p)?.into_iter().map(|(k, m)| (k.to_string(), m)).collect();
    let found = quotas::describe(&mut p.client()?, &components, false)?;
    let mut rows = vec![vec!["ENTITY".to_string(), "KEY".to_string(), "VALUE".to_string()]];
    for e in found {
        for (key, value) in e.values {
            rows.push(vec![entity_name(&e.entity), key, value.to_string()]);
        }
    }
    print!("{}", table(&rows));
    Ok(())
}

fn set(args: Vec<String>) -> Result<()> {
    let mut flags = ENTITY_FLAGS.to_vec();
    flags.extend(RATES.iter().map(|(flag, _)| value(flag)));
    let p = parse("quota set", args, &flags)?;
    if p.help {
        println!("{SET_USAGE}");
        return Ok(());
    }
    let entity = entity(&p)?;
    let mut ops = Vec::new();
    for (flag, key) in RATES {
        if let Some(v) = p.num::<f64>(flag, "a number")? {
            ops.push((key.to_string(), Some(v)));
        }
    }
    if ops.is_empty() {
        return Err(p.usage("nothing to set: give --producer-byte-rate, --consumer-byte-rate or --request-percentage"));
    }
    apply(&p, &entity, &ops)
}

fn remove(args: Vec<String>) -> Result<()> {
    let mut flags = ENTITY_FLAGS.to_vec();
    flags.push(repeated("--key"));
    let p = parse("quota remove", args, &flags)?;
    if p.help {
        println!("{REMOVE_USAGE}");
        return Ok(());
    }
    let entity = entity(&p)?;
    let keys: Vec<String> = match p.all("--key") {
        [] => RATES.iter().map(|(_, key)| key.to_string()).collect(),
        given => given.to_vec(),
    };
    let ops: Vec<(String, Option<f64>)> = keys.into_iter().map(|k| (k, None)).collect();
    apply(&p, &entity, &ops)
}

fn apply(p: &Parsed, entity: &Entity, ops: &[(String, Option<f64>)]) -> Result<()> {
    match quotas::alter(&mut p.client()?, entity, ops, false)? {
        None => {
            println!("Completed updating quotas of {}.", entity_name(entity));
            Ok(())
        }
        Some(e) => bail!("quotas of {}: {e}", entity_name(entity)),
    }
}
