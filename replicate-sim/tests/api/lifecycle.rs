//! Creates, the status lifecycle, deterministic output, failure, cancel and deadlines.

use replicate_sim::{ModelBehavior, OutputShape, SimConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn a_model_prediction_succeeds_with_output_derived_from_model_and_input() {
    let app = spawn_sim(SimConfig {
        default_model: behavior(20, 50),
        ..SimConfig::default()
    })
    .await;
    let created = app
        .create_for_model(
            "acme/painter",
            json!({"prompt": "a red bicycle", "seed": 1}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(id.len(), 26);
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    assert_eq!(created["status"], "starting");
    assert_eq!(created["model"], "acme/painter");
    assert_eq!(created["version"], "hidden");
    assert_eq!(created["source"], "api");
    assert_eq!(created["metrics"], json!({}));
    assert_eq!(
        created["urls"]["get"],
        app.url(&format!("/v1/predictions/{id}"))
    );
    assert_eq!(
        created["urls"]["cancel"],
        app.url(&format!("/v1/predictions/{id}/cancel"))
    );

    let done = app.wait_until_finished(id).await;
    assert_eq!(done["status"], "succeeded");
    let created_at = parse_time(&done["created_at"]);
    let started_at = parse_time(&done["started_at"]);
    let completed_at = parse_time(&done["completed_at"]);
    assert!(created_at <= started_at && started_at <= completed_at);
    assert!(done["metrics"]["predict_time"].as_f64().unwrap() > 0.0);
    assert!(
        done["metrics"]["total_time"].as_f64().unwrap()
            >= done["metrics"]["predict_time"].as_f64().unwrap()
    );
    assert_eq!(done["data_removed"], false);

    let output = done["output"].as_str().unwrap().to_string();
    let hash = replicate_sim::output_hash(
        "acme/painter",
        &json!({"seed": 1, "prompt": "a red bicycle"}),
    );
    assert_eq!(output, app.url(&format!("/files/{hash}/out-0.png")));
    let same = app
        .create_for_model(
            "acme/painter",
            json!({"seed": 1, "prompt": "a red bicycle"}),
        )
        .await;
    let other = app
        .create_for_model(
            "acme/painter",
            json!({"prompt": "a blue bicycle", "seed": 1}),
        )
        .await;
    assert_eq!(
        app.wait_until_finished(same["id"].as_str().unwrap()).await["output"],
        output.as_str()
    );
    assert_ne!(
        app.wait_until_finished(other["id"].as_str().unwrap()).await["output"],
        output.as_str()
    );

    let file = app.http.get(&output).send().await.unwrap();
    assert_eq!(file.status(), StatusCode::OK);
    assert_eq!(file.headers()["content-type"], "image/png");
    assert!(file
        .bytes()
        .await
        .unwrap()
        .starts_with(b"\x89PNG\r\n\x1a\n"));
    assert_eq!(app.sim.create_calls(), 3);
}

#[tokio::test]
async fn a_version_prediction_uses_the_behaviour_keyed_by_version_id() {
    let mut config = SimConfig {
        default_model: behavior(0, 10),
        ..SimConfig::default()
    };
    config.models.insert(
        VERSION.into(),
        ModelBehavior {
            output: OutputShape::Echo,
            ..behavior(0, 10)
        },
    );
    config.models.insert(
        "acme/list".into(),
        ModelBehavior {
            output: OutputShape::UrlList,
            ..behavior(0, 10)
        },
    );
    let app = spawn_sim(config).await;
    let input = json!({"text": "hello", "n": [1, 2]});
    for version in [VERSION.to_string(), format!("acme/other:{VERSION}")] {
        let response = app
            .post("/v1/predictions")
            .json(&json!({"version": version, "input": input}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let created: Value = response.json().await.unwrap();
        assert_eq!(created["version"], VERSION);
        let done = app
            .wait_until_finished(created["id"].as_str().unwrap())
            .await;
        assert_eq!(done["output"], input);
    }
    let response = app
        .post("/v1/predictions")
        .json(&json!({"version": "acme/list", "input": input}))
        .send()
        .await
        .unwrap();
    let created: Value = response.json().await.unwrap();
    let done = app
        .wait_until_finished(created["id"].as_str().unwrap())
        .await;
    assert!(done["output"][0].as_str().unwrap().ends_with("/out-0.png"));
}

#[tokio::test]
async fn a_model_with_failure_rate_one_always_fails_with_its_message() {
    let app = spawn_sim(SimConfig::default()).await;
    app.sim.set_model(
        "acme/broken",
        ModelBehavior {
            failure_rate: 1.0,
            ..behavior(0, 10)
        },
    );
    let created = app.create_for_model("acme/broken", json!({})).await;
    let done = app
        .wait_until_finished(created["id"].as_str().unwrap())
        .await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"], "Simulated model failure");
    assert_eq!(done["output"], Value::Null);
}

#[tokio::test]
async fn cancel_stops_a_running_prediction_and_leaves_a_finished_one_unchanged() {
    let app = spawn_sim(SimConfig {
        default_model: behavior(5_000, 5_000),
        ..SimConfig::default()
    })
    .await;
    let created = app.create_for_model("acme/slow", json!({})).await;
    let id = created["id"].as_str().unwrap();
    let response = app
        .post(&format!("/v1/predictions/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let canceled: Value = response.json().await.unwrap();
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(canceled["logs"], Value::Null);
    parse_time(&canceled["completed_at"]);
    assert!(canceled["metrics"]["total_time"].is_number());

    app.sim.set_model("acme/fast", behavior(0, 0));
    let fast = app.create_for_model("acme/fast", json!({})).await;
    let fast_id = fast["id"].as_str().unwrap();
    app.wait_until_finished(fast_id).await;
    let again: Value = app
        .post(&format!("/v1/predictions/{fast_id}/cancel"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["status"], "succeeded");
}

#[tokio::test]
async fn cancel_after_aborts_a_prediction_that_is_still_starting() {
    let app = spawn_sim(SimConfig {
        default_model: behavior(10_000, 100),
        ..SimConfig::default()
    })
    .await;
    let response = app
        .post("/v1/models/acme/slow/predictions")
        .header("Cancel-After", "100ms")
        .json(&json!({"input": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let deadline = parse_time(&created["deadline"]);
    assert_eq!(
        deadline - parse_time(&created["created_at"]),
        time::Duration::milliseconds(100)
    );
    let done = app
        .wait_until_finished(created["id"].as_str().unwrap())
        .await;
    assert_eq!(done["status"], "aborted");
    assert_eq!(done["started_at"], Value::Null);

    let bad = app
        .post("/v1/models/acme/slow/predictions")
        .header("Cancel-After", "soon")
        .json(&json!({"input": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn the_2023_style_omits_optional_keys_until_terminal() {
    let app = spawn_sim(SimConfig {
        omit_optional_keys: true,
        default_model: behavior(10_000, 0),
        ..SimConfig::default()
    })
    .await;
    let created = app.create_for_model("acme/m", json!({})).await;
    for key in [
        "output",
        "started_at",
        "completed_at",
        "metrics",
        "data_removed",
    ] {
        assert!(created.get(key).is_none(), "{key} should be left out");
    }
}
