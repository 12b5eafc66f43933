//! `corelog acl add|list|remove`: ACLs in the habits of `kafka-acls.sh`
//! (its flag names, its output lines), through CreateAcls, DescribeAcls
//! and DeleteAcls. The broker must run with `--authorizer on`; the
//! principal of this connection (PLAINTEXT: `User:ANONYMOUS`) needs ALTER
//! (DESCRIBE to list) on the cluster, or to be a super user.
//!
//! Owns the flags and the output layout; the requests are
//! `client::acls`'s, the names `auth::acl`'s.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use auth::acl::{Operation, PatternType, Permission, ResourceType, CLUSTER_NAME, WILDCARD};
use client::acls::{self, Acl, AclFilter};

use super::flags::{parse, repeated, switch, value, Flag, Parsed};
use super::subcommand;

const USAGE: &str = "usage: corelog acl <subcommand> [options]

subcommands:
  add       add ACLs: each --allow-principal and --deny-principal, for each --operation,
            on the resource
  list      ACLs, by resource, as kafka-acls.sh --list prints them (all without a resource)
  remove    remove the ACLs of the resource (those of --operation and the principals
            given, if given)

a resource, one of:
  --topic NAME  --group NAME  --transactional-id NAME  --cluster
  --resource-pattern-type T   literal or prefixed (add); any, match, literal or
                              prefixed (list, remove); default literal

Every subcommand takes --bootstrap HOST:PORT (default 127.0.0.1:9092),
--command-config FILE and --help.";

const ADD_USAGE: &str = "usage: corelog acl add RESOURCE [options]

  --allow-principal User:NAME   principal allowed (repeatable; User:* for everyone)
  --deny-principal User:NAME    principal denied (repeatable)
  --allow-host HOST             host of the allowed principals (repeatable; default *)
  --deny-host HOST              host of the denied principals (repeatable; default *)
  --operation OP                Read, Write, Create, Delete, Alter, Describe,
                                ClusterAction, DescribeConfigs, AlterConfigs,
                                IdempotentWrite or All (repeatable, at least one)
  RESOURCE                      --topic/--group/--transactional-id NAME or --cluster,
                                with --resource-pattern-type literal|prefixed
  --bootstrap HOST:PORT         a broker to ask (default 127.0.0.1:9092)
  --command-config FILE         TLS and SASL: security.protocol, sasl.*, ssl.* lines";

const LIST_USAGE: &str = "usage: corelog acl list [RESOURCE] [options]

  --principal User:NAME         only this principal's ACLs
  RESOURCE                      --topic/--group/--transactional-id NAME or --cluster,
                                with --resource-pattern-type any|match|literal|prefixed
  --bootstrap HOST:PORT         a broker to ask (default 127.0.0.1:9092)
  --command-config FILE         TLS and SASL: security.protocol, sasl.*, ssl.* lines";

const REMOVE_USAGE: &str = "usage: corelog acl remove RESOURCE [options]

  --allow-principal User:NAME   only this principal's ALLOW ACLs (repeatable)
  --deny-principal User:NAME    only this principal's DENY ACLs (repeatable)
  --operation OP                only this operation's (repeatable)
  RESOURCE                      --topic/--group/--transactional-id NAME or --cluster,
                                with --resource-pattern-type any|match|literal|prefixed
  --bootstrap HOST:PORT         a broker to ask (default 127.0.0.1:9092)
  --command-config FILE         TLS and SASL: security.protocol, sasl.*, ssl.* lines";

const RESOURCE_FLAGS: [Flag; 5] = [
    value("--topic"),
    value("--group"),
    value("--transactional-id"),
    switch("--cluster"),
    value("--resource-pattern-type"),
];

/// The protocol's ANY, in filters.
const ANY: i8 = 1;
/// The protocol's MATCH pattern filter.
const MATCH: i8 = 2;

pub fn run(args: Vec<String>) -> Result<()> {
    let Some((sub, args)) = subcommand("acl", USAGE, &args)? else { return Ok(()) };
    match sub {
        "add" => add(args),
        "list" => list(args),
        "remove" => remove(args),
        other => Err(super::flags::usage("acl", format!("unknown subcommand {other:?}"))),
    }
}

