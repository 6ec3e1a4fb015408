//! Shared helpers: each test gets its own simulator on a port-0 listener and a reqwest client.

use std::time::{Duration, Instant};

use replicate_sim::{start, Endpoint, EndpointFaults, Faults, ModelBehavior, SimConfig, SimHandle};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub const TOKEN: &str = "r8_sim_token";
pub const VERSION: &str = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa";

pub struct TestSim {
    pub sim: SimHandle,
    pub http: reqwest::Client,
}

pub async fn spawn_sim(config: SimConfig) -> TestSim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = start(config, listener).await.unwrap();
    TestSim {
        sim,
        http: reqwest::Client::new(),
    }
}

pub fn behavior(starting_ms: u64, processing_ms: u64) -> ModelBehavior {
    ModelBehavior {
        starting_ms,
        processing_ms,
        ..ModelBehavior::default()
    }
}

impl TestSim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(TOKEN)
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(TOKEN)
    }

    pub async fn create_for_model(&self, model: &str, input: Value) -> Value {
        let response = self
            .post(&format!("/v1/models/{model}/predictions"))
            .json(&json!({ "input": input }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    /// GETs an absolute URL (e.g. a list `next` link) with the token and returns its JSON.
    pub async fn get_absolute(&self, url: &str) -> Value {
        let response = self.http.get(url).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {url}");
        response.json().await.unwrap()
    }

    pub async fn fetch(&self, id: &str) -> Value {
        let response = self
            .get(&format!("/v1/predictions/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// Polls until the prediction is terminal, failing the test after 5 s.
    pub async fn wait_until_finished(&self, id: &str) -> Value {
        let give_up = Instant::now() + Duration::from_secs(5);
        loop {
            let prediction = self.fetch(id).await;
            let status = prediction["status"].as_str().unwrap().to_string();
            if ["succeeded", "failed", "canceled", "aborted"].contains(&status.as_str()) {
                return prediction;
            }
            assert!(
                Instant::now() < give_up,
                "prediction {id} still {status} after 5 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

pub fn parse_time(value: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().expect("a timestamp string"), &Rfc3339).expect("RFC 3339")
}

/// Runs the futures concurrently on spawned tasks and collects their results in order.
pub async fn futures_join<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

/// Faults on one endpoint only.
pub fn on(endpoint: Endpoint, faults: EndpointFaults) -> Faults {
    Faults {
        endpoints: [(endpoint, faults)].into_iter().collect(),
        ..Faults::default()
    }
}

impl TestSim {
    /// A create for `acme/m`, returning whatever happened (answer or transport error).
    pub async fn try_create(&self) -> reqwest::Result<reqwest::Response> {
        self.post("/v1/models/acme/m/predictions")
            .json(&json!({"input": {"n": 1}}))
            .send()
            .await
    }

    /// The ids on the first list page, newest first.
    pub async fn list_ids(&self) -> Vec<String> {
        let page = self.get_absolute(&self.url("/v1/predictions")).await;
        page["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    }
}

/// Polls `check` every 10 ms until it returns `Some`, failing the test after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let give_up = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < give_up,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
