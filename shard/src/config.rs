//! A node's configuration: its flags as the shards see them, and the
//! metadata quorum it belongs to.
//!
//! Pure values, parsed once on the main thread and shared read-only with
//! every shard (`Arc`). Nothing here opens a file or a socket.

use std::path::PathBuf;

use engine::Flush;

use crate::ids::{BrokerId, NodeId, ShardId, NODE_ID_MAX};
use crate::listener::{Listener, SecurityProtocol};

#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Absolute path of the data directory.
    pub data_dir: PathBuf,
    /// The first listener's host and port (shard `k` on `port + k`): the
    /// one brokers reach each other on, and the metrics endpoint's host.
    pub host: String,
    pub port: u16,
    /// `--listener`s beyond the first, which `host` and `port` give with
    /// its protocol in `protocol` (see [`NodeConfig::listeners`]).
    pub protocol: SecurityProtocol,
    pub more_listeners: Vec<Listener>,
    /// SASL mechanisms served on SASL listeners (`--sasl-mechanisms`).
    pub sasl_mechanisms: Vec<auth::SaslMechanism>,
    /// Kafka's `connections.max.reauth.ms`: a SASL session's lifetime, past
    /// which the client must re-authenticate (KIP-368); `None`: unlimited.
    pub connections_max_reauth: Option<std::time::Duration>,
    /// `--authorizer on`: requests are checked against the ACLs (no ACL
    /// means no); off, everything is allowed and the ACL APIs answer
    /// SECURITY_DISABLED, as Kafka without an authorizer.
    pub authorizer: bool,
    /// The `--ssl-*` flags: the certificate of SSL and SASL_SSL listeners.
    pub tls: Option<crate::tls::TlsSettings>,
    /// `--oauthbearer-*`: the key set and expectations of OAUTHBEARER
    /// logins, when `sasl_mechanisms` has it.
    pub oauth: Option<crate::oauth::OAuthConfig>,
    /// `--inter-broker-credential`: the SASL login of this node on other
    /// nodes' SASL inter-broker listeners and controller ports.
    pub inter_broker_credential: Option<auth::Credential>,
    /// Kafka's `super.users`: principals (`User:NAME`) allowed everything.
    pub super_users: std::collections::BTreeSet<String>,
    pub shards: u16,
    pub node_id: i32,
    pub flush: Flush,
    pub auto_create_topics: bool,
    /// Kafka's `num.partitions`: partitions of a topic created without a count.
    pub default_partitions: i32,
    /// Kafka's `default.replication.factor`: replicas of a topic created
    /// without a replication factor.
    pub default_replication_factor: i16,
    /// Kafka's broker `min.insync.replicas`: the ISR an acks=all produce
    /// needs, for topics that do not set their own.
    pub min_insync_replicas: u16,
    /// Kafka's `replica.lag.time.max.ms`: a follower not caught up with its
    /// leader for this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// Kafka's `broker.session.timeout.ms`: a controller fences a node not
    /// heard from for this long.
    pub broker_session_timeout_ms: u64,
    /// Kafka's `transactional.id.expiration.ms`: a transactional id with no
    /// transaction open and no change for this long is forgotten.
    pub transactional_id_expiration_ms: u64,
    /// `--scram-credential` seeds: written into a new metadata log with
    /// its cluster id, ignored once the log exists (salted at startup;
    /// `Debug` shows no key).
    pub scram_credentials: Vec<(String, auth::ScramCredential)>,
    /// How often each shard runs retention and compaction on its logs.
    pub maintenance_interval_ms: u64,
    /// Compaction I/O budget per shard (Kafka's
    /// `log.cleaner.io.max.bytes.per.second`, unlimited there). Measured
    /// here: unpaced compaction (~250 MB/s) multiplies the shard's append
    /// latency by ~10 while it runs; at 64 MB/s the p50 is unchanged
    /// (docs/BENCHMARKS.md, `compaction-latency`).
    pub compaction_bytes_per_sec: u64,
    /// `segment.bytes` of `__consumer_offsets` when the controller creates it.
    pub offsets_segment_bytes: u64,
    /// Splice cold fetch data from segment files to sockets (no copy
    /// through user space); off, fetches read it into memory first.
    pub zero_copy_fetch: bool,
    /// What clients are told to connect to, when it differs from where the
    /// shards listen (a proxy, NAT, a container): Kafka's
    /// `advertised.listeners`. Shard `k` is advertised at `port + k`.
    pub advertised_host: Option<String>,
    pub advertised_port: Option<u16>,
    /// Port of the Prometheus endpoint (`/metrics` on `host`); `None`: none.
    pub metrics_port: Option<u16>,
    /// Partitions the node serves, every topic's together (`--max-partitions`);
    /// `None` at startup means what the open-files limit allows
    /// ([`partitions_allowed`]), which `run` fills in.
    pub partitions_max: Option<usize>,
    /// A connection with no request for this long is closed
    /// (`--connections-max-idle-ms`, default
    /// [`crate::admission::CONNECTIONS_MAX_IDLE`]).
    pub connections_max_idle: std::time::Duration,
    /// The metadata quorum (`--controller-quorum`); `None`: a single node
    /// with its own controller.
    pub controller_quorum: Option<QuorumConfig>,
    /// Entries a controller applies between two snapshots of the metadata
    /// image (`--metadata-snapshot-entries`, default
    /// [`crate::cluster::SNAPSHOT_ENTRIES`]).
    pub metadata_snapshot_entries: u64,
    /// A request not whole this long after its size closes its connection
    /// (`--request-arrival-timeout-ms`, default
    /// [`crate::admission::REQUEST_ARRIVAL_TIMEOUT`]).
    pub request_arrival_timeout: std::time::Duration,
}

