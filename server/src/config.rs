//! The config file as a whole: `[server]` (this crate's: where to listen, the API token, CORS
//! origins) and the engine's sections (`stepwise_engine::config::EngineConfig`). The binary
//! reads the file here, hands `engine_config()` to `Engine::launch` and `server` to `router`,
//! so the engine never sees an HTTP setting.

use serde::{Deserialize, Serialize};
use std::path::Path;
use stepwise_engine::config::{ConfigError, EngineConfig};

/// The default configuration, shipped in the binary so `stepwise serve` runs without a file.
/// The repository's `config.toml` is a copy kept byte-equal by a test, so editing that file
/// does not make it a build input (it would rebuild the binary under `cargo run`).
pub const EMBEDDED_DEFAULT: &str = include_str!("default_config.toml");

/// The HTTP server's section, `[server]`.
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

/// `config.toml`: the server's section and the engine's.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub server: ServerConfig,
    pub engine: EngineConfig,
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
        let mut config = Self::parse(text, origin)?;
        config.apply_env(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
        config.engine.validate()?;
        Ok(config)
    }

    /// Parses `text` alone: no environment, no validation. `[server]` goes to this crate's
    /// section; every other key must be one of the engine's (unknown keys are errors).
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Parse {
            origin: origin.to_owned(),
            message,
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let server = match table.remove("server") {
            Some(section) => section
                .try_into()
                .map_err(|e| invalid(format!("[server]: {e}")))?,
            None => ServerConfig::default(),
        };
        let engine = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        Ok(Config { server, engine })
    }

    /// Secrets come from the environment when set there.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) {
        self.engine.apply_env(&var);
        if let Some(token) = var("STEPWISE_API_TOKEN") {
            self.server.api_token = Some(token);
        }
    }

    /// What `Engine::launch` takes: the engine's sections, with the kept files' public URL
    /// defaulting to this server's address when neither it nor webhooks name one.
    pub fn engine_config(&self) -> EngineConfig {
        let mut engine = self.engine.clone();
        if engine.outputs.public_base_url.is_none() && engine.replicate.webhook_base_url.is_none() {
            engine.outputs.public_base_url = Some(format!("http://{}", self.server.listen));
        }
        engine
    }

    /// The effective configuration as TOML, secrets masked, for `check-config`.
    pub fn masked_toml(&self) -> Result<String, toml::ser::Error> {
        let mut server = self.server.clone();
        if server.api_token.is_some() {
            server.api_token = Some("***".into());
        }
        let mut table = toml::Table::try_from(self.engine.masked())?;
        table.insert("server".into(), toml::Value::try_from(server)?);
        toml::to_string(&table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_config_is_valid() {
        let mut config = Config::parse(EMBEDDED_DEFAULT, "embedded").unwrap();
        config.apply_env(|_| None);
        config.engine.validate().unwrap();
        assert!(config.engine.workflows.contains_key("tryon"));
        assert_eq!(config.server.listen, "127.0.0.1:8080");
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name_in_either_part() {
        let err = Config::parse("[server]\nlisten = \"x\"\nlisen = 1\n", "test").unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
        let err = Config::parse("[storag]\ndata_dir = \"x\"\n", "test").unwrap_err();
        assert!(err.to_string().contains("storag"), "{err}");
    }

    #[test]
    fn environment_overrides_both_parts() {
        let mut config = Config::parse("[server]\napi_token = \"file\"", "test").unwrap();
        config.apply_env(|name| match name {
            "STEPWISE_API_TOKEN" => Some("server-env".to_owned()),
            "REPLICATE_API_TOKEN" => Some("r8-env".to_owned()),
            _ => None,
        });
        assert_eq!(config.server.api_token.as_deref(), Some("server-env"));
        assert_eq!(config.engine.replicate.api_token.as_deref(), Some("r8-env"));
    }

    #[test]
    fn kept_files_default_to_this_servers_address() {
        let config = Config::parse("[server]\nlisten = \"0.0.0.0:9000\"", "test").unwrap();
        let engine = config.engine_config();
        assert_eq!(
            engine.outputs.public_base_url.as_deref(),
            Some("http://0.0.0.0:9000")
        );
        let mut with_webhooks = config.clone();
        with_webhooks.engine.replicate.webhook_base_url = Some("https://hooks.example".into());
        assert_eq!(with_webhooks.engine_config().outputs.public_base_url, None);
    }

    #[test]
    fn the_effective_config_prints_as_toml_that_reads_back_with_secrets_masked() {
        let mut config = Config::parse(EMBEDDED_DEFAULT, "embedded").unwrap();
        config.server.api_token = Some("hunter2".into());
        config.engine.replicate.api_token = Some("r8_secret".into());
        let text = config.masked_toml().unwrap();
        assert!(
            !text.contains("hunter2") && !text.contains("r8_secret"),
            "{text}"
        );
        assert!(text.contains("api_token = \"***\""), "{text}");
        let again = Config::parse(&text, "printed").unwrap();
        assert_eq!(again.server.listen, config.server.listen);
        assert_eq!(
            again.engine.storage.retention,
            config.engine.storage.retention
        );
        assert_eq!(
            again.engine.workflows["tryon"].input,
            config.engine.workflows["tryon"].input
        );
    }

    /// Byte-equal, not equal after parsing: the repository's copy is what people read and
    /// edit, so its comments must say what the binary's defaults say, word for word.
    #[test]
    fn the_repository_config_is_the_embedded_default() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config.toml");
        let repo = std::fs::read_to_string(path).expect("the repository's config.toml");
        assert!(
            repo == EMBEDDED_DEFAULT,
            "config.toml and server/src/default_config.toml differ: copy one onto the other"
        );
    }

    /// Every key the config reads appears in the shipped file, set or commented out.
    #[test]
    fn the_shipped_config_shows_every_key() {
        let mut config = Config::parse(EMBEDDED_DEFAULT, "embedded").unwrap();
        config.server.api_token = Some("x".into());
        let replicate = &mut config.engine.replicate;
        replicate.api_token = Some("x".into());
        replicate.webhook_base_url = Some("x".into());
        replicate.webhook_secret = Some("x".into());
        config.engine.outputs.public_base_url = Some("x".into());
        let workflow = config.engine.workflows.get_mut("tryon").unwrap();
        workflow.version = Some("x".into());
        workflow.step_timeout = Some(std::time::Duration::from_secs(1));
        workflow.task_timeout = Some(std::time::Duration::from_secs(1));
        workflow.max_in_flight = Some(1);
        // Every key a stage has, on one stage.
        let stage = &mut config.engine.workflows.get_mut("lookbook").unwrap().stages[0];
        stage.version = Some("x".into());
        stage.fallback_version = Some("x".into());
        stage.each = Some("item".into());
        stage.parallel = true;
        stage.max_parallel = Some(1);
        stage.step_retries = Some(1);
        stage.step_timeout = Some(std::time::Duration::from_secs(1));
        let full: toml::Table = toml::from_str(&config.masked_toml().unwrap()).unwrap();
        let shown = |key: &str| {
            EMBEDDED_DEFAULT
                .lines()
                .map(|line| line.trim_start_matches('#').trim_start())
                .any(|line| line.starts_with(&format!("{key} = ")))
        };
        let mut missing = vec![];
        for (section, keys) in &full {
            let sections: Vec<&toml::Value> = match (section.as_str(), keys.as_table()) {
                ("workflows", Some(workflows)) => workflows
                    .values()
                    .chain(
                        workflows
                            .values()
                            .filter_map(|w| w.get("stages")?.as_array())
                            .flatten(),
                    )
                    .collect(),
                (_, Some(_)) => vec![keys],
                _ => vec![],
            };
            for table in sections.iter().filter_map(|t| t.as_table()) {
                for key in table.keys() {
                    // `[replicate]` is printed in `_ms` names; the file shows the plain ones.
                    let plain = key.strip_suffix("_ms").unwrap_or(key);
                    let table_key = matches!(key.as_str(), "input" | "first" | "stages");
                    if !table_key && !shown(plain) {
                        missing.push(format!("{section}.{key}"));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "not in config.toml: {missing:?}");
    }
}
