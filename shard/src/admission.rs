//! What a shard admits: connections, request bytes in flight, and how long
//! a connection may sit idle or take to send a request. Each bound is here
//! with its reason (Kafka's names where Kafka has one); docs/OPERATIONS.md
//! lists them for operators.
//!
//! Runs on the shard's own core; shard-local state only (`Cell`, `Rc`).
//! It never decides what a request means, only whether its bytes may come in.
//! Main types: [`RequestBytes`] (the shard's budget of request bytes, Kafka's
//! `queued.max.request.bytes`) and its [`BytesPermit`].

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use engine::sync::Notify;

/// Request bytes a shard holds at once, across its connections, from the
/// moment a frame's size is read until its reply is written (Kafka's
/// `queued.max.request.bytes`, unbounded there by default). A frame waits
/// for room before any of its bytes are read, so 100 connections each
/// declaring 100 MiB hold at most this much, not 10 GB. Must admit the
/// largest request (`net::frame::REQUEST_BYTES_MAX`, 100 MiB); 256 MiB
/// also keeps 64 producers with 1 MiB requests 4 deep flowing.
pub const QUEUED_REQUEST_BYTES_MAX: usize = 256 * 1024 * 1024;

/// A connection with no request for this long is closed: Kafka's
/// `connections.max.idle.ms` default (10 minutes). Clients reconnect when
/// they need to; librdkafka closes its own idle connections sooner.
pub const CONNECTIONS_MAX_IDLE: Duration = Duration::from_secs(600);

/// A request whose bytes do not all arrive within this long after its size
/// closes its connection, so a client that declares a frame and stalls
/// cannot hold its share of [`QUEUED_REQUEST_BYTES_MAX`] (the largest
/// request, 100 MiB, needs 1.7 MB/s to arrive in time).
pub const REQUEST_ARRIVAL_TIMEOUT: Duration = Duration::from_secs(60);

/// Connections one shard serves at once. Beyond it a new connection is
/// closed at once with a log line (Kafka's `max.connections`, unbounded by
/// default there): each connection holds a socket descriptor, a 64 KiB
/// read buffer and two tasks, so 10,000 is ~700 MB of buffers at worst
/// and leaves descriptors for partitions.
pub const CONNECTIONS_PER_SHARD_MAX: usize = 10_000;

/// Connections one shard serves from one client address (Kafka's
/// `max.connections.per.ip`, unbounded there by default): one misbehaving
/// host cannot take every connection slot of a shard. Beyond it the new
/// connection is closed at once.
pub const CONNECTIONS_PER_IP_MAX: usize = 1_000;

/// First pause after a failed accept (EMFILE, ENFILE, ENOBUFS), doubling
/// up to [`ACCEPT_BACKOFF_MAX`]: a broker out of descriptors must not spin
/// logging the same error (it did: 31 MB of log per second).
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

const _: () = assert!(QUEUED_REQUEST_BYTES_MAX >= net::frame::REQUEST_BYTES_MAX);
const _: () = assert!(CONNECTIONS_PER_IP_MAX <= CONNECTIONS_PER_SHARD_MAX);

/// The shard's budget of request bytes in flight.
pub struct RequestBytes {
    max: usize,
    used: Cell<usize>,
    freed: Notify,
}

impl RequestBytes {
    pub fn new(max: usize) -> Rc<RequestBytes> {
        Rc::new(RequestBytes { max, used: Cell::new(0), freed: Notify::default() })
    }

    /// Bytes held now (for metrics and tests).
    pub fn used(&self) -> usize {
        self.used.get()
    }

    /// Waits until `n` more bytes fit in the budget, then holds them until
    /// the permit drops. A frame larger than the whole budget is admitted
    /// when nothing else is held, so it cannot wait forever.
    pub async fn acquire(self: &Rc<Self>, n: usize) -> BytesPermit {
        loop {
            let freed = self.freed.notified();
            let used = self.used.get();
            if used == 0 || used + n <= self.max {
                self.used.set(used + n);
                return BytesPermit { pool: self.clone(), n };
            }
            freed.await;
        }
    }
}

/// Bytes of one request held in the shard's budget until dropped.
pub struct BytesPermit {
    pool: Rc<RequestBytes>,
    n: usize,
}

impl Drop for BytesPermit {
    fn drop(&mut self) {
        self.pool.used.set(self.pool.used.get() - self.n);
        self.pool.freed.notify();
    }
}

/// `fut`, or `None` when `limit` passes first.
pub async fn within<T>(limit: Duration, fut: impl std::future::Future<Output = T>) -> Option<T> {
    let expired = async {
        glommio::timer::sleep(limit).await;
        None
    };
    futures_lite::future::or(async { Some(fut.await) }, expired).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_holds_bytes_until_permits_drop() {
        glommio::LocalExecutor::default().run(async {
            let pool = RequestBytes::new(100);
            let a = pool.acquire(60).await;
            let b = pool.acquire(40).await;
            assert_eq!(pool.used(), 100);
            let waiting = pool.clone();
            let c = glommio::spawn_local(async move { waiting.acquire(30).await });
            glommio::yield_if_needed().await;
            glommio::executor().yield_now().await;
            assert_eq!(pool.used(), 100, "the third waits for room");
            drop(a);
            let c = c.await;
            assert_eq!(pool.used(), 70);
            drop((b, c));
            assert_eq!(pool.used(), 0);
            // Larger than the whole budget: admitted alone.
            let big = pool.acquire(1000).await;
            assert_eq!(pool.used(), 1000);
            drop(big);
        });
    }
}

/// The connections a shard has open, counted against
/// [`CONNECTIONS_PER_SHARD_MAX`] and, per client address,
/// [`CONNECTIONS_PER_IP_MAX`].
#[derive(Default)]
pub struct Connections {
    open: Cell<usize>,
    by_ip: RefCell<HashMap<IpAddr, usize>>,
}

impl Connections {
    /// Why a new connection from `ip` is refused, if it is.
    pub fn refusal(&self, ip: Option<IpAddr>) -> Option<String> {
        if self.open.get() >= CONNECTIONS_PER_SHARD_MAX {
            return Some(format!(
                "{CONNECTIONS_PER_SHARD_MAX} connections open, the most one shard serves"
            ));
        }
        let ip = ip?;
        let from_ip = self.by_ip.borrow().get(&ip).copied().unwrap_or(0);
        (from_ip >= CONNECTIONS_PER_IP_MAX).then(|| {
            format!("{from_ip} connections open from {ip}, the most one shard serves one address")
        })
    }

    pub fn opened(&self, ip: Option<IpAddr>) {
        self.open.set(self.open.get() + 1);
        if let Some(ip) = ip {
            *self.by_ip.borrow_mut().entry(ip).or_default() += 1;
        }
    }

    pub fn closed(&self, ip: Option<IpAddr>) {
        self.open.set(self.open.get() - 1);
        let Some(ip) = ip else { return };
        let mut by_ip = self.by_ip.borrow_mut();
        let left = by_ip.get_mut(&ip).map(|n| {
            *n -= 1;
            *n
        });
        if left == Some(0) {
            by_ip.remove(&ip);
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.get()
    }
}
