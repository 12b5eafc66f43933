//! The leader's side of one replicated partition: how far each follower
//! has durably got, when it was last caught up, the high watermark that
//! follows from the ISR, and the ISR changes the leader wants (Kafka's
//! `Partition` and `Replica` state, KIP-497's AlterPartition).
//!
//! Plain state, owned by [`super::Replicas`] on the leader's shard; no I/O
//! and no awaits here. A follower's fetch offset is its durable end: a
//! fetcher sends its next fetch only once the batches of the previous one
//! are durable on its disk ([`super::fetcher`]), so the high watermark
//! this computes is what every ISR member holds durably.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use engine::disk::{Disk, DmaDisk};
use engine::PartitionLog;

use crate::ids::{BrokerId, LeaderEpoch, PartitionEpoch};
use crate::metadata::{MetadataImage, PartitionMeta};

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy)]
struct Progress {
    /// The follower's durable end: the offset of its last fetch.
    durable_end: i64,
    /// Last time its fetch offset reached the leader's end (Kafka's
    /// `lastCaughtUpTimeMs`).
    caught_up_at: Instant,
    last_fetch_at: Instant,
    /// The leader's end when that last fetch came.
    leader_end_at_last_fetch: i64,
    /// The follower's log start, as its last fetch said (DeleteRecords'
    /// low watermark waits for it).
    log_start: i64,
}

/// A partition this shard leads, at one leader epoch (`D` is `DmaDisk`
/// but in tests).
pub struct Led<D: Disk = DmaDisk> {
    pub log: PartitionLog<D>,
    pub topic: std::rc::Rc<str>,
    pub index: i32,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: PartitionEpoch,
    pub replicas: Vec<BrokerId>,
    /// The ISR as committed in the image.
    pub isr: Vec<BrokerId>,
    /// The ISR sent to the controller and not yet answered.
    pub pending: Option<Vec<BrokerId>>,
    /// When this shard became leader at this epoch: followers not heard
    /// from since count as caught up then.
    since: Instant,
    followers: HashMap<BrokerId, Progress>,
}

impl<D: Disk> Led<D> {
    pub fn new(
        log: PartitionLog<D>,
        topic: std::rc::Rc<str>,
        index: i32,
        meta: &PartitionMeta,
        now: Instant,
    ) -> Led<D> {
        Led {
            log,
            topic,
            index,
            leader_epoch: meta.leader_epoch,
            partition_epoch: meta.partition_epoch,
            replicas: meta.replicas.clone(),
            isr: meta.isr.clone(),
            pending: None,
            since: now,
            followers: HashMap::new(),
        }
    }

    /// The image's newer state of the partition, same leader epoch.
    pub fn update(&mut self, meta: &PartitionMeta) {
        self.partition_epoch = meta.partition_epoch;
        self.replicas = meta.replicas.clone();
        self.isr = meta.isr.clone();
        self.followers.retain(|b, _| meta.replicas.contains(b));
        // The image holds the pending change: its outcome is known. Any
        // other pending change stays until the controller answers it (its
        // outcome may be committed and not yet seen here).
        if self.pending.as_ref().is_some_and(|p| same_members(p, &meta.isr)) {
            self.pending = None;
        }
    }

    /// Where this leader's epoch starts in its log (its log end when it
    /// took the role, or where a truncation under way then ended): a
    /// follower joins the ISR only once it holds everything before it (it
    /// then holds every earlier epoch as this leader does).
    fn epoch_start(&self) -> i64 {
        self.log.epoch_start(self.leader_epoch.0).unwrap_or_else(|| self.log.log_end_offset())
    }

