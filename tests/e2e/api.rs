//! The HTTP API on the real binary, against the simulated Replicate: tasks that chain, fail
//! and run by the hundred, a SIGTERM and restart, the metrics of a real data dir, and a burst
//! over the create gate. The cases that only check a status and a response's shape run in
//! process: `server/tests/http_api/shapes.rs`.

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
