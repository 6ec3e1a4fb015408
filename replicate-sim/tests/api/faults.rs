//! Injected faults: errors, resets, hangs and latency per endpoint, and the lifecycle switches
//! (cold boots, forced failures).

use std::time::{Duration, Instant};

use replicate_sim::{Endpoint, EndpointFaults, Faults, SimConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn an_injected_create_error_is_a_5xx_problem_and_creates_nothing() {
    let app = spawn_sim(SimConfig::default()).await;
    app.sim.set_faults(on(
        Endpoint::Create,
        EndpointFaults {
            error_rate: 1.0,
            ..EndpointFaults::default()
        },
    ));
    for _ in 0..5 {
        let response = app.try_create().await.unwrap();
        assert!(
            [500, 502, 503, 504].contains(&response.status().as_u16()),
            "{}",
            response.status()
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], status);
        assert!(body["detail"].is_string());
    }
    assert_eq!(app.sim.create_calls(), 0);
    assert!(app.sim.predictions().is_empty());
    assert!(
        app.list_ids().await.is_empty(),
        "other endpoints are unaffected"
    );
    let stats = app.sim.stats();
    assert_eq!(stats.injected_errors, 5);
    assert_eq!(stats.requests[&Endpoint::Create], 5);
}

#[tokio::test]
async fn an_error_after_work_answers_503_but_the_prediction_exists() {
    let app = spawn_sim(SimConfig::default()).await;
    app.sim.set_faults(on(
        Endpoint::Create,
        EndpointFaults {
            error_after_work_rate: 1.0,
            ..EndpointFaults::default()
        },
    ));
    let response = app.try_create().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(app.sim.create_calls(), 1);
    let created = app.sim.predictions();
    assert_eq!(created.len(), 1);
    assert_eq!(
        app.list_ids().await,
        vec![created[0]["id"].as_str().unwrap()]
    );
    assert_eq!(app.sim.stats().injected_errors, 1);
}

#[tokio::test]
async fn a_reset_is_a_transport_error_and_creates_nothing() {
    let app = spawn_sim(SimConfig::default()).await;
    app.sim.set_faults(on(
        Endpoint::Create,
        EndpointFaults {
            reset_rate: 1.0,
            ..EndpointFaults::default()
        },
    ));
    let error = app
        .try_create()
        .await
        .expect_err("the connection is dropped");
    assert!(!error.is_timeout() && error.status().is_none(), "{error:?}");
    assert_eq!(app.sim.create_calls(), 0);
    let stats = app.sim.stats();
    assert_eq!(stats.injected_resets, 1);
    assert_eq!(
        stats.responses.values().sum::<u64>(),
        0,
        "a reset is not an answer"
    );
    assert!(app.list_ids().await.is_empty(), "the next connection works");
}

#[tokio::test]
async fn a_reset_after_work_creates_the_prediction_but_the_client_sees_a_transport_error() {
    let app = spawn_sim(SimConfig::default()).await;
    app.sim.set_faults(on(
        Endpoint::Create,
        EndpointFaults {
            reset_after_work_rate: 1.0,
            ..EndpointFaults::default()
        },
    ));
    let error = app
        .try_create()
        .await
        .expect_err("the connection is dropped");
    assert!(!error.is_timeout() && error.status().is_none(), "{error:?}");
    assert_eq!(app.sim.create_calls(), 1);
    assert_eq!(app.list_ids().await.len(), 1);
    let stats = app.sim.stats();
    assert_eq!(
        stats.requests[&Endpoint::Create],
        1,
        "the client did not retry"
    );
    assert_eq!(stats.injected_resets, 1);
}

#[tokio::test]
async fn a_hang_holds_the_request_until_the_client_times_out_and_shutdown_releases_it() {
    let app = spawn_sim(SimConfig::default()).await;
    app.sim.set_faults(on(
        Endpoint::Get,
        EndpointFaults {
            hang_rate: 1.0,
            ..EndpointFaults::default()
        },
    ));
    let id = app.create_for_model("acme/m", json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let error = app
        .get(&format!("/v1/predictions/{id}"))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("a hang never answers");
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(app.sim.stats().injected_hangs, 1);

    let held = tokio::spawn({
        let request = app.get(&format!("/v1/predictions/{id}"));
        async move { request.send().await }
    });
    eventually(Duration::from_secs(5), "the second hang", || async {
        (app.sim.stats().injected_hangs == 2).then_some(())
    })
    .await;
    let started = Instant::now();
    app.sim.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "shutdown waited for the hang"
    );
    assert!(held.await.unwrap().is_err());
}

#[tokio::test]
async fn a_cold_boot_keeps_a_prediction_starting_longer() {
    let app = spawn_sim(SimConfig {
        default_model: behavior(20, 20),
        ..SimConfig::default()
    })
    .await;
    let warm = app.create_for_model("acme/m", json!({"n": 1})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.sim.set_faults(Faults {
        cold_boot_rate: 1.0,
        cold_boot_ms: 5_000,
        ..Faults::default()
    });
    let cold = app.create_for_model("acme/m", json!({"n": 2})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.wait_until_finished(&warm).await["status"], "succeeded");
    assert_eq!(app.fetch(&cold).await["status"], "starting");
}

#[tokio::test]
async fn a_prediction_failure_rate_of_one_fails_every_prediction() {
    let app = spawn_sim(SimConfig {
        default_model: behavior(10, 10),
        ..SimConfig::default()
    })
    .await;
    app.sim.set_faults(Faults {
        prediction_failure_rate: Some(1.0),
        ..Faults::default()
    });
    for n in 0..3 {
        let id = app.create_for_model("acme/m", json!({ "n": n })).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let done = app.wait_until_finished(&id).await;
        assert_eq!(done["status"], "failed");
        assert_eq!(done["error"], "Simulated model failure");
    }
}

#[tokio::test]
async fn added_latency_delays_the_answer() {
    let app = spawn_sim(SimConfig::default()).await;
    app.sim.set_faults(on(
        Endpoint::List,
        EndpointFaults {
            latency_ms: (200, 250),
            ..EndpointFaults::default()
        },
    ));
    let started = Instant::now();
    assert_eq!(
        app.get("/v1/predictions").send().await.unwrap().status(),
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
}
