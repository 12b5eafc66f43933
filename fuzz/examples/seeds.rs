//! Writes the seed corpora, fuzz/corpus/<target>/seed-*: a few small valid
//! inputs per target, built with the project's own encoders, so that the
//! fuzzer starts from inputs that reach deep code.
//!
//! Run from fuzz/: `cargo run --example seeds` (the corpora are committed;
//! rerun after a format change). Files the fuzzer added are left alone.

use std::fs;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use client::compress::{compress_batch, Codec};
use engine::batch::{self, build, build_with_headers, set_producer, stamp, RecordSpec};
use engine::disk::{read_file, MemDisk};
use engine::{Flush, Flusher, LogConfig, ManualClock, PartitionLog};
use net::kafka_protocol::messages::*;
use net::kafka_protocol::protocol::{Encodable, StrBytes};
use shard::groups::records::{
    group_key, group_value, offset_key, offset_value, Committed, GroupRecord, MemberRecord,
};
use shard::metadata::{MetadataRecord, TopicMeta};

const T0: i64 = 1_700_000_000_000;

struct Corpus {
    dir: PathBuf,
    n: usize,
}

impl Corpus {
    fn new(target: &str) -> Corpus {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
        fs::create_dir_all(&dir).unwrap();
        // Only the seeds are rewritten; the fuzzer's own finds stay.
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().unwrap().to_string_lossy().starts_with("seed-") {
                fs::remove_file(p).unwrap();
            }
        }
        Corpus { dir, n: 0 }
    }

    fn add(&mut self, name: &str, bytes: &[u8]) {
        self.n += 1;
        fs::write(self.dir.join(format!("seed-{:03}-{name}", self.n)), bytes).unwrap();
    }
}

fn s(v: &'static str) -> StrBytes {
    StrBytes::from_static_str(v)
}

fn topic() -> TopicName {
    TopicName(s("orders"))
}

/// An uncompressed batch of `n` records with keys and values.
fn records(n: usize) -> Vec<u8> {
    let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("k{i}").into_bytes()).collect();
    let kv: Vec<batch::KeyValue<'_>> =
        keys.iter().map(|k| (Some(&k[..]), Some(&b"value"[..]))).collect();
    build(&kv, T0)
}

/// A request frame body: header (correlation id 7, client id "seed"), body.
fn frame<T: Encodable>(api: ApiKey, version: i16, body: &T) -> Option<Vec<u8>> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(s("seed")))
        .encode(&mut buf, api.request_header_version(version))
        .ok()?;
    body.encode(&mut buf, version).ok()?;
    Some(buf.to_vec())
}

