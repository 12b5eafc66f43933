//! The cluster as a client sees it: metadata (brokers, topics, partitions,
//! leaders, cluster id, controller), one connection per broker, requests
//! routed to a partition's leader or a group's coordinator, and ListOffsets.
//!
//! Owns routing and bounded retries of "not there yet" answers
//! (coordinator loading); it must not interpret records or group state.
//! Main types: [`Client`] (connections by broker address), [`Metadata`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use net::kafka_protocol::error::ResponseError;
use net::kafka_protocol::messages::*;
use net::kafka_protocol::protocol::{Decodable, Encodable};

use crate::conn::{name, str, Conn, LIST_OFFSETS_VERSION, METADATA_VERSION};
use crate::error::{check, KafkaError};
use crate::security::Security;

/// Metadata version of [`Client::metadata`]: v10+ carries topic ids, v12 is
/// served by Kafka 3.x/4.x and Corelog.
pub const METADATA_ADMIN_VERSION: i16 = 12;
pub const FIND_COORDINATOR_VERSION: i16 = 3;
/// FindCoordinator's key types: a group, a transactional id.
pub const COORDINATOR_GROUP: i8 = 0;
pub const COORDINATOR_TRANSACTION: i8 = 1;
pub const DESCRIBE_QUORUM_VERSION: i16 = 1;

/// The metadata quorum: its leader (a node id), the leader's epoch, the
/// committed end of the metadata log, and each voter's log end.
#[derive(Debug, Clone)]
pub struct Quorum {
    pub leader: i32,
    pub epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<(i32, i64)>,
}

/// How long answers that mean "not ready yet" (coordinator loading or not
/// available, leader not available) are retried before giving up.
pub const RETRY_FOR: Duration = Duration::from_secs(30);
/// Pause between such retries.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Where each partition of a topic is led: partition → broker address,
/// and how to connect to those brokers.
#[derive(Debug, Clone)]
pub struct Leaders {
    pub partitions: BTreeMap<i32, String>,
    pub security: Security,
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
pub fn leaders(bootstrap: &str, security: &Security, topic: &str) -> Result<Leaders> {
    let mut conn = Conn::connect_with(bootstrap, security)?;
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
    Ok(Leaders { partitions, security: security.clone() })
}

/// ListOffsets with `timestamp` (-2 earliest, -1 latest) for every
/// partition of `topic`, each asked of its leader.
pub fn offsets(leaders: &Leaders, topic: &str, timestamp: i64) -> Result<BTreeMap<i32, i64>> {
    use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let mut out = BTreeMap::new();
    for (addr, partitions) in leaders.by_broker() {
        let mut conn = Conn::connect_with(&addr, &leaders.security)?;
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

/// One broker of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl Broker {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition of a topic in a Metadata answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMeta {
    pub partition: i32,
    /// Broker id of the leader, -1 when there is none.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub error_code: i16,
}

/// One topic in a Metadata answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    pub name: String,
    /// The topic id (all zeros from brokers before Kafka 2.8).
    pub id: [u8; 16],
    pub internal: bool,
    /// Sorted by partition index.
    pub partitions: Vec<PartitionMeta>,
    pub error: Option<KafkaError>,
}

/// What a Metadata request answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub cluster_id: Option<String>,
    /// -1 when the broker does not say.
    pub controller_id: i32,
    pub brokers: BTreeMap<i32, Broker>,
    pub topics: Vec<TopicMeta>,
}

impl Metadata {
    /// The topic `name`, or the broker's error for it.
    pub fn topic(&self, name: &str) -> Result<&TopicMeta> {
        let t = self
            .topics
            .iter()
            .find(|t| t.name == name)
            .with_context(|| format!("topic {name}: not in the metadata answer"))?;
        if let Some(e) = &t.error {
            return Err(anyhow::Error::new(e.clone()).context(format!("topic {name}")));
        }
        Ok(t)
    }

    /// The address of the leader of `topic`-`partition`.
    pub fn leader_addr(&self, topic: &str, partition: i32) -> Result<String> {
        let t = self.topic(topic)?;
        let p = t
            .partitions
            .iter()
            .find(|p| p.partition == partition)
            .with_context(|| format!("{topic}-{partition}: no such partition"))?;
        check(p.error_code, None).with_context(|| format!("{topic}-{partition}"))?;
        let b = self
            .brokers
            .get(&p.leader)
            .with_context(|| format!("{topic}-{partition}: leader {} unknown", p.leader))?;
        Ok(b.addr())
    }

