//! Input templates: a workflow's `input`/`first` values with their `{{path}}` placeholders,
//! parsed once when the workflow is loaded and filled per step without parsing again.
//! A string that is exactly one placeholder becomes the value at its path, JSON type kept; a
//! placeholder inside longer text becomes the value's text (a string as is, `null` as nothing,
//! anything else as compact JSON). Malformed braces and unknown roots are config errors naming
//! the key. No IO.

use serde_json::{Map, Value};

/// A compiled template value.
#[derive(Clone, Debug)]
pub enum Template {
    /// No placeholder anywhere in it: sent as is.
    Literal(Value),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
    /// A string that is exactly one placeholder: the value at the path, type kept.
    Whole(Path),
    /// A string with text around (or between) placeholders: always a string.
    Text(Vec<Piece>),
}

/// Part of an interpolated string.
#[derive(Clone, Debug)]
pub enum Piece {
    Text(String),
    Hole(Path),
}

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
}

/// The step's neighbours a template can read.
pub struct Scope<'a> {
    pub params: &'a Value,
    pub item: &'a Value,
    pub previous_output: Option<&'a Value>,
    /// The previous output with its files' URLs replaced by the kept copies (`[outputs]
    /// keep`); `previous.kept_output` falls back to `previous.output` without it.
    pub previous_kept_output: Option<&'a Value>,
    /// Outputs of an earlier stage by index, in item order (`kept`: the kept copies).
    pub stage_outputs: &'a dyn Fn(usize, bool) -> Vec<Value>,
}

impl Template {
    /// Compiles `value`, found at config key `key`. Every malformed string is noted in
    /// `problems` as `key: what is wrong`; `allow_previous` is false for step 1's overrides.
    pub fn parse(
        value: &Value,
        key: &str,
        allow_previous: bool,
        problems: &mut Vec<String>,
    ) -> Template {
        let template = match value {
            Value::Object(map) => Template::Object(
                map.iter()
                    .map(|(field, inner)| {
                        let key = format!("{key}.{field}");
                        (
                            field.clone(),
                            Self::parse(inner, &key, allow_previous, problems),
                        )
                    })
                    .collect(),
            ),
            Value::Array(items) => Template::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, inner)| {
                        Self::parse(inner, &format!("{key}[{i}]"), allow_previous, problems)
                    })
                    .collect(),
            ),
            Value::String(text) => match parse_text(text, allow_previous) {
                Ok(pieces) => match <[Piece; 1]>::try_from(pieces) {
                    Ok([Piece::Hole(path)]) => Template::Whole(path),
                    Ok([Piece::Text(_)]) => Template::Literal(value.clone()),
                    Err(pieces) if pieces.is_empty() => Template::Literal(value.clone()),
                    Err(pieces) => Template::Text(pieces),
                },
                Err(problem) => {
                    problems.push(format!("{key}: {problem}"));
                    Template::Literal(value.clone())
                }
            },
            _ => Template::Literal(value.clone()),
        };
        match template {
            // A container without placeholders is kept as one value, cloned in one go.
            Template::Object(_) | Template::Array(_) if !template.has_placeholder() => {
                Template::Literal(value.clone())
            }
            other => other,
        }
    }

    fn has_placeholder(&self) -> bool {
        match self {
            Template::Literal(_) => false,
            Template::Object(fields) => fields.iter().any(|(_, t)| t.has_placeholder()),
            Template::Array(items) => items.iter().any(Template::has_placeholder),
            Template::Whole(_) | Template::Text(_) => true,
        }
    }

    /// Whether any placeholder reads `previous.*`.
    pub fn reads_previous(&self) -> bool {
        match self {
            Template::Literal(_) => false,
            Template::Object(fields) => fields.iter().any(|(_, t)| t.reads_previous()),
            Template::Array(items) => items.iter().any(Template::reads_previous),
            Template::Whole(path) => path.is_previous(),
            Template::Text(pieces) => pieces
                .iter()
                .any(|p| matches!(p, Piece::Hole(path) if path.is_previous())),
        }
    }

    /// Fills the template. With `skip_previous`, `previous.*` placeholders are left as
    /// written (start-time checking, before any output exists). The error names the path.
    pub fn fill(&self, scope: &Scope, skip_previous: bool) -> Result<Value, String> {
        match self {
            Template::Literal(value) => Ok(value.clone()),
            Template::Object(fields) => {
                let mut out = Map::with_capacity(fields.len());
                for (field, inner) in fields {
                    out.insert(field.clone(), inner.fill(scope, skip_previous)?);
                }
                Ok(Value::Object(out))
            }
            Template::Array(items) => items
                .iter()
                .map(|inner| inner.fill(scope, skip_previous))
                .collect(),
            Template::Whole(path) if skip_previous && path.is_previous() => {
                Ok(Value::String(path.written()))
            }
            Template::Whole(path) => path.read(scope).cloned(),
            Template::Text(pieces) => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(text) => out.push_str(text),
                        Piece::Hole(path) if skip_previous && path.is_previous() => {
                            out.push_str(&path.written())
                        }
                        Piece::Hole(path) => match path.read(scope)? {
                            Value::String(text) => out.push_str(text),
                            Value::Null => {}
                            other => out.push_str(&other.to_string()),
                        },
                    }
                }
                Ok(Value::String(out))
            }
        }
    }
}

impl Path {
    fn is_previous(&self) -> bool {
        matches!(self.root, Root::PreviousOutput | Root::PreviousKeptOutput)
    }

    /// The placeholder as written, braces included.
    fn written(&self) -> String {
        format!("{{{{{}}}}}", self.text)
    }

    fn read<'v>(&self, scope: &Scope<'v>) -> Result<&'v Value, String> {
        let root = match self.root {
            Root::Params => Some(scope.params),
            Root::Item => Some(scope.item),
            Root::PreviousOutput => scope.previous_output,
            Root::PreviousKeptOutput => scope.previous_kept_output.or(scope.previous_output),
        };
        root.and_then(|value| lookup(value, &self.rest))
            .ok_or_else(|| format!("missing `{}`, required by the workflow's input", self.text))
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

/// Splits `text` into literal text and placeholders. `{{` and `}}` always delimit a
/// placeholder: there is no escape for literal double braces.
fn parse_text(text: &str, allow_previous: bool) -> Result<Vec<Piece>, String> {
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
        pieces.push(Piece::Hole(parse_path(inner.trim(), allow_previous)?));
        at += open + 2 + end + 2;
    }
    Ok(pieces)
}

fn parse_path(text: &str, allow_previous: bool) -> Result<Path, String> {
    if text.is_empty() {
        return Err(
            "empty placeholder \"{{ }}\"; use params.X, item.X, previous.output or \
                    previous.kept_output"
                .to_owned(),
        );
    }
    let parts: Vec<&str> = text.split('.').collect();
    let root = match parts.as_slice() {
        _ if parts.iter().any(|part| part.is_empty()) => None,
        ["params", _, ..] => Some((Root::Params, 1)),
        ["item", _, ..] => Some((Root::Item, 1)),
        ["previous", "output", ..] => Some((Root::PreviousOutput, 2)),
        ["previous", "kept_output", ..] => Some((Root::PreviousKeptOutput, 2)),
        _ => None,
    };
    let Some((root, skip)) = root else {
        return Err(format!(
            "unknown placeholder {{{{{text}}}}}; use params.X, item.X, previous.output or \
             previous.kept_output"
        ));
    };
    if !allow_previous && matches!(root, Root::PreviousOutput | Root::PreviousKeptOutput) {
        return Err(format!("step 1 has no previous output ({text:?})"));
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

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
