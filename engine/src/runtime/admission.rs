//! Admission: which tasks, and which of their steps, may run now.
//!
//! Caps on how many predictions run at once (`max_in_flight`, globally and per workflow): a
//! task holds one slot per prediction in flight (a parallel stage's branches take one each)
//! and keeps one between its steps, from its first step until it ends. A task's first slot
//! comes through one FIFO queue, whose positions the API reads through `QueueView` without
//! asking the runtime loop; a running task waiting for a branch's slot goes first when one
//! frees up. Which steps' creates may go out now is the create gate's (`create_gate.rs`).

use crate::model::{TaskId, TaskIdMap};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// The wait queue, shared with readers. Tickets grow monotonically, so a position is the
/// number of smaller tickets still waiting.
#[derive(Clone, Default)]
pub struct QueueView {
    inner: Arc<Mutex<Queue>>,
}

#[derive(Default)]
struct Queue {
    next_ticket: u64,
    by_ticket: BTreeMap<u64, (TaskId, String)>,
    tickets: TaskIdMap<u64>,
}

impl QueueView {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Only map updates happen under this lock; a poisoned guard still holds whole maps.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// 1-based place in the queue, or `None` when the task is not waiting.
    pub fn position(&self, id: &TaskId) -> Option<usize> {
        let queue = self.lock();
        let ticket = *queue.tickets.get(id)?;
        Some(queue.by_ticket.range(..ticket).count() + 1)
    }

