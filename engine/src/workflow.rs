//! Workflow definitions: a pipeline of stages (`stage`), each a model run once or once per
//! item, with an input template per step (`template`, `placeholder`: `{{params.X}}`,
//! `{{item.X}}`, `{{previous.output}}`, `{{stages.NAME.output}}`, alone or inside text). The
//! one-model form is a pipeline of one stage. Templates are compiled and checked at startup;
//! start requests are checked before anything is written (`size`). No IO.

mod placeholder;
mod size;
mod stage;
mod template;

pub use placeholder::Scope;
pub use stage::Stage;

use crate::config::{LimitsConfig, WorkflowConfig};
use serde_json::Value;
use size::{json_len, long_string_in};
use std::time::Duration;

/// Where a prediction is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `owner/name`: `POST /v1/models/{owner}/{name}/predictions`.
    Model(String),
    /// `POST /v1/predictions` with this `version`.
    Version(String),
}

impl Target {
    /// `owner/name`, or the version id: what a step records as the model that ran it.
    pub fn label(&self) -> &str {
        match self {
            Target::Model(model) => model,
            Target::Version(version) => version,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Workflow {
    pub name: String,
    pub max_items: usize,
    pub task_timeout: Option<Duration>,
    pub max_in_flight: Option<usize>,
    /// In the order they run; never empty.
    pub stages: Vec<Stage>,
    limits: LimitsConfig,
}

/// A start request that the workflow cannot run; the message names the missing field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

impl Workflow {
    /// Checks `config` and builds the workflow; on error, every problem names its config key.
    pub fn compile(
        name: &str,
        config: &WorkflowConfig,
        limits: LimitsConfig,
    ) -> Result<Workflow, Vec<String>> {
        let key = format!("workflows.{name}");
        let mut problems = vec![];
        if config.max_items == 0 {
            problems.push(format!("{key}.max_items must be at least 1"));
        }
        if config.max_in_flight == Some(0) {
            problems.push(format!(
                "{key}.max_in_flight must be at least 1 (leave it out for no cap)"
            ));
        }
        let stages: Vec<Option<Stage>> = if config.stages.is_empty() {
            vec![stage::one_model(name, config, &mut problems)]
        } else {
            let one_model_keys = [
                ("model", config.model.is_some()),
                ("version", config.version.is_some()),
                ("input", !config.input.is_empty()),
                ("first", !config.first.is_empty()),
            ];
            for (field, _) in one_model_keys.iter().filter(|(_, set)| *set) {
                problems.push(format!(
                    "{key}.{field}: a workflow with [[{key}.stages]] sets {field} in each stage"
                ));
            }
            stage::check_names(&key, &config.stages, &mut problems);
            let names: Vec<String> = config.stages.iter().map(|s| s.name.clone()).collect();
            let compile =
                |(index, stage)| stage::compile(config, &key, index, stage, &names, &mut problems);
            config.stages.iter().enumerate().map(compile).collect()
        };
        match stages.into_iter().collect::<Option<Vec<Stage>>>() {
            Some(stages) if problems.is_empty() => Ok(Workflow {
                name: name.to_owned(),
                max_items: config.max_items,
                task_timeout: config.task_timeout,
                max_in_flight: config.max_in_flight,
                stages,
                limits,
            }),
            _ => Err(problems),
        }
    }

    /// Whether some stage runs per item: then a start needs at least one item; without, `items`
    /// must be empty or absent.
    pub fn per_item(&self) -> bool {
        self.stages.iter().any(|stage| stage.each)
    }

    /// Checks a start request: the number of items, every string's length, and that every
    /// step of every stage can build its input apart from what only earlier outputs can tell
    /// (each input's size is checked with those placeholders left as written). Returns step
    /// 1's input, exactly as `step_input` builds it (`None` only if it read an output, which
    /// loading a workflow refuses).
    pub fn check_start(
        &self,
        params: &Value,
        items: &[Value],
    ) -> Result<Option<Value>, InputError> {
        if !self.per_item() && !items.is_empty() {
            return Err(InputError(format!(
                "workflow {:?} takes no items (none of its stages runs per item): leave \
                 `items` out",
                self.name
            )));
        }
        if self.per_item() && items.is_empty() {
            return Err(InputError("`items` must hold at least one item".into()));
        }
        if items.len() > self.max_items {
            return Err(InputError(format!(
                "`items` holds {} items; workflow {:?} takes at most {}",
                items.len(),
                self.name,
                self.max_items
            )));
        }
        let max = self.limits.max_string_bytes;
        let long = |path: String| InputError(format!("`{path}` is longer than {max} bytes"));
        if let Some(path) = long_string_in(params, || "params".to_owned(), max) {
            return Err(long(path));
        }
        for (i, item) in items.iter().enumerate() {
            if let Some(path) = long_string_in(item, || format!("items[{i}]"), max) {
                return Err(long(path));
            }
        }
        let no_outputs = |_: usize, _: bool| Vec::new();
        let scope = |item| Scope {
            params,
            item,
            previous_output: None,
            previous_kept_output: None,
            stage_outputs: &no_outputs,
        };
        for (s, stage) in self.stages.iter().enumerate() {
            let steps: Vec<(Option<usize>, &Value)> = if stage.each {
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (Some(i), v))
                    .collect()
            } else {
                vec![(None, &Value::Null)]
            };
            for (item_index, item) in steps {
                let at = |e: String| InputError(format!("{}{e}", self.step_label(s, item_index)));
                let input = stage
                    .template(item_index)
                    .fill(&scope(item), true)
                    .map_err(at)?;
                self.check_size(&input).map_err(|e| at(e.0))?;
            }
        }
        // Step 1 has no step before it, so unless it reads an output its input is final now.
        let first = &self.stages[0];
        let item_index = first.each.then_some(0);
        let item = items.first().filter(|_| first.each).unwrap_or(&Value::Null);
        Ok(first.template(item_index).fill(&scope(item), false).ok())
    }

    /// How a start-check message names a step: by item alone in a one-stage workflow.
    fn step_label(&self, stage: usize, item_index: Option<usize>) -> String {
        let name = &self.stages[stage].name;
        match (self.stages.len(), item_index) {
            (1, Some(i)) => format!("items[{i}]: "),
            (1, None) => String::new(),
            (_, Some(i)) => format!("stage {name:?}, items[{i}]: "),
            (_, None) => format!("stage {name:?}: "),
        }
    }

    fn check_size(&self, input: &Value) -> Result<(), InputError> {
        let size = json_len(input);
        let max = self.limits.max_input_bytes;
        if size > max {
            return Err(InputError(format!(
                "the prediction input would be {size} bytes, over the {max}-byte limit"
            )));
        }
        Ok(())
    }

    /// The input of a step of stage `stage` (0-based) for item `item_index` (`None` for a once
    /// stage); the stage's `first` override applies to item_index `Some(0)` (and to a once
    /// stage's step).
    pub fn step_input(
        &self,
        stage: usize,
        item_index: Option<usize>,
        scope: &Scope,
    ) -> Result<Value, InputError> {
        let Some(stage) = self.stages.get(stage) else {
            return Err(InputError(format!(
                "workflow {:?} has no stage {stage}",
                self.name
            )));
        };
        let input = stage
            .template(item_index)
            .fill(scope, false)
            .map_err(InputError)?;
        self.check_size(&input)?;
        Ok(input)
    }
}

#[cfg(test)]
#[path = "workflow_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "workflow/pipeline_tests.rs"]
mod pipeline_tests;
