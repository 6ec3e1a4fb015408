//! Cancel, retry and timeouts: ending a task on request or when its time is up, making sure
//! its prediction stops at Replicate, and running a failed task again.

use super::group::Waiter;
use super::policy::human;
use super::{new_active, CancelOutcome, ControlError, ControlReply, Runtime};
use crate::event::Event;
use crate::metrics::Call;
use crate::model::{Task, TaskId, TaskStatus};
use crate::replicate::{ClientError, Phase};

impl Runtime {
    /// The task as the runtime knows it: in memory when unfinished, else from the store.
    fn current(&self, id: TaskId) -> Result<Task, ControlError> {
        if let Some(active) = self.active.get(&id) {
            return Ok(Task::clone(&active.task));
        }
        match self.store.task(&id) {
            Ok(Some(task)) => Ok(task),
            Ok(None) => Err(ControlError::NotFound),
            Err(error) => Err(ControlError::Unavailable(error.to_string())),
        }
    }

    pub(super) fn on_cancel(&mut self, id: TaskId, reply: ControlReply) {
        let task = match self.current(id) {
            Ok(task) => task,
            Err(error) => {
                let _ = reply.send(Err(error));
                return;
            }
        };
        match task.status {
            TaskStatus::Pending | TaskStatus::Running => {
                let at = crate::time::now_millis();
                self.record(
                    id,
                    Event::TaskCanceled {
                        reason: "canceled by request".into(),
                        at,
                    },
                );
                tracing::info!(task_id = %id, "Task canceled by request.");
            }
            TaskStatus::Canceled if !self.active.contains_key(&id) => {
                let _ = reply.send(Ok(task));
                return;
            }
            TaskStatus::Canceled => {}
            finished => {
                let message = format!(
                    "the task already {}; only an unfinished task can be canceled",
                    finished.as_str()
                );
                let _ = reply.send(Err(ControlError::Conflict(message)));
                return;
            }
        }
        self.group.waiters.push(Waiter::Control { reply, id });
    }

    pub(super) fn on_retry(&mut self, id: TaskId, reply: ControlReply) {
        let task = match self.current(id) {
            Ok(task) => task,
            Err(error) => {
                let _ = reply.send(Err(error));
                return;
            }
        };
        if task.status != TaskStatus::Failed {
            let message = format!(
                "only a failed task can be retried; this one is {}",
                task.status.as_str()
            );
            let _ = reply.send(Err(ControlError::Conflict(message)));
            return;
        }
        if task.steps.iter().any(|s| s.cancel_pending) {
            let message = "the task's other predictions are still being canceled at Replicate; \
                           retry once they are stopped (in a few seconds)";
            let _ = reply.send(Err(ControlError::Conflict(message.into())));
            return;
        }
        let timeout = self
            .workflows
            .get(&task.workflow)
            .and_then(|w| w.task_timeout);
        let now = crate::time::now_millis();
        if let Some(timeout) = timeout {
            if now - task.created_at >= timeout.as_millis() as i64 {
                let message = format!(
                    "the task is older than its workflow's task_timeout ({})",
                    crate::config::duration::format(timeout)
                );
                let _ = reply.send(Err(ControlError::Conflict(message)));
                return;
            }
        }
        if !self.active.contains_key(&id) {
            self.set_deadline(&task, now);
            self.active
                .insert(id, new_active(task, self.policy.poll_initial));
        }
        self.record(id, Event::TaskRetried { at: now });
        self.advance(id);
        tracing::info!(task_id = %id, "Task retried.");
        self.group.waiters.push(Waiter::Control { reply, id });
    }

    pub(super) fn on_task_deadline(&mut self, id: TaskId) {
        let Some(active) = self.active.get(&id) else {
            return;
        };
        if active.task.status.is_terminal() {
            return;
        }
        let timeout = self
            .workflows
            .get(&active.task.workflow)
            .and_then(|w| w.task_timeout);
        let reason = timeout.map_or("task timed out".into(), |t| {
            format!("task timed out after {}", human(t))
        });
        tracing::warn!(task_id = %id, %reason, "Task timed out; canceling it.");
        let at = crate::time::now_millis();
        self.record(id, Event::TaskCanceled { reason, at });
    }

    pub(super) fn on_cancel_done(
        &mut self,
        id: TaskId,
        step: u32,
        attempt: u32,
        result: Result<CancelOutcome, ClientError>,
    ) {
        let policy = self.policy;
        let Some(active) = self.active.get_mut(&id) else {
            return;
        };
        let ended = active.task.status.is_terminal();
        let current_id = active.task.step(step).and_then(|s| s.prediction_id.clone());
        let lane = active.lane(step);
        lane.calling = false;
        self.group.touch(id);
        let at = crate::time::now_millis();
        match result {
            Err(ClientError::Retryable {
                message,
                retry_after,
                ..
            }) => {
                lane.failures += 1;
                let delay = policy.backoff(lane.failures, retry_after);
                tracing::warn!(task_id = %id, step, %message, "Cancel failed; will retry.");
                super::count_retry(Call::Cancel);
                self.schedule(id, step, delay);
            }
            Ok(CancelOutcome::Found(prediction)) => {
                self.record_created(id, step, attempt, prediction.id);
            }
            // A step that timed out: its prediction may have finished just before the cancel.
            Ok(CancelOutcome::Answered(prediction))
                if !ended && prediction.phase() == Phase::Succeeded =>
            {
                self.observe(id, step, &prediction);
            }
            outcome if ended => {
                if let Err(ClientError::Final { status, detail }) = outcome {
                    tracing::warn!(task_id = %id, step, status, %detail, "Replicate refused the cancel; nothing left to stop.");
                }
                self.record(id, Event::CancelSettled { step, at });
            }
            _ => {
                let error = self.timeout_error(id, step);
                self.fail_attempt(id, step, current_id, error);
            }
        }
    }
}
