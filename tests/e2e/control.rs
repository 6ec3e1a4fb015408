//! Cancel, retry, step retries, step and task timeouts, and concurrency caps, end to end:
//! the real binary against the simulated Replicate.

use crate::support::*;
use serde_json::{json, Value};
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(30);

/// A simulator whose try-on predictions take 100 ms, and the binary with `extra` in
/// `[server]`.
async fn setup(extra: &str) -> (Env, App) {
    let env = Env::start(Load::Light, 100).await;
    let app = env.spawn(&env.config(extra));
    (env, app)
}

fn sim_prediction(sim: &replicate_sim::SimHandle, id: &Value) -> Value {
    sim.predictions()
        .into_iter()
        .find(|p| p["id"] == *id)
        .expect("the simulator has it")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceling_a_running_task_stops_its_prediction_and_is_harmless_to_repeat() {
    let (env, app) = setup("").await;
    let id = app
        .start_ok(&json!({"workflow": "slow", "items": [{"x": 1}, {"x": 2}]}))
        .await;
    let running = app
        .wait_for(&id, WITHIN, |t| t["steps"][0]["prediction_id"].is_string())
        .await;
    let (status, canceled) = app.control(&id, "cancel").await;
    assert_eq!(status, 200, "{canceled}");
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(canceled["error"], "canceled by request");
    assert_eq!(canceled["steps"][0]["status"], "canceled");
    assert_eq!(canceled["steps"][1]["status"], "canceled");
    let prediction_id = &running["steps"][0]["prediction_id"];
    let deadline = std::time::Instant::now() + WITHIN;
    while sim_prediction(&env.sim, prediction_id)["status"] != "canceled" {
        assert!(
            std::time::Instant::now() < deadline,
            "the prediction was not canceled at Replicate"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (again, body) = app.control(&id, "cancel").await;
    assert_eq!(
        (again, &body["id"], &body["status"]),
        (200, &json!(id), &json!("canceled"))
    );
    assert_eq!(env.sim.create_calls(), 1, "no later step started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_or_unknown_tasks_cannot_be_canceled_or_retried() {
    let (_env, app) = setup("").await;
    let id = app.start_ok(&tryon_body("done", 1)).await;
    app.wait_until_finished(&id, WITHIN).await;
    let (status, body) = app.control(&id, "cancel").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("succeeded"));
    let (status, body) = app.control(&id, "retry").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    let unknown = "tsk_0123456789abcdef0123456789abcdef";
    assert_eq!(app.control(unknown, "cancel").await.0, 404);
    assert_eq!(app.control(unknown, "retry").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_task_reruns_only_its_failed_step_and_keeps_earlier_outputs() {
    let (env, app) = setup("").await;
    let failing = replicate_sim::ModelBehavior {
        failure_rate: 1.0,
        processing_ms: 50,
        ..Default::default()
    };
    let id = app.start_ok(&tryon_body("retry", 3)).await;
    app.wait_for(&id, WITHIN, |t| t["steps"][0]["status"] == "succeeded")
        .await;
    env.sim.set_model("test/tryon", failing);
    let failed = app.wait_until_finished(&id, WITHIN).await;
    assert_eq!(failed["status"], "failed", "{failed:#}");
    let failed_step = failed["current_step"].as_u64().unwrap();
    assert!(failed_step >= 2);
    env.sim.set_model(
        "test/tryon",
        replicate_sim::ModelBehavior {
            processing_ms: 50,
            ..Default::default()
        },
    );
    let (status, retried) = app.control(&id, "retry").await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["status"], "running");
    assert!(retried["error"].is_null());
    let done = app.wait_until_finished(&id, WITHIN).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    let step = &done["steps"][failed_step as usize - 1];
    assert_eq!(step["attempt"], 2);
    assert_eq!(
        done["steps"][0]["output"], failed["steps"][0]["output"],
        "finished steps keep their outputs"
    );
    assert_eq!(
        predictions_for(&env.sim, "https://img/retry/g1.png").len(),
        1,
        "step 1 did not run again"
    );
    let garment = format!("https://img/retry/g{failed_step}.png");
    assert_eq!(
        predictions_for(&env.sim, &garment).len(),
        2,
        "one prediction per attempt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_is_retried_as_configured_then_fails_the_task() {
    let (env, app) = setup("").await;
    let id = app
        .start_ok(&json!({"workflow": "retrying", "items": [{"x": "only"}]}))
        .await;
    let task = app.wait_until_finished(&id, WITHIN).await;
    assert_eq!(task["status"], "failed");
    assert_eq!(task["steps"][0]["attempt"], 3, "1 + step_retries attempts");
    assert_eq!(task["steps"][0]["error"], "CUDA out of memory");
    let made: Vec<Value> = env
        .sim
        .predictions()
        .into_iter()
        .filter(|p| p["input"]["x"] == "only")
        .collect();
    assert_eq!(made.len(), 3, "exactly one prediction per attempt");
    assert!(made.iter().all(|p| p["status"] == "failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_past_its_timeout_is_canceled_at_replicate_and_retried() {
    let (env, app) = setup("").await;
    let id = app
        .start_ok(&json!({"workflow": "slow", "items": [{"x": "stuck"}]}))
        .await;
    let task = app.wait_until_finished(&id, WITHIN).await;
    assert_eq!(task["status"], "failed");
    assert_eq!(task["steps"][0]["error"], "step timed out after 1s");
    assert_eq!(task["steps"][0]["attempt"], 2);
    let made: Vec<Value> = env
        .sim
        .predictions()
        .into_iter()
        .filter(|p| p["input"]["x"] == "stuck")
        .collect();
    assert_eq!(made.len(), 2);
    for prediction in made {
        assert_eq!(
            prediction["status"], "canceled",
            "stopped at Replicate, not left running"
        );
        assert!(prediction["deadline"].is_string(), "Cancel-After was sent");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_past_its_timeout_is_canceled_with_its_prediction() {
    let (env, app) = setup("").await;
    let id = app
        .start_ok(&json!({"workflow": "deadline", "items": [{"x": "late"}]}))
        .await;
    let task = app.wait_until_finished(&id, WITHIN).await;
    assert_eq!(task["status"], "canceled");
    assert_eq!(task["error"], "task timed out after 1s");
    let deadline = std::time::Instant::now() + WITHIN;
    loop {
        let made: Vec<Value> = env
            .sim
            .predictions()
            .into_iter()
            .filter(|p| p["input"]["x"] == "late")
            .collect();
        assert_eq!(made.len(), 1);
        if made[0]["status"] == "canceled" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "prediction left running: {}",
            made[0]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_over_the_cap_wait_in_order_with_their_queue_position() {
    let (env, app) = setup("").await;
    env.sim.set_model(
        "test/tryon",
        replicate_sim::ModelBehavior {
            starting_ms: 50,
            processing_ms: 400,
            ..Default::default()
        },
    );
    let mut ids = vec![];
    for i in 0..5 {
        ids.push(
            app.start_ok(&json!({"workflow": "capped", "items": [{"x": i}, {"x": i * 10}]}))
                .await,
        );
    }
    let third = app.get_task(&ids[2]).await;
    assert_eq!(third["status"], "pending");
    assert_eq!(third["current_step"], 1, "waiting to run step 1");
    assert_eq!(third["queue_position"], 1);
    assert_eq!(app.get_task(&ids[4]).await["queue_position"], 3);
    assert!(app.get_task(&ids[0]).await["queue_position"].is_null());
    let mut finished = vec![];
    for id in &ids {
        finished.push(app.wait_until_finished(id, WITHIN).await);
    }
    assert!(finished.iter().all(|t| t["status"] == "succeeded"));
    // Never more than two tasks' predictions at once.
    let at = |v: &Value| stepwise_engine::time::parse_rfc3339(v.as_str().unwrap()).unwrap();
    let spans: Vec<(i64, i64)> = env
        .sim
        .predictions()
        .iter()
        .map(|p| (at(&p["created_at"]), at(&p["completed_at"])))
        .collect();
    assert_eq!(spans.len(), 10);
    for (start, _) in &spans {
        let overlapping = spans
            .iter()
            .filter(|(s, e)| s <= start && start < e)
            .count();
        assert!(
            overlapping <= 2,
            "{overlapping} predictions in flight at {start}"
        );
    }
    let first_step_starts: Vec<i64> = finished
        .iter()
        .map(|t| at(&t["steps"][0]["started_at"]))
        .collect();
    assert!(
        first_step_starts.windows(2).all(|w| w[0] <= w[1]),
        "FIFO: {first_step_starts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_api_token_cancel_and_retry_need_it() {
    let (_env, app) = setup("api_token = \"s3cret\"").await;
    let response = app
        .http
        .post(format!("{}/v1/tasks", app.url))
        .bearer_auth("s3cret")
        .json(&json!({"workflow": "slow", "items": [{"x": 1}]}))
        .send()
        .await
        .unwrap();
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.control(&id, "cancel").await.0, 401);
    assert_eq!(app.control(&id, "retry").await.0, 401);
    let ok = app
        .http
        .post(format!("{}/v1/tasks/{id}/cancel", app.url))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

/// A task canceled while its create waits for the rate limiter never creates a prediction:
/// the create is journaled as sent only when it may leave, and a canceled task refuses that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_canceled_while_its_create_waits_for_the_rate_limit_makes_no_prediction() {
    let env = Env::start(Load::Light, 100).await;
    let config = env
        .config("")
        .replace("creates_per_minute = 60000", "creates_per_minute = 30")
        .replace("create_burst = 1000", "create_burst = 1");
    let app = env.spawn(&config);
    let first = app.start_ok(&tryon_body("first", 1)).await;
    let mut waiting = vec![];
    for n in 0..3 {
        let id = app.start_ok(&tryon_body(&format!("waiting{n}"), 1)).await;
        let (status, body) = app.control(&id, "cancel").await;
        assert_eq!(status, 200, "{body}");
        waiting.push(id);
    }
    // Creates are let out every 2 s: the canceled tasks' turns come and go unused.
    for id in &waiting {
        let deadline = std::time::Instant::now() + WITHIN;
        loop {
            let journal: Value = app
                .http
                .get(format!("{}/v1/tasks/{id}/journal", app.url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let kinds: Vec<&str> = journal["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| e["kind"].as_str())
                .collect();
            if kinds.contains(&"cancel_settled") {
                assert!(!kinds.contains(&"create_sent"), "{kinds:?}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the cancel never settled: {kinds:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(
        app.wait_until_finished(&first, WITHIN).await["status"],
        "succeeded"
    );
    assert_eq!(
        env.sim.create_calls(),
        1,
        "only the task that was not canceled made a prediction"
    );
}
