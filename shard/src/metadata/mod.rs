//! The cluster metadata: nodes and their brokers, topics, their
//! partitions' replicas, leaders and ISR, and their configs, as an
//! immutable [`MetadataImage`] that every shard holds and the controller
//! replaces.
//!
//! The image is a fold of [`MetadataRecord`]s, the records of the metadata
//! log; [`records`] documents their format. Shared across shards
//! (`Send + Sync` behind an `Arc`), never mutated.

pub mod cache;
pub mod records;

use std::collections::{BTreeMap, BTreeSet};

use auth::acl::AclBinding;
use auth::scram::{Mechanism, ScramCredential};
pub use cache::MetadataCache;
pub use records::MetadataRecord;

use crate::ids::{BrokerId, LeaderEpoch, NodeId, PartitionEpoch, ShardId};
use crate::listener::{Listener, SecurityProtocol};

/// Kafka's limit on topic name length.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

/// A node of the cluster: its brokers (one per shard) and where clients
/// reach them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeMeta {
    pub id: NodeId,
    /// Where brokers reach its shards (its first listener, advertised):
    /// shard `k` at `host:port + k`.
    pub host: String,
    pub port: u16,
    /// Every listener, advertised, the first one `host:port`; empty: one
    /// PLAINTEXT listener at `host:port` (records from before listeners).
    pub listeners: Vec<Listener>,
    pub shards: u16,
    pub rack: String,
    /// Missed its heartbeats: its brokers lead nothing and are not listed.
    pub fenced: bool,
}

impl NodeMeta {
    /// Its brokers, shard 0 first.
    pub fn brokers(&self) -> impl Iterator<Item = BrokerId> + '_ {
        (0..self.shards).map(|s| BrokerId::of(self.id, ShardId(s)))
    }

    /// Where clients of `protocol`'s listener reach its shard 0 (shard `k`
    /// at port + k), if it has that listener.
    pub fn listener(&self, protocol: SecurityProtocol) -> Option<(&str, u16)> {
        if self.listeners.is_empty() {
            return (protocol == SecurityProtocol::Plaintext)
                .then_some((self.host.as_str(), self.port));
        }
        self.listeners.iter().find(|l| l.protocol == protocol).map(|l| (l.host.as_str(), l.port))
    }

    /// Where clients of `protocol`'s listener reach `broker`, one of its
    /// brokers.
    pub fn endpoint_on(&self, broker: BrokerId, protocol: SecurityProtocol) -> Option<(&str, u16)> {
        let (host, port) = self.listener(protocol)?;
        let port = port.checked_add(broker.shard().0)?;
        (broker.shard().0 < self.shards).then_some((host, port))
    }
}

/// One partition's replicas and leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMeta {
    /// Every broker holding a copy, the preferred leader first.
    pub replicas: Vec<BrokerId>,
    /// The replicas caught up with the leader (the leader among them).
    pub isr: Vec<BrokerId>,
    /// `None` while no ISR member is alive (the partition is offline).
    pub leader: Option<BrokerId>,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: PartitionEpoch,
}

impl PartitionMeta {
    /// A partition with one replica, `broker`, its leader.
    pub fn single(broker: BrokerId) -> PartitionMeta {
        PartitionMeta {
            replicas: vec![broker],
            isr: vec![broker],
            leader: Some(broker),
            leader_epoch: LeaderEpoch(0),
            partition_epoch: PartitionEpoch(0),
        }
    }
}

/// A topic's partitions, by partition index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    pub name: String,
    pub id: [u8; 16],
    pub partitions: Vec<PartitionMeta>,
    /// Topic configs set at creation (Kafka names), defaults omitted.
    pub configs: BTreeMap<String, String>,
}

/// The state of the cluster's metadata at one point of the metadata log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    /// Number of records applied; grows with every change.
    pub epoch: u64,
    pub cluster_id: String,
    pub nodes: BTreeMap<NodeId, NodeMeta>,
    pub topics: BTreeMap<String, TopicMeta>,
    /// The first producer id not handed out yet.
    pub next_producer_id: i64,
    /// SCRAM credentials by user and mechanism (SASL's secrets: salted,
    /// never passwords).
    pub scram: BTreeMap<String, BTreeMap<Mechanism, ScramCredential>>,
    /// The ACL bindings in force (the super users come from the flags).
    pub acls: BTreeSet<AclBinding>,
    /// Client quotas by entity and key ([`crate::quotas`]).
    pub quotas: crate::quotas::QuotaConfigs,
}

