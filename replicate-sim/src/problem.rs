//! Every error the simulator answers with, mapped in one place to the bodies Replicate sends:
//! RFC 7807 problem details (`application/problem+json`) with `status`, `detail` and usually
//! `title` (Replicate's 404 has none), plus `invalid_fields` on a 422 input-validation error
//! and `retry_after` on a 429.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ApiError {
    #[error("unauthenticated")]
    Unauthenticated,
    #[error("not found")]
    NotFound,
    #[error("malformed request: {0}")]
    BadRequest(String),
    /// A body that parsed but breaks the request schema.
    #[error("validation failed on {field}: {description}")]
    Validation {
        kind: &'static str,
        field: String,
        description: String,
    },
    #[error("invalid version")]
    InvalidVersion,
    /// A bad header or query value (`Prefer`, `Cancel-After`, list filters).
    #[error("{title}: {detail}")]
    Unprocessable { title: &'static str, detail: String },
    /// A rate-limit answer (real limits, a storm or an injected 429).
    #[error("throttled; retry after {retry_after} s")]
    Throttled { retry_after: u64 },
    /// A server error injected by the fault switches.
    #[error("injected {status} error")]
    Injected { status: u16 },
    /// The state file could not be written (the change is not durable).
    #[error("storage failed: {0}")]
    Storage(String),
}

impl ApiError {
    pub fn validation(kind: &'static str, field: &str, description: impl Into<String>) -> Self {
        ApiError::Validation {
            kind,
            field: field.to_string(),
            description: description.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation { .. }
            | ApiError::InvalidVersion
            | ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Injected { status } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            ApiError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn body(&self) -> Value {
        let status = self.status().as_u16();
        match self {
            ApiError::Unauthenticated => json!({
                "title": "Unauthenticated",
                "detail": "You did not pass a valid authentication token",
                "status": status,
            }),
            ApiError::NotFound => json!({
                "detail": "The requested resource could not be found.",
                "status": status,
            }),
            ApiError::BadRequest(detail) => json!({
                "title": "Bad request",
                "detail": detail,
                "status": status,
            }),
            ApiError::Validation {
                kind,
                field,
                description,
            } => json!({
                "title": "Input validation failed",
                "detail": format!("- {field}: {description}\n"),
                "status": status,
                "invalid_fields": [{"type": kind, "field": field, "description": description}],
            }),
            ApiError::InvalidVersion => json!({
                "title": "Invalid version or not permitted",
                "detail": "The specified version does not exist (or perhaps you don't have permission to use it?)",
                "status": status,
            }),
            ApiError::Unprocessable { title, detail } => json!({
                "title": title,
                "detail": detail,
                "status": status,
            }),
            ApiError::Throttled { retry_after } => json!({
                "detail": format!("Request was throttled. Your rate limit resets in ~{retry_after}s."),
                "status": status,
                "retry_after": retry_after,
            }),
            ApiError::Storage(detail) => json!({
                "title": "Internal Server Error",
                "detail": detail,
                "status": status,
            }),
            ApiError::Injected { .. } => {
                let reason = self.status().canonical_reason().unwrap_or("Server error");
                json!({
                    "title": reason,
                    "detail": format!("{reason} (injected by replicate-sim)"),
                    "status": status,
                })
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), self.body().to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthenticated_body_matches_the_recorded_one() {
        assert_eq!(
            ApiError::Unauthenticated.body(),
            json!({"title":"Unauthenticated","detail":"You did not pass a valid authentication token","status":401})
        );
    }

    #[test]
    fn throttled_body_matches_the_recorded_one() {
        assert_eq!(
            ApiError::Throttled { retry_after: 5 }.body(),
            json!({"detail":"Request was throttled. Your rate limit resets in ~5s.","status":429,"retry_after":5})
        );
    }

    #[test]
    fn injected_errors_carry_their_status() {
        let body = ApiError::Injected { status: 502 }.body();
        assert_eq!(body["status"], 502);
        assert_eq!(body["title"], "Bad Gateway");
    }

    #[test]
    fn validation_errors_list_the_invalid_field() {
        let body = ApiError::validation("required", "(root)", "input is required").body();
        assert_eq!(body["status"], 422);
        assert_eq!(body["invalid_fields"][0]["field"], "(root)");
        assert_eq!(body["detail"], "- (root): input is required\n");
    }
}
