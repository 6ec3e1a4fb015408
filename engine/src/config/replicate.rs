//! `[replicate]`: how the engine talks to Replicate. Each duration reads from either of two
//! names, `poll_initial = "2s"` or `poll_initial_ms = 2000` (giving both is an error), and is
//! kept, and written back, as the `_ms` milliseconds the engine reads. No IO in here.

use super::duration::{self, keys};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(try_from = "ReplicateFile")]
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
    /// Most predictions in flight at once, over every task (`runtime::admission`); 0: no cap.
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

/// `[replicate]` as written in the file: each duration under its name (a duration, bare
/// numbers in seconds) or its `_ms` name (bare numbers in milliseconds); what is not given
/// takes the default.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ReplicateFile {
    api_base: Option<String>,
    api_token: Option<String>,
    #[serde(deserialize_with = "keys::poll_initial")]
    poll_initial: Option<Duration>,
    #[serde(deserialize_with = "keys::poll_initial_ms")]
    poll_initial_ms: Option<Duration>,
    #[serde(deserialize_with = "keys::poll_max")]
    poll_max: Option<Duration>,
    #[serde(deserialize_with = "keys::poll_max_ms")]
    poll_max_ms: Option<Duration>,
    #[serde(deserialize_with = "keys::connect_timeout")]
    connect_timeout: Option<Duration>,
    #[serde(deserialize_with = "keys::connect_timeout_ms")]
    connect_timeout_ms: Option<Duration>,
    #[serde(deserialize_with = "keys::request_timeout")]
    request_timeout: Option<Duration>,
    #[serde(deserialize_with = "keys::request_timeout_ms")]
    request_timeout_ms: Option<Duration>,
    #[serde(deserialize_with = "keys::retry_initial")]
    retry_initial: Option<Duration>,
    #[serde(deserialize_with = "keys::retry_initial_ms")]
    retry_initial_ms: Option<Duration>,
    #[serde(deserialize_with = "keys::retry_max")]
    retry_max: Option<Duration>,
    #[serde(deserialize_with = "keys::retry_max_ms")]
    retry_max_ms: Option<Duration>,
    creates_per_minute: Option<u32>,
    create_burst: Option<u32>,
    other_calls_per_minute: Option<u32>,
    other_burst: Option<u32>,
    max_in_flight: Option<usize>,
    webhook_base_url: Option<String>,
    webhook_secret: Option<String>,
    #[serde(deserialize_with = "keys::safety_poll")]
    safety_poll: Option<Duration>,
    #[serde(deserialize_with = "keys::safety_poll_ms")]
    safety_poll_ms: Option<Duration>,
}

impl TryFrom<ReplicateFile> for ReplicateConfig {
    type Error = String;

    /// Every key given under both its names is reported, in one message.
    fn try_from(file: ReplicateFile) -> Result<Self, String> {
        let d = ReplicateConfig::default();
        let mut both = vec![];
        let mut pick =
            |name, plain, ms, default| pick(name, plain, ms, &mut both).unwrap_or(default);
        let config = ReplicateConfig {
            poll_initial_ms: pick(
                "poll_initial",
                file.poll_initial,
                file.poll_initial_ms,
                d.poll_initial_ms,
            ),
            poll_max_ms: pick("poll_max", file.poll_max, file.poll_max_ms, d.poll_max_ms),
            connect_timeout_ms: pick(
                "connect_timeout",
                file.connect_timeout,
                file.connect_timeout_ms,
                d.connect_timeout_ms,
            ),
            request_timeout_ms: pick(
                "request_timeout",
                file.request_timeout,
                file.request_timeout_ms,
                d.request_timeout_ms,
            ),
            retry_initial_ms: pick(
                "retry_initial",
                file.retry_initial,
                file.retry_initial_ms,
                d.retry_initial_ms,
            ),
            retry_max_ms: pick(
                "retry_max",
                file.retry_max,
                file.retry_max_ms,
                d.retry_max_ms,
            ),
            safety_poll_ms: pick(
                "safety_poll",
                file.safety_poll,
                file.safety_poll_ms,
                d.safety_poll_ms,
            ),
            api_base: file.api_base.unwrap_or(d.api_base),
            api_token: file.api_token,
            creates_per_minute: file.creates_per_minute.unwrap_or(d.creates_per_minute),
            create_burst: file.create_burst.unwrap_or(d.create_burst),
            other_calls_per_minute: file
                .other_calls_per_minute
                .unwrap_or(d.other_calls_per_minute),
            other_burst: file.other_burst.unwrap_or(d.other_burst),
            max_in_flight: file.max_in_flight.unwrap_or(d.max_in_flight),
            webhook_base_url: file.webhook_base_url,
            webhook_secret: file.webhook_secret,
        };
        if both.is_empty() {
            Ok(config)
        } else {
            Err(format!(
                "{}: give each duration under one of its names",
                both.join("; ")
            ))
        }
    }
}

/// The milliseconds of the duration `name` when given under one of its names, `name` or
/// `name_ms`; one given under both is noted in `both`.
fn pick(
    name: &str,
    plain: Option<Duration>,
    ms: Option<Duration>,
    both: &mut Vec<String>,
) -> Option<u64> {
    match (plain, ms) {
        (Some(_), Some(_)) => {
            both.push(format!(
                "`replicate.{name}` and `replicate.{name}_ms` are both set"
            ));
            None
        }
        (Some(duration), None) | (None, Some(duration)) => Some(duration::millis(duration)),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<ReplicateConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn each_duration_reads_from_its_name_or_its_ms_name() {
        let named = read("poll_initial = \"2s\"\nsafety_poll = 45").unwrap();
        let in_ms = read("poll_initial_ms = 2000\nsafety_poll_ms = 45000").unwrap();
        for config in [named, in_ms] {
            assert_eq!(config.poll_initial_ms, 2000);
            assert_eq!(config.safety_poll_ms, 45_000);
            assert_eq!(config.poll_max_ms, ReplicateConfig::default().poll_max_ms);
        }
        let text = read("request_timeout_ms = \"1m\"\nretry_initial_ms = \"250\"").unwrap();
        assert_eq!(text.request_timeout_ms, 60_000, "units in a _ms key");
        assert_eq!(
            text.retry_initial_ms, 250,
            "a bare number in a _ms key is ms"
        );
    }

    #[test]
    fn a_duration_under_both_names_is_refused_naming_both() {
        let err = read(
            "poll_initial = \"2s\"\npoll_initial_ms = 2000\nretry_max = \"1m\"\nretry_max_ms = 1",
        )
        .unwrap_err();
        for key in [
            "`replicate.poll_initial` and `replicate.poll_initial_ms` are both set",
            "`replicate.retry_max` and `replicate.retry_max_ms` are both set",
        ] {
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn the_section_is_written_in_milliseconds_and_reads_back() {
        let config = ReplicateConfig {
            poll_initial_ms: 1500,
            retry_max_ms: 120_000,
            ..ReplicateConfig::default()
        };
        let text = toml::to_string(&config).unwrap();
        assert!(text.contains("poll_initial_ms = 1500"), "{text}");
        let again = read(&text).unwrap();
        assert_eq!(again.poll_initial_ms, 1500);
        assert_eq!(again.retry_max_ms, 120_000);
        assert_eq!(again.api_base, config.api_base);
        assert_eq!(again.create_burst, config.create_burst);
    }

    #[test]
    fn unknown_keys_are_still_refused() {
        let err = read("poll_intial = \"1s\"").unwrap_err();
        assert!(err.contains("unknown field `poll_intial`"), "{err}");
    }
}
