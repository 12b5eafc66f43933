//! `corelog consume TOPIC`: records to stdout, like Kafka's
//! `kafka-console-consumer.sh` and `kcat -C`. Without `--group` it reads
//! every partition (or `--partition`) from the latest offset, the earliest
//! (`--from-beginning`) or `--offset`; with `--group` it joins the group,
//! starts from the committed offsets, commits what it printed and leaves
//! the group at exit. It stops after `--max-messages`, or when
//! `--timeout-ms` passes without a new record (exit 0).
//!
//! Output: `text` prints each value on a line (`KEY SEP VALUE` with
//! `--print-key`; a null key or value prints as `null`). `json` prints one
//! object per line: `{"topic","partition","offset","timestamp","key",
//! "value","headers":[[k,v],..]}`, where a key, value or header value that
//! is not UTF-8 is `null` and its bytes are given in base64 beside it:
//! `key_b64`, `value_b64`, or a third element of the header pair.
//!
//! Owns the read positions, the output format and the stop conditions; it
//! must not build requests (those are `client::records`' and
//! `client::member`'s).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use client::error::KafkaError;
use client::member::{needs_rejoin, Member};
use client::records::{self, Record};
use client::{Client, Metadata};
use net::kafka_protocol::error::ResponseError;

use super::base64;
use super::flags::{parse, switch, value};

const USAGE: &str = "usage: corelog consume TOPIC [options]

  --from-beginning          start at the earliest offset when there is no other
                            position (default: the latest)
  --partition P             read only partition P
  --offset N|earliest|latest
                            where to start (a number needs --partition)
  --group G                 read as a member of consumer group G: start at its
                            committed offsets, commit what was printed, leave at exit
  --max-messages N          exit after N records
  --timeout-ms MS           exit (status 0) when no record came for MS milliseconds
  --format text|json        output format (default text)
  --print-key               text: print KEY SEP VALUE
  --key-separator SEP       the separator of --print-key (default a tab)
  --bootstrap HOST:PORT     a broker to ask (default 127.0.0.1:9092)
  --command-config FILE     TLS and SASL: security.protocol, sasl.*, ssl.* lines

