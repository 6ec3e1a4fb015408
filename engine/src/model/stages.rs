//! A task's stages as fixed at its start: their names, how each runs (once, per item in a
//! chain, per item in parallel) and how its steps are laid out. Stored in every snapshot and
//! journaled with the task's first event, so a task runs the plan it started with even if
//! the workflow's config changes while it waits.

use super::{Json, Step, StepStatus, Task};
use serde::{Deserialize, Serialize};

/// The name of the one stage of a task journaled before workflows had stages (and of a
/// one-model workflow's stage): one step per item, chained.
pub const LEGACY_STAGE: &str = "main";

/// One stage of a task. Stored through bincode: never reorder fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagePlan {
    pub name: String,
    /// The model (`owner/name`) or version its predictions run on, when known (tasks
    /// journaled before stages existed did not record it).
    pub model: Option<String>,
    /// One step per item (else one step for the stage).
    pub each: bool,
    /// Its steps run at once rather than in a chain (only with `each`).
    pub parallel: bool,
    /// Most of its predictions running at once (parallel stages; `None`: no cap of its own).
    pub max_parallel: Option<u32>,
}

impl StagePlan {
    /// The stage of a task journaled before stages existed.
    pub fn legacy(model: Option<String>) -> Self {
        StagePlan {
            name: LEGACY_STAGE.to_owned(),
            model,
            each: true,
            parallel: false,
            max_parallel: None,
        }
    }
}

/// The steps of `stages` run over `items`: stage by stage, items in order within a stage.
pub fn layout(stages: &[StagePlan], items: &[Json]) -> Vec<Step> {
    let mut steps = Vec::new();
    for (stage, plan) in stages.iter().enumerate() {
        if plan.each {
            for (i, item) in items.iter().enumerate() {
                let index = steps.len() as u32 + 1;
                steps.push(Step::new(index, item.clone(), stage as u32, Some(i as u32)));
            }
        } else {
            let index = steps.len() as u32 + 1;
            steps.push(Step::new(index, Json("null".into()), stage as u32, None));
        }
    }
    steps
}

impl Task {
    /// The plan of the stage `step` belongs to.
    pub fn stage_of(&self, step: &Step) -> Option<&StagePlan> {
        self.stages.get(step.stage as usize)
    }

    /// The steps of stage `stage`, in item order (steps of a stage are contiguous).
    pub fn stage_steps(&self, stage: u32) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .skip_while(move |s| s.stage < stage)
            .take_while(move |s| s.stage == stage)
    }

    /// Steps of stage `stage` with a prediction starting or running.
    pub fn running_in_stage(&self, stage: u32) -> usize {
        self.stage_steps(stage)
            .filter(|s| matches!(s.status, StepStatus::Starting | StepStatus::Processing))
            .count()
    }

    /// Steps with a prediction starting or running, over the whole task.
    pub fn running_steps(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s.status, StepStatus::Starting | StepStatus::Processing))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(name: &str, each: bool, parallel: bool) -> StagePlan {
        StagePlan {
            name: name.into(),
            model: Some("acme/m".into()),
            each,
            parallel,
            max_parallel: None,
        }
    }

    #[test]
    fn steps_are_laid_out_stage_by_stage_items_in_order() {
        let stages = [
            stage("cutout", false, false),
            stage("tryon", true, false),
            stage("variants", true, true),
            stage("sheet", false, false),
        ];
        let items = [Json("{\"g\":1}".into()), Json("{\"g\":2}".into())];
        let steps = layout(&stages, &items);
        let shape: Vec<(u32, u32, Option<u32>)> = steps
            .iter()
            .map(|s| (s.index, s.stage, s.item_index))
            .collect();
        assert_eq!(
            shape,
            [
                (1, 0, None),
                (2, 1, Some(0)),
                (3, 1, Some(1)),
                (4, 2, Some(0)),
                (5, 2, Some(1)),
                (6, 3, None)
            ]
        );
        assert_eq!(steps[0].item.0, "null");
        assert_eq!(steps[4].item.0, "{\"g\":2}");
    }
}
