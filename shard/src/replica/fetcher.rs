//! A replica fetcher: one task per follower shard and leader broker,
//! fetching every partition this shard follows from that leader in one
//! Fetch request (v13, `replica_id` set, as Kafka's replica fetchers do),
//! appending the leader's batches as they are, and fetching again once
//! they are durable, so that each fetch offset tells the leader this
//! replica's durable end.
//!
//! Runs on the follower's shard. It appends only through
//! [`engine::PartitionLog::append_replicated`] and truncates only where the
//! leader says this replica diverged (the response's `diverging_epoch`,
//! KIP-320's truncation as part of the fetch), both at the leader epoch it
//! fetched at: the log refuses them once its replica leads or follows
//! another leader ([`engine::Writer`]), so an answer that arrives late, or
//! the last one of a fetcher the partition has left, changes nothing. It
//! never serves clients.
//! Every wait is bounded: connects and responses by [`super::wire`],
//! retries by [`RETRY_MAX`].

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use engine::disk::DmaDisk;
use engine::PartitionLog;
use futures_util::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse};
use kafka_protocol::protocol::StrBytes;
use log::{info, warn};
use net::kafka_protocol;

use super::wire::{Wire, WireError};
use crate::admission::within;
use crate::ids::{BrokerId, LeaderEpoch, PartitionId};
use crate::local::LocalCall;
use crate::peer_auth::Peers;
use engine::sync::Notify;

/// The Fetch version replicas speak: the last with `replica_id` in the
/// body and topics by id (a topic deleted and created again is another).
pub const REPLICA_FETCH_VERSION: i16 = 13;

/// How long the leader may hold a fetch with nothing new (Kafka's
/// `replica.fetch.wait.max.ms`, 500 ms).
pub const FETCH_WAIT: Duration = Duration::from_millis(500);

/// Largest fetch response asked for (Kafka's
/// `replica.fetch.response.max.bytes`, 10 MiB), and per partition
/// (`replica.fetch.max.bytes`, 1 MiB): what a fetcher holds in memory.
pub const FETCH_BYTES_MAX: i32 = 10 << 20;
pub const PARTITION_FETCH_BYTES_MAX: i32 = 1 << 20;

/// How long a response may take past [`FETCH_WAIT`] before the connection
/// is taken for dead.
const RESPONSE_SLACK: Duration = Duration::from_secs(10);

/// Waits between attempts after an error: doubling from the first to the
/// last (Kafka's `replica.fetch.backoff.ms` is 1 s).
const RETRY_MIN: Duration = Duration::from_millis(50);
pub const RETRY_MAX: Duration = Duration::from_secs(1);

/// How long a partition the leader refused waits before it is fetched
/// again: the leader's image is usually a few milliseconds behind ours.
const PARTITION_RETRY: Duration = Duration::from_millis(100);

/// How long a response may take in all.
const RESPONSE_LIMIT: Duration = FETCH_WAIT.saturating_add(RESPONSE_SLACK);

/// One fetch over TCP, connecting first when `wire` is not connected to
/// `addr`.
async fn call_tcp(
    peers: &Rc<Peers>,
    wire: &mut Option<(Wire, (String, u16))>,
    addr: &(String, u16),
    request: FetchRequest,
) -> Result<FetchResponse, WireError> {
    if wire.as_ref().is_none_or(|(_, a)| a != addr) {
        *wire = Some((Wire::connect(peers, &addr.0, addr.1).await?, addr.clone()));
    }
    let (w, _) = wire.as_mut().expect("connected");
    w.call(ApiKey::Fetch, REPLICA_FETCH_VERSION, &request, RESPONSE_LIMIT).await
}

/// One fetch from a leader on another shard of this node, over its
/// channel ([`crate::local`]).
async fn call_local(
    peer: &flume::Sender<LocalCall>,
    request: FetchRequest,
) -> Result<FetchResponse, WireError> {
    let (reply, answer) = flume::bounded(1);
    let exchange = async {
        peer.send_async(LocalCall::Fetch { request, reply })
            .await
            .map_err(|_| WireError::Protocol("the leader's shard is gone".into()))?;
        answer
            .recv_async()
            .await
            .map_err(|_| WireError::Protocol("the leader's shard dropped the fetch".into()))
    };
    within(RESPONSE_LIMIT, exchange).await.ok_or(WireError::TimedOut)?
}

/// A partition this shard follows.
#[derive(Clone)]
pub struct Followed {
    pub topic: Rc<str>,
    pub topic_id: [u8; 16],
    pub index: i32,
    pub log: PartitionLog<DmaDisk>,
    pub leader_epoch: LeaderEpoch,
    /// Not fetched before this (the leader refused it; the image may bring
    /// news meanwhile).
    retry_at: Option<Instant>,
    /// The leader's log starts past this replica's end: fetch from there
    /// (the gap is appended over, as a compacted range is).
    fetch_from: Option<i64>,
}

