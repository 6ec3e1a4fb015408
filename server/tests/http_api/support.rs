//! The API in process, started the same way by every test: a simulated Replicate with the
//! test models, an engine on a memory store running the test workflows, and the router over
//! it. Requests go through `tower::ServiceExt::oneshot` (no socket), or, for the tests whose
//! bytes matter, over a loopback port where `stepwise_server::serve` serves the router as the
//! binary does.
//!
//! ```ignore
//! let app = spawn_app().await;
//! let reply = app.post_json("/v1/tasks", &tryon_body("mine", 1)).await;
//! assert_eq!(reply.status, StatusCode::CREATED);
//! ```

#[path = "../../../tests/e2e/support/fixtures.rs"]
mod fixtures;

pub use fixtures::*;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use replicate_sim::SimHandle;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use stepwise_engine::{Engine, StoreChoice};
use stepwise_server::Config;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long the simulator's test predictions take, in milliseconds.
const PROCESSING_MS: u64 = 20;

/// A running API: the simulator behind it, and the router to send requests to.
pub struct TestApp {
    pub sim: SimHandle,
    pub router: axum::Router,
    /// Stops the engine's runtime, and the HTTP server when `serve` started one.
    shutdown: CancellationToken,
}

/// The API with no API token.
pub async fn spawn_app() -> TestApp {
    launch(None).await
}

/// The API with `token` as its API token (`[server] api_token`).
pub async fn spawn_app_with_token(token: &str) -> TestApp {
    launch(Some(token)).await
}

/// The API over a simulator whose predictions take `processing_ms`, with `tweak` applied
/// to the config.
pub async fn spawn_app_with(processing_ms: u64, tweak: impl FnOnce(&mut Config)) -> TestApp {
    launch_with(None, processing_ms, tweak).await
}

async fn launch(api_token: Option<&str>) -> TestApp {
    launch_with(api_token, PROCESSING_MS, |_| {}).await
}

async fn launch_with(
    api_token: Option<&str>,
    processing_ms: u64,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    let sim = start_sim(processing_ms).await;
    // The data dir is never used: the journal is in memory.
    let toml = config_toml(Path::new("/nonexistent"), &sim.base_url(), "");
    let mut config = Config::from_toml(&toml, "the test config").unwrap();
    // Set here, whatever the environment running the tests holds (`from_toml` reads it).
    config.engine.replicate.api_token = Some(SIM_TOKEN.into());
    config.engine.replicate.webhook_secret = None;
    config.server.api_token = api_token.map(str::to_owned);
    tweak(&mut config);
    let shutdown = CancellationToken::new();
    let (engine, _runtime) = Engine::launch(
        &config.engine_config(),
        StoreChoice::Memory,
        shutdown.clone(),
    )
    .expect("the engine launches");
    let router = stepwise_server::router(engine, &config.server, shutdown.clone());
    TestApp {
        sim,
        router,
        shutdown,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An answer, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON; panics (showing it) if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} answered a body that is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

impl TestApp {
    /// Sends `request` to the router, and reads the whole answer.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    /// `GET path` as JSON, asserting a 200.
    pub async fn get_json(&self, path: &str) -> Value {
        let reply = self.get(path).await;
        assert_eq!(reply.status, StatusCode::OK, "GET {path}: {}", reply.json());
        reply.json()
    }

    /// `POST path` with `body` as JSON.
    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        let request = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(request).await
    }

    /// Starts a task and returns its id, asserting a 201.
    pub async fn start_ok(&self, body: &Value) -> String {
        let reply = self.post_json("/v1/tasks", body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json());
        reply.json()["id"].as_str().unwrap().to_owned()
    }

    /// Polls the task until it is terminal or `within` passes.
    pub async fn wait_until_finished(&self, id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let task = self.get_json(&format!("/v1/tasks/{id}")).await;
            let status = task["status"].as_str().unwrap_or("");
            if ["succeeded", "failed", "canceled"].contains(&status) {
                return task;
            }
            assert!(
                Instant::now() < deadline,
                "not finished in {within:?}: {task:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Serves the router on a loopback port, as the binary does, until the app is dropped;
    /// returns its `host:port`.
    pub async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        tokio::spawn(stepwise_server::serve(
            listener,
            self.router.clone(),
            self.shutdown.clone(),
        ));
        host
    }
}
