//! When the journal cannot write (full disk, I/O error), writes answer 503 `unavailable`,
//! reads keep working, and nothing of a rejected request is ever visible.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use stepwise_engine::config::Config;
use stepwise_engine::journal::{CommitWith, KvStore, MemoryBackend, Store, StoreError, TaskWrite};
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

/// The door of a store whose commits can be held there and then failed: the moment a commit
/// is being written while the engine records the next group.
#[derive(Default)]
struct Door {
    /// (holding, commits waiting at the door, the verdict for held commits: fail or not)
    state: std::sync::Mutex<(bool, usize, bool)>,
    opened: std::sync::Condvar,
}

impl Door {
    fn set(&self, holding: bool, fail: bool) {
        let mut state = self.state.lock().unwrap();
        (state.0, state.2) = (holding, fail);
        self.opened.notify_all();
    }

    fn waiting(&self) -> usize {
        self.state.lock().unwrap().1
    }

    /// Called by each commit: waits while the door holds, then says whether to fail.
    fn pass(&self) -> Result<(), StoreError> {
        let mut state = self.state.lock().unwrap();
        state.1 += 1;
        while state.0 {
            state = self.opened.wait(state).unwrap();
        }
        state.1 -= 1;
        if state.2 {
            return Err(StoreError::Io("injected: the disk is gone".into()));
        }
        Ok(())
    }
}

/// Waits until `done`; on timeout, opens the door first (a commit held there would keep the
/// test's runtime from shutting down) and fails.
async fn wait_until(door: &Door, what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        if std::time::Instant::now() > deadline {
            door.set(false, true);
            panic!("timed out waiting until {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// The engine records the next group while one is being written (pipelined group commit).
/// If the write fails, what was recorded on top of it fails too: a repeated start of the
/// task being written, and a start of another, all answer 503 and leave nothing behind.
#[tokio::test]
async fn a_failed_commit_also_fails_the_group_recorded_while_it_was_written() {
    let config = Config::from_toml(CONFIG, "test").unwrap();
    let door = Arc::new(Door::default());
    let behind = door.clone();
    let store = CommitWith::new(KvStore::in_memory(), move |inner: &KvStore<MemoryBackend>, group: &[TaskWrite]| {
        behind.pass()?;
        inner.commit(group)
    });
    let shared: Arc<dyn Store> = Arc::new(store);
    let shutdown = CancellationToken::new();
    let (engine, runtime) = Engine::launch(&config, StoreChoice::Given(shared), shutdown.clone()).unwrap();
    let app = stepwise_server::router(engine.clone(), &config.server, shutdown.clone());

    door.set(true, false);
    let spawn_start = |key: &'static str| {
        let app = app.clone();
        tokio::spawn(async move { send(&app, start(key)).await })
    };
    let first = spawn_start("a");
    wait_until(&door, "the first start's commit is at the door", || door.waiting() == 1).await;
    // Spawned in this order on this one-thread runtime, they reach the engine in this order.
    let again = spawn_start("a");
    let other = spawn_start("b");
    let unfinished = || engine.gauges().unfinished.load(std::sync::atomic::Ordering::Relaxed);
    wait_until(&door, "both tasks are recorded while the first commit waits", || unfinished() == 2).await;
    assert_eq!(door.waiting(), 1, "one commit at a time");

    door.set(false, true);
    for (what, answer) in [("first", first), ("repeated", again), ("other", other)] {
        let (status, body) = answer.await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "the {what} start: {body}");
    }
    door.set(false, false);
    let (_, listed) = send(&app, get("/v1/tasks")).await;
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 0, "nothing of the failed groups: {listed}");
    wait_until(&door, "the rolled-back tasks leave memory", || unfinished() == 0).await;
    for key in ["a", "b"] {
        let (status, body) = send(&app, start(key)).await;
        assert_eq!(status, StatusCode::CREATED, "the key {key} was never recorded: {body}");
    }

    shutdown.cancel();
    runtime.await.unwrap().unwrap();
}
