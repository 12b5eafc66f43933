//! A minimal blocking Kafka client for the load generator: request frames
//! encoded with the `kafka-protocol` crate, responses read whole, and the
//! few admin calls a benchmark needs (metadata, topic creation, end
//! offsets).
//!
//! Runs on the load generator's own threads (never inside the broker). The
//! hot paths (produce and fetch workers) only use [`Conn::write_frame`] and
//! [`Conn::read_response`]: frames are pre-encoded once and re-sent with a
//! new correlation id, so the client spends no time per record.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use net::kafka_protocol::messages::*;
use net::kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Longest a blocking read waits for a response: well above any broker
/// latency, so a stuck broker fails the run instead of hanging it.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest response frame accepted (a fetch answers with at most its
/// `max_bytes` plus headers).
pub const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Versions the load generator speaks; every Kafka broker since 2.x serves them.
pub const PRODUCE_VERSION: i16 = 9;
pub const FETCH_VERSION: i16 = 12;
pub const METADATA_VERSION: i16 = 9;
pub const LIST_OFFSETS_VERSION: i16 = 7;
pub const CREATE_TOPICS_VERSION: i16 = 5;
pub const DELETE_TOPICS_VERSION: i16 = 4;

const CLIENT_ID: &str = "corelog-bench";

/// Offset of the correlation id in an encoded request frame: after the
/// frame size (4), the API key (2) and the API version (2).
const CORRELATION_AT: usize = 8;

/// Encodes a whole request frame (size prefix included).
pub fn encode_frame<Req: Encodable>(
    api: ApiKey,
    version: i16,
    correlation: i32,
    body: &Req,
) -> Result<Vec<u8>> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut buf = BytesMut::new();
    header.encode(&mut buf, api.request_header_version(version))?;
    body.encode(&mut buf, version)?;
    let mut frame = Vec::with_capacity(4 + buf.len());
    frame.put_i32(buf.len() as i32);
    frame.extend_from_slice(&buf);
    Ok(frame)
}

/// Sets the correlation id of a frame made by [`encode_frame`].
pub fn set_correlation(frame: &mut [u8], correlation: i32) {
    frame[CORRELATION_AT..CORRELATION_AT + 4].copy_from_slice(&correlation.to_be_bytes());
}

/// One TCP connection to one broker.
pub struct Conn {
    stream: TcpStream,
    correlation: i32,
    pub addr: String,
}

impl Conn {
    pub fn connect(addr: &str) -> Result<Conn> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(RESPONSE_TIMEOUT))?;
        Ok(Conn { stream, correlation: 0, addr: addr.to_string() })
    }

    /// A second handle on the same socket, for a reader thread beside a writer.
    pub fn try_clone(&self) -> Result<Conn> {
        Ok(Conn {
            stream: self.stream.try_clone()?,
            correlation: self.correlation,
            addr: self.addr.clone(),
        })
    }

    pub fn write_frame(&mut self, frame: &[u8]) -> Result<()> {
        self.stream.write_all(frame).with_context(|| format!("writing to {}", self.addr))
    }

    /// Reads one response frame and returns it after the correlation id,
    /// checking that id.
    pub fn read_response(&mut self, correlation: i32) -> Result<Bytes> {
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .with_context(|| format!("reading a response from {}", self.addr))?;
        let size = i32::from_be_bytes(size);
        if size < 4 || size as usize > RESPONSE_BYTES_MAX {
            bail!("response frame of {size} bytes from {}", self.addr);
        }
        let mut buf = BytesMut::zeroed(size as usize);
        self.stream.read_exact(&mut buf).with_context(|| format!("reading from {}", self.addr))?;
        let mut buf = buf.freeze();
        let got = buf.get_i32();
        if got != correlation {
            bail!("response for request {got} from {}, expected {correlation}", self.addr);
        }
        Ok(buf)
    }

    /// One request, one response (admin calls; not for the hot path).
    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &Req,
    ) -> Result<Resp> {
        self.correlation += 1;
        let frame = encode_frame(api, version, self.correlation, body)?;
        self.write_frame(&frame)?;
        let mut buf = self.read_response(self.correlation)?;
        skip_response_header_tags(&mut buf, api, version)?;
        Resp::decode(&mut buf, version)
            .with_context(|| format!("{api:?} v{version} response does not decode"))
    }
}

