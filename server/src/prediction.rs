//! `GET /v1/tasks/{id}/steps/{index}/prediction`: the step's current prediction as Replicate
//! has it now (status, logs, metrics, its page on replicate.com), fetched with the engine's
//! client under its `other_calls_per_minute` limit. Nothing is stored.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{Map, Value};
use std::time::Duration;
use stepwise_engine::model::TaskId;
use stepwise_engine::replicate::LookupError;

/// The keys passed through from Replicate's answer; a missing one reads `null`.
pub const KEYS: [&str; 10] = [
    "id",
    "status",
    "urls",
    "logs",
    "metrics",
    "error",
    "created_at",
    "started_at",
    "completed_at",
    "data_removed",
];

/// How long a request waits for a call slot before answering 503: a person is waiting, and
/// the runtime's own checks share the limit.
const MAX_SLOT_WAIT: Duration = Duration::from_secs(2);

pub async fn step_prediction(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers)?;
    let Ok(Path((id, index))) = path else {
        return Err(ApiError::NotFound("no task with that id".into()));
    };
    let shown: String = id.chars().take(64).collect();
    let no_task = || ApiError::NotFound(format!("no task with id '{shown}'"));
    let task_id: TaskId = id.parse().map_err(|_| no_task())?;
    let task = state.engine.task(&task_id).await?.ok_or_else(no_task)?;
    let step = index
        .parse::<u32>()
        .ok()
        .and_then(|index| task.step(index))
        .ok_or_else(|| {
            let shown: String = index.chars().take(16).collect();
            let total = task.steps.len();
            ApiError::NotFound(format!(
                "task '{task_id}' has no step '{shown}' (steps are 1 to {total})"
            ))
        })?;
    let Some(prediction_id) = step.prediction_id.as_deref() else {
        return Err(ApiError::NotFound(format!(
            "step {} of task '{task_id}' has no prediction yet",
            step.index
        )));
    };
    let answer = match state.engine.prediction(prediction_id, MAX_SLOT_WAIT).await {
        Ok(answer) => answer,
        Err(LookupError::RateLimited(wait)) => return Err(ApiError::RateLimited(wait)),
        Err(LookupError::Upstream(error)) => return Err(ApiError::Upstream(error.to_string())),
    };
    Ok(Json(pick(&answer)))
}

/// The `KEYS` of Replicate's answer, each `null` when absent.
fn pick(answer: &Value) -> Value {
    let picked: Map<String, Value> = KEYS
        .iter()
        .map(|key| {
            (
                key.to_string(),
                answer.get(key).cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    Value::Object(picked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_keys_pass_through_and_missing_ones_read_null() {
        let answer = json!({
            "id": "p1", "status": "processing", "urls": {"web": "https://r/p/p1", "get": "g"},
            "logs": "step 1\n", "input": {"secret": 1}, "version": "v",
        });
        let picked = pick(&answer);
        assert_eq!(picked["urls"]["web"], "https://r/p/p1");
        assert_eq!(picked["logs"], "step 1\n");
        assert_eq!(picked["metrics"], Value::Null);
        assert!(picked.get("input").is_none(), "only the listed keys");
        assert_eq!(picked.as_object().map(Map::len), Some(KEYS.len()));
    }
}