impl Followed {
    pub fn new(
        topic: Rc<str>,
        topic_id: [u8; 16],
        index: i32,
        log: PartitionLog<DmaDisk>,
        leader_epoch: LeaderEpoch,
    ) -> Followed {
        Followed { topic, topic_id, index, log, leader_epoch, retry_at: None, fetch_from: None }
    }

    fn fetch_offset(&self) -> i64 {
        self.log.log_end_offset().max(self.fetch_from.unwrap_or(0))
    }
}

/// The fetcher of one leader broker.
pub struct Fetcher {
    me: BrokerId,
    pub leader: BrokerId,
    addr: RefCell<(String, u16)>,
    /// The leader's shard, when it is on this node: fetches go over its
    /// channel rather than TCP.
    local: Option<flume::Sender<LocalCall>>,
    /// How to log in to a leader on another node.
    peers: Rc<Peers>,
    partitions: RefCell<BTreeMap<PartitionId, Followed>>,
    /// Partitions whose log start is being moved after the leader's, by a
    /// task of its own: at most one each, and never in the fetch loop's
    /// way (the move waits for the log's maintenance lock).
    moving_starts: Rc<RefCell<HashSet<PartitionId>>>,
    changed: Notify,
    stopped: Cell<bool>,
    /// Partition fetches the leader refused to authorize (warned about
    /// once in a hundred).
    denials: Cell<u64>,
    /// Partition fetches the leader refused otherwise (logged once in a
    /// hundred).
    refusals: Cell<u64>,
    /// The last error of a fetch: a new kind of error is logged at once,
    /// the same one once in twenty.
    last_error: RefCell<String>,
}

impl Fetcher {
    pub fn new(
        me: BrokerId,
        leader: BrokerId,
        addr: (String, u16),
        local: Option<flume::Sender<LocalCall>>,
        peers: Rc<Peers>,
    ) -> Rc<Fetcher> {
        Rc::new(Fetcher {
            me,
            leader,
            addr: RefCell::new(addr),
            local,
            peers,
            partitions: RefCell::default(),
            moving_starts: Rc::default(),
            changed: Notify::default(),
            stopped: Cell::new(false),
            denials: Cell::new(0),
            refusals: Cell::new(0),
            last_error: RefCell::default(),
        })
    }

    /// Follows `id` from this leader at `followed.leader_epoch` (a new
    /// epoch replaces the old entry and fetches at once).
    pub fn follow(&self, id: PartitionId, followed: Followed) {
        let mut partitions = self.partitions.borrow_mut();
        let same = partitions.get(&id).is_some_and(|f| f.leader_epoch == followed.leader_epoch);
        if !same {
            partitions.insert(id, followed);
            self.changed.notify();
        }
    }

    pub fn unfollow(&self, id: PartitionId) {
        if self.partitions.borrow_mut().remove(&id).is_some() {
            self.changed.notify();
        }
    }

    pub fn followed_ids(&self) -> Vec<PartitionId> {
        self.partitions.borrow().keys().copied().collect()
    }

    pub fn is_idle(&self) -> bool {
        self.partitions.borrow().is_empty()
    }

    pub fn set_addr(&self, addr: (String, u16)) {
        if *self.addr.borrow() != addr {
            *self.addr.borrow_mut() = addr;
            self.changed.notify();
        }
    }

    pub fn stop(&self) {
        self.stopped.set(true);
        self.changed.notify();
    }

    /// Fetches until stopped.
    pub async fn run(self: Rc<Self>) {
        let mut wire: Option<(Wire, (String, u16))> = None;
        let mut retry = RETRY_MIN;
        let mut failures = 0u64;
        while !self.stopped.get() {
            let changed = self.changed.notified();
            let now = Instant::now();
            let due: Vec<(PartitionId, Followed)> = self
                .partitions
                .borrow()
                .iter()
                .filter(|(_, f)| f.retry_at.is_none_or(|at| at <= now))
                // A replica whose log failed (its disk) fetches nothing
                // more: the leader takes it out of the ISR.
                .filter(|(_, f)| f.log.failure().is_none())
                .map(|(id, f)| (*id, f.clone()))
                .collect();
            if due.is_empty() {
                let next = self.partitions.borrow().values().filter_map(|f| f.retry_at).min();
                let wait = next.map_or(RETRY_MAX, |at| at.saturating_duration_since(now));
                within(wait, changed).await;
                continue;
            }
            // A fetch offset tells the leader this replica's durable end:
            // its own appends (as a deposed leader) may still be on their
            // way to the disk.
            join_all(due.iter().map(|(_, f)| async move {
                let _ = f.log.wait_acked(f.log.log_end_offset()).await;
            }))
            .await;
            let request = self.request(&due);
            let addr = self.addr.borrow().clone();
            let response = match &self.local {
                Some(peer) => call_local(peer, request).await,
                None => call_tcp(&self.peers, &mut wire, &addr, request).await,
            };
            let response = match response {
                Ok(r) => r,
                Err(e) => {
                    wire = None;
                    self.failed(&mut failures, &addr, &e);
                    within(retry, changed).await;
                    retry = (retry * 2).min(RETRY_MAX);
                    continue;
                }
            };
            if failures > 0 {
                info!("replica {}: fetching from broker {} again", self.me, self.leader);
                failures = 0;
            }
            retry = RETRY_MIN;
            self.apply(&due, response).await;
        }
    }

