//! The replica manager of one shard: for each partition it holds a copy
//! of, whether it leads or follows, and what that takes. As leader it
//! keeps each follower's progress, the high watermark and the ISR
//! ([`leader`]); as follower it hands the partition to the fetcher of its
//! leader ([`fetcher`]), one per leader broker.
//!
//! One per shard, on that shard's core. It changes roles only when the
//! metadata image says so ([`Replicas::apply`]); ISR changes go to the
//! controller as AlterPartitions commands from [`run_isr`], never straight
//! into the image. It opens no logs (the partition manager does).

pub mod fetcher;
pub mod leader;
pub mod wire;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use engine::sync::Notify;
use engine::Writer;
use log::{info, warn};
use net::kafka_protocol::error::ResponseError;

use self::fetcher::{Fetcher, Followed};
use self::leader::Led;
use crate::controller::client::ControllerClient;
use crate::controller::machine::isr::IsrChange;
use crate::controller::{Answer, Command};
use crate::ids::{BrokerId, PartitionId};
use crate::metadata::MetadataImage;
use crate::partitions::Partitions;

/// How often the leader looks for followers that fell behind. A follower
/// leaves the ISR between `replica.lag.time.max.ms` and this much later.
pub const ISR_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Leaderships taken in one image that its log line names; the rest are
/// counted.
const LEADERSHIPS_LOGGED: usize = 8;

pub struct Replicas {
    me: BrokerId,
    /// `replica.lag.time.max.ms`: a follower not caught up for this long
    /// leaves the ISR.
    lag: Duration,
    led: RefCell<HashMap<PartitionId, Led>>,
    fetchers: RefCell<HashMap<BrokerId, Rc<Fetcher>>>,
    /// Every shard of this node's inbox of local calls, by shard id.
    local: Vec<flume::Sender<crate::local::LocalCall>>,
    /// Some led partition wants an ISR change.
    isr_wanted: Notify,
    /// Roles changed (a new image): waiters re-check their leadership.
    roles: Notify,
    /// Notified when a follower reports another log start.
    log_starts: Notify,
    /// How fetchers log in to leaders on other nodes.
    peers: Rc<crate::peer_auth::Peers>,
}

impl Replicas {
    pub fn new(
        me: BrokerId,
        lag: Duration,
        local: Vec<flume::Sender<crate::local::LocalCall>>,
        peers: Rc<crate::peer_auth::Peers>,
    ) -> Replicas {
        Replicas {
            me,
            peers,
            lag,
            led: RefCell::default(),
            fetchers: RefCell::default(),
            local,
            isr_wanted: Notify::default(),
            roles: Notify::default(),
            log_starts: Notify::default(),
        }
    }

