//! 429s (storms, injected 429s and the real rate limits) and the statistics that report what
//! the simulator saw.

use std::time::{Duration, Instant};

use replicate_sim::{Endpoint, EndpointFaults, Faults, RateLimits, SimConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn a_storm_throttles_every_request_with_retry_after_until_it_ends() {
    let app = spawn_sim(SimConfig::default()).await;
    let input = json!({"prompt": "before the storm"});
    app.create_for_model("acme/m", input.clone()).await;
    let file = format!(
        "/files/{}/out-0.png",
        replicate_sim::output_hash("acme/m", &input)
    );
    let storm_started = Instant::now();
    app.sim.set_faults(Faults {
        storm_ms: 400,
        storm_retry_after_s: 7,
        retry_after_header: true,
        ..Faults::default()
    });
    let response = app.try_create().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"detail":"Request was throttled. Your rate limit resets in ~7s.","status":429,"retry_after":7})
    );
    let files = app.http.get(app.url(&file));
    assert_eq!(
        files.send().await.unwrap().status(),
        StatusCode::OK,
        "/files is not throttled"
    );

    eventually(Duration::from_secs(5), "the end of the storm", || async {
        let status = app.get("/v1/predictions").send().await.unwrap().status();
        (status == StatusCode::OK).then_some(())
    })
    .await;
    assert!(
        storm_started.elapsed() >= Duration::from_millis(400),
        "the storm ended early"
    );
    assert_eq!(
        app.try_create().await.unwrap().status(),
        StatusCode::CREATED
    );
    let stats = app.sim.stats();
    assert_eq!(stats.rate_limited, 0, "a storm is not a real rate limit");
    assert!(stats.responses[&429] >= 1);
}

#[tokio::test]
async fn an_injected_429_has_a_retry_after_body_and_no_header_unless_asked() {
    let app = spawn_sim(SimConfig::default()).await;
    app.sim.set_faults(Faults {
        storm_retry_after_s: 3,
        ..on(
            Endpoint::List,
            EndpointFaults {
                error_rate: 1.0,
                error_statuses: vec![429],
                ..EndpointFaults::default()
            },
        )
    });
    let response = app.get("/v1/predictions").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get("retry-after").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["retry_after"], 3);
    app.sim.clear_faults();
    assert_eq!(
        app.get("/v1/predictions").send().await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_real_rate_limit_throttles_creates_beyond_the_burst() {
    let app = spawn_sim(SimConfig {
        rate_limits: Some(RateLimits {
            creates_per_minute: 60,
            create_burst: 2,
            others_per_minute: 3000,
            other_burst: 3000,
        }),
        ..SimConfig::default()
    })
    .await;
    app.sim.set_faults(Faults {
        retry_after_header: true,
        ..Faults::default()
    });
    for _ in 0..2 {
        assert_eq!(
            app.try_create().await.unwrap().status(),
            StatusCode::CREATED
        );
    }
    let third = app.try_create().await.unwrap();
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    let header: u64 = third.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = third.json().await.unwrap();
    let retry_after = body["retry_after"].as_u64().unwrap();
    assert!(retry_after >= 1);
    assert_eq!(header, retry_after);
    assert_eq!(
        app.get("/v1/predictions").send().await.unwrap().status(),
        StatusCode::OK
    );
    let stats = app.sim.stats();
    assert_eq!(stats.rate_limited, 1);
    assert_eq!(stats.injected_errors, 0);
    assert_eq!(app.sim.create_calls(), 2);
}

#[tokio::test]
async fn stats_count_requests_per_endpoint_and_answers_per_status() {
    let app = spawn_sim(SimConfig::default()).await;
    let id = app.create_for_model("acme/m", json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.fetch(&id).await;
    app.list_ids().await;
    app.post(&format!("/v1/predictions/{id}/cancel"))
        .send()
        .await
        .unwrap();
    app.get("/v1/webhooks/default/secret").send().await.unwrap();
    app.get("/v1/nowhere").send().await.unwrap();
    app.http
        .get(app.url("/v1/predictions"))
        .send()
        .await
        .unwrap();
    let stats = app.sim.stats();
    let requests = |e| stats.requests.get(&e).copied().unwrap_or(0);
    assert_eq!(requests(Endpoint::Create), 1);
    assert_eq!(requests(Endpoint::Get), 1);
    assert_eq!(requests(Endpoint::List), 2);
    assert_eq!(requests(Endpoint::Cancel), 1);
    assert_eq!(requests(Endpoint::Other), 2);
    let expected = [(201, 1), (200, 4), (404, 1), (401, 1)]
        .into_iter()
        .collect();
    assert_eq!(stats.responses, expected);
}

#[tokio::test]
async fn sliding_window_maxima_report_the_busiest_second_and_minute() {
    let app = spawn_sim(SimConfig::default()).await;
    for _ in 0..3 {
        app.try_create().await.unwrap();
    }
    app.list_ids().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..2 {
        app.try_create().await.unwrap();
    }
    for _ in 0..4 {
        app.list_ids().await;
    }
    let stats = app.sim.stats();
    assert_eq!(stats.max_creates_per_second, 3);
    assert_eq!(stats.max_creates_per_minute, 5);
    assert_eq!(stats.max_others_per_second, 4);
    assert_eq!(stats.max_others_per_minute, 5);
}
