//! A case of the barrage (a request and the answers it may get), the check that an answer is
//! a 4xx JSON error of the right code, and the check that nothing was written.

use super::wire::{send, Reply, Request};
use crate::support::{tryon_body, TestApp};
use serde_json::{json, Value};

pub struct Case {
    pub what: String,
    pub request: Request,
    /// Each acceptable (status, error code).
    pub expect: Vec<(u16, &'static str)>,
}

pub fn case(what: impl Into<String>, request: Request, status: u16, code: &'static str) -> Case {
    Case {
        what: what.into(),
        request,
        expect: vec![(status, code)],
    }
}

pub fn bad(what: impl Into<String>, request: Request) -> Case {
    case(what, request, 400, "invalid_request")
}

impl Case {
    pub fn or(mut self, status: u16, code: &'static str) -> Case {
        self.expect.push((status, code));
        self
    }
}

/// Err naming what is wrong unless `reply` is a 4xx JSON `{"error":{"code","message"}}`.
pub fn check_error_shape(reply: &Reply) -> Result<String, String> {
    if !(400..500).contains(&reply.status) {
        return Err(format!("expected a 4xx, got {}", reply.describe()));
    }
    let content_type = reply.header("content-type").unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(format!("error is not JSON: {}", reply.describe()));
    }
    let Some(body) = reply.json() else {
        return Err(format!("error body does not parse: {}", reply.describe()));
    };
    let code = body["error"]["code"].as_str().filter(|c| !c.is_empty());
    let message = body["error"]["message"].as_str().filter(|m| !m.is_empty());
    let keys: Vec<&String> = body
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    match (code, message) {
        (Some(code), Some(_)) if keys == ["error"] => Ok(code.to_owned()),
        _ => Err(format!(
            "error body lacks the shape {{\"error\":{{\"code\",\"message\"}}}}: {}",
            reply.describe()
        )),
    }
}

pub fn check(case: &Case, reply: &Reply) -> Result<(), String> {
    let code = check_error_shape(reply)?;
    if case
        .expect
        .iter()
        .any(|(status, c)| *status == reply.status && *c == code)
    {
        Ok(())
    } else {
        Err(format!(
            "expected one of {:?}, got {}",
            case.expect,
            reply.describe()
        ))
    }
}

/// Sends every case and fails with the list of every case that did not get its answer.
pub async fn assert_all_refused(host: &str, cases: &[Case]) {
    let mut failures = vec![];
    for case in cases {
        let outcome = send(host, &case.request)
            .await
            .and_then(|reply| check(case, &reply));
        if let Err(problem) = outcome {
            failures.push(format!(
                "- {}\n    request: {}\n    {problem}",
                case.what,
                case.request.describe()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
/// A valid try-on start body with `items` items, as text.
pub fn valid(items: usize) -> String {
    tryon_body("fuzz", items).to_string()
}

/// A try-on body whose `field` is `value`, the rest valid.
pub fn with_field(field: &str, value: Value) -> Vec<u8> {
    let mut body = tryon_body("fuzz", 1);
    body[field] = value;
    body.to_string().into_bytes()
}

pub fn without_field(field: &str) -> Vec<u8> {
    let mut body = tryon_body("fuzz", 1);
    body.as_object_mut().unwrap().remove(field);
    body.to_string().into_bytes()
}

/// No task listed, no prediction created: the refused requests wrote nothing.
pub async fn assert_nothing_written(app: &TestApp) {
    let list = app.get_json("/v1/tasks?limit=200").await;
    assert_eq!(list["tasks"], json!([]), "a rejected request wrote a task");
    assert_eq!(
        app.sim.create_calls(),
        0,
        "a rejected request created a prediction"
    );
}
