//! The engine's first promise, checked from outside: Replicate never receives a create for a
//! step whose intent is not yet on disk. A store that takes 20 ms to commit widens every
//! window in which a create could overtake its intent, under a concurrency cap with starts
//! arriving while tasks finish (queued tasks admitted between commits).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use stepwise_engine::config::Config;
use stepwise_engine::event::Event;
use stepwise_engine::journal::{KvStore, ListPage, ListQuery, MemoryBackend, Store, StoreError, TaskWrite};
use stepwise_engine::model::{Millis, Task, TaskId, TaskStatus};
use stepwise_engine::{Engine, StartRequest, StoreChoice};

/// A memory store whose commits are slow, remembering when each step intent became durable.
struct SlowStore {
    inner: KvStore<MemoryBackend>,
    /// Input JSON text of each journaled intent -> when its commit returned (µs since epoch).
    durable_at: Mutex<HashMap<String, i64>>,
}

fn micros_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as i64
}

impl Store for SlowStore {
    fn commit(&self, group: &[TaskWrite]) -> Result<(), StoreError> {
        std::thread::sleep(Duration::from_millis(20));
        self.inner.commit(group)?;
        let now = micros_now();
        let mut durable = self.durable_at.lock().unwrap();
        for write in group {
            for (_, event) in &write.events {
                if let Event::StepRequested { input, .. } = event {
                    durable.insert(input.0.clone(), now);
                }
            }
        }
        Ok(())
    }
    fn task(&self, id: &TaskId) -> Result<Option<Task>, StoreError> {
        self.inner.task(id)
    }
    fn list(&self, query: &ListQuery) -> Result<ListPage, StoreError> {
        self.inner.list(query)
    }
    fn active(&self) -> Result<Vec<Task>, StoreError> {
        self.inner.active()
    }
    fn task_for_idempotency_key(&self, key: &str) -> Result<Option<TaskId>, StoreError> {
        self.inner.task_for_idempotency_key(key)
    }
    fn prediction_owner(&self, prediction_id: &str, since: Millis) -> Result<Option<TaskId>, StoreError> {
        self.inner.prediction_owner(prediction_id, since)
    }
    fn events(&self, id: &TaskId) -> Result<Vec<(u64, Event)>, StoreError> {
        self.inner.events(id)
    }
    fn sweep(&self, cutoff: Millis, limit: usize) -> Result<Vec<TaskId>, StoreError> {
        self.inner.sweep(cutoff, limit)
    }
    fn move_settled(&self, tasks: &[std::sync::Arc<Task>]) -> Result<usize, StoreError> {
        self.inner.move_settled(tasks)
    }
    fn finish_moves(&self) -> Result<usize, StoreError> {
        self.inner.finish_moves()
    }
}

const TASKS: usize = 60;
const STEPS: usize = 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_create_reaches_replicate_before_its_intent_is_durable() {
    let (sim, token) = common::simulator(5, 30).await;
    let toml = format!(
        "[replicate]\napi_base = \"{}\"\napi_token = \"{token}\"\npoll_initial_ms = 10\npoll_max_ms = 40\n\
         [workflows.capped]\nmodel = \"t/m\"\nmax_in_flight = 1\n[workflows.capped.input]\nn = \"{{{{item.n}}}}\"\n",
        sim.base_url()
    );
    let config = Config::from_toml(&toml, "test").unwrap();
    let store = Arc::new(SlowStore { inner: KvStore::in_memory(), durable_at: Mutex::default() });
    let shared: Arc<dyn Store> = store.clone();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (engine, runtime) = Engine::launch(&config, StoreChoice::Given(shared), shutdown.clone()).unwrap();

    // Starts keep arriving while earlier tasks finish, so some land in the same loop turn as
    // a finish that frees the slot (the turn whose settling admits a queued task).
    let mut ids = vec![];
    for t in 0..TASKS {
        let items = (0..STEPS).map(|s| serde_json::json!({ "n": format!("{t}-{s}") })).collect();
        let request = StartRequest { workflow: "capped".into(), params: serde_json::json!({}), items, idempotency_key: None };
        ids.push(engine.start(request).await.unwrap().task.id);
        // About one task's run time apart, varied, so starts meet finishes and admissions.
        tokio::time::sleep(Duration::from_millis(20 + (t as u64 * 37) % 50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &ids {
        while engine.task(id).unwrap().is_none_or(|t| t.status != TaskStatus::Succeeded) {
            assert!(Instant::now() < deadline, "tasks did not finish");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    let durable = store.durable_at.lock().unwrap().clone();
    let predictions = sim.predictions();
    assert_eq!(predictions.len(), TASKS * STEPS, "one prediction per step");
    for prediction in predictions {
        let input = prediction["input"].to_string();
        let created = stepwise_engine::time::parse_rfc3339_micros(prediction["created_at"].as_str().unwrap()).unwrap();
        let intent = durable.get(&input).unwrap_or_else(|| panic!("no journaled intent for {input}"));
        assert!(created >= *intent, "a create for {input} reached Replicate {} µs before its intent was durable", intent - created);
    }
    shutdown.cancel();
    runtime.await.unwrap().unwrap();
}
