//! A three-stage pipeline for the tests of what operators see (the dashboard, `tasks show`):
//! a `cutout` that runs once, a chained `tryon` per item, then `variants` per item in
//! parallel, at most two at once, each reading the try-on's last output. Append [`LOOKBOOK`]
//! to a `config_toml`; `fixtures::lookbook_body("lookbook", …)` starts it.

use serde_json::{json, Value};

/// The `lookbook` workflow. Its models are the simulator's defaults but `test/tryon`, so every
/// step takes about the simulator's `processing_ms`.
pub const LOOKBOOK: &str = r#"
[workflows.lookbook]
max_items = 5

[[workflows.lookbook.stages]]
name = "cutout"
model = "test/rembg"
[workflows.lookbook.stages.input]
image = "{{params.person_image}}"

[[workflows.lookbook.stages]]
name = "tryon"
model = "test/tryon"
each = "item"
[workflows.lookbook.stages.input]
human_img = "{{previous.output}}"
garm_img = "{{item.garment_image}}"
garment_des = "{{item.description}}"

[[workflows.lookbook.stages]]
name = "variants"
model = "test/variant"
each = "item"
parallel = true
max_parallel = 2
[workflows.lookbook.stages.input]
image = "{{stages.tryon.output}}"
seed = "{{item.seed}}"
"#;

/// The stages of [`LOOKBOOK`] as the API shows them in a task's `stages`.
pub fn lookbook_stages() -> Value {
    json!([
        {"name": "cutout", "model": "test/rembg", "runs": "once", "max_parallel": null},
        {"name": "tryon", "model": "test/tryon", "runs": "each", "max_parallel": null},
        {"name": "variants", "model": "test/variant", "runs": "parallel", "max_parallel": 2},
    ])
}
