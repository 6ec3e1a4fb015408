//! The Replicate HTTP client: typed requests and responses, every error classified as
//! retryable (429, 5xx, timeouts, connection failures) or final (other 4xx), and the lookup
//! that finds a prediction a previous run may have created (recovery before re-creating).

use crate::config::ReplicateConfig;
use crate::metrics::{CallStatus, LimiterBucket};
use crate::model::Millis;
use crate::ratelimit::RateLimiter;
use crate::workflow::Target;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// How often one list page is fetched again after a retryable failure.
const PAGE_RETRIES: u32 = 4;

/// The fields of a prediction that the engine uses; every other key is ignored, and every key
/// but `id` and `status` may be missing (older API responses leave them out).
#[derive(Clone, Debug, Deserialize)]
pub struct Prediction {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub input: Option<Value>,
    #[serde(default)]
    pub output: Option<Value>,
    #[serde(default)]
    pub error: Option<Value>,
    #[serde(default)]
    pub created_at: Option<String>,
    /// Replicate deleted the input and output (an hour after an API prediction ends).
    #[serde(default)]
    pub data_removed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Starting,
    Processing,
    Succeeded,
    Failed,
    /// `canceled`, or `aborted` (a deadline passed before it started).
    Canceled,
}

impl Prediction {
    /// Unknown statuses read as `Starting`: keep checking rather than guess an ending.
    pub fn phase(&self) -> Phase {
        match self.status.as_str() {
            "processing" => Phase::Processing,
            "succeeded" => Phase::Succeeded,
            "failed" => Phase::Failed,
            "canceled" | "aborted" => Phase::Canceled,
            _ => Phase::Starting,
        }
    }

    /// The error text of a failed prediction.
    pub fn error_text(&self) -> String {
        match &self.error {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Null) | None => format!("prediction {}", self.status),
            Some(other) => other.to_string(),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// Worth trying again later, after `retry_after` when the server said so. `refused`:
    /// the call surely did nothing (a 429, or no connection was made), so a create it stood
    /// for made no prediction.
    /// `rate_limited`: Replicate answered 429.
    #[error("{message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
        refused: bool,
        rate_limited: bool,
    },
    /// Trying again will not help; `detail` is the provider's explanation.
    #[error("HTTP {status}: {detail}")]
    Final { status: u16, detail: String },
}

/// Why `get_json` has no prediction to show.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LookupError {
    /// No call slot within the wait, or Replicate answered 429: try again after this long.
    #[error("rate limited; try again in {0:?}")]
    RateLimited(Duration),
    /// Replicate answered an error, or could not be reached.
    #[error("{0}")]
    Upstream(ClientError),
}

#[derive(Clone)]
pub struct ReplicateClient {
    http: reqwest::Client,
    base: String,
    auth: String,
    /// Creates and every other call have separate limits at Replicate.
    creates: Arc<RateLimiter>,
    others: Arc<RateLimiter>,
}

/// `GET /v1/account`: who the token belongs to.
#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    /// `user` or `organization`.
    #[serde(rename = "type")]
    pub kind: String,
    pub username: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub github_url: Option<String>,
}

#[derive(Deserialize)]
struct RawPage {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    results: Vec<Prediction>,
}

/// One page of the prediction list, newest first, and the next (older) page's address.
pub struct Page {
    pub next: Option<reqwest::Url>,
    pub results: Vec<Prediction>,
}

impl ClientError {
    /// A failure worth retrying that may have had an effect.
    pub fn retryable(message: String) -> Self {
        ClientError::Retryable {
            message,
            retry_after: None,
            refused: false,
            rate_limited: false,
        }
    }

    /// The call surely did nothing at Replicate.
    pub fn refused(&self) -> bool {
        matches!(self, ClientError::Retryable { refused: true, .. })
    }
}

