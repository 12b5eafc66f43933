//! `corelog produce TOPIC`: lines from stdin become records, like Kafka's
//! `kafka-console-producer.sh` and `kcat -P`. Keyed records go to
//! `murmur2(key) % partitions` (Java's default partitioner), unkeyed ones
//! round robin, a batch at a time, unless `--partition` is given. Each
//! batch is acknowledged before the next is sent; any produce error ends
//! the command with a non-zero exit.
//!
//! Owns line splitting, partition choice and batching; it must not build
//! requests (those are `client::records`').

use std::collections::BTreeMap;
use std::io::BufRead;

use anyhow::{bail, Result};
use client::partitioner::partition_for_key;
use client::records::{self, Header, NewRecord};
use client::{Client, Metadata};

use super::flags::{parse, repeated, switch, value};

const USAGE: &str = "usage: corelog produce TOPIC [options] < lines

Each line of stdin is the value of one record (a trailing \\r\\n or \\n is
removed). Nothing is printed on success.

  --partition P             send every record to partition P
  --key-separator SEP       each line is KEY SEP VALUE, split at the first SEP;
                            a line without SEP is an error. Keyed records go to
                            murmur2(key) % partitions, as Java clients place them
  --header KEY=VALUE        a header on every record (repeatable)
  --acks 0|1|all            acknowledgments to wait for (default all)
  --batch-records N         records per batch (default 500)
  --verbose                 print the number of records produced to stderr
  --bootstrap HOST:PORT     a broker to ask (default 127.0.0.1:9092)
  --command-config FILE     TLS and SASL: security.protocol, sasl.*, ssl.* lines";

/// Bytes of records per batch before it is sent, well under Kafka's default
/// `max.message.bytes` (1 MiB) even after the batch's own framing.
const BATCH_BYTES_MAX: usize = 512 * 1024;
const DEFAULT_BATCH_RECORDS: usize = 500;

pub fn run(args: Vec<String>) -> Result<()> {
    let p = parse(
        "produce",
        args,
        &[
            value("--partition"),
            value("--key-separator"),
            repeated("--header"),
            value("--acks"),
            value("--batch-records"),
            switch("--verbose"),
        ],
    )?;
    if p.help {
        println!("{USAGE}");
        return Ok(());
    }
    p.positional_exactly(1, "topic name")?;
    let topic = p.positional[0].clone();
    let partition = p.num::<i32>("--partition", "a partition number")?;
    let separator = p.get("--key-separator").map(|s| s.as_bytes().to_vec());
    if separator.as_ref().is_some_and(Vec::is_empty) {
        return Err(p.usage("--key-separator must not be empty"));
    }
    let headers: Vec<Header> = p
        .pairs("--header")?
        .into_iter()
        .map(|(k, v)| (k.into_bytes(), Some(v.into_bytes())))
        .collect();
    let acks: i16 = match p.get("--acks").unwrap_or("all") {
        "0" => 0,
        "1" => 1,
        "all" | "-1" => -1,
        other => return Err(p.usage(format!("--acks {other:?}: expected 0, 1 or all"))),
    };
    let batch_records =
        p.num::<usize>("--batch-records", "a positive number")?.unwrap_or(DEFAULT_BATCH_RECORDS);
    if batch_records == 0 {
        return Err(p.usage("--batch-records must be at least 1"));
    }

    let mut client = p.client()?;
    let md = client.topic_metadata(&topic)?;
    let partitions = md.topic(&topic)?.partitions.len() as i32;
    if partitions == 0 {
        bail!("topic {topic} has no partitions");
    }
    if let Some(part) = partition {
        if !(0..partitions).contains(&part) {
            bail!("topic {topic} has no partition {part} (it has {partitions})");
        }
    }
    let mut producer = Producer {
        client,
        md,
        topic,
        headers,
        acks,
        batch_records,
        pending: BTreeMap::new(),
        round_robin: 0,
        partitions,
        produced: 0,
    };
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = Vec::new();
    let mut number = 0u64;
    let outcome: Result<()> = loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(e) => break Err(anyhow::Error::new(e).context("reading stdin")),
        }
        number += 1;
        if line.ends_with(b"\n") {
            line.pop();
            if line.ends_with(b"\r") {
                line.pop();
            }
        }
        let record = match &separator {
            None => NewRecord { key: None, value: Some(line.clone()) },
            Some(sep) => match find(&line, sep) {
                Some(at) => NewRecord {
                    key: Some(line[..at].to_vec()),
                    value: Some(line[at + sep.len()..].to_vec()),
                },
                None => {
                    break Err(anyhow::anyhow!(
                        "line {number} has no key separator {:?}",
                        String::from_utf8_lossy(sep)
                    ))
                }
            },
        };
        let part = match (partition, &record.key) {
            (Some(part), _) => part,
            (None, Some(key)) => partition_for_key(key, partitions),
            (None, None) => producer.round_robin,
        };
        if let Err(e) = producer.add(part, record) {
            break Err(e);
        }
    };
    // Records read before a bad line are still sent, as Kafka's console
    // producer sends them before it stops.
    let flushed = producer.flush_all();
    outcome?;
    flushed?;
    if p.has("--verbose") {
        eprintln!("{} records produced to {}", producer.produced, producer.topic);
    }
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

struct Producer {
    client: Client,
    md: Metadata,
    topic: String,
    headers: Vec<Header>,
    acks: i16,
    batch_records: usize,
    /// Records waiting per partition, with their bytes.
    pending: BTreeMap<i32, (Vec<NewRecord>, usize)>,
    /// The partition that unkeyed records fill now; it moves on when its
    /// batch is sent.
    round_robin: i32,
    partitions: i32,
    produced: u64,
}

impl Producer {
    fn add(&mut self, partition: i32, record: NewRecord) -> Result<()> {
        let size =
            record.key.as_ref().map_or(0, Vec::len) + record.value.as_ref().map_or(0, Vec::len);
        let (records, bytes) = self.pending.entry(partition).or_default();
        records.push(record);
        *bytes += size;
        if records.len() >= self.batch_records || *bytes >= BATCH_BYTES_MAX {
            self.send(&[partition])?;
        }
        Ok(())
    }

    /// Sends the pending batches of `partitions`, one request per leader,
    /// and waits for the acknowledgments.
    fn send(&mut self, partitions: &[i32]) -> Result<()> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut by_leader: BTreeMap<String, Vec<(i32, Vec<u8>)>> = BTreeMap::new();
        let mut count = 0u64;
        for &part in partitions {
            let Some((records, _)) = self.pending.remove(&part) else { continue };
            if records.is_empty() {
                continue;
            }
            count += records.len() as u64;
            let addr = self.md.leader_addr(&self.topic, part)?;
            by_leader
                .entry(addr)
                .or_default()
                .push((part, records::build_batch(&records, &self.headers, now_ms)));
            if part == self.round_robin {
                self.round_robin = (self.round_robin + 1) % self.partitions;
            }
        }
        for (addr, batches) in by_leader {
            records::produce(&mut self.client, &addr, &self.topic, &batches, self.acks)?;
        }
        self.produced += count;
        Ok(())
    }

    fn flush_all(&mut self) -> Result<()> {
        let partitions: Vec<i32> = self.pending.keys().copied().collect();
        self.send(&partitions)
    }
}