    fn failed(&self, failures: &mut u64, addr: &(String, u16), e: &WireError) {
        let addr = match self.local {
            Some(_) => &("this node's shard".to_string(), self.leader.shard().0),
            None => addr,
        };
        let message = e.to_string();
        if failures.is_multiple_of(20) || *self.last_error.borrow() != message {
            warn!(
                "replica {}: fetching from broker {} at {}:{}: {e} ({} failures in a row)",
                self.me,
                self.leader,
                addr.0,
                addr.1,
                *failures + 1
            );
        }
        *failures += 1;
        *self.last_error.borrow_mut() = message;
    }

    fn request(&self, due: &[(PartitionId, Followed)]) -> FetchRequest {
        let mut topics: BTreeMap<[u8; 16], Vec<FetchPartition>> = BTreeMap::new();
        for (_, f) in due {
            let last_fetched_epoch = f.log.latest_epoch().map_or(-1, |e| e.epoch);
            topics.entry(f.topic_id).or_default().push(
                FetchPartition::default()
                    .with_partition(f.index)
                    .with_current_leader_epoch(f.leader_epoch.0)
                    .with_fetch_offset(f.fetch_offset())
                    .with_last_fetched_epoch(last_fetched_epoch)
                    .with_log_start_offset(f.log.log_start_offset())
                    .with_partition_max_bytes(PARTITION_FETCH_BYTES_MAX),
            );
        }
        FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(self.me.0))
            .with_max_wait_ms(FETCH_WAIT.as_millis() as i32)
            .with_min_bytes(1)
            .with_max_bytes(FETCH_BYTES_MAX)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_rack_id(StrBytes::from_static_str(""))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(id, partitions)| {
                        FetchTopic::default()
                            .with_topic_id(uuid::Uuid::from_bytes(id))
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
    }

    /// Appends, truncates or backs off per partition as the leader
    /// answered; then waits until every append is durable and takes the
    /// leader's high watermark.
    async fn apply(&self, due: &[(PartitionId, Followed)], response: FetchResponse) {
        let asked: HashMap<([u8; 16], i32), &(PartitionId, Followed)> =
            due.iter().map(|d| ((d.1.topic_id, d.1.index), d)).collect();
        let mut appended = Vec::new();
        for t in &response.responses {
            for data in &t.partitions {
                let key = (*t.topic_id.as_bytes(), data.partition_index);
                let Some((id, sent)) = asked.get(&key).map(|d| (d.0, &d.1)) else {
                    continue;
                };
                // The image may have moved the partition while the fetch
                // was out: then its answer is stale.
                let current = self.partitions.borrow().get(&id).map(|f| f.leader_epoch);
                if current != Some(sent.leader_epoch) {
                    continue;
                }
                match self.apply_partition(id, sent, data).await {
                    Ok(Some(end)) => appended.push((
                        id,
                        sent.log.clone(),
                        end,
                        data.high_watermark,
                        data.log_start_offset,
                    )),
                    Ok(None) => {}
                    Err(()) => self.back_off(id),
                }
            }
        }
        let durable = appended.iter().map(|(_, log, end, hw, _)| async move {
            let durable = log.wait_acked(*end).await.is_ok();
            if durable {
                log.set_high_watermark(*hw);
            }
            durable
        });
        let durable = join_all(durable).await;
        for ((id, log, _, _, start), durable) in appended.into_iter().zip(durable) {
            if durable {
                self.follow_log_start(id, log, start);
            }
        }
    }

