//! The event stream of a big task: after the first message (the whole task), each message
//! holds the task without its steps and only the steps that changed (also after the stream
//! fell behind and skipped changes), so a 2 000-step task streams megabytes, not gigabytes;
//! a client that merges the steps by `index` ends with what `GET /v1/tasks/{id}` answers.

use crate::support::*;
use axum::body::Body;
use axum::http::Request;
use futures::StreamExt;
use serde_json::Value;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const ITEMS: usize = 2_000;
const WITHIN: Duration = Duration::from_secs(240);

/// Applies one stream message to the task as a client holds it.
fn merge(task: &mut Value, message: &Value) {
    if message["kind"] == "snapshot" {
        *task = message["task"].clone();
        return;
    }
    let steps = task["steps"].take();
    *task = message["task"].clone();
    task["steps"] = steps;
    let held = task["steps"].as_array_mut().expect("a snapshot came first");
    for step in message["steps"].as_array().expect("a delta has steps") {
        let index = step["index"].as_u64().unwrap() as usize;
        held[index - 1] = step.clone();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_tasks_stream_sends_what_changed_and_merges_to_the_task() {
    // Predictions that end at once, polled soon: the task's 2 000 steps take seconds.
    let app = spawn_app_with(0, |config| {
        let tryon = config.engine.workflows.get_mut("tryon").unwrap();
        tryon.max_items = ITEMS;
        config.engine.replicate.poll_initial_ms = 5;
    })
    .await;
    let id = app.start_ok(&tryon_body("big", ITEMS)).await;
    let request = Request::get(format!("/v1/tasks/{id}/events"))
        .body(Body::empty())
        .unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-accel-buffering"],
        "no",
        "a buffering proxy is asked to pass each message on"
    );
    let mut body = response.into_body().into_data_stream();
    let deadline = Instant::now() + WITHIN;
    let (mut bytes, mut messages, mut snapshots) = (0usize, 0usize, 0usize);
    let mut task = Value::Null;
    let mut pending = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, body.next())
            .await
            .expect("the stream ends when the task does");
        let Some(chunk) = chunk else { break };
        let chunk = chunk.unwrap();
        bytes += chunk.len();
        pending.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = pending.find("\n\n") {
            let block: String = pending.drain(..end + 2).collect();
            let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) else {
                continue; // a keep-alive comment
            };
            let message: Value = serde_json::from_str(data.trim()).unwrap();
            if message["kind"] == "snapshot" {
                snapshots += 1;
            } else {
                assert!(message["task"].get("steps").is_none(), "a summary");
            }
            merge(&mut task, &message);
            messages += 1;
        }
    }
    let reply = app.get(&format!("/v1/tasks/{id}")).await;
    let whole = reply.body.len();
    assert_eq!(task, reply.json(), "the merged deltas are the task");
    assert_eq!(task["status"], "succeeded");
    // Shown when the test fails, or with --nocapture.
    println!("{bytes} bytes in {messages} messages; the whole task is {whole} bytes");
    assert_eq!(snapshots, 1, "only the first message holds the whole task");
    assert!(messages > 1, "{messages}");
    // Whole tasks each time would be over ITEMS × whole; deltas are a sliver of that (each
    // message a summary and the steps that changed; after a lag, those since the last one).
    let bound = ITEMS * whole / 100;
    assert!(
        bytes < bound,
        "{bytes} bytes streamed in {messages} messages ({snapshots} snapshots); \
         whole task {whole} bytes, bound {bound}"
    );
}
