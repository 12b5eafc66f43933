//! Client quotas, Kafka's way: `producer_byte_rate`, `consumer_byte_rate`
//! and `request_percentage` per user, per client id, or per both, with
//! defaults, set through AlterClientQuotas into the metadata log (so every
//! node has them) and enforced by each shard on its own connections, as
//! each Kafka broker enforces them on its own: a client over its quota on
//! one shard is throttled there, with no traffic between cores.
//!
//! What a request used is recorded into a rate of 11 one-second samples
//! (Kafka's `quota.window.num` and `quota.window.size.seconds`); over the
//! quota, the client is told `throttle_time_ms`, the time that brings its
//! rate back to the quota, and its connection is muted that long
//! (KIP-219). Pure state of one shard (no I/O, no clock of its own: the
//! caller passes the time); [`crate::conn`] mutes, the Produce and Fetch
//! handlers record bytes.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The samples of a rate (Kafka's `quota.window.num`).
pub const QUOTA_SAMPLES: u64 = 11;

/// The span of one sample, in milliseconds (`quota.window.size.seconds`).
pub const QUOTA_WINDOW_MS: u64 = 1000;

/// Longest a request-percentage violation mutes a connection: one
/// window, as Kafka bounds it.
pub const REQUEST_THROTTLE_MAX: Duration = Duration::from_millis(QUOTA_WINDOW_MS);

/// Longest a connection is muted at once: a client's throttle time can
/// be hours (a 1 MB request under a quota of a few bytes a second), and a
/// muted connection holds its buffers; the client is still told the
/// whole throttle time, which KIP-219 clients wait out themselves.
pub const MUTE_MAX: Duration = Duration::from_secs(30);

/// Sensors a shard keeps before it forgets the idlest: each is a few
/// hundred bytes, and a client id is the client's to choose.
pub const SENSORS_MAX: usize = 10_000;

/// The quota types Kafka's clients are throttled by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaKind {
    /// `producer_byte_rate`: bytes of produce requests per second.
    Produce,
    /// `consumer_byte_rate`: bytes of fetch responses per second.
    Fetch,
    /// `request_percentage`: time on the shard's core, in percent of one
    /// core over the window (100 = a whole core).
    Request,
}

impl QuotaKind {
    pub const ALL: [QuotaKind; 3] = [QuotaKind::Produce, QuotaKind::Fetch, QuotaKind::Request];

    /// The quota's key in AlterClientQuotas and DescribeClientQuotas.
    pub fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => "producer_byte_rate",
            QuotaKind::Fetch => "consumer_byte_rate",
            QuotaKind::Request => "request_percentage",
        }
    }

    pub fn of_key(key: &str) -> Option<QuotaKind> {
        QuotaKind::ALL.into_iter().find(|k| k.key() == key)
    }

    /// Whether `value` is a valid setting (Kafka: the byte rates are
    /// whole numbers, all three positive).
    pub fn valid(self, value: f64) -> bool {
        value.is_finite()
            && value > 0.0
            && (self == QuotaKind::Request || value.fract() == 0.0 && value <= i64::MAX as f64)
    }
}

/// A user or client id named by a quota entity: one by name, or the
/// default of its type (Kafka's `<default>`, a null name on the wire).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityName {
    Named(String),
    Default,
}

impl EntityName {
    pub fn of(name: Option<&str>) -> EntityName {
        name.map_or(EntityName::Default, |n| EntityName::Named(n.to_string()))
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            EntityName::Named(n) => Some(n),
            EntityName::Default => None,
        }
    }
}

/// What a quota applies to: a user, a client id, or a user's client id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuotaEntity {
    pub user: Option<EntityName>,
    pub client_id: Option<EntityName>,
}

/// Entity types on the wire.
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";

impl QuotaEntity {
    /// `(type, name)` pairs as the protocol lists them.
    pub fn parts(&self) -> Vec<(&'static str, Option<&str>)> {
        let mut out = Vec::with_capacity(2);
        if let Some(u) = &self.user {
            out.push((USER, u.name()));
        }
        if let Some(c) = &self.client_id {
            out.push((CLIENT_ID, c.name()));
        }
        out
    }

