//! `stepwise tasks watch ID`: follows the task's event stream and tells its story in lines:
//! a header (id, workflow, steps), each step as it succeeds (with its output) or fails (with
//! its error), named with its stage and item when the task has stages, retried attempts, then
//! how the task ended and its output. The stream's first
//! message holds the whole task; later ones hold the task without steps plus the steps that
//! changed, merged here by `index` (docs/API.md, "Live updates").

use super::out::line;
use super::stages;
use super::tasks::{text, Api};
use anyhow::{bail, Context};
use serde_json::Value;
use std::collections::HashMap;

/// What has been said about one step, so each event is told once.
#[derive(Default, PartialEq)]
struct Told {
    status: String,
    /// The attempt whose failure was told (a step that will run again).
    failed_attempt: Option<u64>,
}

/// The task as the stream has told it so far, and what was printed of it.
#[derive(Default)]
pub struct Story {
    task: Value,
    told: HashMap<u64, Told>,
    started: bool,
}

impl Story {
    /// Folds one stream message into the task; returns the lines it adds to the story.
    pub fn read(&mut self, message: &Value) -> Vec<String> {
        let mut lines = vec![];
        let changed: Vec<Value> = if message["kind"] == "snapshot" {
            self.task = message["task"].clone();
            self.task["steps"].as_array().cloned().unwrap_or_default()
        } else {
            let steps = self.task["steps"].take();
            let stages = self.task["stages"].take();
            self.task = message["task"].clone();
            self.task["steps"] = steps;
            if self.task["stages"].is_null() {
                self.task["stages"] = stages;
            }
            let changed = message["steps"].as_array().cloned().unwrap_or_default();
            for step in &changed {
                self.merge(step);
            }
            changed
        };
        if !std::mem::replace(&mut self.started, true) {
            lines.push(format!(
                "task {}  workflow {}  {} steps  {}",
                text(&self.task["id"]),
                text(&self.task["workflow"]),
                text(&self.task["total_steps"]),
                text(&self.task["status"]),
            ));
        }
        let total = text(&self.task["total_steps"]);
        for step in &changed {
            lines.extend(self.tell_step(step, &total));
        }
        if let Some(end) = self.ending() {
            lines.push(end);
        }
        lines
    }

    /// Puts `step` in place of the task's step with the same `index`.
    fn merge(&mut self, step: &Value) {
        let Some(steps) = self.task["steps"].as_array_mut() else {
            return;
        };
        let slot = step["index"].as_u64().and_then(|index| {
            steps
                .iter_mut()
                .find(|s| s["index"].as_u64() == Some(index))
        });
        match slot {
            Some(slot) => *slot = step.clone(),
            None => steps.push(step.clone()),
        }
    }

    fn tell_step(&mut self, step: &Value, total: &str) -> Option<String> {
        let index = step["index"].as_u64()?;
        let status = step["status"].as_str().unwrap_or("");
        let name = match stages::named(&self.task) {
            Some(_) if step["item_index"].is_u64() => format!(
                "step {index}/{total} ({} item {})",
                text(&step["stage"]),
                stages::item(step)
            ),
            Some(_) => format!("step {index}/{total} ({})", text(&step["stage"])),
            None => format!("step {index}/{total}"),
        };
        let told = self.told.entry(index).or_default();
        let attempt = step["attempt"].as_u64();
        let said = match status {
            _ if told.status == status && !matches!(status, "pending" | "starting") => None,
            "succeeded" => Some(format!("{name} succeeded: {}", text(&step["output"]))),
            "failed" => Some(format!("{name} failed: {}", text(&step["error"]))),
            "canceled" => Some(format!("{name} canceled")),
            // An attempt failed and the step waits to run again: its error says why.
            "pending" | "starting" if !step["error"].is_null() => {
                if told.failed_attempt == attempt {
                    None
                } else {
                    told.failed_attempt = attempt;
                    Some(format!(
                        "{name} attempt {} failed: {}; retrying",
                        attempt.map_or("-".into(), |a| a.to_string()),
                        text(&step["error"])
                    ))
                }
            }
            _ => None,
        };
        told.status = status.to_owned();
        said
    }

    /// The last line, once the task has ended.
    fn ending(&self) -> Option<String> {
        let task = &self.task;
        match task["status"].as_str()? {
            "succeeded" => Some(format!(
                "task succeeded ({}): output {}",
                text(&task["progress"]),
                text(&task["output"])
            )),
            "failed" => Some(format!(
                "task failed at step {}/{}: {}",
                text(&task["current_step"]),
                text(&task["total_steps"]),
                text(&task["error"])
            )),
            "canceled" => Some(format!("task canceled ({})", text(&task["progress"]))),
            _ => None,
        }
    }
}

