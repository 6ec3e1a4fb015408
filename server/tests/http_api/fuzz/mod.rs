//! Fuzz tests of the HTTP API: malformed, mistyped, oversized and odd requests must each get
//! a 4xx JSON error (never a 5xx, never a dropped connection) and write nothing.
//!
//! The API runs in this process (an engine on a memory store, the simulator) and is served on
//! a loopback port by `stepwise_server::serve`, as the binary serves it: requests go over raw
//! TCP (`wire`), so hyper parses every odd byte as it would in production. The cases are in
//! `bodies`, `queries` and `routes`; `property` sends random start bodies.

mod bodies;
mod check;
mod property;
mod queries;
mod routes;
mod wire;

use crate::support::{assert_chained, spawn_app, tryon_body, TestApp};
use bodies::{bad_bytes, huge_bodies, malformed_json, mistyped_fields};
use check::{assert_all_refused, assert_nothing_written, check_error_shape, Case};
use queries::{bad_idempotency_keys, bad_list_queries, odd_ids};
use routes::{cancel_and_retry_of_unknown_ids, other_routes, wrong_methods_types_and_sizes};
use serde_json::json;
use std::time::Duration;
use wire::{get, post, post_chunked, send};

/// What "refused fast" means for a 100 000-item body, with room for a loaded debug build.
const FAST: Duration = Duration::from_secs(3);
/// A well-formed task id that names no task.
const UNKNOWN_ID: &str = "tsk_0123456789abcdef0123456789abcdef";

/// Every case of every kind.
fn barrage() -> Vec<Case> {
    [
        malformed_json(),
        mistyped_fields(),
        huge_bodies(),
        bad_bytes(),
        wrong_methods_types_and_sizes(),
        bad_list_queries(),
        odd_ids(),
        bad_idempotency_keys(),
        cancel_and_retry_of_unknown_ids(),
        other_routes(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The API in process, served on a loopback port: the app, and the `host:port` to send to.
async fn spawn() -> (TestApp, String) {
    let app = spawn_app().await;
    let host = app.serve().await;
    (app, host)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_gets_a_json_400_and_writes_nothing() {
    let (app, host) = spawn().await;
    assert_all_refused(&host, &malformed_json()).await;
    assert_nothing_written(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_with_a_wrong_type_or_name_gets_a_json_error_and_writes_nothing() {
    let (app, host) = spawn().await;
    assert_all_refused(&host, &mistyped_fields()).await;
    assert_nothing_written(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_strings_huge_arrays_and_deep_nesting_get_a_json_error_and_write_nothing() {
    let (app, host) = spawn().await;
    assert_all_refused(&host, &huge_bodies()).await;
    assert_nothing_written(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_items_are_refused_fast_with_a_message_about_items() {
    let (app, host) = spawn().await;
    for item in ["{}", "1", r#"{"garment_image":"g","description":"d"}"#] {
        let count = if item.len() > 2 { 25_000 } else { 100_000 };
        let body = format!(
            r#"{{"workflow":"tryon","params":{{"person_image":"p"}},"items":[{}]}}"#,
            vec![item; count].join(",")
        );
        let reply = send(&host, &post(body)).await.unwrap();
        assert_eq!(
            check_error_shape(&reply),
            Ok("invalid_request".into()),
            "{item} x {count}"
        );
        assert_eq!(reply.status, 400);
        let message = reply.json().unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            message.contains("items"),
            "the message is about items: {message}"
        );
        assert!(
            reply.elapsed < FAST,
            "{count} items took {:?}",
            reply.elapsed
        );
    }
    assert_nothing_written(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_and_nul_bytes_get_a_json_error_and_write_nothing() {
    let (app, host) = spawn().await;
    assert_all_refused(&host, &bad_bytes()).await;
    assert_nothing_written(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_methods_media_types_and_oversized_bodies_get_json_errors_and_write_nothing() {
    let (app, host) = spawn().await;
    assert_all_refused(&host, &wrong_methods_types_and_sizes()).await;
    assert_nothing_written(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_journals_files_webhooks_and_metrics_refuse_bad_requests_with_json() {
    let (app, host) = spawn().await;
    assert_all_refused(&host, &other_routes()).await;
    assert_nothing_written(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_list_queries_get_a_json_400_and_write_nothing() {
    let (app, host) = spawn().await;
    assert_all_refused(&host, &bad_list_queries()).await;
    assert_nothing_written(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_task_ids_get_a_json_404_and_write_nothing() {
    let (app, host) = spawn().await;
    assert_all_refused(&host, &odd_ids()).await;
    assert_nothing_written(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_idempotency_keys_get_a_json_400_and_write_nothing() {
    let (app, host) = spawn().await;
    assert_all_refused(&host, &bad_idempotency_keys()).await;
    assert_nothing_written(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_retry_of_unknown_ids_answer_404_and_write_nothing() {
    let (app, host) = spawn().await;
    assert_all_refused(&host, &cancel_and_retry_of_unknown_ids()).await;
    assert_nothing_written(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_whole_barrage_the_engine_is_healthy_and_still_runs_a_task() {
    let (app, host) = spawn().await;
    for case in barrage() {
        let _ = send(&host, &case.request).await;
    }
    let health = send(&host, &get("/healthz")).await.unwrap();
    assert_eq!(health.status, 200, "{}", health.describe());
    let health = health.json().unwrap();
    assert_eq!(
        (health["status"].as_str(), health["resumed"].as_bool()),
        (Some("ok"), Some(true))
    );
    let created = send(&host, &post(tryon_body("after", 2).to_string()))
        .await
        .unwrap();
    assert_eq!(created.status, 201, "{}", created.describe());
    let id = created.json().unwrap()["id"].as_str().unwrap().to_owned();
    let mut near_limit = tryon_body("near", 1);
    for field in ["a", "b", "c", "d"] {
        near_limit["params"][field] = json!("o".repeat(225 * 1024));
    }
    let reply = send(&host, &post(near_limit.to_string())).await.unwrap();
    assert_eq!(
        reply.status,
        201,
        "a 900 KB body is under the 1 MiB limit: {}",
        reply.describe()
    );
    let reply = send(&host, &post_chunked(tryon_body("chunked", 1).to_string()))
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        201,
        "a valid chunked body starts a task: {}",
        reply.describe()
    );
    let task = app.wait_until_finished(&id, Duration::from_secs(30)).await;
    assert_chained(&app.sim, &task, "after");
}
