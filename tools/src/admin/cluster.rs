//! `corelog cluster describe`: cluster id, controller, brokers, from one
//! Metadata request (what `kafka-metadata-quorum.sh`/`kcat -L` show).
//!
//! Owns the flags and the output layout; it must not build requests (the
//! metadata is `client::Client`'s).

use anyhow::Result;
use client::Client;

use super::flags::parse;
use super::{subcommand, table};

const USAGE: &str = "usage: corelog cluster <subcommand> [options]

subcommands:
  describe          cluster id, controller id and brokers (id, host:port, rack)

Every subcommand takes --bootstrap HOST:PORT (default 127.0.0.1:9092) and --help.";

const DESCRIBE_USAGE: &str = "usage: corelog cluster describe [options]

  --bootstrap HOST:PORT     a broker to ask (default 127.0.0.1:9092)";

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
    let md = Client::new(p.bootstrap()).metadata(Some(&[]))?;
    println!("Cluster id: {}", md.cluster_id.as_deref().unwrap_or("-"));
    println!(
        "Controller: {}",
        if md.controller_id < 0 { "-".to_string() } else { md.controller_id.to_string() }
    );
    let mut rows = vec![vec!["BROKER".to_string(), "HOST:PORT".to_string(), "RACK".to_string()]];
    for b in md.brokers.values() {
        rows.push(vec![
            b.id.to_string(),
            b.addr(),
            b.rack.clone().unwrap_or_else(|| "-".to_string()),
        ]);
    }
    print!("{}", table(&rows));
    Ok(())
}
