//! The create gate: how many create calls may be out at once, counting those still waiting
//! for the rate limiter. A step whose create cannot go out yet waits here as its key in a
//! FIFO, not as a spawned call: a burst of 100 000 starts under Replicate's 600 creates a
//! minute used to hold 100 000 sleeping calls, each with its request built (about 9 KB of
//! memory per task, and a spawn, a timer and a JSON tree of CPU per start). The intent is
//! journaled before a step gets there, so waiting there is as durable as waiting inside the
//! rate limiter was: after a restart, recovery queues it again.

use super::{Runtime, StepKey};
use crate::model::IdHasher;
use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The fewest create calls allowed out at once, whatever the configured burst: enough to
/// keep the create limit busy while calls take hundreds of milliseconds at Replicate.
pub const MIN_CREATES_OUT: usize = 256;

pub(crate) struct CreateGate {
    /// One permit per call out; a call holds its permit until its answer is back.
    permits: Arc<Semaphore>,
    /// Steps waiting for a permit, in the order they asked.
    waiting: VecDeque<StepKey>,
    /// The same keys, so a step asking again keeps its place instead of queueing twice.
    queued: HashSet<StepKey, BuildHasherDefault<IdHasher>>,
}

impl CreateGate {
    /// A gate letting `max_out` calls out at once (at least `MIN_CREATES_OUT`).
    pub fn new(max_out: usize) -> Self {
        CreateGate {
            permits: Arc::new(Semaphore::new(max_out.max(MIN_CREATES_OUT))),
            waiting: VecDeque::new(),
            queued: HashSet::default(),
        }
    }

    /// A permit for the create call of step `id`, or `None` with it queued (once) for the
    /// next. A step already queued gets no permit ahead of those before it.
    pub fn permit(&mut self, id: StepKey) -> Option<OwnedSemaphorePermit> {
        if !self.queued.contains(&id) {
            if let Ok(permit) = self.permits.clone().try_acquire_owned() {
                return Some(permit);
            }
            self.queued.insert(id);
            self.waiting.push_back(id);
        }
        None
    }

    /// The next queued step, when a permit is free for it.
    fn next_waiting(&mut self) -> Option<StepKey> {
        if self.permits.available_permits() == 0 {
            return None;
        }
        let id = self.waiting.pop_front()?;
        self.queued.remove(&id);
        Some(id)
    }

    /// Tasks waiting for a permit (some may have ended since; they are skipped when due).
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

impl Runtime {
    /// Hands free permits to the tasks waiting longest. A task that no longer needs a create
    /// (canceled, or with events not yet committed) takes none; `after_commit` brings the
    /// latter back.
    pub(super) fn release_waiting_creates(&mut self) {
        while let Some((id, step)) = self.creates.next_waiting() {
            self.on_due(id, step);
        }
        let waiting = self.creates.waiting();
        self.gauges
            .creates_waiting
            .store(waiting, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TaskId;

    fn id(n: u8) -> TaskId {
        TaskId([n; 16])
    }

    #[test]
    fn tasks_over_the_limit_wait_in_order_and_once_each() {
        let mut gate = CreateGate::new(MIN_CREATES_OUT);
        let held: Vec<_> = (0..MIN_CREATES_OUT)
            .map(|_| gate.permit((id(0), 1)).expect("a free permit"))
            .collect();
        assert!(gate.permit((id(1), 1)).is_none());
        assert!(gate.permit((id(2), 1)).is_none());
        assert!(
            gate.permit((id(1), 1)).is_none(),
            "asking again keeps the place"
        );
        assert_eq!(gate.waiting(), 2);
        assert_eq!(gate.next_waiting(), None, "no permit is free yet");
        drop(held);
        assert_eq!(gate.next_waiting(), Some((id(1), 1)));
        assert!(
            gate.permit((id(1), 1)).is_some(),
            "the released task gets its permit"
        );
        assert_eq!(gate.next_waiting(), Some((id(2), 1)));
        assert_eq!(gate.next_waiting(), None);
    }

    #[test]
    fn a_burst_larger_than_the_minimum_goes_out_at_once() {
        let mut gate = CreateGate::new(1000);
        let held: Vec<_> = (0..1000).filter_map(|_| gate.permit((id(0), 1))).collect();
        assert_eq!(held.len(), 1000);
        assert!(gate.permit((id(9), 1)).is_none());
    }
}
