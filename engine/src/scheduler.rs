//! The timer wheel: one `tokio_util::time::DelayQueue` holding at most one due time per key
//! (a task, since a task runs one step at a time). No task or thread per timer: 100 000
//! waiting tasks are 100 000 small entries. Memory only; recovery rebuilds it from the journal.

use crate::model::IdHasher;
use std::collections::HashMap;
use std::future::poll_fn;
use std::hash::BuildHasherDefault;
use std::hash::Hash;
use std::time::Duration;
use tokio_util::time::delay_queue::{DelayQueue, Key};

/// DelayQueue panics on deadlines beyond about two years; nothing of ours waits that long.
const MAX_DELAY: Duration = Duration::from_secs(365 * 24 * 3600);

pub struct Scheduler<T> {
    queue: DelayQueue<T>,
    /// The live slab key of each item; removed when the entry fires, because slab keys are
    /// reused and `remove`/`reset` on a dead key panic.
    /// Keyed by task ids in the runtime: hashed with `IdHasher` (see there).
    keys: HashMap<T, Key, BuildHasherDefault<IdHasher>>,
}

impl<T: Eq + Hash + Clone> Default for Scheduler<T> {
    fn default() -> Self {
        Scheduler {
            queue: DelayQueue::new(),
            keys: HashMap::default(),
        }
    }
}

impl<T: Eq + Hash + Clone> Scheduler<T> {
    /// Fires `item` after `delay`, replacing any time already set for it.
    pub fn schedule(&mut self, item: T, delay: Duration) {
        let delay = delay.min(MAX_DELAY);
        match self.keys.get(&item) {
            Some(key) => self.queue.reset(key, delay),
            None => {
                let key = self.queue.insert(item.clone(), delay);
                self.keys.insert(item, key);
            }
        }
    }

    pub fn cancel(&mut self, item: &T) {
        if let Some(key) = self.keys.remove(item) {
            self.queue.try_remove(&key);
        }
    }

    pub fn is_scheduled(&self, item: &T) -> bool {
        self.keys.contains_key(item)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The next item that falls due. Never resolves while nothing is scheduled (an empty
    /// DelayQueue answers `None` at once, which would spin a `select!` loop).
    pub async fn next(&mut self) -> T {
        if self.keys.is_empty() {
            return std::future::pending().await;
        }
        loop {
            if let Some(expired) = poll_fn(|cx| self.queue.poll_expired(cx)).await {
                let item = expired.into_inner();
                self.keys.remove(&item);
                return item;
            }
        }
    }

    /// Items already due, without waiting (up to `max`), to serve a burst in one group.
    pub fn drain_due(&mut self, max: usize) -> Vec<T> {
        let mut due = vec![];
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        while due.len() < max && !self.keys.is_empty() {
            match self.queue.poll_expired(&mut cx) {
                std::task::Poll::Ready(Some(expired)) => {
                    let item = expired.into_inner();
                    self.keys.remove(&item);
                    due.push(item);
                }
                _ => break,
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn items_fire_in_due_order_and_rescheduling_replaces() {
        let mut timers = Scheduler::default();
        timers.schedule("b", Duration::from_millis(200));
        timers.schedule("a", Duration::from_millis(100));
        timers.schedule("c", Duration::from_millis(50));
        timers.schedule("c", Duration::from_millis(300));
        assert_eq!(timers.len(), 3);
        assert_eq!(timers.next().await, "a");
        assert_eq!(timers.next().await, "b");
        assert!(timers.is_scheduled(&"c"));
        assert_eq!(timers.next().await, "c");
        assert!(timers.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_canceled_item_never_fires_and_its_key_can_be_reused() {
        let mut timers = Scheduler::default();
        timers.schedule(1, Duration::from_millis(10));
        timers.cancel(&1);
        timers.cancel(&1);
        timers.schedule(2, Duration::from_millis(20));
        assert_eq!(timers.next().await, 2);
        timers.schedule(1, Duration::from_millis(5));
        assert_eq!(timers.next().await, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_scheduler_waits_instead_of_spinning() {
        let mut timers: Scheduler<u8> = Scheduler::default();
        let waited = tokio::time::timeout(Duration::from_secs(5), timers.next()).await;
        assert!(waited.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn drain_due_takes_only_what_is_due() {
        let mut timers = Scheduler::default();
        for i in 0..5 {
            timers.schedule(i, Duration::from_millis(10));
        }
        timers.schedule(99, Duration::from_secs(10));
        assert!(timers.drain_due(10).is_empty());
        tokio::time::advance(Duration::from_millis(20)).await;
        let mut due = timers.drain_due(3);
        due.extend(timers.drain_due(10));
        due.sort();
        assert_eq!(due, vec![0, 1, 2, 3, 4]);
        assert_eq!(timers.len(), 1);
    }
}
