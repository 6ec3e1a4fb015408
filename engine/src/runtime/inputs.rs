//! What a step is asked to run: its input, built from its stage's template over the task's
//! params, its item, the step before it and earlier stages' outputs; the model it runs on
//! (its stage's, or the fallback once the stage's retries are spent); and the stages a new
//! task records. Pure functions of the task and the workflow.

use crate::event::Event;
use crate::model::{Json, StagePlan, Step, Task};
use crate::workflow::{Scope, Stage, Target, Workflow};
use std::collections::HashMap;

/// The event that starts `step`: its intent with the built input (on the stage's fallback
/// once its retries are spent), or its failure when the input cannot be built (e.g. the
/// previous output lacks a templated path).
pub(super) fn request_step(workflows: &HashMap<String, Workflow>, task: &Task, step: u32) -> Event {
    request_step_on(workflows, task, step, false)
}

/// `request_step`, on the stage's fallback now when `fallback_now` (Replicate refused the
/// stage's own model outright, so its retries would be refused too).
pub(super) fn request_step_on(
    workflows: &HashMap<String, Workflow>,
    task: &Task,
    step: u32,
    fallback_now: bool,
) -> Event {
    let at = crate::time::now_millis();
    let fail = |error: String| Event::StepFailed {
        step,
        prediction_id: None,
        error,
        canceled: false,
        at,
    };
    let Some(workflow) = workflows.get(&task.workflow) else {
        return fail(format!(
            "workflow '{}' is no longer configured",
            task.workflow
        ));
    };
    let Some(current) = task.step(step) else {
        return fail("no such step".into());
    };
    let Some((stage, plan)) = stage_of(workflow, task, current) else {
        return fail(format!(
            "the stages of workflow '{}' changed since the task started",
            task.workflow
        ));
    };
    // A chain reads the step before; a parallel branch the step before its stage.
    let previous = if plan.parallel {
        task.steps.iter().rev().find(|s| s.stage < current.stage)
    } else {
        step.checked_sub(1).and_then(|prev| task.step(prev))
    };
    let previous_output = previous
        .and_then(|prev| prev.output.as_ref())
        .map(Json::value);
    let previous_kept = previous
        .and_then(|prev| prev.kept_output.as_ref())
        .map(Json::value);
    let (params, item) = (task.params.value(), current.item.value());
    let stage_outputs = |index: usize, kept: bool| -> Vec<serde_json::Value> {
        task.stage_steps(index as u32)
            .map(|s| {
                let output = if kept {
                    s.kept_output.as_ref().or(s.output.as_ref())
                } else {
                    s.output.as_ref()
                };
                output.map_or(serde_json::Value::Null, Json::value)
            })
            .collect()
    };
    let scope = Scope {
        params: &params,
        item: &item,
        previous_output: previous_output.as_ref(),
        previous_kept_output: previous_kept.as_ref(),
        stage_outputs: &stage_outputs,
    };
    let item_index = current.item_index.map(|i| i as usize);
    let input = match workflow.step_input(current.stage as usize, item_index, &scope) {
        Ok(input) => Json::from_value(&input),
        Err(error) => return fail(format!("cannot build the input: {error}")),
    };
    let tries = (current.attempt + 1).saturating_sub(current.run_from) + 1;
    let fallback = stage
        .fallback
        .as_ref()
        .filter(|_| fallback_now || tries > stage.step_retries + 1);
    step_requested(task, step, input, fallback.map(|t| t.label().to_owned()))
}

/// The intent to run `step` with `input`, already built; on `fallback` when given.
pub(super) fn step_requested(
    task: &Task,
    step: u32,
    input: Json,
    fallback: Option<String>,
) -> Event {
    let attempt = task.step(step).map_or(0, |current| current.attempt) + 1;
    let at = crate::time::now_millis();
    match fallback {
        Some(model) => Event::FallbackRequested {
            step,
            attempt,
            input,
            model,
            at,
        },
        None => Event::StepRequested {
            step,
            attempt,
            input,
            at,
        },
    }
}

/// The configured stage a step belongs to, with the task's plan of it; `None` when the
/// workflow's stages no longer match the ones the task started with.
pub(super) fn stage_of<'a>(
    workflow: &'a Workflow,
    task: &'a Task,
    step: &Step,
) -> Option<(&'a Stage, &'a StagePlan)> {
    let plan = task.stage_of(step)?;
    let stage = workflow.stages.get(step.stage as usize)?;
    (stage.name == plan.name).then_some((stage, plan))
}

/// Where the step's current attempt runs: its fallback when it recorded one, else its stage's
/// model or version.
pub(super) fn target_of(workflow: &Workflow, task: &Task, step: &Step) -> Option<Target> {
    if let Some(label) = &step.model {
        return Some(if label.contains('/') {
            Target::Model(label.clone())
        } else {
            Target::Version(label.clone())
        });
    }
    stage_of(workflow, task, step).map(|(stage, _)| stage.target.clone())
}

/// The stages a new task of `workflow` runs, as its first event records them.
pub(super) fn plan(workflow: &Workflow) -> Vec<StagePlan> {
    workflow
        .stages
        .iter()
        .map(|stage| StagePlan {
            name: stage.name.clone(),
            model: Some(stage.target.label().to_owned()),
            each: stage.each,
            parallel: stage.parallel,
            max_parallel: stage.max_parallel,
        })
        .collect()
}
