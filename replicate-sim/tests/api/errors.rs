//! Auth, 404 and create-body validation problems.

use replicate_sim::SimConfig;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn requests_without_a_valid_token_get_a_401_problem() {
    let app = spawn_sim(SimConfig::default()).await;
    for request in [
        app.http.get(app.url("/v1/predictions")),
        app.http
            .get(app.url("/v1/predictions"))
            .bearer_auth("r8_wrong"),
        app.http
            .get(app.url("/v1/predictions"))
            .header("Authorization", "Basic r8_sim_token"),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"title":"Unauthenticated","detail":"You did not pass a valid authentication token","status":401})
        );
    }
    let legacy = app
        .http
        .get(app.url("/v1/predictions"))
        .header("Authorization", format!("Token {TOKEN}"));
    assert_eq!(legacy.send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_prediction_is_a_404() {
    let app = spawn_sim(SimConfig::default()).await;
    let response = app
        .get("/v1/predictions/doesnotexist0000000000000a")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"detail":"The requested resource could not be found.","status":404})
    );
}

#[tokio::test]
async fn bad_create_bodies_get_400_or_422_problems() {
    let app = spawn_sim(SimConfig::default()).await;
    let unknown = app
        .post("/v1/models/acme/m/predictions")
        .json(&json!({"input": {}, "model": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        unknown.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = unknown.json().await.unwrap();
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("Additional property model is not allowed"));

    let missing = app
        .post("/v1/predictions")
        .json(&json!({"version": VERSION}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let malformed = app
        .post("/v1/predictions")
        .header("Content-Type", "application/json")
        .body("{\"input\":")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.sim.create_calls(), 0);
}
