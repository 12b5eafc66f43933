//! `corelog cluster describe`: cluster id, controller, nodes and brokers
//! (Metadata), the metadata quorum's voters with their log end and lag
//! (DescribeQuorum): what `kcat -L` and `kafka-metadata-quorum.sh` show.
//!
//! Owns the flags and the output layout; it must not build requests (the
//! metadata is `client::Client`'s).

use std::collections::BTreeMap;

use anyhow::Result;

use super::flags::parse;
use super::{subcommand, table};

const USAGE: &str = "usage: corelog cluster <subcommand> [options]

subcommands:
  describe          cluster id, active controller, nodes and their brokers (id,
                    host:port, rack), the metadata quorum's voters with log end and lag

Every subcommand takes --bootstrap HOST:PORT (default 127.0.0.1:9092),
--command-config FILE and --help.";

const DESCRIBE_USAGE: &str = "usage: corelog cluster describe [options]

  --bootstrap HOST:PORT     a broker to ask (default 127.0.0.1:9092)
  --command-config FILE     TLS and SASL: security.protocol, sasl.*, ssl.* lines";

pub fn run(args: Vec<String>) -> Result<()> {
    let Some((sub, args)) = subcommand("cluster", USAGE, &args)? else { return Ok(()) };
    match sub {
        "describe" => describe(args),
        other => Err(super::flags::usage("cluster", format!("unknown subcommand {other:?}"))),
    }
}

fn describe(args: Vec<String>) -> Result<()> {
    let p = parse("cluster describe", args, &[])?;
    if p.help {
        println!("{DESCRIBE_USAGE}");
        return Ok(());
    }
    p.positional_exactly(0, "")?;
    let mut client = p.client()?;
    let md = client.metadata(Some(&[]))?;
    println!("Cluster id: {}", md.cluster_id.as_deref().unwrap_or("-"));
    println!(
        "Controller: {}",
        if md.controller_id < 0 { "-".to_string() } else { md.controller_id.to_string() }
    );
    // Broker N*1000+k is shard k of node N.
    let mut nodes: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for &id in md.brokers.keys() {
        nodes.entry(id / 1000).or_default().push(id);
    }
    let mut rows = vec![vec!["NODE".to_string(), "BROKERS".to_string()]];
    for (node, brokers) in &nodes {
        let list: Vec<String> = brokers.iter().map(i32::to_string).collect();
        rows.push(vec![node.to_string(), list.join(",")]);
    }
    print!("{}", table(&rows));
    let mut rows = vec![vec!["BROKER".to_string(), "HOST:PORT".to_string(), "RACK".to_string()]];
    for b in md.brokers.values() {
        rows.push(vec![
            b.id.to_string(),
            b.addr(),
            b.rack.clone().unwrap_or_else(|| "-".to_string()),
        ]);
    }
    print!("{}", table(&rows));
    let q = client.describe_quorum()?;
    println!(
        "Quorum: leader node {}, epoch {}, high watermark {}",
        q.leader, q.epoch, q.high_watermark
    );
    let mut rows = vec![vec!["VOTER".to_string(), "LOG END".to_string(), "LAG".to_string()]];
    for (node, end) in &q.voters {
        let role = if *node == q.leader { " (leader)" } else { "" };
        let lag = (q.high_watermark - end).max(0);
        rows.push(vec![format!("{node}{role}"), end.to_string(), lag.to_string()]);
    }
    print!("{}", table(&rows));
    Ok(())
}