    /// Takes the roles `image` gives this shard for every open partition:
    /// leaders keep their followers' progress while the leader epoch
    /// stays; followers fetch from their leader at its epoch.
    pub fn apply(&self, image: &MetadataImage, partitions: &Partitions) {
        let now = Instant::now();
        let open = partitions.all();
        let mut led = self.led.borrow_mut();
        led.retain(|id, _| open.iter().any(|p| p.id == *id));
        let mut followed: HashMap<BrokerId, Vec<(PartitionId, Followed)>> = HashMap::new();
        let mut leading = Vec::new();
        for p in &open {
            let Some(meta) = image.partition(&p.topic, p.index) else { continue };
            p.log.set_replicated(meta.replicas.len() > 1);
            if meta.leader == Some(self.me) {
                p.log.set_writer(Writer::Leader(meta.leader_epoch.0));
                match led.get_mut(&p.id) {
                    Some(l) if l.leader_epoch == meta.leader_epoch => l.update(meta),
                    _ => {
                        leading.push(format!("{}-{}@{}", p.topic, p.index, meta.leader_epoch.0));
                        let l = Led::new(p.log.clone(), p.topic.clone(), p.index, meta, now);
                        led.insert(p.id, l);
                    }
                }
                led[&p.id].advance_high_watermark(self.me);
                continue;
            }
            led.remove(&p.id);
            // Led elsewhere or by nobody: only the leader's batches.
            p.log.set_writer(Writer::Follower(meta.leader_epoch.0));
            if let Some(leader) = meta.leader.filter(|_| meta.replicas.contains(&self.me)) {
                let f = Followed::new(
                    p.topic.clone(),
                    p.topic_id,
                    p.index,
                    p.log.clone(),
                    meta.leader_epoch,
                );
                followed.entry(leader).or_default().push((p.id, f));
            }
        }
        drop(led);
        if !leading.is_empty() {
            leading.sort();
            let shown = leading.len().min(LEADERSHIPS_LOGGED);
            let more = leading.len() - shown;
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            info!("replica {}: now leading {}{more}", self.me, leading[..shown].join(", "));
        }
        let mut fetchers = self.fetchers.borrow_mut();
        // Partitions that left the shard or follow another leader now.
        for (leader, fetcher) in fetchers.iter() {
            let keep = followed.get(leader);
            for id in fetcher.followed_ids() {
                if keep.is_none_or(|k| !k.iter().any(|(i, _)| *i == id)) {
                    fetcher.unfollow(id);
                }
            }
        }
        for (leader, partitions) in followed {
            let Some(addr) = address(image, leader) else { continue };
            let fetcher = fetchers.entry(leader).or_insert_with(|| {
                // A leader on this node is fetched from over its channel.
                let local = (leader.node() == self.me.node())
                    .then(|| self.local.get(leader.shard().0 as usize).cloned())
                    .flatten();
                let f = Fetcher::new(self.me, leader, addr.clone(), local, self.peers.clone());
                glommio::spawn_local(f.clone().run()).detach();
                f
            });
            fetcher.set_addr(addr);
            for (id, f) in partitions {
                fetcher.follow(id, f);
            }
        }
        fetchers.retain(|_, f| {
            if f.is_idle() {
                f.stop();
            }
            !f.is_idle()
        });
        self.roles.notify();
    }

    /// How far `follower` holds partition `id` durably, as its last fetch
    /// said, if this shard leads it and has heard from that follower.
    pub fn follower_end(&self, id: PartitionId, follower: BrokerId) -> Option<i64> {
        self.led.borrow().get(&id)?.durable_end_of(follower)
    }

    /// A follower's fetch of a partition this shard leads, at `offset`
    /// (its durable end): recorded, and the high watermark moves. Refused
    /// if this shard does not lead it or `follower` holds no replica.
    pub fn follower_fetched(
        &self,
        id: PartitionId,
        follower: BrokerId,
        offset: i64,
        log_start: i64,
        image: &MetadataImage,
    ) -> Result<(), ResponseError> {
        let mut led = self.led.borrow_mut();
        let l = led.get_mut(&id).ok_or(ResponseError::NotLeaderOrFollower)?;
        if follower == self.me || !l.replicas.contains(&follower) {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        if offset > l.log.log_end_offset() || offset < 0 {
            return Err(ResponseError::OffsetOutOfRange);
        }
        let before = l.low_watermark(self.me, image);
        if l.follower_fetched(follower, offset, log_start, Instant::now(), image) {
            self.isr_wanted.notify();
        }
        if l.low_watermark(self.me, image) != before {
            self.log_starts.notify();
        }
        l.advance_high_watermark(self.me);
        Ok(())
    }

    /// The low watermark of partition `id` if this shard leads it
    /// ([`leader::Led::low_watermark`]).
    pub fn low_watermark(&self, id: PartitionId, image: &MetadataImage) -> Option<i64> {
        Some(self.led.borrow().get(&id)?.low_watermark(self.me, image))
    }

    /// Completes when a low watermark may have moved after this call.
    pub fn log_starts_changed(&self) -> engine::sync::Notified<'_> {
        self.log_starts.notified()
    }

