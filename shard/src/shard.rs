//! One shard: its services, each with a narrow interface, and how they
//! change together when a new image arrives or the node stops.
//!
//! - [`Partitions`]: the logs of the partitions it holds, by interned id.
//! - [`Replicas`]: which of them it leads or follows, and replication.
//! - [`MetadataCache`]: its copy of the metadata image.
//! - [`Coordinator`]: the consumer groups it coordinates, and their records.
//! - [`Transactions`]: the transactional ids it coordinates.
//! - [`ControllerClient`]: its requests to the node's controller.
//! - [`Connections`] and [`RequestBytes`]: what it admits.
//!
//! Runs on its own executor (core). Everything here is shard-local (`Rc`,
//! `RefCell`); the only things that cross cores are the channel messages
//! [`ShardMsg`] and [`crate::controller::ControllerMsg`]. Handlers and
//! connections sit above this module; it never calls them.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use engine::sync::Notify;
use log::warn;

use crate::admission::{Connections, RequestBytes};
use crate::config::NodeConfig;
use crate::controller::client::ControllerClient;
use crate::groups::{Coordinator, OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS};
use crate::ids::{BrokerId, NodeId, ShardId};
use crate::metadata::{MetadataCache, MetadataImage};
use crate::partitions::Partitions;
use crate::replica::Replicas;
use crate::txns::{Transactions, TRANSACTION_TOPIC, TRANSACTION_TOPIC_PARTITIONS};

/// Messages a shard receives from other shards.
pub enum ShardMsg {
    /// A new metadata image: open the logs of partitions this shard now
    /// leads. `controller`: the node whose controller is active, if known.
    Image { image: Arc<MetadataImage>, controller: Option<NodeId>, done: flume::Sender<()> },
    /// Stop: finish in-flight requests, close every log cleanly.
    Shutdown { done: flume::Sender<()> },
}

pub struct Shard {
    pub id: ShardId,
    pub config: Arc<NodeConfig>,
    pub metadata: MetadataCache,
    pub partitions: Partitions,
    pub replicas: Replicas,
    pub groups: Coordinator,
    pub txns: Transactions,
    /// Every shard of this node's inbox of local calls, by shard id.
    pub local: Vec<flume::Sender<crate::local::LocalCall>>,
    pub controller: ControllerClient,
    pub connections: Connections,
    /// Request bytes held by this shard's connections (`queued.max.request.bytes`).
    pub request_bytes: Rc<RequestBytes>,
    /// PLAIN logins this shard may still check ([`crate::sasl`]).
    pub plain_budget: Rc<crate::sasl::PlainBudget>,
    /// Zero-copy sends of cold fetch data; `None` copies them instead
    /// (`--zero-copy-fetch false`, or no side ring could be set up).
    pub splicer: Option<Rc<crate::splice::Splicer>>,
    /// The TLS configuration of SSL and SASL_SSL listeners, reloaded when
    /// its files change; `None` without TLS listeners.
    pub tls: Option<Rc<std::cell::RefCell<crate::tls::Certificates>>>,
    /// How this shard logs in to other nodes' brokers.
    pub peers: Rc<crate::peer_auth::Peers>,
    /// The key set of OAUTHBEARER logins, if served.
    pub oauth: Option<Rc<crate::oauth::OAuthKeys>>,
    /// Connections to other nodes' brokers kept between transaction calls.
    pub wires: crate::replica::wire::WirePool,
    /// The rates of this shard's clients under a quota ([`crate::quotas`]).
    pub quotas: std::cell::RefCell<crate::quotas::ShardQuotas>,
    /// When the shard started: the origin of the quota rates' clock.
    born: std::time::Instant,
    /// This shard's counters (exported by `crate::metrics`).
    pub metrics: crate::metrics::ShardMetrics,
    /// No new requests are taken once set.
    stopping: Cell<bool>,
    /// Notified when `stopping` is set: long polls answer at once.
    stop: Notify,
    /// Requests being handled; shutdown waits for zero.
    in_flight: Cell<usize>,
    request_done: Notify,
}

