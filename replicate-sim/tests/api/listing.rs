//! The prediction list, pagination, scale, webhook echo and the webhook secret.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use replicate_sim::SimConfig;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn the_list_pages_newest_first_and_honours_created_after() {
    let app = spawn_sim(SimConfig {
        page_size: 3,
        ..SimConfig::default()
    })
    .await;
    for i in 0..12 {
        app.create_for_model("acme/m", json!({"i": i})).await;
    }
    let all = app.sim.predictions();
    let after = all[4]["created_at"].as_str().unwrap().to_string();
    let expected: Vec<String> = all
        .iter()
        .filter(|p| parse_time(&p["created_at"]) >= parse_time(&json!(after)))
        .map(|p| p["id"].as_str().unwrap().to_string())
        .rev()
        .collect();
    assert!(expected.len() >= 8 && expected.len() <= 12);

    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut next = Some(format!(
        "{}?created_after={}",
        app.url("/v1/predictions"),
        after.replace('+', "%2B")
    ));
    while let Some(url) = next {
        let page = app.get_absolute(&url).await;
        assert!(page["results"].as_array().unwrap().len() <= 3);
        seen.extend(
            page["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_string()),
        );
        next = page["next"].as_str().map(String::from);
        pages.push(page);
    }
    assert!(pages.len() > 2);
    assert_eq!(seen, expected);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len());
    assert_eq!(pages[0]["previous"], Value::Null);

    let back_url = pages[1]["previous"].as_str().unwrap();
    assert!(back_url.starts_with(&app.url("/v1/predictions?cursor=")));
    let back = app.get_absolute(back_url).await;
    let back_ids: Vec<&Value> = back["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["id"])
        .collect();
    let first_ids: Vec<&Value> = pages[0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["id"])
        .collect();
    assert_eq!(back_ids, first_ids);

    let before: Value = app
        .get(&format!(
            "/v1/predictions?created_before={}",
            all[0]["created_at"].as_str().unwrap().replace('+', "%2B")
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before["results"], json!([]));
}

#[tokio::test]
async fn webhooks_are_echoed_and_the_secret_is_stable() {
    let app = spawn_sim(SimConfig::default()).await;
    let body = json!({"input": {}, "webhook": "http://127.0.0.1:9/hook?x=1", "webhook_events_filter": ["start", "completed"]});
    let response = app
        .post("/v1/models/acme/m/predictions")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["ratelimit-remaining"], "599");
    assert_eq!(response.headers()["ratelimit-reset"], "1");
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["webhook"], body["webhook"]);
    assert_eq!(
        created["webhook_events_filter"],
        body["webhook_events_filter"]
    );

    let first: Value = app
        .get("/v1/webhooks/default/secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second: Value = app
        .get("/v1/webhooks/default/secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(first["key"].as_str().unwrap().len(), "whsec_".len() + 32);
}

#[tokio::test]
async fn ten_thousand_predictions_stay_fast_to_list_and_read() {
    let app = spawn_sim(SimConfig::default()).await;
    let creates = (0..10_000).map(|i| {
        let request = app
            .post("/v1/models/acme/m/predictions")
            .json(&json!({"input": {"i": i}}));
        async move { request.send().await.unwrap().status() }
    });
    let mut statuses = Vec::new();
    let mut pending = Vec::new();
    for create in creates {
        pending.push(create);
        if pending.len() == 64 {
            statuses.extend(futures_join(std::mem::take(&mut pending)).await);
        }
    }
    statuses.extend(futures_join(pending).await);
    assert!(statuses.iter().all(|s| *s == StatusCode::CREATED));
    assert_eq!(app.sim.create_calls(), 10_000);

    let started = Instant::now();
    let page: Value = app
        .get("/v1/predictions")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["results"].as_array().unwrap().len(), 100);
    let id = page["results"][0]["id"].as_str().unwrap();
    app.fetch(id).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "list and get took {:?}",
        started.elapsed()
    );
    app.sim.shutdown().await;
}
