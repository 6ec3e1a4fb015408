//! Input templates: a stage's `input`/`first` values with their `{{path}}` placeholders
//! (`placeholder`), parsed once when the workflow is loaded and filled per step without parsing
//! again. A string that is exactly one placeholder becomes the value at its path, JSON type
//! kept; a placeholder inside longer text becomes the value's text (a string as is, `null` as
//! nothing, anything else as compact JSON). Malformed braces, unknown roots and reads the stage
//! cannot make are config errors naming the key. No IO.

use super::placeholder::{parse_text, Path, Piece, Reach, Scope};
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

impl Template {
    /// Compiles `value`, found at config key `key`. Every malformed string, and every
    /// placeholder that reads what `reach` does not allow, is noted in `problems` as
    /// `key: what is wrong`.
    pub fn parse(value: &Value, key: &str, reach: &Reach, problems: &mut Vec<String>) -> Template {
        let template = match value {
            Value::Object(map) => Template::Object(
                map.iter()
                    .map(|(field, inner)| {
                        let key = format!("{key}.{field}");
                        (field.clone(), Self::parse(inner, &key, reach, problems))
                    })
                    .collect(),
            ),
            Value::Array(items) => Template::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, inner)| Self::parse(inner, &format!("{key}[{i}]"), reach, problems))
                    .collect(),
            ),
            Value::String(text) => match parse_text(text, reach) {
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

    /// Fills the template. With `skip_outputs`, placeholders that read an earlier step's
    /// output (`previous.*`, `stages.*`) are left as written: start-time checking, before any
    /// output exists. The error names the path.
    pub fn fill(&self, scope: &Scope, skip_outputs: bool) -> Result<Value, String> {
        match self {
            Template::Literal(value) => Ok(value.clone()),
            Template::Object(fields) => {
                let mut out = Map::with_capacity(fields.len());
                for (field, inner) in fields {
                    out.insert(field.clone(), inner.fill(scope, skip_outputs)?);
                }
                Ok(Value::Object(out))
            }
            Template::Array(items) => items
                .iter()
                .map(|inner| inner.fill(scope, skip_outputs))
                .collect(),
            Template::Whole(path) if skip_outputs && path.reads_output() => {
                Ok(Value::String(path.written()))
            }
            Template::Whole(path) => path.read(scope).map(|value| value.into_owned()),
            Template::Text(pieces) => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(text) => out.push_str(text),
                        Piece::Hole(path) if skip_outputs && path.reads_output() => {
                            out.push_str(&path.written())
                        }
                        Piece::Hole(path) => match path.read(scope)?.as_ref() {
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

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
