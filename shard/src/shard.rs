//! One shard: the partitions it leads, its flusher, its copy of the
//! metadata image, and the loop that applies messages from other shards.
//!
//! Runs on its own executor (core). Everything here is shard-local (`Rc`,
//! `RefCell`); the only things that cross cores are the channel messages
//! [`ShardMsg`] and [`crate::controller::ControllerMsg`].

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use engine::disk::{Disk, DmaDisk};
use engine::sync::Notify;
use engine::{Flusher, PartitionLog, SystemClock};
use futures_util::StreamExt;
use log::{info, warn};

use crate::configs::log_config;
use crate::controller::ControllerMsg;
use crate::groups::{Coordinator, OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS};
use crate::ids::NodeId;
use crate::metadata::MetadataImage;
use crate::node::NodeConfig;

/// Index of a shard within its node (its core).
pub type ShardId = u16;

/// Messages a shard receives from other shards.
pub enum ShardMsg {
    /// A new metadata image: open the logs of partitions this shard now
    /// leads. `controller`: the node whose controller is active, if known.
    Image { image: Arc<MetadataImage>, controller: Option<NodeId>, done: flume::Sender<()> },
    /// Stop: finish in-flight requests, close every log cleanly.
    Shutdown { done: flume::Sender<()> },
}

/// A topic partition as a key.
pub type TopicPartition = (String, i32);

/// Logs closed concurrently at shutdown: enough to keep the disk busy
/// (each close truncates a segment and writes three small files), few
/// enough to bound the I/O in flight and the index buffers held at once.
pub const LOGS_CLOSED_AT_ONCE: usize = 64;

pub struct Shard {
    pub id: ShardId,
    pub config: Arc<NodeConfig>,
    pub image: RefCell<Arc<MetadataImage>>,
    /// The node whose controller is active, as last heard.
    pub controller_node: Cell<Option<NodeId>>,
    pub logs: RefCell<HashMap<TopicPartition, PartitionLog<DmaDisk>>>,
    /// Logs of the node's own (the metadata log, a voter's Raft log): no
    /// image names them; closed with the others at shutdown.
    pub system_logs: RefCell<Vec<PartitionLog<DmaDisk>>>,
    pub disk: Rc<DmaDisk>,
    pub flusher: Flusher<DmaDisk>,
    pub controller: flume::Sender<ControllerMsg>,
    /// The consumer groups this shard coordinates.
    pub groups: Coordinator,
    /// Producer ids this shard may hand out (a block from the controller).
    pub producer_ids: RefCell<std::ops::Range<i64>>,
    /// No new requests are taken once set.
    pub stopping: Cell<bool>,
    /// Notified when `stopping` is set: long polls answer at once.
    pub stop: Notify,
    /// Request bytes held by this shard's connections (`queued.max.request.bytes`).
    pub request_bytes: Rc<crate::admission::RequestBytes>,
    /// Connections open on this shard, against `CONNECTIONS_PER_SHARD_MAX`.
    pub connections: Cell<usize>,
    /// Connections open per client address, against `CONNECTIONS_PER_IP_MAX`.
    pub connections_by_ip: RefCell<HashMap<std::net::IpAddr, usize>>,
    /// Requests being handled; shutdown waits for zero.
    pub in_flight: Cell<usize>,
    pub request_done: Notify,
    /// Zero-copy sends of cold fetch data; `None` copies them instead
    /// (`--zero-copy-fetch false`, or no side ring could be set up).
    pub splicer: Option<Rc<crate::splice::Splicer>>,
    /// This shard's counters (exported by `crate::metrics`).
    pub metrics: crate::metrics::ShardMetrics,
}

impl Shard {
    /// The broker id clients know this shard by.
    pub fn broker_id(&self) -> i32 {
        self.config.broker_id(self.id)
    }

    /// The broker id clients know this shard by, typed.
    pub fn broker(&self) -> crate::ids::BrokerId {
        crate::ids::BrokerId(self.broker_id())
    }

    /// The broker id tools find the active controller by: shard 0 of its
    /// node (-1 while unknown).
    pub fn controller_broker(&self) -> i32 {
        self.controller_node.get().map_or(-1, |n| crate::ids::BrokerId::of(n, 0).0)
    }

    /// The log of a partition this shard leads.
    pub fn log(&self, topic: &str, partition: i32) -> Option<PartitionLog<DmaDisk>> {
        self.logs.borrow().get(&(topic.to_string(), partition)).cloned()
    }

