//! Configuration: the `config.toml` schema with its defaults, environment overrides for
//! secrets, and validation that reports every problem naming its key.
//! No IO beyond reading the file and the environment.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default configuration, shipped in the binary so `stepwise serve` runs without a file.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config.toml");

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
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
    /// server. Default: `replicate.webhook_base_url`, else `http://{server.listen}`.
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
pub struct ServerConfig {
    pub listen: String,
    /// When set, POST routes and listing need `Authorization: Bearer <token>`.
    /// Overridden by the `STEPWISE_API_TOKEN` environment variable.
    pub api_token: Option<String>,
    pub cors_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            api_token: None,
            cors_origins: vec![],
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
        deserialize_with = "duration::required",
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
#[serde(deny_unknown_fields, default)]
pub struct ReplicateConfig {
    pub api_base: String,
    /// Never read from the file's defaults in practice: `REPLICATE_API_TOKEN` overrides it.
    pub api_token: Option<String>,
    pub poll_initial_ms: u64,
    pub poll_max_ms: u64,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    /// Backoff after a failed call: full jitter under a ceiling that doubles from
    /// `retry_initial_ms` up to `retry_max_ms` (never sooner than a server's retry_after).
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// Client-side token buckets that keep the engine under the account's limits.
    pub creates_per_minute: u32,
    pub create_burst: u32,
    pub other_calls_per_minute: u32,
    pub other_burst: u32,
    /// Most tasks running at once (each has at most one prediction in flight); 0: no cap.
    pub max_in_flight: usize,
    /// This engine's public URL. When set, creates ask Replicate for `start` and `completed`
    /// webhooks at `{webhook_base_url}/v1/webhooks/replicate`, and polling slows down to
    /// `safety_poll_ms`.
    pub webhook_base_url: Option<String>,
    /// `whsec_...`; from `REPLICATE_WEBHOOK_SECRET`, else fetched from Replicate at startup.
    pub webhook_secret: Option<String>,
    /// Status checks while webhooks are on: a safety net for lost deliveries.
    pub safety_poll_ms: u64,
}

impl Default for ReplicateConfig {
    fn default() -> Self {
        ReplicateConfig {
            api_base: "https://api.replicate.com".into(),
            api_token: None,
            poll_initial_ms: 1000,
            poll_max_ms: 10_000,
            connect_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            retry_initial_ms: 500,
            retry_max_ms: 30_000,
            creates_per_minute: 600,
            create_burst: 60,
            other_calls_per_minute: 3000,
            other_burst: 300,
            max_in_flight: 0,
            webhook_base_url: None,
            webhook_secret: None,
            safety_poll_ms: 30_000,
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
        deserialize_with = "duration::optional",
        serialize_with = "duration::write_optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub step_timeout: Option<Duration>,
    /// A task older than this is canceled.
    #[serde(
        default,
        deserialize_with = "duration::optional",
        serialize_with = "duration::write_optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub task_timeout: Option<Duration>,
    /// Most tasks of this workflow running at once (on top of the global cap).
    #[serde(default)]
    pub max_in_flight: Option<usize>,
}

fn default_max_items() -> usize {
    10
}

/// Durations in config: `"90s"`, `"10m"`, `"1h30m"`, `"500ms"`, or a number of seconds.
pub mod duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn parse(text: &str) -> Option<Duration> {
        let text = text.trim();
        if let Ok(seconds) = text.parse::<u64>() {
            return Some(Duration::from_secs(seconds));
        }
        let (mut total, mut rest) = (Duration::ZERO, text);
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let number: u64 = rest[..digits].parse().ok()?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = match &rest[..unit_len] {
                "ms" => Duration::from_millis(1),
                "s" => Duration::from_secs(1),
                "m" => Duration::from_secs(60),
                "h" => Duration::from_secs(3600),
                "d" => Duration::from_secs(86_400),
                _ => return None,
            };
            total += unit * u32::try_from(number).ok()?;
            rest = &rest[unit_len..];
        }
        (!total.is_zero()).then_some(total)
    }

