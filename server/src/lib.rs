//! stepwise-server: the HTTP API (axum on hyper) over an engine handle.
//!
//! Layout: `config` (the config file: `[server]` and the engine's sections), `routes` (handlers), `dashboard` (the embedded page and its assets), `files` (kept output files, streamed from disk), `render` (the
//! task's JSON shape, also used by the CLI), `live` (streams, long polls), `prediction` (a
//! step's prediction fetched from Replicate), `error` (every API error and its status in one place). `router` builds
//! the app so tests can drive it without a socket; `serve` runs it on a listener until the
//! shutdown token fires.

pub mod config;
mod dashboard;
mod error;
mod example;
mod files;
mod live;
mod prediction;
pub mod render;
mod routes;
mod webhook;

pub use error::ApiError;
pub use example::example_router;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method};
use axum::routing::{get, post};
use axum::Router;
pub use config::{Config, ServerConfig};
use std::sync::Arc;
use stepwise_engine::Engine;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Request bodies over this size are refused with 413 `too_large`.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler shares. axum clones the state for each request, so it is one `Arc`:
/// cloning the engine handle and the shutdown token field by field cost a few allocations,
/// a mutex and a dozen atomic operations per request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    engine: Engine,
    api_token: Option<Arc<str>>,
    /// Fired at shutdown: event streams and long polls end so the server can stop.
    shutdown: CancellationToken,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl Shared {
    /// Checks `Authorization: Bearer <token>` when a token is configured.
    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(expected) = &self.api_token else {
            return Ok(());
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

/// Compares without an early exit, so response time does not reveal a matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The API. `shutdown` ends open event streams and long polls (cancel it before waiting for
/// the server to stop).
pub fn router(engine: Engine, config: &ServerConfig, shutdown: CancellationToken) -> Router {
    let api_token = config.api_token.as_deref().map(Arc::from);
    let state = AppState(Arc::new(Shared {
        engine,
        api_token,
        shutdown,
    }));
    let router = Router::new()
        .route(
            "/v1/tasks",
            get(routes::list_tasks)
                .post(routes::start_task)
                .fallback(routes::method_not_allowed),
        )
        .route(
            "/v1/tasks/{id}",
            get(routes::get_task).fallback(routes::method_not_allowed),
        )
        .route(
            "/v1/tasks/{id}/events",
            get(routes::task_events).fallback(routes::method_not_allowed),
        )
        .route(
            "/v1/tasks/{id}/steps/{index}/prediction",
            get(prediction::step_prediction).fallback(routes::method_not_allowed),
        )
        .route(
            "/v1/tasks/{id}/journal",
            get(routes::task_journal).fallback(routes::method_not_allowed),
        )
        .route(
            "/v1/webhooks/replicate",
            post(webhook::replicate_webhook).fallback(routes::method_not_allowed),
        )
        .route(
            "/v1/files/{task}/{step}/{name}",
            get(files::kept_file).fallback(routes::method_not_allowed),
        )
        .route(
            "/v1/tasks/{id}/cancel",
            post(routes::cancel_task).fallback(routes::method_not_allowed),
        )
        .route(
            "/v1/tasks/{id}/retry",
            post(routes::retry_task).fallback(routes::method_not_allowed),
        )
        .route(
            "/",
            get(dashboard::page).fallback(routes::method_not_allowed),
        )
        .route(
            "/dashboard/{file}",
            get(dashboard::asset).fallback(routes::method_not_allowed),
        )
        .route(
            "/healthz",
            get(routes::healthz).fallback(routes::method_not_allowed),
        )
        .route(
            "/metrics",
            get(routes::metrics).fallback(routes::method_not_allowed),
        )
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    if config.cors_origins.is_empty() {
        return router;
    }
    let origins: Vec<HeaderValue> = config
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    router.layer(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::IF_NONE_MATCH,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([header::LOCATION, header::ETAG]),
    )
}

/// Serves `app` on `listener` until `shutdown` fires, then lets open requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // No Nagle: an answer written in more than one piece (a stream's events, a long poll's
    // late answer) must not wait for the client's delayed ACK, up to 40 ms on Linux.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "Could not set TCP_NODELAY on a connection.");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
