//! Status reads run on other threads while the runtime commits, against the real sled store:
//! every read must succeed and no reader may ever see a task go back in time. A read is a
//! get and a range scan, and sled can apply a commit between two steps of a scan, so this is
//! where a torn read would show (see `journal::kv::untorn`). In runs here (up to 1 500
//! ten-step tasks) none showed even without the re-read: this test guards the invariant,
//! `journal::tests` the re-read itself.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stepwise_engine::config::EngineConfig;
use stepwise_engine::model::{TaskId, TaskStatus};
use stepwise_engine::{Engine, StartRequest, StoreChoice};

const TASKS: usize = 150;
const STEPS: usize = 6;
const READERS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_racing_commits_never_fail_nor_go_back() {
    let (sim, token) = common::simulator(0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[storage]\ndata_dir = {data:?}\n\
         [replicate]\napi_base = \"{api}\"\napi_token = \"{token}\"\npoll_initial_ms = 5\npoll_max_ms = 5\n\
         creates_per_minute = 600000\ncreate_burst = 10000\nother_calls_per_minute = 600000\nother_burst = 10000\n\
         [workflows.chain]\nmodel = \"t/m\"\nmax_items = 10\n[workflows.chain.input]\nn = \"{{{{item.n}}}}\"\n",
        data = dir.path().display().to_string(),
        api = sim.base_url(),
    );
    let config = EngineConfig::from_toml(&toml, "test").unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (engine, runtime) = Engine::launch(&config, StoreChoice::Disk, shutdown.clone()).unwrap();

    let mut ids: Vec<TaskId> = vec![];
    for t in 0..TASKS {
        let items = (0..STEPS)
            .map(|s| serde_json::json!({ "n": format!("{t}-{s}") }))
            .collect();
        let request = StartRequest {
            workflow: "chain".into(),
            params: serde_json::json!({}),
            items,
            idempotency_key: None,
        };
        ids.push(engine.start(request).await.unwrap().task.id);
    }
    let ids = Arc::new(ids);

    // Readers on their own threads, so their scans truly overlap the commits.
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let (engine, ids, done) = (engine.clone(), ids.clone(), done.clone());
            tokio::spawn(async move {
                let mut seen = vec![0u64; ids.len()];
                let mut reads = 0u64;
                while !done.load(Ordering::Relaxed) {
                    for (i, id) in ids.iter().enumerate().skip(r).step_by(READERS) {
                        let task = engine
                            .task(id)
                            .await
                            .expect("a read during commits")
                            .expect("the task exists");
                        assert!(
                            task.seq >= seen[i],
                            "{id} went back from seq {} to {}",
                            seen[i],
                            task.seq
                        );
                        seen[i] = task.seq;
                        let events = engine.events(id).await.expect("the journal during commits");
                        assert!(
                            events.len() as u64 >= task.seq,
                            "{id}: journal behind the task read before it"
                        );
                        reads += 2;
                    }
                    // Reads of this store never wait: let the runtime's loop have its turn.
                    tokio::task::yield_now().await;
                }
                reads
            })
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(120);
    for id in ids.iter() {
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
    done.store(true, Ordering::Relaxed);
    let mut reads = 0;
    for reader in readers {
        reads += reader.await.expect("a reader failed");
    }
    assert!(
        reads >= 2 * TASKS as u64,
        "the readers ran alongside the commits ({reads} reads)"
    );
    assert_eq!(
        sim.predictions().len(),
        TASKS * STEPS,
        "one prediction per step"
    );
    shutdown.cancel();
    runtime.await.unwrap().unwrap();
}
