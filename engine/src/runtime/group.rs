//! Group commit: the tasks touched in one loop turn, the callers waiting on them, and the
//! commit that makes them durable together (or rolls them all back), and what each task does
//! once its new state is durable.

use super::{AckReply, ControlError, ControlReply, Runtime, StartError, StartReply, Started};
use crate::changes::TaskChange;
use crate::journal::{StoreError, TaskWrite};
use crate::machine::{self, Command};
use crate::model::{TaskId, TaskIdSet};
use std::collections::HashMap;
use std::sync::Arc;

/// A caller answered once the group is on disk.
pub(crate) enum Waiter {
    Start {
        reply: StartReply,
        id: TaskId,
        created: bool,
    },
    Control {
        reply: ControlReply,
        id: TaskId,
    },
    Ack {
        reply: AckReply,
    },
}

#[derive(Default)]
pub(crate) struct Group {
    touched: Vec<TaskId>,
    touched_set: TaskIdSet,
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

/// A group whose commit runs on the commit thread while the loop records the next one.
pub(crate) struct InFlight {
    handle: tokio::sync::oneshot::Receiver<Result<Vec<TaskWrite>, StoreError>>,
    group: Group,
    started: std::time::Instant,
    tasks: usize,
}

impl InFlight {
    /// The task this group created with this idempotency key, if it did.
    pub fn created_key(&self, key: &str) -> Option<TaskId> {
        self.group.keys.get(key).copied()
    }
}

/// The running commit's outcome once it ends; pending forever when none runs (for `select!`).
pub(crate) async fn finished(
    inflight: &mut Option<InFlight>,
) -> Result<Vec<TaskWrite>, StoreError> {
    match inflight {
        Some(inflight) => (&mut inflight.handle).await.unwrap_or_else(|_| {
            Err(StoreError::io(
                "committing a group",
                "the journal commit thread panicked or stopped",
            ))
        }),
        None => std::future::pending().await,
    }
}

impl Runtime {
    /// Writes everything recorded so far and waits for it: the running commit, then the
    /// current group, then what their ends started (recovery, shutdown).
    pub(super) async fn commit_group(&mut self) {
        while self.failed.is_none() && (self.inflight.is_some() || !self.group.is_empty()) {
            if self.inflight.is_none() {
                self.start_commit();
            }
            let outcome = finished(&mut self.inflight).await;
            self.finish_commit(outcome);
        }
    }

    /// Takes the current group and starts writing it (pipelined group commit: the loop goes
    /// on recording the next group meanwhile, so the journal's write and fsync no longer stall
    /// everything behind them). Its tasks are marked `committing`: nothing acts on their
    /// state until `finish_commit` says it is durable.
    pub(super) fn start_commit(&mut self) {
        debug_assert!(self.inflight.is_none(), "one commit at a time");
        let group = std::mem::take(&mut self.group);
        let writes: Vec<TaskWrite> = group
            .touched
            .iter()
            .filter_map(|id| {
                let active = self.active.get_mut(id)?;
                if active.unsaved.is_empty() {
                    return None;
                }
                active.committing = true;
                let events = std::mem::take(&mut active.unsaved);
                Some(TaskWrite {
                    task: active.task.clone(),
                    events,
                })
            })
            .collect();
        let tasks = writes.len();
        let handle = if writes.is_empty() {
            let (done, handle) = tokio::sync::oneshot::channel();
            let _ = done.send(Ok(Vec::new()));
            handle
        } else {
            self.gauges
                .groups
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.gauges
                .group_tasks
                .fetch_add(tasks as u64, std::sync::atomic::Ordering::Relaxed);
            let store = self.store.clone();
            self.committer
                .run(move || store.commit(&writes).map(|()| writes))
        };
        self.inflight = Some(InFlight {
            handle,
            group,
            started: std::time::Instant::now(),
            tasks,
        });
    }

    /// The running commit ended: answer its callers and start what its tasks need next; or,
    /// if it failed, roll it back together with the group recorded on top of it.
    pub(super) fn finish_commit(&mut self, outcome: Result<Vec<TaskWrite>, StoreError>) {
        let Some(InFlight {
            group,
            started,
            tasks,
            ..
        }) = self.inflight.take()
        else {
            return;
        };
        if tasks > 0 {
            let metrics = crate::metrics::global();
            let seconds = started.elapsed().as_secs_f64();
            metrics.journal_commit_seconds.observe(seconds);
            metrics.journal_group_tasks.observe(tasks as f64);
        }
        for id in &group.touched {
            if let Some(active) = self.active.get_mut(id) {
                active.committing = false;
            }
        }
        match outcome {
            Ok(writes) => {
                if let Some(mover) = &self.mover {
                    for write in writes.iter().filter(|write| write.task.is_settled()) {
                        mover.push(write.task.clone());
                    }
                }
                let committed: HashMap<TaskId, Arc<crate::model::Task>> = writes
                    .iter()
                    .map(|write| (write.task.id, write.task.clone()))
                    .collect();
                for waiter in group.waiters {
                    self.answer(waiter, &committed);
                }
                drop(committed);
                self.publish(writes);
                for id in group.touched {
                    self.after_commit(id);
                }
                self.run_effects();
            }
            Err(error) => {
                // The current group was recorded on top of this one's state: it goes too.
                let next = std::mem::take(&mut self.group);
                let mut waiters = group.waiters;
                waiters.extend(next.waiters);
                self.stop_on_failure(waiters, error)
            }
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
            self.changes.publish(TaskChange {
                seq: task.seq,
                kinds,
                task,
            });
        }
    }

