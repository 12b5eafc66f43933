//! `corelog group list|describe|delete|reset-offsets`, in the habits of
//! Kafka's `kafka-consumer-groups.sh`: the describe table (CURRENT-OFFSET,
//! LOG-END-OFFSET, LAG per partition), and resets that only plan unless
//! `--execute` is given and refuse groups with active members.
//!
//! Owns the flags, the reset targets and the output layout; it must not
//! build requests (those are `client::groups`').

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use client::error::KafkaError;
use client::groups::{self, GroupDescription};
use client::Client;
use net::kafka_protocol::error::ResponseError;

use super::flags::{parse, switch, value, Parsed};
use super::{datetime, subcommand, table};

const USAGE: &str = "usage: corelog group <subcommand> [options]

subcommands:
  list              list consumer group ids, one per line
  describe NAME     state, members, and per partition the committed offset,
                    log end offset and lag
  delete NAME..     delete groups without members, with their offsets
  reset-offsets NAME --topic T (--to-earliest|--to-latest|--to-offset N|--to-datetime T)
                    plan (or with --execute, commit) new offsets

Every subcommand takes --bootstrap HOST:PORT (default 127.0.0.1:9092),
--command-config FILE and --help.";

const LIST_USAGE: &str = "usage: corelog group list [options]

  --bootstrap HOST:PORT     a broker to ask (default 127.0.0.1:9092)
  --command-config FILE     TLS and SASL: security.protocol, sasl.*, ssl.* lines";

const DESCRIBE_USAGE: &str = "usage: corelog group describe NAME [options]

  --bootstrap HOST:PORT     a broker to ask (default 127.0.0.1:9092)
  --command-config FILE     TLS and SASL: security.protocol, sasl.*, ssl.* lines";

const DELETE_USAGE: &str = "usage: corelog group delete NAME ... [options]

  --bootstrap HOST:PORT     a broker to ask (default 127.0.0.1:9092)
  --command-config FILE     TLS and SASL: security.protocol, sasl.*, ssl.* lines";

const RESET_USAGE: &str =
    "usage: corelog group reset-offsets NAME --topic TOPIC[:P,P..] TARGET [--execute]

Prints the new offset of every partition; commits them only with --execute.
The group must have no active members.

  --topic TOPIC[:P,P..]     the topic (optionally only the listed partitions)
  --to-earliest             the log start offset
  --to-latest               the log end offset
  --to-offset N             offset N (clamped to the partition's earliest..latest)
  --to-datetime TIME        the first offset at or after TIME,
                            YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM] (UTC without a zone);
                            the log end offset when no record is that recent
  --execute                 commit the new offsets
  --bootstrap HOST:PORT     a broker to ask (default 127.0.0.1:9092)
  --command-config FILE     TLS and SASL: security.protocol, sasl.*, ssl.* lines";

pub fn run(args: Vec<String>) -> Result<()> {
    let Some((sub, args)) = subcommand("group", USAGE, &args)? else { return Ok(()) };
    match sub {
        "list" => list(args),
        "describe" => describe(args),
        "delete" => delete(args),
        "reset-offsets" => reset_offsets(args),
        other => Err(super::flags::usage("group", format!("unknown subcommand {other:?}"))),
    }
}

fn list(args: Vec<String>) -> Result<()> {
    let p = parse("group list", args, &[])?;
    if p.help {
        println!("{LIST_USAGE}");
        return Ok(());
    }
    p.positional_exactly(0, "")?;
    for g in groups::list(&mut p.client()?)? {
        println!("{}", g.id);
    }
    Ok(())
}

/// The group, or GROUP_ID_NOT_FOUND when it does not exist (Kafka before
/// 4.0 and Corelog answer such a group as "Dead").
fn existing(client: &mut Client, group: &str) -> Result<GroupDescription> {
    let d = groups::describe(client, group)?;
    if d.state == "Dead" {
        return Err(anyhow::Error::new(KafkaError {
            code: ResponseError::GroupIdNotFound.code(),
            message: Some(format!("group {group} does not exist")),
        }));
    }
    Ok(d)
}

