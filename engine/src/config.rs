//! The engine's configuration: the sections of `config.toml` the engine reads (`[storage]`,
//! `[replicate]`, `[limits]`, `[outputs]`, `[workflows.*]`) with their defaults, environment
//! overrides for its secrets, and validation that reports every problem naming its key. The
//! file as a whole, with the HTTP server's `[server]`, is `stepwise_server::config::Config`.
//! Every duration key is read by `duration` (units, or bare numbers in the key's unit);
//! `replicate` holds the `[replicate]` section, whose durations have a `_ms` name too.
//! No IO beyond reading the file and the environment.

pub mod duration;
mod replicate;

pub use replicate::ReplicateConfig;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `Engine::launch` needs; no HTTP server settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub replicate: ReplicateConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub outputs: OutputsConfig,
    #[serde(default)]
    pub workflows: BTreeMap<String, WorkflowConfig>,
}

/// Keeping output files: Replicate deletes API outputs after an hour.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputsConfig {
    /// Download every file a step's output links to into the data dir before the step
    /// counts as succeeded, and serve it at `/v1/files/{task}/{step}/{name}`.
    pub keep: bool,
    /// Larger files are not kept (the step still succeeds, with the original URL).
    pub max_file_bytes: u64,
    /// Base of the kept files' URLs, as clients (and Replicate, for the next step) reach this
    /// server. Default: `replicate.webhook_base_url`; `stepwise serve` falls back to
    /// `http://{server.listen}`.
    pub public_base_url: Option<String>,
}

impl Default for OutputsConfig {
    fn default() -> Self {
        OutputsConfig {
            keep: false,
            max_file_bytes: 100 * 1024 * 1024,
            public_base_url: None,
        }
    }
}

/// Per-field limits on start requests, on top of the 1 MiB body limit and `max_items`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Longest string anywhere in `params` or an item, in bytes.
    pub max_string_bytes: usize,
    /// Largest prediction input a step may build, in bytes of JSON.
    pub max_input_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        // Replicate suggests data: URLs only up to 256 KB; anything larger should be a URL.
        LimitsConfig {
            max_string_bytes: 256 * 1024,
            max_input_bytes: 512 * 1024,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
    /// Finished tasks are deleted, with their journal, this long after they ended.
    #[serde(
        deserialize_with = "duration::keys::retention",
        serialize_with = "duration::write"
    )]
    pub retention: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("./data"),
            cache_bytes: 32 * 1024 * 1024,
            retention: Duration::from_secs(7 * 86_400),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowConfig {
    pub model: Option<String>,
    pub version: Option<String>,
    #[serde(default = "default_max_items")]
    pub max_items: usize,
    #[serde(default)]
    pub input: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub first: serde_json::Map<String, serde_json::Value>,
    /// How many times a failed prediction is run again before the task fails.
    #[serde(default)]
    pub step_retries: u32,
    /// A prediction still starting or processing after this long is canceled and counts as
    /// failed (so it is retried while retries remain). Also sent as `Cancel-After`.
    #[serde(
        default,
        deserialize_with = "duration::keys::step_timeout",
        serialize_with = "duration::write_optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub step_timeout: Option<Duration>,
    /// A task older than this is canceled.
    #[serde(
        default,
        deserialize_with = "duration::keys::task_timeout",
        serialize_with = "duration::write_optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub task_timeout: Option<Duration>,
    /// Most predictions of this workflow in flight at once (on top of the global cap).
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    /// A pipeline: one model per stage, in order. Without it the workflow is the one-model
    /// form above (`model`/`version`, `input`, `first`), which must then not be set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageConfig>,
}

/// One stage of a pipeline (`[[workflows.NAME.stages]]`): a model run once, or once per item.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// Unique within the workflow; `{{stages.NAME.output}}` reads the stage by it.
    #[serde(default)]
    pub name: String,
    pub model: Option<String>,
    pub version: Option<String>,
    /// `"item"`: one step per item, in item order. Absent: the stage runs once.
    pub each: Option<String>,
    /// Every item's step at once instead of chained (only with `each`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub parallel: bool,
    /// Most of this stage's predictions running at once (only with `parallel`).
    pub max_parallel: Option<u32>,
    /// Overrides the workflow's `step_retries`.
    pub step_retries: Option<u32>,
    /// Overrides the workflow's `step_timeout`.
    #[serde(
        default,
        deserialize_with = "duration::keys::stage_step_timeout",
        serialize_with = "duration::write_optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub step_timeout: Option<Duration>,
    /// Once the retries are spent, the same input runs once more on this model.
    pub fallback_model: Option<String>,
    /// As `fallback_model`, for a version id.
    pub fallback_version: Option<String>,
    #[serde(default)]
    pub input: serde_json::Map<String, serde_json::Value>,
    /// Fields laid over `input` for the stage's first step (item 1, or its only step).
    #[serde(default)]
    pub first: serde_json::Map<String, serde_json::Value>,
}

fn default_max_items() -> usize {
    10
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("invalid config: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl EngineConfig {
    /// Parses `text` (from `origin`, for messages), applies environment overrides, validates.
    pub fn from_toml(text: &str, origin: &str) -> Result<EngineConfig, ConfigError> {
        let mut config: EngineConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        config.apply_env(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
        config.validate()?;
        Ok(config)
    }

    /// Secrets come from the environment when set there.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) {
        if let Some(token) = var("REPLICATE_API_TOKEN") {
            self.replicate.api_token = Some(token);
        }
        if let Some(secret) = var("REPLICATE_WEBHOOK_SECRET") {
            self.replicate.webhook_secret = Some(secret);
        }
    }

    /// Every problem at once, each naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = vec![];
        if self.replicate.poll_initial_ms == 0 {
            problems.push("replicate.poll_initial must be at least 1ms".to_owned());
        }
        if self.replicate.poll_max_ms < self.replicate.poll_initial_ms {
            problems.push("replicate.poll_max must not be below replicate.poll_initial".to_owned());
        }
        if self.replicate.creates_per_minute == 0 || self.replicate.other_calls_per_minute == 0 {
            problems.push("replicate.*_per_minute must be at least 1".to_owned());
        }
        if self.replicate.create_burst == 0 || self.replicate.other_burst == 0 {
            problems.push("replicate.*_burst must be at least 1".to_owned());
        }
        if let Some(url) = &self.replicate.webhook_base_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                problems.push(format!(
                    "replicate.webhook_base_url {url:?} must be an http(s) URL"
                ));
            }
        }
        if let Some(secret) = &self.replicate.webhook_secret {
            if let Err(e) = crate::webhook::WebhookKey::parse(secret) {
                problems.push(format!("replicate.webhook_secret: {e}"));
            }
        }
        if self.workflows.is_empty() {
            problems.push("no [workflows.NAME] section: nothing could be started".to_owned());
        }
        for (name, workflow) in &self.workflows {
            if let Err(mut errors) = crate::workflow::Workflow::compile(name, workflow, self.limits)
            {
                problems.append(&mut errors);
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The same configuration with its secrets replaced by `***`, for `check-config`.
    pub fn masked(&self) -> EngineConfig {
        let mut masked = self.clone();
        for secret in [
            &mut masked.replicate.api_token,
            &mut masked.replicate.webhook_secret,
        ] {
            if secret.is_some() {
                *secret = Some("***".into());
            }
        }
        masked
    }
}

#[cfg(test)]
mod tests;
