//! `GET /v1/files/{task}/{step}/{name}`: kept output files, streamed from disk by
//! `tower_http`'s `ServeFile` (ranges, `ETag`/`Last-Modified` and 304s). Which path a name
//! maps to, and whether it may be served at all, is the engine's `kept_file` to decide;
//! every way of not finding a file answers the same JSON 404.

use crate::error::ApiError;
use crate::AppState;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use stepwise_engine::model::TaskId;
use tower_http::services::ServeFile;

/// A kept output file. Like reading a task, it needs no token: the unguessable task id in the
/// path is the capability.
pub async fn kept_file(
    State(state): State<AppState>,
    parts: Result<Path<(String, u32, String)>, PathRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound("no such file".into());
    let Path((task, step, name)) = parts.map_err(|_| not_found())?;
    let task: TaskId = task.parse().map_err(|_| not_found())?;
    let path = state
        .engine
        .kept_file(&task, step, &name)
        .ok_or_else(not_found)?;
    // `ServeFile` would open a folder as if it were a file and answer 200.
    let is_file = tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file());
    if !is_file {
        return Err(not_found());
    }
    let served = ServeFile::new_with_mime(&path, &content_type(&name))
        .try_call(request)
        .await;
    let response = match served {
        Ok(response) => response,
        // Deleted (by retention) since the check above, or unreadable.
        Err(error) => {
            if error.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), %error, "Cannot read a kept file.");
            }
            return Err(not_found());
        }
    };
    let mut response = match response.status() {
        StatusCode::NOT_FOUND => return Err(not_found()),
        StatusCode::RANGE_NOT_SATISFIABLE => {
            let mut error = ApiError::RangeNotSatisfiable.into_response();
            if let Some(range) = response.headers().get(header::CONTENT_RANGE) {
                error
                    .headers_mut()
                    .insert(header::CONTENT_RANGE, range.clone());
            }
            return Ok(error);
        }
        _ => response.map(Body::new),
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400, immutable"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

/// The type a kept file is served as, from its extension; unknown ones are plain bytes.
fn content_type(name: &str) -> mime::Mime {
    let extension = name.rsplit('.').next().map(str::to_ascii_lowercase);
    let essence = match extension.as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("mp4") => "video/mp4",
        Some("wav") => "audio/wav",
        Some("mp3") => "audio/mpeg",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    };
    // Every literal above is a valid media type; were one not, the file would go as bytes.
    essence.parse().unwrap_or(mime::APPLICATION_OCTET_STREAM)
}

#[cfg(test)]
mod tests {
    use super::content_type;

    #[test]
    fn content_types_follow_the_extension_case_insensitively() {
        for (name, expected) in [
            ("0-out.PNG", "image/png"),
            ("1-a.jpeg", "image/jpeg"),
            ("2-a.webp", "image/webp"),
            ("3-a.mp3", "audio/mpeg"),
            ("4-a.txt", "text/plain; charset=utf-8"),
            ("5-file", "application/octet-stream"),
            ("6-a.exe", "application/octet-stream"),
        ] {
            assert_eq!(content_type(name).as_ref(), expected, "{name}");
        }
    }
}
