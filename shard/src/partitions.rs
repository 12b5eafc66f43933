//! The partition manager: the logs of the partitions one shard holds a
//! replica of (leading or following), each interned as a [`PartitionId`],
//! and the node's own logs (the metadata log, a voter's Raft log) that no
//! image names.
//!
//! One per shard, on that shard's core. It opens, reconfigures, maintains,
//! deletes and closes logs; it does not decide which partitions the shard
//! holds (the metadata image does), which it leads (the replica manager,
//! [`crate::replica`]) nor serve requests (the handlers do).
//! A request names a partition by topic and index: [`Partitions::log`]
//! finds it without allocating.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use engine::disk::{Disk, DmaDisk};
use engine::{Flusher, LogConfig, LogError, PartitionLog, SystemClock};
use futures_util::StreamExt;
use log::{info, warn};

use crate::configs::log_config;
use crate::ids::{BrokerId, PartitionId, ShardId};
use crate::metadata::MetadataImage;

/// Logs closed concurrently at shutdown: enough to keep the disk busy
/// (each close truncates a segment and writes three small files), few
/// enough to bound the I/O in flight and the index buffers held at once.
pub const LOGS_CLOSED_AT_ONCE: usize = 64;

/// An open partition: its name and its log.
pub struct Partition<D: Disk = DmaDisk> {
    pub id: PartitionId,
    pub topic: Rc<str>,
    /// The topic's id: a topic deleted and created again under its name
    /// is another topic, whose partitions start empty.
    pub topic_id: [u8; 16],
    pub index: i32,
    pub log: PartitionLog<D>,
}

/// A log opened for a partition the shard now holds, not yet served:
/// [`Partitions::serve`] publishes it.
pub struct Opened<D: Disk = DmaDisk> {
    pub topic: String,
    pub topic_id: [u8; 16],
    pub index: i32,
    pub log: PartitionLog<D>,
}

impl<D: Disk> Clone for Partition<D> {
    fn clone(&self) -> Self {
        Partition {
            id: self.id,
            topic: self.topic.clone(),
            topic_id: self.topic_id,
            index: self.index,
            log: self.log.clone(),
        }
    }
}

/// The partition manager of one shard; `D` is `DmaDisk` but in tests.
pub struct Partitions<D: Disk = DmaDisk> {
    shard: ShardId,
    data_dir: PathBuf,
    disk: Rc<D>,
    flusher: Flusher<D>,
    /// Topic name to its partitions' ids, by partition index.
    by_name: RefCell<HashMap<Rc<str>, HashMap<i32, PartitionId>>>,
    open: RefCell<HashMap<PartitionId, Partition<D>>>,
    next_id: Cell<u32>,
    /// Logs of the node's own: closed with the others at shutdown, never
    /// deleted by an image.
    system: RefCell<Vec<PartitionLog<D>>>,
}

impl<D: Disk> Partitions<D> {
    pub fn new(shard: ShardId, data_dir: PathBuf, disk: Rc<D>, flusher: Flusher<D>) -> Self {
        Partitions {
            shard,
            data_dir,
            disk,
            flusher,
            by_name: RefCell::default(),
            open: RefCell::default(),
            next_id: Cell::new(0),
            system: RefCell::default(),
        }
    }

    /// The flusher of this shard's logs (its statistics are exported).
    pub fn flusher(&self) -> &Flusher<D> {
        &self.flusher
    }

    /// The id of `topic`-`index`, if this shard holds a replica of it.
    pub fn id(&self, topic: &str, index: i32) -> Option<PartitionId> {
        self.by_name.borrow().get(topic)?.get(&index).copied()
    }

    /// The log of `topic`-`index`, if this shard holds a replica of it
    /// (whether it leads it is the image's to say).
    pub fn log(&self, topic: &str, index: i32) -> Option<PartitionLog<D>> {
        let id = self.id(topic, index)?;
        self.open.borrow().get(&id).map(|p| p.log.clone())
    }

    /// The partition `id` names, while it is open.
    pub fn get(&self, id: PartitionId) -> Option<Partition<D>> {
        self.open.borrow().get(&id).cloned()
    }

