//! A small blocking Kafka client on `std::net::TcpStream` (and rustls): one request, one
//! response, requests encoded with the `kafka-protocol` crate that `net`
//! re-exports. It serves the `corelog` admin, produce and consume commands
//! and the benchmarks' load generator, and speaks only versions that both
//! Corelog and Apache Kafka 3.x/4.x serve, so it works against either.
//!
//! Runs on plain threads of a client process, never inside a broker. Every
//! network wait is bounded ([`conn::CONNECT_TIMEOUT`],
//! [`conn::RESPONSE_TIMEOUT`]).
//!
//! Errors are `anyhow` errors with context, because every caller is a binary
//! that prints them as one line and exits; a broker's answer travels inside
//! as a typed [`KafkaError`] (its code and message), which callers that act
//! on codes (rejoin on a rebalance, `--if-not-exists`) downcast to.
//!
//! - [`conn`]: frames and one connection ([`Conn`]), plain or TLS
//!   ([`tls_stream`]: one session shared by a writer and a reader thread);
//!   [`security`]: TLS and SASL logins from a properties file.
//! - [`cluster`]: metadata, connections per broker, leaders, coordinators,
//!   list offsets ([`Client`], [`Metadata`]).
//! - [`topics`]: create, delete, describe and alter topic configs.
//! - [`groups`]: list, describe and delete groups; fetch and commit offsets.
//! - [`member`]: a consumer group member with the range assignor.
//! - [`records`]: produce and fetch, batches with keys and headers, decoding.
//! - [`compress`]: gzip, snappy, lz4, zstd batches, both ways.
//! - [`txn`]: producer ids, and a transaction's control calls.
//! - [`users`]: SCRAM users, described and altered; [`acls`]: ACLs;
//!   [`quotas`]: client quotas.
//! - [`partitioner`]: murmur2, as Java's default partitioner places keys.
//! - [`error`]: Kafka error codes with their names.

pub mod acls;
pub mod cluster;
pub mod compress;
pub mod conn;
pub mod error;
pub mod groups;
pub mod member;
pub mod partitioner;
pub mod quotas;
pub mod records;
pub mod security;
pub mod tls_stream;
pub mod topics;
pub mod txn;
pub mod users;

pub use cluster::{leaders, offsets, Client, Leaders, Metadata};
pub use conn::{encode_frame, name, set_correlation, skip_response_header_tags, Conn};
pub use conn::{
    CREATE_TOPICS_VERSION, DELETE_TOPICS_VERSION, FETCH_VERSION, LIST_OFFSETS_VERSION,
    METADATA_VERSION, PRODUCE_VERSION,
};
pub use error::KafkaError;
pub use topics::{create_topic, delete_topic};