fn describe(args: Vec<String>) -> Result<()> {
    let p = parse("group describe", args, &[])?;
    if p.help {
        println!("{DESCRIBE_USAGE}");
        return Ok(());
    }
    p.positional_exactly(1, "group name")?;
    let group = &p.positional[0];
    let mut client = p.client()?;
    let d = existing(&mut client, group).with_context(|| format!("describing group {group}"))?;
    let committed = groups::committed(&mut client, group, None)?;
    // Every partition the group has an offset for or a member is assigned.
    let mut owner: BTreeMap<(String, i32), usize> = BTreeMap::new();
    for (i, m) in d.members.iter().enumerate() {
        for (t, ps) in &m.assignment {
            for &p in ps {
                owner.insert((t.clone(), p), i);
            }
        }
    }
    let mut partitions: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (t, p) in committed.keys().chain(owner.keys()) {
        let ps = partitions.entry(t.clone()).or_default();
        if !ps.contains(p) {
            ps.push(*p);
        }
    }
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    if !partitions.is_empty() {
        let names: Vec<&str> = partitions.keys().map(String::as_str).collect();
        let md = client.metadata(Some(&names))?;
        for (t, ps) in &mut partitions {
            ps.sort_unstable();
            if md.topic(t).is_err() {
                continue; // a deleted topic: no log end offset
            }
            for (p, o) in client.list_offsets(&md, t, ps, -1)? {
                ends.insert((t.clone(), p), o);
            }
        }
    }
    let protocol = if d.protocol.is_empty() {
        d.protocol_type.clone()
    } else {
        format!("{}/{}", d.protocol_type, d.protocol)
    };
    println!(
        "Group {group}: state {}, protocol {}, {} member{}",
        d.state,
        if protocol.is_empty() { "-" } else { &protocol },
        d.members.len(),
        if d.members.len() == 1 { "" } else { "s" }
    );
    println!();
    let dash = || "-".to_string();
    let mut rows = vec![[
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]
    .map(String::from)
    .to_vec()];
    for (t, ps) in &partitions {
        for &p in ps {
            let key = (t.clone(), p);
            let current = committed.get(&key).copied();
            let end = ends.get(&key).copied();
            let lag = match (current, end) {
                (Some(c), Some(e)) => (e - c).max(0).to_string(),
                _ => dash(),
            };
            let m = owner.get(&key).map(|&i| &d.members[i]);
            rows.push(vec![
                group.clone(),
                t.clone(),
                p.to_string(),
                current.map(|c| c.to_string()).unwrap_or_else(dash),
                end.map(|e| e.to_string()).unwrap_or_else(dash),
                lag,
                m.map(|m| m.member_id.clone()).unwrap_or_else(dash),
                m.map(|m| m.client_host.clone()).unwrap_or_else(dash),
                m.map(|m| m.client_id.clone()).unwrap_or_else(dash),
            ]);
        }
    }
    // Members without partitions still show, as in Kafka's table.
    for m in d.members.iter().filter(|m| m.assignment.values().all(Vec::is_empty)) {
        rows.push(vec![
            group.clone(),
            dash(),
            dash(),
            dash(),
            dash(),
            dash(),
            m.member_id.clone(),
            m.client_host.clone(),
            m.client_id.clone(),
        ]);
    }
    print!("{}", table(&rows));
    if !d.members.is_empty() {
        println!();
        let mut rows = vec![["CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS", "ASSIGNMENT"]
            .map(String::from)
            .to_vec()];
        for m in &d.members {
            let assignment: Vec<String> = m
                .assignment
                .iter()
                .filter(|(_, ps)| !ps.is_empty())
                .map(|(t, ps)| {
                    format!("{t}({})", ps.iter().map(i32::to_string).collect::<Vec<_>>().join(","))
                })
                .collect();
            rows.push(vec![
                m.member_id.clone(),
                m.client_host.clone(),
                m.client_id.clone(),
                m.assignment.values().map(Vec::len).sum::<usize>().to_string(),
                if assignment.is_empty() { dash() } else { assignment.join(",") },
            ]);
        }
        print!("{}", table(&rows));
    }
    Ok(())
}

fn delete(args: Vec<String>) -> Result<()> {
    let p = parse("group delete", args, &[])?;
    if p.help {
        println!("{DELETE_USAGE}");
        return Ok(());
    }
    if p.positional.is_empty() {
        return Err(p.usage("missing group name"));
    }
    let outcome = groups::delete(&mut p.client()?, &p.positional)?;
    let failed: Vec<String> =
        outcome.iter().filter_map(|(g, e)| e.as_ref().map(|e| format!("group {g}: {e}"))).collect();
    if !failed.is_empty() {
        bail!("deleting {}", failed.join("; "));
    }
    // What kafka-consumer-groups.sh says.
    let names: Vec<String> = p.positional.iter().map(|g| format!("'{g}'")).collect();
    println!("Deletion of requested consumer groups ({}) was successful.", names.join(", "));
    Ok(())
}

