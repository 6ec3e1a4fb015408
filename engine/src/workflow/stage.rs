//! One stage of a workflow: its model, how it runs (once, per item chained, per item in
//! parallel), its retry settings, and its compiled input templates. Compiles a
//! `[[workflows.NAME.stages]]` entry, or the one-model form as the stage "main", noting every
//! problem under its config key. No IO.

use super::placeholder::Reach;
use super::template::Template;
use super::Target;
use crate::config::{StageConfig, WorkflowConfig};
use serde_json::{Map, Value};
use std::time::Duration;

/// The name the one-model form's single stage gets.
pub(super) const ONE_MODEL_STAGE: &str = "main";

/// A stage, as the runtime runs it.
///
/// `previous.*` in a step's input is the output of the step before it: in a chained `each`
/// stage, for item i > 0, the same stage's item i-1; for every other step (item 0 of a chained
/// stage, any step of a parallel stage, a stage that runs once) the previous stage's last step
/// (its last item's, for a per-item stage). The first stage has none, so loading refuses
/// templates that would read it there.
#[derive(Clone, Debug)]
pub struct Stage {
    pub name: String,
    pub target: Target,
    /// Runs the step's same input once more after its retries are spent.
    pub fallback: Option<Target>,
    /// One step per item; otherwise the stage runs once.
    pub each: bool,
    /// Every item's step at once instead of chained; implies `each`.
    pub parallel: bool,
    /// Most of this stage's predictions at once; only with `parallel`.
    pub max_parallel: Option<u32>,
    /// The stage's, else the workflow's.
    pub step_retries: u32,
    /// The stage's, else the workflow's.
    pub step_timeout: Option<Duration>,
    /// The template of the stage's first step (`input` with `first` laid over it).
    first: Template,
    /// The template of every later step.
    rest: Template,
}

impl Stage {
    /// The template of the step for `item_index` (`None` in a stage that runs once).
    pub(super) fn template(&self, item_index: Option<usize>) -> &Template {
        match item_index {
            None | Some(0) => &self.first,
            Some(_) => &self.rest,
        }
    }
}

/// The one-model form (`model`/`version`, `input`, `first` on the workflow): one chained
/// `each` stage named "main", its keys named as the workflow's.
pub(super) fn one_model(
    name: &str,
    config: &WorkflowConfig,
    problems: &mut Vec<String>,
) -> Option<Stage> {
    let key = format!("workflows.{name}");
    let target = if config.model.is_none() && config.version.is_none() {
        problems.push(format!(
            "{key}: neither model nor version is set, and it has no [[{key}.stages]]"
        ));
        None
    } else {
        parse_target(
            (&config.model, &config.version),
            ("model", "version"),
            &key,
            &key,
            problems,
        )
    };
    let names = [ONE_MODEL_STAGE.to_owned()];
    let shape = Shape {
        index: 0,
        each: true,
        parallel: false,
        names: &names,
    };
    let (first, rest) = templates(
        &key,
        &shape,
        &config.input,
        &config.first,
        "step 1",
        problems,
    );
    Some(Stage {
        name: ONE_MODEL_STAGE.to_owned(),
        target: target?,
        fallback: None,
        each: true,
        parallel: false,
        max_parallel: None,
        step_retries: config.step_retries,
        step_timeout: config.step_timeout,
        first,
        rest,
    })
}

/// Stage `index` (`config`) of the workflow at config key `key` (`workflow`, whose retries
/// and timeout it inherits), whose stages are named `names` in order.
pub(super) fn compile(
    workflow: &WorkflowConfig,
    key: &str,
    index: usize,
    config: &StageConfig,
    names: &[String],
    problems: &mut Vec<String>,
) -> Option<Stage> {
    let at = format!("{key}.stages[{index}]");
    let whole = if config.name.is_empty() {
        at.clone()
    } else {
        format!("{at} ({})", config.name)
    };
    let target = parse_target(
        (&config.model, &config.version),
        ("model", "version"),
        &at,
        &whole,
        problems,
    );
    let fallback = match (&config.fallback_model, &config.fallback_version) {
        (None, None) => None,
        pair => parse_target(
            pair,
            ("fallback_model", "fallback_version"),
            &at,
            &whole,
            problems,
        ),
    };
    let each = match config.each.as_deref() {
        None => false,
        Some("item") => true,
        Some(other) => {
            problems.push(format!(
                "{at}.each: {other:?} is not a value it takes; the only one is \"item\" \
                 (leave each out for a stage that runs once)"
            ));
            true
        }
    };
    if config.parallel && !each {
        problems.push(format!(
            "{at}.parallel: stage {:?} runs once; only a stage with each = \"item\" runs its \
             items in parallel",
            config.name
        ));
    }
    match config.max_parallel {
        Some(0) => problems.push(format!(
            "{at}.max_parallel must be at least 1 (leave it out for no cap)"
        )),
        Some(_) if !config.parallel => problems.push(format!(
            "{at}.max_parallel: stage {:?} is not parallel; max_parallel needs parallel = true",
            config.name
        )),
        _ => {}
    }
    let shape = Shape {
        index,
        each,
        parallel: config.parallel,
        names,
    };
    let first_step = if index == 0 {
        "item 1 of the first stage"
    } else {
        "item 1"
    };
    let (first, rest) = templates(
        &at,
        &shape,
        &config.input,
        &config.first,
        first_step,
        problems,
    );
    Some(Stage {
        name: config.name.clone(),
        target: target?,
        fallback,
        each,
        parallel: config.parallel,
        max_parallel: config.max_parallel,
        step_retries: config.step_retries.unwrap_or(workflow.step_retries),
        step_timeout: config.step_timeout.or(workflow.step_timeout),
        first,
        rest,
    })
}