impl Shard {
    pub fn new(
        id: ShardId,
        config: Arc<NodeConfig>,
        partitions: Partitions,
        controller: ControllerClient,
        splicer: Option<Rc<crate::splice::Splicer>>,
        local: Vec<flume::Sender<crate::local::LocalCall>>,
        tls: Option<crate::tls::Certificates>,
    ) -> Shard {
        let lag = std::time::Duration::from_millis(config.replica_lag_time_max_ms);
        let tls = tls.map(|t| Rc::new(std::cell::RefCell::new(t)));
        let peers = Rc::new(crate::peer_auth::Peers::new(
            config.protocol,
            config.inter_broker_credential.clone(),
            tls.clone(),
        ));
        Shard {
            id,
            metadata: MetadataCache::new(config.broker(id)),
            replicas: Replicas::new(config.broker(id), lag, local.clone(), peers.clone()),
            local,
            config,
            partitions,
            groups: Coordinator::default(),
            txns: Transactions::default(),
            controller,
            connections: Connections::default(),
            request_bytes: RequestBytes::new(crate::admission::QUEUED_REQUEST_BYTES_MAX),
            plain_budget: Rc::new(crate::sasl::PlainBudget::new(std::time::Instant::now())),
            splicer,
            tls,
            peers,
            wires: Default::default(),
            oauth: None,
            quotas: Default::default(),
            born: std::time::Instant::now(),
            metrics: Default::default(),
            stopping: Cell::new(false),
            stop: Notify::default(),
            in_flight: Cell::new(0),
            request_done: Notify::default(),
        }
    }

    /// The broker id clients know this shard by.
    pub fn broker(&self) -> BrokerId {
        self.metadata.me()
    }

    /// The quota of `kind` that applies to the client of `context` calling
    /// itself `client_id`, if any: no cost beyond a look at the image when
    /// no quota is set.
    pub fn quota_of(
        &self,
        kind: crate::quotas::QuotaKind,
        context: &crate::context::ConnContext,
        client_id: &str,
    ) -> Option<crate::quotas::Quota> {
        let image = self.metadata.image();
        crate::quotas::resolve(&image.quotas, kind, context.quota_user(), client_id)
    }

    /// Records `value` under `quota` and answers the throttle time, muting
    /// the connection of `context` that long.
    pub fn throttle(
        &self,
        quota: &crate::quotas::Quota,
        value: f64,
        mute: &crate::context::Mute,
    ) -> std::time::Duration {
        let now = std::time::Instant::now();
        let ms = now.duration_since(self.born).as_millis() as u64;
        let throttle = self.quotas.borrow_mut().record(&quota.1, quota.0, value, ms);
        if !throttle.is_zero() {
            mute.until(now + throttle);
            self.metrics.throttled(throttle);
        }
        throttle
    }

    /// How long the client under `quota` is over it already; if it is,
    /// the connection of `context` is muted that long.
    pub fn over_quota(
        &self,
        quota: &crate::quotas::Quota,
        mute: &crate::context::Mute,
    ) -> std::time::Duration {
        let now = std::time::Instant::now();
        let ms = now.duration_since(self.born).as_millis() as u64;
        let over = self.quotas.borrow().over(&quota.1, quota.0, ms);
        if !over.is_zero() {
            mute.until(now + over);
            self.metrics.throttled(over);
        }
        over
    }

    /// Whether the shard is stopping: it takes no new requests.
    pub fn stopping(&self) -> bool {
        self.stopping.get()
    }

    /// Completes once the shard starts stopping (at once if it has).
    pub async fn stopped(&self) {
        let stop = self.stop.notified();
        if !self.stopping.get() {
            stop.await;
        }
    }

