//! Corelog's thread-per-core runtime: one shard per core, each its own Kafka
//! broker endpoint.
//!
//! A shard is a glommio executor pinned to a core. It owns the partitions it
//! leads (their logs, files and memory), its listener and its connections;
//! produce and fetch requests never leave it. Shards talk only through
//! channels, and only about metadata (the controller on shard 0 broadcasts
//! new [`metadata::MetadataImage`]s; shards send it controller requests) and
//! shutdown.
//!
//! - [`node`]: starting and stopping the shards of one node.
//! - [`shard`]: one shard's state and its message loop.
//! - [`controller`]: the metadata log and its changes, on shard 0.
//! - [`cluster`]: a node in a cluster: the quorum's controller, and every
//!   node's link to the active one.
//! - [`conn`]: one client connection: frames in, responses out, in order.
//! - [`admission`]: what a shard admits: connections, request bytes, timeouts.
//! - [`handlers`]: the Kafka APIs.
//! - [`groups`]: the consumer groups this shard coordinates.
//! - [`splice`]: zero-copy sends of cold fetch data (a side io_uring).
//! - [`metrics`]: each shard's counters and their Prometheus rendering.
//! - [`metadata`], [`configs`]: metadata records and topic configs.
//! - [`ids`]: typed node, broker and epoch numbers.

pub mod admission;
pub mod cluster;
pub mod configs;
pub mod conn;
pub mod controller;
pub mod groups;
pub mod handlers;
pub mod ids;
pub mod metadata;
pub mod metrics;
pub mod node;
pub mod shard;
pub mod splice;

pub use node::{run, NodeConfig};