/// Where `reset-offsets` moves the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Earliest,
    Latest,
    Offset(i64),
    /// Milliseconds since the epoch.
    Time(i64),
}

fn target(p: &Parsed) -> Result<Target> {
    let mut targets = Vec::new();
    if p.has("--to-earliest") {
        targets.push(Target::Earliest);
    }
    if p.has("--to-latest") {
        targets.push(Target::Latest);
    }
    if let Some(n) = p.num::<i64>("--to-offset", "an offset")? {
        if n < 0 {
            return Err(p.usage("--to-offset must not be negative"));
        }
        targets.push(Target::Offset(n));
    }
    if let Some(t) = p.get("--to-datetime") {
        targets.push(Target::Time(
            datetime::parse_ms(t).map_err(|e| p.usage(format!("--to-datetime {e}")))?,
        ));
    }
    match targets[..] {
        [t] => Ok(t),
        [] => {
            Err(p
                .usage("give one of --to-earliest, --to-latest, --to-offset N, --to-datetime TIME"))
        }
        _ => {
            Err(p.usage("give only one of --to-earliest, --to-latest, --to-offset, --to-datetime"))
        }
    }
}

fn reset_offsets(args: Vec<String>) -> Result<()> {
    let p = parse(
        "group reset-offsets",
        args,
        &[
            value("--topic"),
            switch("--to-earliest"),
            switch("--to-latest"),
            value("--to-offset"),
            value("--to-datetime"),
            switch("--execute"),
        ],
    )?;
    if p.help {
        println!("{RESET_USAGE}");
        return Ok(());
    }
    p.positional_exactly(1, "group name")?;
    let group = &p.positional[0];
    let spec = p.get("--topic").ok_or_else(|| p.usage("missing --topic"))?;
    let (topic, only) = match spec.split_once(':') {
        None => (spec.to_string(), None),
        Some((t, ps)) => {
            let ps: Result<Vec<i32>, _> = ps.split(',').map(str::parse).collect();
            let ps = ps.map_err(|_| p.usage(format!("--topic {spec:?}: expected TOPIC:P,P,..")))?;
            (t.to_string(), Some(ps))
        }
    };
    let target = target(&p)?;
    let mut client = p.client()?;
    let d = groups::describe(&mut client, group)?;
    if !d.is_inactive() {
        bail!(
            "group {group} has active members (state {}, {} member{}): \
             offsets can only be reset while the group is empty; stop its consumers first",
            d.state,
            d.members.len(),
            if d.members.len() == 1 { "" } else { "s" }
        );
    }
    let md = client.topic_metadata(&topic)?;
    let all: Vec<i32> = md.topic(&topic)?.partitions.iter().map(|p| p.partition).collect();
    let partitions = match only {
        None => all,
        Some(ps) => {
            if let Some(bad) = ps.iter().find(|p| !all.contains(p)) {
                bail!("topic {topic} has no partition {bad}");
            }
            ps
        }
    };
    let earliest = client.list_offsets(&md, &topic, &partitions, -2)?;
    let latest = client.list_offsets(&md, &topic, &partitions, -1)?;
    let by_time = match target {
        Target::Time(ms) => Some(client.list_offsets(&md, &topic, &partitions, ms)?),
        _ => None,
    };
    let mut plan = BTreeMap::new();
    for &part in &partitions {
        let (lo, hi) = (earliest[&part], latest[&part]);
        let new = match target {
            Target::Earliest => lo,
            Target::Latest => hi,
            Target::Offset(n) => n.clamp(lo, hi),
            // No record at or after the time: the log end, as Kafka does.
            Target::Time(_) => match by_time.as_ref().and_then(|m| m.get(&part)).copied() {
                Some(o) if o >= 0 => o,
                _ => hi,
            },
        };
        plan.insert((topic.clone(), part), new);
    }
    let mut rows = vec![["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"].map(String::from).to_vec()];
    for ((t, part), o) in &plan {
        rows.push(vec![group.clone(), t.clone(), part.to_string(), o.to_string()]);
    }
    print!("{}", table(&rows));
    if p.has("--execute") {
        groups::commit(&mut client, group, -1, "", &plan)
            .with_context(|| format!("resetting the offsets of group {group}"))?;
    } else {
        eprintln!("note: a plan only, nothing committed; add --execute to commit these offsets");
    }
    Ok(())
}