    /// The ISR the high watermark waits for: the committed one and any
    /// member being added (KIP-497's "maximal ISR": a replica joins before
    /// the controller has said so, never after the high watermark passed
    /// data it lacks).
    fn maximal_isr(&self) -> impl Iterator<Item = BrokerId> + '_ {
        let adding = self.pending.iter().flatten().filter(|b| !self.isr.contains(b));
        self.isr.iter().chain(adding).copied()
    }

    /// Sets the log's high watermark to what every other ISR member holds
    /// durably (a member not heard from at this epoch holds what the high
    /// watermark already covers). Returns it.
    pub fn advance_high_watermark(&self, me: BrokerId) -> i64 {
        let hw = self.log.high_watermark();
        let target = self
            .maximal_isr()
            .filter(|&b| b != me)
            .map(|b| self.followers.get(&b).map_or(hw, |p| p.durable_end))
            .min()
            .unwrap_or(i64::MAX);
        self.log.set_high_watermark(target)
    }

    /// The partition's low watermark (Kafka's `lowWatermarkIfLeader`): the
    /// lowest log start of this replica and every live follower, -1 for
    /// one not heard from at this epoch.
    pub fn low_watermark(&self, me: BrokerId, image: &MetadataImage) -> i64 {
        self.replicas
            .iter()
            .filter(|&&b| b != me && image.is_live(b))
            .map(|b| self.followers.get(b).map_or(-1, |p| p.log_start))
            .fold(self.log.log_start_offset(), i64::min)
    }

    /// `follower`'s durable end, if it fetched at this epoch.
    pub fn durable_end_of(&self, follower: BrokerId) -> Option<i64> {
        self.followers.get(&follower).map(|p| p.durable_end)
    }

    /// A follower fetched at `offset`: its durable end. Returns whether it
    /// should now join the ISR.
    pub fn follower_fetched(
        &mut self,
        follower: BrokerId,
        offset: i64,
        log_start: i64,
        now: Instant,
        image: &MetadataImage,
    ) -> bool {
        let leader_end = self.log.acked_end_offset();
        let since = self.since;
        let p = self.followers.entry(follower).or_insert(Progress {
            durable_end: offset,
            caught_up_at: since,
            last_fetch_at: since,
            leader_end_at_last_fetch: i64::MAX,
            log_start,
        });
        p.durable_end = offset;
        p.log_start = log_start;
        if offset >= leader_end {
            p.caught_up_at = now;
        } else if offset >= p.leader_end_at_last_fetch {
            p.caught_up_at = p.caught_up_at.max(p.last_fetch_at);
        }
        p.last_fetch_at = now;
        p.leader_end_at_last_fetch = leader_end;
        let joins = !self.isr.contains(&follower)
            && self.pending.is_none()
            && offset >= self.log.high_watermark().max(self.epoch_start())
            && image.is_live(follower);
        if joins {
            let mut isr = self.isr.clone();
            isr.push(follower);
            self.pending = Some(isr);
        }
        joins
    }

    /// The ISR without the followers that have not caught up within `lag`
    /// (`replica.lag.time.max.ms`), when some have fallen behind and no
    /// change is pending; the change is then pending.
    pub fn shrink(&mut self, me: BrokerId, lag: Duration, now: Instant) -> Option<Vec<BrokerId>> {
        if self.pending.is_some() {
            return None;
        }
        let caught_up_at =
            |b: &BrokerId| self.followers.get(b).map_or(self.since, |p| p.caught_up_at);
        let isr: Vec<BrokerId> = self
            .isr
            .iter()
            .copied()
            .filter(|b| *b == me || now.saturating_duration_since(caught_up_at(b)) <= lag)
            .collect();
        if isr.len() == self.isr.len() {
            return None;
        }
        self.pending = Some(isr.clone());
        Some(isr)
    }
}

