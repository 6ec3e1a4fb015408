//! Validation of create-prediction bodies for the three create endpoints, turning raw bytes into
//! a `NewPrediction` or the 400/422 problem Replicate would answer. No state, no IO.

use serde_json::{Map, Value};

use crate::problem::ApiError;
use crate::state::NewPrediction;

/// Which endpoint received the body.
#[derive(Clone, Debug)]
pub enum CreateRoute {
    /// `POST /v1/predictions`: the body names a version.
    Predictions,
    /// `POST /v1/models/{owner}/{name}/predictions`.
    Model { owner: String, name: String },
    /// `POST /v1/deployments/{owner}/{name}/predictions`.
    Deployment { owner: String, name: String },
}

const EVENTS: [&str; 4] = ["start", "output", "logs", "completed"];

/// Parses and validates a create body. `cancel_after` is left empty for the caller.
pub fn parse_create(body: &[u8], route: &CreateRoute) -> Result<NewPrediction, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("Invalid JSON in request body: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(ApiError::validation(
            "invalid_type",
            "(root)",
            "Invalid type. Expected: object",
        ));
    };
    let allowed: &[&str] = match route {
        CreateRoute::Predictions => &[
            "version",
            "input",
            "webhook",
            "webhook_events_filter",
            "webhook_completed",
            "stream",
        ],
        _ => &[
            "input",
            "webhook",
            "webhook_events_filter",
            "webhook_completed",
            "stream",
        ],
    };
    let mut unknown: Vec<&String> = obj
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .collect();
    unknown.sort();
    if let Some(key) = unknown.first() {
        return Err(ApiError::validation(
            "additional_property_not_allowed",
            "(root)",
            format!("Additional property {key} is not allowed"),
        ));
    }

    let (model, version, deployment, lookup_keys) = match route {
        CreateRoute::Predictions => {
            let version = match obj.get("version") {
                None => {
                    return Err(ApiError::validation(
                        "required",
                        "(root)",
                        "version is required",
                    ))
                }
                Some(Value::String(v)) => v,
                Some(other) => return Err(type_error("version", "string", other)),
            };
            resolve_version(version)?
        }
        CreateRoute::Model { owner, name } => {
            let key = format!("{owner}/{name}");
            (key.clone(), "hidden".to_string(), None, vec![key])
        }
        CreateRoute::Deployment { owner, name } => {
            let key = format!("{owner}/{name}");
            (
                key.clone(),
                "hidden".to_string(),
                Some(key.clone()),
                vec![key],
            )
        }
    };

    let input = match obj.get("input") {
        None => {
            return Err(ApiError::validation(
                "required",
                "(root)",
                "input is required",
            ))
        }
        Some(v @ Value::Object(_)) => v.clone(),
        Some(other) => return Err(type_error("input", "object", other)),
    };
    let webhook = optional_string(&obj, "webhook")?;
    optional_string(&obj, "webhook_completed")?;
    if let Some(stream) = obj.get("stream") {
        if !stream.is_boolean() && !stream.is_null() {
            return Err(type_error("stream", "boolean", stream));
        }
    }
    let webhook_events_filter = match obj.get("webhook_events_filter") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let mut events = Vec::with_capacity(items.len());
            for item in items {
                match item.as_str() {
                    Some(e) if EVENTS.contains(&e) => events.push(e.to_string()),
                    _ => {
                        return Err(ApiError::validation(
                            "enum",
                            "webhook_events_filter",
                            format!(
                                "must be one of the following: {}",
                                EVENTS.map(|e| format!("\"{e}\"")).join(", ")
                            ),
                        ))
                    }
                }
            }
            Some(events)
        }
        Some(other) => return Err(type_error("webhook_events_filter", "array", other)),
    };

    Ok(NewPrediction {
        model,
        version,
        deployment,
        lookup_keys,
        input,
        cancel_after: None,
        webhook,
        webhook_events_filter,
    })
}

