//! A simulator of Replicate's HTTP API v1 for tests, demos and benchmarks. The official client
//! libraries work against it by changing only their base URL.
//!
//! Layout:
//! - `lib.rs`: configuration types, [`start`] and the [`SimHandle`] that tests hold.
//! - [`prediction`]: one stored prediction, its lazily computed lifecycle and its JSON.
//! - [`output`]: the deterministic output derived from (model key, input), and its label.
//! - [`picture`]: the PNG served at an output URL, drawn with [`font`] and encoded by [`png`].
//! - [`state`]: the store (creation-ordered Vec plus id index) behind one mutex.
//! - [`request`]: validation of create bodies.
//! - [`headers`]: `Prefer: wait` and `Cancel-After` parsing.
//! - [`list`]: list pagination and the opaque cursor.
//! - [`problem`]: every error, mapped to `application/problem+json`.
//! - [`routes`]: the axum router, middleware and handlers.
//! - [`faults`]: the fault-injection switches ([`Faults`]) and the per-request draw.
//! - [`ratelimit`]: Replicate-like token buckets ([`RateLimits`]).
//! - [`stats`]: request/answer counters and sliding-window maxima ([`SimStats`]).
//! - [`gate`]: the middleware in front of `/v1` that applies storms, rate limits and faults.
//! - [`webhooks`]: webhook signing, event filters, the retry schedule and webhook fault draws.
//! - [`delivery`]: the one background task that sends webhooks at each prediction's terminal
//!   time, with retries.
//! - [`persist`]: the optional state file ([`SimConfig::state_file`]) that lets a restarted
//!   simulator keep serving its predictions.
//!
//! Statuses are computed from the clock at read time, so no per-prediction timers exist; the
//! webhook dispatcher keeps one heap of due deliveries for the whole simulator.

pub mod delivery;
pub mod faults;
pub mod font;
pub mod gate;
pub mod headers;
pub mod list;
pub mod output;
pub mod persist;
pub mod picture;
pub mod png;
pub mod prediction;
pub mod problem;
pub mod ratelimit;
pub mod request;
pub mod routes;
pub mod state;
pub mod stats;
pub mod webhooks;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::task::JoinHandle;

pub use faults::{Endpoint, EndpointFaults, Faults};
pub use output::{canonical_json, output_hash, output_label, output_value};
pub use ratelimit::RateLimits;
pub use routes::router;
pub use state::SimState;
pub use stats::SimStats;

/// How the simulator behaves. Model behaviours are snapshotted into each prediction at creation.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The only accepted token (`Bearer <t>` or legacy `Token <t>`); anything else gets 401.
    pub token: String,
    /// Used for any model or version not in `models`.
    pub default_model: ModelBehavior,
    /// Key: "owner/name" (model and deployment creates, `owner/name` versions) or a version id.
    pub models: HashMap<String, ModelBehavior>,
    /// Base of `urls.*`, list links and output file URLs; `None` means `http://{bound addr}`.
    pub public_url: Option<String>,
    /// Leave out `output`, `started_at`, `completed_at`, `metrics`, `data_removed` while a
    /// prediction is not terminal, like 2023 responses did.
    pub omit_optional_keys: bool,
    /// Like Replicate's one-hour deletion of API outputs: this long after a prediction
    /// succeeded its `output` reads `null`, `data_removed` turns true, and its output file
    /// answers 404. `None` keeps outputs forever.
    pub output_retention: Option<Duration>,
    /// Predictions per list page.
    pub page_size: usize,
    /// Real rate limits answered with genuine 429s; `None` means unlimited.
    pub rate_limits: Option<RateLimits>,
    /// Seeds ids, failures, cold boots and fault draws; `None` draws a seed from the OS.
    pub seed: Option<u64>,
    /// A fixed `whsec_<base64>` secret that signs webhooks and is served at
    /// `GET /v1/webhooks/default/secret`; `None` makes a random one. [`start`] rejects a value
    /// that is not `whsec_` followed by base64.
    pub webhook_secret: Option<String>,
    /// Multiplies the retry schedule of terminal webhooks (0.5 s doubling, the last retry 60 s
    /// after completion at 1.0); e.g. 0.01 makes the whole schedule last 0.6 s.
    pub webhook_retry_scale: f64,
    /// Timeout of one webhook attempt (connect, send and answer).
    pub webhook_timeout: Duration,
    /// Keep the predictions (and the webhook secret) in this file, so a simulator started again
    /// on it serves the same predictions on the same timelines and still delivers the terminal
    /// webhooks it owed (see [`persist`]). Creates and cancels are answered once fsynced. The
    /// file's secret is used unless `webhook_secret` is set. `None` keeps everything in memory.
    pub state_file: Option<PathBuf>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            token: "r8_sim_token".into(),
            default_model: ModelBehavior::default(),
            models: HashMap::new(),
            public_url: None,
            omit_optional_keys: false,
            output_retention: None,
            page_size: 100,
            rate_limits: None,
            seed: None,
            webhook_secret: None,
            webhook_retry_scale: 1.0,
            webhook_timeout: Duration::from_secs(10),
            state_file: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ModelBehavior {
    /// Time in `starting` after creation.
    pub starting_ms: u64,
    /// Time in `processing` after that.
    pub processing_ms: u64,
    /// Chance (0.0..=1.0), drawn at creation, that the prediction ends `failed`.
    pub failure_rate: f64,
    /// The `error` of a failed prediction.
    pub failure_message: String,
    pub output: OutputShape,
}