    pub fn len(&self) -> usize {
        self.lock().tickets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub struct Admission {
    max_total: Option<usize>,
    max_per_workflow: HashMap<String, usize>,
    /// Slots held, per workflow and in all.
    running: HashMap<String, usize>,
    total: usize,
    holders: TaskIdMap<Holder>,
    queue: QueueView,
    /// Running tasks waiting for one more slot (a parallel branch), in the order they asked;
    /// they go before the queue when slots free up: started work finishes first.
    growers: VecDeque<TaskId>,
}

/// The slots of a task that is running: one per prediction in flight, and at least one
/// between its steps.
struct Holder {
    workflow: String,
    slots: usize,
}

impl Admission {
    pub fn new(max_total: Option<usize>, max_per_workflow: HashMap<String, usize>) -> Self {
        Admission {
            max_total,
            max_per_workflow,
            running: HashMap::new(),
            total: 0,
            holders: TaskIdMap::default(),
            queue: QueueView::default(),
            growers: VecDeque::new(),
        }
    }

    pub fn view(&self) -> QueueView {
        self.queue.clone()
    }

    pub fn holds(&self, id: &TaskId) -> bool {
        self.holders.contains_key(id)
    }

    fn has_room(&self, workflow: &str) -> bool {
        let total_ok = self.max_total.is_none_or(|max| self.total < max);
        let running = self.running.get(workflow).copied().unwrap_or(0);
        let workflow_ok = self
            .max_per_workflow
            .get(workflow)
            .is_none_or(|max| running < *max);
        total_ok && workflow_ok
    }

    fn add_slots(&mut self, id: TaskId, workflow: &str, slots: usize) {
        let holder = self.holders.entry(id).or_insert_with(|| Holder {
            workflow: workflow.to_owned(),
            slots: 0,
        });
        holder.slots += slots;
        *self.running.entry(workflow.to_owned()).or_default() += slots;
        self.total += slots;
    }

    /// Gives `id` its slots unconditionally (a task that was running before a restart, with
    /// `running` predictions in flight).
    pub fn hold(&mut self, id: TaskId, workflow: &str, running: usize) {
        let have = self.holders.get(&id).map_or(0, |h| h.slots);
        let want = running.max(1);
        if want > have {
            self.add_slots(id, workflow, want - have);
        }
    }

    /// A slot for one more prediction of `id`, which has `running` in flight. A task's first
    /// slot comes in FIFO order from the queue (where it waits, once, when none is free);
    /// later ones (a parallel stage's branches) as soon as one is free, else it waits for
    /// one. True when the prediction may start now. FIFO holds because `release` admits every
    /// waiting task that fits: whoever still waits does not fit, so room found here is room
    /// they can't use.
    pub fn admit(&mut self, id: TaskId, workflow: &str, running: usize) -> bool {
        if let Some(holder) = self.holders.get(&id) {
            if running < holder.slots {
                return true;
            }
            if self.has_room(workflow) {
                self.add_slots(id, workflow, 1);
                return true;
            }
            if !self.growers.contains(&id) {
                self.growers.push_back(id);
            }
            return false;
        }
        let mut queue = self.queue.lock();
        let waiting = queue.tickets.get(&id).copied();
        if self.has_room(workflow) {
            if let Some(ticket) = waiting {
                queue.by_ticket.remove(&ticket);
                queue.tickets.remove(&id);
            }
            drop(queue);
            self.add_slots(id, workflow, 1);
            return true;
        }
        if waiting.is_none() {
            let ticket = queue.next_ticket;
            queue.next_ticket += 1;
            queue.by_ticket.insert(ticket, (id, workflow.to_owned()));
            queue.tickets.insert(id, ticket);
        }
        false
    }

    /// Gives back the slots of `id` beyond its `running` predictions (keeping one); returns
    /// the tasks that now have a slot, in order.
    pub fn shrink(&mut self, id: &TaskId, running: usize) -> Vec<TaskId> {
        let Some(holder) = self.holders.get_mut(id) else {
            return Vec::new();
        };
        let extra = holder.slots.saturating_sub(running.max(1));
        if extra == 0 {
            return Vec::new();
        }
        holder.slots -= extra;
        self.total -= extra;
        if let Some(count) = self.running.get_mut(&holder.workflow) {
            *count = count.saturating_sub(extra);
        }
        self.fill()
    }

    /// Frees `id`'s slots or queue place; returns the tasks that now have a slot, in order.
    pub fn release(&mut self, id: &TaskId) -> Vec<TaskId> {
        {
            let mut queue = self.queue.lock();
            if let Some(ticket) = queue.tickets.remove(id) {
                queue.by_ticket.remove(&ticket);
            }
        }
        self.growers.retain(|grower| grower != id);
        if let Some(holder) = self.holders.remove(id) {
            self.total -= holder.slots;
            if let Some(count) = self.running.get_mut(&holder.workflow) {
                *count = count.saturating_sub(holder.slots);
            }
        }
        self.fill()
    }

    /// Hands free slots out: first to running tasks waiting for one more (their next
    /// `admit` finds it reserved), then to queued tasks in order.
    fn fill(&mut self) -> Vec<TaskId> {
        let mut admitted = vec![];
        let mut still = VecDeque::new();
        while let Some(id) = self.growers.pop_front() {
            match self.holders.get(&id).map(|h| h.workflow.clone()) {
                Some(workflow) if self.has_room(&workflow) => {
                    self.add_slots(id, &workflow, 1);
                    admitted.push(id);
                }
                Some(_) => still.push_back(id),
                None => {}
            }
        }
        self.growers = still;
        loop {
            let next = {
                let queue = self.queue.lock();
                queue
                    .by_ticket
                    .values()
                    .find(|(_, w)| self.has_room(w))
                    .cloned()
            };
            let Some((next_id, workflow)) = next else {
                break;
            };
            {
                let mut queue = self.queue.lock();
                if let Some(ticket) = queue.tickets.remove(&next_id) {
                    queue.by_ticket.remove(&ticket);
                }
            }
            self.add_slots(next_id, &workflow, 1);
            admitted.push(next_id);
        }
        admitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> TaskId {
        TaskId([n; 16])
    }

    #[test]
    fn tasks_over_the_global_cap_wait_in_order_and_move_up() {
        let mut admission = Admission::new(Some(2), HashMap::new());
        let view = admission.view();
        assert!(admission.admit(id(1), "w", 0));
        assert!(admission.admit(id(2), "w", 0));
        assert!(!admission.admit(id(3), "w", 0));
        assert!(!admission.admit(id(4), "w", 0));
        assert!(
            !admission.admit(id(3), "w", 0),
            "asking again keeps the place"
        );
        assert_eq!(
            (view.position(&id(3)), view.position(&id(4))),
            (Some(1), Some(2))
        );
        assert_eq!(admission.release(&id(1)), vec![id(3)]);
        assert_eq!(view.position(&id(4)), Some(1));
        assert_eq!(view.position(&id(3)), None);
        assert_eq!(
            admission.release(&id(4)),
            vec![],
            "leaving the queue frees no slot"
        );
        assert!(view.is_empty());
    }

    #[test]
    fn a_full_workflow_does_not_block_another_one() {
        let caps = HashMap::from([("slow".to_owned(), 1)]);
        let mut admission = Admission::new(None, caps);
        assert!(admission.admit(id(1), "slow", 0));
        assert!(!admission.admit(id(2), "slow", 0));
        assert!(
            admission.admit(id(3), "fast", 0),
            "no global cap: other workflows pass"
        );
        assert_eq!(admission.release(&id(3)), vec![]);
        assert_eq!(admission.release(&id(1)), vec![id(2)]);
    }

    #[test]
    fn a_newcomer_cannot_jump_the_queue() {
        let mut admission = Admission::new(Some(1), HashMap::new());
        assert!(admission.admit(id(1), "w", 0));
        assert!(!admission.admit(id(2), "w", 0));
        assert_eq!(admission.release(&id(1)), vec![id(2)]);
        assert!(!admission.admit(id(3), "w", 0));
    }
}
