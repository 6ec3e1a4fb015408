//! When the journal cannot write (full disk, I/O error), the engine cannot tell what reached
//! the disk, so it stops: the requests it was writing get no answer (the process exits and
//! restarts from disk), later writes answer 503 `unavailable`, reads keep working, and every
//! request answered with an error left nothing behind.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use stepwise_engine::config::EngineConfig;
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
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn start(key: &str) -> Request<Body> {
    Request::post("/v1/tasks")
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(Body::from(
            json!({"workflow": "echo", "items": [{"x": 1}]}).to_string(),
        ))
        .unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

/// Launches an engine and its router on `store`.
fn launch(
    store: Arc<dyn Store>,
) -> (
    Engine,
    axum::Router,
    tokio::task::JoinHandle<Result<(), StoreError>>,
) {
    let config = EngineConfig::from_toml(CONFIG, "test").unwrap();
    let shutdown = CancellationToken::new();
    let (engine, runtime) =
        Engine::launch(&config, StoreChoice::Given(store), shutdown.clone()).unwrap();
    let app = stepwise_server::router(
        engine.clone(),
        &stepwise_server::ServerConfig::default(),
        shutdown,
    );
    (engine, app, runtime)
}

/// Waits (with a deadline) for the runtime to stop on its own, and returns its outcome.
async fn stopped(
    runtime: tokio::task::JoinHandle<Result<(), StoreError>>,
) -> Result<(), StoreError> {
    tokio::time::timeout(std::time::Duration::from_secs(20), runtime)
        .await
        .expect("the runtime stops after a failed commit")
        .expect("the runtime does not panic")
}

/// True when the request has not been answered (and, the engine being stopped, never will).
async fn unanswered(request: &mut tokio::task::JoinHandle<(StatusCode, Value)>) -> bool {
    tokio::time::timeout(std::time::Duration::from_millis(200), request)
        .await
        .is_err()
}

/// A commit fails after the store applied it to its cache (as sled's does when its flush or
/// fsync fails): nothing tells what is durable. The engine stops; the starts it was writing
/// get no answer at all (not a 503 that would read "not done"); a start after the failure is
/// refused with 503 and, after a restart, does not exist; reads keep working meanwhile.
#[tokio::test]
async fn a_commit_failing_after_it_applied_stops_the_engine_and_no_error_answer_is_a_lie() {
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let armed = fail.clone();
    let store = CommitWith::new(
        KvStore::in_memory(),
        move |inner: &KvStore<MemoryBackend>, group: &[TaskWrite]| {
            inner.commit(group)?;
            if armed.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::io(
                    "syncing a batch",
                    "injected: fsync failed after the batch was applied",
                ));
            }
            Ok(())
        },
    );
    let store: Arc<dyn Store> = Arc::new(store);
    let (_engine, app, runtime) = launch(store.clone());
    let (status, first) = send(&app, start("a")).await;
    assert_eq!(status, StatusCode::CREATED);
    let first_id = first["id"].as_str().unwrap().to_owned();

    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut writing = {
        let app = app.clone();
        tokio::spawn(async move { send(&app, start("b")).await })
    };
    assert!(
        stopped(runtime).await.is_err(),
        "the runtime ends with the journal's error"
    );
    assert!(
        unanswered(&mut writing).await,
        "the start being written gets no answer"
    );
    let (status, error) = send(&app, start("c")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
    assert_eq!(error["error"]["code"], "unavailable");
    let (status, read) = send(&app, get(&format!("/v1/tasks/{first_id}"))).await;
    assert_eq!(status, StatusCode::OK, "reads still work");
    assert_eq!(read["id"], first_id.as_str());

    // The restart: a new engine on what the store holds.
    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    let (_engine, app, runtime) = launch(store);
    let (status, body) = send(&app, start("c")).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the start answered 503 was never recorded: {body}"
    );
    let (status, body) = send(&app, start("b")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the unanswered start had reached the store, and runs: {body}"
    );
    drop(app);
    runtime.abort();
}

/// A disk that fails before anything is applied stops the engine the same way: the store
/// cannot say which kind of failure it was.
#[tokio::test]
async fn a_failing_disk_stops_the_engine_and_a_restart_finds_only_what_was_acknowledged() {
    let store = Arc::new(KvStore::in_memory());
    let (_engine, app, runtime) = launch(store.clone());
    let (status, _) = send(&app, start("a")).await;
    assert_eq!(status, StatusCode::CREATED);

    store.backend().fail_writes(true);
    let mut writing = {
        let app = app.clone();
        tokio::spawn(async move { send(&app, start("b")).await })
    };
    assert!(stopped(runtime).await.is_err());
    assert!(
        unanswered(&mut writing).await,
        "the start being written gets no answer"
    );
    let (_, listed) = send(&app, get("/v1/tasks")).await;
    assert_eq!(
        listed["tasks"].as_array().unwrap().len(),
        1,
        "nothing of the failed write is visible: {listed}"
    );

    store.backend().fail_writes(false);
    let (_engine, app, runtime) = launch(store);
    let (status, body) = send(&app, start("a")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the acknowledged task is there: {body}"
    );
    let (status, body) = send(&app, start("b")).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the failed write left nothing: {body}"
    );
    drop(app);
    runtime.abort();
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
            return Err(StoreError::io("writing", "injected: the disk is gone"));
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
/// If the write fails, what was recorded on top of it is lost with it: a repeated start of the
/// task being written, and a start of another, all stay unanswered, and the engine stops.
#[tokio::test]
async fn a_failed_commit_also_stops_the_group_recorded_while_it_was_written() {
    let door = Arc::new(Door::default());
    let behind = door.clone();
    let store = CommitWith::new(
        KvStore::in_memory(),
        move |inner: &KvStore<MemoryBackend>, group: &[TaskWrite]| {
            behind.pass()?;
            inner.commit(group)
        },
    );
    let (engine, app, runtime) = launch(Arc::new(store));

    door.set(true, false);
    let spawn_start = |key: &'static str| {
        let app = app.clone();
        tokio::spawn(async move { send(&app, start(key)).await })
    };
    let first = spawn_start("a");
    wait_until(&door, "the first start's commit is at the door", || {
        door.waiting() == 1
    })
    .await;
    // Spawned in this order on this one-thread runtime, they reach the engine in this order.
    let again = spawn_start("a");
    let other = spawn_start("b");
    let unfinished = || {
        engine
            .gauges()
            .unfinished
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    wait_until(
        &door,
        "both tasks are recorded while the first commit waits",
        || unfinished() == 2,
    )
    .await;
    assert_eq!(door.waiting(), 1, "one commit at a time");

    door.set(false, true);
    assert!(stopped(runtime).await.is_err());
    for (what, mut answer) in [("first", first), ("repeated", again), ("other", other)] {
        assert!(
            unanswered(&mut answer).await,
            "the {what} start got an answer"
        );
    }
}
