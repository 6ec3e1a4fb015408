//! What a benchmark runs against: the simulator and the engine with its HTTP API, all in
//! this process on loopback, the engine on a fresh temporary data dir.

use replicate_sim::{ModelBehavior, SimConfig, SimHandle};
use std::time::Duration;
use stepwise_engine::{Engine, StoreChoice};
use stepwise_server::Config;
use tokio_util::sync::CancellationToken;

pub const MODEL: &str = "bench/model";

/// The engine's settings a scenario chooses.
pub struct Setup {
    pub prediction_ms: u64,
    pub webhooks: bool,
    pub poll_initial_ms: u64,
    pub poll_max_ms: u64,
    /// The engine's create rate limit (burst: a tenth of it, as the shipped 600/60); `None`
    /// lifts it so the simulator takes every create at once.
    pub creates_per_minute: Option<u32>,
}

/// The create burst that goes with a create limit: a tenth of it, as the shipped 600/60.
pub fn create_burst(creates_per_minute: u32) -> u32 {
    (creates_per_minute / 10).max(1)
}

pub struct Harness {
    pub sim: SimHandle,
    pub url: String,
    pub http: reqwest::Client,
    /// The engine handle (its runtime gauges: unfinished tasks, groups committed).
    pub engine: Engine,
    shutdown: CancellationToken,
    runtime: tokio::task::JoinHandle<Result<(), stepwise_engine::journal::StoreError>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    /// A fresh temporary directory; the engine's data dir is its `data/` subdirectory, so
    /// other files on the same disk (the fsync reference) can sit beside it.
    root: tempfile::TempDir,
}

impl Harness {
    pub async fn start(setup: &Setup) -> anyhow::Result<Harness> {
        Self::start_with(setup, "").await
    }

    /// `start`, with `workflows` (TOML: more `[workflows.NAME]` tables) appended to the
    /// engine's config after the shared `chain` and `padded` workflows.
    pub async fn start_with(setup: &Setup, workflows: &str) -> anyhow::Result<Harness> {
        let api = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", api.local_addr()?);
        let behavior = ModelBehavior {
            starting_ms: setup.prediction_ms / 5,
            processing_ms: setup.prediction_ms,
            ..Default::default()
        };
        let sim_config = SimConfig {
            default_model: behavior,
            ..Default::default()
        };
        let token = sim_config.token.clone();
        let sim = replicate_sim::start(
            sim_config,
            tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        )
        .await?;
        let root = tempfile::tempdir()?;
        let data = root.path().join("data");
        let webhooks = if setup.webhooks {
            format!("webhook_base_url = \"{url}\"\n")
        } else {
            String::new()
        };
        let toml = format!(
            "[storage]\ndata_dir = {data:?}\n[replicate]\napi_base = \"{sim}\"\napi_token = \"{token}\"\n\
             poll_initial_ms = {initial}\npoll_max_ms = {max}\ncreates_per_minute = {creates}\ncreate_burst = {burst}\n\
             other_calls_per_minute = 600000\nother_burst = 10000\n{webhooks}\
             [workflows.chain]\nmodel = \"{MODEL}\"\nmax_items = 100\n[workflows.chain.input]\n\
             image = \"{{{{previous.output}}}}\"\nn = \"{{{{item.n}}}}\"\n[workflows.chain.first]\nimage = \"{{{{params.start}}}}\"\n\
             [workflows.padded]\nmodel = \"{MODEL}\"\nmax_items = 100\n[workflows.padded.input]\n\
             image = \"{{{{previous.output}}}}\"\nn = \"{{{{item.n}}}}\"\npad = \"{{{{item.pad}}}}\"\n\
             [workflows.padded.first]\nimage = \"{{{{params.start}}}}\"\n{workflows}",
            data = data.display().to_string(),
            sim = sim.base_url(),
            initial = setup.poll_initial_ms,
            max = setup.poll_max_ms,
            creates = setup.creates_per_minute.unwrap_or(600_000),
            burst = setup.creates_per_minute.map_or(10_000, create_burst),
        );
        let mut config = Config::from_toml(&toml, "bench")?;
        if setup.webhooks {
            let client =
                stepwise_engine::replicate::ReplicateClient::new(&config.engine.replicate)?;
            config.engine.replicate.webhook_secret = Some(client.webhook_secret().await?);
        }
        let shutdown = CancellationToken::new();
        let (engine, runtime) =
            Engine::launch(&config.engine_config(), StoreChoice::Disk, shutdown.clone())?;
        let app = stepwise_server::router(engine.clone(), &config.server, shutdown.clone());
        let server = tokio::spawn(stepwise_server::serve(api, app, shutdown.clone()));
        Ok(Harness {
            sim,
            url,
            http: reqwest::Client::new(),
            engine,
            shutdown,
            runtime,
            server,
            root,
        })
    }

