//! What the intent to run a step and a task's failure do to its steps: the intent is taken
//! only for a step `decide` would run now; a failure ends every running sibling (marked for
//! its cancel at Replicate) and names the step with its stage and item.

use super::{expect_status, runnable, step_in, Ignored};
use crate::model::{Json, Millis, StepStatus, Task, TaskStatus};

/// Journals the intent to run `step` (on `model` when it is the stage's fallback).
pub(super) fn request(
    task: &mut Task,
    step: u32,
    attempt: u32,
    input: &Json,
    model: Option<&String>,
    at: Millis,
) -> Result<(), Ignored> {
    if !runnable(task).any(|s| s.index == step) {
        let status = task.step(step).ok_or(Ignored::NoSuchStep(step))?.status;
        return Err(Ignored::WrongState { step, status });
    }
    let s = step_in(task, step)?;
    expect_status(s, &[StepStatus::Pending])?;
    if attempt != s.attempt + 1 {
        return Err(Ignored::Stale { step });
    }
    s.status = StepStatus::Starting;
    s.attempt = attempt;
    s.input = Some(input.clone());
    s.model = model.cloned();
    s.prediction_id = None;
    s.output = None;
    s.kept_output = None;
    s.error = None;
    s.started_at = Some(at);
    s.completed_at = None;
    s.sent = None;
    task.status = TaskStatus::Running;
    Ok(())
}

/// Ends every unfinished step: a step past its intent may have a prediction running at
/// Replicate, which must be canceled before the task is settled.
pub(super) fn cancel_unfinished(task: &mut Task, at: Millis) {
    for s in task.steps.iter_mut().filter(|s| !s.status.is_terminal()) {
        if matches!(s.status, StepStatus::Starting | StepStatus::Processing) {
            s.cancel_pending = true;
            s.status = StepStatus::Canceled;
            s.completed_at = Some(at);
        }
    }
}

/// How a task's error names its step: `step 3`, or with its stage and item when the task has
/// stages of its own (`step 5 (variants, item 2)`).
pub(super) fn describe(task: &Task, step: u32) -> String {
    let Some(s) = task.step(step) else {
        return format!("step {step}");
    };
    match (task.stage_of(s), s.item_index) {
        (Some(plan), _) if task.stages.len() == 1 && plan.name == crate::model::LEGACY_STAGE => {
            format!("step {step}")
        }
        (Some(plan), Some(item)) => format!("step {step} ({}, item {item})", plan.name),
        (Some(plan), None) => format!("step {step} ({})", plan.name),
        (None, _) => format!("step {step}"),
    }
}
