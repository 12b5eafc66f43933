//! The Kafka APIs a shard serves, one module each. A handler decodes its
//! request body, does the work on this shard (or asks the controller), and
//! encodes the response frame; `Ok(None)` means no response is sent
//! (Produce with acks=0). An `Err` closes the connection. A response is one
//! frame in memory, or (Fetch with cold data) parts to send in order, some
//! of them segment file ranges spliced to the socket ([`Out::Parts`]).
//!
//! Handling has two phases so that one connection's requests pipeline:
//! [`handle`] runs in request order and does what must happen in that order
//! (Produce assigns offsets here); it may return a [`Reply::Later`] future
//! for the waiting part (acknowledgments, fetch long polls), which the
//! connection awaits in order while it already handles the next requests.

mod alter_configs;
mod api_versions;
mod create_partitions;
mod create_topics;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_quorum;
mod fetch;
mod groups;
mod init_producer_id;
mod list_offsets;
mod metadata;
mod offsets;
mod produce;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use net::codec::{DecodeError, Request};
use net::kafka_protocol;

use std::rc::Rc;

use engine::disk::DmaDiskFile;

use crate::shard::Shard;

pub type HandlerResult = Result<Option<Out>, DecodeError>;

/// A response to send.
pub enum Out {
    /// A whole frame.
    Frame(Bytes),
    /// A frame in parts, sent in order (its size prefix counts them all).
    Parts(Vec<Part>),
}

/// A piece of a response frame.
pub enum Part {
    Bytes(Bytes),
    /// `len` bytes at `position` of a segment file, whole acknowledged
    /// batches (the engine's cold read), spliced without a copy.
    File {
        file: Rc<DmaDiskFile>,
        position: u64,
        len: u64,
    },
}

/// The waiting part of a request, awaited in order by the connection.
pub type Later = std::pin::Pin<Box<dyn std::future::Future<Output = HandlerResult>>>;

/// What the in-order phase of a request produced.
pub enum Reply {
    /// The response (or none) is ready.
    Now(HandlerResult),
    /// The response comes when this future completes.
    Later(Later),
}

/// Handles one request from the client at `peer` (`ip:port`).
pub async fn handle(shard: &Rc<Shard>, request: &Request, peer: &str) -> Reply {
    match request.api {
        ApiKey::Produce => produce::handle(shard, request).await,
        ApiKey::Fetch => {
            let (shard, request) = (shard.clone(), request.clone());
            Reply::Later(Box::pin(async move { fetch::handle(&shard, &request).await }))
        }
        ApiKey::JoinGroup => groups::join_group(shard, request, peer),
        ApiKey::SyncGroup => groups::sync_group(shard, request),
        ApiKey::OffsetCommit => offsets::offset_commit(shard, request).await,
        _ => Reply::Now(handle_now(shard, request).await),
    }
}

async fn handle_now(shard: &Shard, request: &Request) -> HandlerResult {
    match request.api {
        ApiKey::ApiVersions => api_versions::handle(request),
        ApiKey::Metadata => metadata::handle(shard, request).await,
        ApiKey::ListOffsets => list_offsets::handle(shard, request).await,
        ApiKey::CreateTopics => create_topics::handle(shard, request).await,
        ApiKey::DescribeConfigs => describe_configs::handle(shard, request).await,
        ApiKey::IncrementalAlterConfigs => alter_configs::handle(shard, request).await,
        ApiKey::DeleteTopics => delete_topics::handle(shard, request).await,
        ApiKey::CreatePartitions => create_partitions::handle(shard, request).await,
        ApiKey::DescribeCluster => describe_cluster::handle(shard, request),
        ApiKey::DescribeQuorum => describe_quorum::handle(shard, request).await,
        ApiKey::FindCoordinator => groups::find_coordinator(shard, request),
        ApiKey::Heartbeat => groups::heartbeat(shard, request),
        ApiKey::LeaveGroup => groups::leave_group(shard, request),
        ApiKey::DescribeGroups => groups::describe_groups(shard, request),
        ApiKey::ListGroups => groups::list_groups(shard, request),
        ApiKey::DeleteGroups => groups::delete_groups(shard, request).await,
        ApiKey::OffsetFetch => offsets::offset_fetch(shard, request),
        ApiKey::InitProducerId => init_producer_id::handle(shard, request).await,
        ApiKey::OffsetDelete => offsets::offset_delete(shard, request).await,
        other => Err(DecodeError::UnknownApi(other as i16)),
    }
}

/// Encodes a response frame, turning an encoding failure (a bug) into a
/// closed connection rather than a panic.
pub fn respond<T: kafka_protocol::protocol::Encodable>(
    request: &Request,
    body: &T,
) -> HandlerResult {
    respond_in(request, request.version, body)
}

pub fn respond_in<T: kafka_protocol::protocol::Encodable>(
    request: &Request,
    version: i16,
    body: &T,
) -> HandlerResult {
    net::codec::encode_response(request, version, body).map(|b| Some(Out::Frame(b))).map_err(
        |reason| DecodeError::Malformed {
            api: request.api as i16,
            version,
            reason: format!("cannot encode the response: {reason}"),
        },
    )
}