    /// Installs a new image: opens the logs of the partitions this shard
    /// leads that are not open yet.
    pub async fn apply_image(&self, image: Arc<MetadataImage>) {
        if self.stopping.get() {
            *self.image.borrow_mut() = image;
            return;
        }
        // Open logs of topics whose configs changed take the new ones.
        let before = self.image.borrow().clone();
        for t in image.topics.values() {
            if before.topics.get(&t.name).is_none_or(|b| b.configs == t.configs) {
                continue;
            }
            let config = match log_config(&t.configs) {
                Ok(c) => c,
                Err(e) => {
                    warn!(
                        "shard {}: {} has invalid configs ({e}); keeping the old",
                        self.id, t.name
                    );
                    continue;
                }
            };
            let mut applied = 0;
            for (key, log) in self.logs.borrow().iter().filter(|(k, _)| k.0 == t.name) {
                match log.set_config(config.clone()) {
                    Ok(()) => applied += 1,
                    Err(e) => warn!("shard {}: {}-{}: configs refused: {e}", self.id, key.0, key.1),
                }
            }
            if applied > 0 {
                info!(
                    "shard {}: {} partitions of {} now have configs {:?}",
                    self.id, applied, t.name, t.configs
                );
            }
        }
        let mut to_open = Vec::new();
        let me = self.broker();
        for t in image.topics.values() {
            for (p, partition) in t.partitions.iter().enumerate() {
                let key = (t.name.clone(), p as i32);
                if partition.leader == Some(me) && !self.logs.borrow().contains_key(&key) {
                    to_open.push((key, t.configs.clone()));
                }
            }
        }
        for ((topic, p), configs) in to_open {
            let dir = self.config.data_dir.join(format!("{topic}-{p}"));
            let config = match log_config(&configs) {
                Ok(c) => c,
                Err(e) => {
                    warn!(
                        "shard {}: {topic}-{p} has invalid configs ({e}); using defaults",
                        self.id
                    );
                    engine::LogConfig::default()
                }
            };
            match PartitionLog::open(
                self.disk.clone(),
                &dir,
                config,
                &self.flusher,
                Rc::new(SystemClock),
            )
            .await
            {
                Ok(log) => {
                    let report = log.recovery_report();
                    if !report.clean_shutdown && !report.notes.is_empty() {
                        info!("shard {}: recovered {topic}-{p}: {:?}", self.id, report.notes);
                    }
                    // Groups are served only once their offsets are loaded
                    // (COORDINATOR_LOAD_IN_PROGRESS until then).
                    if topic == OFFSETS_TOPIC {
                        if let Err(e) = self.groups.load(p, &log).await {
                            warn!("shard {}: cannot load {topic}-{p}: {e}", self.id);
                        }
                    }
                    self.logs.borrow_mut().insert((topic, p), log);
                }
                Err(e) => warn!("shard {}: cannot open {topic}-{p}: {e}", self.id),
            }
        }
        // Partitions of deleted topics: out of the map first (new requests
        // get UNKNOWN_TOPIC_OR_PARTITION), then closed (in-flight appends
        // finish), then their data removed.
        let gone: Vec<TopicPartition> = self
            .logs
            .borrow()
            .keys()
            .filter(|(topic, _)| !image.topics.contains_key(topic))
            .cloned()
            .collect();
        self.metrics.retain_topics(|t| image.topics.contains_key(t));
        *self.image.borrow_mut() = image;
        for key in gone {
            let Some(log) = self.logs.borrow_mut().remove(&key) else { continue };
            let (topic, p) = key;
            // Its files are removed next: nothing to make durable.
            if let Err(e) = log.close_unsynced().await {
                warn!("shard {}: closing deleted {topic}-{p}: {e}", self.id);
            }
            if let Err(e) = std::fs::remove_dir_all(log.dir()) {
                warn!("shard {}: removing the data of deleted {topic}-{p}: {e}", self.id);
            } else {
                info!("shard {}: deleted {topic}-{p}", self.id);
            }
        }
    }