    /// The entity of `(type, name)` pairs: each type at most once, user
    /// and client-id only (Kafka's `ip` entity limits connection rates,
    /// which Corelog bounds otherwise: [`crate::admission`]).
    pub fn from_parts<'a>(
        parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<QuotaEntity, String> {
        let mut entity = QuotaEntity { user: None, client_id: None };
        for (kind, name) in parts {
            let slot = match kind {
                USER => &mut entity.user,
                CLIENT_ID => &mut entity.client_id,
                other => return Err(format!("unsupported quota entity type {other:?}")),
            };
            if slot.is_some() {
                return Err(format!("the entity type {kind:?} is given twice"));
            }
            if name == Some("") {
                return Err(format!("an empty {kind} name"));
            }
            *slot = Some(EntityName::of(name));
        }
        if entity.user.is_none() && entity.client_id.is_none() {
            return Err("an entity names a user, a client id or both".into());
        }
        Ok(entity)
    }
}

/// A quota's value. Compared by its bits, so that images and records
/// holding quotas compare as equal values (`Eq`).
#[derive(Debug, Clone, Copy)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &QuotaValue) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

/// Every entity's quotas, by key: the metadata image's.
pub type QuotaConfigs = BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>;

/// The quota that applies to `user` (a principal's name, `ANONYMOUS`
/// without one) with `client_id`, for `kind`: its bound, and the sensor
/// it is counted in. Kafka's precedence: user and client id, user and the
/// default client, user, the default user and client id, both defaults,
/// the default user, client id, the default client id. A quota set for a
/// user is shared by all its client ids; one set by default is each
/// user's (or client's) own.
pub fn resolve(
    configs: &QuotaConfigs,
    kind: QuotaKind,
    user: &str,
    client_id: &str,
) -> Option<Quota> {
    if configs.is_empty() {
        return None;
    }
    let named = |n: &str| Some(EntityName::Named(n.to_string()));
    let default = || Some(EntityName::Default);
    // Which of the names the sensor keeps: both, the user's, the client's.
    let (both, user_only, client_only) = ((true, true), (true, false), (false, true));
    let levels = [
        (named(user), named(client_id), both),
        (named(user), default(), both),
        (named(user), None, user_only),
        (default(), named(client_id), both),
        (default(), default(), both),
        (default(), None, user_only),
        (None, named(client_id), client_only),
        (None, default(), client_only),
    ];
    let found = levels.into_iter().find_map(|(u, c, keeps)| {
        let quotas = configs.get(&QuotaEntity { user: u, client_id: c })?;
        Some((quotas.get(kind.key())?.0, keeps))
    });
    let (bound, (keep_user, keep_client)) = found?;
    let name = |keep: bool, n: &str| if keep { n.to_string() } else { String::new() };
    let key =
        SensorKey { kind, user: name(keep_user, user), client_id: name(keep_client, client_id) };
    Some((bound, key))
}

/// A quota's bound, and the sensor it is counted in.
pub type Quota = (f64, SensorKey);

/// Which rate a request is counted in (Kafka's quota metric tags).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SensorKey {
    pub kind: QuotaKind,
    pub user: String,
    pub client_id: String,
}

/// A rate over [`QUOTA_SAMPLES`] samples of [`QUOTA_WINDOW_MS`]: the sum
/// of the samples not older than the window over the time they span, at
/// least ten windows (so the first second of a client is not a rate of
/// its own: Kafka's `Rate`).
#[derive(Debug, Clone, Default)]
pub struct Rate {
    /// Per sample slot: the window index it holds, and its sum.
    samples: [(u64, f64); QUOTA_SAMPLES as usize],
    /// The window of the first value ever recorded.
    first: Option<u64>,
}

impl Rate {
    pub fn record(&mut self, value: f64, now_ms: u64) {
        let window = now_ms / QUOTA_WINDOW_MS;
        self.first.get_or_insert(window);
        let slot = &mut self.samples[(window % QUOTA_SAMPLES) as usize];
        if slot.0 != window {
            *slot = (window, 0.0);
        }
        slot.1 += value;
    }

    /// The rate per second at `now_ms`, and the span it is taken over (ms).
    pub fn measure(&self, now_ms: u64) -> (f64, u64) {
        let window = now_ms / QUOTA_WINDOW_MS;
        let live = |w: u64| w + QUOTA_SAMPLES > window && w <= window;
        let total: f64 = self.samples.iter().filter(|(w, _)| live(*w)).map(|(_, v)| v).sum();
        let oldest =
            self.first.map_or(window, |f| f.max(window + 1 - QUOTA_SAMPLES.min(window + 1)));
        let span = (now_ms - oldest * QUOTA_WINDOW_MS).max((QUOTA_SAMPLES - 1) * QUOTA_WINDOW_MS);
        (total * 1000.0 / span as f64, span)
    }

