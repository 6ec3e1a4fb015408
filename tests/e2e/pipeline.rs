//! Pipelines (issue 19): workflows of stages on different models, run once, per item in a
//! chain, or per item in parallel, joined by a later stage. The real binary against the
//! simulator; every check reads the predictions the simulator received, so what is asserted
//! is what Replicate would have been asked to run and paid for.

use crate::support::*;
use replicate_sim::SimHandle;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

// Check-config on broken stages.
mod config;
// `kill -9` and an abort between a create and its journal write, in a parallel stage.
mod crash;
// A failing branch, retry, fallback, cancel.
mod failure;
// Values through four stages, parallel branches in time, a pipeline without items.
mod run;
// The simulator's webhook deliveries drive every step, parallel branches included.
mod webhooks;

/// Deadline of a whole pipeline on a loaded two-core machine.
const WITHIN: Duration = Duration::from_secs(90);

/// Workflows beside the lookbooks: `fallback` (one per-item stage on `test/failing`, retried
/// once, then run on `test/rembg`, joined by a once stage), `portrait` (two once stages, no
/// items).
const MORE_WORKFLOWS: &str = r#"
[workflows.fallback]
[[workflows.fallback.stages]]
name = "upscale"
model = "test/failing"
each = "item"
step_retries = 1
fallback_model = "test/rembg"
[workflows.fallback.stages.input]
image = "{{item.image}}"
[[workflows.fallback.stages]]
name = "sheet"
model = "test/grid"
[workflows.fallback.stages.input]
images = "{{stages.upscale.outputs}}"
[workflows.portrait]
[[workflows.portrait.stages]]
name = "cutout"
model = "test/rembg"
[workflows.portrait.stages.input]
image = "{{params.person_image}}"
[[workflows.portrait.stages]]
name = "upscale"
model = "test/upscale"
[workflows.portrait.stages.input]
image = "{{stages.cutout.output}}"
scale = 2
"#;

/// The test config with the pipeline workflows: `lookbook` (variants at most 4 at once),
/// `narrow` (the same, at most 2), and [`MORE_WORKFLOWS`].
fn pipeline_config(env: &Env) -> String {
    format!(
        "{}{}{}{MORE_WORKFLOWS}",
        env.config(""),
        lookbook_toml("lookbook", 4),
        lookbook_toml("narrow", 2)
    )
}

/// The simulator's predictions of `model`, in creation order.
fn predictions_of(sim: &SimHandle, model: &str) -> Vec<Value> {
    sim.predictions()
        .into_iter()
        .filter(|p| p["model"] == model)
        .collect()
}

/// How many predictions the simulator holds per (model, input).
fn predictions_per_call(sim: &SimHandle) -> HashMap<(String, String), usize> {
    let mut counts = HashMap::new();
    for p in sim.predictions() {
        let key = (
            p["model"].as_str().unwrap_or_default().to_owned(),
            replicate_sim::canonical_json(&p["input"]),
        );
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// A succeeded task whose steps each ran on exactly one prediction: the simulator holds one
/// prediction per step (no two with the same model and input), that prediction is the
/// step's, with the step's input and output, and nothing else was created.
fn assert_one_prediction_per_step(sim: &SimHandle, task: &Value) {
    assert_eq!(task["status"], "succeeded", "{task:#}");
    let steps = task["steps"].as_array().unwrap();
    let duplicated: Vec<_> = predictions_per_call(sim)
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(duplicated.is_empty(), "paid twice: {duplicated:#?}");
    assert_eq!(
        sim.create_calls() as usize,
        steps.len(),
        "one create per step: {:#?}",
        sim.predictions()
    );
    for step in steps {
        let id = step["prediction_id"].as_str().expect("a prediction id");
        let prediction = sim.prediction(id).expect("the simulator has the step's");
        assert_eq!(prediction["status"], "succeeded", "{prediction:#}");
        assert_eq!(prediction["input"], step["input"], "step {}", step["index"]);
        assert_eq!(
            prediction["output"], step["output"],
            "step {}",
            step["index"]
        );
    }
}