    /// The partitions of `topic` grouped by their leader's address.
    pub fn by_leader(&self, topic: &str, partitions: &[i32]) -> Result<BTreeMap<String, Vec<i32>>> {
        let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for &p in partitions {
            out.entry(self.leader_addr(topic, p)?).or_default().push(p);
        }
        Ok(out)
    }
}

/// Connections to the brokers of one cluster, opened when first needed,
/// and the coordinators found so far.
pub struct Client {
    bootstrap: String,
    /// How connections log in (PLAINTEXT by default).
    security: crate::security::Security,
    conns: BTreeMap<String, Conn>,
    /// Group → its coordinator's address, until an answer says it moved.
    coordinators: BTreeMap<String, String>,
}

impl Client {
    /// A client for the cluster that `bootstrap` (`host:port`) belongs to.
    /// Connects on the first request.
    pub fn new(bootstrap: &str) -> Client {
        Client::with_security(bootstrap, Default::default())
    }

    /// [`Client::new`] whose connections are secured as `security` says.
    pub fn with_security(bootstrap: &str, security: crate::security::Security) -> Client {
        Client {
            bootstrap: bootstrap.to_string(),
            security,
            conns: BTreeMap::new(),
            coordinators: BTreeMap::new(),
        }
    }

    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The connection to `addr`, opened if needed (again, when its SASL
    /// session is near its end: the broker would close it).
    pub fn conn(&mut self, addr: &str) -> Result<&mut Conn> {
        let now = std::time::Instant::now();
        if self.conns.get(addr).and_then(|c| c.renew_at).is_some_and(|at| now >= at) {
            self.conns.remove(addr);
        }
        if !self.conns.contains_key(addr) {
            let c = Conn::connect_with(addr, &self.security)?;
            self.conns.insert(addr.to_string(), c);
        }
        Ok(self.conns.get_mut(addr).expect("inserted above"))
    }

    /// One request to the broker at `addr`. A connection that failed is
    /// dropped, so the next call reconnects.
    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        addr: &str,
        api: ApiKey,
        version: i16,
        body: &Req,
    ) -> Result<Resp> {
        let result = self.conn(addr)?.call(api, version, body);
        if result.is_err() {
            self.conns.remove(addr);
        }
        result
    }

