//! The JSON shape of a task in API responses (see docs/API.md): the whole task, its summary
//! (no `steps`), one step, its progress, one journal event. Rendered straight from the
//! stored task through `Serialize` views: stored JSON texts go out as raw JSON, with no
//! intermediate `serde_json::Value` tree (status reads are the hottest path of the API).

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use stepwise_engine::model::{Json, Millis, Progress, Step, Task, TaskStatus};
use stepwise_engine::time::rfc3339;

#[derive(Serialize)]
pub struct TaskView<'a> {
    id: String,
    workflow: &'a str,
    status: &'static str,
    queue_position: Option<usize>,
    current_step: u32,
    total_steps: u32,
    /// The stages the task runs, in order (docs/API.md, "Stages").
    stages: Vec<StageView<'a>>,
    /// `"{completed_steps}/{total_steps}"`: steps succeeded over steps (docs/API.md, "Progress").
    progress: String,
    completed_steps: u32,
    params: &'a RawValue,
    /// Left out of summaries (the task list, the stream's messages after the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    steps: Option<Vec<StepView<'a>>>,
    output: Option<&'a RawValue>,
    kept_output: Option<&'a RawValue>,
    error: Option<&'a str>,
    created_at: String,
    updated_at: String,
    completed_at: Option<String>,
}

#[derive(Serialize)]
pub struct StageView<'a> {
    name: &'a str,
    model: Option<&'a str>,
    /// `once`, `each` (one step per item, chained) or `parallel` (one per item, at once).
    runs: &'static str,
    max_parallel: Option<u32>,
}

#[derive(Serialize)]
pub struct StepView<'a> {
    index: u32,
    status: &'static str,
    /// The name of the stage the step belongs to.
    stage: &'a str,
    /// 0-based index into the start request's `items`; null for a stage that runs once.
    item_index: Option<u32>,
    /// The model or version the current attempt runs on: the stage's, or its fallback's.
    model: Option<&'a str>,
    item: &'a RawValue,
    attempt: u32,
    prediction_id: Option<&'a str>,
    input: Option<&'a RawValue>,
    output: Option<&'a RawValue>,
    kept_output: Option<&'a RawValue>,
    error: Option<&'a str>,
    started_at: Option<String>,
    completed_at: Option<String>,
}

/// The task with its steps; `queue_position` is its 1-based place while a concurrency cap
/// holds it back.
pub fn task(task: &Task, queue_position: Option<usize>) -> TaskView<'_> {
    let mut view = summary(task, queue_position);
    view.steps = Some(task.steps.iter().map(|s| step(task, s)).collect());
    view
}

/// The task without its steps: what the list and the stream's later messages carry.
pub fn summary(task: &Task, queue_position: Option<usize>) -> TaskView<'_> {
    let Progress {
        completed,
        current,
        total,
    } = task.progress();
    // The task's output with kept file URLs: the last step's, once the task succeeded.
    let kept_output = match (task.status, task.steps.last()) {
        (TaskStatus::Succeeded, Some(last)) => raw_opt(&last.kept_output),
        _ => None,
    };
    TaskView {
        id: task.id.to_string(),
        workflow: &task.workflow,
        status: task.status.as_str(),
        queue_position,
        current_step: current,
        total_steps: total,
        stages: task
            .stages
            .iter()
            .map(|plan| StageView {
                name: &plan.name,
                model: plan.model.as_deref(),
                runs: match (plan.each, plan.parallel) {
                    (true, true) => "parallel",
                    (true, false) => "each",
                    (false, _) => "once",
                },
                max_parallel: plan.max_parallel,
            })
            .collect(),
        progress: format!("{completed}/{total}"),
        completed_steps: completed,
        params: raw(&task.params),
        steps: None,
        output: raw_opt(&task.output),
        kept_output,
        error: task.error.as_deref(),
        created_at: rfc3339(task.created_at),
        updated_at: rfc3339(task.updated_at),
        completed_at: time(task.completed_at),
    }
}

/// One step of `task`, as in the task's `steps`.
pub fn step<'a>(task: &'a Task, step: &'a Step) -> StepView<'a> {
    let plan = task.stage_of(step);
    StepView {
        index: step.index,
        status: step.status.as_str(),
        stage: plan.map_or("", |plan| plan.name.as_str()),
        item_index: step.item_index,
        model: step
            .model
            .as_deref()
            .or_else(|| plan.and_then(|plan| plan.model.as_deref())),
        item: raw(&step.item),
        attempt: step.attempt,
        prediction_id: step.prediction_id.as_deref(),
        input: raw_opt(&step.input),
        output: raw_opt(&step.output),
        kept_output: raw_opt(&step.kept_output),
        error: step.error.as_deref(),
        started_at: time(step.started_at),
        completed_at: time(step.completed_at),
    }
}

