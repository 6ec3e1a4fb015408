//! What every test of the API starts from, in one place: a simulated Replicate with the test
//! models, a config with the test workflows, try-on start bodies, and the check that a
//! finished try-on chained each step's output into the next step's input.
//!
//! Two harnesses share this file: the black-box tests (`tests/e2e`, the real binary) and the
//! in-process API tests (`server/tests/http_api`, which include it with `#[path]`). Change a
//! workflow here and both see it; `server/tests/http_api/fuzz/property.rs` mirrors what
//! makes a start body valid for these workflows.

// Each harness uses its own part of this file.
#![allow(dead_code)]

use replicate_sim::{ModelBehavior, OutputShape, SimConfig, SimHandle};
use serde_json::{json, Value};
use std::path::Path;

/// The token the simulator accepts; the engine is given it as `REPLICATE_API_TOKEN`.
pub const SIM_TOKEN: &str = "r8_test_token";

/// A simulated Replicate with the models the test workflows use: `test/tryon` (predictions
/// of about `processing_ms`), `test/failing` (always fails, "CUDA out of memory"),
/// `test/list` (outputs a list of URLs) and `test/slow` (runs for ten minutes).
pub async fn start_sim(processing_ms: u64) -> SimHandle {
    start_sim_with(processing_ms, |_| {}).await
}

/// `start_sim`, with `tweak` applied to the simulator's config before it starts.
pub async fn start_sim_with(processing_ms: u64, tweak: impl FnOnce(&mut SimConfig)) -> SimHandle {
    let quick = |ms| ModelBehavior {
        starting_ms: ms / 4,
        processing_ms: ms,
        ..Default::default()
    };
    let mut config = SimConfig {
        token: SIM_TOKEN.into(),
        default_model: quick(processing_ms),
        ..Default::default()
    };
    config
        .models
        .insert("test/tryon".into(), quick(processing_ms));
    config.models.insert(
        "test/failing".into(),
        ModelBehavior {
            failure_rate: 1.0,
            failure_message: "CUDA out of memory".into(),
            ..quick(processing_ms)
        },
    );
    config.models.insert(
        "test/list".into(),
        ModelBehavior {
            output: OutputShape::UrlList,
            ..quick(processing_ms)
        },
    );
    config.models.insert(
        "test/slow".into(),
        ModelBehavior {
            starting_ms: 100,
            processing_ms: 600_000,
            ..Default::default()
        },
    );
    tweak(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    replicate_sim::start(config, listener).await.unwrap()
}

/// The test config against `sim_url`, storing in `dir/data`, with quick polls and rate limits
/// high enough not to matter. `extra` goes into `[server]`. The workflows:
/// - `tryon`: up to 5 items, each step's `human_img` is the previous step's output;
/// - `failing`: every step fails; `retrying`: the same, each step tried 3 times;
/// - `listy`: indexes into the previous step's list output;
/// - `slow`: 1 s step timeout, one retry; `deadline`: 1 s task timeout;
/// - `capped`: at most 2 tasks in flight.
pub fn config_toml(dir: &Path, sim_url: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
{extra}
[storage]
data_dir = "{data}"
[replicate]
api_base = "{sim_url}"
poll_initial_ms = 40
poll_max_ms = 200
creates_per_minute = 60000
create_burst = 1000
other_calls_per_minute = 600000
other_burst = 10000
[workflows.tryon]
model = "test/tryon"
max_items = 5
[workflows.tryon.input]
human_img = "{{{{previous.output}}}}"
garm_img = "{{{{item.garment_image}}}}"
garment_des = "{{{{item.description}}}}"
steps = 30
[workflows.tryon.first]
human_img = "{{{{params.person_image}}}}"
[workflows.failing]
model = "test/failing"
[workflows.failing.input]
x = "{{{{item.x}}}}"
[workflows.listy]
model = "test/list"
[workflows.listy.input]
image = "{{{{previous.output.0}}}}"
n = "{{{{item.n}}}}"
[workflows.listy.first]
image = "{{{{params.start}}}}"
[workflows.retrying]
model = "test/failing"
step_retries = 2
[workflows.retrying.input]
x = "{{{{item.x}}}}"
[workflows.slow]
model = "test/slow"
step_timeout = "1s"
step_retries = 1
[workflows.slow.input]
x = "{{{{item.x}}}}"
[workflows.deadline]
model = "test/slow"
task_timeout = "1s"
[workflows.deadline.input]
x = "{{{{item.x}}}}"
[workflows.capped]
model = "test/tryon"
max_in_flight = 2
[workflows.capped.input]
x = "{{{{item.x}}}}"
"#,
        data = dir.join("data").display()
    )
}

