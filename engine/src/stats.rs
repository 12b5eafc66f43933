//! Counters the engine keeps for metrics: a fixed-bucket latency histogram
//! ([`Histogram`]) and a log's read counters ([`ReadStats`]).
//!
//! Plain values, updated on the shard that owns them and copied out when
//! asked (no atomics, no locks). The histogram's buckets are the ones
//! exported (Prometheus `le` bounds), so counting into them directly is
//! exact for what is exported and costs one comparison loop per record.

/// Upper bounds of the latency buckets, in microseconds: 50 µs to 10 s,
/// 1-2.5-5 steps, plus the implicit `+Inf`.
pub const LATENCY_BUCKETS_US: [u64; 18] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// A latency histogram over [`LATENCY_BUCKETS_US`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last is above every bound.
    counts: [u64; LATENCY_BUCKETS_US.len() + 1],
    sum_us: u64,
}

impl Histogram {
    pub fn record_us(&mut self, us: u64) {
        let i =
            LATENCY_BUCKETS_US.iter().position(|&b| us <= b).unwrap_or(LATENCY_BUCKETS_US.len());
        self.counts[i] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    pub fn record(&mut self, d: std::time::Duration) {
        self.record_us(d.as_micros().min(u64::MAX as u128) as u64);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn sum_us(&self) -> u64 {
        self.sum_us
    }

    /// (upper bound in µs, `None` for `+Inf`; observations at or below it),
    /// as Prometheus `_bucket` lines want them.
    pub fn cumulative(&self) -> Vec<(Option<u64>, u64)> {
        let mut total = 0;
        let mut out = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            total += c;
            out.push((LATENCY_BUCKETS_US.get(i).copied(), total));
        }
        out
    }

    /// Adds another histogram's observations.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }
}

/// How a log's reads were served.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadStats {
    /// Reads (pieces of a fetch) served from the cache of recent batches.
    pub cache_reads: u64,
    /// Reads served from a segment file (cold data).
    pub file_reads: u64,
    /// Bytes held by the cache now.
    pub cache_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_bounded() {
        let mut h = Histogram::default();
        for us in [0, 50, 51, 999, 1_000, 40_000_000] {
            h.record_us(us);
        }
        let c = h.cumulative();
        assert_eq!(c[0], (Some(50), 2));
        assert_eq!(c[1], (Some(100), 3));
        assert_eq!(c[4], (Some(1_000), 5));
        assert_eq!(c[c.len() - 2], (Some(30_000_000), 5));
        assert_eq!(*c.last().unwrap(), (None, 6));
        assert_eq!(h.count(), 6);
        assert_eq!(h.sum_us(), 50 + 51 + 999 + 1_000 + 40_000_000);
        let mut m = h;
        m.merge(&h);
        assert_eq!(m.count(), 12);
    }
}