/// Open files a partition is budgeted: its active segment's file and one
/// more (a closed segment, an index or snapshot being written). A node
/// with 1,024 open files measured ~950 one-segment partitions opening.
pub const FILES_PER_PARTITION: u64 = 2;

/// The share of the open-files limit kept for everything but partitions:
/// connections, io_uring rings, pipes, the metadata log, listeners.
pub const FILES_RESERVED_SHARE: u64 = 4;

/// Partitions an open-files limit of `files` allows.
pub fn partitions_allowed(files: u64) -> usize {
    ((files - files / FILES_RESERVED_SHARE) / FILES_PER_PARTITION).max(1) as usize
}

impl Default for NodeConfig {
    /// `corelog serve` without flags (Kafka's defaults where Kafka has
    /// one), but one shard: the binary sets one per core.
    fn default() -> NodeConfig {
        NodeConfig {
            data_dir: "corelog-data".into(),
            host: "127.0.0.1".into(),
            port: 9092,
            protocol: SecurityProtocol::Plaintext,
            more_listeners: Vec::new(),
            sasl_mechanisms: auth::SaslMechanism::ALL.to_vec(),
            connections_max_reauth: None,
            authorizer: false,
            super_users: Default::default(),
            inter_broker_credential: None,
            oauth: None,
            tls: None,
            shards: 1,
            node_id: 0,
            flush: Flush::Fsync,
            auto_create_topics: true,
            default_partitions: 1,
            default_replication_factor: 1,
            min_insync_replicas: 1,
            replica_lag_time_max_ms: 30_000,
            broker_session_timeout_ms: crate::cluster::SESSION_TIMEOUT.as_millis() as u64,
            transactional_id_expiration_ms: 604_800_000,
            scram_credentials: Vec::new(),
            maintenance_interval_ms: 15_000,
            offsets_segment_bytes: 100 * 1024 * 1024,
            zero_copy_fetch: true,
            compaction_bytes_per_sec: 64_000_000,
            advertised_host: None,
            advertised_port: None,
            metrics_port: Some(9644),
            partitions_max: None,
            connections_max_idle: crate::admission::CONNECTIONS_MAX_IDLE,
            request_arrival_timeout: crate::admission::REQUEST_ARRIVAL_TIMEOUT,
            controller_quorum: None,
            metadata_snapshot_entries: crate::cluster::SNAPSHOT_ENTRIES,
        }
    }
}

impl NodeConfig {
    /// Shard `k` of node `n` is broker `n * 1000 + k`.
    pub fn broker(&self, shard: ShardId) -> BrokerId {
        BrokerId::of(NodeId(self.node_id), shard)
    }

