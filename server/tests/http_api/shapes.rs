//! Status codes and answer shapes of the task API: idempotent starts, listing (newest first,
//! filtered, paged), every refused request with its error code (and nothing written), and the
//! API token. Formerly spawned-binary tests (`tests/api.rs`); nothing here needs a process.

use crate::support::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

const FINISH: Duration = Duration::from_secs(30);

/// `POST /v1/tasks` with `body` as JSON and the given extra headers.
fn start_request(body: &Value, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::post("/v1/tasks").header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::from(body.to_string())).unwrap()
}

/// The ids of a task list, in its order.
fn ids(list: &Value) -> Vec<&str> {
    list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_idempotency_key_returns_the_same_task_and_creates_nothing() {
    let app = spawn_app().await;
    let body = tryon_body("idem", 1);
    let send = || app.send(start_request(&body, &[("Idempotency-Key", "order-42")]));
    let (a, b) = tokio::join!(send(), send());
    let mut statuses = vec![a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    assert_eq!(
        statuses,
        vec![200, 201],
        "one creates, the other gets it back"
    );
    let location = format!("/v1/tasks/{}", a.json()["id"].as_str().unwrap());
    for reply in [&a, &b] {
        assert_eq!(
            reply.headers["location"],
            location.as_str(),
            "both point at it"
        );
    }
    let (a, b) = (a.json(), b.json());
    assert_eq!(a["id"], b["id"]);
    let later = send().await;
    assert_eq!(later.status, StatusCode::OK);
    assert_eq!(later.json()["id"], a["id"]);
    app.wait_until_finished(a["id"].as_str().unwrap(), FINISH)
        .await;
    assert_eq!(app.sim.create_calls(), 1);
    let list = app.get_json("/v1/tasks").await;
    assert_eq!(list["tasks"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_is_newest_first_filters_by_status_and_pages() {
    let app = spawn_app().await;
    let mut started = vec![];
    for i in 0..5 {
        let body = if i == 2 {
            json!({"workflow": "failing", "items": [{"x": 1}]})
        } else {
            tryon_body(&format!("l{i}"), 1)
        };
        started.push(app.start_ok(&body).await);
        // Sleeping never ends early: each task gets a later creation millisecond.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    for id in &started {
        app.wait_until_finished(id, FINISH).await;
    }
    let page = app.get_json("/v1/tasks?limit=3").await;
    assert_eq!(ids(&page), vec![&started[4], &started[3], &started[2]]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = app
        .get_json(&format!("/v1/tasks?limit=3&cursor={cursor}"))
        .await;
    assert_eq!(ids(&rest), vec![&started[1], &started[0]]);
    assert!(rest["next_cursor"].is_null());
    let failed = app.get_json("/v1/tasks?status=failed").await;
    assert_eq!(failed["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(failed["tasks"][0]["id"], started[2].as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_gets_its_error_code_and_writes_nothing() {
    let app = spawn_app().await;
    let post = |body: String, content_type: &'static str| {
        let request = Request::post("/v1/tasks")
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap();
        app.send(request)
    };
    let many_items = json!({"workflow": "tryon", "params": {"person_image": "p"}, "items": vec![json!({"garment_image": "g", "description": "d"}); 6]});
    let cases: Vec<(String, &str, u16, &str, &str)> = vec![
        ("{not json".into(), "application/json", 400, "invalid_request", "invalid JSON"),
        (json!({"workflow": "tryon", "items": []}).to_string(), "application/json", 400, "invalid_request", "at least one"),
        (many_items.to_string(), "application/json", 400, "invalid_request", "at most 5"),
        (json!({"workflow": "tryon", "params": {"person_image": "p"}, "items": [{"description": "d"}]}).to_string(), "application/json", 400, "invalid_request", "item.garment_image"),
        (json!({"workflow": "tryon", "items": [{"garment_image": "g", "description": "d"}]}).to_string(), "application/json", 400, "invalid_request", "params.person_image"),
        (json!({"workflow": "tryon", "items": [1]}).to_string(), "application/json", 400, "invalid_request", "items[0]"),
        (json!({"workflow": "tryon", "items": [{}], "extra": 1}).to_string(), "application/json", 400, "invalid_request", "unknown field `extra`"),
        (json!({"workflow": "nope", "items": [{}]}).to_string(), "application/json", 404, "unknown_workflow", "nope"),
        (json!({"workflow": "tryon", "items": [{}]}).to_string(), "text/plain", 415, "unsupported_media_type", "application/json"),
        ("x".repeat(1024 * 1024 + 1), "application/json", 413, "too_large", "1 MiB"),
    ];
    for (body, content_type, status, code, message) in cases {
        let shown = body[..body.len().min(200)].to_owned();
        let reply = post(body, content_type).await;
        assert_eq!(reply.status.as_u16(), status, "{shown}");
        let error = reply.json();
        assert_eq!(error["error"]["code"], code);
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains(message),
            "{error}"
        );
    }
    let missing = app
        .get("/v1/tasks/tsk_00000000000000000000000000000000")
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["error"]["code"], "not_found");
    let garbage = app.get("/v1/tasks/..%2Fetc").await;
    assert_eq!(garbage.status, StatusCode::NOT_FOUND);
    let wrong_method = app
        .send(Request::delete("/v1/tasks").body(Body::empty()).unwrap())
        .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.json()["error"]["code"], "method_not_allowed");
    let bad_status = app.get("/v1/tasks?status=done").await;
    assert_eq!(bad_status.status, StatusCode::BAD_REQUEST);
    let bad_cursor = app.get("/v1/tasks?cursor=abc").await;
    assert_eq!(bad_cursor.status, StatusCode::BAD_REQUEST);
    let list = app.get_json("/v1/tasks").await;
    assert!(
        list["tasks"].as_array().unwrap().is_empty(),
        "rejected requests wrote nothing"
    );
    assert_eq!(app.sim.create_calls(), 0);
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_api_token_writes_and_listing_need_it_but_reading_by_id_does_not() {
    let app = spawn_app_with_token("s3cret").await;
    let body = tryon_body("auth", 1);
    let unauthorized = app.send(start_request(&body, &[])).await;
    assert_eq!(unauthorized.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unauthorized.json()["error"]["code"], "unauthorized");
    let wrong = app
        .send(start_request(&body, &[("authorization", "Bearer s3cres")]))
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let ok = app
        .send(start_request(&body, &[("authorization", "Bearer s3cret")]))
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    let id = ok.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/v1/tasks").await.status, StatusCode::UNAUTHORIZED);
    let listed = app
        .send(
            Request::get("/v1/tasks")
                .header("authorization", "Bearer s3cret")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(
        app.get_json(&format!("/v1/tasks/{id}")).await["id"],
        id.as_str()
    );
}
