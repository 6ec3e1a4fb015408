//! The deterministic output of a succeeded prediction: a URL (or the input) derived only from
//! the model key and the canonical JSON of the input. Pure functions.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::OutputShape;

/// First 16 hex chars of sha256(model_key + "\n" + canonical JSON of input).
pub fn output_hash(model_key: &str, input: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(model_key.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical_json(input).as_bytes());
    hex::encode(hasher.finalize())[..16].to_string()
}

/// The output of a succeeded prediction, derived only from (model key, input).
pub fn output_value(shape: OutputShape, model_key: &str, input: &Value, base: &str) -> Value {
    let url = || format!("{base}/files/{}/out-0.png", output_hash(model_key, input));
    match shape {
        OutputShape::Url => json!(url()),
        OutputShape::UrlList => json!([url()]),
        OutputShape::Echo => input.clone(),
    }
}

/// JSON with object keys sorted, whatever serde_json's `preserve_order` feature says.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&sorted(value)).expect("a JSON value always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_hash_ignores_key_order() {
        let a = output_hash("o/n", &json!({"a": 1, "b": {"y": 1, "x": 2}}));
        let b = output_hash("o/n", &json!({"b": {"x": 2, "y": 1}, "a": 1}));
        assert_eq!(a, b);
        assert_eq!(a.len(), 16);
        assert_ne!(
            a,
            output_hash("o/other", &json!({"a": 1, "b": {"y": 1, "x": 2}}))
        );
        assert_eq!(
            canonical_json(&json!({"b": 1, "a": [{"d": 1, "c": 2}]})),
            r#"{"a":[{"c":2,"d":1}],"b":1}"#
        );
    }

    #[test]
    fn shapes_wrap_the_same_url() {
        let input = json!({"p": "x"});
        let url = output_value(OutputShape::Url, "o/n", &input, "http://h");
        assert_eq!(
            url,
            json!(format!(
                "http://h/files/{}/out-0.png",
                output_hash("o/n", &input)
            ))
        );
        assert_eq!(
            output_value(OutputShape::UrlList, "o/n", &input, "http://h"),
            json!([url])
        );
        assert_eq!(
            output_value(OutputShape::Echo, "o/n", &input, "http://h"),
            input
        );
    }
}