/// Whether two ISRs hold the same brokers.
pub fn same_members(a: &[BrokerId], b: &[BrokerId]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use engine::disk::MemDisk;
    use engine::testkit::run_with_flusher;
    use engine::{Flush, Flusher, LogConfig, SystemClock};

    use super::*;
    use crate::ids::{NodeId, ShardId};
    use crate::metadata::{MetadataRecord, NodeMeta};

    fn b(node: i32) -> BrokerId {
        BrokerId::of(NodeId(node), ShardId(0))
    }

    fn image(live: &[i32]) -> MetadataImage {
        let nodes: Vec<MetadataRecord> = live
            .iter()
            .map(|&id| {
                MetadataRecord::Node(NodeMeta {
                    id: NodeId(id),
                    host: "h".into(),
                    port: 9092,
                    listeners: Vec::new(),
                    shards: 1,
                    rack: String::new(),
                    fenced: false,
                })
            })
            .collect();
        MetadataImage::default().applied(&nodes)
    }

    fn meta(isr: &[i32]) -> PartitionMeta {
        PartitionMeta {
            replicas: vec![b(1), b(2), b(3)],
            isr: isr.iter().map(|&n| b(n)).collect(),
            leader: Some(b(1)),
            leader_epoch: LeaderEpoch(1),
            partition_epoch: PartitionEpoch(4),
        }
    }

    /// Runs `test` with a replicated leader log holding offsets 0..10.
    fn with_log<F: std::future::Future<Output = ()>>(
        test: impl FnOnce(PartitionLog<MemDisk>) -> F,
    ) {
        let disk = Rc::new(MemDisk::new());
        let flusher = Flusher::new(Flush::Fsync);
        run_with_flusher(&flusher, async {
            let dir = std::path::Path::new("/p");
            let log =
                PartitionLog::open(disk, dir, LogConfig::default(), &flusher, Rc::new(SystemClock))
                    .await
                    .unwrap();
            let batch = engine::testkit::make_batch(1, 10, 10, 0);
            let info = log.append(bytes::BytesMut::from(&batch[..]), 1).await.unwrap();
            log.wait_acked(info.end_offset).await.unwrap();
            log.set_replicated(true);
            test(log).await;
        });
    }

    /// The high watermark is what every other ISR member holds, a member
    /// not heard from counting as holding what it already covers; a
    /// caught-up follower joins (and counts at once), and one that has not
    /// caught up for the lag leaves.
    #[test]
    fn the_high_watermark_follows_the_isr_and_the_isr_follows_the_followers() {
        with_log(|log| async move {
            let (me, live) = (b(1), image(&[1, 2, 3]));
            let t0 = Instant::now();
            let mut led = Led::new(log.clone(), "t".into(), 0, &meta(&[1, 2]), t0);
            assert_eq!(led.advance_high_watermark(me), 0, "follower 2 not heard from");
            assert!(!led.follower_fetched(b(2), 6, 0, t0, &live));
            assert_eq!(led.advance_high_watermark(me), 6);
            assert!(!led.follower_fetched(b(2), 4, 0, t0, &live), "a lower offset");
            assert_eq!(led.advance_high_watermark(me), 6, "never back");

            // Follower 3 fetches at 2, below the high watermark: not yet.
            assert!(!led.follower_fetched(b(3), 2, 0, t0, &live));
            assert_eq!(led.pending, None);
            // At 10 (the leader's end, past the epoch start): it joins and
            // counts for the high watermark before the controller answers.
            assert!(led.follower_fetched(b(3), 10, 0, t0, &live));
            assert_eq!(led.pending, Some(vec![b(1), b(2), b(3)]));
            let batch = engine::testkit::make_batch(2, 2, 10, 0);
            let info = log.append(bytes::BytesMut::from(&batch[..]), 1).await.unwrap();
            log.wait_acked(info.end_offset).await.unwrap();
            assert!(!led.follower_fetched(b(2), 12, 0, t0, &live), "already in the ISR");
            assert_eq!(led.advance_high_watermark(me), 10, "the joining follower holds 10");
            // An image without the answer (the controller's outcome unknown
            // here) keeps the join pending, and the high watermark waiting.
            led.update(&meta(&[1, 2]));
            assert_eq!(led.pending, Some(vec![b(1), b(2), b(3)]));
            assert_eq!(led.advance_high_watermark(me), 10, "still the maximal ISR");
            led.update(&meta(&[1, 2, 3]));
            assert_eq!(led.pending, None, "the image holds the join");

            // A fenced replica never joins.
            let mut fresh = Led::new(log.clone(), "t".into(), 0, &meta(&[1, 2]), t0);
            assert!(!fresh.follower_fetched(b(3), 10, 0, t0, &image(&[1, 2])));

            // Follower 2 stays caught up; follower 3 stops fetching.
            let lag = Duration::from_secs(30);
            let later = t0 + lag + Duration::from_millis(1);
            assert!(!led.follower_fetched(b(2), 12, 0, later, &live));
            assert_eq!(led.shrink(me, lag, t0 + lag), None, "within the lag");
            assert_eq!(led.shrink(me, lag, later), Some(vec![b(1), b(2)]));
            assert_eq!(led.shrink(me, lag, later), None, "already pending");
        });
    }

    /// A follower behind the leader's end is caught up as of its last
    /// fetch if it has reached what the leader had then (Kafka's
    /// lastCaughtUpTime), so a steady stream of appends does not push a
    /// fetching follower out.
    #[test]
    fn a_follower_fetching_behind_a_moving_end_stays_caught_up() {
        with_log(|log| async move {
            let (me, live) = (b(1), image(&[1, 2, 3]));
            let t0 = Instant::now();
            let mut led = Led::new(log.clone(), "t".into(), 0, &meta(&[1, 2, 3]), t0);
            let lag = Duration::from_secs(30);
            let step = Duration::from_secs(20);
            // Each fetch reaches what the leader had at the one before.
            led.follower_fetched(b(3), 10, 0, t0, &live);
            for k in 1..=4u32 {
                let batch = engine::testkit::make_batch(k as u64, 1, 10, 0);
                let info = log.append(bytes::BytesMut::from(&batch[..]), 1).await.unwrap();
                log.wait_acked(info.end_offset).await.unwrap();
                led.follower_fetched(b(2), 10 + k as i64 - 1, 0, t0 + step * k, &live);
                led.follower_fetched(b(3), 10 + k as i64, 0, t0 + step * k, &live);
            }
            assert_eq!(led.shrink(me, lag, t0 + step * 4), None, "both fetch steadily");
        });
    }

    /// DeleteRecords' low watermark: the lowest log start of the leader and
    /// every live follower; one not heard from holds it at -1.
    #[test]
    fn the_low_watermark_waits_for_every_live_follower() {
        with_log(|log| async move {
            let (me, live) = (b(1), image(&[1, 2, 3]));
            let t0 = Instant::now();
            let batch = engine::testkit::make_batch(1, 10, 10, 0);
            let info = log.append(bytes::BytesMut::from(&batch[..]), 1).await.unwrap();
            log.wait_acked(info.end_offset).await.unwrap();
            log.set_high_watermark(10);
            log.advance_log_start(4).await.unwrap();
            let mut led = Led::new(log.clone(), "t".into(), 0, &meta(&[1, 2, 3]), t0);
            assert_eq!(led.low_watermark(me, &live), -1, "followers not heard from");
            led.follower_fetched(b(2), 10, 5, t0, &live);
            assert_eq!(led.low_watermark(me, &live), -1, "follower 3 not heard from");
            led.follower_fetched(b(3), 10, 3, t0, &live);
            assert_eq!(led.low_watermark(me, &live), 3);
            assert_eq!(
                led.low_watermark(me, &image(&[1, 2])),
                4,
                "a fenced follower waits for nothing"
            );
        });
    }
}