/// The resource named by the flags, if one is: (type, name).
fn resource(p: &Parsed) -> Result<Option<(ResourceType, String)>> {
    let mut named = Vec::new();
    for (flag, t) in [
        ("--topic", ResourceType::Topic),
        ("--group", ResourceType::Group),
        ("--transactional-id", ResourceType::TransactionalId),
    ] {
        if let Some(name) = p.get(flag) {
            named.push((t, name.to_string()));
        }
    }
    if p.has("--cluster") {
        named.push((ResourceType::Cluster, CLUSTER_NAME.to_string()));
    }
    match named.len() {
        0 => Ok(None),
        1 => Ok(named.pop()),
        _ => Err(p.usage("name one resource: --topic, --group, --transactional-id or --cluster")),
    }
}

/// `--resource-pattern-type` as the protocol's code; `filter` allows
/// `any` and `match`.
fn pattern(p: &Parsed, filter: bool) -> Result<i8> {
    match p.get("--resource-pattern-type").map(str::to_ascii_lowercase).as_deref() {
        None | Some("literal") => Ok(PatternType::Literal.code()),
        Some("prefixed") => Ok(PatternType::Prefixed.code()),
        Some("any") if filter => Ok(ANY),
        Some("match") if filter => Ok(MATCH),
        Some(other) => Err(p.usage(format!("--resource-pattern-type {other:?}: not allowed here"))),
    }
}

fn operations(p: &Parsed) -> Result<Vec<Operation>> {
    p.all("--operation")
        .iter()
        .map(|o| Operation::parse(o).ok_or_else(|| p.usage(format!("--operation {o:?}: unknown"))))
        .collect()
}

fn principals(p: &Parsed, flag: &str) -> Result<Vec<String>> {
    p.all(flag)
        .iter()
        .map(|principal| match principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(principal.clone()),
            _ => Err(p.usage(format!("{flag} {principal:?}: expected User:NAME"))),
        })
        .collect()
}

fn add(args: Vec<String>) -> Result<()> {
    let mut flags = RESOURCE_FLAGS.to_vec();
    flags.extend([
        repeated("--allow-principal"),
        repeated("--deny-principal"),
        repeated("--allow-host"),
        repeated("--deny-host"),
        repeated("--operation"),
    ]);
    let p = parse("acl add", args, &flags)?;
    if p.help {
        println!("{ADD_USAGE}");
        return Ok(());
    }
    p.positional_exactly(0, "")?;
    let Some((resource_type, name)) = resource(&p)? else {
        return Err(p.usage("missing resource: --topic, --group, --transactional-id or --cluster"));
    };
    let pattern = pattern(&p, false)?;
    let ops = operations(&p)?;
    if ops.is_empty() {
        return Err(p.usage("missing --operation"));
    }
    let mut acls = Vec::new();
    for (permission, who, hosts) in [
        (Permission::Allow, "--allow-principal", "--allow-host"),
        (Permission::Deny, "--deny-principal", "--deny-host"),
    ] {
        let hosts: Vec<String> = match p.all(hosts) {
            [] => vec![WILDCARD.to_string()],
            given => given.to_vec(),
        };
        for principal in principals(&p, who)? {
            for host in &hosts {
                for op in &ops {
                    acls.push(Acl {
                        resource_type: resource_type.code(),
                        name: name.clone(),
                        pattern,
                        principal: principal.clone(),
                        host: host.clone(),
                        operation: op.code(),
                        permission: permission.code(),
                    });
                }
            }
        }
    }
    if acls.is_empty() {
        return Err(p.usage("missing --allow-principal or --deny-principal"));
    }
    let outcomes = acls::create(&mut p.client()?, &acls)?;
    let failed: Vec<String> = acls
        .iter()
        .zip(&outcomes)
        .filter_map(|(a, e)| e.as_ref().map(|e| format!("{}: {e}", entry(a))))
        .collect();
    if !failed.is_empty() {
        bail!("adding ACLs: {}", failed.join("; "));
    }
    print!("{}", by_resource("Adding ACLs for resource", &acls));
    Ok(())
}

/// The filter of `list` and `remove`: the resource named (any without
/// one), the pattern type (literal with a resource, any without).
fn filter(p: &Parsed) -> Result<AclFilter> {
    let named = resource(p)?;
    let pattern = match (&named, p.has("--resource-pattern-type")) {
        (None, false) => ANY,
        _ => pattern(p, true)?,
    };
    Ok(AclFilter {
        resource_type: named.as_ref().map_or(ANY, |(t, _)| t.code()),
        name: named.map(|(_, n)| n),
        pattern,
        principal: None,
        host: None,
        operation: ANY,
        permission: ANY,
    })
}