    /// Every open partition (the node's own logs aside).
    pub fn all(&self) -> Vec<Partition<D>> {
        self.open.borrow().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.open.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Opens one of the node's own logs, `<data>/<name>`: closed with the
    /// others at shutdown, never deleted by an image.
    pub async fn open_system_log(
        &self,
        name: &str,
        config: LogConfig,
    ) -> Result<PartitionLog<D>, LogError> {
        let dir = self.data_dir.join(name);
        let log =
            PartitionLog::open(self.disk.clone(), &dir, config, &self.flusher, clock()).await?;
        self.system.borrow_mut().push(log.clone());
        Ok(log)
    }

    /// Open logs of topics whose configs changed from `before` to `image`
    /// take the new ones.
    pub fn reconfigure(&self, before: &MetadataImage, image: &MetadataImage) {
        for t in image.topics.values() {
            if before.topics.get(&t.name).is_none_or(|b| b.configs == t.configs) {
                continue;
            }
            let config = match log_config(&t.configs) {
                Ok(c) => c,
                Err(e) => {
                    warn!(
                        "shard {}: {} has invalid configs ({e}); keeping the old",
                        self.shard, t.name
                    );
                    continue;
                }
            };
            let mut applied = 0;
            for p in self.all().iter().filter(|p| *p.topic == *t.name) {
                match p.log.set_config(config.clone()) {
                    Ok(()) => applied += 1,
                    Err(e) => {
                        warn!("shard {}: {}-{}: configs refused: {e}", self.shard, t.name, p.index)
                    }
                }
            }
            if applied > 0 {
                info!(
                    "shard {}: {applied} partitions of {} now have configs {:?}",
                    self.shard, t.name, t.configs
                );
            }
        }
    }

    /// Opens the logs of the partitions `me` holds a replica of in `image`
    /// (or leads) that are not open yet, and returns them unserved (their state may need loading
    /// first; [`Self::serve`] publishes each). A log that cannot be opened
    /// is logged and left closed (its requests get `NOT_LEADER_OR_FOLLOWER`).
    pub async fn open_replicas(&self, image: &MetadataImage, me: BrokerId) -> Vec<Opened<D>> {
        let mut to_open = Vec::new();
        for t in image.topics.values() {
            for (p, partition) in t.partitions.iter().enumerate() {
                let held = partition.leader == Some(me) || partition.replicas.contains(&me);
                if held && self.id(&t.name, p as i32).is_none() {
                    let dir =
                        replica_dir(&self.data_dir, &t.name, p as i32, &partition.replicas, me);
                    to_open.push((t.name.as_str(), t.id, p as i32, &t.configs, dir));
                }
            }
        }
        let mut opened = Vec::new();
        for (topic, topic_id, index, configs, dir) in to_open {
            let config = log_config(configs).unwrap_or_else(|e| {
                warn!(
                    "shard {}: {topic}-{index} has invalid configs ({e}); using defaults",
                    self.shard
                );
                LogConfig::default()
            });
            match PartitionLog::open(self.disk.clone(), &dir, config, &self.flusher, clock()).await
            {
                Ok(log) => {
                    let report = log.recovery_report();
                    if !report.clean_shutdown && !report.notes.is_empty() {
                        info!(
                            "shard {}: recovered {topic}-{index}: {:?}",
                            self.shard, report.notes
                        );
                    }
                    opened.push(Opened { topic: topic.to_string(), topic_id, index, log });
                }
                Err(e) => warn!("shard {}: cannot open {topic}-{index}: {e}", self.shard),
            }
        }
        opened
    }

    /// Serves an opened partition: requests find it from now on.
    pub fn serve(&self, opened: Opened<D>) -> Partition<D> {
        let Opened { topic, topic_id, index, log } = opened;
        let topic = topic.as_str();
        let id = PartitionId(self.next_id.get());
        self.next_id.set(id.0 + 1);
        let mut by_name = self.by_name.borrow_mut();
        let topic: Rc<str> = match by_name.get_key_value(topic) {
            Some((name, _)) => name.clone(),
            None => Rc::from(topic),
        };
        by_name.entry(topic.clone()).or_default().insert(index, id);
        let partition = Partition { id, topic, topic_id, index, log };
        self.open.borrow_mut().insert(id, partition.clone());
        partition
    }

    /// Takes the partitions of topics `image` no longer has (or has under
    /// another id: deleted and created again) out of the manager: new
    /// requests for them get `UNKNOWN_TOPIC_OR_PARTITION`. [`Self::delete`]
    /// then removes their data.
    pub fn detach_deleted(&self, image: &MetadataImage) -> Vec<Partition<D>> {
        let gone: Vec<PartitionId> = self
            .open
            .borrow()
            .values()
            .filter(|p| image.topics.get(&*p.topic).is_none_or(|t| t.id != p.topic_id))
            .map(|p| p.id)
            .collect();
        let mut detached = Vec::new();
        for id in gone {
            let Some(p) = self.open.borrow_mut().remove(&id) else { continue };
            let mut by_name = self.by_name.borrow_mut();
            if let Some(ids) = by_name.get_mut(&p.topic) {
                ids.remove(&p.index);
                if ids.is_empty() {
                    by_name.remove(&p.topic);
                }
            }
            detached.push(p);
        }
        detached
    }

    /// Closes detached partitions (in-flight appends finish) and removes
    /// their data.
    pub async fn delete(&self, partitions: Vec<Partition<D>>) {
        for p in partitions {
            let (topic, index) = (&p.topic, p.index);
            // Its files are removed next: nothing to make durable.
            if let Err(e) = p.log.close_unsynced().await {
                warn!("shard {}: closing deleted {topic}-{index}: {e}", self.shard);
            }
            if let Err(e) = self.disk.remove_dir_all(p.log.dir()).await {
                warn!("shard {}: removing the data of deleted {topic}-{index}: {e}", self.shard);
            } else {
                info!("shard {}: deleted {topic}-{index}", self.shard);
            }
        }
    }

    /// The high watermark checkpoint, retention and compaction of every
    /// open log, one at a time (each
    /// yields to requests as it goes), compaction paced at
    /// `compaction_bytes_per_sec`, until `stopping` says so. Errors are
    /// logged; the log keeps serving.
    pub async fn maintain(&self, compaction_bytes_per_sec: u64, stopping: impl Fn() -> bool) {
        for p in self.all() {
            if stopping() {
                return;
            }
            let (topic, index, shard) = (&p.topic, p.index, self.shard);
            if let Err(e) = p.log.checkpoint_high_watermark().await {
                warn!("shard {shard}: checkpointing the high watermark of {topic}-{index}: {e}");
            }
            match p.log.apply_retention().await {
                Ok(0) => {}
                Ok(n) => info!("shard {shard}: retention removed {n} segments of {topic}-{index}"),
                Err(e) => warn!("shard {shard}: retention of {topic}-{index}: {e}"),
            }
            let mut pacer = engine::log::RatePacer::new(compaction_bytes_per_sec);
            match p.log.compact_paced(&mut pacer).await {
                Ok(r) if r.segments_rewritten > 0 => info!(
                    "shard {shard}: compacted {topic}-{index}: {} segments, {} records removed, {} -> {} bytes",
                    r.segments_rewritten, r.records_removed, r.bytes_before, r.bytes_after
                ),
                Ok(_) => {}
                Err(e) => warn!("shard {shard}: compaction of {topic}-{index}: {e}"),
            }
        }
    }

    /// Closes every log, the node's own too, and marks each clean.
    pub async fn close_all(&self) {
        let mut logs: Vec<_> = self.open.borrow_mut().drain().map(|(_, p)| p.log).collect();
        self.by_name.borrow_mut().clear();
        logs.extend(self.system.borrow_mut().drain(..));
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
                        warn!("shard {}: closing {}: {e}", self.shard, log.dir().display());
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
            let synced = self.disk.sync_filesystem(&self.data_dir).await;
            if let Err(e) = &synced {
                warn!(
                    "shard {}: syncing the file system: {e}; the next start scans every log",
                    self.shard
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
                    warn!("shard {}: {}: {e}", self.shard, log.dir().display());
                }
            })
            .buffer_unordered(LOGS_CLOSED_AT_ONCE)
            .for_each(|()| async {})
            .await;
        sync().await;
        info!(
            "shard {}: closed {count} logs in {:.1} s ({:.1} s closing them, the rest syncing)",
            self.shard,
            started.elapsed().as_secs_f64(),
            closed_in.as_secs_f64()
        );
    }
}

