//! Single-threaded async primitives: a notifier and a counting semaphore. Shard-local only (`Rc`, `Cell`, no atomics).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Wakes every task waiting at the moment [`Notify::notify`] is called.
///
/// Use it as `loop { let n = notify.notified(); if ready() { break } n.await }`:
/// the future remembers the generation it was created in, so a notification
/// between the check and the await is not lost.
#[derive(Default)]
pub struct Notify {
    generation: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Notify {
    pub fn notify(&self) {
        self.generation.set(self.generation.get() + 1);
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    pub fn notified(&self) -> Notified<'_> {
        Notified { notify: self, generation: self.generation.get() }
    }
}

/// Future of [`Notify::notified`].
pub struct Notified<'a> {
    notify: &'a Notify,
    generation: u64,
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.generation {
            return Poll::Ready(());
        }
        let mut wakers = self.notify.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// A counting semaphore: at most `n` holders at once.
pub struct Slots {
    free: Cell<usize>,
    released: Notify,
}

/// A held slot; dropping it frees the slot.
pub struct Slot<'a> {
    slots: &'a Slots,
}

impl Slots {
    pub fn new(n: usize) -> Self {
        Slots { free: Cell::new(n), released: Notify::default() }
    }

    pub async fn acquire(&self) -> Slot<'_> {
        loop {
            let notified = self.released.notified();
            if self.free.get() > 0 {
                self.free.set(self.free.get() - 1);
                return Slot { slots: self };
            }
            notified.await;
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.slots.free.set(self.slots.free.get() + 1);
        self.slots.released.notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future;

    #[test]
    fn notification_between_check_and_await_is_not_lost() {
        let n = Notify::default();
        let waiting = n.notified();
        n.notify();
        future::block_on(waiting);
    }

    #[test]
    fn slots_admit_at_most_n() {
        let slots = Slots::new(2);
        let a = future::block_on(slots.acquire());
        let _b = future::block_on(slots.acquire());
        let mut third = Box::pin(slots.acquire());
        assert!(future::block_on(future::poll_once(&mut third)).is_none());
        drop(a);
        assert!(future::block_on(future::poll_once(&mut third)).is_some());
    }

    #[test]
    fn pending_until_notified() {
        let n = Notify::default();
        let mut waiting = Box::pin(n.notified());
        assert!(future::block_on(future::poll_once(&mut waiting)).is_none());
        n.notify();
        assert!(future::block_on(future::poll_once(&mut waiting)).is_some());
    }
}
