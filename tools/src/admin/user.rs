//! `corelog user list|add|remove`: SCRAM users, as `kafka-configs
//! --entity-type users --alter --add-config 'SCRAM-SHA-512=[...]'` manages
//! them (DescribeUserScramCredentials, AlterUserScramCredentials). The
//! password is read from stdin or a file, never from the command line
//! (where `ps` would show it), and salted here: the broker gets a salt and
//! a salted password only.
//!
//! Owns the flags and the output layout; the requests are
//! `client::users`'s, the salting `auth`'s.

use std::io::BufRead;

use anyhow::{bail, Context, Result};
use auth::{Mechanism, SaltedPassword};
use client::users::{self, mechanism_name, UserChange};

use super::flags::{parse, value};
use super::{subcommand, table};

const USAGE: &str = "usage: corelog user <subcommand> [options]

subcommands:
  list [USER...]    users with SCRAM credentials: mechanism and iterations
  add USER          set USER's credential of a mechanism (PLAIN logins check it too);
                    the password is the first line of stdin, or of --password-file
  remove USER       delete USER's credential of --mechanism, or all of them

Every subcommand takes --bootstrap HOST:PORT (default 127.0.0.1:9092),
--command-config FILE and --help.";

const LIST_USAGE: &str = "usage: corelog user list [USER...] [options]

  --bootstrap HOST:PORT     a broker to ask (default 127.0.0.1:9092)
  --command-config FILE     TLS and SASL: security.protocol, sasl.*, ssl.* lines";

const ADD_USAGE: &str = "usage: corelog user add USER [options]

  --mechanism M             SCRAM-SHA-256 or SCRAM-SHA-512 (default SCRAM-SHA-512)
  --iterations N            4096 to 16384 (default 4096)
  --password-file FILE      read the password from FILE's first line (default: stdin)
  --bootstrap HOST:PORT     a broker to ask (default 127.0.0.1:9092)
  --command-config FILE     TLS and SASL: security.protocol, sasl.*, ssl.* lines";

const REMOVE_USAGE: &str = "usage: corelog user remove USER [options]

  --mechanism M             SCRAM-SHA-256 or SCRAM-SHA-512 (default: every one USER has)
  --bootstrap HOST:PORT     a broker to ask (default 127.0.0.1:9092)
  --command-config FILE     TLS and SASL: security.protocol, sasl.*, ssl.* lines";

pub fn run(args: Vec<String>) -> Result<()> {
    let Some((sub, args)) = subcommand("user", USAGE, &args)? else { return Ok(()) };
    match sub {
        "list" => list(args),
        "add" => add(args),
        "remove" => remove(args),
        other => Err(super::flags::usage("user", format!("unknown subcommand {other:?}"))),
    }
}

fn list(args: Vec<String>) -> Result<()> {
    let p = parse("user list", args, &[])?;
    if p.help {
        println!("{LIST_USAGE}");
        return Ok(());
    }
    let wanted = (!p.positional.is_empty()).then_some(p.positional.as_slice());
    let answers = users::describe(&mut p.client()?, wanted)?;
    let mut rows =
        vec![vec!["USER".to_string(), "MECHANISM".to_string(), "ITERATIONS".to_string()]];
    let mut missing = Vec::new();
    for (user, answer) in answers {
        match answer {
            Ok(u) => {
                for (m, iterations) in u.credentials {
                    rows.push(vec![user.clone(), mechanism_name(m).into(), iterations.to_string()]);
                }
            }
            Err(e) => missing.push(format!("user {user}: {e}")),
        }
    }
    print!("{}", table(&rows));
    if !missing.is_empty() {
        bail!("{}", missing.join("; "));
    }
    Ok(())
}

fn mechanism(p: &super::flags::Parsed) -> Result<Option<Mechanism>> {
    p.get("--mechanism")
        .map(|m| {
            Mechanism::parse(m).ok_or_else(|| {
                p.usage(format!("--mechanism {m:?}: expected SCRAM-SHA-256 or SCRAM-SHA-512"))
            })
        })
        .transpose()
}

fn add(args: Vec<String>) -> Result<()> {
    let flags = [value("--mechanism"), value("--iterations"), value("--password-file")];
    let p = parse("user add", args, &flags)?;
    if p.help {
        println!("{ADD_USAGE}");
        return Ok(());
    }
    p.positional_exactly(1, "USER")?;
    let user = p.positional[0].clone();
    let m = mechanism(&p)?.unwrap_or(Mechanism::ScramSha512);
    let allowed = auth::scram::ITERATIONS_MIN..=auth::scram::ITERATIONS_MAX;
    let iterations = p.num::<u32>("--iterations", "a number")?.unwrap_or(*allowed.start());
    if !allowed.contains(&iterations) {
        return Err(p.usage(format!(
            "--iterations {iterations}: expected {} to {}",
            allowed.start(),
            allowed.end()
        )));
    }
    let password = match p.get("--password-file") {
        Some(file) => first_line(std::io::BufReader::new(
            std::fs::File::open(file).with_context(|| format!("--password-file {file}"))?,
        ))?,
        None => first_line(std::io::stdin().lock())?,
    };
    let salted = SaltedPassword::new(m, password.as_bytes(), iterations)?;
    let change = UserChange::Upsert {
        user: user.clone(),
        mechanism: m.kafka_type(),
        iterations: iterations as i32,
        salt: salted.salt,
        salted: salted.salted_password,
    };
    check(users::alter(&mut p.client()?, &[change])?)?;
    println!("Set the {} credential of user {user} ({iterations} iterations).", m.name());
    Ok(())
}

fn remove(args: Vec<String>) -> Result<()> {
    let p = parse("user remove", args, &[value("--mechanism")])?;
    if p.help {
        println!("{REMOVE_USAGE}");
        return Ok(());
    }
    p.positional_exactly(1, "USER")?;
    let user = p.positional[0].clone();
    let mut client = p.client()?;
    let mechanisms: Vec<i8> = match mechanism(&p)? {
        Some(m) => vec![m.kafka_type()],
        None => {
            let answers = users::describe(&mut client, Some(std::slice::from_ref(&user)))?;
            let Some((_, answer)) = answers.into_iter().next() else {
                bail!("user {user}: no answer");
            };
            answer
                .with_context(|| format!("user {user}"))?
                .credentials
                .iter()
                .map(|(m, _)| *m)
                .collect()
        }
    };
    let changes: Vec<UserChange> = mechanisms
        .iter()
        .map(|&mechanism| UserChange::Delete { user: user.clone(), mechanism })
        .collect();
    check(users::alter(&mut client, &changes)?)?;
    let names: Vec<&str> = mechanisms.iter().map(|&m| mechanism_name(m)).collect();
    println!("Deleted the {} credential(s) of user {user}.", names.join(", "));
    Ok(())
}

/// Fails with every user's refusal, if any.
fn check(outcome: Vec<(String, Option<client::error::KafkaError>)>) -> Result<()> {
    let failed: Vec<String> =
        outcome.iter().filter_map(|(u, e)| e.as_ref().map(|e| format!("user {u}: {e}"))).collect();
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    Ok(())
}

/// The first line of `input`, without its line end; never empty.
fn first_line(mut input: impl BufRead) -> Result<String> {
    let mut line = String::new();
    input.read_line(&mut line).context("reading the password")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("no password: give it on stdin's first line or in --password-file");
    }
    Ok(password)
}
