//! One `{{path}}` placeholder: splitting a string into text and placeholders, resolving each
//! path's root (`params`, `item`, `previous.*`, `stages.NAME.*`) against what the step it sits
//! in can read, and reading its value from a step's `Scope`. No IO.

use serde_json::Value;
use std::borrow::Cow;

/// Where a placeholder reads from: its root and the keys or array indexes below it.
#[derive(Clone, Debug)]
pub struct Path {
    root: Root,
    rest: Vec<String>,
    /// The path as written (trimmed), for messages and for placeholders left unfilled.
    text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Root {
    Params,
    Item,
    PreviousOutput,
    PreviousKeptOutput,
    /// An earlier stage, by index: its last output (`all` false) or every output in item
    /// order (`all` true), kept-file versions when `kept`.
    Stage {
        index: usize,
        all: bool,
        kept: bool,
    },
}

/// What the templates of one stage may read, fixed by where the stage sits in the workflow.
#[derive(Clone, Copy, Debug)]
pub struct Reach<'a> {
    /// Every stage's name, in order (the one-model form has one, "main").
    pub stage_names: &'a [String],
    /// The index of the stage the template belongs to: it reads only stages before it.
    pub stage: usize,
    /// Why `previous.*` cannot be read here, when it cannot.
    pub no_previous: Option<&'a str>,
    /// Why `item.*` cannot be read here, when it cannot.
    pub no_item: Option<&'a str>,
}

/// The step's neighbours a template can read.
pub struct Scope<'a> {
    pub params: &'a Value,
    /// The step's item; `Value::Null` in a stage that runs once.
    pub item: &'a Value,
    /// The output of the step before (see `Workflow` for which step that is).
    pub previous_output: Option<&'a Value>,
    /// The previous output with its files' URLs replaced by the kept copies (`[outputs]
    /// keep`); `previous.kept_output` falls back to `previous.output` without it.
    pub previous_kept_output: Option<&'a Value>,
    /// Outputs of an earlier stage by 0-based stage index, in item order; `kept` = kept-file
    /// versions (falling back to the output per step). Called only for stages a template
    /// reads, once per placeholder that reads one.
    pub stage_outputs: &'a dyn Fn(usize, bool) -> Vec<Value>,
}

const ROOTS: &str = "use params.X, item.X, previous.output, previous.kept_output or \
                     stages.NAME.output(s)";

const STAGE_FIELDS: &str = "output, outputs, kept_output or kept_outputs";

impl Path {
    /// Whether the value exists only once an earlier step has run (`previous.*`, `stages.*`).
    pub fn reads_output(&self) -> bool {
        !matches!(self.root, Root::Params | Root::Item)
    }

    pub fn is_previous(&self) -> bool {
        matches!(self.root, Root::PreviousOutput | Root::PreviousKeptOutput)
    }

    /// The placeholder as written, braces included.
    pub fn written(&self) -> String {
        format!("{{{{{}}}}}", self.text)
    }

    /// The value at the path; borrowed from the scope, or built from a stage's outputs.
    pub fn read<'v>(&self, scope: &Scope<'v>) -> Result<Cow<'v, Value>, String> {
        let missing = || format!("missing `{}`, required by the workflow's input", self.text);
        let root = match self.root {
            Root::Params => scope.params,
            Root::Item => scope.item,
            Root::PreviousOutput => scope.previous_output.ok_or_else(missing)?,
            Root::PreviousKeptOutput => scope
                .previous_kept_output
                .or(scope.previous_output)
                .ok_or_else(missing)?,
            Root::Stage { index, all, kept } => {
                let mut outputs = (scope.stage_outputs)(index, kept);
                let value = if all {
                    Value::Array(outputs)
                } else {
                    outputs.pop().ok_or_else(missing)?
                };
                let found = lookup(&value, &self.rest).ok_or_else(missing)?;
                return Ok(Cow::Owned(found.clone()));
            }
        };
        lookup(root, &self.rest)
            .map(Cow::Borrowed)
            .ok_or_else(missing)
    }
}