impl MetadataImage {
    /// The image after `record`.
    pub fn apply(&self, record: &MetadataRecord) -> MetadataImage {
        let mut next = self.clone();
        next.apply_mut(record);
        next
    }

    /// The image after `records`, in order: one copy of the image, not one
    /// per record (fencing a node writes a record per partition it held).
    pub fn applied(&self, records: &[MetadataRecord]) -> MetadataImage {
        let mut next = self.clone();
        for r in records {
            next.apply_mut(r);
        }
        next
    }

    /// Folds `record` into this image. A record about a node, topic or
    /// partition the image lacks changes nothing but the epoch.
    pub fn apply_mut(&mut self, record: &MetadataRecord) {
        let next = self;
        next.epoch += 1;
        let fenced = |next: &mut MetadataImage, node: &NodeId, fenced: bool| {
            if let Some(n) = next.nodes.get_mut(node) {
                n.fenced = fenced;
            }
        };
        match record {
            MetadataRecord::Cluster { id } => next.cluster_id = id.clone(),
            MetadataRecord::Node(n) => {
                next.nodes.insert(n.id, n.clone());
            }
            MetadataRecord::Fence { node } => fenced(next, node, true),
            MetadataRecord::Unfence { node } => fenced(next, node, false),
            MetadataRecord::Unregister { node } => {
                next.nodes.remove(node);
            }
            MetadataRecord::Topic(t) => {
                next.topics.insert(t.name.clone(), t.clone());
            }
            MetadataRecord::Partition { topic, partition, state } => {
                let slot = next
                    .topics
                    .get_mut(topic)
                    .and_then(|t| t.partitions.get_mut(usize::try_from(*partition).ok()?));
                if let Some(slot) = slot {
                    *slot = state.clone();
                }
            }
            MetadataRecord::DeleteTopic { name } => {
                next.topics.remove(name);
            }
            MetadataRecord::ProducerIds { next: n } => next.next_producer_id = *n,
            MetadataRecord::Scram { user, credential } => {
                next.scram
                    .entry(user.clone())
                    .or_default()
                    .insert(credential.mechanism, credential.clone());
            }
            MetadataRecord::Acl(b) => {
                next.acls.insert(b.clone());
            }
            MetadataRecord::AclDelete(b) => {
                next.acls.remove(b);
            }
            MetadataRecord::Quota { entity, key, value } => {
                let of_entity = next.quotas.entry(entity.clone()).or_default();
                match value {
                    Some(v) => {
                        of_entity.insert(key.clone(), *v);
                    }
                    None => {
                        of_entity.remove(key);
                    }
                }
                if of_entity.is_empty() {
                    next.quotas.remove(entity);
                }
            }
            MetadataRecord::ScramDelete { user, mechanism } => {
                if let Some(of_user) = next.scram.get_mut(user) {
                    of_user.remove(mechanism);
                    if of_user.is_empty() {
                        next.scram.remove(user);
                    }
                }
            }
        }
    }