json lines: {\"topic\",\"partition\",\"offset\",\"timestamp\",\"key\",\"value\",\"headers\":[[k,v],..]};
a key, value or header value that is not UTF-8 is null, with its bytes in
base64 in key_b64, value_b64, or a third element of the header.";

/// Longest one fetch waits on the broker for new records: the loop comes
/// back this often to heartbeat and to check `--timeout-ms`.
const FETCH_WAIT_MS: i32 = 500;
/// How long partitions may keep answering "leader moved" before the
/// consumer gives up.
const LEADER_RETRY_FOR: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Earliest,
    Latest,
    At(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

struct Output {
    topic: String,
    format: Format,
    print_key: bool,
    separator: Vec<u8>,
    out: std::io::BufWriter<std::io::Stdout>,
}

pub fn run(args: Vec<String>) -> Result<()> {
    let p = parse(
        "consume",
        args,
        &[
            switch("--from-beginning"),
            value("--partition"),
            value("--offset"),
            value("--group"),
            value("--max-messages"),
            value("--timeout-ms"),
            value("--format"),
            switch("--print-key"),
            value("--key-separator"),
        ],
    )?;
    if p.help {
        println!("{USAGE}");
        return Ok(());
    }
    p.positional_exactly(1, "topic name")?;
    let topic = p.positional[0].clone();
    let partition = p.num::<i32>("--partition", "a partition number")?;
    let reset = if p.has("--from-beginning") { Start::Earliest } else { Start::Latest };
    let start = match p.get("--offset") {
        None => reset,
        Some("earliest") => Start::Earliest,
        Some("latest") => Start::Latest,
        Some(n) => match n.parse::<i64>() {
            Ok(n) if n >= 0 => {
                if partition.is_none() {
                    return Err(p.usage("--offset N needs --partition"));
                }
                Start::At(n)
            }
            _ => {
                return Err(
                    p.usage(format!("--offset {n:?}: expected a number, earliest or latest"))
                )
            }
        },
    };
    let group = p.get("--group").map(str::to_string);
    if group.is_some() && (partition.is_some() || p.has("--offset")) {
        return Err(p.usage(
            "--group reads the partitions the group assigns: drop --partition and --offset",
        ));
    }
    let max_messages = p.num::<u64>("--max-messages", "a number")?;
    let timeout = p.num::<u64>("--timeout-ms", "milliseconds")?.map(Duration::from_millis);
    let format = match p.get("--format").unwrap_or("text") {
        "text" => Format::Text,
        "json" => Format::Json,
        other => return Err(p.usage(format!("--format {other:?}: expected text or json"))),
    };
    let mut output = Output {
        topic: topic.clone(),
        format,
        print_key: p.has("--print-key"),
        separator: p.get("--key-separator").unwrap_or("\t").as_bytes().to_vec(),
        out: std::io::BufWriter::new(std::io::stdout()),
    };

    let mut client = p.client()?;
    let mut consumer = Consumer {
        md: client.topic_metadata(&topic)?,
        client,
        topic: topic.clone(),
        positions: BTreeMap::new(),
        reset,
        member: None,
        printed: BTreeMap::new(),
    };
    match &group {
        None => {
            let all: Vec<i32> =
                consumer.md.topic(&topic)?.partitions.iter().map(|p| p.partition).collect();
            let wanted = match partition {
                None => all,
                Some(part) if all.contains(&part) => vec![part],
                Some(part) => bail!("topic {topic} has no partition {part}"),
            };
            consumer.start_at(&wanted, start)?;
        }
        Some(g) => {
            let member = Member::join(&mut consumer.client, g, std::slice::from_ref(&topic))?;
            consumer.member = Some(member);
            consumer.start_from_committed()?;
        }
    }
    let outcome = consumer.run(&mut output, max_messages, timeout);
    let flushed = output.out.flush();
    // Commit and leave even when printing failed half way.
    let finished = consumer.finish();
    match outcome {
        Err(e) if is_broken_pipe(&e) => {}
        other => other?,
    }
    match flushed {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.context("writing stdout")?,
    }
    finished
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

struct Consumer {
    client: Client,
    md: Metadata,
    topic: String,
    /// The next offset to fetch, per partition read.
    positions: BTreeMap<i32, i64>,
    /// Where a partition without a usable position starts
    /// (auto.offset.reset).
    reset: Start,
    member: Option<Member>,
    /// The offset after the last record printed, per partition, not yet
    /// committed.
    printed: BTreeMap<i32, i64>,
}

impl Consumer {
    fn start_at(&mut self, partitions: &[i32], start: Start) -> Result<()> {
        self.positions.clear();
        let offsets = match start {
            Start::At(n) => partitions.iter().map(|&p| (p, n)).collect(),
            Start::Earliest => self.client.list_offsets(&self.md, &self.topic, partitions, -2)?,
            Start::Latest => self.client.list_offsets(&self.md, &self.topic, partitions, -1)?,
        };
        self.positions.extend(offsets);
        Ok(())
    }

    /// The member's partitions, from the committed offsets or else `reset`.
    fn start_from_committed(&mut self) -> Result<()> {
        let member = self.member.as_ref().expect("a group member");
        let assigned: Vec<i32> = member.assignment.get(&self.topic).cloned().unwrap_or_default();
        let committed = member.committed(&mut self.client)?;
        let missing: Vec<i32> = assigned
            .iter()
            .copied()
            .filter(|&p| !committed.contains_key(&(self.topic.clone(), p)))
            .collect();
        self.start_at(&missing, self.reset)?;
        for p in assigned {
            if let Some(&o) = committed.get(&(self.topic.clone(), p)) {
                self.positions.insert(p, o);
            }
        }
        self.printed.clear();
        Ok(())
    }

    fn run(
        &mut self,
        output: &mut Output,
        max_messages: Option<u64>,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let mut count = 0u64;
        let mut last_record = Instant::now();
        let mut leader_trouble: Option<Instant> = None;
        loop {
            if max_messages.is_some_and(|m| count >= m) {
                return Ok(());
            }
            if timeout.is_some_and(|t| last_record.elapsed() >= t) {
                return Ok(());
            }
            if let Err(e) = self.heartbeat() {
                if self.member.is_some() && needs_rejoin(&e) {
                    self.rejoin()?;
                    continue;
                }
                return Err(e);
            }
            let partitions: Vec<i32> = self.positions.keys().copied().collect();
            if partitions.is_empty() {
                // A member without partitions waits for a rebalance; the
                // heartbeat above notices it.
                std::thread::sleep(Duration::from_millis(FETCH_WAIT_MS as u64));
                continue;
            }
            let by_leader = self.md.by_leader(&self.topic, &partitions)?;
            // Each leader's long poll adds up: split the wait between them,
            // and never wait past --timeout-ms.
            let mut wait = FETCH_WAIT_MS / by_leader.len().max(1) as i32;
            if let Some(t) = timeout {
                let left = t.saturating_sub(last_record.elapsed()).as_millis() as i32;
                wait = wait.min(left.max(0));
            }
            let mut stale_metadata = false;
            for (addr, ps) in by_leader {
                let positions: Vec<(i32, i64)> =
                    ps.iter().map(|p| (*p, self.positions[p])).collect();
                for f in records::fetch(&mut self.client, &addr, &self.topic, &positions, wait)? {
                    if let Some(e) = f.error {
                        stale_metadata |= self.partition_error(f.partition, e)?;
                        continue;
                    }
                    for r in &f.records {
                        if max_messages.is_some_and(|m| count >= m) {
                            break;
                        }
                        output.write(f.partition, r)?;
                        count += 1;
                        last_record = Instant::now();
                        self.printed.insert(f.partition, r.offset + 1);
                        self.positions.insert(f.partition, r.offset + 1);
                    }
                    if max_messages.is_none_or(|m| count < m) {
                        self.positions
                            .insert(f.partition, f.next_offset.max(self.positions[&f.partition]));
                    }
                }
            }
            output.out.flush()?;
            if stale_metadata {
                let since = *leader_trouble.get_or_insert_with(Instant::now);
                if since.elapsed() > LEADER_RETRY_FOR {
                    bail!(
                        "topic {}: partitions without a reachable leader for {} s",
                        self.topic,
                        LEADER_RETRY_FOR.as_secs()
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
                self.md = self.client.topic_metadata(&self.topic)?;
            } else {
                leader_trouble = None;
            }
            if let Err(e) = self.commit() {
                if self.member.is_some() && needs_rejoin(&e) {
                    self.rejoin()?;
                    continue;
                }
                return Err(e);
            }
        }
    }

    /// Handles a partition's fetch error; returns whether the metadata
    /// must be refreshed.
    fn partition_error(&mut self, partition: i32, e: KafkaError) -> Result<bool> {
        if e.is(ResponseError::OffsetOutOfRange) {
            // auto.offset.reset, as Kafka's consumer does.
            let reset = if self.reset == Start::Earliest { -2 } else { -1 };
            let o = self.client.list_offsets(&self.md, &self.topic, &[partition], reset)?;
            self.positions.insert(partition, o[&partition]);
            return Ok(false);
        }
        if [
            ResponseError::NotLeaderOrFollower,
            ResponseError::LeaderNotAvailable,
            ResponseError::UnknownTopicOrPartition,
            ResponseError::FencedLeaderEpoch,
            ResponseError::UnknownLeaderEpoch,
        ]
        .iter()
        .any(|&c| e.is(c))
        {
            return Ok(true);
        }
        Err(anyhow::Error::new(e).context(format!("fetching {}-{partition}", self.topic)))
    }

    fn heartbeat(&mut self) -> Result<()> {
        match &mut self.member {
            None => Ok(()),
            Some(m) => m.heartbeat_if_due(&mut self.client),
        }
    }

    fn commit(&mut self) -> Result<()> {
        let Some(m) = &self.member else { return Ok(()) };
        if self.printed.is_empty() {
            return Ok(());
        }
        let offsets = self.printed.iter().map(|(&p, &o)| ((self.topic.clone(), p), o)).collect();
        m.commit(&mut self.client, &offsets)?;
        self.printed.clear();
        Ok(())
    }

    /// Joins again after a rebalance; printed but uncommitted records may
    /// be read again by whoever gets their partitions, as with Kafka's
    /// consumer (at least once).
    fn rejoin(&mut self) -> Result<()> {
        let m = self.member.as_mut().expect("a group member");
        m.rejoin(&mut self.client)?;
        self.start_from_committed()
    }

    /// Commits what was printed and leaves the group.
    fn finish(&mut self) -> Result<()> {
        if self.member.is_none() {
            return Ok(());
        }
        let committed = self.commit();
        let left = self.member.as_ref().expect("a group member").leave(&mut self.client);
        committed?;
        left
    }
}

impl Output {
    fn write(&mut self, partition: i32, r: &Record) -> Result<()> {
        match self.format {
            Format::Text => {
                if self.print_key {
                    self.out.write_all(r.key.as_deref().unwrap_or(b"null"))?;
                    self.out.write_all(&self.separator)?;
                }
                self.out.write_all(r.value.as_deref().unwrap_or(b"null"))?;
                self.out.write_all(b"\n")?;
            }
            Format::Json => {
                // Written by hand to keep the documented field order
                // (serde_json's map sorts its keys).
                let mut line = format!(
                    "{{\"topic\":{},\"partition\":{partition},\"offset\":{},\"timestamp\":{}",
                    serde_json::Value::from(self.topic.as_str()),
                    r.offset,
                    r.timestamp
                );
                bytes_field(&mut line, "key", r.key.as_deref());
                bytes_field(&mut line, "value", r.value.as_deref());
                let headers: Vec<serde_json::Value> = r
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        let k = serde_json::Value::from(String::from_utf8_lossy(k).into_owned());
                        match v.as_deref().map(std::str::from_utf8) {
                            None => serde_json::json!([k, null]),
                            Some(Ok(s)) => serde_json::json!([k, s]),
                            Some(Err(_)) => serde_json::json!([
                                k,
                                null,
                                base64(v.as_deref().unwrap_or_default(), false)
                            ]),
                        }
                    })
                    .collect();
                line += &format!(",\"headers\":{}}}\n", serde_json::Value::from(headers));
                self.out.write_all(line.as_bytes())?;
            }
        }
        Ok(())
    }
}

/// `,"name":...`: the bytes as a string, or null; non-UTF-8 bytes also in
/// `name_b64`.
fn bytes_field(line: &mut String, name: &str, b: Option<&[u8]>) {
    match b.map(std::str::from_utf8) {
        None => *line += &format!(",\"{name}\":null"),
        Some(Ok(s)) => *line += &format!(",\"{name}\":{}", serde_json::Value::from(s)),
        Some(Err(_)) => {
            *line += &format!(
                ",\"{name}\":null,\"{name}_b64\":\"{}\"",
                base64(b.unwrap_or_default(), false)
            )
        }
    }
}
