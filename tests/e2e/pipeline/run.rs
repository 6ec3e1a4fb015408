//! Pipelines that succeed: each stage's input as its templates say, value by value;
//! parallel branches running at the same time, within their cap; a pipeline of once stages
//! started without items.

use super::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_stages_feed_each_other_as_their_templates_say() {
    let env = Env::start(Load::Light, 100).await;
    let app = env.spawn(&pipeline_config(&env));
    let body = lookbook_body("lookbook", "look", 3, 11);
    let id = app.start_ok(&body).await;
    let task = app.wait_until_finished(&id, WITHIN).await;
    assert_eq!(task["status"], "succeeded", "{task:#}");
    assert_eq!(task["total_steps"], 8);
    assert_eq!(task["progress"], "8/8");
    let stages: Vec<(&Value, &Value, &Value)> = task["stages"]
        .as_array()
        .expect("the task lists its stages")
        .iter()
        .map(|s| (&s["name"], &s["model"], &s["runs"]))
        .collect();
    assert_eq!(
        stages,
        [
            (&json!("cutout"), &json!("test/rembg"), &json!("once")),
            (&json!("tryon"), &json!("test/tryon"), &json!("each")),
            (
                &json!("variants"),
                &json!("test/variant"),
                &json!("parallel")
            ),
            (&json!("sheet"), &json!("test/grid"), &json!("once")),
        ]
    );
    assert_eq!(task["stages"][2]["max_parallel"], 4);

    // Stage by stage, items in order inside a stage, each step with its stage's model.
    let steps = task["steps"].as_array().unwrap();
    let layout: Vec<(u64, &str, Option<u64>, &str)> = steps
        .iter()
        .map(|s| {
            (
                s["index"].as_u64().unwrap(),
                s["stage"].as_str().unwrap(),
                s["item_index"].as_u64(),
                s["model"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        layout,
        [
            (1, "cutout", None, "test/rembg"),
            (2, "tryon", Some(0), "test/tryon"),
            (3, "tryon", Some(1), "test/tryon"),
            (4, "tryon", Some(2), "test/tryon"),
            (5, "variants", Some(0), "test/variant"),
            (6, "variants", Some(1), "test/variant"),
            (7, "variants", Some(2), "test/variant"),
            (8, "sheet", None, "test/grid"),
        ]
    );
    for step in steps {
        match step["item_index"].as_u64() {
            Some(i) => assert_eq!(step["item"], body["items"][i as usize]),
            None => assert!(step["item"].is_null(), "{step:#}"),
        }
        assert_eq!(step["status"], "succeeded");
        assert_eq!(step["attempt"], 1);
    }
    assert_one_prediction_per_step(&env.sim, &task);
    for step in steps {
        let prediction = env.sim.prediction(step["prediction_id"].as_str().unwrap());
        assert_eq!(prediction.unwrap()["model"], step["model"]);
    }

    // What each prediction received, from the simulator's side.
    let received = |step: &Value| {
        env.sim
            .prediction(step["prediction_id"].as_str().unwrap())
            .unwrap()
    };
    let cutout = received(&steps[0]);
    assert_eq!(
        cutout["input"],
        json!({"image": "https://img/look/person.png"})
    );
    let mut previous = cutout["output"].clone();
    for (k, step) in steps[1..4].iter().enumerate() {
        let tryon = received(step);
        assert_eq!(
            tryon["input"],
            json!({"human_img": previous, "garm_img": format!("https://img/look/g{}.png", k + 1)}),
            "tryon item {k} dresses the step before"
        );
        previous = tryon["output"].clone();
    }
    let mut variant_outputs = vec![];
    for (k, step) in steps[4..7].iter().enumerate() {
        let variant = received(step);
        assert_eq!(
            variant["input"],
            json!({"image": previous, "seed": 11 + k}),
            "variant {k} starts from tryon's last output with its own seed"
        );
        variant_outputs.push(variant["output"].clone());
    }
    let sheet = received(&steps[7]);
    assert_eq!(
        sheet["input"],
        json!({"images": variant_outputs, "cutout": cutout["output"]}),
        "the sheet joins the variants in item order"
    );
    assert!(sheet["output"].is_string(), "{sheet:#}");
    assert_eq!(task["output"], sheet["output"]);
}

/// A prediction's `[created_at, completed_at)` at the simulator, in Unix nanoseconds.
type Span = (i128, i128);

/// The spans of these predictions, all finished.
fn spans(sim: &SimHandle, predictions: &[Value]) -> Vec<Span> {
    predictions
        .iter()
        .map(|p| {
            let times = sim.prediction_times(p["id"].as_str().unwrap()).unwrap();
            let completed = times.completed_at.expect("finished");
            (
                times.created_at.unix_timestamp_nanos(),
                completed.unix_timestamp_nanos(),
            )
        })
        .collect()
}

/// The most spans open at once (a span is open from its start, up to but not including its
/// end).
fn most_at_once(spans: &[Span]) -> usize {
    spans
        .iter()
        .map(|(at, _)| spans.iter().filter(|(s, e)| s <= at && at < e).count())
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_branches_run_at_the_same_time_and_no_more_than_max_parallel() {
    let env = Env::start_with(Load::Light, 100, lookbook_models(1500)).await;
    let app = env.spawn(&pipeline_config(&env));

    let id = app
        .start_ok(&lookbook_body("lookbook", "wide", 4, 100))
        .await;
    let task = app.wait_until_finished(&id, WITHIN).await;
    assert_one_prediction_per_step(&env.sim, &task);
    let wide = predictions_of(&env.sim, "test/variant");
    assert_eq!(wide.len(), 4);
    let wide = spans(&env.sim, &wide);
    for (i, a) in wide.iter().enumerate() {
        for b in &wide[i + 1..] {
            assert!(
                a.0 < b.1 && b.0 < a.1,
                "every two branches overlap in time: {wide:#?}"
            );
        }
    }
    assert_eq!(most_at_once(&wide), 4, "{wide:#?}");

    let id = app
        .start_ok(&lookbook_body("narrow", "narrow", 4, 200))
        .await;
    let task = app.wait_until_finished(&id, WITHIN).await;
    assert_eq!(task["status"], "succeeded", "{task:#}");
    assert_eq!(task["stages"][2]["max_parallel"], 2);
    let narrow: Vec<Value> = predictions_of(&env.sim, "test/variant")
        .into_iter()
        .filter(|p| p["input"]["seed"].as_u64().is_some_and(|s| s >= 200))
        .collect();
    assert_eq!(narrow.len(), 4);
    let narrow = spans(&env.sim, &narrow);
    assert_eq!(
        most_at_once(&narrow),
        2,
        "two branches at a time, never three: {narrow:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_of_once_stages_starts_without_items() {
    let env = Env::start(Load::Light, 100).await;
    let app = env.spawn(&pipeline_config(&env));
    let id = app
        .start_ok(&json!({
            "workflow": "portrait",
            "params": {"person_image": "https://img/portrait/person.png"},
        }))
        .await;
    let task = app.wait_until_finished(&id, WITHIN).await;
    assert_eq!(task["status"], "succeeded", "{task:#}");
    assert_eq!(task["total_steps"], 2);
    assert_eq!(task["progress"], "2/2");
    assert_one_prediction_per_step(&env.sim, &task);
    let steps = task["steps"].as_array().unwrap();
    for (step, stage) in steps.iter().zip(["cutout", "upscale"]) {
        assert_eq!(step["stage"], stage);
        assert!(
            step["item"].is_null() && step["item_index"].is_null(),
            "{step:#}"
        );
    }
    assert_eq!(
        steps[0]["input"],
        json!({"image": "https://img/portrait/person.png"})
    );
    assert_eq!(
        steps[1]["input"],
        json!({"image": steps[0]["output"], "scale": 2})
    );
    assert_eq!(steps[1]["model"], "test/upscale");
    assert_eq!(task["output"], steps[1]["output"]);
}
