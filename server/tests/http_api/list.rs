//! The task list's summaries (`?expand=steps` for the steps), `?q=` search, the one meaning
//! of progress, and a step's prediction fetched from Replicate
//! (`GET /v1/tasks/{id}/steps/{index}/prediction`) with its 404, 502 and 503 answers.

use crate::support::*;
use axum::http::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

const FINISH: Duration = Duration::from_secs(30);

fn ids(list: &Value) -> Vec<&str> {
    let tasks = list["tasks"].as_array().unwrap();
    tasks.iter().map(|t| t["id"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_holds_summaries_expands_steps_and_searches() {
    let app = spawn_app().await;
    let red = app.start_ok(&tryon_body("Red-Coat", 2)).await;
    // Ids order by their creation millisecond, then at random: "newest first" below needs
    // blue to start in a later millisecond than red (the first 12 hex digits of an id).
    let red_ms = u64::from_str_radix(&red[4..16], 16).unwrap();
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    while now_ms() <= red_ms {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let blue = app.start_ok(&tryon_body("blue-hat", 1)).await;
    for id in [&red, &blue] {
        app.wait_until_finished(id, FINISH).await;
    }
    let list = app.get_json("/v1/tasks").await;
    let full = app.get_json(&format!("/v1/tasks/{red}")).await;
    let summary = list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == red.as_str())
        .unwrap();
    let mut without_steps = full.clone();
    without_steps.as_object_mut().unwrap().remove("steps");
    assert_eq!(summary, &without_steps, "every field but `steps`");
    let expanded = app.get_json("/v1/tasks?expand=steps").await;
    let expanded = expanded["tasks"].as_array().unwrap();
    assert!(expanded.contains(&full), "as GET /v1/tasks/{{id}}");

    // Search: params text in any case, an id prefix, combined with the other filters.
    assert_eq!(ids(&app.get_json("/v1/tasks?q=red-COAT").await), vec![&red]);
    // Ids start with their creation time: past it, a prefix is one task's.
    let prefix = &blue[..20];
    assert_eq!(
        ids(&app.get_json(&format!("/v1/tasks?q={prefix}")).await),
        vec![&blue]
    );
    let both = app.get_json("/v1/tasks?q=person.png&limit=1").await;
    assert_eq!(ids(&both), vec![&blue], "newest first, one per page");
    let cursor = both["next_cursor"].as_str().unwrap();
    let next = app
        .get_json(&format!("/v1/tasks?q=person.png&limit=1&cursor={cursor}"))
        .await;
    assert_eq!(ids(&next), vec![&red]);
    let none = app.get_json("/v1/tasks?q=coat&status=failed").await;
    assert!(ids(&none).is_empty());
    let other = app.get_json("/v1/tasks?q=coat&workflow=failing").await;
    assert!(ids(&other).is_empty());

    for (query, code) in [
        ("expand=items", "invalid_request"),
        ("sort=asc", "invalid_request"),
        (&format!("q={}", "x".repeat(201))[..], "invalid_request"),
    ] {
        let reply = app.get(&format!("/v1/tasks?{query}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(reply.json()["error"]["code"], code, "{query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_counts_succeeded_steps_and_points_at_the_first_unfinished_one() {
    let app = spawn_app().await;
    let done = app.start_ok(&tryon_body("p", 3)).await;
    let failed = app
        .start_ok(&json!({"workflow": "failing", "items": [{"x": 1}]}))
        .await;
    let slow = app
        .start_ok(&json!({"workflow": "slow", "items": [{"x": 1}]}))
        .await;
    let done = app.wait_until_finished(&done, FINISH).await;
    let failed = app.wait_until_finished(&failed, FINISH).await;
    let slow = app.get_json(&format!("/v1/tasks/{slow}")).await;
    let shape = |t: &Value| {
        (
            t["progress"].clone(),
            t["completed_steps"].clone(),
            t["current_step"].clone(),
            t["total_steps"].clone(),
        )
    };
    assert_eq!(shape(&done), (json!("3/3"), json!(3), json!(3), json!(3)));
    assert_eq!(shape(&failed), (json!("0/1"), json!(0), json!(1), json!(1)));
    // Waiting or running: its first step is the current one, none has succeeded.
    assert_eq!(shape(&slow), (json!("0/1"), json!(0), json!(1), json!(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steps_prediction_comes_from_replicate_with_its_errors() {
    let app = spawn_app().await;
    let id = app.start_ok(&tryon_body("pred", 2)).await;
    let task = app.wait_until_finished(&id, FINISH).await;
    let path = format!("/v1/tasks/{id}/steps/2/prediction");
    let prediction = app.get_json(&path).await;
    assert_eq!(prediction["id"], task["steps"][1]["prediction_id"]);
    assert_eq!(prediction["status"], "succeeded");
    assert!(prediction["urls"]["web"].is_string(), "{prediction}");
    assert!(prediction["logs"].is_string(), "{prediction}");
    let keys: Vec<&String> = prediction.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 10, "exactly the documented keys: {keys:?}");

    // A step that has no prediction yet: the second of a task still on its first.
    let slow = app
        .start_ok(&json!({"workflow": "slow", "items": [{"x": 1}, {"x": 2}]}))
        .await;
    let cases = [
        format!("/v1/tasks/{slow}/steps/2/prediction"),
        format!("/v1/tasks/{id}/steps/0/prediction"),
        format!("/v1/tasks/{id}/steps/3/prediction"),
        format!("/v1/tasks/{id}/steps/two/prediction"),
        "/v1/tasks/tsk_00000000000000000000000000000000/steps/1/prediction".into(),
        "/v1/tasks/nope/steps/1/prediction".into(),
    ];
    for path in &cases {
        let reply = app.get(path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.json()["error"]["code"], "not_found", "{path}");
    }

    let get_fails = replicate_sim::EndpointFaults {
        error_rate: 1.0,
        error_statuses: vec![500],
        ..Default::default()
    };
    app.sim.set_faults(replicate_sim::Faults {
        endpoints: HashMap::from([(replicate_sim::Endpoint::Get, get_fails)]),
        ..Default::default()
    });
    let reply = app.get(&path).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.json()["error"]["code"], "upstream_error");

    app.sim.set_faults(replicate_sim::Faults {
        storm_ms: 60_000,
        storm_retry_after_s: 30,
        ..Default::default()
    });
    let reply = app.get(&path).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.json()
    );
    assert_eq!(reply.json()["error"]["code"], "rate_limited");
    assert_eq!(reply.headers["retry-after"], "30");
    // Replicate's 429 paused our limiter: the next request is refused without a call.
    let get_calls = || {
        app.sim
            .stats()
            .requests
            .get(&replicate_sim::Endpoint::Get)
            .copied()
    };
    let calls = get_calls();
    let reply = app.get(&path).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get_calls(), calls, "no call went out");
}