/// Follows the task's event stream until the task ends.
pub async fn watch(api: &Api, id: &str, json: bool) -> anyhow::Result<()> {
    let request = api.request(reqwest::Method::GET, &format!("/v1/tasks/{id}/events"));
    let mut response = request
        .send()
        .await
        .with_context(|| format!("cannot reach {}", api.url))?;
    if !response.status().is_success() {
        bail!("the server answered {}", response.status());
    }
    let mut events = super::sse::Parser::default();
    let mut story = Story::default();
    while let Some(chunk) = response.chunk().await? {
        for event in events.feed(&chunk) {
            let message: Value = serde_json::from_str(&event.data)
                .with_context(|| format!("event {:?} is not JSON", event.id))?;
            if json {
                line(&message)?;
                continue;
            }
            for told in story.read(&message) {
                line(told)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(index: u64, status: &str, output: Value, error: Value, attempt: u64) -> Value {
        json!({"index": index, "status": status, "output": output, "error": error, "attempt": attempt})
    }

    #[test]
    fn a_story_tells_each_step_once_from_a_snapshot_and_deltas() {
        let mut story = Story::default();
        let task = |status: &str, steps: Option<Value>| {
            let mut t = json!({"id": "tsk_1", "workflow": "w", "total_steps": 2,
                "status": status, "progress": "0/2", "output": null, "error": null});
            if let Some(steps) = steps {
                t["steps"] = steps;
            }
            t
        };
        let first = json!({"kind": "snapshot", "task": task("running", Some(json!([
            step(1, "processing", json!(null), json!(null), 1),
            step(2, "pending", json!(null), json!(null), 0),
        ])))});
        let lines = story.read(&first);
        assert_eq!(lines, vec!["task tsk_1  workflow w  2 steps  running"]);
        let one_done = json!({"kind": "step_succeeded", "task": task("running", None),
            "steps": [step(1, "succeeded", json!("a.png"), json!(null), 1)]});
        assert_eq!(story.read(&one_done), vec!["step 1/2 succeeded: a.png"]);
        let retry = json!({"kind": "attempt_failed", "task": task("running", None),
            "steps": [step(2, "pending", json!(null), json!("OOM"), 1)]});
        assert_eq!(
            story.read(&retry),
            vec!["step 2/2 attempt 1 failed: OOM; retrying"]
        );
        let same = json!({"kind": "step_requested", "task": task("running", None),
            "steps": [step(2, "pending", json!(null), json!("OOM"), 1)]});
        assert!(story.read(&same).is_empty(), "told once");
        let mut end = task("succeeded", None);
        end["output"] = json!("b.png");
        end["progress"] = json!("2/2");
        let done = json!({"kind": "task_succeeded", "task": end,
            "steps": [step(2, "succeeded", json!("b.png"), json!(null), 2)]});
        assert_eq!(
            story.read(&done),
            vec![
                "step 2/2 succeeded: b.png",
                "task succeeded (2/2): output b.png"
            ]
        );
        let steps = story.task["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 2, "merged by index");
        assert_eq!(steps[0]["output"], "a.png");
    }

    #[test]
    fn a_pipeline_s_steps_are_told_with_their_stage_and_item() {
        let mut story = Story::default();
        let task = json!({"id": "tsk_1", "workflow": "lookbook", "total_steps": 3,
        "status": "running", "progress": "0/3", "output": null, "error": null,
        "stages": [{"name": "cutout", "runs": "once"}, {"name": "variants", "runs": "parallel"}],
        "steps": [
            {"index": 1, "stage": "cutout", "item_index": null, "status": "processing", "attempt": 1},
            {"index": 2, "stage": "variants", "item_index": 0, "status": "pending", "attempt": 0},
            {"index": 3, "stage": "variants", "item_index": 1, "status": "pending", "attempt": 0},
        ]});
        story.read(&json!({"kind": "snapshot", "task": task}));
        let mut summary = task.clone();
        summary.as_object_mut().unwrap().remove("steps");
        summary.as_object_mut().unwrap().remove("stages");
        let message = json!({"kind": "step_succeeded", "task": summary, "steps": [
            {"index": 1, "stage": "cutout", "item_index": null, "status": "succeeded", "output": "c.png"},
            {"index": 3, "stage": "variants", "item_index": 1, "status": "succeeded", "output": "v2.png"},
        ]});
        assert_eq!(
            story.read(&message),
            vec![
                "step 1/3 (cutout) succeeded: c.png",
                "step 3/3 (variants item 1) succeeded: v2.png"
            ]
        );
    }
}