impl ReplicateClient {
    pub fn new(config: &ReplicateConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("stepwise/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ReplicateClient {
            http,
            base: config.api_base.trim_end_matches('/').to_owned(),
            auth: format!("Bearer {}", config.api_token.as_deref().unwrap_or_default()),
            creates: Arc::new(RateLimiter::per_minute(
                config.creates_per_minute,
                config.create_burst,
            )),
            others: Arc::new(RateLimiter::per_minute(
                config.other_calls_per_minute,
                config.other_burst,
            )),
        })
    }

    /// Waits for the create rate limiter's next slot, which the following `create` uses.
    pub async fn create_slot(&self) {
        self.wait("create", &self.creates).await;
    }

    /// Creates a prediction, in a slot taken with `create_slot`; with `cancel_after`,
    /// Replicate itself cancels it after that long (`aborted` if it never started).
    /// With `webhook`, Replicate posts the prediction there when it starts and when it ends.
    pub async fn create(
        &self,
        target: &Target,
        input: &Value,
        cancel_after: Option<Duration>,
        webhook: Option<&str>,
    ) -> Result<Prediction, ClientError> {
        let (url, mut body) = match target {
            Target::Model(model) => (
                format!("{}/v1/models/{model}/predictions", self.base),
                json!({ "input": input }),
            ),
            Target::Version(version) => (
                format!("{}/v1/predictions", self.base),
                json!({ "version": version, "input": input }),
            ),
        };
        if let Some(webhook) = webhook {
            body["webhook"] = json!(webhook);
            body["webhook_events_filter"] = json!(["start", "completed"]);
        }
        let mut request = self.http.post(url).json(&body);
        if let Some(after) = cancel_after {
            request = request.header("Cancel-After", format!("{}s", after.as_secs().max(1)));
        }
        self.send_now("create", &self.creates, request).await
    }

    pub async fn get(&self, id: &str) -> Result<Prediction, ClientError> {
        self.send(
            "get",
            &self.others,
            self.http.get(format!("{}/v1/predictions/{id}", self.base)),
        )
        .await
    }

    /// The prediction as Replicate answers it, every key kept, for showing to a person: it
    /// waits at most `max_wait` for a slot under the limit of other calls.
    pub async fn get_json(&self, id: &str, max_wait: Duration) -> Result<Value, LookupError> {
        let waited = self
            .others
            .acquire_within(max_wait)
            .await
            .map_err(LookupError::RateLimited)?;
        let counter = crate::metrics::global().rate_limiter_wait(LimiterBucket::Others);
        counter.inc_by(waited.as_secs_f64());
        let url = format!("{}/v1/predictions/{id}", self.base);
        match self.send_now("get", &self.others, self.http.get(url)).await {
            Ok(value) => Ok(value),
            Err(ClientError::Retryable {
                retry_after,
                rate_limited: true,
                ..
            }) => Err(LookupError::RateLimited(
                retry_after.unwrap_or(Duration::from_secs(1)),
            )),
            Err(error) => Err(LookupError::Upstream(error)),
        }
    }

    pub async fn cancel(&self, id: &str) -> Result<Prediction, ClientError> {
        let url = format!("{}/v1/predictions/{id}/cancel", self.base);
        self.send("cancel", &self.others, self.http.post(url)).await
    }

    /// The account's webhook signing secret (`whsec_...`).
    pub async fn webhook_secret(&self) -> Result<String, ClientError> {
        #[derive(Deserialize)]
        struct Secret {
            key: String,
        }
        let url = format!("{}/v1/webhooks/default/secret", self.base);
        let secret: Secret = self
            .send("secret", &self.others, self.http.get(url))
            .await?;
        Ok(secret.key)
    }

    /// The account the token belongs to (`GET /v1/account`); `serve` calls it at start to
    /// check the token. A rejected token is `Final { status: 401, .. }`.
    pub async fn account(&self) -> Result<Account, ClientError> {
        let url = format!("{}/v1/account", self.base);
        self.send("account", &self.others, self.http.get(url)).await
    }

    /// The first page of the predictions created in `[from, until]` (ms).
    pub fn list_url(&self, from: Millis, until: Millis) -> Result<reqwest::Url, ClientError> {
        // `created_before` is exclusive at Replicate: one ms past `until`.
        let window = [
            ("created_after", crate::time::rfc3339(from)),
            ("created_before", crate::time::rfc3339(until + 1)),
        ];
        reqwest::Url::parse_with_params(&format!("{}/v1/predictions", self.base), &window).map_err(
            |e| ClientError::Final {
                status: 0,
                detail: format!("bad list URL: {e}"),
            },
        )
    }

    /// One page of the list. A page that fails is fetched again a few times, so one flaky
    /// page does not waste the pages read before it.
    pub async fn list_page(&self, url: reqwest::Url) -> Result<Page, ClientError> {
        let page = self.page(url).await?;
        // A `next` that is not a URL ends the walk, as its absence does.
        let next = page
            .next
            .as_deref()
            .and_then(|next| reqwest::Url::parse(next).ok());
        Ok(Page {
            next,
            results: page.results,
        })
    }

    async fn page(&self, url: reqwest::Url) -> Result<RawPage, ClientError> {
        let mut tries = 0;
        loop {
            match self
                .send("list", &self.others, self.http.get(url.clone()))
                .await
            {
                Err(ClientError::Retryable { retry_after, .. }) if tries < PAGE_RETRIES => {
                    tries += 1;
                    let wait = retry_after.unwrap_or(Duration::from_millis(100 << tries));
                    tokio::time::sleep(wait.min(Duration::from_secs(5))).await;
                }
                other => return other,
            }
        }
    }

    /// One call: waits for the rate limiter, then `send_now`.
    async fn send<T: for<'de> Deserialize<'de>>(
        &self,
        endpoint: &'static str,
        limiter: &RateLimiter,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        self.wait(endpoint, limiter).await;
        self.send_now(endpoint, limiter, request).await
    }

    /// Waits for the limiter's next slot and counts the wait.
    async fn wait(&self, endpoint: &'static str, limiter: &RateLimiter) {
        let bucket = if endpoint == "create" {
            LimiterBucket::Creates
        } else {
            LimiterBucket::Others
        };
        let waited = limiter.acquire().await;
        let counter = crate::metrics::global().rate_limiter_wait(bucket);
        counter.inc_by(waited.as_secs_f64());
    }

    /// One call in a slot already taken: sends, classifies the answer, counts it.
    async fn send_now<T: for<'de> Deserialize<'de>>(
        &self,
        endpoint: &'static str,
        limiter: &RateLimiter,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let metrics = crate::metrics::global();
        let count = |status| {
            metrics.replicate_calls(endpoint, status).inc();
        };
        let sent = request
            .header(reqwest::header::AUTHORIZATION, &self.auth)
            .send()
            .await;
        let response = sent.map_err(|e| {
            count(if e.is_timeout() {
                CallStatus::Timeout
            } else {
                CallStatus::Error
            });
            // No connection, no request: nothing reached Replicate.
            let refused = e.is_connect();
            ClientError::Retryable {
                message: format!("request failed: {}", describe(&e)),
                retry_after: None,
                refused,
                rate_limited: false,
            }
        })?;
        let status = response.status();
        count(CallStatus::Http(status.as_u16()));
        let retry_after = header_seconds(response.headers());
        let body = response.bytes().await.map_err(|e| {
            retryable(
                format!("reading the response failed: {}", describe(&e)),
                None,
            )
        })?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| retryable(format!("unreadable response from Replicate: {e}"), None));
        }
        let problem: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let detail = problem
            .get("detail")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(500).collect());
        let code = status.as_u16();
        if code == 429 || code == 408 || status.is_server_error() {
            let body_retry = problem.get("retry_after").and_then(Value::as_f64);
            let retry_after = retry_after.or(body_retry.and_then(seconds));
            if code == 429 {
                limiter.pause(retry_after.unwrap_or(Duration::from_secs(1)));
            }
            let message = format!("HTTP {code}: {detail}");
            Err(ClientError::Retryable {
                message,
                retry_after,
                refused: code == 429,
                rate_limited: code == 429,
            })
        } else {
            Err(ClientError::Final {
                status: code,
                detail,
            })
        }
    }
}

fn retryable(message: String, retry_after: Option<Duration>) -> ClientError {
    ClientError::Retryable {
        message,
        retry_after,
        refused: false,
        rate_limited: false,
    }
}

fn header_seconds(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<f64>().ok().and_then(seconds)
}

/// A server-given wait, clamped to an hour; nonsense (negative, NaN) is ignored.
fn seconds(value: f64) -> Option<Duration> {
    (value.is_finite() && value >= 0.0).then(|| Duration::from_secs_f64(value.min(3600.0)))
}

fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