/// Skips what follows the correlation id in a response header (the tagged
/// fields of header v1).
pub fn skip_response_header_tags(buf: &mut Bytes, api: ApiKey, version: i16) -> Result<()> {
    if api.response_header_version(version) >= 1 {
        // The tag count; Kafka brokers send no header tags, so it is 0.
        let tags = buf.try_get_u8().context("empty response")?;
        if tags != 0 {
            bail!("{api:?} response header carries tagged fields");
        }
    }
    Ok(())
}

pub fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Where each partition of a topic is led: partition → broker address.
#[derive(Debug, Clone)]
pub struct Leaders {
    pub partitions: BTreeMap<i32, String>,
}

impl Leaders {
    /// Partitions grouped by leader address.
    pub fn by_broker(&self) -> BTreeMap<String, Vec<i32>> {
        let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (&p, addr) in &self.partitions {
            out.entry(addr.clone()).or_default().push(p);
        }
        out
    }
}

/// Asks `bootstrap` for the leaders of `topic`'s partitions.
pub fn leaders(bootstrap: &str, topic: &str) -> Result<Leaders> {
    let mut conn = Conn::connect(bootstrap)?;
    let response: MetadataResponse = conn.call(
        ApiKey::Metadata,
        METADATA_VERSION,
        &MetadataRequest::default()
            .with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(name(topic)))
            ]))
            .with_allow_auto_topic_creation(false),
    )?;
    let brokers: BTreeMap<i32, String> =
        response.brokers.iter().map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port))).collect();
    let Some(t) = response.topics.first() else { bail!("no metadata for topic {topic}") };
    if t.error_code != 0 {
        bail!("metadata for topic {topic}: error {}", t.error_code);
    }
    let mut partitions = BTreeMap::new();
    for p in &t.partitions {
        let addr = brokers.get(&p.leader_id.0).with_context(|| {
            format!("{topic}-{}: leader {} unknown", p.partition_index, p.leader_id.0)
        })?;
        partitions.insert(p.partition_index, addr.clone());
    }
    Ok(Leaders { partitions })
}

/// Creates `topic` with `partitions` partitions and the given configs;
/// an existing topic is left as it is.
pub fn create_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    configs: &[(&str, String)],
) -> Result<()> {
    use create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let mut conn = Conn::connect(bootstrap)?;
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_value(Some(StrBytes::from_string(v.clone())))
        })
        .collect();
    let response: CreateTopicsResponse = conn.call(
        ApiKey::CreateTopics,
        CREATE_TOPICS_VERSION,
        &CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![
            CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(1)
                .with_configs(configs),
        ]),
    )?;
    match response.topics.first().map(|t| t.error_code) {
        Some(0) | Some(36) => Ok(()), // created, or TOPIC_ALREADY_EXISTS
        Some(code) => bail!("creating topic {topic}: error {code}"),
        None => bail!("creating topic {topic}: empty answer"),
    }
}

/// Deletes `topic` (its data goes from the broker's disk).
pub fn delete_topic(bootstrap: &str, topic: &str) -> Result<()> {
    let mut conn = Conn::connect(bootstrap)?;
    let response: DeleteTopicsResponse = conn.call(
        ApiKey::DeleteTopics,
        DELETE_TOPICS_VERSION,
        &DeleteTopicsRequest::default().with_timeout_ms(30_000).with_topic_names(vec![name(topic)]),
    )?;
    match response.responses.first().map(|t| t.error_code) {
        Some(0) | Some(3) => Ok(()), // deleted, or UNKNOWN_TOPIC_OR_PARTITION
        Some(code) => bail!("deleting topic {topic}: error {code}"),
        None => bail!("deleting topic {topic}: empty answer"),
    }
}

/// ListOffsets with `timestamp` (-2 earliest, -1 latest) for every
/// partition of `topic`, each asked of its leader.
pub fn offsets(leaders: &Leaders, topic: &str, timestamp: i64) -> Result<BTreeMap<i32, i64>> {
    use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let mut out = BTreeMap::new();
    for (addr, partitions) in leaders.by_broker() {
        let mut conn = Conn::connect(&addr)?;
        let request =
            ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
                ListOffsetsTopic::default().with_name(name(topic)).with_partitions(
                    partitions
                        .iter()
                        .map(|&p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                ),
            ]);
        let response: ListOffsetsResponse =
            conn.call(ApiKey::ListOffsets, LIST_OFFSETS_VERSION, &request)?;
        for t in &response.topics {
            for p in &t.partitions {
                if p.error_code != 0 {
                    bail!("ListOffsets {topic}-{}: error {}", p.partition_index, p.error_code);
                }
                out.insert(p.partition_index, p.offset);
            }
        }
    }
    Ok(out)
}