impl Default for ModelBehavior {
    fn default() -> Self {
        ModelBehavior {
            starting_ms: 50,
            processing_ms: 200,
            failure_rate: 0.0,
            failure_message: "Simulated model failure".into(),
            output: OutputShape::Url,
        }
    }
}

/// The output of a succeeded prediction, derived only from (model key, input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputShape {
    /// `"{public_url}/files/{hash}/out-0.png"`.
    Url,
    /// `["{public_url}/files/{hash}/out-0.png"]`.
    UrlList,
    /// The input object itself.
    Echo,
}

/// A running simulator. Dropping it leaves the server running until the runtime stops.
pub struct SimHandle {
    state: SimState,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl SimHandle {
    /// E.g. `http://127.0.0.1:PORT`: no trailing slash, no `/v1`. This is the public URL.
    pub fn base_url(&self) -> String {
        self.state.base().to_string()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every prediction ever created, in creation order, as the API would return it now.
    pub fn predictions(&self) -> Vec<serde_json::Value> {
        let now = time::OffsetDateTime::now_utc();
        let store = self.state.store();
        store
            .all()
            .iter()
            .map(|p| self.state.render(p, now))
            .collect()
    }

    /// One prediction as `GET /v1/predictions/{id}` would return it now.
    pub fn prediction(&self, id: &str) -> Option<serde_json::Value> {
        let now = time::OffsetDateTime::now_utc();
        let store = self.state.store();
        store.get(id).map(|p| self.state.render(p, now))
    }

    /// When the simulator received the create of prediction `id` (its `created_at`), and when
    /// it became terminal (its `completed_at`; `None` while it is running). Full nanosecond
    /// precision, the same instants the JSON shows.
    pub fn prediction_times(&self, id: &str) -> Option<PredictionTimes> {
        let now = time::OffsetDateTime::now_utc();
        let store = self.state.store();
        let p = store.get(id)?;
        Some(PredictionTimes {
            created_at: p.created_at,
            completed_at: p.snapshot(now).completed_at,
        })
    }

    /// The `whsec_...` secret that signs webhooks (the one served by the secret endpoint).
    pub fn webhook_secret(&self) -> String {
        self.state.webhook_secret().to_string()
    }

    /// Number of successful create calls (with a state file: also those of earlier runs).
    pub fn create_calls(&self) -> u64 {
        self.state.store().create_calls()
    }

    /// Changes the behaviour of `key` for predictions created from now on.
    pub fn set_model(&self, key: &str, behavior: ModelBehavior) {
        self.state.store().set_model(key, behavior);
    }

    /// Predictions created from now on whose input has `key` equal to `value` (JSON type
    /// included) follow `behavior` instead of their model's: one branch of a parallel stage
    /// failing while its siblings run, say. The first match wins, in the order they were set.
    pub fn set_input_behavior(&self, key: &str, value: serde_json::Value, behavior: ModelBehavior) {
        self.state.store().set_input_behavior(key, value, behavior);
    }

    /// Forgets every [`SimHandle::set_input_behavior`].
    pub fn clear_input_behaviors(&self) {
        self.state.store().clear_input_behaviors();
    }

    /// Replaces every fault switch; a storm (`storm_ms`) starts now. Applies to requests and
    /// predictions from now on.
    pub fn set_faults(&self, faults: Faults) {
        let lifecycle = faults.lifecycle();
        self.state
            .gate()
            .set_faults(faults, std::time::Instant::now());
        self.state.store().set_lifecycle(lifecycle);
    }

    /// Turns every fault switch off (the real rate limits stay).
    pub fn clear_faults(&self) {
        self.set_faults(Faults::default());
    }

    /// Replaces the real rate limits, starting with full buckets; `None` lifts them.
    pub fn set_rate_limits(&self, limits: Option<RateLimits>) {
        self.state
            .gate()
            .set_rate_limits(limits.as_ref(), std::time::Instant::now());
    }

    /// What the simulator has seen so far.
    pub fn stats(&self) -> SimStats {
        self.state.gate().stats()
    }

    /// Stops accepting connections, releases `Prefer: wait` requests and waits briefly for
    /// open connections; after one second the server task is aborted. Then fsyncs the state
    /// file, if any.
    pub async fn shutdown(self) {
        self.state.begin_shutdown();
        let mut server = self.server;
        if tokio::time::timeout(Duration::from_secs(1), &mut server)
            .await
            .is_err()
        {
            tracing::warn!(addr = %self.addr, "Simulator did not stop within 1 s; aborting it.");
            server.abort();
        }
        if let Some(persister) = self.state.persister() {
            if let Err(error) = persister.flush().await {
                tracing::warn!(%error, "The simulator state was not fully written.");
            }
        }
    }
}

/// See [`SimHandle::prediction_times`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PredictionTimes {
    /// When the create request was received (before any injected latency).
    pub created_at: time::OffsetDateTime,
    /// When the prediction reached its terminal state, if it has.
    pub completed_at: Option<time::OffsetDateTime>,
}

/// Serves the simulator on `listener` in a spawned task. Fails with `InvalidInput` when
/// `config.webhook_secret` is not `whsec_<base64>`, and with `InvalidData` (naming the path)
/// when `config.state_file` exists but cannot be read back.
pub async fn start(
    mut config: SimConfig,
    listener: tokio::net::TcpListener,
) -> std::io::Result<SimHandle> {
    if let Some(secret) = &config.webhook_secret {
        if !webhooks::valid_secret(secret) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "webhook_secret must be whsec_ followed by base64",
            ));
        }
    }
    let addr = listener.local_addr()?;
    let base = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let state_file = config.state_file.clone();
    let loaded = match &state_file {
        Some(path) => Some(load_state(path, &mut config)?),
        None => None,
    };
    let state = SimState::new(config, base);
    if let (Some(path), Some(loaded)) = (state_file, loaded) {
        restore_state(&state, &path, addr, loaded)?;
    }
    let app = router(state.clone());
    let mut stop = state.shutdown_signal();
    let server = tokio::spawn(async move {
        let signal = async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .await
        {
            tracing::error!(%error, "Simulator server failed.");
        }
    });
    Ok(SimHandle {
        state,
        addr,
        server,
    })
}

