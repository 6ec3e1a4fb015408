//! What a benchmark runs against: the simulator and the engine with its HTTP API, all in
//! this process on loopback, the engine on a fresh temporary data dir.

use replicate_sim::{ModelBehavior, SimConfig, SimHandle};
use std::time::Duration;
use stepwise_engine::config::Config;
use stepwise_engine::{Engine, StoreChoice};
use tokio_util::sync::CancellationToken;

pub const MODEL: &str = "bench/model";

/// The engine's settings a scenario chooses.
pub struct Setup {
    pub prediction_ms: u64,
    pub webhooks: bool,
    pub poll_initial_ms: u64,
    pub poll_max_ms: u64,
}

pub struct Harness {
    pub sim: SimHandle,
    pub url: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    runtime: tokio::task::JoinHandle<Result<(), stepwise_engine::journal::StoreError>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _data: tempfile::TempDir,
}

impl Harness {
    pub async fn start(setup: &Setup) -> anyhow::Result<Harness> {
        let api = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", api.local_addr()?);
        let behavior = ModelBehavior { starting_ms: setup.prediction_ms / 5, processing_ms: setup.prediction_ms, ..Default::default() };
        let sim_config = SimConfig { default_model: behavior, ..Default::default() };
        let token = sim_config.token.clone();
        let sim = replicate_sim::start(sim_config, tokio::net::TcpListener::bind("127.0.0.1:0").await?).await?;
        let data = tempfile::tempdir()?;
        let webhooks = if setup.webhooks { format!("webhook_base_url = \"{url}\"\n") } else { String::new() };
        let toml = format!(
            "[storage]\ndata_dir = {data:?}\n[replicate]\napi_base = \"{sim}\"\napi_token = \"{token}\"\n\
             poll_initial_ms = {initial}\npoll_max_ms = {max}\ncreates_per_minute = 600000\ncreate_burst = 10000\n\
             other_calls_per_minute = 600000\nother_burst = 10000\n{webhooks}\
             [workflows.chain]\nmodel = \"{MODEL}\"\nmax_items = 100\n[workflows.chain.input]\n\
             image = \"{{{{previous.output}}}}\"\nn = \"{{{{item.n}}}}\"\n[workflows.chain.first]\nimage = \"{{{{params.start}}}}\"\n",
            data = data.path().display().to_string(),
            sim = sim.base_url(),
            initial = setup.poll_initial_ms,
            max = setup.poll_max_ms,
        );
        let mut config = Config::from_toml(&toml, "bench")?;
        if setup.webhooks {
            let client = stepwise_engine::replicate::ReplicateClient::new(&config.replicate)?;
            config.replicate.webhook_secret = Some(client.webhook_secret().await?);
        }
        let shutdown = CancellationToken::new();
        let (engine, runtime) = Engine::launch(&config, StoreChoice::Disk, shutdown.clone())?;
        let app = stepwise_server::router(engine, &config.server, shutdown.clone());
        let server = tokio::spawn(stepwise_server::serve(api, app, shutdown.clone()));
        Ok(Harness { sim, url, http: reqwest::Client::new(), shutdown, runtime, server, _data: data })
    }

    /// Starts a chain task of `steps` steps; returns its id.
    pub async fn start_chain(&self, tag: usize, steps: usize) -> anyhow::Result<String> {
        let items: Vec<serde_json::Value> = (0..steps).map(|n| serde_json::json!({ "n": format!("{tag}-{n}") })).collect();
        let body = serde_json::json!({ "workflow": "chain", "params": { "start": format!("s{tag}") }, "items": items });
        let response = self.http.post(format!("{}/v1/tasks", self.url)).json(&body).send().await?;
        anyhow::ensure!(response.status() == 201, "start answered {}", response.status());
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
                let task: serde_json::Value = self.http.get(format!("{}/v1/tasks/{id}", self.url)).send().await?.json().await?;
                if ["succeeded", "failed", "canceled"].contains(&task["status"].as_str().unwrap_or("")) {
                    anyhow::ensure!(task["status"] == "succeeded", "task {id} ended {}", task["status"]);
                    break;
                }
                anyhow::ensure!(tokio::time::Instant::now() < deadline, "tasks did not finish in {within:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        progress.finish();
        Ok(())
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.server.await??;
        self.runtime.await??;
        self.sim.shutdown().await;
        Ok(())
    }
}
