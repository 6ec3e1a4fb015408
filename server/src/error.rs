//! `ApiError`: every error the API answers with, mapped to its status and JSON body
//! `{"error":{"code","message"}}` in one place. Internal causes are logged, not returned.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug)]
pub enum ApiError {
    InvalidRequest(String),
    Unauthorized,
    /// A webhook delivery whose signature or timestamp does not check out.
    BadSignature(String),
    NotFound(String),
    UnknownWorkflow(String),
    MethodNotAllowed,
    Conflict(String),
    TooLarge,
    /// A `Range` header that selects no bytes of the file (or more than one range).
    RangeNotSatisfiable,
    UnsupportedMediaType,
    Unavailable(String),
    /// Replicate answered an error (or could not be reached) on a call made for the request.
    Upstream(String),
    /// No Replicate call may go out for this long (our rate limit, or Replicate's 429).
    RateLimited(std::time::Duration),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::InvalidRequest(message) => {
                (StatusCode::BAD_REQUEST, "invalid_request", message.clone())
            }
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong `Authorization: Bearer <token>`".into(),
            ),
            ApiError::BadSignature(reason) => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!("webhook delivery refused: {reason}"),
            ),
            ApiError::NotFound(message) => (StatusCode::NOT_FOUND, "not_found", message.clone()),
            ApiError::UnknownWorkflow(name) => (
                StatusCode::NOT_FOUND,
                "unknown_workflow",
                format!("no workflow named '{name}' is configured"),
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method".into(),
            ),
            ApiError::Conflict(message) => (StatusCode::CONFLICT, "conflict", message.clone()),
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the request body is over the 1 MiB limit".into(),
            ),
            ApiError::RangeNotSatisfiable => (
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                "the `Range` header must name one range of bytes inside the file".into(),
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as `Content-Type: application/json`".into(),
            ),
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the engine cannot take writes right now; try again shortly".into(),
            ),
            ApiError::Upstream(message) => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!("Replicate: {message}"),
            ),
            ApiError::RateLimited(wait) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "rate_limited",
                format!(
                    "the Replicate rate limit allows no call now; try again in {} s",
                    retry_after_secs(*wait)
                ),
            ),
        }
    }
}

/// What a handler does when the engine stopped while writing its request (`Interrupted`):
/// whether the request took effect is unknown until the engine restarts from disk, so no
/// answer is given at all. The process exits (`stepwise serve` does on a failed journal) and
/// the client sees the connection close, as after a crash: a reason to retry with the same
/// `Idempotency-Key`, never a promise that nothing was done, which any error status would be.
pub async fn unanswered() -> ApiError {
    std::future::pending().await
}

/// Whole seconds for `Retry-After`, rounded up so a client never comes back too early.
fn retry_after_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Unavailable(cause) = &self {
            tracing::error!(%cause, "Answering 503.");
        }
        let (status, code, message) = self.parts();
        let mut response = (
            status,
            Json(json!({ "error": { "code": code, "message": message } })),
        )
            .into_response();
        if let ApiError::RateLimited(wait) = self {
            let seconds = axum::http::HeaderValue::from(retry_after_secs(wait));
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds);
        }
        response
    }
}

impl From<stepwise_engine::journal::StoreError> for ApiError {
    fn from(error: stepwise_engine::journal::StoreError) -> Self {
        match error {
            stepwise_engine::journal::StoreError::InvalidCursor => {
                ApiError::InvalidRequest("`cursor` is not one this server handed out".into())
            }
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}
