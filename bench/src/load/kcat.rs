//! The same loads through a real client: kcat (librdkafka, C), so every
//! table can show what a Kafka client sees beside the built-in generator.
//!
//! Runs kcat as a child process of the benchmark. Producing, the
//! generator's thread feeds it lines on standard input (values of the
//! record size, printable, newline-delimited) and kcat batches them as
//! librdkafka does (its defaults, `acks` as asked); the run ends when kcat
//! has delivered everything and exits. Consuming, kcat reads every
//! partition from the beginning to the end (`-e`) and prints one byte per
//! message, which this module counts. The elapsed time includes kcat's
//! start (tens of milliseconds), so short runs understate it.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::client::{self, Leaders};
use super::Outcome;

/// Lines written per `write` call to kcat's standard input.
const LINES_PER_WRITE: usize = 4096;

/// Longest a kcat run may take (50 M records at 100 k/s would be 500 s).
pub const KCAT_TIMEOUT: Duration = Duration::from_secs(900);

pub fn available() -> bool {
    Command::new("kcat").arg("-V").output().is_ok_and(|o| o.status.success())
}

/// Produces `records` values of `record_size` bytes into `topic` with
/// kcat, checking afterwards that the partitions grew by that much.
pub fn produce(
    bootstrap: &str,
    leaders: &Leaders,
    topic: &str,
    records: u64,
    record_size: usize,
    acks: i16,
) -> Result<Outcome> {
    let before: i64 = client::offsets(leaders, topic, -1)?.values().sum();
    let acks = if acks < 0 { "all".to_string() } else { acks.to_string() };
    let start = Instant::now();
    let mut child = Command::new("kcat")
        .args(["-P", "-q", "-b", bootstrap, "-t", topic, "-X", &format!("acks={acks}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting kcat")?;
    let mut stdin = child.stdin.take().context("kcat stdin")?;
    let feeder = std::thread::spawn(move || -> std::io::Result<()> {
        let line: Vec<u8> =
            (0..record_size).map(|i| b'a' + (i % 26) as u8).chain(std::iter::once(b'\n')).collect();
        let block: Vec<u8> = line.repeat(LINES_PER_WRITE);
        let mut left = records;
        while left > 0 {
            let n = left.min(LINES_PER_WRITE as u64) as usize;
            stdin.write_all(&block[..n * line.len()])?;
            left -= n as u64;
        }
        Ok(()) // dropping stdin ends kcat's input
    });
    let status = wait(&mut child, "kcat -P")?;
    let fed = feeder.join().map_err(|_| anyhow::anyhow!("kcat feeder panicked"))?;
    let elapsed = start.elapsed();
    if !status.0 {
        bail!("kcat -P failed: {}", status.1);
    }
    fed.context("feeding kcat")?;
    let after: i64 = client::offsets(leaders, topic, -1)?.values().sum();
    if ((after - before) as u64) < records {
        bail!("kcat -P: {} of {records} records stored", after - before);
    }
    Ok(outcome(records, record_size, elapsed))
}

/// Consumes every partition of `topic` from the beginning to the end with
/// kcat; fails unless it received `expected` records.
pub fn consume(bootstrap: &str, topic: &str, expected: u64, record_size: usize) -> Result<Outcome> {
    let start = Instant::now();
    let mut child = Command::new("kcat")
        .args(["-C", "-q", "-e", "-o", "beginning", "-b", bootstrap, "-t", topic, "-f", "."])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting kcat")?;
    let mut stdout = child.stdout.take().context("kcat stdout")?;
    let counter = std::thread::spawn(move || -> u64 {
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        while let Ok(got) = stdout.read(&mut buf) {
            if got == 0 {
                break;
            }
            n += got as u64;
        }
        n
    });
    let status = wait(&mut child, "kcat -C")?;
    let received = counter.join().map_err(|_| anyhow::anyhow!("kcat counter panicked"))?;
    let elapsed = start.elapsed();
    if !status.0 {
        bail!("kcat -C failed: {}", status.1);
    }
    if received != expected {
        bail!("kcat -C received {received} records, expected {expected}");
    }
    Ok(outcome(received, record_size, elapsed))
}

fn outcome(records: u64, record_size: usize, elapsed: Duration) -> Outcome {
    Outcome {
        records,
        payload_bytes: records * record_size as u64,
        batch_bytes: 0,
        batches: 0,
        elapsed,
        latency_us: super::histogram(),
        group_us: super::histogram(),
        txn: super::TxnTimes::new(),
    }
}

/// Waits (bounded) for kcat to exit: (success, its standard error).
fn wait(child: &mut std::process::Child, what: &str) -> Result<(bool, String)> {
    let mut stderr = child.stderr.take().context("kcat stderr")?;
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + KCAT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("{what} did not finish within {} s", KCAT_TIMEOUT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let errors = errors.join().unwrap_or_default();
    Ok((status.success(), errors.trim().to_string()))
}
