//! Replication between two shards of one node: a partition whose replicas
//! were placed by hand on several shards of a node (a single host's
//! redundancy across cores; never the default placement, which spreads
//! replicas over nodes).
//! The follower's fetcher hands its Fetch request to the leader's shard
//! over a channel instead of a socket, and the leader's shard answers it
//! exactly as it answers a replica fetch over TCP (same divergence check,
//! same progress, same long poll), the records in memory rather than
//! spliced. Cores exchange these replication messages only; clients'
//! produce and fetch traffic never crosses cores.
//!
//! [`serve`] runs on every shard, for the followers on its node's other
//! shards; a fetcher ([`super::fetcher`]) sends at most one request at a
//! time and waits for its answer (or gives up after its response limit,
//! long after a fetch's 500 ms wait has ended), so a shard holds about one
//! fetch per follower fetcher of its node.

use std::rc::Rc;

use net::kafka_protocol::messages::{FetchRequest, FetchResponse};

use crate::shard::Shard;

/// Fetches queued for one shard before senders wait: one per fetcher of
/// the node's other shards is all a shard ever holds, so this is slack.
pub const LOCAL_FETCHES_QUEUED_MAX: usize = 64;

/// A follower's fetch on its way to the leader's shard.
pub struct LocalFetch {
    /// Fetch at [`super::fetcher::REPLICA_FETCH_VERSION`], `replica_id` set.
    pub request: FetchRequest,
    pub reply: flume::Sender<FetchResponse>,
}

/// A shard's inbox of local fetches, and every shard's sender (by shard id).
pub type LocalFetches = (flume::Sender<LocalFetch>, flume::Receiver<LocalFetch>);

/// Answers the local fetches of this shard's inbox until the node stops.
pub async fn serve(shard: Rc<Shard>, inbox: flume::Receiver<LocalFetch>) {
    while let Ok(LocalFetch { request, reply }) = inbox.recv_async().await {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            let version = super::fetcher::REPLICA_FETCH_VERSION;
            let response = crate::handlers::fetch::serve_local(&shard, &request, version).await;
            // The fetcher may have given up waiting: nothing to tell.
            let _ = reply.send(response);
        })
        .detach();
    }
}