fn request_seeds() {
    let mut c = Corpus::new("request");
    macro_rules! both_ends {
        ($api:expr, $body:expr) => {{
            let (min, max) = net::versions::range($api).unwrap();
            for v in [min, max] {
                // A body a version cannot carry is skipped.
                if let Some(f) = frame($api, v, &$body) {
                    c.add(&format!("{:?}-v{v}", $api), &f);
                }
            }
        }};
    }
    // Every served API, default body, lowest and highest version.
    both_ends!(ApiKey::Produce, ProduceRequest::default());
    both_ends!(ApiKey::Fetch, FetchRequest::default());
    both_ends!(ApiKey::ListOffsets, ListOffsetsRequest::default());
    both_ends!(ApiKey::Metadata, MetadataRequest::default());
    both_ends!(ApiKey::ApiVersions, ApiVersionsRequest::default());
    both_ends!(ApiKey::CreateTopics, CreateTopicsRequest::default());
    both_ends!(ApiKey::DeleteTopics, DeleteTopicsRequest::default());
    both_ends!(ApiKey::CreatePartitions, CreatePartitionsRequest::default());
    both_ends!(ApiKey::DescribeConfigs, DescribeConfigsRequest::default());
    both_ends!(ApiKey::IncrementalAlterConfigs, IncrementalAlterConfigsRequest::default());
    both_ends!(ApiKey::DescribeCluster, DescribeClusterRequest::default());
    both_ends!(ApiKey::FindCoordinator, FindCoordinatorRequest::default());
    both_ends!(ApiKey::JoinGroup, JoinGroupRequest::default());
    both_ends!(ApiKey::SyncGroup, SyncGroupRequest::default());
    both_ends!(ApiKey::Heartbeat, HeartbeatRequest::default());
    both_ends!(ApiKey::LeaveGroup, LeaveGroupRequest::default());
    both_ends!(ApiKey::OffsetCommit, OffsetCommitRequest::default());
    both_ends!(ApiKey::OffsetFetch, OffsetFetchRequest::default());
    both_ends!(ApiKey::OffsetDelete, OffsetDeleteRequest::default());
    both_ends!(ApiKey::DescribeGroups, DescribeGroupsRequest::default());
    both_ends!(ApiKey::ListGroups, ListGroupsRequest::default());
    both_ends!(ApiKey::DeleteGroups, DeleteGroupsRequest::default());
    both_ends!(ApiKey::InitProducerId, InitProducerIdRequest::default());
    // Bodies with content: arrays, strings, records.
    let produce =
        ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![
            produce_request::TopicProduceData::default().with_name(topic()).with_partition_data(
                vec![produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(records(2))))],
            ),
        ]);
    both_ends!(ApiKey::Produce, produce);
    let metadata = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(topic())),
    ]));
    both_ends!(ApiKey::Metadata, metadata);
    let fetch =
        FetchRequest::default().with_max_wait_ms(500).with_max_bytes(1 << 20).with_topics(vec![
            fetch_request::FetchTopic::default().with_topic(topic()).with_partitions(vec![
                fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_partition_max_bytes(1 << 20),
            ]),
        ]);
    both_ends!(ApiKey::Fetch, fetch);
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_session_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"\x00\x01\x00\x00\x00\x01\x00\x06orders"))]);
    both_ends!(ApiKey::JoinGroup, join);
    let commit = OffsetCommitRequest::default().with_group_id(GroupId(s("g"))).with_topics(vec![
        offset_commit_request::OffsetCommitRequestTopic::default()
            .with_name(topic())
            .with_partitions(vec![offset_commit_request::OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(42)]),
    ]);
    both_ends!(ApiKey::OffsetCommit, commit);
    // ApiVersions newer than served (KIP-511).
    let mut newer = frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).unwrap();
    newer[2..4].copy_from_slice(&9i16.to_be_bytes());
    c.add("ApiVersions-v9", &newer);
    println!("request: {} seeds", c.n);
}

/// A structured `batch` input: mode byte, then length-prefixed batches.
fn structured(mode: u8, batches: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![mode];
    for b in batches {
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        out.extend_from_slice(b);
    }
    out
}

fn batch_seeds() {
    let mut c = Corpus::new("batch");
    let three = records(3);
    c.add("structured-3", &structured(0, &[&three]));
    c.add("structured-2-batches", &structured(0, &[&records(1), &records(2)]));
    c.add("structured-compacted", &structured(0b10, &[&three]));
    c.add("structured-timestamps", &structured(0b1000, &[&three]));
    for (name, codec) in [
        ("gzip", Codec::Gzip),
        ("snappy", Codec::Snappy),
        ("lz4", Codec::Lz4),
        ("zstd", Codec::Zstd),
    ] {
        let compressed = compress_batch(&three, codec).unwrap();
        c.add(&format!("structured-{name}"), &structured(0, &[&compressed]));
    }
    let mut idempotent = records(2);
    set_producer(&mut idempotent, 1000, 0, 0);
    c.add("structured-producer", &structured(0, &[&idempotent]));
    let h: &[(&[u8], Option<&[u8]>)] = &[(b"h1", Some(b"v1")), (b"h2", None)];
    let with_headers = build_with_headers(
        &[
            RecordSpec { key: Some(b"k"), value: Some(b"v"), headers: h },
            RecordSpec { key: None, value: None, headers: &[] },
        ],
        T0,
    );
    c.add("structured-headers", &structured(0, &[&with_headers]));
    let mut raw = vec![1];
    raw.extend_from_slice(&three);
    c.add("raw-3", &raw);
    let mut raw = vec![1];
    raw.extend_from_slice(&compress_batch(&three, Codec::Snappy).unwrap());
    c.add("raw-snappy", &raw);
    println!("batch: {} seeds", c.n);
}

