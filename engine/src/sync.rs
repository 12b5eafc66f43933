//! Single-threaded async primitives: a notifier and a counting semaphore. Shard-local only (`Rc`, `Cell`, no atomics).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Wakes every task waiting at the moment [`Notify::notify`] is called.
///
/// Use it as `loop { let n = notify.notified(); if ready() { break } n.await }`:
/// the future remembers the generation it was created in, so a notification
/// between the check and the await is not lost.
///
/// A waiting future holds one registration, taken back when it completes
/// or is dropped: a `Notify` that is rarely notified (a shard's stop,
/// raced by every request) holds only its current waiters, not one waker
/// per future that ever waited on it.
#[derive(Default)]
pub struct Notify {
    generation: Cell<u64>,
    /// Registrations by key; keys are never reused.
    wakers: RefCell<HashMap<u64, Waker>>,
    next_key: Cell<u64>,
}

impl Notify {
    pub fn notify(&self) {
        self.generation.set(self.generation.get() + 1);
        // Taken out before waking: a waker that runs code touching this
        // Notify finds it free, and the map's capacity is kept.
        let mut waiting = std::mem::take(&mut *self.wakers.borrow_mut());
        for (_, w) in waiting.drain() {
            w.wake();
        }
        let mut wakers = self.wakers.borrow_mut();
        if wakers.is_empty() {
            *wakers = waiting;
        }
    }

    pub fn notified(&self) -> Notified<'_> {
        Notified { notify: self, generation: self.generation.get(), key: None }
    }

    /// Futures registered and waiting.
    pub fn waiters(&self) -> usize {
        self.wakers.borrow().len()
    }
}

/// Future of [`Notify::notified`].
pub struct Notified<'a> {
    notify: &'a Notify,
    generation: u64,
    /// Its registration in `notify.wakers`, once polled.
    key: Option<u64>,
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let notify = self.notify;
        if notify.generation.get() != self.generation {
            // `notify` took every registration, this one's too.
            self.key = None;
            return Poll::Ready(());
        }
        let mut wakers = notify.wakers.borrow_mut();
        match self.key.and_then(|k| wakers.get_mut(&k)) {
            Some(w) if w.will_wake(cx.waker()) => {}
            Some(w) => *w = cx.waker().clone(),
            None => {
                let key = notify.next_key.get();
                notify.next_key.set(key + 1);
                wakers.insert(key, cx.waker().clone());
                drop(wakers);
                self.key = Some(key);
            }
        }
        Poll::Pending
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.notify.wakers.borrow_mut().remove(&key);
        }
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

    /// A slot if one is free now, without waiting.
    pub fn try_acquire(&self) -> Option<Slot<'_>> {
        let free = self.free.get();
        if free == 0 {
            return None;
        }
        self.free.set(free - 1);
        Some(Slot { slots: self })
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
    fn try_acquire_takes_a_free_slot_or_none_and_wakes_a_waiter_when_dropped() {
        let slots = Slots::new(1);
        let held = slots.try_acquire().expect("one slot free");
        assert!(slots.try_acquire().is_none(), "no slot is free");
        let mut waiting = Box::pin(slots.acquire());
        assert!(future::block_on(future::poll_once(&mut waiting)).is_none());
        drop(held);
        let taken = future::block_on(future::poll_once(&mut waiting));
        assert!(taken.is_some(), "the waiter got the slot given back");
        assert!(slots.try_acquire().is_none());
        drop(taken);
        assert!(slots.try_acquire().is_some());
    }

    #[test]
    fn a_dropped_waiter_leaves_no_registration() {
        let n = Notify::default();
        for _ in 0..1000 {
            let mut waiting = Box::pin(n.notified());
            assert!(future::block_on(future::poll_once(&mut waiting)).is_none());
            assert_eq!(n.waiters(), 1);
        }
        assert_eq!(n.waiters(), 0, "each waiter took its registration back when dropped");
        let mut a = Box::pin(n.notified());
        let mut b = Box::pin(n.notified());
        assert!(future::block_on(future::poll_once(&mut a)).is_none());
        assert!(future::block_on(future::poll_once(&mut b)).is_none());
        assert!(future::block_on(future::poll_once(&mut a)).is_none());
        assert_eq!(n.waiters(), 2, "polling again keeps one registration");
        n.notify();
        assert_eq!(n.waiters(), 0);
        assert!(future::block_on(future::poll_once(&mut a)).is_some());
        drop(b);
        assert_eq!(n.waiters(), 0);
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
