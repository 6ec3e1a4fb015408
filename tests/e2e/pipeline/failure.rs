//! When a stage goes wrong: one parallel branch failing (its siblings canceled at Replicate,
//! later stages never run), a retry that runs only what did not succeed, a fallback model
//! after the retries, and a cancel with several branches in flight.

use super::*;
use replicate_sim::ModelBehavior;
use serde_json::json;

/// The seeds of the failing lookbook's three branches; the middle one fails.
const SEEDS: u64 = 500;
const FAILING_SEED: u64 = SEEDS + 1;

/// A lookbook of three items whose second branch fails half a second after its create ("NSFW
/// content detected") while its siblings would run for a minute; returns the task id once it
/// has failed and both siblings' predictions are canceled at the simulator.
async fn a_lookbook_with_a_failing_branch() -> (Env, App, String, Value) {
    let env = Env::start_with(Load::Light, 100, lookbook_models(60_000)).await;
    env.sim.set_input_behavior(
        "seed",
        json!(FAILING_SEED),
        ModelBehavior {
            starting_ms: 20,
            processing_ms: 500,
            failure_rate: 1.0,
            failure_message: "NSFW content detected".into(),
            ..Default::default()
        },
    );
    let app = env.spawn(&pipeline_config(&env));
    let id = app
        .start_ok(&lookbook_body("lookbook", "fail", 3, SEEDS))
        .await;
    let failed = app.wait_until_finished(&id, WITHIN).await;
    assert_eq!(failed["status"], "failed", "{failed:#}");
    let siblings: Vec<String> = predictions_of(&env.sim, "test/variant")
        .iter()
        .filter(|p| p["input"]["seed"] != FAILING_SEED)
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(siblings.len(), 2, "both siblings were created: {failed:#}");
    eventually("the siblings canceled at the simulator", WITHIN, || {
        let canceled = siblings
            .iter()
            .all(|id| env.sim.prediction(id).unwrap()["status"] == "canceled");
        async move { canceled.then_some(()) }
    })
    .await;
    (env, app, id, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_branch_fails_the_task_cancels_its_siblings_and_stops_the_pipeline() {
    let (env, app, id, failed) = a_lookbook_with_a_failing_branch().await;
    let error = failed["error"].as_str().expect("an error");
    assert!(
        error.starts_with("step 6 (variants") && error.ends_with(": NSFW content detected"),
        "the error names the step and its stage: {error}"
    );
    let steps = failed["steps"].as_array().unwrap();
    for step in &steps[..4] {
        assert_eq!(step["status"], "succeeded", "{step:#}");
    }
    assert_eq!(steps[5]["stage"], "variants");
    assert_eq!(steps[5]["item_index"], 1);
    assert_eq!(steps[5]["status"], "failed");
    assert_eq!(steps[5]["error"], "NSFW content detected");
    let failing = env
        .sim
        .prediction(steps[5]["prediction_id"].as_str().unwrap())
        .unwrap();
    assert_eq!(failing["status"], "failed");
    assert_eq!(failing["input"]["seed"], FAILING_SEED);

    let task = app.get_task(&id).await;
    for i in [4, 6] {
        assert_eq!(task["steps"][i]["status"], "canceled", "{task:#}");
    }
    assert!(task["steps"][7]["prediction_id"].is_null(), "{task:#}");
    assert!(
        predictions_of(&env.sim, "test/grid").is_empty(),
        "the sheet never ran"
    );
    assert_eq!(env.sim.create_calls(), 7, "{:#?}", env.sim.predictions());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_failing_branch_reruns_only_the_failed_and_canceled_steps() {
    let (env, app, id, failed) = a_lookbook_with_a_failing_branch().await;
    env.sim.clear_input_behaviors();
    env.sim.set_model(
        "test/variant",
        ModelBehavior {
            starting_ms: 20,
            processing_ms: 300,
            ..Default::default()
        },
    );
    // The engine takes a retry once it has heard back from every cancel it sent; the
    // simulator shows a prediction canceled as the cancel arrives, a moment before that.
    let retried = eventually("a retry accepted", WITHIN, || {
        let (app, id) = (&app, &id);
        async move {
            let (status, body) = app.control(id, "retry").await;
            let canceling = body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("still being canceled"));
            match status {
                200 => Some(body),
                409 if canceling => None,
                _ => panic!("the retry was answered {status}: {body}"),
            }
        }
    })
    .await;
    assert_eq!(retried["status"], "running");
    let done = app.wait_until_finished(&id, WITHIN).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(done["progress"], "8/8");

    let (before, after) = (
        failed["steps"].as_array().unwrap(),
        done["steps"].as_array().unwrap(),
    );
    for (old, new) in before[..4].iter().zip(&after[..4]) {
        assert_eq!(
            (&new["prediction_id"], &new["output"], &new["attempt"]),
            (&old["prediction_id"], &old["output"], &old["attempt"]),
            "a succeeded step keeps its prediction and output"
        );
    }
    for (old, new) in before[4..7].iter().zip(&after[4..7]) {
        assert_eq!(new["status"], "succeeded");
        assert_ne!(
            new["prediction_id"], old["prediction_id"],
            "a new prediction"
        );
        assert!(
            new["attempt"].as_u64() > old["attempt"].as_u64(),
            "{old:#} then {new:#}"
        );
    }

    // At the simulator: the first four steps once, each branch twice (the first failed or
    // canceled), the sheet once, on the new branches' outputs.
    let counts = predictions_per_call(&env.sim);
    for step in &after[..4] {
        let key = (
            step["model"].as_str().unwrap().to_owned(),
            replicate_sim::canonical_json(&step["input"]),
        );
        assert_eq!(
            counts.get(&key),
            Some(&1),
            "step {} paid once",
            step["index"]
        );
    }
    let variants = predictions_of(&env.sim, "test/variant");
    assert_eq!(variants.len(), 6, "{variants:#?}");
    for k in 0..3 {
        let of_item: Vec<&Value> = variants
            .iter()
            .filter(|p| p["input"]["seed"] == SEEDS + k)
            .collect();
        assert_eq!(of_item.len(), 2, "branch {k}: {of_item:#?}");
        assert_ne!(of_item[0]["status"], "succeeded");
        assert_eq!(of_item[1]["status"], "succeeded");
        assert_eq!(after[4 + k as usize]["prediction_id"], of_item[1]["id"]);
    }
    let sheets = predictions_of(&env.sim, "test/grid");
    assert_eq!(sheets.len(), 1);
    let outputs: Vec<&Value> = after[4..7].iter().map(|s| &s["output"]).collect();
    assert_eq!(sheets[0]["input"]["images"], json!(outputs));
    assert_eq!(done["output"], sheets[0]["output"]);
    assert_eq!(env.sim.create_calls(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_out_of_retries_runs_once_on_the_fallback_model() {
    let env = Env::start(Load::Light, 100).await;
    let app = env.spawn(&pipeline_config(&env));
    let image = "https://img/fallback/1.png";
    let id = app
        .start_ok(&json!({"workflow": "fallback", "items": [{"image": image}]}))
        .await;
    let task = app.wait_until_finished(&id, WITHIN).await;
    assert_eq!(task["status"], "succeeded", "{task:#}");
    let step = &task["steps"][0];
    assert_eq!(step["stage"], "upscale");
    assert_eq!(step["status"], "succeeded");
    assert_eq!(
        step["model"], "test/rembg",
        "the step says the fallback ran it"
    );

    let same_input: Vec<Value> = env
        .sim
        .predictions()
        .into_iter()
        .filter(|p| p["input"] == json!({"image": image}))
        .collect();
    let runs: Vec<(&str, &str)> = same_input
        .iter()
        .map(|p| (p["model"].as_str().unwrap(), p["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        runs,
        [
            ("test/failing", "failed"),
            ("test/failing", "failed"),
            ("test/rembg", "succeeded"),
        ],
        "one try and one retry on the model, then once on the fallback"
    );
    assert_eq!(step["prediction_id"], same_input[2]["id"]);
    assert_eq!(step["output"], same_input[2]["output"]);
    assert_eq!(
        task["steps"][1]["input"],
        json!({"images": [step["output"]]})
    );
    assert_eq!(env.sim.create_calls(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceling_during_a_parallel_stage_cancels_every_branch_at_replicate() {
    let env = Env::start_with(Load::Light, 100, lookbook_models(600_000)).await;
    let app = env.spawn(&pipeline_config(&env));
    let id = app
        .start_ok(&lookbook_body("lookbook", "cancel", 3, 600))
        .await;
    eventually("three branches created", WITHIN, || {
        let created = predictions_of(&env.sim, "test/variant").len();
        async move { (created == 3).then_some(()) }
    })
    .await;
    let (status, canceled) = app.control(&id, "cancel").await;
    assert_eq!(status, 200, "{canceled}");
    assert_eq!(canceled["status"], "canceled");
    eventually("every branch canceled at the simulator", WITHIN, || {
        let all = predictions_of(&env.sim, "test/variant")
            .iter()
            .all(|p| p["status"] == "canceled");
        async move { all.then_some(()) }
    })
    .await;
    let task = app.get_task(&id).await;
    let steps = task["steps"].as_array().unwrap();
    for step in &steps[..4] {
        assert_eq!(step["status"], "succeeded", "{step:#}");
    }
    for step in &steps[4..] {
        assert_eq!(step["status"], "canceled", "{step:#}");
    }
    assert!(predictions_of(&env.sim, "test/grid").is_empty());
    assert_eq!(env.sim.create_calls(), 7);
}