/// Every stage has a name of `[a-z0-9_-]+`, used by no stage before it.
pub(super) fn check_names(key: &str, stages: &[StageConfig], problems: &mut Vec<String>) {
    for (index, stage) in stages.iter().enumerate() {
        let at = format!("{key}.stages[{index}].name");
        let name = &stage.name;
        if name.is_empty() {
            problems.push(format!(
                "{at}: every stage needs a name (of a-z, 0-9, _ and -)"
            ));
        } else if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            problems.push(format!("{at}: {name:?} may hold only a-z, 0-9, _ and -"));
        } else if let Some(earlier) = stages[..index].iter().position(|s| s.name == *name) {
            problems.push(format!(
                "{at}: {name:?} is already the name of stages[{earlier}]"
            ));
        }
    }
}

/// Where a stage sits and how it runs: what its templates may read follows from it.
struct Shape<'a> {
    index: usize,
    each: bool,
    parallel: bool,
    names: &'a [String],
}

impl Shape<'_> {
    /// Why no step of the stage has a previous step, when none has; a chained first stage's
    /// later items have one, so only its `first` is refused there (see `templates`).
    fn no_previous(&self) -> Option<&'static str> {
        match (self.index, self.each, self.parallel) {
            (0, false, _) => Some("the first stage runs once and has no step before it"),
            (0, true, true) => {
                Some("the first stage runs its items in parallel, and none has a step before it")
            }
            _ => None,
        }
    }

    fn reach<'a>(&'a self, no_previous: Option<&'a str>, no_item: Option<&'a str>) -> Reach<'a> {
        Reach {
            stage_names: self.names,
            stage: self.index,
            no_previous,
            no_item,
        }
    }
}

/// The stage's templates for its first step and for every later one, with `input` at
/// `{at}.input` and `first` at `{at}.first`. `first_step` names the first step in messages.
fn templates(
    at: &str,
    shape: &Shape,
    input: &Map<String, Value>,
    first: &Map<String, Value>,
    first_step: &str,
    problems: &mut Vec<String>,
) -> (Template, Template) {
    let no_item = format!(
        "stage {:?} runs once, not per item, so it has no `item` (set each = \"item\")",
        shape.names[shape.index]
    );
    let no_item = (!shape.each).then_some(no_item.as_str());
    let chained_first = shape.index == 0 && shape.each && !shape.parallel;
    let no_first_previous = format!("{first_step} has no previous output");
    let first_reach = shape.reach(
        shape
            .no_previous()
            .or(chained_first.then_some(no_first_previous.as_str())),
        no_item,
    );
    let rest_reach = shape.reach(shape.no_previous(), no_item);
    let mut rest = vec![];
    for (field, value) in input {
        let key = format!("{at}.input.{field}");
        let template = Template::parse(value, &key, &rest_reach, problems);
        if chained_first && !first.contains_key(field) && template.reads_previous() {
            problems.push(format!(
                "{key} reads `previous`, which {first_step} does not have: set {at}.first.{field}"
            ));
        }
        rest.push((field.clone(), template));
    }
    let mut first_fields = rest.clone();
    for (field, value) in first {
        let key = format!("{at}.first.{field}");
        let template = Template::parse(value, &key, &first_reach, problems);
        match first_fields.iter_mut().find(|(name, _)| name == field) {
            Some((_, slot)) => *slot = template,
            None => first_fields.push((field.clone(), template)),
        }
    }
    (Template::Object(first_fields), Template::Object(rest))
}

/// The target set by a pair of keys (`model`/`version`, or the fallback's), the keys under
/// `at`, the stage as a whole called `whole` in messages.
fn parse_target(
    (model, version): (&Option<String>, &Option<String>),
    (model_key, version_key): (&str, &str),
    at: &str,
    whole: &str,
    problems: &mut Vec<String>,
) -> Option<Target> {
    match (model, version) {
        (Some(model), None) if valid_model(model) => Some(Target::Model(model.clone())),
        (Some(model), None) => {
            problems.push(format!(
                "{at}.{model_key}: {model:?} is not of the form owner/name"
            ));
            None
        }
        (None, Some(version)) if !version.trim().is_empty() => {
            Some(Target::Version(version.clone()))
        }
        (Some(_), Some(_)) => {
            problems.push(format!(
                "{whole}: set either {model_key} or {version_key}, not both"
            ));
            None
        }
        (None, Some(_)) => {
            problems.push(format!("{at}.{version_key} must not be empty"));
            None
        }
        (None, None) => {
            problems.push(format!(
                "{whole}: neither {model_key} nor {version_key} is set"
            ));
            None
        }
    }
}

fn valid_model(model: &str) -> bool {
    let mut parts = model.split('/');
    matches!((parts.next(), parts.next(), parts.next()), (Some(o), Some(n), None) if !o.is_empty() && !n.is_empty())
}

#[cfg(test)]
#[path = "stage_tests.rs"]
mod tests;
