//! `POST /v1/webhooks/replicate`: Replicate's deliveries. Authenticated by their signature,
//! not by the API token (Replicate cannot send ours); answered only once their effect is
//! journaled, so a 2xx never loses news and a failed write makes Replicate retry.

use crate::error::ApiError;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use stepwise_engine::metrics::Delivery;
use stepwise_engine::model::TaskId;
use stepwise_engine::replicate::Prediction;
use stepwise_engine::ControlError;

/// The tag the engine put in each create's webhook URL.
#[derive(Deserialize)]
pub struct Tag {
    task: String,
    step: u32,
    attempt: u32,
}

pub async fn replicate_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    tag: Result<Query<Tag>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Some(key) = state.engine.webhook_key() else {
        return Err(ApiError::NotFound(
            "webhooks are not enabled on this server".into(),
        ));
    };
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge,
        _ => ApiError::InvalidRequest(format!("cannot read the body: {rejection}")),
    })?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = stepwise_engine::time::now_millis() / 1000;
    let verified = key.verify(
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        &body,
        now,
    );
    let result = if verified.is_ok() {
        Delivery::Verified
    } else {
        Delivery::Rejected
    };
    stepwise_engine::metrics::global()
        .webhook_deliveries(result)
        .inc();
    verified.map_err(|e| ApiError::BadSignature(e.to_string()))?;
    let Query(tag) = tag
        .map_err(|e| ApiError::InvalidRequest(format!("invalid webhook URL: {}", e.body_text())))?;
    let prediction: Prediction = serde_json::from_slice(&body)
        .map_err(|e| ApiError::InvalidRequest(format!("the body is not a prediction: {e}")))?;
    let Ok(task_id) = tag.task.parse::<TaskId>() else {
        return Ok(accepted("no such task"));
    };
    match state
        .engine
        .webhook(task_id, tag.step, tag.attempt, prediction)
        .await
    {
        Ok(()) => Ok(accepted("applied")),
        Err(ControlError::NotFound | ControlError::Conflict(_)) => Ok(accepted("nothing to do")),
        Err(ControlError::Unavailable(cause)) => Err(ApiError::Unavailable(cause)),
        Err(ControlError::Interrupted) => Err(crate::error::unanswered().await),
    }
}

/// A 200: Replicate must not retry a delivery we have taken in, even one that changed nothing.
fn accepted(outcome: &str) -> (StatusCode, Json<Value>) {
    (
        StatusCode::OK,
        Json(json!({ "ok": true, "outcome": outcome })),
    )
}