/// A `recovery` input: flags, the parts in the target's order, the first
/// segment's `.log` last.
fn recovery_input(
    flags: u8,
    indexes: Option<(&[u8], &[u8])>,
    producers: Option<(u8, &[u8])>,
    second: Option<(i64, &[u8])>,
    log: &[u8],
) -> Vec<u8> {
    let mut out = vec![flags];
    let part = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        out.extend_from_slice(b);
    };
    if let Some((i, t)) = indexes {
        part(&mut out, i);
        part(&mut out, t);
    }
    if let Some((at, p)) = producers {
        out.push(at);
        part(&mut out, p);
    }
    if let Some((base, l)) = second {
        out.extend_from_slice(&base.to_be_bytes());
        part(&mut out, l);
    }
    out.extend_from_slice(log);
    out
}

/// The files of a log that the engine wrote and closed cleanly: 1 KiB
/// segments, an index entry per batch, idempotent batches.
fn closed_log() -> Vec<(String, Vec<u8>)> {
    let disk = Rc::new(MemDisk::new());
    let dir = PathBuf::from("/data/topic-0");
    let flusher = Flusher::new(Flush::Fsync);
    engine::testkit::run_with_flusher(&flusher, async {
        let config =
            LogConfig { segment_bytes: 1024, index_interval_bytes: 1, ..LogConfig::default() };
        let clock = Rc::new(ManualClock::new(T0));
        let log = PartitionLog::open(disk.clone(), &dir, config, &flusher, clock).await.unwrap();
        let mut sequence = 0;
        for i in 0..12 {
            let n = 1 + i % 3;
            let mut b = records(n);
            set_producer(&mut b, 1000, 0, sequence);
            sequence += n as i32;
            let info = log.append(BytesMut::from(&b[..]), 0).await.unwrap();
            log.wait_acked(info.end_offset).await.unwrap();
        }
        log.close().await.unwrap();
        let mut files = Vec::new();
        for p in disk.paths() {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            files.push((name, read_file(disk.as_ref(), &p).await.unwrap()));
        }
        files
    })
}

fn recovery_seeds() {
    let mut c = Corpus::new("recovery");
    // A segment as the engine writes it: batches stamped 0, 3, 4, ...
    let mut segment = Vec::new();
    let mut next = 0;
    for n in [3, 1, 2] {
        let mut b = records(n);
        stamp(&mut b, next, 0);
        next += n as i64;
        segment.extend_from_slice(&b);
    }
    c.add("unclean", &recovery_input(0, None, None, None, &segment));
    c.add("unclean-append-reopen", &recovery_input(0x50, None, None, None, &segment));
    let mut torn = segment.clone();
    torn.truncate(segment.len() - 5);
    torn.resize(4096, 0);
    c.add("torn-tail", &recovery_input(0x40, None, None, None, &torn));
    // A cleanly closed log of several segments, with its indexes and
    // producers snapshot: the first two segments.
    let files = closed_log();
    let get = |name: &str| files.iter().find(|(n, _)| n == name).map(|(_, b)| b.clone());
    let logs: Vec<&(String, Vec<u8>)> = files.iter().filter(|(n, _)| n.ends_with(".log")).collect();
    let (first, second) = (&logs[0].1, logs[1]);
    let second_base: i64 = second.0.trim_end_matches(".log").parse().unwrap();
    let index = get("00000000000000000000.index").unwrap_or_default();
    let time_index = get("00000000000000000000.timeindex").unwrap_or_default();
    let snapshot = files.iter().find(|(n, _)| n.ends_with(".producers")).map(|(_, b)| b.clone());
    let snapshot = snapshot.unwrap_or_default();
    c.add(
        "clean-two-segments",
        &recovery_input(
            0x1f,
            Some((&index, &time_index)),
            Some((0, &snapshot)),
            Some((second_base, &second.1)),
            first,
        ),
    );
    c.add(
        "unclean-two-segments-reopen",
        &recovery_input(
            0xda,
            Some((&index, &time_index)),
            None,
            Some((second_base, &second.1)),
            first,
        ),
    );
    println!("recovery: {} seeds", c.n);
}

