//! Workflow definitions: a named model or version plus an input template per step.
//! A string value that is exactly `{{path}}` is replaced by the JSON value at that path, type
//! kept: `params.X`, `item.X`, `previous.output`, `previous.output.0`. Templates are compiled
//! and checked at startup; start requests are checked before anything is written. No IO.

use crate::config::{LimitsConfig, WorkflowConfig};
use serde_json::{Map, Value};
use std::time::Duration;

/// Where a prediction is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `owner/name`: `POST /v1/models/{owner}/{name}/predictions`.
    Model(String),
    /// `POST /v1/predictions` with this `version`.
    Version(String),
}

#[derive(Clone, Debug)]
pub struct Workflow {
    pub name: String,
    pub target: Target,
    pub max_items: usize,
    pub step_retries: u32,
    pub step_timeout: Option<Duration>,
    pub task_timeout: Option<Duration>,
    pub max_in_flight: Option<usize>,
    limits: LimitsConfig,
    /// The template of step 1 (`input` with `first` laid over it).
    first: Value,
    /// The template of every later step.
    rest: Value,
}

/// The step's neighbours a template can read.
pub struct Scope<'a> {
    pub params: &'a Value,
    pub item: &'a Value,
    pub previous_output: Option<&'a Value>,
    /// The previous output with its files' URLs replaced by the kept copies (`[outputs]
    /// keep`); `previous.kept_output` falls back to `previous.output` without it.
    pub previous_kept_output: Option<&'a Value>,
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
        let mut first = config.input.clone();
        first.extend(config.first.clone());
        let first = Value::Object(first);
        let rest = Value::Object(config.input.clone());
        check_template(&rest, &format!("{key}.input"), true, &mut problems);
        for (field, value) in &config.first {
            check_template(value, &format!("{key}.first.{field}"), false, &mut problems);
        }
        for (field, value) in &config.input {
            if !config.first.contains_key(field) && mentions_previous(value) {
                problems.push(format!(
                    "{key}.input.{field} reads `previous`, which step 1 does not have: \
                     set {key}.first.{field}"
                ));
            }
        }
        match target {
            Some(target) if problems.is_empty() => Ok(Workflow {
                name: name.to_owned(),
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
            };
            if i == 0 {
                // Step 1 has no previous step, so its input is final now. (A template reading
                // `previous` would fail here; loading refuses those, and the check skips it.)
                if let Ok(input) = resolve(&self.first, &scope, false) {
                    self.check_size(&input)
                        .map_err(|e| InputError(format!("items[{i}]: {e}")))?;
                    first_input = Some(input);
                    continue;
                }
            }
            let template = if i == 0 { &self.first } else { &self.rest };
            let input = resolve(template, &scope, true)
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

    /// The prediction input of step `index` (1-based).
    pub fn step_input(&self, index: u32, scope: &Scope) -> Result<Value, InputError> {
        let template = if index == 1 { &self.first } else { &self.rest };
        let input = resolve(template, scope, false).map_err(InputError)?;
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

/// `Some(path)` when `value` is a placeholder string.
fn placeholder(value: &Value) -> Option<&str> {
    let text = value.as_str()?.strip_prefix("{{")?.strip_suffix("}}")?;
    Some(text.trim())
}

fn check_template(value: &Value, key: &str, allow_previous: bool, problems: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (field, inner) in map {
                check_template(inner, &format!("{key}.{field}"), allow_previous, problems);
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                check_template(inner, &format!("{key}[{i}]"), allow_previous, problems);
            }
        }
        _ => {
            let Some(path) = placeholder(value) else {
                return;
            };
            let mut parts = path.split('.');
            match (parts.next(), parts.next()) {
                (Some("params" | "item"), Some(field)) if !field.is_empty() => {}
                (Some("previous"), Some("output" | "kept_output")) if allow_previous => {}
                (Some("previous"), Some("output" | "kept_output")) => {
                    problems.push(format!("{key}: step 1 has no previous output ({path:?})"))
                }
                _ => problems.push(format!(
                    "{key}: unknown placeholder {{{{{path}}}}}; use params.X, item.X, previous.output or previous.kept_output"
                )),
            }
        }
    }
}

fn mentions_previous(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.values().any(mentions_previous),
        Value::Array(items) => items.iter().any(mentions_previous),
        _ => placeholder(value).is_some_and(|path| path.starts_with("previous")),
    }
}

/// Fills `template`. With `skip_previous`, `previous.*` placeholders are left as they are
/// (start-time checking, before any output exists).
fn resolve(template: &Value, scope: &Scope, skip_previous: bool) -> Result<Value, String> {
    match template {
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (field, inner) in map {
                out.insert(field.clone(), resolve(inner, scope, skip_previous)?);
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .map(|inner| resolve(inner, scope, skip_previous))
            .collect(),
        _ => {
            let Some(path) = placeholder(template) else {
                return Ok(template.clone());
            };
            let mut parts = path.split('.');
            let (root, rest): (Option<&Value>, Vec<&str>) = match parts.next() {
                Some("params") => (Some(scope.params), parts.collect()),
                Some("item") => (Some(scope.item), parts.collect()),
                Some("previous") if skip_previous => return Ok(template.clone()),
                Some("previous") => match parts.next() {
                    Some("kept_output") => (
                        scope.previous_kept_output.or(scope.previous_output),
                        parts.collect(),
                    ),
                    _ => (scope.previous_output, parts.collect()),
                },
                _ => (None, vec![]),
            };
            root.and_then(|value| lookup(value, &rest))
                .cloned()
                .ok_or_else(|| format!("missing `{path}`, required by the workflow's input"))
        }
    }
}

fn lookup<'v>(mut value: &'v Value, path: &[&str]) -> Option<&'v Value> {
    for part in path {
        value = match value {
            Value::Object(map) => map.get(*part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

#[cfg(test)]
#[path = "workflow_tests.rs"]
mod tests;
