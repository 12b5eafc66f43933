//! A real `corelog serve` process for the tools' integration tests, and a
//! minimal blocking Kafka client that encodes requests with the
//! `kafka-protocol` crate (the broker's own encoder is not trusted for
//! requests). Every wait is bounded by [`TIMEOUT`].
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use net::kafka_protocol::messages::*;
use net::kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use net::versions;

static NEXT_DIR: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Broker {
    child: Child,
    pub port: u16,
    _dir: TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A base port with `n` free ports after it.
fn free_ports(n: u16) -> u16 {
    for attempt in 0..200u32 {
        let base = 20_000 + ((std::process::id() * 7919 + attempt * 104_729) % 20_000) as u16;
        let held: Vec<_> = (base..base + n)
            .filter_map(|p| std::net::TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == n as usize {
            return base;
        }
    }
    panic!("no free port range");
}

pub fn start() -> Broker {
    let dir = std::env::temp_dir().join(format!(
        "corelog-tools-test-{}-{}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_ports(2);
    let child = spawn(&dir, port);
    Broker { child, port, _dir: TempDir(dir) }
}

/// Starts `corelog serve` on `dir` and waits for its "ready" line.
fn spawn(dir: &std::path::Path, port: u16) -> Child {
    spawn_with(dir, port, &[])
}

fn spawn_with(dir: &std::path::Path, port: u16, extra: &[&str]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corelog"))
        .args(["serve", "--shards", "2", "--port", &port.to_string(), "--metrics-port", "0"])
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start corelog");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.trim() == "ready" {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        panic!("broker not ready within 60 s");
    }
    child
}

impl Broker {
    /// SIGKILL, then a new process on the same data and ports.
    pub fn kill_and_restart(&mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reap");
        self.child = spawn(&self._dir.0, self.port);
    }

    /// SIGTERM (a clean stop), then a new process on the same data and
    /// ports with `extra` flags: every read after it is cold.
    pub fn restart_with(&mut self, extra: &[&str]) {
        // SAFETY: kill(2) on our own child has no memory effects.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().expect("reap");
        assert!(status.success(), "clean stop: {status}");
        self.child = spawn_with(&self._dir.0, self.port, extra);
    }
}

pub struct Client {
    stream: TcpStream,
    correlation: i32,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        Client { stream, correlation: 0 }
    }

    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &Req,
    ) -> Resp {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("ladder")));
        let mut buf = BytesMut::new();
        header.encode(&mut buf, api.request_header_version(version)).unwrap();
        body.encode(&mut buf, version).unwrap();
        let mut frame = Vec::with_capacity(4 + buf.len());
        frame.put_i32(buf.len() as i32);
        frame.extend_from_slice(&buf);
        self.stream.write_all(&frame).unwrap();
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
        let mut response = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut response).unwrap();
        let mut response = Bytes::from(response);
        let header =
            ResponseHeader::decode(&mut response, api.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation);
        let decoded = Resp::decode(&mut response, version)
            .unwrap_or_else(|e| panic!("{api:?} v{version} response does not decode: {e}"));
        assert!(!response.has_remaining(), "{api:?} v{version}: trailing response bytes");
        decoded
    }
}

/// Version `i` of `api`, clamped to its advertised range.
pub fn v(api: ApiKey, i: i16) -> i16 {
    let (min, max) = codec_range(api);
    i.clamp(min, max)
}

/// The served versions of `api` the codec encodes: those older are
/// rewritten by the broker (`net::legacy`) and tested with the clients
/// that send them (tests/broker/test_old_clients.py).
pub fn codec_range(api: ApiKey) -> (i16, i16) {
    let (min, max) = versions::range(api).expect("advertised");
    let first = (min..=max).find(|&v| net::legacy::upgraded_version(api, v).is_none());
    (first.expect("a version the codec knows"), max)
}

pub fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

/// CreateTopics (v5) of `partitions` partitions; returns the error code
/// (0, or 36 if it exists).
pub fn create_topic(c: &mut Client, topic: &str, partitions: i32) -> i16 {
    let created: CreateTopicsResponse = c.call(
        ApiKey::CreateTopics,
        5,
        &CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(s(topic)))
                .with_num_partitions(partitions)
                .with_replication_factor(1),
        ]),
    );
    created.topics[0].error_code
}

/// The port of the shard leading `topic`'s partition 0 (the topic is
/// created if it does not exist).
pub fn leader_port_of_new_topic(port: u16, topic: &str) -> u16 {
    let mut c = Client::connect(port);
    assert!(matches!(create_topic(&mut c, topic, 1), 0 | 36), "created or already there");
    let md: MetadataResponse = c.call(
        ApiKey::Metadata,
        9,
        &MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(s(topic))))])),
    );
    port + (md.topics[0].partitions[0].leader_id.0 % 1000) as u16
}

/// Produce v9 with acks=all of one batch to `topic`'s partition 0:
/// (error code, base offset).
pub fn produce_batch(c: &mut Client, topic: &str, batch: Vec<u8>) -> (i16, i64) {
    let r: ProduceResponse = c.call(
        ApiKey::Produce,
        9,
        &ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(TopicName(s(topic)))
                .with_partition_data(vec![produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(batch)))]),
        ]),
    );
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}