/// A try-on start body whose items are tagged with `tag`, so each step's input is unique.
pub fn tryon_body(tag: &str, items: usize) -> Value {
    let items: Vec<Value> = (1..=items)
        .map(|i| json!({"garment_image": format!("https://img/{tag}/g{i}.png"), "description": format!("{tag} garment {i}")}))
        .collect();
    json!({"workflow": "tryon", "params": {"person_image": format!("https://img/{tag}/person.png")}, "items": items})
}

/// Every prediction the simulator holds whose input has `garm_img` == `garment`.
pub fn predictions_for(sim: &SimHandle, garment: &str) -> Vec<Value> {
    sim.predictions()
        .into_iter()
        .filter(|p| p["input"]["garm_img"] == garment)
        .collect()
}

/// Checks a finished try-on task: succeeded, and each step's input carries the previous
/// step's output, as the simulator recorded them.
pub fn assert_chained(sim: &SimHandle, task: &Value, tag: &str) {
    assert_eq!(task["status"], "succeeded", "{task:#}");
    let steps = task["steps"].as_array().unwrap();
    let mut previous = json!(format!("https://img/{tag}/person.png"));
    for (i, step) in steps.iter().enumerate() {
        let garment = format!("https://img/{tag}/g{}.png", i + 1);
        let predictions = predictions_for(sim, &garment);
        assert_eq!(
            predictions.len(),
            1,
            "exactly one prediction for {garment}: {predictions:#?}"
        );
        let prediction = &predictions[0];
        assert_eq!(
            prediction["input"]["human_img"],
            previous,
            "step {} input chains",
            i + 1
        );
        assert_eq!(step["prediction_id"], prediction["id"]);
        assert_eq!(step["output"], prediction["output"]);
        assert_eq!(step["status"], "succeeded");
        previous = prediction["output"].clone();
    }
    assert_eq!(task["output"], previous);
}

/// The four-stage pipeline of issue 19 as workflow `name`, to append to a config from
/// [`config_toml`]: `cutout` (`test/rembg`, once, reads the person) -> `tryon` (`test/tryon`,
/// per item, each step dressing the previous step's output) -> `variants` (`test/variant`, per
/// item, in parallel, at most `max_parallel` at once, each from tryon's last output and its
/// item's seed) -> `sheet` (`test/grid`, once, joins the variants and the cutout).
pub fn lookbook_toml(name: &str, max_parallel: u32) -> String {
    r#"
[workflows.NAME]
max_items = 10
[[workflows.NAME.stages]]
name = "cutout"
model = "test/rembg"
[workflows.NAME.stages.input]
image = "{{params.person_image}}"
[[workflows.NAME.stages]]
name = "tryon"
model = "test/tryon"
each = "item"
[workflows.NAME.stages.input]
human_img = "{{previous.output}}"
garm_img = "{{item.garment_image}}"
[[workflows.NAME.stages]]
name = "variants"
model = "test/variant"
each = "item"
parallel = true
max_parallel = MAX_PARALLEL
[workflows.NAME.stages.input]
image = "{{stages.tryon.output}}"
seed = "{{item.seed}}"
[[workflows.NAME.stages]]
name = "sheet"
model = "test/grid"
[workflows.NAME.stages.input]
images = "{{stages.variants.outputs}}"
cutout = "{{stages.cutout.output}}"
"#
    .replace("NAME", name)
    .replace("MAX_PARALLEL", &max_parallel.to_string())
}

/// A start body for a [`lookbook_toml`] workflow: a person and `items` garments tagged with
/// `tag` (so every step's input is unique in the simulator), item `i` (0-based) with seed
/// `seed_base + i`.
pub fn lookbook_body(workflow: &str, tag: &str, items: usize, seed_base: u64) -> Value {
    let items: Vec<Value> = (0..items)
        .map(|i| {
            json!({
                "garment_image": format!("https://img/{tag}/g{}.png", i + 1),
                "description": format!("{tag} garment {}", i + 1),
                "seed": seed_base + i as u64,
            })
        })
        .collect();
    json!({
        "workflow": workflow,
        "params": {"person_image": format!("https://img/{tag}/person.png")},
        "items": items,
    })
}

/// The simulator tweak for a lookbook whose variants take `variant_ms` (starting in 20 ms),
/// the other stages' models keeping the default timing.
pub fn lookbook_models(variant_ms: u64) -> impl FnOnce(&mut SimConfig) + Send + 'static {
    move |config| {
        config.models.insert(
            "test/variant".into(),
            ModelBehavior {
                starting_ms: 20,
                processing_ms: variant_ms,
                ..Default::default()
            },
        );
    }
}