    /// Installs a new image: logs of topics whose configs changed take the
    /// new ones; partitions of deleted topics (or of a topic replaced by
    /// another of its name) leave the shard and their data is removed;
    /// partitions this shard now holds open and are served; each takes its
    /// role (leader or follower), and the coordinator follows the
    /// leaderships of `__consumer_offsets`.
    pub async fn apply_image(&self, image: Arc<MetadataImage>, controller: Option<NodeId>) {
        self.metadata.set_controller(controller);
        if self.stopping.get() {
            self.metadata.set_image(image);
            return;
        }
        self.partitions.reconfigure(&self.metadata.image(), &image);
        // Out of the manager first (new requests get
        // UNKNOWN_TOPIC_OR_PARTITION), then closed (in-flight appends
        // finish) and their data removed, before a topic of the same name
        // opens its partitions in the same directories.
        let gone = self.partitions.detach_deleted(&image);
        self.metrics.retain_topics(|t| image.topics.contains_key(t));
        self.partitions.delete(gone).await;
        for opened in self.partitions.open_replicas(&image, self.broker()).await {
            self.partitions.serve(opened);
        }
        self.replicas.apply(&image, &self.partitions);
        // The groups of `__consumer_offsets` partitions this shard now
        // leads are loaded from its replica (they answer
        // COORDINATOR_LOAD_IN_PROGRESS until then); those it no longer
        // leads are forgotten.
        for p in 0..OFFSETS_TOPIC_PARTITIONS {
            let leads = image.leader(OFFSETS_TOPIC, p) == Some(self.broker());
            match (leads, self.groups.is_loaded(p), self.partitions.log(OFFSETS_TOPIC, p)) {
                (true, false, Some(log)) => {
                    if let Err(e) = self.groups.load(p, &log).await {
                        warn!("shard {}: cannot load {OFFSETS_TOPIC}-{p}: {e}", self.id);
                    }
                }
                (false, true, _) => self.groups.unload(p),
                _ => {}
            }
        }
        // Likewise the transactional ids of `__transaction_state`, loaded
        // again when the partition's leader epoch (the coordinator epoch)
        // moved.
        for p in 0..TRANSACTION_TOPIC_PARTITIONS {
            let meta = image.partition(TRANSACTION_TOPIC, p);
            let epoch = meta.filter(|m| m.leader == Some(self.broker())).map(|m| m.leader_epoch.0);
            let loaded = self.txns.coordinator_epoch(p);
            if epoch == loaded {
                continue;
            }
            if loaded.is_some() {
                self.txns.unload(p);
            }
            if let (Some(epoch), Some(log)) = (epoch, self.partitions.log(TRANSACTION_TOPIC, p)) {
                if let Err(e) = self.txns.load(p, epoch, &log).await {
                    warn!("shard {}: cannot load {TRANSACTION_TOPIC}-{p}: {e}", self.id);
                }
            }
        }
        self.metadata.set_image(image);
    }

    /// Waits for in-flight requests, then closes every log cleanly.
    pub async fn shutdown(&self) {
        self.stopping.set(true);
        self.stop.notify();
        self.replicas.stop();
        self.groups.stop();
        self.txns.stop();
        self.groups.persist(&self.partitions, &self.metadata.image()).await;
        loop {
            let done = self.request_done.notified();
            if self.in_flight.get() == 0 {
                break;
            }
            done.await;
        }
        self.partitions.close_all().await;
    }

    /// This shard's metrics snapshot (for the node's `/metrics`).
    pub fn metrics_snapshot(&self) -> crate::metrics::Snapshot {
        let sources = crate::metrics::Sources {
            shard: self.id,
            broker: self.broker(),
            partitions: &self.partitions,
            request_bytes_queued: self.request_bytes.used(),
            groups: self.groups.metrics_view(),
            splice: self.splicer.as_ref().map(|s| s.stats()).unwrap_or_default(),
        };
        crate::metrics::snapshot(&self.metrics, sources)
    }

    /// Marks a request as started; the guard marks it done.
    pub fn start_request(self: &Rc<Self>) -> RequestGuard {
        self.in_flight.set(self.in_flight.get() + 1);
        RequestGuard { shard: self.clone() }
    }
}

/// Counts a request in flight while alive.
pub struct RequestGuard {
    shard: Rc<Shard>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.shard.in_flight.set(self.shard.in_flight.get() - 1);
        self.shard.request_done.notify();
    }
}
