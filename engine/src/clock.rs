//! Wall-clock time for segment rolling and retention, behind a trait so tests
//! can move time by hand.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::types::Timestamp;

/// Source of "now" in milliseconds since the Unix epoch.
pub trait Clock {
    fn now_ms(&self) -> Timestamp;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Timestamp {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as Timestamp)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: Cell<Timestamp>,
}

impl ManualClock {
    pub fn new(now_ms: Timestamp) -> Self {
        ManualClock { now: Cell::new(now_ms) }
    }

    pub fn advance(&self, ms: i64) {
        self.now.set(self.now.get() + ms);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Timestamp {
        self.now.get()
    }
}