fn metadata_seeds() {
    let mut c = Corpus::new("metadata_replay");
    let orders = TopicMeta {
        name: "orders".into(),
        id: [7; 16],
        shards: vec![0, 1, 0],
        configs: [("retention.ms".to_string(), "1000".to_string())].into(),
    };
    let compacted = TopicMeta {
        name: "__consumer_offsets".into(),
        id: [9; 16],
        shards: vec![0, 1],
        configs: [
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.bytes".to_string(), "104857600".to_string()),
        ]
        .into(),
    };
    let records = [
        MetadataRecord::Cluster { id: "MkU3OEVBNTcwNTJENDM2Qk".into() },
        MetadataRecord::Topic(compacted),
        MetadataRecord::Topic(orders.clone()),
        MetadataRecord::ProducerIds { next: 2000 },
        MetadataRecord::Topic(TopicMeta { name: "gone".into(), id: [1; 16], ..orders }),
        MetadataRecord::DeleteTopic { name: "gone".into() },
    ];
    let lines =
        |rs: &[MetadataRecord]| rs.iter().map(|r| r.encode()).collect::<Vec<_>>().join(&b'\n');
    c.add("log", &lines(&records));
    for (i, r) in records.iter().enumerate() {
        c.add(&format!("record-{i}"), &r.encode());
    }
    println!("metadata_replay: {} seeds", c.n);
}

fn offsets_seeds() {
    let mut c = Corpus::new("offsets_replay");
    let record = |key: Vec<u8>, value: Option<Vec<u8>>| {
        let mut out = (key.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&key);
        match value {
            Some(v) => {
                out.extend_from_slice(&(v.len() as u16).to_be_bytes());
                out.extend_from_slice(&v);
            }
            None => out.extend_from_slice(&0xffffu16.to_be_bytes()),
        }
        out
    };
    let committed =
        |offset| Committed { offset, leader_epoch: 3, metadata: "m".into(), commit_timestamp: T0 };
    let group = GroupRecord {
        protocol_type: "consumer".into(),
        generation: 4,
        protocol: Some("range".into()),
        leader: Some("m1".into()),
        timestamp: T0,
        members: vec![MemberRecord {
            member_id: "m1".into(),
            instance_id: Some("i1".into()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 300_000,
            session_timeout_ms: 45_000,
            subscription: b"\x00\x01\x00\x00\x00\x01\x00\x06orders".to_vec(),
            assignment: b"asg".to_vec(),
        }],
    };
    let commit = record(offset_key("g", "orders", 0), Some(offset_value(&committed(42))));
    let commit2 = record(offset_key("g", "orders", 1), Some(offset_value(&committed(7))));
    let tombstone = record(offset_key("g", "orders", 0), None);
    let meta = record(group_key("g"), Some(group_value(&group)));
    let meta_tombstone = record(group_key("g"), None);
    c.add("commit", &commit);
    c.add("group", &meta);
    c.add("log", &[commit.clone(), meta.clone(), commit2, tombstone, meta_tombstone].concat());
    println!("offsets_replay: {} seeds", c.n);
}

fn main() {
    request_seeds();
    batch_seeds();
    recovery_seeds();
    metadata_seeds();
    offsets_seeds();
}
