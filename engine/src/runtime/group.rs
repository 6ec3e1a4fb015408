//! Group commit: the tasks touched in one loop turn, the callers waiting on them, and the
//! commit that makes them durable together (or rolls them all back), and what each task does
//! once its new state is durable.

use super::{AckReply, ControlError, ControlReply, Runtime, StartError, StartReply, Started};
use crate::changes::TaskChange;
use crate::journal::{StoreError, TaskWrite};
use crate::machine::{self, Command};
use crate::model::TaskId;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A caller answered once the group is on disk.
pub(crate) enum Waiter {
    Start { reply: StartReply, id: TaskId, created: bool },
    Control { reply: ControlReply, id: TaskId },
    Ack { reply: AckReply },
}

#[derive(Default)]
pub(crate) struct Group {
    touched: Vec<TaskId>,
    touched_set: HashSet<TaskId>,
    pub(super) waiters: Vec<Waiter>,
    /// Idempotency keys of tasks created in this group (not yet in the store).
    pub(super) keys: HashMap<String, TaskId>,
}

impl Group {
    pub fn touch(&mut self, id: TaskId) {
        if self.touched_set.insert(id) {
            self.touched.push(id);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.touched.is_empty() && self.waiters.is_empty()
    }
}

impl Runtime {
    pub(super) async fn commit_group(&mut self) {
        let group = std::mem::take(&mut self.group);
        let writes: Vec<TaskWrite> = group
            .touched
            .iter()
            .filter_map(|id| {
                let active = self.active.get_mut(id)?;
                if active.unsaved.is_empty() {
                    return None;
                }
                let events = std::mem::take(&mut active.unsaved);
                Some(TaskWrite { task: active.task.clone(), events })
            })
            .collect();
        let outcome = if writes.is_empty() {
            Ok(writes)
        } else {
            self.gauges.groups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.gauges.group_tasks.fetch_add(writes.len() as u64, std::sync::atomic::Ordering::Relaxed);
            let store = self.store.clone();
            let started = std::time::Instant::now();
            let tasks = writes.len() as f64;
            let outcome = tokio::task::spawn_blocking(move || store.commit(&writes).map(|()| writes))
                .await
                .unwrap_or_else(|e| Err(StoreError::Io(e.to_string())));
            let metrics = crate::metrics::global();
            let seconds = started.elapsed().as_secs_f64();
            metrics.observe("stepwise_journal_commit_seconds", "Time to write and fsync one journal group.", crate::metrics::SECONDS_BUCKETS, &[], seconds);
            metrics.observe("stepwise_journal_group_tasks", "Tasks written by one journal group.", crate::metrics::COUNT_BUCKETS, &[], tasks);
            outcome
        };
        match outcome {
            Ok(writes) => {
                if let Some(mover) = &self.mover {
                    for write in writes.iter().filter(|write| write.task.is_settled()) {
                        mover.push(write.task.clone());
                    }
                }
                self.publish(writes);
                for waiter in group.waiters {
                    self.answer(waiter);
                }
                for id in group.touched {
                    self.after_commit(id);
                }
            }
            Err(error) => self.roll_back(group.touched, group.waiters, error),
        }
    }

    /// Tells the watchers of each committed task what changed.
    fn publish(&self, writes: Vec<TaskWrite>) {
        for write in writes {
            if !self.changes.is_watched(&write.task.id) {
                continue;
            }
            let kinds = write.events.iter().map(|(_, event)| event.kind()).collect();
            let task = Arc::unwrap_or_clone(write.task);
            self.changes.publish(TaskChange { seq: task.seq, kinds, task });
        }
    }

    fn answer(&self, waiter: Waiter) {
        let snapshot = |id: &TaskId| match self.active.get(id) {
            Some(active) => Some(active.task.clone()),
            None => self.store.task(id).ok().flatten().map(Arc::new),
        };
        match waiter {
            Waiter::Start { reply, id, created } => {
                let answer = snapshot(&id)
                    .map(|task| Started { task, created })
                    .ok_or_else(|| StartError::Unavailable("the task could not be read back".into()));
                let _ = reply.send(answer);
            }
            Waiter::Control { reply, id } => {
                let answer = snapshot(&id)
                    .map(Arc::unwrap_or_clone)
                    .ok_or_else(|| ControlError::Unavailable("the task could not be read back".into()));
                let _ = reply.send(answer);
            }
            Waiter::Ack { reply } => {
                let _ = reply.send(Ok(()));
            }
        }
    }

    /// The group did not reach the disk: answer its callers with an error and put every
    /// touched task back to its durable state; timers bring them forward again.
    fn roll_back(&mut self, touched: Vec<TaskId>, waiters: Vec<Waiter>, error: StoreError) {
        tracing::error!(%error, tasks = touched.len(), "Journal commit failed; the group was rolled back.");
        for waiter in waiters {
            let cause = error.to_string();
            match waiter {
                Waiter::Start { reply, .. } => {
                    let _ = reply.send(Err(StartError::Unavailable(cause)));
                }
                Waiter::Control { reply, .. } => {
                    let _ = reply.send(Err(ControlError::Unavailable(cause)));
                }
                Waiter::Ack { reply } => {
                    let _ = reply.send(Err(ControlError::Unavailable(cause)));
                }
            }
        }
        for id in touched {
            match self.store.task(&id) {
                Ok(Some(task)) if !task.is_settled() => {
                    if let Some(active) = self.active.get_mut(&id) {
                        active.task = Arc::new(task);
                        active.unsaved.clear();
                        active.fresh_intent = false;
                    }
                    self.schedule(id, self.policy.retry_base);
                }
                _ => {
                    self.active.remove(&id);
                    self.timers.cancel(&id);
                    self.deadlines.cancel(&id);
                    for next in self.admission.release(&id) {
                        self.group.touch(next);
                        self.advance(next);
                    }
                }
            }
        }
    }

    /// The task's new state is durable: start what it needs next.
    pub(super) fn after_commit(&mut self, id: TaskId) {
        let Some(active) = self.active.get(&id) else { return };
        if active.task.status.is_terminal() && (self.admission.holds(&id) || self.queue_view().position(&id).is_some()) {
            for next in self.admission.release(&id) {
                self.group.touch(next);
                self.advance(next);
            }
        }
        let Some(active) = self.active.get(&id) else { return };
        // Act only on durable state: events recorded since this group's commit (a queued task
        // admitted just above) belong to the next group, whose commit brings the task back here.
        if active.calling || !active.unsaved.is_empty() {
            return;
        }
        let scheduled = self.timers.is_scheduled(&id);
        // A wait set before the latest change (a status check of a step that has since
        // ended) is obsolete; one set since (a backoff after a failed call) stands.
        let obsolete = scheduled && active.timer_seq < active.task.seq;
        match machine::decide(&active.task) {
            None => {
                tracing::info!(task_id = %id, status = active.task.status.as_str(), "Task finished.");
                let labels = [("workflow", active.task.workflow.as_str()), ("outcome", active.task.status.as_str())];
                crate::metrics::global().inc("stepwise_tasks_finished_total", "Tasks that ended, by outcome.", &labels);
                self.active.remove(&id);
                self.timers.cancel(&id);
                self.deadlines.cancel(&id);
            }
            Some(Command::Watch { .. }) if !scheduled => {
                let delay = self.next_check_delay(id);
                self.schedule(id, delay);
            }
            Some(Command::EnsurePrediction { .. } | Command::CancelPrediction { .. }) if !scheduled || obsolete => {
                self.timers.cancel(&id);
                self.on_due(id);
            }
            _ => {}
        }
    }
}