    /// The shortest text `parse` reads back to the same duration.
    pub fn format(duration: Duration) -> String {
        let ms = duration.as_millis();
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1000),
        ] {
            if ms.is_multiple_of(size) {
                return format!("{}{unit}", ms / size);
            }
        }
        format!("{ms}ms")
    }

    pub fn write<S: serde::Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*duration))
    }

    pub fn write_optional<S: serde::Serializer>(
        duration: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => write(duration, s),
            None => s.serialize_none(),
        }
    }

    pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        optional(d)?.ok_or_else(|| serde::de::Error::custom("a duration is required"))
    }

    pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        let raw = Option::<Raw>::deserialize(d)?;
        match raw {
            None => Ok(None),
            Some(Raw::Seconds(0)) => Err(serde::de::Error::custom("a duration must be positive")),
            Some(Raw::Seconds(s)) => Ok(Some(Duration::from_secs(s))),
            Some(Raw::Text(text)) => parse(&text).map(Some).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{text:?} is not a duration; use e.g. \"90s\", \"10m\", \"1h30m\""
                ))
            }),
        }
    }
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

impl Config {
    /// Reads `path`, applies environment overrides and validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses `text` (from `origin`, for messages), applies environment overrides, validates.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
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
        if let Some(token) = var("STEPWISE_API_TOKEN") {
            self.server.api_token = Some(token);
        }
    }

    /// Every problem at once, each naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = vec![];
        if self.replicate.poll_initial_ms == 0 {
            problems.push("replicate.poll_initial_ms must be at least 1".to_owned());
        }
        if self.replicate.poll_max_ms < self.replicate.poll_initial_ms {
            problems.push("replicate.poll_max_ms must not be below poll_initial_ms".to_owned());
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

    /// The effective configuration as TOML, secrets masked, for `check-config`.
    pub fn masked_toml(&self) -> Result<String, toml::ser::Error> {
        let mut masked = self.clone();
        let mask = |secret: &mut Option<String>| {
            if secret.is_some() {
                *secret = Some("***".into());
            }
        };
        mask(&mut masked.server.api_token);
        mask(&mut masked.replicate.api_token);
        mask(&mut masked.replicate.webhook_secret);
        toml::to_string(&masked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_config_is_valid() {
        let mut config: Config = toml::from_str(EMBEDDED_DEFAULT).unwrap();
        config.apply_env(|_| None);
        config.validate().unwrap();
        assert!(config.workflows.contains_key("tryon"));
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err = Config::from_toml("[server]\nlisten = \"x\"\nlisen = 1\n", "test").unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn environment_overrides_secrets() {
        let mut config: Config = toml::from_str("[replicate]\napi_token = \"file\"").unwrap();
        config.apply_env(|name| (name == "REPLICATE_API_TOKEN").then(|| "env".to_owned()));
        assert_eq!(config.replicate.api_token.as_deref(), Some("env"));
        assert_eq!(config.server.api_token, None);
    }

    #[test]
    fn the_effective_config_prints_as_toml_that_reads_back_with_secrets_masked() {
        let mut config: Config = toml::from_str(EMBEDDED_DEFAULT).unwrap();
        config.server.api_token = Some("hunter2".into());
        config.replicate.api_token = Some("r8_secret".into());
        let text = config.masked_toml().unwrap();
        assert!(
            !text.contains("hunter2") && !text.contains("r8_secret"),
            "{text}"
        );
        assert!(
            text.contains("api_token = \"***\"") && text.contains("retention = \"7d\""),
            "{text}"
        );
        let again: Config = toml::from_str(&text).unwrap();
        assert_eq!(again.storage.retention, config.storage.retention);
        assert_eq!(
            again.workflows["tryon"].input,
            config.workflows["tryon"].input
        );
        assert_eq!(duration::format(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration::format(Duration::from_secs(90)), "90s");
    }

    #[test]
    fn durations_read_with_units_or_as_seconds() {
        assert_eq!(duration::parse("90s"), Some(Duration::from_secs(90)));
        assert_eq!(duration::parse("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(duration::parse("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(duration::parse("12"), Some(Duration::from_secs(12)));
        for bad in ["", "10x", "m", "0s", "1.5h"] {
            assert_eq!(duration::parse(bad), None, "{bad}");
        }
        let w: WorkflowConfig =
            toml::from_str("model = \"a/b\"\nstep_timeout = \"2m\"\ntask_timeout = 30").unwrap();
        assert_eq!(w.step_timeout, Some(Duration::from_secs(120)));
        assert_eq!(w.task_timeout, Some(Duration::from_secs(30)));
        let err = Config::from_toml(
            "[workflows.w]\nmodel = \"a/b\"\nstep_timeout = \"soon\"",
            "t",
        )
        .unwrap_err();
        assert!(err.to_string().contains("not a duration"), "{err}");
    }

    #[test]
    fn a_workflow_without_model_or_version_names_its_key() {
        let err = Config::from_toml("[workflows.w]\nmax_items = 3\n", "test").unwrap_err();
        assert!(err.to_string().contains("workflows.w"), "{err}");
    }
}
