//! The built-in dashboard: its page at `GET /` and its assets at `GET /dashboard/{file}`, all
//! embedded in the binary at compile time (no filesystem reads at run time, no CDN, no build
//! step). Unauthenticated, like the page: the assets are the same for everyone and hold no data.

use crate::error::ApiError;
use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::http::{header, HeaderName};
use axum::response::{IntoResponse, Response};

/// No script but the page's own files (no inline script, no `eval`), no plugins, no `<base>`
/// rewriting, and never inside a frame.
const CSP: &str = "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Every file under `/dashboard/`: name, content type, text. The page loads the scripts in
/// this order.
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "dashboard.css",
        CSS,
        include_str!("../dashboard/dashboard.css"),
    ),
    ("api.js", JS, include_str!("../dashboard/api.js")),
    ("list.js", JS, include_str!("../dashboard/list.js")),
    ("task.js", JS, include_str!("../dashboard/task.js")),
    ("steps.js", JS, include_str!("../dashboard/steps.js")),
    ("timeline.js", JS, include_str!("../dashboard/timeline.js")),
    ("live.js", JS, include_str!("../dashboard/live.js")),
    ("main.js", JS, include_str!("../dashboard/main.js")),
];

/// One embedded file with the headers every dashboard answer carries.
fn embedded(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (HeaderName::from_static("x-content-type-options"), "nosniff"),
        (HeaderName::from_static("x-frame-options"), "DENY"),
    ];
    (headers, body).into_response()
}

/// The page: markup only; its styles and scripts come from [`asset`].
pub async fn page() -> Response {
    embedded(HTML, include_str!("../dashboard/index.html"))
}

/// `GET /dashboard/{file}`: one of [`ASSETS`], or a 404 JSON error for any other name (a name
/// that does not even decode, too: it cannot be one of ours).
pub async fn asset(file: Result<Path<String>, PathRejection>) -> Result<Response, ApiError> {
    let Ok(Path(file)) = file else {
        return Err(ApiError::NotFound("no such dashboard file".into()));
    };
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .map(|&(_, content_type, body)| embedded(content_type, body))
        .ok_or_else(|| ApiError::NotFound(format!("no dashboard file named {file:?}")))
}