/// Resolves the `version` field: a 64-hex id, `owner/name:id`, or `owner/name`.
/// Returns (model, version, deployment, behaviour lookup keys).
fn resolve_version(
    version: &str,
) -> Result<(String, String, Option<String>, Vec<String>), ApiError> {
    if is_version_id(version) {
        return Ok((
            "sim/unknown".into(),
            version.to_string(),
            None,
            vec![version.to_string()],
        ));
    }
    let (model, id) = match version.split_once(':') {
        Some((model, id)) if is_version_id(id) => (model, Some(id)),
        Some(_) => return Err(ApiError::InvalidVersion),
        None => (version, None),
    };
    if !is_model_ref(model) {
        return Err(ApiError::InvalidVersion);
    }
    Ok(match id {
        Some(id) => (
            model.to_string(),
            id.to_string(),
            None,
            vec![id.to_string(), model.to_string()],
        ),
        None => (
            model.to_string(),
            "hidden".into(),
            None,
            vec![model.to_string()],
        ),
    })
}

fn is_version_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_model_ref(s: &str) -> bool {
    let ok = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    matches!(s.split_once('/'), Some((owner, name)) if ok(owner) && ok(name))
}

fn optional_string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(type_error(key, "string", other)),
    }
}

fn type_error(field: &str, expected: &str, given: &Value) -> ApiError {
    let given = match given {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    ApiError::validation(
        "invalid_type",
        field,
        format!("Invalid type. Expected: {expected}, given: {given}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: &str = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa";

    fn model_route() -> CreateRoute {
        CreateRoute::Model {
            owner: "o".into(),
            name: "n".into(),
        }
    }

    #[test]
    fn model_create_uses_hidden_version_and_owner_name_key() {
        let p = parse_create(
            br#"{"input":{"prompt":"x"},"webhook":"https://h/x"}"#,
            &model_route(),
        )
        .unwrap();
        assert_eq!((p.model.as_str(), p.version.as_str()), ("o/n", "hidden"));
        assert_eq!(p.lookup_keys, vec!["o/n"]);
        assert_eq!(p.webhook.as_deref(), Some("https://h/x"));
    }

    #[test]
    fn version_field_accepts_three_forms() {
        let body = |v: &str| format!(r#"{{"version":"{v}","input":{{}}}}"#);
        let bare = parse_create(body(V).as_bytes(), &CreateRoute::Predictions).unwrap();
        assert_eq!(bare.lookup_keys, vec![V]);
        let pinned = parse_create(
            body(&format!("o/n:{V}")).as_bytes(),
            &CreateRoute::Predictions,
        )
        .unwrap();
        assert_eq!((pinned.model.as_str(), pinned.version.as_str()), ("o/n", V));
        let official = parse_create(body("o/n").as_bytes(), &CreateRoute::Predictions).unwrap();
        assert_eq!(official.version, "hidden");
        for bad in ["abc", "o/n:123", "o/n/x"] {
            let err = parse_create(body(bad).as_bytes(), &CreateRoute::Predictions).unwrap_err();
            assert_eq!(err, ApiError::InvalidVersion, "{bad}");
        }
    }

    #[test]
    fn bad_bodies_get_the_right_problem() {
        let err = |b: &str, r: &CreateRoute| parse_create(b.as_bytes(), r).unwrap_err();
        assert_eq!(err("{nope", &model_route()).status().as_u16(), 400);
        let unknown = err(r#"{"input":{},"model":"x"}"#, &model_route()).body();
        assert_eq!(
            unknown["invalid_fields"][0]["description"],
            "Additional property model is not allowed"
        );
        assert_eq!(
            err(r#"{"input":{},"version":"x"}"#, &model_route())
                .status()
                .as_u16(),
            422
        );
        assert_eq!(
            err(r#"{"version":"o/n"}"#, &CreateRoute::Predictions)
                .status()
                .as_u16(),
            422
        );
        assert_eq!(
            err(r#"{"input":[1]}"#, &model_route()).status().as_u16(),
            422
        );
        assert_eq!(
            err(
                r#"{"input":{},"webhook_events_filter":["done"]}"#,
                &model_route()
            )
            .status()
            .as_u16(),
            422
        );
    }
}