    /// Records that rebuild this image from an empty one (its epoch aside):
    /// a snapshot of the metadata.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        if !self.cluster_id.is_empty() {
            out.push(MetadataRecord::Cluster { id: self.cluster_id.clone() });
        }
        out.extend(self.nodes.values().map(|n| MetadataRecord::Node(n.clone())));
        out.extend(self.topics.values().map(|t| MetadataRecord::Topic(t.clone())));
        if self.next_producer_id != 0 {
            out.push(MetadataRecord::ProducerIds { next: self.next_producer_id });
        }
        for (user, of_user) in &self.scram {
            out.extend(
                of_user
                    .values()
                    .map(|c| MetadataRecord::Scram { user: user.clone(), credential: c.clone() }),
            );
        }
        out.extend(self.acls.iter().map(|b| MetadataRecord::Acl(b.clone())));
        for (entity, quotas) in &self.quotas {
            out.extend(quotas.iter().map(|(key, value)| MetadataRecord::Quota {
                entity: entity.clone(),
                key: key.clone(),
                value: Some(*value),
            }));
        }
        out
    }

    /// A partition's state, if the partition exists.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionMeta> {
        let t = self.topics.get(topic)?;
        t.partitions.get(usize::try_from(partition).ok()?)
    }

    /// The leader broker of a partition, if the partition exists and has one.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<BrokerId> {
        self.partition(topic, partition)?.leader
    }

    /// Where clients of `protocol`'s listener reach `broker`, if its node
    /// has that listener.
    pub fn endpoint_on(&self, broker: BrokerId, protocol: SecurityProtocol) -> Option<(&str, u16)> {
        self.nodes.get(&broker.node())?.endpoint_on(broker, protocol)
    }

    /// Where other brokers reach `broker`: its node's first listener, at
    /// port + shard.
    pub fn endpoint(&self, broker: BrokerId) -> Option<(&str, u16)> {
        let node = self.nodes.get(&broker.node())?;
        let port = node.port.checked_add(broker.shard().0)?;
        (broker.shard().0 < node.shards).then_some((node.host.as_str(), port))
    }

    /// Topics by id.
    pub fn topic_by_id(&self, id: &[u8; 16]) -> Option<&TopicMeta> {
        self.topics.values().find(|t| &t.id == id)
    }

    /// The nodes not fenced, by id.
    pub fn live_nodes(&self) -> impl Iterator<Item = &NodeMeta> + '_ {
        self.nodes.values().filter(|n| !n.fenced)
    }

    /// Every broker of every live node, with its node; by node, then shard.
    pub fn live_brokers(&self) -> impl Iterator<Item = (BrokerId, &NodeMeta)> + '_ {
        self.live_nodes().flat_map(|n| n.brokers().map(move |b| (b, n)))
    }

    /// Whether `broker` is a shard of a registered node not fenced.
    pub fn is_live(&self, broker: BrokerId) -> bool {
        self.nodes.get(&broker.node()).is_some_and(|n| !n.fenced && broker.shard().0 < n.shards)
    }
}

