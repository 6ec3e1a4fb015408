//! A restart in the middle of a backlog: hundreds of tasks queued behind the create rate
//! limit, `kill -9`, start again. Queued creates that never left must be created at once
//! (their intents carry no `CreateSent`), the few that may have reached Replicate are looked
//! for in one shared, bounded pass over a list far longer than any page limit, and every
//! step ends with exactly one prediction.

use crate::support::*;
use replicate_sim::Endpoint;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TASKS: usize = 240;
/// Creates per minute: 20 a second, so the backlog takes about 12 s to drain.
const CREATES_PER_MINUTE: u32 = 1_200;

/// A one-step workflow, added to the test config's tables.
const PLAIN: &str =
    "[workflows.plain]\nmodel = \"test/tryon\"\n[workflows.plain.input]\nx = \"{{item.x}}\"\n";

fn list_calls(sim: &replicate_sim::SimHandle) -> u64 {
    sim.stats()
        .requests
        .get(&Endpoint::List)
        .copied()
        .unwrap_or(0)
}

async fn wait_for_creates(sim: &replicate_sim::SimHandle, at_least: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while sim.create_calls() < at_least {
        assert!(
            Instant::now() < deadline,
            "only {} creates of {at_least} within {within:?}",
            sim.create_calls()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_a_backlog_resumes_creating_at_the_rate_with_one_prediction_per_step() {
    // Heavy: 240 tasks, and 40 creates due within 20 s of the restart.
    // Four predictions a page: the predictions the search may have to read are many pages.
    let env = Env::start_with(Load::Heavy, 200, |config| config.page_size = 4).await;
    let mut config = env.config(PLAIN);
    config = config.replace(
        "creates_per_minute = 60000",
        &format!("creates_per_minute = {CREATES_PER_MINUTE}"),
    );
    config = config.replace("create_burst = 1000", "create_burst = 1");
    let mut app = env.spawn(&config);
    let mut ids = vec![];
    for i in 0..TASKS {
        let body = json!({"workflow": "plain", "items": [{"x": i}]});
        let response = app.start_task(&body).await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        ids.push(
            response.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    wait_for_creates(&env.sim, 30, Duration::from_secs(60)).await;
    app.kill9();
    let before = env.sim.create_calls();
    let lists_before = list_calls(&env.sim);

    let restarted = Instant::now();
    let app = env.spawn(&config);
    // At 20 creates a second, 40 more take 2 s; allow a loaded machine ten times that.
    wait_for_creates(&env.sim, before + 40, Duration::from_secs(20)).await;
    eprintln!("40 creates after the restart in {:?}", restarted.elapsed());

    for id in &ids {
        let task = app.wait_until_finished(id, Duration::from_secs(120)).await;
        assert_eq!(task["status"], "succeeded", "{task}");
    }
    let mut predictions: Vec<String> = vec![];
    for id in &ids {
        let task = app.get_task(id).await;
        predictions.push(
            task["steps"][0]["prediction_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    predictions.sort();
    predictions.dedup();
    assert_eq!(
        predictions.len(),
        TASKS,
        "every task has a prediction of its own"
    );
    assert_eq!(
        env.sim.create_calls() as usize,
        TASKS,
        "one create per step, none paid twice"
    );
    let lists = list_calls(&env.sim) - lists_before;
    // The steps whose create may have reached Replicate share passes over a few seconds of
    // creates (4 a page); queued steps never list.
    assert!(lists < 200, "{lists} list calls after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_lost_after_the_restart_is_found_without_paging_through_older_predictions() {
    let env = Env::start_with(Load::Light, 200, |config| config.page_size = 3).await;
    // Three hundred older predictions, before any task: the list is a hundred pages long.
    let http = reqwest::Client::new();
    for n in 0..300 {
        sim_create(&http, &env.sim, json!({ "older": n })).await;
    }
    let config = env.config(PLAIN);
    let lists_before = list_calls(&env.sim);
    let mut app = env.spawn_with_env(&config, &[("STEPWISE_FAULT_CRASH_AFTER_CREATE", "1")]);
    let id = app
        .start_ok(&json!({"workflow": "plain", "items": [{"x": "lost"}]}))
        .await;
    let status = app.wait_for_exit(Duration::from_secs(60)).await;
    assert!(
        !status.success(),
        "the fault hook aborts right after the create"
    );
    assert_eq!(env.sim.create_calls(), 301);

    let app = env.spawn(&config);
    let task = app.wait_until_finished(&id, Duration::from_secs(60)).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(
        env.sim.create_calls(),
        301,
        "the lost create's prediction was adopted, not made again"
    );
    let lists = list_calls(&env.sim) - lists_before;
    assert!(
        lists <= 5,
        "{lists} list calls: the search read past its window"
    );
}

/// Creates a prediction at the simulator directly, as another client of the account would.
/// One `http` client for all: a new client per call costs tens of milliseconds in a debug
/// build (loading the TLS roots).
async fn sim_create(http: &reqwest::Client, sim: &replicate_sim::SimHandle, input: Value) {
    let response = http
        .post(format!(
            "{}/v1/models/test/tryon/predictions",
            sim.base_url()
        ))
        .bearer_auth(SIM_TOKEN)
        .json(&json!({ "input": input }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}
