//! Webhook deliveries: events and filters, Standard-Webhooks signatures, bodies equal to the
//! prediction JSON, retries with backoff, and the webhook fault switches. Each test runs a small
//! axum receiver on a port-0 listener that records every delivery; absence is proven with a
//! witness prediction whose webhook must arrive later, never by sleeping.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use replicate_sim::{Faults, SimConfig};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::receiver::{verifies, Hit, Receiver, LIMIT};

fn config(starting_ms: u64, processing_ms: u64) -> SimConfig {
    SimConfig {
        default_model: behavior(starting_ms, processing_ms),
        ..SimConfig::default()
    }
}

impl TestSim {
    async fn create_hooked(&self, url: &str, filter: Option<&[&str]>) -> Value {
        let mut body = json!({"input": {"prompt": "a red bicycle"}, "webhook": url});
        if let Some(filter) = filter {
            body["webhook_events_filter"] = json!(filter);
        }
        let response = self
            .post("/v1/models/acme/m/predictions")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::CREATED);
        response.json().await.unwrap()
    }
}

fn id_of(prediction: &Value) -> String {
    prediction["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn start_and_completed_arrive_signed_with_the_prediction_json() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let app = spawn_sim(SimConfig {
        webhook_secret: Some(secret.into()),
        ..config(50, 100)
    })
    .await;
    let hook = Receiver::spawn(0).await;
    let created = app
        .create_hooked(&hook.url, Some(&["start", "completed"]))
        .await;
    let hits = hook.wait_for(2).await;
    assert_eq!(
        hits[0].json(),
        created,
        "start carries the created prediction"
    );
    assert_eq!(hits[0].status(), "starting");
    assert_eq!(hits[1].status(), "succeeded");
    let id = id_of(&created);
    assert_eq!(hits[1].json(), app.fetch(&id).await, "completed = GET");

    let served = app.get("/v1/webhooks/default/secret").send().await.unwrap();
    let served: Value = served.json().await.unwrap();
    assert_eq!(served["key"], secret);
    assert_eq!(app.sim.webhook_secret(), secret);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for hit in &hits {
        assert!(verifies(secret, hit), "signature of {:?}", hit.headers);
        assert_eq!(hit.header("content-type"), "application/json");
        assert!(hit.header("webhook-id").starts_with("msg_"));
        let ts: i64 = hit.header("webhook-timestamp").parse().unwrap();
        assert!((now - ts).abs() <= 5, "timestamp {ts} vs {now}");
    }
    assert_ne!(hits[0].header("webhook-id"), hits[1].header("webhook-id"));

    let times = app.sim.prediction_times(&id).unwrap();
    assert_eq!(times.created_at, parse_time(&created["created_at"]));
    assert_eq!(
        Some(times.completed_at.unwrap()),
        Some(parse_time(&hits[1].json()["completed_at"]))
    );
    assert_eq!(app.sim.prediction(&id).unwrap()["status"], "succeeded");
    let stats = app.sim.stats();
    assert_eq!((stats.webhooks_sent, stats.webhooks_delivered), (2, 2));
    assert_eq!((stats.webhooks_failed, stats.webhooks_dropped), (0, 0));
}

#[tokio::test]
async fn the_random_secret_signs_and_a_bad_configured_one_is_rejected() {
    let app = spawn_sim(config(0, 20)).await;
    let hook = Receiver::spawn(0).await;
    app.create_hooked(&hook.url, Some(&["completed"])).await;
    let hits = hook.wait_for(1).await;
    let served = app.get("/v1/webhooks/default/secret").send().await.unwrap();
    let served: Value = served.json().await.unwrap();
    assert!(verifies(served["key"].as_str().unwrap(), &hits[0]));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bad = SimConfig {
        webhook_secret: Some("not-a-secret".into()),
        ..SimConfig::default()
    };
    assert!(replicate_sim::start(bad, listener).await.is_err());
}