fn list(args: Vec<String>) -> Result<()> {
    let mut flags = RESOURCE_FLAGS.to_vec();
    flags.push(value("--principal"));
    let p = parse("acl list", args, &flags)?;
    if p.help {
        println!("{LIST_USAGE}");
        return Ok(());
    }
    p.positional_exactly(0, "")?;
    let mut f = filter(&p)?;
    f.principal = p.get("--principal").map(str::to_string);
    let found = acls::describe(&mut p.client()?, &f)?;
    print!("{}", by_resource("Current ACLs for resource", &found));
    Ok(())
}

fn remove(args: Vec<String>) -> Result<()> {
    let mut flags = RESOURCE_FLAGS.to_vec();
    flags.extend([
        repeated("--allow-principal"),
        repeated("--deny-principal"),
        repeated("--operation"),
    ]);
    let p = parse("acl remove", args, &flags)?;
    if p.help {
        println!("{REMOVE_USAGE}");
        return Ok(());
    }
    p.positional_exactly(0, "")?;
    if resource(&p)?.is_none() {
        return Err(p.usage("missing resource: --topic, --group, --transactional-id or --cluster"));
    }
    let base = filter(&p)?;
    let ops: Vec<i8> = match operations(&p)?.as_slice() {
        [] => vec![ANY],
        given => given.iter().map(|o| o.code()).collect(),
    };
    // (principal, permission) pairs: every principal with ANY without any.
    let mut who: Vec<(Option<String>, i8)> = Vec::new();
    for principal in principals(&p, "--allow-principal")? {
        who.push((Some(principal), Permission::Allow.code()));
    }
    for principal in principals(&p, "--deny-principal")? {
        who.push((Some(principal), Permission::Deny.code()));
    }
    if who.is_empty() {
        who.push((None, ANY));
    }
    let filters: Vec<AclFilter> = who
        .iter()
        .flat_map(|(principal, permission)| {
            ops.iter().map(|&operation| AclFilter {
                principal: principal.clone(),
                permission: *permission,
                operation,
                ..base.clone()
            })
        })
        .collect();
    let outcomes = acls::delete(&mut p.client()?, &filters)?;
    let mut removed = Vec::new();
    let mut failed = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(acls) => removed.extend(acls),
            Err(e) => failed.push(e.to_string()),
        }
    }
    if !failed.is_empty() {
        bail!("removing ACLs: {}", failed.join("; "));
    }
    removed.sort();
    removed.dedup();
    print!("{}", by_resource("Removed ACLs for resource", &removed));
    Ok(())
}

/// kafka-acls.sh's `ResourcePattern(resourceType=TOPIC, name=t, patternType=LITERAL)`.
fn pattern_text(a: &Acl) -> String {
    let name = |code, of: fn(i8) -> Option<&'static str>| of(code).unwrap_or("UNKNOWN");
    format!(
        "ResourcePattern(resourceType={}, name={}, patternType={})",
        name(a.resource_type, |c| ResourceType::from_code(c).map(ResourceType::name)),
        a.name,
        name(a.pattern, |c| PatternType::from_code(c).map(PatternType::name)),
    )
}

/// kafka-acls.sh's `(principal=User:a, host=*, operation=READ, permissionType=ALLOW)`.
fn entry(a: &Acl) -> String {
    format!(
        "(principal={}, host={}, operation={}, permissionType={})",
        a.principal,
        a.host,
        Operation::from_code(a.operation).map_or("UNKNOWN", Operation::name),
        Permission::from_code(a.permission).map_or("UNKNOWN", Permission::name),
    )
}

/// Bindings grouped by resource pattern, each group under `heading`.
fn by_resource(heading: &str, acls: &[Acl]) -> String {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in acls {
        groups.entry(pattern_text(a)).or_default().push(entry(a));
    }
    let mut out = String::new();
    for (resource, entries) in groups {
        out += &format!("{heading} `{resource}`:\n");
        for e in entries {
            out += &format!(" \t{e}\n");
        }
        out.push('\n');
    }
    out
}
