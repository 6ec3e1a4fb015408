//! The workflow state machine: pure functions, no IO, no clock reads.
//! `create` builds a task from its first event, `apply` folds a later event into it (or says
//! why the event does not apply), `decide` says what should happen next. Replay, recovery and
//! live execution all go through these three functions.

use crate::event::Event;
use crate::model::{Json, StagePlan, Step, StepStatus, Task, TaskId, TaskStatus};

mod decide;
mod request;

pub use decide::decide;
use decide::runnable;
use request::{cancel_unfinished, describe, request};

/// Why an event was not applied. Stale or duplicate results are expected (a poll and a late
/// answer can race), so this is a value the runtime logs and drops, not an error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    #[error("the task has finished")]
    TaskFinished,
    #[error("the task has no step {0}")]
    NoSuchStep(u32),
    /// The step is not in a state that this event can move it from.
    #[error("step {step} is {}", status.as_str())]
    WrongState { step: u32, status: StepStatus },
    /// The event names another attempt or prediction than the step's current one.
    #[error("the event names another attempt or prediction of step {step}")]
    Stale { step: u32 },
    #[error("a task starts with its TaskCreated event")]
    NotFirstEvent,
    /// The event only applies to a finished task.
    #[error("the event applies only to a finished task")]
    NotFinished,
}

/// What the runtime should do next for a task.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Build the input of `step` and journal the intent to create its prediction.
    Request { step: u32 },
    /// Make sure a prediction exists for the journaled intent (create it, or after a restart
    /// find the one a previous run created), then journal its id.
    EnsurePrediction {
        step: u32,
        attempt: u32,
        input: Json,
    },
    /// Follow the prediction until it ends.
    Watch { step: u32, prediction_id: String },
    /// The task ended while this step's prediction may still run: cancel it at Replicate.
    /// Without an id (the create's answer was never journaled), find the prediction first.
    CancelPrediction {
        step: u32,
        attempt: u32,
        prediction_id: Option<String>,
        input: Option<Json>,
    },
}

impl Command {
    /// The step the command is for.
    pub fn step(&self) -> u32 {
        match self {
            Command::Request { step }
            | Command::EnsurePrediction { step, .. }
            | Command::Watch { step, .. }
            | Command::CancelPrediction { step, .. } => *step,
        }
    }
}

/// A new task from its first event (`TaskPlanned`, or `TaskCreated` from before stages:
/// one chained stage), which becomes sequence 1.
pub fn create(id: TaskId, event: &Event) -> Result<Task, Ignored> {
    let (workflow, params, items, stages, idempotency_key, at) = match event {
        Event::TaskPlanned {
            workflow,
            params,
            items,
            stages,
            idempotency_key,
            at,
        } => (workflow, params, items, stages.clone(), idempotency_key, at),
        Event::TaskCreated {
            workflow,
            params,
            items,
            idempotency_key,
            at,
        } => (
            workflow,
            params,
            items,
            vec![StagePlan::legacy(None)],
            idempotency_key,
            at,
        ),
        _ => return Err(Ignored::NotFirstEvent),
    };
    Ok(Task {
        id,
        workflow: workflow.clone(),
        status: TaskStatus::Pending,
        params: params.clone(),
        steps: crate::model::layout(&stages, items),
        output: None,
        error: None,
        idempotency_key: idempotency_key.clone(),
        created_at: *at,
        updated_at: *at,
        completed_at: None,
        seq: 1,
        stages,
    })
}

/// Folds `event` into `task`. On `Err` the task is unchanged.
pub fn apply(task: &mut Task, event: &Event) -> Result<(), Ignored> {
    if task.status.is_terminal() {
        apply_after_end(task, event)?;
    } else {
        apply_live(task, event)?;
    }
    task.seq += 1;
    task.updated_at = event.at();
    Ok(())
}

