//! Workflow definitions: a named model or version plus an input template per step
//! (`template`: `{{params.X}}`, `{{item.X}}`, `{{previous.output}}`, alone or inside text).
//! Templates are compiled and checked at startup; start requests are checked before anything
//! is written. No IO.

mod template;

pub use template::Scope;

use crate::config::{LimitsConfig, WorkflowConfig};
use serde_json::Value;
use std::time::Duration;
use template::Template;

/// Where a prediction is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `owner/name`: `POST /v1/models/{owner}/{name}/predictions`.
    Model(String),
    /// `POST /v1/predictions` with this `version`.
    Version(String),
}

impl Target {
    /// `owner/name`, or the version id.
    pub fn label(&self) -> &str {
        match self {
            Target::Model(model) | Target::Version(model) => model,
        }
    }
}

/// TEMPORARY shim (replaced by the stages compiler): the one-model form as one stage.
#[derive(Clone, Debug)]
pub struct Stage {
    pub name: String,
    pub target: Target,
    pub fallback: Option<Target>,
    pub each: bool,
    pub parallel: bool,
    pub max_parallel: Option<u32>,
    pub step_retries: u32,
    pub step_timeout: Option<Duration>,
}

#[derive(Clone, Debug)]
pub struct Workflow {
    pub name: String,
    pub stages: Vec<Stage>,
    pub target: Target,
    pub max_items: usize,
    pub step_retries: u32,
    pub step_timeout: Option<Duration>,
    pub task_timeout: Option<Duration>,
    pub max_in_flight: Option<usize>,
    limits: LimitsConfig,
    /// The template of step 1 (`input` with `first` laid over it).
    first: Template,
    /// The template of every later step.
    rest: Template,
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
        let target = match (&config.model, &config.version) {
            (Some(model), None) if valid_model(model) => Some(Target::Model(model.clone())),
            (Some(model), None) => {
                problems.push(format!(
                    "{key}.model: {model:?} is not of the form owner/name"
                ));
                None
            }
            (None, Some(version)) if !version.trim().is_empty() => {
                Some(Target::Version(version.clone()))
            }
            (Some(_), Some(_)) => {
                problems.push(format!("{key}: set either model or version, not both"));
                None
            }
            _ => {
                problems.push(format!("{key}: neither model nor version is set"));
                None
            }
        };
        if config.max_items == 0 {
            problems.push(format!("{key}.max_items must be at least 1"));
        }
        if config.max_in_flight == Some(0) {
            problems.push(format!(
                "{key}.max_in_flight must be at least 1 (leave it out for no cap)"
            ));
        }
        let mut input = vec![];
        for (field, value) in &config.input {
            let key = format!("{key}.input.{field}");
            let template = Template::parse(value, &key, true, &mut problems);
            if !config.first.contains_key(field) && template.reads_previous() {
                problems.push(format!(
                    "{key} reads `previous`, which step 1 does not have: \
                     set workflows.{name}.first.{field}"
                ));
            }
            input.push((field.clone(), template));
        }
        let mut first = input.clone();
        for (field, value) in &config.first {
            let key = format!("{key}.first.{field}");
            let template = Template::parse(value, &key, false, &mut problems);
            match first.iter_mut().find(|(name, _)| name == field) {
                Some((_, slot)) => *slot = template,
                None => first.push((field.clone(), template)),
            }
        }
        let (first, rest) = (Template::Object(first), Template::Object(input));
        match target {
            Some(target) if problems.is_empty() => Ok(Workflow {
                name: name.to_owned(),
                stages: vec![Stage {
                    name: crate::model::LEGACY_STAGE.into(),
                    target: target.clone(),
                    fallback: None,
                    each: true,
                    parallel: false,
                    max_parallel: None,
                    step_retries: config.step_retries,
                    step_timeout: config.step_timeout,
                }],
                target,
                max_items: config.max_items,
                step_retries: config.step_retries,
                step_timeout: config.step_timeout,
                task_timeout: config.task_timeout,
                max_in_flight: config.max_in_flight,
                limits,
                first,
                rest,
            }),
            _ => Err(problems),
        }
    }

    /// Checks that every item of a start request can build its input, apart from what only
    /// the previous step's output can tell. Returns step 1's input, exactly as `step_input`
    /// builds it (`None` only if step 1 read `previous`, which loading a workflow refuses).
    pub fn check_start(
        &self,
        params: &Value,
        items: &[Value],
    ) -> Result<Option<Value>, InputError> {
        if items.is_empty() {
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
        if let Some(path) = long_string_in(params, || "params".to_owned(), max) {
            return Err(InputError(format!("`{path}` is longer than {max} bytes")));
        }
        let mut first_input = None;
        for (i, item) in items.iter().enumerate() {
            if let Some(path) = long_string_in(item, || format!("items[{i}]"), max) {
                return Err(InputError(format!("`{path}` is longer than {max} bytes")));
            }
            let scope = Scope {
                params,
                item,
                previous_output: None,
                previous_kept_output: None,
                stage_outputs: &|_, _| Vec::new(),
            };
            if i == 0 {
                // Step 1 has no previous step, so its input is final now. (A template reading
                // `previous` would fail here; loading refuses those, and the check skips it.)
                if let Ok(input) = self.first.fill(&scope, false) {
                    self.check_size(&input)
                        .map_err(|e| InputError(format!("items[{i}]: {e}")))?;
                    first_input = Some(input);
                    continue;
                }
            }
            let template = if i == 0 { &self.first } else { &self.rest };
            let input = template
                .fill(&scope, true)
                .map_err(|e| InputError(format!("items[{i}]: {e}")))?;
            self.check_size(&input)
                .map_err(|e| InputError(format!("items[{i}]: {e}")))?;
        }
        Ok(first_input)
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

    /// Whether some stage runs per item.
    pub fn per_item(&self) -> bool {
        self.stages.iter().any(|stage| stage.each)
    }

    /// The prediction input of a step of `stage` for item `item_index`.
    pub fn step_input(
        &self,
        _stage: usize,
        item_index: Option<usize>,
        scope: &Scope,
    ) -> Result<Value, InputError> {
        let template = if item_index.unwrap_or(0) == 0 {
            &self.first
        } else {
            &self.rest
        };
        let input = template.fill(scope, false).map_err(InputError)?;
        self.check_size(&input)?;
        Ok(input)
    }
}

/// The path of the first string in `value` (itself at `path`) longer than `max` bytes. A
/// start checks every string of its request, so no path is built unless one is too long.
fn long_string_in(value: &Value, path: impl FnOnce() -> String, max: usize) -> Option<String> {
    if any_long(value, max) {
        long_path(value, path(), max)
    } else {
        None
    }
}

fn any_long(value: &Value, max: usize) -> bool {
    match value {
        Value::String(text) => text.len() > max,
        Value::Object(map) => map.values().any(|v| any_long(v, max)),
        Value::Array(items) => items.iter().any(|v| any_long(v, max)),
        _ => false,
    }
}

/// `long_string_in`, once `value` is known to hold a long string.
fn long_path(value: &Value, path: String, max: usize) -> Option<String> {
    match value {
        Value::String(_) => Some(path),
        Value::Object(map) => {
            let (key, inner) = map.iter().find(|(_, v)| any_long(v, max))?;
            long_path(inner, format!("{path}.{key}"), max)
        }
        Value::Array(items) => {
            let (i, inner) = items.iter().enumerate().find(|(_, v)| any_long(v, max))?;
            long_path(inner, format!("{path}[{i}]"), max)
        }
        _ => None,
    }
}

/// Bytes of `value` as compact JSON, without building the text.
fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` cannot fail (its map keys are strings) and `Count` never errors.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

fn valid_model(model: &str) -> bool {
    let mut parts = model.split('/');
    matches!((parts.next(), parts.next(), parts.next()), (Some(o), Some(n), None) if !o.is_empty() && !n.is_empty())
}

#[cfg(test)]
#[path = "workflow_tests.rs"]
mod tests;