#[tokio::test]
async fn a_completed_filter_sends_only_completed_and_no_webhook_sends_nothing() {
    let app = spawn_sim(config(20, 50)).await;
    let hook = Receiver::spawn(0).await;
    let silent = app.create_for_model("acme/m", json!({"n": 1})).await;
    let only_completed = app.create_hooked(&hook.url, Some(&["completed"])).await;
    let hits = hook.wait_for(1).await;
    assert_eq!(hits[0].json()["id"], only_completed["id"]);
    assert_eq!(hits[0].status(), "succeeded");
    // The silent prediction finished before the completed webhook of the later one.
    let silent = app.fetch(&id_of(&silent)).await;
    assert_eq!(silent["status"], "succeeded");
    // A witness created after both: its completed delivery comes after any start would have.
    let witness = app.create_hooked(&hook.url, Some(&["completed"])).await;
    let hits = hook.wait_for(2).await;
    let ids: Vec<Value> = hits.iter().map(|h| h.json()["id"].clone()).collect();
    assert_eq!(ids, [only_completed["id"].clone(), witness["id"].clone()]);
    assert!(hits.iter().all(|h| h.status() == "succeeded"));
}

#[tokio::test]
async fn completed_is_retried_with_the_same_id_on_the_scaled_schedule() {
    let app = spawn_sim(SimConfig {
        webhook_retry_scale: 0.2,
        ..config(0, 30)
    })
    .await;
    let secret = app.sim.webhook_secret();
    let hook = Receiver::spawn(2).await;
    let created = app.create_hooked(&hook.url, Some(&["completed"])).await;
    let hits = hook.wait_for(3).await;
    let id = hits[0].header("webhook-id").to_string();
    for hit in &hits {
        assert_eq!(hit.header("webhook-id"), id);
        assert!(verifies(&secret, hit));
        assert_eq!(hit.json(), hits[0].json(), "same body on every attempt");
    }
    assert_eq!(hits[0].json()["id"], created["id"]);
    // Retries at 0.5 s and 1.5 s after completion, times 0.2: 100 ms and 300 ms (at scale
    // 1.0 the second retry would come 1.5 s after completion).
    let completed_at = parse_time(&hits[0].json()["completed_at"]);
    let ms = |hit: &Hit| (hit.at - completed_at).whole_milliseconds();
    let (prompt, first, second) = (ms(&hits[0]), ms(&hits[1]), ms(&hits[2]));
    assert!(
        (0..500).contains(&prompt),
        "first attempt {prompt} ms after completion"
    );
    assert!((100..600).contains(&first), "first retry after {first} ms");
    assert!(
        (300..1200).contains(&second),
        "second retry after {second} ms"
    );
    let stats = eventually(LIMIT, "the last answer to be counted", || async {
        let stats = app.sim.stats();
        (stats.webhooks_delivered == 1).then_some(stats)
    })
    .await;
    assert_eq!((stats.webhooks_sent, stats.webhooks_failed), (3, 2));
    assert_eq!(hook.hits().len(), 3, "no retry after a 2xx");
}

#[tokio::test]
async fn drop_all_loses_every_attempt_and_counts_them() {
    let app = spawn_sim(SimConfig {
        webhook_retry_scale: 0.01,
        ..config(0, 20)
    })
    .await;
    app.sim.set_faults(Faults {
        webhook_drop_all: true,
        ..Faults::default()
    });
    let hook = Receiver::spawn(0).await;
    app.create_hooked(&hook.url, None).await;
    // One start attempt plus the first try and seven retries of completed.
    let stats = eventually(LIMIT, "every attempt to be dropped", || async {
        let stats = app.sim.stats();
        (stats.webhooks_dropped == 9).then_some(stats)
    })
    .await;
    assert_eq!(stats.webhooks_sent, 0);
    assert!(hook.hits().is_empty());
}

