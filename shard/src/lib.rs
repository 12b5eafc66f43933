//! Corelog's thread-per-core runtime: one shard per core, each its own Kafka
//! broker endpoint.
//!
//! A shard is a glommio executor pinned to a core. It owns the partitions it
//! holds a replica of (their logs, files and memory), its listener and its connections;
//! produce and fetch requests never leave it. Shards talk only through
//! channels, and only about metadata (the controller on shard 0 broadcasts
//! new [`metadata::MetadataImage`]s; shards send it controller requests) and
//! shutdown. Replicas on other nodes fetch from a partition's leader with
//! Kafka's Fetch, as followers do in Kafka.
//!
//! Modules, top to bottom; each uses only those below it:
//!
//! - [`node`]: starting and stopping the shards of one node.
//! - [`cluster`]: the controllers that feed the metadata state machine (a
//!   single node's, the quorum's) and every node's link to the active one.
//! - [`conn`]: one client connection: frames in, responses out, in order;
//!   [`sasl`]: its authentication on a SASL listener ([`oauth`]: the key
//!   set of OAUTHBEARER logins); [`tls`]: the
//!   certificates of TLS listeners and the principals of client ones;
//!   [`peer_auth`]: how this node logs in to other nodes, over
//!   [`peer_stream`] (TLS between nodes when their listener is).
//! - [`handlers`]: the Kafka APIs.
//! - [`splice`]: zero-copy sends of cold fetch data (a side io_uring).
//! - [`shard`]: one shard as a set of services, and how they change together.
//! - the services: [`replica`] (leaders' ISR and high watermark,
//!   followers' fetchers), [`partitions`] (the logs, by interned id), [`groups`]
//!   (the group coordinator), [`controller`] (its pure state machine and
//!   the shards' client of it), [`metadata`] (the image and its cache).
//! - [`metrics`]: each shard's counters and their Prometheus rendering.
//! - [`admission`]: what a shard admits: connections, request bytes, timeouts;
//!   [`quotas`]: the client quotas it enforces.
//! - [`response`], [`context`]: what handlers answer, and whom.
//! - [`config`], [`listener`], [`configs`]: the node's flags and
//!   listeners, topic configs.
//! - [`ids`], [`error`]: typed numbers and errors.

pub mod admission;
pub mod bind;
pub mod broker_configs;
pub mod cluster;
pub mod config;
pub mod configs;
pub mod conn;
pub mod context;
pub mod controller;
pub mod error;
pub mod groups;
pub mod handlers;
pub mod ids;
pub mod listener;
pub mod local;
pub mod log_limit;
pub mod metadata;
pub mod metrics;
pub mod node;
pub mod oauth;
pub mod partitions;
pub mod peer_auth;
pub mod peer_stream;
pub mod quotas;
pub mod replica;
pub mod response;
pub mod sasl;
pub mod shard;
pub mod splice;
pub mod tls;
pub mod txns;

pub use config::NodeConfig;
pub use node::run;