    /// Records `value` and answers how long the client must wait for its
    /// rate to come back to `bound` (zero within it).
    pub fn record_and_throttle(&mut self, value: f64, bound: f64, now_ms: u64) -> Duration {
        self.record(value, now_ms);
        self.throttle(bound, now_ms)
    }

    /// How long the client must wait for its rate to come back to `bound`
    /// (zero within it): Kafka's `(rate - bound) / bound * span`.
    pub fn throttle(&self, bound: f64, now_ms: u64) -> Duration {
        let (rate, span) = self.measure(now_ms);
        if rate <= bound {
            return Duration::ZERO;
        }
        Duration::from_millis(((rate - bound) / bound * span as f64).round() as u64)
    }
}

/// One shard's rates, by sensor, with when each was last used.
#[derive(Default)]
pub struct ShardQuotas {
    sensors: HashMap<SensorKey, (Rate, u64)>,
}

impl ShardQuotas {
    /// Records `value` against `key`'s rate and answers the throttle time
    /// (zero within `bound`). At [`SENSORS_MAX`] sensors the idlest tenth
    /// is forgotten at once, so a client inventing client ids costs a scan
    /// per thousand new ids, not per request.
    pub fn record(&mut self, key: &SensorKey, bound: f64, value: f64, now_ms: u64) -> Duration {
        if !self.sensors.contains_key(key) && self.sensors.len() >= SENSORS_MAX {
            let mut used: Vec<u64> = self.sensors.values().map(|(_, used)| *used).collect();
            let cut = used.len() / 10;
            let (_, &mut oldest_kept, _) = used.select_nth_unstable(cut);
            self.sensors.retain(|_, (_, used)| *used >= oldest_kept);
            // Ties at the cut could keep them all: then the cut goes too.
            if self.sensors.len() >= SENSORS_MAX {
                self.sensors.retain(|_, (_, used)| *used > oldest_kept);
            }
        }
        let (rate, used) = self.sensors.entry(key.clone()).or_default();
        *used = now_ms;
        let throttle = rate.record_and_throttle(value, bound, now_ms);
        if key.kind == QuotaKind::Request {
            throttle.min(REQUEST_THROTTLE_MAX)
        } else {
            throttle
        }
    }

    /// How long `key`'s client is over `bound` already, before anything
    /// more is recorded (zero within it, or for a client not seen).
    pub fn over(&self, key: &SensorKey, bound: f64, now_ms: u64) -> Duration {
        self.sensors.get(key).map_or(Duration::ZERO, |(rate, _)| rate.throttle(bound, now_ms))
    }

