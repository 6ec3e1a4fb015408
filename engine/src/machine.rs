//! The workflow state machine: pure functions, no IO, no clock reads.
//! `create` builds a task from its first event, `apply` folds a later event into it (or says
//! why the event does not apply), `decide` says what should happen next. Replay, recovery and
//! live execution all go through these three functions.

use crate::event::Event;
use crate::model::{Json, Step, StepStatus, Task, TaskId, TaskStatus};

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

/// A new task from its `TaskCreated` event, which becomes sequence 1.
pub fn create(id: TaskId, event: &Event) -> Result<Task, Ignored> {
    let Event::TaskCreated {
        workflow,
        params,
        items,
        idempotency_key,
        at,
    } = event
    else {
        return Err(Ignored::NotFirstEvent);
    };
    let steps = items
        .iter()
        .enumerate()
        .map(|(i, item)| Step::new(i as u32 + 1, item.clone()))
        .collect();
    Ok(Task {
        id,
        workflow: workflow.clone(),
        status: TaskStatus::Pending,
        params: params.clone(),
        steps,
        output: None,
        error: None,
        idempotency_key: idempotency_key.clone(),
        created_at: *at,
        updated_at: *at,
        completed_at: None,
        seq: 1,
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
        Event::TaskCreated { .. } => return Err(Ignored::NotFirstEvent),
        Event::StepRequested {
            step,
            attempt,
            input,
            ..
        } => {
            check_is_current(task, *step)?;
            let s = step_in(task, *step)?;
            expect_status(s, &[StepStatus::Pending])?;
            if *attempt != s.attempt + 1 {
                return Err(Ignored::Stale { step: *step });
            }
            s.status = StepStatus::Starting;
            s.attempt = *attempt;
            s.input = Some(input.clone());
            s.prediction_id = None;
            s.output = None;
            s.kept_output = None;
            s.error = None;
            s.started_at = Some(at);
            s.completed_at = None;
            s.sent = None;
            task.status = TaskStatus::Running;
        }
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
            if *step as usize == task.steps.len() {
                task.status = TaskStatus::Succeeded;
                task.output = Some(output.clone());
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
            task.status = TaskStatus::Failed;
            task.error = Some(format!("step {step}: {error}"));
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
        Event::TaskRetried { .. } if task.status == TaskStatus::Failed => {
            let failed = task
                .steps
                .iter_mut()
                .find(|s| matches!(s.status, StepStatus::Failed | StepStatus::Canceled))
                .ok_or(Ignored::TaskFinished)?;
            failed.status = StepStatus::Pending;
            failed.prediction_id = None;
            failed.output = None;
            failed.kept_output = None;
            failed.completed_at = None;
            task.status = TaskStatus::Running;
            task.error = None;
            task.completed_at = None;
        }
        _ => return Err(Ignored::TaskFinished),
    }
    Ok(())
}

/// What should happen next for `task`; `None` once it is settled.
pub fn decide(task: &Task) -> Option<Command> {
    if task.status.is_terminal() {
        let step = task.steps.iter().find(|s| s.cancel_pending)?;
        return Some(Command::CancelPrediction {
            step: step.index,
            attempt: step.attempt,
            prediction_id: step.prediction_id.clone(),
            input: step.input.clone(),
        });
    }
    let step = task
        .steps
        .iter()
        .find(|s| s.status != StepStatus::Succeeded)?;
    match (step.status, &step.prediction_id, &step.input) {
        (StepStatus::Pending, _, _) => Some(Command::Request { step: step.index }),
        (StepStatus::Starting, None, Some(input)) => Some(Command::EnsurePrediction {
            step: step.index,
            attempt: step.attempt,
            input: input.clone(),
        }),
        (StepStatus::Starting | StepStatus::Processing, Some(id), _) => Some(Command::Watch {
            step: step.index,
            prediction_id: id.clone(),
        }),
        _ => None,
    }
}

fn check_is_current(task: &Task, step: u32) -> Result<(), Ignored> {
    match task
        .steps
        .iter()
        .find(|s| s.status != StepStatus::Succeeded)
    {
        Some(current) if current.index == step => Ok(()),
        Some(current) => Err(Ignored::WrongState {
            step,
            status: current.status,
        }),
        None => Err(Ignored::TaskFinished),
    }
}

fn step_in(task: &mut Task, index: u32) -> Result<&mut Step, Ignored> {
    task.step_mut(index).ok_or(Ignored::NoSuchStep(index))
}

fn expect_status(step: &Step, allowed: &[StepStatus]) -> Result<(), Ignored> {
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
