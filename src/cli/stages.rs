//! How the CLI names a task's stages and the steps in them (`tasks show`, `tasks watch`),
//! from the API's JSON: a task's `stages` and each step's `stage`, `item_index` and `model`.
//! A task with no `stages` (an older server) or only the one-model workflow's stage `main`
//! is shown as a flat list of steps, as before stages existed.

use super::tasks::text;
use serde_json::Value;

/// The stage a one-model workflow's steps belong to.
const ONE_MODEL_STAGE: &str = "main";

/// The task's stages when it has some worth naming: more than one, or one not called `main`.
pub fn named(task: &Value) -> Option<&[Value]> {
    let stages = task["stages"].as_array()?;
    let only_main = stages.len() == 1 && stages[0]["name"] == ONE_MODEL_STAGE;
    (!stages.is_empty() && !only_main).then_some(stages.as_slice())
}

/// How a stage runs, in words: `once`, `each item, chained`, `each item, in parallel (at most
/// 2 at once)`.
pub fn runs(stage: &Value) -> String {
    match stage["runs"].as_str() {
        Some("once") => "once".into(),
        Some("each") => "each item, chained".into(),
        Some("parallel") => match stage["max_parallel"].as_u64() {
            Some(cap) => format!("each item, in parallel (at most {cap} at once)"),
            None => "each item, in parallel".into(),
        },
        other => other.unwrap_or("-").into(),
    }
}

/// A heading for stage `position` (0-based) of `stages`: its name, model, how it runs and
/// how many of its steps succeeded.
pub fn heading(stages: &[Value], position: usize, steps: &[Value]) -> String {
    let stage = &stages[position];
    let name = stage["name"].as_str().unwrap_or("-");
    let mine: Vec<&Value> = steps.iter().filter(|s| s["stage"] == name).collect();
    let done = mine.iter().filter(|s| s["status"] == "succeeded").count();
    format!(
        "stage {}/{} {name}: {}, {}, {done}/{} succeeded",
        position + 1,
        stages.len(),
        text(&stage["model"]),
        runs(stage),
        mine.len()
    )
}

/// The stage named `name`, and where it is in `stages`.
pub fn find<'a>(stages: &'a [Value], name: &Value) -> Option<(usize, &'a Value)> {
    stages.iter().enumerate().find(|(_, s)| &s["name"] == name)
}

/// The step's item: its `item_index`, from 0 as in the start request's `items` (and in the
/// task's error, `step 5 (variants, item 0)`); `-` for a stage that runs once.
pub fn item(step: &Value) -> String {
    step["item_index"]
        .as_u64()
        .map_or("-".into(), |i| i.to_string())
}

/// The model the step ran on when it is not its stage's own (its fallback's).
pub fn fallback_model<'a>(stages: &[Value], step: &'a Value) -> Option<&'a str> {
    let model = step["model"].as_str()?;
    let (_, stage) = find(stages, &step["stage"])?;
    (stage["model"].as_str() != Some(model)).then_some(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_one_model_task_and_an_older_server_s_task_have_no_stages_to_name() {
        assert!(named(&json!({"steps": []})).is_none());
        let one = json!({"stages": [{"name": "main", "model": "a/b", "runs": "each"}]});
        assert!(named(&one).is_none());
        let two = json!({"stages": [{"name": "a", "runs": "once"}, {"name": "b", "runs": "each"}]});
        assert_eq!(named(&two).map(<[Value]>::len), Some(2));
    }

    #[test]
    fn a_heading_names_the_stage_its_model_how_it_runs_and_its_progress() {
        let stages = [
            json!({"name": "cutout", "model": "acme/rembg", "runs": "once", "max_parallel": null}),
            json!({"name": "variants", "model": "acme/variant", "runs": "parallel", "max_parallel": 2}),
        ];
        let steps = [
            json!({"stage": "cutout", "status": "succeeded"}),
            json!({"stage": "variants", "status": "succeeded"}),
            json!({"stage": "variants", "status": "processing"}),
        ];
        assert_eq!(
            heading(&stages, 0, &steps),
            "stage 1/2 cutout: acme/rembg, once, 1/1 succeeded"
        );
        assert_eq!(
            heading(&stages, 1, &steps),
            "stage 2/2 variants: acme/variant, each item, in parallel (at most 2 at once), 1/2 succeeded"
        );
    }

    #[test]
    fn a_step_on_its_stage_s_fallback_names_the_model() {
        let stages = [json!({"name": "tryon", "model": "acme/tryon", "runs": "each"})];
        let own = json!({"stage": "tryon", "model": "acme/tryon", "item_index": 0});
        let fallback = json!({"stage": "tryon", "model": "acme/tryon-lite", "item_index": 1});
        assert_eq!(fallback_model(&stages, &own), None);
        assert_eq!(fallback_model(&stages, &fallback), Some("acme/tryon-lite"));
        assert_eq!(item(&fallback), "1");
        assert_eq!(item(&json!({"item_index": null})), "-");
    }
}
