//! The example try-on page (`examples/frontend/index.html`), embedded in the binary and served
//! at `/example/` by `stepwise serve --simulate`, on the engine's own origin so the page needs
//! no CORS setting and no second server. Not part of [`crate::router`]: the binary merges
//! [`example_router`] in only in simulate mode (an operator's production API has no demo page).

use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// `GET /example/` (the page) and `GET /example` (a redirect there, so relative links work).
pub fn example_router() -> Router {
    Router::new().route("/example/", get(page)).route(
        "/example",
        get(|| async { Redirect::permanent("/example/") }),
    )
}

async fn page() -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-cache"),
        (
            header::HeaderName::from_static("x-content-type-options"),
            "nosniff",
        ),
    ];
    (headers, include_str!("../../examples/frontend/index.html")).into_response()
}
