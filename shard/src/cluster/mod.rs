//! A node in a cluster (`--controller-quorum`): the metadata quorum, and
//! every node's link to its active controller.
//!
//! On shard 0 of every node runs the [`member`]: it registers the node
//! with the active controller and heartbeats, follows the committed
//! metadata (fetching it from the controller, folding it into images and
//! handing each to the node's shards), and forwards the shards' controller
//! commands. On shard 0 of a node in the quorum list also runs the
//! [`controller`]: one Raft voter ([`quorum`]) over TCP between the
//! controllers and a durable log ([`raft_log`]); the leader is the active
//! controller, the only writer of metadata records.
//!
//! - [`local`]: the controller of a single node, without a quorum.
//! - [`frame`]: the frames on a controller's port; [`login`]: the login
//!   that opens each connection to it when nodes have a credential.
//! - [`rpc`]: what nodes ask the controller, as JSON.
//! - [`raft_log`]: a voter's writes in an engine log.

mod acl_wire;
pub mod controller;
pub mod frame;
pub mod local;
pub mod login;
pub mod member;
pub mod raft_log;
pub mod rpc;

use std::time::Duration;

pub use crate::config::{node_of_raft_id, raft_id, QuorumConfig, QuorumVoter};

/// One tick of the quorum's clock: elections after 10 to 20 ticks without
/// a leader (1 to 2 s, KRaft's `controller.quorum.election.timeout.ms` is
/// 1 s), heartbeats every 2 ticks.
pub const TICK: Duration = Duration::from_millis(100);

/// How often a node heartbeats (Kafka's `broker.heartbeat.interval.ms`).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);

/// A node not heard from for this long is fenced (Kafka's
/// `broker.session.timeout.ms`), unless `--broker-session-timeout-ms`
/// says otherwise.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(9);

/// Entries applied between two snapshots of the metadata image, unless
/// `--metadata-snapshot-entries` says otherwise: bounds the Raft log kept
/// in memory and replayed at a restart. A voter or node further behind is
/// sent the snapshot instead of the entries.
pub const SNAPSHOT_ENTRIES: u64 = 1000;

/// How long a forwarded command may take, retries to find the active
/// controller included, before the client is told `NOT_CONTROLLER`.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