    /// Writes the metadata records of groups that became stable or empty
    /// (a group's generation and members survive a restart), and waits
    /// until they are durable. Errors are logged: members then rejoin
    /// after a restart, as after a coordinator move.
    pub async fn persist_groups(&self) {
        let dirty = self.groups.take_dirty();
        // Per partition: the (key, value) of each record.
        type Records = Vec<(Vec<u8>, Vec<u8>)>;
        let mut by_partition: BTreeMap<i32, Records> = BTreeMap::new();
        for (group, record) in dirty {
            let p = crate::groups::records::partition_for(&group, OFFSETS_TOPIC_PARTITIONS);
            by_partition.entry(p).or_default().push((
                crate::groups::records::group_key(&group),
                crate::groups::records::group_value(&record),
            ));
        }
        for (p, records) in by_partition {
            let Some(log) = self.log(OFFSETS_TOPIC, p) else { continue };
            let kv: Vec<_> = records.iter().map(|(k, v)| (Some(&k[..]), Some(&v[..]))).collect();
            let batch = engine::batch::build(&kv, engine::Clock::now_ms(&SystemClock));
            let outcome = match log.append(bytes::BytesMut::from(&batch[..]), 0).await {
                Ok(info) => log.wait_acked(info.end_offset).await,
                Err(e) => Err(e),
            };
            if let Err(e) = outcome {
                warn!("shard {}: writing group metadata to {OFFSETS_TOPIC}-{p}: {e}", self.id);
            }
        }
    }

    /// Retention and compaction of every log this shard leads, one at a
    /// time (each yields to requests as it goes). Errors are logged; the
    /// log keeps serving.
    pub async fn maintain_logs(&self) {
        let logs: Vec<(TopicPartition, PartitionLog<DmaDisk>)> =
            self.logs.borrow().iter().map(|(k, l)| (k.clone(), l.clone())).collect();
        for ((topic, p), log) in logs {
            if self.stopping.get() {
                return;
            }
            match log.apply_retention().await {
                Ok(0) => {}
                Ok(n) => info!("shard {}: retention removed {n} segments of {topic}-{p}", self.id),
                Err(e) => warn!("shard {}: retention of {topic}-{p}: {e}", self.id),
            }
            let limit = self.config.compaction_bytes_per_sec;
            match log.compact_paced(&mut engine::log::RatePacer::new(limit)).await {
                Ok(r) if r.segments_rewritten > 0 => info!(
                    "shard {}: compacted {topic}-{p}: {} segments, {} records removed, {} -> {} bytes",
                    self.id, r.segments_rewritten, r.records_removed, r.bytes_before, r.bytes_after
                ),
                Ok(_) => {}
                Err(e) => warn!("shard {}: compaction of {topic}-{p}: {e}", self.id),
            }
        }
    }

    /// Waits for in-flight requests, then closes every log cleanly.
    pub async fn shutdown(&self) {
        self.stopping.set(true);
        self.stop.notify();
        self.groups.stop();
        self.persist_groups().await;
        loop {
            let done = self.request_done.notified();
            if self.in_flight.get() == 0 {
                break;
            }
            done.await;
        }
        let mut logs: Vec<_> = self.logs.borrow_mut().drain().map(|(_, log)| log).collect();
        logs.extend(self.system_logs.borrow_mut().drain(..));
        let count = logs.len();
        let started = std::time::Instant::now();
        // Three steps, so that a stop costs two syncs of the file system
        // rather than nine fsyncs per partition (18,000 partitions took
        // 47 s one at a time, 28 to over 45 s 64 at a time): every log
        // closes unsynced, the file system is synced, every log gets its
        // clean shutdown marker, the file system is synced again.
        let closed: Vec<_> = futures_util::stream::iter(logs)
            .map(|log| async move {
                match log.close_unsynced().await {
                    Ok(()) => Some(log),
                    Err(e) => {
                        warn!("shard {}: closing {}: {e}", self.id, log.dir().display());
                        None
                    }
                }
            })
            .buffer_unordered(LOGS_CLOSED_AT_ONCE)
            .filter_map(|log| async move { log })
            .collect()
            .await;
        let closed_in = started.elapsed();
        let sync = || async {
            let synced = self.disk.sync_filesystem(&self.config.data_dir).await;
            if let Err(e) = &synced {
                warn!(
                    "shard {}: syncing the file system: {e}; the next start scans every log",
                    self.id
                );
            }
            synced.is_ok()
        };
        if !sync().await {
            return;
        }
        futures_util::stream::iter(&closed)
            .map(|log| async move {
                if let Err(e) = log.mark_clean().await {
                    warn!("shard {}: {}: {e}", self.id, log.dir().display());
                }
            })
            .buffer_unordered(LOGS_CLOSED_AT_ONCE)
            .for_each(|()| async {})
            .await;
        sync().await;
        info!(
            "shard {}: closed {count} logs in {:.1} s ({:.1} s closing them, the rest syncing)",
            self.id,
            started.elapsed().as_secs_f64(),
            closed_in.as_secs_f64()
        );
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