/// Kafka's topic name rule: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(format!("topic name must be 1 to {TOPIC_NAME_BYTES_MAX} characters"));
    }
    if name == "." || name == ".." {
        return Err("topic name cannot be '.' or '..'".into());
    }
    if let Some(c) =
        name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!("topic name {name:?} contains {c:?}: only [a-zA-Z0-9._-] are legal"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_fold() {
        use auth::acl::{Operation, PatternType, Permission, ResourceType};
        let acl = |principal: &str| AclBinding {
            resource_type: ResourceType::Topic,
            name: "orders-".into(),
            pattern: PatternType::Prefixed,
            principal: principal.into(),
            host: "*".into(),
            operation: Operation::Write,
            permission: Permission::Allow,
        };
        let b = |n: i32, s: u16| BrokerId::of(NodeId(n), ShardId(s));
        let moved = PartitionMeta {
            replicas: vec![b(1, 1), b(2, 0)],
            isr: vec![b(2, 0)],
            leader: Some(b(2, 0)),
            leader_epoch: LeaderEpoch(3),
            partition_epoch: PartitionEpoch(5),
        };
        let t = TopicMeta {
            name: "orders".into(),
            id: [7; 16],
            partitions: vec![PartitionMeta::single(b(1, 0)), PartitionMeta::single(b(1, 1))],
            configs: [("retention.ms".to_string(), "1000".to_string())].into(),
        };
        let node = |id: i32| NodeMeta {
            id: NodeId(id),
            host: "h".into(),
            port: 9092,
            listeners: if id == 2 {
                vec![
                    Listener::parse("PLAINTEXT://h:9092").unwrap(),
                    Listener::parse("SASL_PLAINTEXT://h2:9192").unwrap(),
                ]
            } else {
                Vec::new()
            },
            shards: 2,
            rack: "r".into(),
            fenced: false,
        };
        let records = [
            MetadataRecord::Cluster { id: "abc".into() },
            MetadataRecord::Node(node(1)),
            MetadataRecord::Node(node(2)),
            MetadataRecord::Node(node(3)),
            MetadataRecord::Fence { node: NodeId(1) },
            MetadataRecord::Unfence { node: NodeId(1) },
            MetadataRecord::Fence { node: NodeId(2) },
            MetadataRecord::Unregister { node: NodeId(3) },
            MetadataRecord::Topic(t.clone()),
            MetadataRecord::Partition {
                topic: "orders".into(),
                partition: 1,
                state: moved.clone(),
            },
            MetadataRecord::Partition {
                topic: "orders".into(),
                partition: 2,
                state: moved.clone(),
            },
            MetadataRecord::Topic(TopicMeta { name: "gone".into(), ..t.clone() }),
            MetadataRecord::DeleteTopic { name: "gone".into() },
            MetadataRecord::ProducerIds { next: 1000 },
            MetadataRecord::Acl(acl("User:alice")),
            MetadataRecord::Acl(acl("User:bob")),
            MetadataRecord::AclDelete(acl("User:alice")),
            quota(&[("user", Some("alice"))], "producer_byte_rate", Some(1024.0)),
            quota(&[("user", None), ("client-id", Some("app"))], "request_percentage", Some(12.5)),
            quota(&[("client-id", None)], "consumer_byte_rate", Some(2048.0)),
            quota(&[("client-id", None)], "consumer_byte_rate", None),
        ];
        let mut image = MetadataImage::default();
        for r in &records {
            assert_eq!(&MetadataRecord::decode(&r.encode(), NodeId(9)).unwrap(), r);
            image = image.apply(r);
        }
        assert_eq!(image.epoch, records.len() as u64);
        assert_eq!(image.next_producer_id, 1000);
        assert!(!image.topics.contains_key("gone"));
        assert_eq!(image.leader("orders", 0), Some(b(1, 0)));
        assert_eq!(image.partition("orders", 1), Some(&moved));
        assert_eq!(image.topics["orders"].partitions.len(), 2, "no partition 2 appears");
        assert_eq!(image.leader("orders", 3), None);
        assert_eq!(image.leader("orders", -1), None);
        assert_eq!(image.topic_by_id(&[7; 16]).unwrap().name, "orders");
        assert_eq!(image.acls.iter().collect::<Vec<_>>(), vec![&acl("User:bob")]);
        assert_eq!(image.quotas.len(), 2, "an entity without quotas left is gone");
        let rebuilt = image.to_records().iter().fold(MetadataImage::default(), |i, r| i.apply(r));
        assert_eq!(MetadataImage { epoch: image.epoch, ..rebuilt }, image);
        let live: Vec<_> = image.live_nodes().map(|n| n.id).collect();
        assert_eq!(live, vec![NodeId(1)]);
        assert!(image.is_live(b(1, 1)) && !image.is_live(b(1, 2)) && !image.is_live(b(2, 0)));
    }

    fn quota(entity: &[(&str, Option<&str>)], key: &str, value: Option<f64>) -> MetadataRecord {
        MetadataRecord::Quota {
            entity: crate::quotas::QuotaEntity::from_parts(entity.iter().copied()).unwrap(),
            key: key.into(),
            value: value.map(crate::quotas::QuotaValue),
        }
    }

    /// A log written before nodes were registered names shards of the node
    /// that wrote it.
    #[test]
    fn legacy_topic_records_name_shards_of_the_local_node() {
        let old = br#"{"type":"topic","name":"t","id":"0707070707070707070707070707070f","shards":[0,1,0],"configs":{}}"#;
        let MetadataRecord::Topic(t) = MetadataRecord::decode(old, NodeId(4)).unwrap() else {
            panic!()
        };
        let leaders: Vec<_> = t.partitions.iter().map(|p| p.leader).collect();
        assert_eq!(leaders, [Some(BrokerId(4000)), Some(BrokerId(4001)), Some(BrokerId(4000))]);
        assert_eq!(t.partitions[1], PartitionMeta::single(BrokerId(4001)));
        for bad in [
            &br#"{"type":"topic","name":"t","id":"0707070707070707070707070707070f","shards":[1000],"configs":{}}"#[..],
            br#"{"type":"node","id":-1,"host":"h","port":1,"shards":1,"rack":"r","fenced":false}"#,
            br#"{"type":"node","id":1,"host":"h","port":1,"shards":0,"rack":"r","fenced":false}"#,
            br#"{"type":"partition","topic":"t","partition":0,"state":[[1],[1],1,0]}"#,
        ] {
            assert!(MetadataRecord::decode(bad, NodeId(0)).is_err());
        }
    }

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("a.b_c-D9").is_ok());
        for bad in ["", ".", "..", "a b", "ü", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }
}
