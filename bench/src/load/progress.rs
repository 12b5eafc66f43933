//! The live progress line of a benchmark phase: a bar, records done of
//! the total, and the current rate, redrawn on standard error five times a
//! second while the phase runs. Printed only to a terminal, so logs (CI)
//! stay clean; workers only add to an atomic counter.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const REDRAW_EVERY: Duration = Duration::from_millis(200);
const BAR_WIDTH: usize = 30;

#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    label: String,
    done: AtomicU64,
    total: AtomicU64,
    stop: AtomicBool,
    ticker: Mutex<Option<JoinHandle<()>>>,
}

impl Progress {
    pub fn new(label: &str) -> Progress {
        Progress {
            inner: Arc::new(Inner {
                label: label.to_string(),
                done: AtomicU64::new(0),
                total: AtomicU64::new(0),
                stop: AtomicBool::new(false),
                ticker: Mutex::new(None),
            }),
        }
    }

    /// Starts a phase of `total` records.
    pub fn start(&self, total: u64) {
        let i = &self.inner;
        i.done.store(0, Ordering::Relaxed);
        i.total.store(total, Ordering::Relaxed);
        i.stop.store(false, Ordering::Relaxed);
        if !std::io::stderr().is_terminal() {
            return;
        }
        let inner = self.inner.clone();
        let handle = std::thread::spawn(move || {
            let start = Instant::now();
            while !inner.stop.load(Ordering::Relaxed) {
                std::thread::sleep(REDRAW_EVERY);
                inner.draw(start);
            }
            eprint!("\r\x1b[2K");
        });
        *i.ticker.lock().expect("progress lock") = Some(handle);
    }

    pub fn add(&self, records: u64) {
        self.inner.done.fetch_add(records, Ordering::Relaxed);
    }

    /// Ends the phase and clears the line.
    pub fn finish(&self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.inner.ticker.lock().expect("progress lock").take() {
            let _ = h.join();
        }
    }
}

impl Inner {
    fn draw(&self, start: Instant) {
        let done = self.done.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed).max(1);
        let filled = ((done.min(total) as f64 / total as f64) * BAR_WIDTH as f64) as usize;
        let rate = done as f64 / start.elapsed().as_secs_f64().max(1e-3);
        eprint!(
            "\r\x1b[2K{} [{}{}] {:>3}% {done}/{total} records, {:.0} records/s",
            self.label,
            "#".repeat(filled),
            ".".repeat(BAR_WIDTH - filled),
            done * 100 / total,
            rate
        );
        let _ = std::io::stderr().flush();
    }
}