fn lookup<'v>(mut value: &'v Value, path: &[String]) -> Option<&'v Value> {
    for part in path {
        value = match value {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

/// Part of an interpolated string.
#[derive(Clone, Debug)]
pub enum Piece {
    Text(String),
    Hole(Path),
}

/// Splits `text` into literal text and placeholders. `{{` and `}}` always delimit a
/// placeholder: there is no escape for literal double braces.
pub fn parse_text(text: &str, reach: &Reach) -> Result<Vec<Piece>, String> {
    let mut pieces = vec![];
    let mut at = 0;
    while at < text.len() {
        let rest = &text[at..];
        let stray = |close: usize| {
            Err(format!(
                "\"}}}}\" at byte {} has no \"{{{{\" before it",
                at + close
            ))
        };
        let open = match (rest.find("{{"), rest.find("}}")) {
            (None, None) => {
                pieces.push(Piece::Text(rest.to_owned()));
                break;
            }
            (None, Some(close)) => return stray(close),
            (Some(open), Some(close)) if close < open => return stray(close),
            (Some(open), _) => open,
        };
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_owned()));
        }
        let inside = &rest[open + 2..];
        let Some(end) = inside.find("}}") else {
            return Err(format!(
                "unbalanced \"{{{{\" at byte {}: no \"}}}}\" closes it",
                at + open
            ));
        };
        let inner = &inside[..end];
        if inner.contains("{{") {
            return Err(format!(
                "unbalanced \"{{{{\" at byte {}: another \"{{{{\" opens before it closes",
                at + open
            ));
        }
        pieces.push(Piece::Hole(parse_path(inner.trim(), reach)?));
        at += open + 2 + end + 2;
    }
    Ok(pieces)
}

fn parse_path(text: &str, reach: &Reach) -> Result<Path, String> {
    if text.is_empty() {
        return Err(format!("empty placeholder \"{{{{ }}}}\"; {ROOTS}"));
    }
    let parts: Vec<&str> = text.split('.').collect();
    let (root, skip) = match parts.as_slice() {
        _ if parts.iter().any(|part| part.is_empty()) => None,
        ["params", _, ..] => Some((Root::Params, 1)),
        ["item", _, ..] => Some((Root::Item, 1)),
        ["previous", "output", ..] => Some((Root::PreviousOutput, 2)),
        ["previous", "kept_output", ..] => Some((Root::PreviousKeptOutput, 2)),
        ["stages", name, field, ..] => Some((stage_root(text, name, field, reach)?, 3)),
        ["stages", ..] => {
            return Err(format!(
                "{{{{{text}}}}} names no stage field; use stages.NAME. followed by \
                 {STAGE_FIELDS}"
            ))
        }
        _ => None,
    }
    .ok_or_else(|| format!("unknown placeholder {{{{{text}}}}}; {ROOTS}"))?;
    match root {
        Root::PreviousOutput | Root::PreviousKeptOutput => {
            if let Some(why) = reach.no_previous {
                return Err(format!("{why} ({text:?})"));
            }
        }
        Root::Item => {
            if let Some(why) = reach.no_item {
                return Err(format!("{why} ({text:?})"));
            }
        }
        Root::Params | Root::Stage { .. } => {}
    }
    Ok(Path {
        root,
        rest: parts[skip..]
            .iter()
            .map(|part| (*part).to_owned())
            .collect(),
        text: text.to_owned(),
    })
}

/// The root of `{{stages.NAME.FIELD...}}`, refused unless NAME is a stage before this one.
fn stage_root(text: &str, name: &str, field: &str, reach: &Reach) -> Result<Root, String> {
    let Some(index) = reach.stage_names.iter().position(|known| known == name) else {
        let known = reach
            .stage_names
            .iter()
            .map(|known| format!("{known:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(format!(
            "{{{{{text}}}}} reads an unknown stage {name:?}; the stages are {known}"
        ));
    };
    if index >= reach.stage {
        let which = if index == reach.stage {
            "this stage itself"
        } else {
            "a later stage"
        };
        return Err(format!(
            "{{{{{text}}}}} is a forward reference: stage {name:?} is {which}, and a stage \
             reads only the stages before it"
        ));
    }
    let (all, kept) = match field {
        "output" => (false, false),
        "outputs" => (true, false),
        "kept_output" => (false, true),
        "kept_outputs" => (true, true),
        _ => {
            return Err(format!(
                "{{{{{text}}}}}: a stage has no field {field:?}; after stages.{name}. use \
                 {STAGE_FIELDS}"
            ))
        }
    };
    Ok(Root::Stage { index, all, kept })
}

#[cfg(test)]
#[path = "placeholder_tests.rs"]
mod tests;