    /// One partition's answer: `Ok(Some(end))` when batches up to `end`
    /// were appended, `Err` when the partition should wait before the next
    /// fetch.
    async fn apply_partition(
        &self,
        id: PartitionId,
        sent: &Followed,
        data: &PartitionData,
    ) -> Result<Option<i64>, ()> {
        let log = &sent.log;
        let name = format!("{}-{}", sent.topic, sent.index);
        match ResponseError::try_from_code(data.error_code) {
            None => {}
            Some(ResponseError::OffsetOutOfRange) => {
                let offset = sent.fetch_offset();
                if offset < data.log_start_offset {
                    // The leader's retention passed this replica's end.
                    info!(
                        "replica {}: {name} starts again at the leader's log start {}",
                        self.me, data.log_start_offset
                    );
                    self.set_fetch_from(id, Some(data.log_start_offset));
                    return Ok(None);
                }
                // Past the leader's end: only a diverged tail can be.
                let to = data.high_watermark.max(log.log_start_offset());
                return self.truncate(sent, to, "past the leader's end").await.map(|_| None);
            }
            Some(e @ ResponseError::TopicAuthorizationFailed) => {
                let denials = self.denials.get();
                self.denials.set(denials + 1);
                if denials.is_multiple_of(100) {
                    warn!(
                        "replica {}: {name}: broker {} refuses this node's fetches ({e:?}): the principal brokers log in as needs ClusterAction on the cluster (--super-users or an ACL)",
                        self.me, self.leader
                    );
                }
                return Err(());
            }
            Some(e) => {
                // Usually the leader's image a moment behind this one's;
                // a refusal that lasts is a bug to see, not to wait out.
                let refusals = self.refusals.get();
                self.refusals.set(refusals + 1);
                if refusals.is_multiple_of(100) {
                    info!(
                        "replica {}: {name}: broker {} refused the fetch at {}: {e:?} ({} refusals so far)",
                        self.me,
                        self.leader,
                        sent.fetch_offset(),
                        refusals + 1
                    );
                }
                return Err(());
            }
        }
        let diverging = &data.diverging_epoch;
        if diverging.epoch >= 0 || diverging.end_offset >= 0 {
            let (own_epoch, own_end) = log.end_offset_for_epoch(diverging.epoch);
            let to = if diverging.epoch < 0 || own_epoch < 0 {
                log.high_watermark()
            } else {
                diverging.end_offset.min(own_end)
            };
            return self.truncate(sent, to, "diverged from the leader").await.map(|_| None);
        }
        match data.records.as_ref().filter(|r| !r.is_empty()) {
            None => {
                log.set_high_watermark(data.high_watermark);
                self.follow_log_start(id, log.clone(), data.log_start_offset);
                Ok(None)
            }
            Some(records) => match log
                .append_replicated(BytesMut::from(&records[..]), sent.leader_epoch.0)
                .await
            {
                Ok(info) => {
                    self.set_fetch_from(id, None);
                    Ok(Some(info.end_offset))
                }
                Err(e) => {
                    warn!("replica {}: {name}: cannot append the leader's batches: {e}", self.me);
                    Err(())
                }
            },
        }
    }

    async fn truncate(&self, sent: &Followed, to: i64, why: &str) -> Result<(), ()> {
        let name = format!("{}-{}", sent.topic, sent.index);
        let to = to.max(sent.log.log_start_offset());
        match sent.log.truncate_to(to, sent.leader_epoch.0).await {
            Ok(end) => {
                info!("replica {}: {name} {why}: truncated to {end}", self.me);
                Ok(())
            }
            Err(e) => {
                warn!("replica {}: {name}: cannot truncate to {to}: {e}", self.me);
                Err(())
            }
        }
    }

    /// Moves a follower's log start up to its leader's (DeleteRecords or
    /// retention on the leader), as far as its own high watermark allows,
    /// in a task of its own; the leader's DeleteRecords waits for it.
    fn follow_log_start(&self, id: PartitionId, log: PartitionLog<DmaDisk>, leader_start: i64) {
        let to = leader_start.min(log.high_watermark());
        if to <= log.log_start_offset() || !self.moving_starts.borrow_mut().insert(id) {
            return;
        }
        let (me, moving) = (self.me, self.moving_starts.clone());
        glommio::spawn_local(async move {
            if let Err(e) = log.advance_log_start(to).await {
                let dir = log.dir().display().to_string();
                warn!("replica {me}: cannot move the log start of {dir} to {to}: {e}");
            }
            moving.borrow_mut().remove(&id);
        })
        .detach();
    }

    fn set_fetch_from(&self, id: PartitionId, from: Option<i64>) {
        if let Some(f) = self.partitions.borrow_mut().get_mut(&id) {
            f.fetch_from = from;
        }
    }

    /// The leader refused the partition (it is not leader yet or any more,
    /// or at another epoch): ask again later; the image may change first.
    fn back_off(&self, id: PartitionId) {
        if let Some(f) = self.partitions.borrow_mut().get_mut(&id) {
            f.retry_at = Some(Instant::now() + PARTITION_RETRY);
        }
    }
}
