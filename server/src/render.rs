//! The JSON shape of a task in API responses (see docs/API.md).

use serde_json::{json, Value};
use stepwise_engine::model::{Json, Millis, Step, Task};
use stepwise_engine::time::rfc3339;

/// The task; `queue_position` is its 1-based place while a concurrency cap holds it back.
pub fn task(task: &Task, queue_position: Option<usize>) -> Value {
    let total = task.steps.len() as u32;
    json!({
        "id": task.id.to_string(),
        "workflow": task.workflow,
        "status": task.status.as_str(),
        "queue_position": queue_position,
        "current_step": task.current_step(),
        "total_steps": total,
        // As the API promises: "2/3" while step 2 of 3 runs, "3/3" once done.
        "progress": format!("{}/{}", task.current_step(), total),
        "completed_steps": task.completed_steps(),
        "params": task.params.value(),
        "steps": task.steps.iter().map(step).collect::<Vec<_>>(),
        "output": json_or_null(&task.output),
        "kept_output": kept_output(task),
        "error": task.error,
        "created_at": rfc3339(task.created_at),
        "updated_at": rfc3339(task.updated_at),
        "completed_at": time_or_null(task.completed_at),
    })
}

fn step(step: &Step) -> Value {
    json!({
        "index": step.index,
        "status": step.status.as_str(),
        "item": step.item.value(),
        "attempt": step.attempt,
        "prediction_id": step.prediction_id,
        "input": json_or_null(&step.input),
        "output": json_or_null(&step.output),
        "kept_output": json_or_null(&step.kept_output),
        "error": step.error,
        "started_at": time_or_null(step.started_at),
        "completed_at": time_or_null(step.completed_at),
    })
}

/// The task's output with kept file URLs: the last step's, once the task succeeded.
fn kept_output(task: &Task) -> Value {
    match (task.status, task.steps.last()) {
        (stepwise_engine::model::TaskStatus::Succeeded, Some(last)) => json_or_null(&last.kept_output),
        _ => Value::Null,
    }
}

fn json_or_null(value: &Option<Json>) -> Value {
    value.as_ref().map(Json::value).unwrap_or(Value::Null)
}

fn time_or_null(at: Option<Millis>) -> Value {
    at.map(|at| Value::String(rfc3339(at))).unwrap_or(Value::Null)
}

/// One journal event, for histories (`GET /v1/tasks/{id}/journal`, `stepwise tasks show`).
pub fn event(seq: u64, event: &stepwise_engine::event::Event) -> Value {
    use stepwise_engine::event::Event;
    let mut out = json!({ "seq": seq, "kind": event.kind(), "at": rfc3339(event.at()) });
    let details = match event {
        Event::TaskCreated { workflow, items, idempotency_key, .. } => {
            json!({ "workflow": workflow, "items": items.len(), "idempotency_key": idempotency_key })
        }
        Event::StepRequested { step, attempt, input, .. } => {
            json!({ "step": step, "attempt": attempt, "input": input.value() })
        }
        Event::PredictionCreated { step, attempt, prediction_id, .. } => {
            json!({ "step": step, "attempt": attempt, "prediction_id": prediction_id })
        }
        Event::PredictionStarted { step, prediction_id, .. } => {
            json!({ "step": step, "prediction_id": prediction_id })
        }
        Event::StepSucceeded { step, prediction_id, output, .. } => {
            json!({ "step": step, "prediction_id": prediction_id, "output": output.value() })
        }
        Event::StepFailed { step, prediction_id, error, canceled, .. } => {
            json!({ "step": step, "prediction_id": prediction_id, "error": error, "canceled": canceled })
        }
        Event::AttemptFailed { step, prediction_id, error, .. } => {
            json!({ "step": step, "prediction_id": prediction_id, "error": error })
        }
        Event::TaskCanceled { reason, .. } => json!({ "reason": reason }),
        Event::CancelSettled { step, .. } => json!({ "step": step }),
        Event::TaskRetried { .. } => json!({}),
        Event::OutputsKept { step, prediction_id, kept_output, .. } => {
            json!({ "step": step, "prediction_id": prediction_id, "kept_output": kept_output.value() })
        }
    };
    if let (Some(out), Value::Object(details)) = (out.as_object_mut(), details) {
        out.extend(details);
    }
    out
}