/// A stored JSON text as raw JSON. The engine only stores text it serialized itself, so a
/// parse failure means a damaged record, shown as `null`.
fn raw(json: &Json) -> &RawValue {
    serde_json::from_str(&json.0).unwrap_or_else(|_| null())
}

fn raw_opt(json: &Option<Json>) -> Option<&RawValue> {
    json.as_ref().map(raw)
}

fn null() -> &'static RawValue {
    // "null" is valid JSON, so this cannot fail.
    serde_json::from_str("null").expect("null is JSON")
}

fn time(at: Option<Millis>) -> Option<String> {
    at.map(rfc3339)
}

impl axum::response::IntoResponse for TaskView<'_> {
    /// The task as a JSON answer, written into a buffer sized for it: axum's `Json` starts at
    /// 128 bytes and grows a three-step task's ~1 KB three times, on the API's hottest paths.
    fn into_response(self) -> axum::response::Response {
        let steps = self.steps.as_ref().map_or(0, Vec::len);
        let mut body = Vec::with_capacity(384 + 320 * steps);
        // Writing to a Vec does no I/O, and a view holds strings, numbers and valid raw JSON
        // under string keys: serde_json has nothing to refuse.
        serde_json::to_writer(&mut body, &self).expect("a task view serializes");
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

/// A page of the task list.
#[derive(Serialize)]
pub struct PageView<'a> {
    pub tasks: Vec<TaskView<'a>>,
    pub next_cursor: Option<String>,
}

/// One journal event, for histories (`GET /v1/tasks/{id}/journal`, `stepwise tasks show`).
pub fn event(seq: u64, event: &stepwise_engine::event::Event) -> Value {
    use stepwise_engine::event::Event;
    let mut out = json!({ "seq": seq, "kind": event.kind(), "at": rfc3339(event.at()) });
    let details = match event {
        Event::TaskCreated {
            workflow,
            items,
            idempotency_key,
            ..
        } => {
            json!({ "workflow": workflow, "items": items.len(), "idempotency_key": idempotency_key })
        }
        Event::TaskPlanned {
            workflow,
            items,
            stages,
            idempotency_key,
            ..
        } => {
            let stages: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
            json!({ "workflow": workflow, "items": items.len(), "stages": stages, "idempotency_key": idempotency_key })
        }
        Event::FallbackRequested {
            step,
            attempt,
            input,
            model,
            ..
        } => {
            json!({ "step": step, "attempt": attempt, "input": input.value(), "model": model })
        }
        Event::StepRequested {
            step,
            attempt,
            input,
            ..
        } => {
            json!({ "step": step, "attempt": attempt, "input": input.value() })
        }
        Event::PredictionCreated {
            step,
            attempt,
            prediction_id,
            ..
        } => {
            json!({ "step": step, "attempt": attempt, "prediction_id": prediction_id })
        }
        Event::PredictionStarted {
            step,
            prediction_id,
            ..
        } => {
            json!({ "step": step, "prediction_id": prediction_id })
        }
        Event::StepSucceeded {
            step,
            prediction_id,
            output,
            ..
        } => {
            json!({ "step": step, "prediction_id": prediction_id, "output": output.value() })
        }
        Event::StepFailed {
            step,
            prediction_id,
            error,
            canceled,
            ..
        } => {
            json!({ "step": step, "prediction_id": prediction_id, "error": error, "canceled": canceled })
        }
        Event::AttemptFailed {
            step,
            prediction_id,
            error,
            ..
        } => {
            json!({ "step": step, "prediction_id": prediction_id, "error": error })
        }
        Event::TaskCanceled { reason, .. } => json!({ "reason": reason }),
        Event::CancelSettled { step, .. } => json!({ "step": step }),
        Event::TaskRetried { .. } => json!({}),
        Event::OutputsKept {
            step,
            prediction_id,
            kept_output,
            ..
        } => {
            json!({ "step": step, "prediction_id": prediction_id, "kept_output": kept_output.value() })
        }
        Event::CreateSent { step, attempt, .. } => json!({ "step": step, "attempt": attempt }),
    };
    if let (Some(out), Value::Object(details)) = (out.as_object_mut(), details) {
        out.extend(details);
    }
    out
}
