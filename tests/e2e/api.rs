//! Black-box tests of the HTTP API: the real binary against the simulated Replicate.

use crate::support::*;
use serde_json::{json, Value};
use std::time::Duration;

const FINISH: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_item_chain_feeds_each_output_into_the_next_step() {
    let (env, app) = spawn_app(Load::Light, 100).await;

    let response = app.start_task(&tryon_body("chain", 3)).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    assert_eq!(location, format!("/v1/tasks/{id}"));
    assert_eq!(created["total_steps"], 3);
    assert_eq!(created["steps"].as_array().unwrap().len(), 3);

    let task = app.wait_until_finished(id, FINISH).await;
    assert_chained(&env.sim, &task, "chain");
    assert_eq!(task["current_step"], 3);
    assert_eq!(task["progress"], "3/3");
    assert!(task["completed_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        task["steps"][1]["input"]["garm_img"],
        "https://img/chain/g2.png"
    );
    assert_eq!(
        task["steps"][1]["input"]["steps"], 30,
        "literal template values pass through"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_array_output_can_be_indexed_into_the_next_input() {
    let (_env, app) = spawn_app(Load::Light, 50).await;
    let body =
        json!({"workflow": "listy", "params": {"start": "s.png"}, "items": [{"n": 1}, {"n": 2}]});
    let created: Value = app.start_task(&body).await.json().await.unwrap();
    let task = app
        .wait_until_finished(created["id"].as_str().unwrap(), FINISH)
        .await;
    assert_eq!(task["status"], "succeeded", "{task:#}");
    let first_output = &task["steps"][0]["output"];
    assert!(first_output.is_array());
    assert_eq!(task["steps"][1]["input"]["image"], first_output[0]);
    assert_eq!(task["steps"][1]["input"]["n"], 2, "numbers keep their type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_tasks_all_succeed() {
    // Heavy: a hundred tasks at once.
    let (env, app) = spawn_app(Load::Heavy, 50).await;
    let starts = (0..100).map(|i| {
        let app = &app;
        async move {
            let response = app.start_task(&tryon_body(&format!("c{i}"), 2)).await;
            assert_eq!(response.status(), 201);
            let task: Value = response.json().await.unwrap();
            task["id"].as_str().unwrap().to_owned()
        }
    });
    let ids = futures::future::join_all(starts).await;
    for (i, id) in ids.iter().enumerate() {
        let task = app.wait_until_finished(id, Duration::from_secs(60)).await;
        assert_chained(&env.sim, &task, &format!("c{i}"));
    }
    assert_eq!(env.sim.create_calls(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_prediction_fails_the_task_with_its_error() {
    let (env, app) = spawn_app(Load::Light, 50).await;
    let body = json!({"workflow": "failing", "items": [{"x": 1}, {"x": 2}]});
    let created: Value = app.start_task(&body).await.json().await.unwrap();
    let task = app
        .wait_until_finished(created["id"].as_str().unwrap(), FINISH)
        .await;
    assert_eq!(task["status"], "failed");
    assert_eq!(task["current_step"], 1);
    assert_eq!(task["steps"][0]["status"], "failed");
    assert_eq!(task["steps"][0]["error"], "CUDA out of memory");
    assert_eq!(task["error"], "step 1: CUDA out of memory");
    assert_eq!(task["steps"][1]["status"], "pending");
    assert_eq!(env.sim.create_calls(), 1, "no step runs after a failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_idempotency_key_returns_the_same_task_and_creates_nothing() {
    let sim = start_sim(50).await;
    let dir = tempfile::tempdir().unwrap();
    let app = App::spawn(dir.path(), &config_toml(dir.path(), &sim.base_url(), ""));
    let send = || {
        app.http
            .post(format!("{}/v1/tasks", app.url))
            .header("Idempotency-Key", "order-42")
            .json(&tryon_body("idem", 1))
            .send()
    };
    let (a, b) = tokio::join!(send(), send());
    let mut statuses = vec![
        a.as_ref().unwrap().status().as_u16(),
        b.as_ref().unwrap().status().as_u16(),
    ];
    statuses.sort();
    assert_eq!(
        statuses,
        vec![200, 201],
        "one creates, the other gets it back"
    );
    let a: Value = a.unwrap().json().await.unwrap();
    let b: Value = b.unwrap().json().await.unwrap();
    assert_eq!(a["id"], b["id"]);
    let later = send().await.unwrap();
    assert_eq!(later.status(), 200);
    assert_eq!(later.json::<Value>().await.unwrap()["id"], a["id"]);
    app.wait_until_finished(a["id"].as_str().unwrap(), FINISH)
        .await;
    assert_eq!(sim.create_calls(), 1);
    let list: Value = app
        .http
        .get(format!("{}/v1/tasks", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["tasks"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_is_newest_first_filters_by_status_and_pages() {
    let sim = start_sim(20).await;
    let dir = tempfile::tempdir().unwrap();
    let app = App::spawn(dir.path(), &config_toml(dir.path(), &sim.base_url(), ""));
    let mut ids = vec![];
    for i in 0..5 {
        let body = if i == 2 {
            json!({"workflow": "failing", "items": [{"x": 1}]})
        } else {
            tryon_body(&format!("l{i}"), 1)
        };
        let task: Value = app.start_task(&body).await.json().await.unwrap();
        ids.push(task["id"].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(3)).await; // distinct creation milliseconds
    }
    for id in &ids {
        app.wait_until_finished(id, FINISH).await;
    }
    let get = |query: &'static str| {
        let url = format!("{}/v1/tasks{query}", app.url);
        let http = app.http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let page = get("?limit=3").await;
    let listed: Vec<&str> = page["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![&ids[4], &ids[3], &ids[2]]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .http
        .get(format!("{}/v1/tasks?limit=3&cursor={cursor}", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: Vec<&str> = rest["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![&ids[1], &ids[0]]);
    assert!(rest["next_cursor"].is_null());
    let failed = get("?status=failed").await;
    assert_eq!(failed["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(failed["tasks"][0]["id"], ids[2].as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_gets_its_error_code_and_writes_nothing() {
    let sim = start_sim(50).await;
    let dir = tempfile::tempdir().unwrap();
    let app = App::spawn(dir.path(), &config_toml(dir.path(), &sim.base_url(), ""));
    let post = |body: String, content_type: &'static str| {
        app.http
            .post(format!("{}/v1/tasks", app.url))
            .header("content-type", content_type)
            .body(body)
            .send()
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
        let response = post(body.clone(), content_type).await.unwrap();
        assert_eq!(
            response.status().as_u16(),
            status,
            "{}",
            &body[..body.len().min(200)]
        );
        let error: Value = response.json().await.unwrap();
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
        .http
        .get(format!(
            "{}/v1/tasks/tsk_00000000000000000000000000000000",
            app.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );
    let garbage = app
        .http
        .get(format!("{}/v1/tasks/..%2Fetc", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 404);
    let wrong_method = app
        .http
        .delete(format!("{}/v1/tasks", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(
        wrong_method.json::<Value>().await.unwrap()["error"]["code"],
        "method_not_allowed"
    );
    let bad_status = app
        .http
        .get(format!("{}/v1/tasks?status=done", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_status.status(), 400);
    let bad_cursor = app
        .http
        .get(format!("{}/v1/tasks?cursor=abc", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_cursor.status(), 400);
    let list: Value = app
        .http
        .get(format!("{}/v1/tasks", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        list["tasks"].as_array().unwrap().is_empty(),
        "rejected requests wrote nothing"
    );
    assert_eq!(sim.create_calls(), 0);
    assert_eq!(
        app.http
            .get(format!("{}/healthz", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_api_token_writes_and_listing_need_it_but_reading_by_id_does_not() {
    let sim = start_sim(50).await;
    let dir = tempfile::tempdir().unwrap();
    let app = App::spawn(
        dir.path(),
        &config_toml(dir.path(), &sim.base_url(), "api_token = \"s3cret\""),
    );
    let unauthorized = app.start_task(&tryon_body("auth", 1)).await;
    assert_eq!(unauthorized.status(), 401);
    assert_eq!(
        unauthorized.json::<Value>().await.unwrap()["error"]["code"],
        "unauthorized"
    );
    let wrong = app
        .http
        .post(format!("{}/v1/tasks", app.url))
        .bearer_auth("s3cres")
        .json(&tryon_body("auth", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let ok = app
        .http
        .post(format!("{}/v1/tasks", app.url))
        .bearer_auth("s3cret")
        .json(&tryon_body("auth", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
    let id = ok.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.http
            .get(format!("{}/v1/tasks", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        app.http
            .get(format!("{}/v1/tasks", app.url))
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(app.get_task(&id).await["id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_a_restart_finishes_the_work() {
    let env = Env::start(Load::Light, 300).await;
    let config = env.config("");
    let mut app = env.spawn(&config);
    let created: Value = app
        .start_task(&tryon_body("term", 2))
        .await
        .json()
        .await
        .unwrap();
    let status = app.terminate();
    assert!(status.success(), "exit status {status:?}");
    let app = env.spawn(&config);
    let task = app
        .wait_until_finished(created["id"].as_str().unwrap(), FINISH)
        .await;
    assert_chained(&env.sim, &task, "term");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_tasks_calls_and_commits_without_task_ids_in_labels() {
    let (_env, app) = spawn_app(Load::Light, 30).await;
    let id = app.start_ok(&tryon_body("metrics", 2)).await;
    app.wait_until_finished(&id, FINISH).await;
    let failing = app
        .start_ok(&json!({"workflow": "failing", "items": [{"x": 1}]}))
        .await;
    app.wait_until_finished(&failing, FINISH).await;
    // A task's end is counted right after its commit, a moment after a poll can see it.
    let deadline = std::time::Instant::now() + FINISH;
    let text = loop {
        let response = app
            .http
            .get(format!("{}/metrics", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        let text = response.text().await.unwrap();
        if text.lines().any(|l| l == "stepwise_tasks_in_flight 0")
            || std::time::Instant::now() > deadline
        {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for line in [
        "stepwise_tasks_started_total{workflow=\"tryon\"} 1",
        "stepwise_tasks_finished_total{workflow=\"tryon\",outcome=\"succeeded\"} 1",
        "stepwise_tasks_finished_total{workflow=\"failing\",outcome=\"failed\"} 1",
        "stepwise_replicate_calls_total{endpoint=\"create\",status=\"201\"} 3",
        "stepwise_step_duration_seconds_count{workflow=\"tryon\",outcome=\"succeeded\"} 2",
        "stepwise_tasks_in_flight 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    let commits: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("stepwise_journal_commit_seconds_count "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(commits >= 4.0, "{commits} journal groups");
    let data: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("stepwise_data_dir_bytes "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(data > 0.0);
    assert!(!text.contains("tsk_"), "no task id in any label");
}

/// A burst of starts beyond the create calls allowed out at once (256, each held here for
/// 3 s by the simulator): the rest wait their turn inside the engine, as ids rather than
/// calls, and every task still gets exactly one prediction and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_create_calls_allowed_out_waits_its_turn_and_creates_once_each() {
    use futures::StreamExt;
    use replicate_sim::{Endpoint, EndpointFaults, Faults};
    // Heavy: three hundred tasks.
    let env = Env::start(Load::Heavy, 30).await;
    let mut faults = Faults::default();
    faults.endpoints.insert(
        Endpoint::Create,
        EndpointFaults {
            latency_ms: (3000, 3000),
            ..Default::default()
        },
    );
    env.sim.set_faults(faults);
    // A burst of 1 makes the gate its minimum, 256 calls; the rate itself does not hold them.
    let config = env
        .config("")
        .replace("create_burst = 1000", "create_burst = 1");
    let app = env.spawn(&config);
    let starts = (0..300).map(|i| {
        let app = &app;
        async move { app.start_ok(&tryon_body(&format!("burst{i}"), 1)).await }
    });
    let ids = futures::stream::iter(starts)
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let waiting = |text: &str| -> f64 {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("stepwise_creates_waiting "));
        line.expect("the gauge is exported").parse().unwrap()
    };
    let deadline = std::time::Instant::now() + FINISH;
    let mut peak = 0.0f64;
    loop {
        let text = app
            .http
            .get(format!("{}/metrics", app.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        peak = peak.max(waiting(&text));
        if peak > 0.0 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        peak >= 1.0,
        "no task waited for a create call; the gate never closed"
    );
    for id in &ids {
        let task = app.wait_until_finished(id, FINISH).await;
        assert_eq!(task["status"], "succeeded", "{task:#}");
    }
    assert_eq!(env.sim.create_calls(), 300, "one create per task");
    let text = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(waiting(&text), 0.0);
}
