//! The runtime's lifecycle around the message loop: resuming unfinished tasks at start,
//! the periodic retention sweep, and the metrics derived from journaled events.

use super::{new_active, Runtime};
use crate::event::Event;
use crate::journal::StoreError;
use crate::model::{Task, TaskId};
use std::time::Duration;

impl Runtime {
    /// Deletes finished tasks past their retention, a bounded batch per turn so the loop
    /// never stalls for long.
    pub(super) async fn sweep(&mut self) {
        const BATCH: usize = 1000;
        let cutoff = crate::time::now_millis() - self.retention.as_millis() as i64;
        let store = self.store.clone();
        let keeper = self.keeper.clone();
        let swept = move || {
            let deleted = store.sweep(cutoff, BATCH)?;
            for id in deleted.iter().filter(|_| keeper.is_some()) {
                let dir = keeper.as_ref().map(|k| k.dir.join(id.to_string()));
                if let Some(dir) = dir.filter(|d| d.exists()) {
                    if let Err(error) = std::fs::remove_dir_all(&dir) {
                        tracing::warn!(task_id = %id, %error, "Could not delete a swept task's kept files.");
                    }
                }
            }
            Ok::<_, StoreError>(deleted.len())
        };
        match tokio::task::spawn_blocking(swept).await {
            Ok(Ok(0)) => {}
            Ok(Ok(deleted)) => {
                tracing::info!(deleted, "Finished tasks past their retention deleted.");
                let help = "Finished tasks deleted after their retention.";
                crate::metrics::global().add("stepwise_tasks_deleted_total", help, &[], deleted as f64);
            }
            Ok(Err(error)) => tracing::warn!(%error, "Retention sweep failed; will try again."),
            Err(error) => tracing::warn!(%error, "Retention sweep panicked; will try again."),
        }
    }

    pub(super) async fn recover(&mut self) -> Result<(), StoreError> {
        let store = self.store.clone();
        // Housekeeping: a task whose move failed is whole in the journal and is read there.
        match tokio::task::spawn_blocking(move || store.finish_moves()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(moved)) => tracing::info!(tasks = moved, "Settled tasks moved to the archive (a move had been cut short)."),
            Ok(Err(error)) => tracing::warn!(%error, "Moving settled tasks to the archive failed; will try at the next start."),
            Err(error) => tracing::warn!(%error, "Moving settled tasks to the archive panicked; will try at the next start."),
        }
        let store = self.store.clone();
        let mut tasks = tokio::task::spawn_blocking(move || store.active())
            .await
            .map_err(|e| StoreError::Io(e.to_string()))??;
        tracing::info!(tasks = tasks.len(), "Resuming unfinished tasks.");
        tasks.sort_by_key(|task| (task.created_at, task.id));
        let now = crate::time::now_millis();
        let order: Vec<TaskId> = tasks.iter().map(|task| task.id).collect();
        for task in tasks {
            // Tasks that had started keep their slot; the others queue again in creation order.
            let started = task.steps.iter().any(|s| s.status != crate::model::StepStatus::Pending);
            if started && !task.status.is_terminal() {
                self.admission.hold(task.id, &task.workflow);
            }
            self.set_deadline(&task, now);
            self.active.insert(task.id, new_active(task, false, Duration::ZERO));
        }
        for id in order {
            self.group.touch(id);
            self.advance(id);
        }
        while !self.group.is_empty() {
            self.commit_group().await;
        }
        self.gauges.unfinished.store(self.active.len(), std::sync::atomic::Ordering::Relaxed);
        tracing::info!(tasks = self.active.len(), "Unfinished tasks resumed.");
        Ok(())
    }

}

/// Metrics of a journaled event: starts, step durations by outcome, retried attempts.
pub(super) fn count_event(task: &Task, event: &Event) {
    let metrics = crate::metrics::global();
    let workflow = task.workflow.as_str();
    let (step, outcome) = match event {
        Event::StepSucceeded { step, .. } => (*step, "succeeded"),
        Event::StepFailed { step, .. } => (*step, "failed"),
        Event::AttemptFailed { step, .. } => {
            metrics.inc("stepwise_step_retries_total", "Prediction attempts run again.", &[("workflow", workflow)]);
            (*step, "retried")
        }
        _ => return,
    };
    let Some(started) = task.step(step).and_then(|s| s.started_at) else { return };
    let seconds = (event.at() - started).max(0) as f64 / 1000.0;
    let labels = [("workflow", workflow), ("outcome", outcome)];
    let help = "Time from a step's create intent to its end, by outcome.";
    metrics.observe("stepwise_step_duration_seconds", help, crate::metrics::SECONDS_BUCKETS, &labels, seconds);
}