#[tokio::test]
async fn duplicate_rate_one_sends_every_message_twice() {
    let app = spawn_sim(config(20, 50)).await;
    app.sim.set_faults(Faults {
        webhook_duplicate_rate: 1.0,
        ..Faults::default()
    });
    let hook = Receiver::spawn(0).await;
    app.create_hooked(&hook.url, Some(&["start", "completed"]))
        .await;
    let hits = hook.wait_for(4).await;
    let mut by_id: HashMap<String, Vec<String>> = HashMap::new();
    for hit in &hits {
        by_id
            .entry(hit.header("webhook-id").to_string())
            .or_default()
            .push(hit.status());
    }
    assert_eq!(by_id.len(), 2, "{by_id:?}");
    for statuses in by_id.values() {
        assert_eq!(statuses.len(), 2);
        assert_eq!(statuses[0], statuses[1]);
    }
    let stats = eventually(LIMIT, "four delivered attempts", || async {
        let stats = app.sim.stats();
        (stats.webhooks_delivered == 4).then_some(stats)
    })
    .await;
    assert_eq!(stats.webhooks_sent, 4);
}

#[tokio::test]
async fn reorder_sends_start_after_completed() {
    let app = spawn_sim(config(20, 50)).await;
    app.sim.set_faults(Faults {
        webhook_reorder: true,
        ..Faults::default()
    });
    let hook = Receiver::spawn(0).await;
    app.create_hooked(&hook.url, Some(&["start", "completed"]))
        .await;
    let hits = hook.wait_for(2).await;
    assert_eq!(hits[0].status(), "succeeded");
    assert_eq!(hits[1].status(), "starting");
}

#[tokio::test]
async fn a_cancel_sends_completed_once_with_status_canceled() {
    let app = spawn_sim(config(20, 400)).await;
    let hook = Receiver::spawn(0).await;
    let created = app.create_hooked(&hook.url, Some(&["completed"])).await;
    let id = id_of(&created);
    let canceled = app
        .post(&format!("/v1/predictions/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(canceled.status(), reqwest::StatusCode::OK);
    let hits = hook.wait_for(1).await;
    assert_eq!(hits[0].status(), "canceled");
    assert_eq!(hits[0].json(), app.fetch(&id).await);
    // A witness with the same timing, created later: once its completed arrives, the canceled
    // prediction's planned finish has passed too, and it must not have sent a second one.
    let witness = app.create_hooked(&hook.url, Some(&["completed"])).await;
    let hits = hook.wait_for(2).await;
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[1].json()["id"], witness["id"]);
}

#[tokio::test]
async fn a_cancel_after_deadline_sends_completed_with_status_aborted() {
    let app = spawn_sim(config(2000, 100)).await;
    let hook = Receiver::spawn(0).await;
    let response = app
        .post("/v1/models/acme/m/predictions")
        .header("Cancel-After", "100ms")
        .json(&json!({"input": {}, "webhook": hook.url, "webhook_events_filter": ["completed"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let hits = hook.wait_for(1).await;
    assert_eq!(hits[0].status(), "aborted");
}

#[tokio::test]
async fn a_thousand_predictions_each_get_one_completed_webhook() {
    let app = Arc::new(spawn_sim(config(10, 100)).await);
    let hook = Receiver::spawn(0).await;
    let creates = (0..1000).map(|_| {
        let (app, url) = (app.clone(), hook.url.clone());
        async move { id_of(&app.create_hooked(&url, Some(&["completed"])).await) }
    });
    let mut ids = futures_join(creates.collect()).await;
    let hits = eventually(
        Duration::from_secs(20),
        "1000 completed webhooks",
        || async {
            let hits = hook.hits();
            (hits.len() >= 1000).then_some(hits)
        },
    )
    .await;
    let mut delivered: Vec<String> = hits.iter().map(|h| id_of(&h.json())).collect();
    ids.sort();
    delivered.sort();
    assert_eq!(delivered, ids);
    assert!(hits.iter().all(|h| h.status() == "succeeded"));
}