/// The directory of `me`'s replica of `topic`-`index`: `<topic>-<index>`,
/// but for a second (third...) replica on the same node, placed by hand on
/// another of its shards, `<topic>-<index>@<shard>`. No topic's directory
/// can take that name: `@` is not a topic name character.
fn replica_dir(
    data_dir: &Path,
    topic: &str,
    index: i32,
    replicas: &[BrokerId],
    me: BrokerId,
) -> PathBuf {
    let first_here = replicas.iter().find(|b| b.node() == me.node());
    match first_here {
        Some(&first) if first != me => data_dir.join(format!("{topic}-{index}@{}", me.shard().0)),
        _ => data_dir.join(format!("{topic}-{index}")),
    }
}

fn clock() -> Rc<SystemClock> {
    Rc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use engine::disk::MemDisk;
    use engine::testkit::run_with_flusher;
    use engine::Flush;

    use super::*;
    use crate::ids::NodeId;
    use crate::metadata::{MetadataRecord, PartitionMeta, TopicMeta};

    fn topic(name: &str, id: u8, leaders: &[BrokerId]) -> MetadataRecord {
        MetadataRecord::Topic(TopicMeta {
            name: name.into(),
            id: [id; 16],
            partitions: leaders.iter().map(|&b| PartitionMeta::single(b)).collect(),
            configs: BTreeMap::new(),
        })
    }

    /// The partitions a shard leads open under interned ids, are served
    /// once published, are found by name without allocating, and leave (ids
    /// never reused) when their topic is deleted, also when a topic of the
    /// same name replaces it in one image; the node's own logs are closed
    /// with the rest.
    #[test]
    fn led_partitions_open_interned_and_go_with_their_topic() {
        let disk = Rc::new(MemDisk::new());
        let flusher = Flusher::new(Flush::Fsync);
        let me = BrokerId::of(NodeId(1), ShardId(0));
        let other = BrokerId::of(NodeId(1), ShardId(1));
        let partitions = Partitions::new(ShardId(0), "/data".into(), disk.clone(), flusher.clone());
        run_with_flusher(&flusher, async {
            let image = MetadataImage::default()
                .applied(&[topic("a", 1, &[me, other, me]), topic("b", 2, &[other])]);
            let opened = partitions.open_replicas(&image, me).await;
            let mut names: Vec<_> = opened.iter().map(|p| (p.topic.clone(), p.index)).collect();
            names.sort();
            assert_eq!(names, [("a".to_string(), 0), ("a".to_string(), 2)]);
            assert!(partitions.is_empty(), "not served before it is published");
            for o in opened {
                partitions.serve(o);
            }
            assert_eq!(partitions.len(), 2);
            assert!(partitions.log("a", 1).is_none(), "led by another shard");
            assert!(partitions.log("b", 0).is_none());
            let a0 = partitions.id("a", 0).unwrap();
            assert_eq!(partitions.get(a0).unwrap().index, 0);
            assert!(partitions.open_replicas(&image, me).await.is_empty(), "already open");
            let log = partitions.log("a", 0).unwrap();
            let batch = engine::testkit::make_batch(1, 3, 10, 0);
            let info = log.append(bytes::BytesMut::from(&batch[..]), 0).await.unwrap();
            log.wait_acked(info.end_offset).await.unwrap();

            let system = partitions.open_system_log("own-0", LogConfig::default()).await.unwrap();
            let image = image
                .applied(&[MetadataRecord::DeleteTopic { name: "a".into() }, topic("a", 3, &[me])]);
            let gone = partitions.detach_deleted(&image);
            assert_eq!(gone.len(), 2, "a topic of the same name is another topic");
            assert!(partitions.is_empty() && partitions.id("a", 0).is_none());
            partitions.delete(gone).await;
            assert!(!disk.exists(Path::new("/data/a-2")).await.unwrap());

            let again = partitions.open_replicas(&image, me).await;
            assert_eq!(again.len(), 1);
            let again = partitions.serve(again.into_iter().next().unwrap());
            assert!(again.id > a0, "ids are not reused");
            assert_eq!(again.log.log_end_offset(), 0, "the new topic starts empty");
            partitions.close_all().await;
            assert!(partitions.is_empty());
            assert!(system.append(bytes::BytesMut::new(), 0).await.is_err(), "closed");
        });
    }

    /// A node's first replica of a partition has the usual directory; a
    /// second one, on another of its shards, a directory of its own.
    #[test]
    fn replicas_of_one_node_have_directories_of_their_own() {
        let b = |node, shard| BrokerId::of(NodeId(node), ShardId(shard));
        let dir = |replicas: &[BrokerId], me| replica_dir(Path::new("/d"), "t-1", 3, replicas, me);
        assert_eq!(dir(&[b(1, 0), b(2, 0)], b(2, 0)), Path::new("/d/t-1-3"));
        assert_eq!(dir(&[b(1, 1), b(1, 0)], b(1, 1)), Path::new("/d/t-1-3"));
        assert_eq!(dir(&[b(1, 1), b(1, 0)], b(1, 0)), Path::new("/d/t-1-3@0"));
        assert_eq!(dir(&[b(2, 0)], b(1, 0)), Path::new("/d/t-1-3"), "a leader not listed");
    }
}