    /// The engine's data dir (sled's files).
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.root.path().join("data")
    }

    /// The temporary directory that holds the data dir: same file system, free for probes.
    pub fn scratch_dir(&self) -> &std::path::Path {
        self.root.path()
    }

    /// Tasks the runtime holds in memory (unfinished); updated once per runtime turn.
    pub fn unfinished(&self) -> usize {
        self.engine
            .gauges()
            .unfinished
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Journal groups committed so far (each one `apply_batch` + flush + `fdatasync`), and
    /// the task writes they carried.
    pub fn groups(&self) -> (u64, u64) {
        let gauges = self.engine.gauges();
        (
            gauges.groups.load(std::sync::atomic::Ordering::Relaxed),
            gauges
                .group_tasks
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Starts a chain task of `steps` steps; returns its id.
    pub async fn start_chain(&self, tag: usize, steps: usize) -> anyhow::Result<String> {
        let items: Vec<serde_json::Value> = (0..steps)
            .map(|n| serde_json::json!({ "n": format!("{tag}-{n}") }))
            .collect();
        let body = serde_json::json!({ "workflow": "chain", "params": { "start": format!("s{tag}") }, "items": items });
        let response = self
            .http
            .post(format!("{}/v1/tasks", self.url))
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(
            response.status() == 201,
            "start answered {}",
            response.status()
        );
        let task: serde_json::Value = response.json().await?;
        Ok(task["id"].as_str().unwrap_or_default().to_owned())
    }

    /// Waits until every task ended (polling their status with long polls would skew the
    /// measurement less, but a 200 ms poll is negligible next to the engine's work).
    pub async fn wait_all(&self, ids: &[String], within: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        let mut progress = super::progress::Progress::new("finishing", ids.len() as u64);
        for (done, id) in ids.iter().enumerate() {
            progress.set(done as u64);
            loop {
                let task: serde_json::Value = self
                    .http
                    .get(format!("{}/v1/tasks/{id}", self.url))
                    .send()
                    .await?
                    .json()
                    .await?;
                if ["succeeded", "failed", "canceled"]
                    .contains(&task["status"].as_str().unwrap_or(""))
                {
                    anyhow::ensure!(
                        task["status"] == "succeeded",
                        "task {id} ended {}",
                        task["status"]
                    );
                    break;
                }
                anyhow::ensure!(
                    tokio::time::Instant::now() < deadline,
                    "tasks did not finish in {within:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        progress.finish();
        Ok(())
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop_keeping_data().await.map(drop)
    }

    /// Stops everything and hands back the temporary directory (deleted when dropped), so
    /// the data dir can be measured after sled has closed.
    pub async fn stop_keeping_data(self) -> anyhow::Result<tempfile::TempDir> {
        self.shutdown.cancel();
        self.server.await??;
        self.runtime.await??;
        self.sim.shutdown().await;
        drop(self.engine);
        Ok(self.root)
    }
}

/// What an HTTP scenario loads: an engine this process starts (with the simulator), or one
/// already running at `--target URL`.
pub enum Target {
    /// Boxed: a harness is large and a target is mostly matched on.
    Own(Box<Harness>),
    External {
        url: String,
    },
}

impl Target {
    /// `Own` with predictions so long (10 min, no status check before then) that started
    /// tasks only wait: the measurement sees the API and the journal, not the predictions.
    /// `creates_per_minute` as in `Setup`.
    pub async fn start(
        external: Option<String>,
        creates_per_minute: Option<u32>,
    ) -> anyhow::Result<Target> {
        match external {
            Some(url) => {
                let url = url.trim_end_matches('/').to_owned();
                let health = reqwest::get(format!("{url}/healthz")).await?;
                anyhow::ensure!(
                    health.status().is_success(),
                    "{url}/healthz answered {}",
                    health.status()
                );
                Ok(Target::External { url })
            }
            None => {
                let setup = Setup {
                    prediction_ms: 600_000,
                    webhooks: false,
                    poll_initial_ms: 600_000,
                    poll_max_ms: 600_000,
                    creates_per_minute,
                };
                Ok(Target::Own(Box::new(Harness::start(&setup).await?)))
            }
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Target::Own(harness) => &harness.url,
            Target::External { url } => url,
        }
    }

    pub fn harness(&self) -> Option<&Harness> {
        match self {
            Target::Own(harness) => Some(harness),
            Target::External { .. } => None,
        }
    }

    /// The start body: `body` when given; else a chain of `items` steps for our own engine,
    /// or the README's try-on (workflow `tryon` of the shipped config) for an external one.
    pub fn start_body(
        &self,
        body: Option<&str>,
        items: usize,
    ) -> anyhow::Result<hyper::body::Bytes> {
        let value: serde_json::Value = match (body, self) {
            (Some(text), _) => serde_json::from_str(text)
                .map_err(|e| anyhow::anyhow!("--body is not JSON: {e}"))?,
            (None, Target::Own(_)) => {
                let items: Vec<_> = (0..items)
                    .map(|n| serde_json::json!({ "n": format!("item-{n}") }))
                    .collect();
                serde_json::json!({ "workflow": "chain", "params": { "start": "https://example.com/me.jpg" }, "items": items })
            }
            (None, Target::External { .. }) => {
                let items: Vec<_> = (0..items)
                    .map(|n| serde_json::json!({ "garment_image": format!("https://example.com/garment-{n}.jpg"), "description": format!("garment {n}") }))
                    .collect();
                serde_json::json!({ "workflow": "tryon", "params": { "person_image": "https://example.com/me.jpg" }, "items": items })
            }
        };
        Ok(serde_json::to_vec(&value)?.into())
    }

    /// Waits until our own engine has sent every create it owes and committed the answers
    /// (the simulator saw `creates` creates and, when `quiet`, the journal stopped writing),
    /// so background work does not leak into the next measurement. Nothing to wait for on an
    /// external one.
    pub async fn settle(&self, creates: u64, within: Duration, quiet: bool) -> anyhow::Result<()> {
        let Target::Own(harness) = self else {
            return Ok(());
        };
        let deadline = tokio::time::Instant::now() + within;
        let mut last = harness.groups();
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = harness.groups();
            // Without `quiet` (rate-limited creates keep trickling) the sent creates suffice.
            if harness.sim.create_calls() >= creates && (now == last || !quiet) {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the engine did not settle within {within:?}"
            );
            last = now;
        }
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        match self {
            Target::Own(harness) => harness.stop().await,
            Target::External { .. } => Ok(()),
        }
    }
}
