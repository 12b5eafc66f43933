//! `corelog`: the one binary. Parses flags and hands over to the crates
//! below; no logic of its own.

mod admin;
mod logger;
mod serve;

const USAGE: &str = "usage: corelog <command> [options]

commands:
  serve     run a broker node (one Kafka broker endpoint per core)
  bench     benchmarks: the Kafka load generator, Kafka's 2014 set, scaling, the engine
  topic     create, list, describe, delete topics; alter their configs
  group     list, describe, delete consumer groups; reset their offsets
  cluster   describe the cluster: id, controller, brokers
  user      list, add, remove SCRAM users (SASL logins)
  acl       add, list, remove ACLs (with serve --authorizer on)
  quota     list, set, remove client quotas
  produce   lines from stdin to records of a topic
  consume   records of a topic to stdout

The admin, produce and consume commands speak the Kafka protocol to
--bootstrap HOST:PORT (default 127.0.0.1:9092), Corelog or Apache Kafka.
Run `corelog <command> --help` for a command's options.";

fn main() {
    logger::init();
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let result = match command.as_deref() {
        Some("serve") => serve::run(args.collect()),
        Some(
            c @ ("topic" | "group" | "cluster" | "user" | "acl" | "quota" | "produce" | "consume"),
        ) => admin::run(c, args.collect()),
        Some("bench") => bench::cli::run(args.collect(), std::env::current_exe().ok()),
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some("--version") => {
            println!("corelog {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some(other) => Err(anyhow::anyhow!("unknown command {other:?} (see `corelog --help`)")),
    };
    if let Err(e) = result {
        // One line: the admin commands' errors never hold a newline, and
        // `{:#}` joins the context chain with ": ".
        eprintln!("corelog: {e:#}");
        // Usage errors exit 2; other failures of the admin commands exit 1.
        // `serve` and `bench` keep exiting 2 on every error, as before.
        let admin = matches!(
            command.as_deref(),
            Some("topic" | "group" | "cluster" | "user" | "acl" | "quota" | "produce" | "consume")
        );
        let usage = e.downcast_ref::<admin::flags::UsageError>().is_some();
        std::process::exit(if admin && !usage { 1 } else { 2 });
    }
}