    /// One request to the bootstrap broker.
    pub fn call_bootstrap<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &Req,
    ) -> Result<Resp> {
        let addr = self.bootstrap.clone();
        self.call(&addr, api, version, body)
    }

    /// Forgets `group`'s coordinator, after an answer said it is not (or a
    /// connection to it failed).
    pub fn forget_coordinator(&mut self, group: &str) {
        self.coordinators.remove(group);
    }

    /// Metadata for `topics` (all topics when `None`); never creates topics.
    pub fn metadata(&mut self, topics: Option<&[&str]>) -> Result<Metadata> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        metadata_request::MetadataRequestTopic::default().with_name(Some(name(t)))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        let r: MetadataResponse =
            self.call_bootstrap(ApiKey::Metadata, METADATA_ADMIN_VERSION, &request)?;
        let brokers = r
            .brokers
            .iter()
            .map(|b| {
                let broker = Broker {
                    id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                };
                (b.node_id.0, broker)
            })
            .collect();
        let topics = r
            .topics
            .iter()
            .map(|t| {
                let mut partitions: Vec<PartitionMeta> = t
                    .partitions
                    .iter()
                    .map(|p| PartitionMeta {
                        partition: p.partition_index,
                        leader: p.leader_id.0,
                        leader_epoch: p.leader_epoch,
                        replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                        isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                        error_code: p.error_code,
                    })
                    .collect();
                partitions.sort_by_key(|p| p.partition);
                TopicMeta {
                    name: t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                    id: *t.topic_id.as_bytes(),
                    internal: t.is_internal,
                    partitions,
                    error: check(t.error_code, None).err(),
                }
            })
            .collect();
        Ok(Metadata {
            cluster_id: r.cluster_id.as_ref().map(|c| c.to_string()),
            controller_id: r.controller_id.0,
            brokers,
            topics,
        })
    }

    /// The metadata quorum as its leader sees it (DescribeQuorum on
    /// `__cluster_metadata` partition 0).
    pub fn describe_quorum(&mut self) -> Result<Quorum> {
        let partition = describe_quorum_request::PartitionData::default().with_partition_index(0);
        let topic = describe_quorum_request::TopicData::default()
            .with_topic_name(name("__cluster_metadata"))
            .with_partitions(vec![partition]);
        let request = DescribeQuorumRequest::default().with_topics(vec![topic]);
        let r: DescribeQuorumResponse =
            self.call_bootstrap(ApiKey::DescribeQuorum, DESCRIBE_QUORUM_VERSION, &request)?;
        check(r.error_code, r.error_message.as_ref())?;
        let p = r
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .context("DescribeQuorum answered no partition")?;
        check(p.error_code, p.error_message.as_ref())?;
        Ok(Quorum {
            leader: p.leader_id.0,
            epoch: p.leader_epoch,
            high_watermark: p.high_watermark,
            voters: p.current_voters.iter().map(|v| (v.replica_id.0, v.log_end_offset)).collect(),
        })
    }

    /// Metadata of the one topic `topic`, which must exist.
    pub fn topic_metadata(&mut self, topic: &str) -> Result<Metadata> {
        let md = self.metadata(Some(&[topic]))?;
        md.topic(topic)?;
        Ok(md)
    }

    /// The address of `group`'s coordinator (remembered from an earlier
    /// answer, or asked for), retrying while the cluster is still electing
    /// or loading it (bounded by [`RETRY_FOR`]).
    pub fn coordinator(&mut self, group: &str) -> Result<String> {
        if let Some(addr) = self.coordinators.get(group) {
            return Ok(addr.clone());
        }
        let addr = self.find_coordinator(group, COORDINATOR_GROUP)?;
        self.coordinators.insert(group.to_string(), addr.clone());
        Ok(addr)
    }

    /// Asks for the coordinator of `key` (a group, or a transactional id
    /// with [`COORDINATOR_TRANSACTION`]), retrying while the cluster is
    /// still electing or loading it (bounded by [`RETRY_FOR`]).
    pub fn find_coordinator(&mut self, key: &str, key_type: i8) -> Result<String> {
        let deadline = Instant::now() + RETRY_FOR;
        loop {
            let r: FindCoordinatorResponse = self.call_bootstrap(
                ApiKey::FindCoordinator,
                FIND_COORDINATOR_VERSION,
                &FindCoordinatorRequest::default().with_key(str(key)).with_key_type(key_type),
            )?;
            match check(r.error_code, r.error_message.as_ref()) {
                Ok(()) => return Ok(format!("{}:{}", r.host, r.port)),
                Err(e) if retriable(&e) && Instant::now() < deadline => {
                    std::thread::sleep(RETRY_BACKOFF)
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e))
                        .with_context(|| format!("finding the coordinator of {key:?}"))
                }
            }
        }
    }

    /// ListOffsets with `timestamp` (-2 earliest, -1 latest, or a time in
    /// ms) for `partitions` of `topic`, each asked of its leader. A time
    /// after the last record answers -1, as Kafka does.
    pub fn list_offsets(
        &mut self,
        md: &Metadata,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<BTreeMap<i32, i64>> {
        use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
        let mut out = BTreeMap::new();
        for (addr, ps) in md.by_leader(topic, partitions)? {
            let request =
                ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
                    ListOffsetsTopic::default().with_name(name(topic)).with_partitions(
                        ps.iter()
                            .map(|&p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(p)
                                    .with_current_leader_epoch(-1)
                                    .with_timestamp(timestamp)
                            })
                            .collect(),
                    ),
                ]);
            let r: ListOffsetsResponse =
                self.call(&addr, ApiKey::ListOffsets, LIST_OFFSETS_VERSION, &request)?;
            for t in &r.topics {
                for p in &t.partitions {
                    check(p.error_code, None)
                        .with_context(|| format!("ListOffsets {topic}-{}", p.partition_index))?;
                    out.insert(p.partition_index, p.offset);
                }
            }
        }
        for p in partitions {
            if !out.contains_key(p) {
                bail!("ListOffsets {topic}-{p}: no answer for the partition");
            }
        }
        Ok(out)
    }
}

/// Answers that mean "ask again soon".
pub fn retriable(e: &KafkaError) -> bool {
    [
        ResponseError::CoordinatorLoadInProgress,
        ResponseError::CoordinatorNotAvailable,
        ResponseError::NotCoordinator,
        ResponseError::LeaderNotAvailable,
    ]
    .iter()
    .any(|&c| e.is(c))
}