    pub fn port_of(&self, shard: ShardId) -> u16 {
        self.port + shard.0
    }

    /// Every listener, the inter-broker one first.
    pub fn listeners(&self) -> Vec<Listener> {
        let first = Listener { protocol: self.protocol, host: self.host.clone(), port: self.port };
        std::iter::once(first).chain(self.more_listeners.iter().cloned()).collect()
    }

    /// Every listener as clients are told to reach it: `--advertised-host`
    /// replaces each one's host, `--advertised-port` the first one's port.
    pub fn advertised_listeners(&self) -> Vec<Listener> {
        let mut all = self.listeners();
        for (i, l) in all.iter_mut().enumerate() {
            if let Some(host) = &self.advertised_host {
                l.host = host.clone();
            }
            if i == 0 {
                l.port = self.advertised_port_of(ShardId(0));
            }
        }
        all
    }

    /// The host clients connect to.
    pub fn advertised_host(&self) -> &str {
        self.advertised_host.as_deref().unwrap_or(&self.host)
    }

    /// The port clients connect to for shard `k`.
    pub fn advertised_port_of(&self, shard: ShardId) -> u16 {
        self.advertised_port.unwrap_or(self.port) + shard.0
    }

    /// The rack every shard of this node reports: shards of one node share a machine.
    pub fn rack(&self) -> String {
        format!("node-{}", self.node_id)
    }
}

/// Most voters of a quorum.
pub const VOTERS_MAX: usize = 9;

/// One controller of the quorum: its node and where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    pub node: NodeId,
    pub host: String,
    pub port: u16,
}

impl QuorumVoter {
    /// Its id in Raft, where 0 means none: the node id plus one.
    pub fn raft_id(&self) -> u64 {
        raft_id(self.node)
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

pub fn raft_id(node: NodeId) -> u64 {
    node.0 as u64 + 1
}

pub fn node_of_raft_id(id: u64) -> NodeId {
    NodeId(id.saturating_sub(1) as i32)
}

/// `--controller-quorum 1@host:port,2@host:port,3@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumConfig {
    pub voters: Vec<QuorumVoter>,
}

impl QuorumConfig {
    pub fn parse(s: &str) -> Result<QuorumConfig, String> {
        let mut voters: Vec<QuorumVoter> = Vec::new();
        for entry in s.split(',') {
            let bad = || format!("{entry:?} is not ID@HOST:PORT");
            let (id, addr) = entry.trim().split_once('@').ok_or_else(bad)?;
            let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
            let node: i32 = id.parse().map_err(|_| bad())?;
            if !(0..=NODE_ID_MAX).contains(&node) {
                return Err(format!("node id {node} is outside 0..={NODE_ID_MAX}"));
            }
            let port: u16 = port.parse().map_err(|_| bad())?;
            if host.is_empty() {
                return Err(bad());
            }
            if voters.iter().any(|v| v.node.0 == node) {
                return Err(format!("node {node} is named twice"));
            }
            voters.push(QuorumVoter { node: NodeId(node), host: host.to_string(), port });
        }
        if voters.is_empty() || voters.len() > VOTERS_MAX {
            return Err(format!("a quorum has 1 to {VOTERS_MAX} voters (1, 3 or 5 usually)"));
        }
        Ok(QuorumConfig { voters })
    }

    pub fn voter(&self, node: NodeId) -> Option<&QuorumVoter> {
        self.voters.iter().find(|v| v.node == node)
    }

    pub fn raft_ids(&self) -> Vec<u64> {
        self.voters.iter().map(QuorumVoter::raft_id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_flags() {
        let q = QuorumConfig::parse("1@localhost:9090,2@10.0.0.2:9090, 3@h:1").unwrap();
        assert_eq!(q.voters.len(), 3);
        assert_eq!(q.voters[1].addr(), "10.0.0.2:9090");
        assert_eq!(q.voter(NodeId(3)).unwrap().raft_id(), 4);
        for bad in ["", "1@h", "x@h:1", "1@h:1,1@h:2", "1@:5", "-1@h:1", "1@h:99999"] {
            assert!(QuorumConfig::parse(bad).is_err(), "{bad}");
        }
    }
}
