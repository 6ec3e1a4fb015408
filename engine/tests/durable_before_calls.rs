//! The engine's first promise, checked from outside: Replicate never receives a create for a
//! step whose intent is not yet on disk. A store that takes 20 ms to commit widens every
//! window in which a create could overtake its intent, under a concurrency cap with starts
//! arriving while tasks finish (queued tasks admitted between commits).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use stepwise_engine::config::EngineConfig;
use stepwise_engine::event::Event;
use stepwise_engine::journal::{CommitWith, KvStore, MemoryBackend, Store, TaskWrite};
use stepwise_engine::model::TaskStatus;
use stepwise_engine::{Engine, StartRequest, StoreChoice};

fn micros_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// Input JSON text of each journaled intent -> when its commit returned (µs since epoch).
type DurableAt = Arc<Mutex<HashMap<String, i64>>>;

/// A memory store whose commits are slow, remembering when each step intent became durable.
fn slow_store(durable_at: DurableAt) -> impl Store {
    CommitWith::new(
        KvStore::in_memory(),
        move |inner: &KvStore<MemoryBackend>, group: &[TaskWrite]| {
            std::thread::sleep(Duration::from_millis(20));
            inner.commit(group)?;
            let now = micros_now();
            let mut durable = durable_at.lock().unwrap();
            for write in group {
                for (_, event) in &write.events {
                    if let Event::StepRequested { input, .. } = event {
                        durable.insert(input.0.clone(), now);
                    }
                }
            }
            Ok(())
        },
    )
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
    let config = EngineConfig::from_toml(&toml, "test").unwrap();
    let durable_at = DurableAt::default();
    let shared: Arc<dyn Store> = Arc::new(slow_store(durable_at.clone()));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (engine, runtime) =
        Engine::launch(&config, StoreChoice::Given(shared), shutdown.clone()).unwrap();

    // Starts keep arriving while earlier tasks finish, so some land in the same loop turn as
    // a finish that frees the slot (the turn whose settling admits a queued task).
    let mut ids = vec![];
    for t in 0..TASKS {
        let items = (0..STEPS)
            .map(|s| serde_json::json!({ "n": format!("{t}-{s}") }))
            .collect();
        let request = StartRequest {
            workflow: "capped".into(),
            params: serde_json::json!({}),
            items,
            idempotency_key: None,
        };
        ids.push(engine.start(request).await.unwrap().task.id);
        // About one task's run time apart, varied, so starts meet finishes and admissions.
        tokio::time::sleep(Duration::from_millis(20 + (t as u64 * 37) % 50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &ids {
        while engine
            .task(id)
            .await
            .unwrap()
            .is_none_or(|t| t.status != TaskStatus::Succeeded)
        {
            assert!(Instant::now() < deadline, "tasks did not finish");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    let durable = durable_at.lock().unwrap().clone();
    let predictions = sim.predictions();
    assert_eq!(predictions.len(), TASKS * STEPS, "one prediction per step");
    for prediction in predictions {
        let input = prediction["input"].to_string();
        let created =
            stepwise_engine::time::parse_rfc3339_micros(prediction["created_at"].as_str().unwrap())
                .unwrap();
        let intent = durable
            .get(&input)
            .unwrap_or_else(|| panic!("no journaled intent for {input}"));
        assert!(
            created >= *intent,
            "a create for {input} reached Replicate {} µs before its intent was durable",
            intent - created
        );
    }
    shutdown.cancel();
    runtime.await.unwrap().unwrap();
}