    /// Answers with the state the commit made durable: the group recorded since may already
    /// have changed the task in memory.
    fn answer(&self, waiter: Waiter, committed: &HashMap<TaskId, Arc<crate::model::Task>>) {
        let snapshot = |id: &TaskId| match (committed.get(id), self.active.get(id)) {
            (Some(task), _) => Some(task.clone()),
            (None, Some(active)) if active.is_durable() => Some(active.task.clone()),
            _ => self.store.task(id).ok().flatten().map(Arc::new),
        };
        match waiter {
            Waiter::Start { reply, id, created } => {
                let answer = snapshot(&id)
                    .map(|task| Started { task, created })
                    .ok_or_else(|| {
                        StartError::Unavailable("the task could not be read back".into())
                    });
                let _ = reply.send(answer);
            }
            Waiter::Control { reply, id } => {
                let answer = snapshot(&id).map(Arc::unwrap_or_clone).ok_or_else(|| {
                    ControlError::Unavailable("the task could not be read back".into())
                });
                let _ = reply.send(answer);
            }
            Waiter::Ack { reply } => {
                let _ = reply.send(Ok(()));
            }
        }
    }

    /// The group may or may not have reached the disk: sled applies a batch to its cache
    /// before the flush and the fsync that failed, and keeps failing after an I/O error, so
    /// neither the store nor memory tells what is durable. Like PostgreSQL after a failed
    /// fsync, stop: tell every caller of the failed groups that the outcome is unknown (never
    /// "not done"), and let the process restart from what is on disk.
    fn stop_on_failure(&mut self, waiters: Vec<Waiter>, error: StoreError) {
        tracing::error!(%error, callers = waiters.len(), "Journal commit failed; stopping. What is durable is read back from disk at the next start.");
        for waiter in waiters {
            match waiter {
                Waiter::Start { reply, .. } => {
                    let _ = reply.send(Err(StartError::Interrupted));
                }
                Waiter::Control { reply, .. } => {
                    let _ = reply.send(Err(ControlError::Interrupted));
                }
                Waiter::Ack { reply } => {
                    let _ = reply.send(Err(ControlError::Interrupted));
                }
            }
        }
        self.failed.get_or_insert(error);
    }

    /// The task's new state is durable: start what it needs next, for each of its steps.
    pub(super) fn after_commit(&mut self, id: TaskId) {
        let Some(active) = self.active.get(&id) else {
            return;
        };
        let admitted = if active.task.status.is_terminal() {
            let holds = self.admission.holds(&id) || self.queue_view().position(&id).is_some();
            if holds {
                self.admission.release(&id)
            } else {
                Vec::new()
            }
        } else {
            // Slots of branches that ended go back (the task keeps one between its steps).
            self.admission.shrink(&id, active.task.running_steps())
        };
        for next in admitted {
            self.group.touch(next);
            self.advance(next);
        }
        let Some(active) = self.active.get_mut(&id) else {
            return;
        };
        // Act only on durable state: events recorded since this group's commit (a queued task
        // admitted just above, a webhook while it was written) belong to the next group, whose
        // commit brings the task back here.
        if !active.is_durable() {
            return;
        }
        let commands = machine::decide(&active.task);
        if commands.is_empty() && !active.lanes.iter().any(|(_, lane)| lane.calling) {
            tracing::info!(task_id = %id, status = active.task.status.as_str(), "Task finished.");
            let task = &active.task;
            crate::metrics::global()
                .tasks_finished(&task.workflow, task.status)
                .inc();
            for (step, _) in &active.lanes {
                self.timers.cancel(&(id, *step));
            }
            self.active.remove(&id);
            self.deadlines.cancel(&id);
            return;
        }
        // Steps that need nothing more (succeeded, or a chain moved past them) lose their
        // call state and timer.
        let timers = &mut self.timers;
        active.lanes.retain(|(step, lane)| {
            let needed = lane.calling || commands.iter().any(|c| c.step() == *step);
            if !needed {
                timers.cancel(&(id, *step));
            }
            needed
        });
        for command in commands {
            let step = command.step();
            let Some(active) = self.active.get(&id) else {
                return;
            };
            if active.calling(step) {
                continue;
            }
            let scheduled = self.timers.is_scheduled(&(id, step));
            // A wait set before the step's latest change (a status check of an attempt that
            // has since failed) is obsolete; one set since (a backoff after a failed call)
            // stands.
            let now = active.task.step(step).map(|s| (s.attempt, s.status));
            let obsolete = scheduled && active.lane_of(step).and_then(|l| l.timer_for) != now;
            match command {
                Command::Watch { .. } if !scheduled => {
                    let delay = self.next_check_delay(id, step);
                    self.schedule(id, step, delay);
                }
                Command::EnsurePrediction { .. } | Command::CancelPrediction { .. }
                    if !scheduled || obsolete =>
                {
                    self.timers.cancel(&(id, step));
                    self.on_due(id, step);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
impl Runtime {
    /// Commits everything recorded, waiting on this thread: tests drive the runtime by hand,
    /// without its loop.
    pub(super) fn commit_now(&mut self) {
        while self.failed.is_none() && (self.inflight.is_some() || !self.group.is_empty()) {
            if self.inflight.is_none() {
                self.start_commit();
            }
            let Some(inflight) = self.inflight.as_mut() else {
                return;
            };
            let (_, finished) = tokio::sync::oneshot::channel();
            let handle = std::mem::replace(&mut inflight.handle, finished);
            let outcome = handle.blocking_recv().unwrap_or_else(|_| {
                Err(StoreError::io(
                    "committing a group",
                    "the commit thread stopped",
                ))
            });
            self.finish_commit(outcome);
        }
    }
}
