//! When the journal cannot write (full disk, I/O error), writes answer 503 `unavailable`,
//! reads keep working, and nothing of a rejected request is ever visible.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use stepwise_engine::config::Config;
use stepwise_engine::journal::{KvStore, Store};
use stepwise_engine::{Engine, StoreChoice};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const CONFIG: &str = r#"
[replicate]
api_base = "http://127.0.0.1:9"
api_token = "unused"
[workflows.echo]
model = "test/echo"
[workflows.echo.input]
x = "{{item.x}}"
"#;

async fn send(app: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn start(key: &str) -> Request<Body> {
    Request::post("/v1/tasks")
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(Body::from(json!({"workflow": "echo", "items": [{"x": 1}]}).to_string()))
        .unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_failing_disk_refuses_writes_with_503_and_keeps_serving_reads() {
    let config = Config::from_toml(CONFIG, "test").unwrap();
    let store = Arc::new(KvStore::in_memory());
    let shared: Arc<dyn Store> = store.clone();
    let shutdown = CancellationToken::new();
    let (engine, runtime) = Engine::launch(&config, StoreChoice::Given(shared), shutdown.clone()).unwrap();
    let app = stepwise_server::router(engine, &config.server, shutdown.clone());

    let (status, first) = send(&app, start("a")).await;
    assert_eq!(status, StatusCode::CREATED);
    let first_id = first["id"].as_str().unwrap().to_owned();

    store.backend().fail_writes(true);
    let (status, error) = send(&app, start("b")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error["error"]["code"], "unavailable");
    let (status, read) = send(&app, get(&format!("/v1/tasks/{first_id}"))).await;
    assert_eq!(status, StatusCode::OK, "reads still work");
    assert_eq!(read["id"], first_id.as_str());
    let (status, listed) = send(&app, get("/v1/tasks")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 1, "the refused task is nowhere");

    store.backend().fail_writes(false);
    let (status, second) = send(&app, start("b")).await;
    assert_eq!(status, StatusCode::CREATED, "the refused key was never recorded: {second}");
    let (_, listed) = send(&app, get("/v1/tasks")).await;
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 2);

    shutdown.cancel();
    runtime.await.unwrap().unwrap();
}
