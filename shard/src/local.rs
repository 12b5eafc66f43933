//! Calls between the shards of one node, over channels instead of
//! sockets: the only messages cores exchange besides metadata.
//!
//! - [`LocalCall::Fetch`]: replication between two shards of one node (a
//!   partition whose replicas were placed by hand on several shards of a
//!   node, a single host's redundancy across cores; never the default
//!   placement, which spreads replicas over nodes). The follower's fetcher
//!   hands its Fetch request to the leader's shard, which answers it
//!   exactly as a replica fetch over TCP (same divergence check, same
//!   progress, same long poll), the records in memory rather than spliced.
//! - [`LocalCall::Markers`]: a transaction coordinator's COMMIT or ABORT
//!   markers for partitions another shard of the node leads (what
//!   WriteTxnMarkers carries between nodes).
//! - [`LocalCall::Verify`]: a partition leader's KIP-890 check with the
//!   coordinator of a transactional id on another shard of the node (what
//!   AddPartitionsToTxn with `verify_only` carries between nodes).
//!
//! Clients' produce and fetch traffic never crosses cores. [`serve`] runs
//! on every shard and only receives and spawns, so it never waits on
//! another shard: two shards calling each other cannot deadlock. Each
//! caller waits for its answer at most its own limit, and what the call
//! does is bounded by the same limits (a fetch's long poll, a marker's
//! wait for its ISR), so a shard holds about one call per caller of the
//! node's other shards: one per follower fetcher, per completing
//! transaction, per produce waiting for a check, and for at most a limit
//! more those callers gave up on. A call is work in flight like a request:
//! a stopping shard takes none and waits for those it runs.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use net::kafka_protocol::messages::{FetchRequest, FetchResponse};

use crate::shard::{RequestGuard, Shard};
use crate::txns::Marker;

/// Calls queued for one shard before callers wait (within their limit):
/// far more than the node's fetchers and coordinators have in flight at
/// once.
pub const LOCAL_CALLS_QUEUED_MAX: usize = 256;

/// A (topic, partition) with its error code (0: done).
pub type PartitionCode = ((String, i32), i16);

/// A call on its way to another shard of this node; `reply` takes the
/// answer (dropped unanswered if the shard stops meanwhile).
pub enum LocalCall {
    /// A follower's Fetch at [`crate::replica::fetcher::REPLICA_FETCH_VERSION`],
    /// `replica_id` set.
    Fetch { request: FetchRequest, reply: flume::Sender<FetchResponse> },
    /// Write `marker` to each of `partitions` this shard leads.
    Markers {
        marker: Marker,
        partitions: Vec<(String, i32)>,
        reply: flume::Sender<Vec<PartitionCode>>,
    },
    /// Whether producer `pid` at `epoch` of transactional id `id` has added
    /// `partition` to its open transaction.
    Verify {
        id: String,
        pid: i64,
        epoch: i16,
        partition: (String, i32),
        reply: flume::Sender<Result<(), i16>>,
    },
}

/// A shard's inbox of local calls, and the sender every shard holds.
pub type LocalCalls = (flume::Sender<LocalCall>, flume::Receiver<LocalCall>);

/// Sends the call `make` builds to `peer` and waits for its answer, at
/// most `limit`: `None` if it did not come (the shard is gone or slow).
pub async fn call<T>(
    peer: &flume::Sender<LocalCall>,
    limit: Duration,
    make: impl FnOnce(flume::Sender<T>) -> LocalCall,
) -> Option<T> {
    let (reply, answer) = flume::bounded(1);
    let exchange = async {
        peer.send_async(make(reply)).await.ok()?;
        answer.recv_async().await.ok()
    };
    crate::admission::within(limit, exchange).await.flatten()
}

/// Answers the calls of this shard's inbox until the node stops, each in
/// a task of its own.
pub async fn serve(shard: Rc<Shard>, inbox: flume::Receiver<LocalCall>) {
    while let Ok(c) = inbox.recv_async().await {
        if shard.stopping() {
            // Dropped unanswered: the caller retries elsewhere or later.
            continue;
        }
        let guard = shard.start_request();
        let shard = shard.clone();
        match c {
            LocalCall::Fetch { request, reply } => spawn(guard, reply, async move {
                let version = crate::replica::fetcher::REPLICA_FETCH_VERSION;
                crate::handlers::fetch::serve_local(&shard, &request, version).await
            }),
            LocalCall::Markers { marker, partitions, reply } => spawn(guard, reply, async move {
                crate::handlers::txn_markers::write_markers_here(&shard, &marker, &partitions).await
            }),
            LocalCall::Verify { id, pid, epoch, partition, reply } => {
                spawn(guard, reply, async move {
                    crate::handlers::txn::verify_here(&shard, &id, pid, epoch, &[partition])
                })
            }
        }
    }
}

/// Answers `reply` in a task of its own, counted in flight until done.
fn spawn<T: 'static>(
    guard: RequestGuard,
    reply: flume::Sender<T>,
    answer: impl Future<Output = T> + 'static,
) {
    glommio::spawn_local(async move {
        // The caller may have given up waiting: nothing to tell.
        let _ = reply.send(answer.await);
        drop(guard);
    })
    .detach();
}
