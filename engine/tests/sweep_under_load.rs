//! Retention under sustained load: with starts arriving all the time, a journal commit is
//! running at almost every moment (the loop records the next group while one is written).
//! The retention sweep must still get its turn, or a busy engine never deletes anything.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stepwise_engine::config::EngineConfig;
use stepwise_engine::journal::{CommitWith, KvStore, MemoryBackend, Store, TaskWrite};
use stepwise_engine::model::TaskStatus;
use stepwise_engine::{Engine, StartRequest, StoreChoice};

fn request(n: usize) -> StartRequest {
    let items = vec![serde_json::json!({ "n": n.to_string() })];
    StartRequest {
        workflow: "echo".into(),
        params: serde_json::json!({}),
        items,
        idempotency_key: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_tasks_are_swept_while_commits_never_stop() {
    let (sim, token) = common::simulator(0, 0).await;
    let toml = format!(
        "[replicate]\napi_base = \"{}\"\napi_token = \"{token}\"\npoll_initial_ms = 10\npoll_max_ms = 40\n\
         [storage]\nretention = \"1s\"\n[workflows.echo]\nmodel = \"t/m\"\n[workflows.echo.input]\nn = \"{{{{item.n}}}}\"\n",
        sim.base_url()
    );
    let config = EngineConfig::from_toml(&toml, "test").unwrap();
    // A disk that takes 10 ms per commit: with eight clients starting tasks back to back, the
    // next group always has something in it when a commit ends.
    let store = CommitWith::new(
        KvStore::in_memory(),
        |inner: &KvStore<MemoryBackend>, group: &[TaskWrite]| {
            std::thread::sleep(Duration::from_millis(10));
            inner.commit(group)
        },
    );
    let shared: Arc<dyn Store> = Arc::new(store);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (engine, runtime) =
        Engine::launch(&config, StoreChoice::Given(shared), shutdown.clone()).unwrap();

    let first = engine.start(request(0)).await.unwrap().task.id;
    let deadline = Instant::now() + Duration::from_secs(20);
    while engine
        .task(&first)
        .await
        .unwrap()
        .is_none_or(|task| task.status != TaskStatus::Succeeded)
    {
        assert!(Instant::now() < deadline, "the first task did not finish");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let load = Arc::new(AtomicBool::new(true));
    let mut clients = vec![];
    for client in 0..8 {
        let (engine, load) = (engine.clone(), load.clone());
        clients.push(tokio::spawn(async move {
            let mut started = 0;
            while load.load(Ordering::Relaxed) {
                engine
                    .start(request(1000 * (client + 1) + started))
                    .await
                    .unwrap();
                started += 1;
            }
            started
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while engine.task(&first).await.unwrap().is_some() {
        if Instant::now() > deadline {
            load.store(false, Ordering::Relaxed);
            panic!("a task finished 1 s after its start was never swept while the load ran");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    load.store(false, Ordering::Relaxed);
    let mut started = 0;
    for client in clients {
        started += client.await.unwrap();
    }
    assert!(
        started > 100,
        "the load kept commits busy: {started} starts"
    );
    shutdown.cancel();
    runtime.await.unwrap().unwrap();
}