    /// The most a single fetch may return under `bound` without being
    /// throttled whatever came before (Kafka's
    /// `getMaxValueInQuotaWindow`): ten windows of the quota.
    pub fn fetch_bytes_max(bound: f64) -> i64 {
        let max = bound * ((QUOTA_SAMPLES - 1) * QUOTA_WINDOW_MS) as f64 / 1000.0;
        max.min(i32::MAX as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(user: Option<Option<&str>>, client: Option<Option<&str>>) -> QuotaEntity {
        QuotaEntity { user: user.map(EntityName::of), client_id: client.map(EntityName::of) }
    }

    #[test]
    fn the_most_specific_quota_applies_in_kafkas_order() {
        let mut configs = QuotaConfigs::new();
        let mut set = |e: QuotaEntity, v: f64| {
            configs.entry(e).or_default().insert("producer_byte_rate".to_string(), QuotaValue(v));
        };
        set(entity(None, Some(None)), 8.0);
        set(entity(None, Some(Some("app"))), 7.0);
        set(entity(Some(None), None), 6.0);
        set(entity(Some(None), Some(None)), 5.0);
        set(entity(Some(None), Some(Some("app"))), 4.0);
        set(entity(Some(Some("alice")), None), 3.0);
        set(entity(Some(Some("alice")), Some(None)), 2.0);
        set(entity(Some(Some("alice")), Some(Some("app"))), 1.0);
        let bound = |c: &QuotaConfigs, u, id| resolve(c, QuotaKind::Produce, u, id).map(|(b, _)| b);
        let mut expected = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let order = [
            entity(Some(Some("alice")), Some(Some("app"))),
            entity(Some(Some("alice")), Some(None)),
            entity(Some(Some("alice")), None),
            entity(Some(None), Some(Some("app"))),
            entity(Some(None), Some(None)),
            entity(Some(None), None),
            entity(None, Some(Some("app"))),
            entity(None, Some(None)),
        ];
        for e in order {
            assert_eq!(bound(&configs, "alice", "app"), Some(expected.remove(0)));
            configs.remove(&e);
        }
        assert_eq!(bound(&configs, "alice", "app"), None);
    }

    #[test]
    fn a_user_quota_is_shared_by_its_clients_and_a_default_is_each_ones_own() {
        let mut configs = QuotaConfigs::new();
        let rate = |v| [("consumer_byte_rate".to_string(), QuotaValue(v))].into();
        configs.insert(entity(Some(Some("alice")), None), rate(10.0));
        configs.insert(entity(None, Some(None)), rate(20.0));
        let key = |u, id| resolve(&configs, QuotaKind::Fetch, u, id).unwrap().1;
        assert_eq!(key("alice", "a"), key("alice", "b"));
        assert_eq!(key("alice", "a").client_id, "");
        assert_ne!(key("bob", "a"), key("bob", "b"));
        assert_eq!(key("bob", "a").user, "");
        assert!(resolve(&configs, QuotaKind::Produce, "alice", "a").is_none());
    }

    #[test]
    fn throttle_brings_the_rate_back_to_the_quota() {
        let mut rate = Rate::default();
        // 10,000 bytes in the first second under 1,000 B/s: within the
        // ten-window span, exactly at the quota.
        assert_eq!(rate.record_and_throttle(10_000.0, 1000.0, 500), Duration::ZERO);
        // 5,000 more: 15,000 over 10 s is 1,500 B/s; waiting 5 s brings it
        // to 15,000 over 15 s.
        assert_eq!(rate.record_and_throttle(5_000.0, 1000.0, 600), Duration::from_millis(5000));
        // Eleven windows later the samples have aged out.
        assert_eq!(rate.measure(12_000).0, 0.0);
        assert_eq!(rate.record_and_throttle(100.0, 1000.0, 12_000), Duration::ZERO);
    }

    #[test]
    fn a_steady_rate_measures_as_itself_over_the_span() {
        let mut rate = Rate::default();
        for ms in (0..30_000).step_by(100) {
            rate.record(100.0, ms);
        }
        let (r, span) = rate.measure(29_999);
        assert!((990.0..=1010.0).contains(&r), "{r} over {span}");
    }

    #[test]
    fn request_throttles_are_bounded_and_sensors_are_bounded() {
        let mut q = ShardQuotas::default();
        let key =
            SensorKey { kind: QuotaKind::Request, user: "u".into(), client_id: String::new() };
        assert_eq!(q.record(&key, 1.0, 1e6, 0), REQUEST_THROTTLE_MAX);
        let sensor =
            |kind, i: usize| SensorKey { kind, user: i.to_string(), client_id: String::new() };
        for i in 0..SENSORS_MAX + 5 {
            q.record(&sensor(QuotaKind::Produce, i), 1e9, 1.0, 1 + i as u64);
        }
        assert!(q.sensors.len() <= SENSORS_MAX && q.sensors.len() > SENSORS_MAX * 8 / 10);
        assert!(!q.sensors.contains_key(&key), "the idlest sensors go first");
        assert!(q.sensors.contains_key(&sensor(QuotaKind::Produce, SENSORS_MAX + 4)));
        // All used at the same time: still bounded.
        let mut same = ShardQuotas::default();
        for i in 0..SENSORS_MAX + 5 {
            same.record(&sensor(QuotaKind::Fetch, i), 1e9, 1.0, 7);
        }
        assert!(same.sensors.len() <= SENSORS_MAX);
    }

    #[test]
    fn entities_and_values_are_checked() {
        assert!(QuotaEntity::from_parts([("user", Some("a")), ("client-id", None)]).is_ok());
        assert!(QuotaEntity::from_parts([("user", Some("a")), ("user", Some("b"))]).is_err());
        assert!(QuotaEntity::from_parts([("ip", Some("1.2.3.4"))]).is_err());
        assert!(QuotaEntity::from_parts([]).is_err());
        assert!(QuotaEntity::from_parts([("user", Some(""))]).is_err());
        assert!(QuotaKind::Produce.valid(1024.0) && !QuotaKind::Produce.valid(1.5));
        assert!(QuotaKind::Request.valid(12.5) && !QuotaKind::Request.valid(0.0));
        assert!(!QuotaKind::Fetch.valid(f64::NAN) && !QuotaKind::Fetch.valid(-1.0));
    }
}