/// Reads the state file; its webhook secret applies unless `config` sets one.
fn load_state(path: &Path, config: &mut SimConfig) -> std::io::Result<persist::Loaded> {
    let loaded = persist::load(path)?;
    if let (None, Some(secret)) = (&config.webhook_secret, &loaded.webhook_secret) {
        if !webhooks::valid_secret(secret) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "cannot load simulator state file {}: its webhook secret is not whsec_ followed by base64",
                    path.display()
                ),
            ));
        }
        config.webhook_secret = Some(secret.clone());
    }
    Ok(loaded)
}

/// Puts the loaded predictions in the store, rewrites the state file compacted and starts
/// appending to it, and schedules the terminal webhooks still owed (due at once for the
/// predictions that finished while the simulator was down).
fn restore_state(
    state: &SimState,
    path: &Path,
    addr: SocketAddr,
    loaded: persist::Loaded,
) -> std::io::Result<()> {
    let persist::Loaded {
        predictions,
        webhooks_done,
        ..
    } = loaded;
    let owed: Vec<delivery::Msg> = predictions
        .iter()
        .filter(|p| !webhooks_done.contains(&p.id))
        .filter(|p| {
            webhooks::wants(
                p.webhook_events_filter.as_deref(),
                webhooks::Event::Completed,
            )
        })
        .filter_map(|p| {
            Some(delivery::Msg::Created {
                id: p.id.clone(),
                url: p.webhook.clone()?,
                start_body: None,
                completed: true,
                terminal_at: p.terminal_at(),
            })
        })
        .collect();
    let count = predictions.len();
    let persister = {
        let mut store = state.store();
        store.restore(predictions);
        persist::open(
            path,
            addr,
            state.webhook_secret(),
            store.all(),
            &webhooks_done,
        )?
    };
    state.set_persister(persister);
    let owed_count = owed.len();
    for msg in owed {
        state.send_webhook(msg);
    }
    tracing::info!(path = %path.display(), predictions = count, webhooks_owed = owed_count, "Simulator state loaded.");
    Ok(())
}
