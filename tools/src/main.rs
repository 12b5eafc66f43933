//! `corelog`: the one binary. Parses flags and hands over to the crates
//! below; no logic of its own.

mod logger;
mod serve;

const USAGE: &str = "usage: corelog <command> [options]

commands:
  serve     run a broker node (one Kafka broker endpoint per core)
  bench     benchmarks: the Kafka load generator, Kafka's 2014 set, scaling, the engine

Run `corelog <command> --help` for a command's options.";

fn main() {
    logger::init();
    let mut args = std::env::args().skip(1);
    let result = match args.next().as_deref() {
        Some("serve") => serve::run(args.collect()),
        Some("bench") => bench::cli::run(args.collect(), std::env::current_exe().ok()),
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some("--version") => {
            println!("corelog {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some(other) => Err(anyhow::anyhow!("unknown command {other:?}\n\n{USAGE}")),
    };
    if let Err(e) = result {
        eprintln!("corelog: {e:#}");
        std::process::exit(2);
    }
}
