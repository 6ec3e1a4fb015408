//! Shared helpers: each test gets its own simulator on a port-0 listener and a reqwest client.

use std::time::{Duration, Instant};

use replicate_sim::{start, ModelBehavior, SimConfig, SimHandle};
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
