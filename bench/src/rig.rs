//! The rig around a child engine: the simulator in this process, the temp dir with config,
//! log and data dir, and starting many tasks through the API with concurrent clients.

use super::child::*;
use anyhow::Context;
use std::time::{Duration, Instant};

/// Everything a scenario needs around a child engine: the simulator (in this process, its
/// predictions running `processing_ms`), a temp dir holding config, log and data dir.
pub struct Rig {
    pub sim: replicate_sim::SimHandle,
    pub config: ChildConfig,
    /// Holds config, log and data dir; removed on drop.
    _dir: tempfile::TempDir,
}

impl Rig {
    pub async fn start(
        program: &EngineBinary,
        processing_ms: u64,
        poll_initial_ms: u64,
        poll_max_ms: u64,
        max_items: usize,
    ) -> anyhow::Result<Rig> {
        let behavior = replicate_sim::ModelBehavior {
            starting_ms: 0,
            processing_ms,
            ..Default::default()
        };
        let sim_config = replicate_sim::SimConfig {
            default_model: behavior,
            ..Default::default()
        };
        let token = sim_config.token.clone();
        let sim = replicate_sim::start(
            sim_config,
            tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        )
        .await?;
        let dir = tempfile::Builder::new()
            .prefix("stepwise-bench-")
            .tempdir()?;
        let config = ChildConfig {
            program: program.clone(),
            dir: dir.path().to_owned(),
            data_dir: dir.path().join("data"),
            api_base: sim.base_url(),
            api_token: token,
            model: super::harness::MODEL.to_owned(),
            poll_initial_ms,
            poll_max_ms,
            max_items,
            cache_bytes: None,
        };
        Ok(Rig {
            sim,
            config,
            _dir: dir,
        })
    }

    /// Status checks (`GET /v1/predictions/{id}`) the simulator has answered so far.
    pub fn status_checks(&self) -> u64 {
        self.sim
            .stats()
            .requests
            .get(&replicate_sim::Endpoint::Get)
            .copied()
            .unwrap_or(0)
    }

    pub async fn stop(self) {
        self.sim.shutdown().await;
    }
}

/// Starts `count` chain tasks of `steps` steps with `clients` concurrent clients (plain
/// POSTs, no `Idempotency-Key`); returns their ids in start order.
pub async fn start_tasks(
    engine: &EngineProcess,
    count: usize,
    steps: usize,
    clients: usize,
) -> anyhow::Result<Vec<String>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let ids = Arc::new(Mutex::new(vec![String::new(); count]));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..clients.max(1) {
        let (next, done, ids) = (next.clone(), done.clone(), ids.clone());
        let (http, url) = (engine.http.clone(), format!("{}/v1/tasks", engine.url()));
        workers.spawn(async move {
            loop {
                let tag = next.fetch_add(1, Ordering::Relaxed);
                if tag >= count {
                    return anyhow::Ok(());
                }
                let items: Vec<serde_json::Value> =
                    (0..steps).map(|n| serde_json::json!({ "n": format!("{tag}-{n}") })).collect();
                let body = serde_json::json!({ "workflow": WORKFLOW, "params": { "start": format!("s{tag}") }, "items": items });
                let response = http.post(&url).json(&body).send().await?;
                anyhow::ensure!(response.status() == 201, "start answered {}", response.status());
                let task: serde_json::Value = response.json().await?;
                let id = task["id"].as_str().context("no id in the start answer")?.to_owned();
                ids.lock().expect("not poisoned")[tag] = id;
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let mut progress = super::progress::Progress::new("starting", count as u64);
    let ticker = async {
        loop {
            progress.set(done.load(Ordering::Relaxed) as u64);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let all = async {
        while let Some(joined) = workers.join_next().await {
            joined??;
        }
        anyhow::Ok(())
    };
    tokio::select! {
        result = all => result?,
        _ = ticker => unreachable!(),
    }
    progress.set(count as u64);
    progress.finish();
    let ids = std::mem::take(&mut *ids.lock().expect("not poisoned"));
    Ok(ids)
}

/// Waits until the simulator has received `creates` create calls and the engine reports
/// `tasks` unfinished tasks.
pub async fn wait_created(
    rig: &Rig,
    engine: &EngineProcess,
    creates: u64,
    tasks: u64,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    let mut progress = super::progress::Progress::new("creating", creates);
    loop {
        let made = rig.sim.create_calls();
        progress.set(made);
        if made >= creates {
            let health = engine.health().await?;
            if health.unfinished == tasks {
                break;
            }
        }
        engine.ensure_running()?;
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {made} of {creates} predictions were created in {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    progress.finish();
    Ok(())
}
