//! The Kafka wire protocol as Corelog speaks it: framing, request headers,
//! response encoding, the table of advertised API versions, and the mapping
//! of engine errors to Kafka error codes.
//!
//! Runs on every shard, inside connection tasks. It never opens a data file
//! and never touches a partition: the shard crate calls it to turn bytes
//! into requests and responses into bytes. Requests and responses are the
//! generated types of the `kafka-protocol` crate.
//!
//! - [`frame`]: size-prefixed frames, with the request size limit.
//! - [`codec`]: request headers in, responses (with their headers) out.
//! - [`versions`]: what ApiVersions advertises; nothing else is served.
//! - [`errors`]: engine errors as Kafka error codes.

pub mod codec;
pub mod errors;
pub mod frame;
pub mod legacy;
pub mod versions;

pub use kafka_protocol;
