//! What a task needs next: the steps it may run now (the first unfinished stage's next step,
//! or every branch of a parallel stage within its `max_parallel`), and for each the call it
//! waits for. Pure: `apply` asks `runnable` too, so replay takes an intent only where a live
//! run could have made it.

use super::Command;
use crate::model::{Step, StepStatus, Task};

/// What should happen next for `task`, one command per step that needs something; empty
/// once it is settled (or while it waits for nothing but the answers of calls in flight).
pub fn decide(task: &Task) -> Vec<Command> {
    if task.status.is_terminal() {
        return task
            .steps
            .iter()
            .filter(|s| s.cancel_pending)
            .map(|step| Command::CancelPrediction {
                step: step.index,
                attempt: step.attempt,
                prediction_id: step.prediction_id.clone(),
                input: step.input.clone(),
            })
            .collect();
    }
    runnable(task)
        .filter_map(
            |step| match (step.status, &step.prediction_id, &step.input) {
                (StepStatus::Pending, _, _) => Some(Command::Request { step: step.index }),
                (StepStatus::Starting, None, Some(input)) => Some(Command::EnsurePrediction {
                    step: step.index,
                    attempt: step.attempt,
                    input: input.clone(),
                }),
                (StepStatus::Starting | StepStatus::Processing, Some(id), _) => {
                    Some(Command::Watch {
                        step: step.index,
                        prediction_id: id.clone(),
                    })
                }
                _ => None,
            },
        )
        .collect()
}

/// The steps of an unfinished task that may run now: in the first stage with a step not yet
/// succeeded, its first such step (a chain, or a stage that runs once), or for a parallel
/// stage every such step, pending ones only while fewer than `max_parallel` run.
pub(super) fn runnable(task: &Task) -> impl Iterator<Item = &Step> {
    let first = task
        .steps
        .iter()
        .find(|s| s.status != StepStatus::Succeeded);
    let (stage, parallel, cap) = match first.and_then(|s| Some((s, task.stage_of(s)?))) {
        Some((step, plan)) if plan.parallel => (
            step.stage,
            true,
            plan.max_parallel.map_or(usize::MAX, |max| max as usize),
        ),
        Some((step, _)) => (step.stage, false, 0),
        None => (0, false, 0),
    };
    let mut room = if parallel {
        cap.saturating_sub(task.running_in_stage(stage))
    } else {
        0
    };
    let branches = task
        .stage_steps(stage)
        .filter(move |_| parallel)
        .filter(|s| s.status != StepStatus::Succeeded)
        .filter(move |s| {
            if s.status != StepStatus::Pending {
                return true;
            }
            let admitted = room > 0;
            room = room.saturating_sub(1);
            admitted
        });
    first.filter(|_| !parallel).into_iter().chain(branches)
}
