//! `bench`: runs one benchmark, as `corelog bench` does. Usage:
//!
//! ```text
//! cargo run --release -p bench -- <benchmark> [--quick] [options]
//! ```
//!
//! Broker benchmarks start the `corelog` binary found beside this one
//! (build it first: `cargo build --release --bin corelog`).

fn main() -> anyhow::Result<()> {
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("corelog")))
        .filter(|p| p.exists());
    bench::cli::run(std::env::args().skip(1).collect(), sibling)
}
