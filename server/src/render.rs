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
        "error": step.error,
        "started_at": time_or_null(step.started_at),
        "completed_at": time_or_null(step.completed_at),
    })
}

fn json_or_null(value: &Option<Json>) -> Value {
    value.as_ref().map(Json::value).unwrap_or(Value::Null)
}

fn time_or_null(at: Option<Millis>) -> Value {
    at.map(|at| Value::String(rfc3339(at))).unwrap_or(Value::Null)
}
