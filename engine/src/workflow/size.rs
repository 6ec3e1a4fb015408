//! The size limits of a start request and of a step's input (`[limits]`): the first string
//! over `max_string_bytes` in a request, by its path, and the length of an input's JSON text,
//! counted without building it. No IO.

use serde_json::Value;

/// The path of the first string in `value` (itself at `path`) longer than `max` bytes. A
/// start checks every string of its request, so no path is built unless one is too long.
pub fn long_string_in(value: &Value, path: impl FnOnce() -> String, max: usize) -> Option<String> {
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
pub fn json_len(value: &Value) -> usize {
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
