//! `Prefer: wait` sync mode and shutdown while a request waits.

use std::time::{Duration, Instant};

use replicate_sim::SimConfig;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn prefer_wait_blocks_until_the_prediction_finishes() {
    let app = spawn_sim(SimConfig {
        default_model: behavior(20, 100),
        ..SimConfig::default()
    })
    .await;
    let response = app
        .post("/v1/models/acme/m/predictions")
        .header("Prefer", "wait=5")
        .json(&json!({"input": {"a": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["preference-applied"], "wait=5");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "succeeded");
    assert!(body["output"].is_string());

    app.sim.set_model("acme/slow", behavior(0, 60_000));
    let started = Instant::now();
    let response = app
        .post("/v1/models/acme/slow/predictions")
        .header("Prefer", "wait=1")
        .json(&json!({"input": {}}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "processing");
    assert!(started.elapsed() >= Duration::from_millis(900));

    let bad = app
        .post("/v1/models/acme/m/predictions")
        .header("Prefer", "wait=61")
        .json(&json!({"input": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn shutdown_is_quick_even_with_a_waiting_request() {
    let app = spawn_sim(SimConfig {
        default_model: behavior(0, 60_000),
        ..SimConfig::default()
    })
    .await;
    let request = app
        .post("/v1/models/acme/m/predictions")
        .header("Prefer", "wait")
        .json(&json!({"input": {}}));
    let waiting = tokio::spawn(async move { request.send().await });
    let give_up = Instant::now() + Duration::from_secs(5);
    while app.sim.create_calls() == 0 {
        assert!(Instant::now() < give_up, "the waiting create never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    app.sim.shutdown().await;
    assert!(started.elapsed() < Duration::from_millis(1500));
    let _ = waiting.await;
}
