//! The deterministic output of a succeeded prediction: a URL (or the input) derived only from
//! the model key and the canonical JSON of the input, and the label its image shows
//! ([`output_label`], drawn by [`crate::picture`]). Pure functions.

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

/// Input keys whose text labels the output image, in order of preference.
const LABEL_KEYS: [&str; 8] = [
    "garment_des",
    "description",
    "prompt",
    "text",
    "caption",
    "label",
    "title",
    "name",
];
/// Longest label kept, in characters.
const LABEL_CHARS: usize = 80;

/// A short text from the input that the output image shows: the first of [`LABEL_KEYS`] that
/// holds a non-empty string, else the first other top-level string (keys sorted) that is not a
/// URL, else the file name at the end of the first URL, else "" (the image then shows only the
/// model and the hash).
pub fn output_label(input: &Value) -> String {
    let Some(object) = input.as_object() else {
        return input.as_str().map(short).unwrap_or_default();
    };
    let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::trim);
    if let Some(label) = LABEL_KEYS
        .iter()
        .filter_map(|k| text(k))
        .find(|t| !t.is_empty())
    {
        return short(label);
    }
    let mut keys: Vec<&String> = object.keys().collect();
    keys.sort();
    let strings: Vec<&str> = keys.iter().filter_map(|k| text(k)).collect();
    let is_url =
        |s: &str| s.starts_with("http://") || s.starts_with("https://") || s.starts_with("data:");
    if let Some(plain) = strings.iter().find(|s| !s.is_empty() && !is_url(s)) {
        return short(plain);
    }
    strings
        .iter()
        .find(|s| s.starts_with("http://") || s.starts_with("https://"))
        .and_then(|url| {
            url.split(['?', '#'])
                .next()?
                .rsplit('/')
                .find(|p| !p.is_empty())
        })
        .map(short)
        .unwrap_or_default()
}

fn short(text: &str) -> String {
    text.trim().chars().take(LABEL_CHARS).collect()
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
    fn labels_prefer_descriptions_then_plain_text_then_file_names() {
        let tryon = json!({"human_img": "http://h/me.png", "garm_img": "https://g/shirt.jpg?x=1",
            "garment_des": "blue oxford shirt", "steps": 30});
        assert_eq!(output_label(&tryon), "blue oxford shirt");
        assert_eq!(
            output_label(&json!({"prompt": " a cat ", "b": "x"})),
            "a cat"
        );
        assert_eq!(
            output_label(&json!({"z": "zed", "a": "http://x/y", "m": "em"})),
            "em"
        );
        assert_eq!(
            output_label(&json!({"img": "https://g/garments/shirt.jpg?x=1", "n": 1})),
            "shirt.jpg"
        );
        assert_eq!(
            output_label(&json!({"garment_des": "", "image": "data:,x"})),
            ""
        );
        assert_eq!(output_label(&json!("just text")), "just text");
        assert_eq!(
            output_label(&json!({"prompt": "x".repeat(200)})).len(),
            LABEL_CHARS
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