/// Events of an unfinished task.
fn apply_live(task: &mut Task, event: &Event) -> Result<(), Ignored> {
    let at = event.at();
    match event {
        Event::TaskCreated { .. } | Event::TaskPlanned { .. } => {
            return Err(Ignored::NotFirstEvent)
        }
        Event::StepRequested {
            step,
            attempt,
            input,
            ..
        } => request(task, *step, *attempt, input, None, at)?,
        Event::FallbackRequested {
            step,
            attempt,
            input,
            model,
            ..
        } => request(task, *step, *attempt, input, Some(model), at)?,
        Event::PredictionCreated {
            step,
            attempt,
            prediction_id,
            ..
        } => {
            let s = step_in(task, *step)?;
            expect_status(s, &[StepStatus::Starting])?;
            if *attempt != s.attempt || s.prediction_id.is_some() {
                return Err(Ignored::Stale { step: *step });
            }
            s.prediction_id = Some(prediction_id.clone());
        }
        Event::CreateSent { step, attempt, .. } => {
            let s = step_in(task, *step)?;
            expect_status(s, &[StepStatus::Starting])?;
            if *attempt != s.attempt || s.prediction_id.is_some() {
                return Err(Ignored::Stale { step: *step });
            }
            let first = s.sent.map_or(at, |sent| sent.first);
            s.sent = Some(crate::model::SendWindow { first, last: at });
        }
        Event::PredictionStarted {
            step,
            prediction_id,
            ..
        } => {
            let s = step_in(task, *step)?;
            expect_prediction(s, prediction_id)?;
            expect_status(s, &[StepStatus::Starting])?;
            s.status = StepStatus::Processing;
        }
        Event::StepSucceeded {
            step,
            prediction_id,
            output,
            ..
        } => {
            let s = step_in(task, *step)?;
            expect_prediction(s, prediction_id)?;
            expect_status(s, &[StepStatus::Starting, StepStatus::Processing])?;
            s.status = StepStatus::Succeeded;
            s.output = Some(output.clone());
            s.completed_at = Some(at);
            if task.steps.iter().all(|s| s.status == StepStatus::Succeeded) {
                // The last stage's output: its last step's.
                task.status = TaskStatus::Succeeded;
                task.output = task.steps.last().and_then(|last| last.output.clone());
                task.completed_at = Some(at);
            }
        }
        Event::StepFailed {
            step,
            prediction_id,
            error,
            canceled,
            ..
        } => {
            let s = step_in(task, *step)?;
            expect_attempt_result(s, prediction_id.as_deref())?;
            s.status = if *canceled {
                StepStatus::Canceled
            } else {
                StepStatus::Failed
            };
            s.error = Some(error.clone());
            s.completed_at = Some(at);
            let name = describe(task, *step);
            // Its running siblings (a parallel stage's other branches) stop with it.
            cancel_unfinished(task, at);
            task.status = TaskStatus::Failed;
            task.error = Some(format!("{name}: {error}"));
            task.completed_at = Some(at);
        }
        Event::AttemptFailed {
            step,
            prediction_id,
            error,
            ..
        } => {
            let s = step_in(task, *step)?;
            expect_attempt_result(s, prediction_id.as_deref())?;
            s.status = StepStatus::Pending;
            s.prediction_id = None;
            s.error = Some(error.clone());
        }
        Event::OutputsKept {
            step,
            prediction_id,
            kept_output,
            ..
        } => {
            let s = step_in(task, *step)?;
            expect_prediction(s, prediction_id)?;
            expect_status(s, &[StepStatus::Starting, StepStatus::Processing])?;
            s.kept_output = Some(kept_output.clone());
        }
        Event::TaskCanceled { reason, .. } => {
            for s in task.steps.iter_mut().filter(|s| !s.status.is_terminal()) {
                // A step past its intent may have a prediction running at Replicate.
                s.cancel_pending =
                    matches!(s.status, StepStatus::Starting | StepStatus::Processing);
                s.status = StepStatus::Canceled;
                s.completed_at = Some(at);
            }
            task.status = TaskStatus::Canceled;
            task.error = Some(reason.clone());
            task.completed_at = Some(at);
        }
        Event::CancelSettled { .. } | Event::TaskRetried { .. } => {
            return Err(Ignored::NotFinished)
        }
    }
    Ok(())
}

/// Events of a finished task: learning the id of a prediction that must still be canceled,
/// settling that cancel, or retrying a failed task.
fn apply_after_end(task: &mut Task, event: &Event) -> Result<(), Ignored> {
    match event {
        Event::PredictionCreated {
            step,
            attempt,
            prediction_id,
            ..
        } => {
            let s = step_in(task, *step)?;
            if !s.cancel_pending || s.prediction_id.is_some() || *attempt != s.attempt {
                return Err(Ignored::TaskFinished);
            }
            s.prediction_id = Some(prediction_id.clone());
        }
        Event::CancelSettled { step, .. } => {
            let s = step_in(task, *step)?;
            if !s.cancel_pending {
                return Err(Ignored::TaskFinished);
            }
            s.cancel_pending = false;
        }
        // Not while a failed branch's siblings are still being canceled: their predictions
        // could still run (and succeed) beside the ones the retry makes.
        Event::TaskRetried { .. }
            if task.status == TaskStatus::Failed
                && !task.steps.iter().any(|s| s.cancel_pending) =>
        {
            let mut any = false;
            for s in task
                .steps
                .iter_mut()
                .filter(|s| matches!(s.status, StepStatus::Failed | StepStatus::Canceled))
            {
                s.status = StepStatus::Pending;
                s.prediction_id = None;
                s.output = None;
                s.kept_output = None;
                s.completed_at = None;
                // A fresh run: the stage's retries (and fallback) count again from here.
                s.run_from = s.attempt + 1;
                any = true;
            }
            if !any {
                return Err(Ignored::TaskFinished);
            }
            task.status = TaskStatus::Running;
            task.error = None;
            task.completed_at = None;
        }
        _ => return Err(Ignored::TaskFinished),
    }
    Ok(())
}

pub(super) fn step_in(task: &mut Task, index: u32) -> Result<&mut Step, Ignored> {
    task.step_mut(index).ok_or(Ignored::NoSuchStep(index))
}

pub(super) fn expect_status(step: &Step, allowed: &[StepStatus]) -> Result<(), Ignored> {
    if allowed.contains(&step.status) {
        Ok(())
    } else {
        Err(Ignored::WrongState {
            step: step.index,
            status: step.status,
        })
    }
}

/// A result for the step's current attempt: its prediction, or (with `None`) the attempt's
/// failure before any prediction was recorded.
fn expect_attempt_result(step: &Step, prediction_id: Option<&str>) -> Result<(), Ignored> {
    match prediction_id {
        Some(id) => expect_prediction(step, id)?,
        None if step.prediction_id.is_some() => return Err(Ignored::Stale { step: step.index }),
        None => {}
    }
    expect_status(
        step,
        &[
            StepStatus::Pending,
            StepStatus::Starting,
            StepStatus::Processing,
        ],
    )
}

fn expect_prediction(step: &Step, prediction_id: &str) -> Result<(), Ignored> {
    if step.prediction_id.as_deref() == Some(prediction_id) {
        Ok(())
    } else {
        Err(Ignored::Stale { step: step.index })
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "machine/stages_tests.rs"]
mod stages_tests;
