//! Bad requests beyond the start body: wrong methods, media types and sizes, unknown routes,
//! cancel and retry of unknown ids, and the routes around tasks (event streams, journals,
//! kept files, webhooks, metrics, the dashboard). Each must get a 4xx JSON error.

use super::check::{bad, case, valid, with_field, Case};
use super::wire::{get, post, post_chunked, Request};
use super::UNKNOWN_ID;
use serde_json::json;

const MIB: usize = 1024 * 1024;

pub fn wrong_methods_types_and_sizes() -> Vec<Case> {
    let body = valid(1);
    let mut cases = vec![];
    for path in [
        "/v1/tasks".to_owned(),
        format!("/v1/tasks/{UNKNOWN_ID}"),
        "/healthz".to_owned(),
    ] {
        for method in ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"] {
            let request = Request::new(method, path.clone()).json_body(body.clone());
            cases.push(case(
                format!("{method} {path}"),
                request,
                405,
                "method_not_allowed",
            ));
        }
    }
    for path in [format!("/v1/tasks/{UNKNOWN_ID}"), "/healthz".to_owned()] {
        cases.push(case(
            format!("POST {path}"),
            Request::new("POST", path.clone()).json_body(body.clone()),
            405,
            "method_not_allowed",
        ));
    }
    // `/` is the dashboard: GET serves it, any other method is a 405.
    cases.push(case(
        "POST to the dashboard",
        Request::new("POST", "/").json_body(body.clone()),
        405,
        "method_not_allowed",
    ));
    for path in [
        "/v1",
        "/v1/task",
        "/v2/tasks",
        "/v1/tasks/x/y/z",
        "/healthz/",
        "/V1/TASKS",
    ] {
        cases.push(case(
            format!("GET of the unknown route {path}"),
            get(path),
            404,
            "not_found",
        ));
        cases.push(case(
            format!("POST to the unknown route {path}"),
            Request::new("POST", path).json_body(body.clone()),
            404,
            "not_found",
        ));
    }
    cases.push(case(
        "no Content-Type",
        Request::new("POST", "/v1/tasks").body(body.clone()),
        415,
        "unsupported_media_type",
    ));
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
        "application/json-seq",
        "application/problem+json",
        "json",
        "",
        "application/ json",
        "text/json",
        "*/*",
    ] {
        let request = Request::new("POST", "/v1/tasks")
            .header("content-type", content_type)
            .body(body.clone());
        cases.push(case(
            format!("Content-Type {content_type:?}"),
            request,
            415,
            "unsupported_media_type",
        ));
    }
    let over = |n: usize| {
        with_field(
            "items",
            json!([{"garment_image": "g", "description": "o".repeat(n)}]),
        )
    };
    cases.push(case(
        "a body of 1 MiB + 1 bytes",
        post(" ".repeat(MIB + 1)),
        413,
        "too_large",
    ));
    cases.push(case(
        "a 2 MiB JSON body",
        post(over(2 * MIB)),
        413,
        "too_large",
    ));
    cases.push(case(
        "an 8 MiB JSON body",
        post(over(8 * MIB)),
        413,
        "too_large",
    ));
    cases.push(case(
        "a chunked body of 1 MiB + 1 bytes",
        post_chunked(" ".repeat(MIB + 1)),
        413,
        "too_large",
    ));
    cases.push(case(
        "a chunked 4 MiB JSON body",
        post_chunked(over(4 * MIB)),
        413,
        "too_large",
    ));
    cases.push(bad(
        "a small chunked malformed body",
        post_chunked("{\"workflow\":"),
    ));
    cases.push(bad("a chunked empty body", post_chunked("")));
    cases.push(bad(
        "Content-Length and chunked together, body not chunked",
        post(body).header("transfer-encoding", "chunked"),
    ));
    cases
}

/// Cancel and retry of ids that name no task: 404 whether or not those routes exist yet.
pub fn cancel_and_retry_of_unknown_ids() -> Vec<Case> {
    let mut cases = vec![];
    for action in ["cancel", "retry"] {
        for id in [
            UNKNOWN_ID,
            "tsk_ffffffffffffffffffffffffffffffff",
            "nope",
            "tsk_",
            "%FF",
            "..%2F..",
            "%E2%9C%93",
        ] {
            let target = format!("/v1/tasks/{id}/{action}");
            cases.push(case(
                format!("POST {target}"),
                Request::new("POST", target.clone()),
                404,
                "not_found",
            ));
            cases.push(case(
                format!("POST {target} with a JSON body"),
                Request::new("POST", target).json_body("{}"),
                404,
                "not_found",
            ));
        }
        for method in ["GET", "PUT", "DELETE", "PATCH"] {
            let target = format!("/v1/tasks/{UNKNOWN_ID}/{action}");
            let request = Request::new(method, target.clone());
            cases.push(
                case(format!("{method} {target}"), request, 404, "not_found")
                    .or(405, "method_not_allowed"),
            );
        }
    }
    cases
}

/// The routes added around tasks: the event stream, the journal, kept files, webhook
/// deliveries (off in this config), metrics and the dashboard.
pub fn other_routes() -> Vec<Case> {
    let mut cases = vec![];
    for id in [UNKNOWN_ID, "nope", "%FF", "..%2F..", "tsk_%C3%28"] {
        for (suffix, what) in [("events", "event stream"), ("journal", "journal")] {
            let target = format!("/v1/tasks/{id}/{suffix}");
            cases.push(case(
                format!("the {what} of {id}"),
                get(target.clone()),
                404,
                "not_found",
            ));
            cases.push(
                case(
                    format!("POST to the {what} of {id}"),
                    Request::new("POST", target),
                    404,
                    "not_found",
                )
                .or(405, "method_not_allowed"),
            );
        }
        let target = format!("/v1/files/{id}/1/0-out.png");
        cases.push(case(
            format!("a kept file of {id}"),
            get(target),
            404,
            "not_found",
        ));
    }
    for target in [
        format!("/v1/files/{UNKNOWN_ID}/x/a.png"),
        format!("/v1/files/{UNKNOWN_ID}/1/..%2F..%2Fdb"),
        format!("/v1/files/{UNKNOWN_ID}/1"),
    ] {
        cases.push(case(format!("GET {target}"), get(target), 404, "not_found"));
    }
    let garbage =
        Request::new("POST", "/v1/webhooks/replicate?task=x&step=a").json_body("{not json");
    cases.push(case(
        "a webhook delivery while webhooks are off",
        garbage,
        404,
        "not_found",
    ));
    cases.push(case(
        "GET of the webhook route",
        get("/v1/webhooks/replicate"),
        405,
        "method_not_allowed",
    ));
    for (method, target) in [("PUT", "/metrics"), ("DELETE", "/healthz"), ("PATCH", "/")] {
        cases.push(case(
            format!("{method} {target}"),
            Request::new(method, target),
            405,
            "method_not_allowed",
        ));
    }
    cases
}
