//! A warning that others can cause as often as they like (failed logins,
//! failed calls to peers), logged at most once per interval with the
//! count of those left out. Per owner, on the owner's core.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// The interval unless told otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

pub struct LogLimit {
    interval: Duration,
    last: Cell<Option<Instant>>,
    skipped: Cell<u64>,
}

impl Default for LogLimit {
    fn default() -> Self {
        LogLimit { interval: DEFAULT_INTERVAL, last: Cell::new(None), skipped: Cell::new(0) }
    }
}

impl LogLimit {
    /// `Some(left out since the last one logged)` when this occurrence
    /// is to be logged now; `None` (and counted) otherwise.
    pub fn admit(&self, now: Instant) -> Option<u64> {
        if self.last.get().is_some_and(|at| now.duration_since(at) < self.interval) {
            self.skipped.set(self.skipped.get() + 1);
            return None;
        }
        self.last.set(Some(now));
        Some(self.skipped.replace(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_interval_with_the_count_left_out() {
        let limit = LogLimit::default();
        let t = Instant::now();
        assert_eq!(limit.admit(t), Some(0));
        assert_eq!(limit.admit(t + Duration::from_secs(1)), None);
        assert_eq!(limit.admit(t + Duration::from_secs(9)), None);
        assert_eq!(limit.admit(t + DEFAULT_INTERVAL), Some(2));
        assert_eq!(limit.admit(t + DEFAULT_INTERVAL * 2), Some(0));
    }
}