    /// Completes when roles may have changed (a new image was applied)
    /// after this call.
    pub fn roles_changed(&self) -> engine::sync::Notified<'_> {
        self.roles.notified()
    }

    /// Stops every fetcher (the shard is stopping).
    pub fn stop(&self) {
        for (_, f) in self.fetchers.borrow_mut().drain() {
            f.stop();
        }
    }

    /// The ISR changes led partitions want now: followers that fell behind
    /// leave, caught-up ones join.
    fn wanted_changes(&self) -> Vec<IsrChange> {
        let now = Instant::now();
        let mut changes = Vec::new();
        for l in self.led.borrow_mut().values_mut() {
            let isr = match l.shrink(self.me, self.lag, now) {
                Some(isr) => Some(isr),
                // A join is made pending by the fetch that caught up.
                None => l.pending.clone().filter(|p| !sent(p, &l.isr)),
            };
            if let Some(isr) = isr {
                changes.push(IsrChange {
                    topic: l.topic.to_string(),
                    partition: l.index,
                    leader: self.me,
                    leader_epoch: l.leader_epoch,
                    partition_epoch: l.partition_epoch,
                    isr,
                });
            }
        }
        changes
    }

    /// The controller answered `changes`: they are no longer pending; the
    /// image already holds the accepted ones.
    fn settled(&self, changes: &[IsrChange]) {
        let mut led = self.led.borrow_mut();
        for l in led.values_mut() {
            if changes.iter().any(|c| *c.topic == *l.topic && c.partition == l.index) {
                l.pending = None;
                l.advance_high_watermark(self.me);
            }
        }
    }
}

/// Whether `pending` is already the committed ISR.
fn sent(pending: &[BrokerId], isr: &[BrokerId]) -> bool {
    leader::same_members(pending, isr)
}

/// Where `broker` serves, if its node is registered.
fn address(image: &MetadataImage, broker: BrokerId) -> Option<(String, u16)> {
    image.endpoint(broker).map(|(host, port)| (host.to_string(), port))
}

/// Sends the ISR changes `replicas`' led partitions want through
/// `controller`, as they come and every [`ISR_CHECK_INTERVAL`], until
/// `stopping`.
pub async fn run_isr(
    replicas: &Replicas,
    controller: &ControllerClient,
    stopping: impl Fn() -> bool,
) {
    let me = replicas.me;
    while !stopping() {
        let wanted = replicas.isr_wanted.notified();
        let changes = replicas.wanted_changes();
        if changes.is_empty() {
            crate::admission::within(ISR_CHECK_INTERVAL, wanted).await;
            continue;
        }
        for c in &changes {
            info!(
                "replica {me}: {}-{}: asking for ISR {:?} (partition epoch {})",
                c.topic,
                c.partition,
                c.isr.iter().map(|b| b.0).collect::<Vec<_>>(),
                c.partition_epoch.0
            );
        }
        match controller.ask(Command::AlterPartitions { changes: changes.clone() }).await {
            Ok(Answer::Partitions(outcomes)) => {
                for (c, o) in changes.iter().zip(outcomes) {
                    if let Err(refusal) = o {
                        warn!(
                            "replica {me}: {}-{}: ISR change refused: {refusal:?}",
                            c.topic, c.partition
                        );
                    }
                }
            }
            // The outcome is unknown (the change may be committed and not
            // yet seen here): the changes stay pending, so a joining member
            // still counts for the high watermark (Kafka keeps its pending
            // state until a definite answer too), and are asked again; the
            // image settles them once it holds them.
            Ok(other) => {
                warn!("replica {me}: AlterPartitions answered {other:?}; asking again");
                glommio::timer::sleep(ISR_CHECK_INTERVAL).await;
                continue;
            }
            Err(e) => {
                warn!("replica {me}: AlterPartitions failed: {e}; asking again");
                glommio::timer::sleep(ISR_CHECK_INTERVAL).await;
                continue;
            }
        }
        replicas.settled(&changes);
    }
}
