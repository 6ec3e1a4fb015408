//! Black-box fuzz tests of the HTTP API: malformed, mistyped, oversized and odd requests
//! against the real binary must each get a 4xx JSON error (never a 5xx, never a dropped
//! connection) and write nothing. Requests go over raw TCP so that every byte is ours:
//! chunked bodies without `Content-Length`, invalid UTF-8, paths no URL library would send.

use crate::support::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A reply slower than this counts as a hang.
const REPLY_WITHIN: Duration = Duration::from_secs(20);
/// What "refused fast" means for a 100 000-item body, with room for a loaded debug build.
const FAST: Duration = Duration::from_secs(3);
const MIB: usize = 1024 * 1024;
const UNKNOWN_ID: &str = "tsk_0123456789abcdef0123456789abcdef";

// ---------------------------------------------------------------------------------------
// A raw HTTP/1.1 client.

enum Body {
    Empty,
    /// Sent with `Content-Length`.
    Sized(Vec<u8>),
    /// Sent with `Transfer-Encoding: chunked`, in 64 KiB chunks, with no `Content-Length`.
    Chunked(Vec<u8>),
}

struct Request {
    method: &'static str,
    target: String,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Body,
}

impl Request {
    fn new(method: &'static str, target: impl Into<String>) -> Request {
        Request {
            method,
            target: target.into(),
            headers: vec![],
            body: Body::Empty,
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<Vec<u8>>) -> Request {
        self.headers.push((name, value.into()));
        self
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = Body::Sized(body.into());
        self
    }

    fn chunked(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = Body::Chunked(body.into());
        self
    }

    fn json_body(self, body: impl Into<Vec<u8>>) -> Request {
        self.header("content-type", "application/json").body(body)
    }

    fn bytes(&self, host: &str) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n",
            self.method, self.target
        )
        .into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        match &self.body {
            Body::Empty => out.extend_from_slice(b"\r\n"),
            Body::Sized(body) => {
                out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
                out.extend_from_slice(body);
            }
            Body::Chunked(body) => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
                for chunk in body.chunks(64 * 1024) {
                    out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
        }
        out
    }

    fn describe(&self) -> String {
        let target: String = self.target.chars().take(120).collect();
        let body = match &self.body {
            Body::Empty => String::new(),
            Body::Sized(b) | Body::Chunked(b) => {
                let shown = String::from_utf8_lossy(&b[..b.len().min(120)]).into_owned();
                format!(
                    " body ({} bytes{}): {shown:?}",
                    b.len(),
                    if matches!(self.body, Body::Chunked(_)) {
                        ", chunked"
                    } else {
                        ""
                    }
                )
            }
        };
        format!("{} {target}{body}", self.method)
    }
}

/// `POST /v1/tasks` with `Content-Type: application/json`.
fn post(body: impl Into<Vec<u8>>) -> Request {
    Request::new("POST", "/v1/tasks").json_body(body)
}

fn get(target: impl Into<String>) -> Request {
    Request::new("GET", target)
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    elapsed: Duration,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(300)]).into_owned();
        format!(
            "{} (content-type {:?}) {body}",
            self.status,
            self.header("content-type")
        )
    }
}

fn host(app: &App) -> String {
    app.url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// Sends `request` on a fresh connection and reads one reply. Err when the connection drops
/// or stalls before a whole reply arrives. The request is written while the reply is read,
/// so a server that answers before reading an oversized body is still heard.
async fn send(host: &str, request: &Request) -> Result<Reply, String> {
    let started = Instant::now();
    let stream = TcpStream::connect(host)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let (mut reader, mut writer) = stream.into_split();
    let bytes = request.bytes(host);
    let writing = tokio::spawn(async move {
        let written = writer.write_all(&bytes).await;
        (written, writer)
    });
    let mut raw = vec![];
    let mut buf = vec![0u8; 64 * 1024];
    let outcome = tokio::time::timeout(REPLY_WITHIN, async {
        loop {
            if let Some(reply) = parse_reply(&raw, false) {
                return Ok(reply);
            }
            match reader.read(&mut buf).await {
                Ok(0) => {
                    return parse_reply(&raw, true)
                        .ok_or_else(|| "connection closed before a whole reply".to_owned())
                }
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e) => {
                    return parse_reply(&raw, true)
                        .ok_or_else(|| format!("connection dropped: {e}"))
                }
            }
        }
    })
    .await;
    writing.abort();
    let shown = String::from_utf8_lossy(&raw[..raw.len().min(200)]).into_owned();
    match outcome {
        Ok(Ok((status, headers, body))) => Ok(Reply {
            status,
            headers,
            body,
            elapsed: started.elapsed(),
        }),
        Ok(Err(problem)) => Err(format!("{problem}; got {} bytes: {shown:?}", raw.len())),
        Err(_) => Err(format!(
            "no whole reply within {REPLY_WITHIN:?}; got {} bytes: {shown:?}",
            raw.len()
        )),
    }
}

type Parsed = (u16, Vec<(String, String)>, Vec<u8>);

/// One whole response in `raw`, if there is one yet; `eof` says no more bytes will come.
fn parse_reply(raw: &[u8], eof: bool) -> Option<Parsed> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let rest = &raw[end + 4..];
    let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(length) = find("content-length") {
        let length: usize = length.parse().ok()?;
        rest.get(..length)?.to_vec()
    } else if eof {
        rest.to_vec()
    } else {
        return None;
    };
    Some((status, headers, body))
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut body = vec![];
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

// ---------------------------------------------------------------------------------------
// Cases and their checks.

struct Case {
    what: String,
    request: Request,
    /// Each acceptable (status, error code).
    expect: Vec<(u16, &'static str)>,
}

fn case(what: impl Into<String>, request: Request, status: u16, code: &'static str) -> Case {
    Case {
        what: what.into(),
        request,
        expect: vec![(status, code)],
    }
}

fn bad(what: impl Into<String>, request: Request) -> Case {
    case(what, request, 400, "invalid_request")
}

impl Case {
    fn or(mut self, status: u16, code: &'static str) -> Case {
        self.expect.push((status, code));
        self
    }
}

/// Err naming what is wrong unless `reply` is a 4xx JSON `{"error":{"code","message"}}`.
fn check_error_shape(reply: &Reply) -> Result<String, String> {
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

fn check(case: &Case, reply: &Reply) -> Result<(), String> {
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
async fn assert_all_refused(app: &App, cases: &[Case]) {
    let host = host(app);
    let mut failures = vec![];
    for case in cases {
        let outcome = send(&host, &case.request)
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

async fn assert_nothing_written(app: &App, sim: &replicate_sim::SimHandle) {
    let reply = send(&host(app), &get("/v1/tasks?limit=200")).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.describe());
    let list = reply.json().expect("the list is JSON");
    assert_eq!(list["tasks"], json!([]), "a rejected request wrote a task");
    assert_eq!(
        sim.create_calls(),
        0,
        "a rejected request created a prediction"
    );
}

/// A valid try-on start body with `items` items, as text.
fn valid(items: usize) -> String {
    tryon_body("fuzz", items).to_string()
}

/// A try-on body whose `field` is `value`, the rest valid.
fn with_field(field: &str, value: Value) -> Vec<u8> {
    let mut body = tryon_body("fuzz", 1);
    body[field] = value;
    body.to_string().into_bytes()
}

fn without_field(field: &str) -> Vec<u8> {
    let mut body = tryon_body("fuzz", 1);
    body.as_object_mut().unwrap().remove(field);
    body.to_string().into_bytes()
}

// ---------------------------------------------------------------------------------------
// The barrage.

fn malformed_json() -> Vec<Case> {
    let body = valid(1);
    let truncated = |n: usize| body.as_bytes()[..n].to_vec();
    let texts: Vec<(&str, Vec<u8>)> = vec![
        ("an empty body", vec![]),
        ("only whitespace", b" \r\n\t ".to_vec()),
        ("a lone brace", b"{".to_vec()),
        ("a valid body cut one byte short", truncated(body.len() - 1)),
        ("a valid body cut in half", truncated(body.len() / 2)),
        ("a valid body cut inside a string", truncated(5)),
        ("trailing garbage", format!("{body} x").into_bytes()),
        ("a trailing closing brace", format!("{body}}}").into_bytes()),
        ("two bodies back to back", format!("{body}{body}").into_bytes()),
        ("mismatched brackets", br#"{"workflow":"tryon","params":{"person_image":"p"},"items":[{"garment_image":"g","description":"d"}}"#.to_vec()),
        ("an object closed by a bracket", br#"{"workflow":"tryon"]"#.to_vec()),
        ("items nested one level too deep", br#"{"workflow":"tryon","params":{"person_image":"p"},"items":[[{"garment_image":"g","description":"d"}]]}"#.to_vec()),
        ("the body wrapped in an array", format!("[{body}]").into_bytes()),
        ("the body wrapped in an object", format!("{{\"task\":{body}}}").into_bytes()),
        ("a top-level string", br#""tryon""#.to_vec()),
        ("a top-level number", b"42".to_vec()),
        ("a top-level null", b"null".to_vec()),
        ("a top-level true", b"true".to_vec()),
        ("an empty object", b"{}".to_vec()),
        ("unquoted keys", br#"{workflow:"tryon",items:[{}]}"#.to_vec()),
        ("single quotes", br#"{'workflow':'tryon','items':[{}]}"#.to_vec()),
        ("a trailing comma", body.replacen('}', ",}", 1).into_bytes()),
        ("a comment", format!("/* hi */{body}").into_bytes()),
        ("a NaN literal", br#"{"workflow":"tryon","params":{"person_image":NaN},"items":[{"garment_image":"g","description":"d"}]}"#.to_vec()),
        ("a number out of range", br#"{"workflow":"tryon","params":{"person_image":1e999},"items":[{"garment_image":"g","description":"d"}]}"#.to_vec()),
        ("a lone surrogate escape", br#"{"workflow":"tryon","params":{"person_image":"\ud800"},"items":[{"garment_image":"g","description":"d"}]}"#.to_vec()),
        ("a bad escape", br#"{"workflow":"tr\yon","items":[{}]}"#.to_vec()),
        ("a duplicate workflow key", br#"{"workflow":"nope","workflow":"tryon","params":{"person_image":"p"},"items":[{"garment_image":"g","description":"d"}]}"#.to_vec()),
    ];
    texts
        .into_iter()
        .map(|(what, body)| bad(format!("malformed JSON: {what}"), post(body)))
        .collect()
}

fn mistyped_fields() -> Vec<Case> {
    let item = json!({"garment_image": "g", "description": "d"});
    let mut cases = vec![];
    for value in [
        json!(42),
        json!(1.5),
        json!(true),
        json!(null),
        json!([]),
        json!(["tryon"]),
        json!({}),
        json!({"name": "tryon"}),
    ] {
        cases.push(bad(
            format!("`workflow` as {value}"),
            post(with_field("workflow", value)),
        ));
    }
    for value in [
        json!([]),
        json!([{"person_image": "p"}]),
        json!("p"),
        json!(1),
        json!(true),
    ] {
        cases.push(bad(
            format!("`params` as {value}"),
            post(with_field("params", value)),
        ));
    }
    let items = [
        json!({}),
        json!({"0": item}),
        json!("items"),
        json!(1),
        json!(null),
        json!(true),
        json!([]),
        json!([1]),
        json!(["g"]),
        json!([null]),
        json!([[]]),
        json!([true]),
        json!([item, 2]),
        json!([item, item, item, item, item, item]),
    ];
    for value in items {
        cases.push(bad(
            format!("`items` as {value}"),
            post(with_field("items", value)),
        ));
    }
    cases.push(bad("no `workflow`", post(without_field("workflow"))));
    cases.push(bad("no `items`", post(without_field("items"))));
    cases.push(bad(
        "no `params` where a template reads them",
        post(without_field("params")),
    ));
    cases.push(bad(
        "an item without a template field",
        post(with_field("items", json!([{"garment_image": "g"}]))),
    ));
    cases.push(bad(
        "a params object without a template field",
        post(with_field("params", json!({"person": "p"}))),
    ));
    for field in [
        "extra",
        "Workflow",
        "workflow ",
        "id",
        "status",
        "",
        "__proto__",
        "idempotency_key",
    ] {
        cases.push(bad(
            format!("the unknown top-level field {field:?}"),
            post(with_field(field, json!(1))),
        ));
    }
    cases.push(case(
        "an unknown workflow",
        post(with_field("workflow", json!("nope"))),
        404,
        "unknown_workflow",
    ));
    cases.push(case(
        "a workflow name with a case change",
        post(with_field("workflow", json!("TRYON"))),
        404,
        "unknown_workflow",
    ));
    cases
}

fn huge_bodies() -> Vec<Case> {
    let huge = "h".repeat(900 * 1024);
    let deep_arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_objects = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    vec![
        case("a 900 KB workflow name", post(with_field("workflow", json!(huge))), 404, "unknown_workflow"),
        bad("a 900 KB unknown field name", post(with_field(&huge, json!(1)))),
        bad(
            "a 900 KB item field with params missing",
            post(json!({"workflow": "tryon", "items": [{"garment_image": huge, "description": "d"}]}).to_string()),
        ),
        bad("a 900 KB string as params", post(with_field("params", json!(huge)))),
        bad(
            "100 000 empty items",
            post(format!(
                r#"{{"workflow":"tryon","params":{{"person_image":"p"}},"items":[{}]}}"#,
                vec!["{}"; 100_000].join(",")
            )),
        ),
        bad(
            "100 000 numbers as items",
            post(format!(
                r#"{{"workflow":"tryon","params":{{"person_image":"p"}},"items":[{}]}}"#,
                vec!["1"; 100_000].join(",")
            )),
        ),
        bad(
            "20 000 valid items",
            post(with_field("items", json!(vec![json!({"garment_image": "g", "description": "d"}); 20_000]))),
        ),
        bad(
            "items nested 10 000 arrays deep",
            post(format!(r#"{{"workflow":"tryon","params":{{"person_image":"p"}},"items":{deep_arrays}}}"#)),
        ),
        bad(
            "params nested 10 000 objects deep",
            post(format!(r#"{{"workflow":"tryon","params":{deep_objects},"items":[{{}}]}}"#)),
        ),
        bad("10 000 unclosed brackets", post("[".repeat(10_000))),
        bad("100 000 nested arrays as the whole body", post(format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)))),
    ]
}

fn bad_bytes() -> Vec<Case> {
    let body = valid(1);
    let garbled = |from: &str, to: &[u8]| {
        let at = body.find(from).unwrap();
        [
            &body.as_bytes()[..at],
            to,
            &body.as_bytes()[at + from.len()..],
        ]
        .concat()
    };
    let utf16: Vec<u8> = body.encode_utf16().flat_map(u16::to_le_bytes).collect();
    vec![
        bad(
            "invalid UTF-8 in the workflow name",
            post(garbled("tryon", b"try\xffon")),
        ),
        bad(
            "a truncated UTF-8 sequence in a value",
            post(garbled("person.png", b"person\xc3(.png")),
        ),
        bad(
            "an overlong UTF-8 encoding of a slash",
            post(garbled("https://", b"https:\xc0\xaf/")),
        ),
        bad(
            "invalid UTF-8 in a key",
            post(garbled("\"params\"", b"\"par\xfeams\"")),
        ),
        bad("a UTF-16 body", post(utf16)),
        bad(
            "a UTF-8 byte order mark and garbage",
            post(b"\xef\xbb\xbf\xff\xfe".to_vec()),
        ),
        bad(
            "a raw NUL inside a string",
            post(garbled("tryon", b"try\0on")),
        ),
        bad(
            "a raw NUL between tokens",
            post(garbled("\"items\"", b"\0\"items\"")),
        ),
        bad("a body of NUL bytes", post(vec![0u8; 1000])),
        bad(
            "an escaped NUL in a key",
            post(with_field("workflow\u{0}", json!("tryon"))),
        ),
        case(
            "an escaped NUL in the workflow name",
            post(with_field("workflow", json!("tryon\u{0}"))),
            404,
            "unknown_workflow",
        ),
        bad(
            "raw control characters in a string",
            post(garbled("tryon", b"try\x01\x1bon")),
        ),
    ]
}

fn wrong_methods_types_and_sizes() -> Vec<Case> {
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

fn post_chunked(body: impl Into<Vec<u8>>) -> Request {
    Request::new("POST", "/v1/tasks")
        .header("content-type", "application/json")
        .chunked(body)
}

fn bad_list_queries() -> Vec<Case> {
    let long_cursor = format!("cursor={}", "z".repeat(10_000));
    let queries = [
        "foo=1",
        "bogus",
        "limit=1&bogus",
        "%zz=1",
        "limit=0",
        "limit=-1",
        "limit=abc",
        "limit=100000",
        "limit=201",
        "limit=",
        "limit=1.5",
        "limit=18446744073709551616",
        "limit=%00",
        "limit=%FF",
        "limit=1&limit=2",
        "status=bogus",
        "status=",
        "status=RUNNING",
        "status=running%00",
        "status=running&status=failed",
        "cursor=abc",
        "cursor=zz",
        "cursor=",
        "cursor=%00",
        "cursor=64",
        "cursor=%FF%FE",
        &long_cursor,
        "workflow=tryon&limit=0",
    ];
    queries
        .into_iter()
        .map(|query| {
            bad(
                format!("list query ?{}", &query[..query.len().min(40)]),
                get(format!("/v1/tasks?{query}")),
            )
        })
        .collect()
}

fn odd_ids() -> Vec<Case> {
    let ids = [
        "x".to_owned(),
        "tsk_".to_owned(),
        "tsk".to_owned(),
        format!("tsk_{}", "0".repeat(31)),
        format!("tsk_{}", "0".repeat(33)),
        format!("tsk_{}", "g".repeat(32)),
        UNKNOWN_ID.to_uppercase(),
        format!("{UNKNOWN_ID}%00"),
        "%20".to_owned(),
        "%00".to_owned(),
        "..".to_owned(),
        "..%2F..%2Fetc%2Fpasswd".to_owned(),
        "tsk_0123456789abcdef%2F0123456789abcdef".to_owned(),
        "%2F".to_owned(),
        "%E2%9C%93".to_owned(),
        "\u{e9}\u{2713}".to_owned(),
        "tsk_%F0%9F%A6%80%F0%9F%A6%80%F0%9F%A6%80%F0%9F%A6%80".to_owned(),
        "%C3%A9".repeat(5_000),
        format!("tsk_{}", "0".repeat(10_000)),
        "%".to_owned(),
        "%zz".to_owned(),
        format!("{UNKNOWN_ID};x=1"),
        "%FF".to_owned(),
        "tsk_%C3%28".to_owned(),
    ];
    let mut cases: Vec<Case> = ids
        .into_iter()
        .map(|id| {
            let shown: String = id.chars().take(60).collect();
            case(
                format!("GET of the odd id {shown:?}"),
                get(format!("/v1/tasks/{id}")),
                404,
                "not_found",
            )
        })
        .collect();
    cases.push(case(
        "an absolute-form target",
        get("http://example.com/v1/tasks/x"),
        404,
        "not_found",
    ));
    // The query is checked before the id is looked up: `wait` is the only parameter.
    let unknown_parameter = get(format!("/v1/tasks/{UNKNOWN_ID}?limit=0"));
    cases.push(case(
        "an unknown query parameter on a task",
        unknown_parameter,
        400,
        "invalid_request",
    ));
    cases.push(case(
        "a long poll over 60 s",
        get(format!("/v1/tasks/{UNKNOWN_ID}?wait=61")),
        400,
        "invalid_request",
    ));
    cases
}

fn bad_idempotency_keys() -> Vec<Case> {
    let body = valid(1);
    let keyed = |key: &[u8]| post(body.clone()).header("idempotency-key", key.to_vec());
    vec![
        bad("an empty Idempotency-Key", keyed(b"")),
        bad("a blank Idempotency-Key", keyed(b"   ")),
        bad(
            "a 256-character Idempotency-Key",
            keyed("k".repeat(256).as_bytes()),
        ),
        bad(
            "a 1000-character Idempotency-Key",
            keyed("k".repeat(1000).as_bytes()),
        ),
        bad("a non-ASCII Idempotency-Key", keyed("ключ".as_bytes())),
        bad("an Idempotency-Key with a tab inside", keyed(b"a\tb")),
    ]
}

/// Cancel and retry of ids that name no task: 404 whether or not those routes exist yet.
fn cancel_and_retry_of_unknown_ids() -> Vec<Case> {
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
fn other_routes() -> Vec<Case> {
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

fn barrage() -> Vec<Case> {
    [
        malformed_json(),
        mistyped_fields(),
        huge_bodies(),
        bad_bytes(),
        wrong_methods_types_and_sizes(),
        bad_list_queries(),
        odd_ids(),
        bad_idempotency_keys(),
        cancel_and_retry_of_unknown_ids(),
        other_routes(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

async fn spawn() -> (replicate_sim::SimHandle, tempfile::TempDir, App) {
    let sim = start_sim(20).await;
    let dir = tempfile::tempdir().unwrap();
    let app = App::spawn(dir.path(), &config_toml(dir.path(), &sim.base_url(), ""));
    (sim, dir, app)
}

// ---------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_gets_a_json_400_and_writes_nothing() {
    let (sim, _dir, app) = spawn().await;
    assert_all_refused(&app, &malformed_json()).await;
    assert_nothing_written(&app, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_with_a_wrong_type_or_name_gets_a_json_error_and_writes_nothing() {
    let (sim, _dir, app) = spawn().await;
    assert_all_refused(&app, &mistyped_fields()).await;
    assert_nothing_written(&app, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_strings_huge_arrays_and_deep_nesting_get_a_json_error_and_write_nothing() {
    let (sim, _dir, app) = spawn().await;
    assert_all_refused(&app, &huge_bodies()).await;
    assert_nothing_written(&app, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_items_are_refused_fast_with_a_message_about_items() {
    let (sim, _dir, app) = spawn().await;
    for item in ["{}", "1", r#"{"garment_image":"g","description":"d"}"#] {
        let count = if item.len() > 2 { 25_000 } else { 100_000 };
        let body = format!(
            r#"{{"workflow":"tryon","params":{{"person_image":"p"}},"items":[{}]}}"#,
            vec![item; count].join(",")
        );
        let reply = send(&host(&app), &post(body)).await.unwrap();
        assert_eq!(
            check_error_shape(&reply),
            Ok("invalid_request".into()),
            "{item} x {count}"
        );
        assert_eq!(reply.status, 400);
        let message = reply.json().unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            message.contains("items"),
            "the message is about items: {message}"
        );
        assert!(
            reply.elapsed < FAST,
            "{count} items took {:?}",
            reply.elapsed
        );
    }
    assert_nothing_written(&app, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_and_nul_bytes_get_a_json_error_and_write_nothing() {
    let (sim, _dir, app) = spawn().await;
    assert_all_refused(&app, &bad_bytes()).await;
    assert_nothing_written(&app, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_methods_media_types_and_oversized_bodies_get_json_errors_and_write_nothing() {
    let (sim, _dir, app) = spawn().await;
    assert_all_refused(&app, &wrong_methods_types_and_sizes()).await;
    assert_nothing_written(&app, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_journals_files_webhooks_and_metrics_refuse_bad_requests_with_json() {
    let (sim, _dir, app) = spawn().await;
    assert_all_refused(&app, &other_routes()).await;
    assert_nothing_written(&app, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_list_queries_get_a_json_400_and_write_nothing() {
    let (sim, _dir, app) = spawn().await;
    assert_all_refused(&app, &bad_list_queries()).await;
    assert_nothing_written(&app, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_task_ids_get_a_json_404_and_write_nothing() {
    let (sim, _dir, app) = spawn().await;
    assert_all_refused(&app, &odd_ids()).await;
    assert_nothing_written(&app, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_idempotency_keys_get_a_json_400_and_write_nothing() {
    let (sim, _dir, app) = spawn().await;
    assert_all_refused(&app, &bad_idempotency_keys()).await;
    assert_nothing_written(&app, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_retry_of_unknown_ids_answer_404_and_write_nothing() {
    let (sim, _dir, app) = spawn().await;
    assert_all_refused(&app, &cancel_and_retry_of_unknown_ids()).await;
    assert_nothing_written(&app, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_whole_barrage_the_engine_is_healthy_and_still_runs_a_task() {
    let (sim, _dir, app) = spawn().await;
    let host = host(&app);
    for case in barrage() {
        let _ = send(&host, &case.request).await;
    }
    let health = send(&host, &get("/healthz")).await.unwrap();
    assert_eq!(health.status, 200, "{}", health.describe());
    let health = health.json().unwrap();
    assert_eq!(
        (health["status"].as_str(), health["resumed"].as_bool()),
        (Some("ok"), Some(true))
    );
    let created = send(&host, &post(tryon_body("after", 2).to_string()))
        .await
        .unwrap();
    assert_eq!(created.status, 201, "{}", created.describe());
    let id = created.json().unwrap()["id"].as_str().unwrap().to_owned();
    let mut near_limit = tryon_body("near", 1);
    for field in ["a", "b", "c", "d"] {
        near_limit["params"][field] = json!("o".repeat(225 * 1024));
    }
    let reply = send(&host, &post(near_limit.to_string())).await.unwrap();
    assert_eq!(
        reply.status,
        201,
        "a 900 KB body is under the 1 MiB limit: {}",
        reply.describe()
    );
    let reply = send(&host, &post_chunked(tryon_body("chunked", 1).to_string()))
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        201,
        "a valid chunked body starts a task: {}",
        reply.describe()
    );
    let task = app.wait_until_finished(&id, Duration::from_secs(30)).await;
    assert_chained(&sim, &task, "after");
}

// ---------------------------------------------------------------------------------------
// The property: random start bodies.

const TOP_KEYS: [&str; 3] = ["workflow", "params", "items"];
const FIELD_NAMES: [&str; 9] = [
    "workflow",
    "params",
    "items",
    "person_image",
    "garment_image",
    "description",
    "x",
    "n",
    "start",
];
const WORKFLOWS: [&str; 5] = ["tryon", "failing", "listy", "nope", ""];

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        2 => prop::sample::select(WORKFLOWS.to_vec()).prop_map(String::from),
        2 => "(?s).{0,12}",
        1 => any::<String>(),
    ]
    .boxed()
}

fn key() -> BoxedStrategy<String> {
    prop_oneof![3 => prop::sample::select(FIELD_NAMES.to_vec()).prop_map(String::from), 1 => text()]
        .boxed()
}

fn object_of(pairs: Vec<(String, Value)>) -> Value {
    Value::Object(pairs.into_iter().collect())
}

/// Any JSON value, nested up to four deep.
fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::num::f64::NORMAL.prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::vec((key(), inner), 0..6).prop_map(object_of),
        ]
    })
    .boxed()
}

/// An object with some of the start fields, each either plausible or any value.
fn start_like() -> BoxedStrategy<Value> {
    let workflow = prop_oneof![4 => prop::sample::select(WORKFLOWS.to_vec()).prop_map(Value::from), 1 => json_value()];
    let field_value = prop_oneof![3 => "[a-z:/.]{0,10}".prop_map(Value::from), 1 => json_value()];
    let plausible_object = |names: Vec<&'static str>| {
        prop::collection::vec(
            (
                prop::sample::select(names).prop_map(String::from),
                field_value.clone(),
            ),
            0..4,
        )
        .prop_map(object_of)
    };
    let params = prop_oneof![4 => plausible_object(vec!["person_image", "start", "other"]), 1 => json_value()];
    let item = prop_oneof![8 => plausible_object(vec!["garment_image", "description", "x", "n", "other"]), 1 => json_value()];
    let items = prop_oneof![4 => prop::collection::vec(item, 0..7).prop_map(Value::from), 1 => json_value()];
    let extra = prop::option::weighted(0.1, (key(), json_value()));
    (
        prop::option::weighted(0.95, workflow),
        prop::option::weighted(0.8, params),
        prop::option::weighted(0.95, items),
        extra,
    )
        .prop_map(|(workflow, params, items, extra)| {
            let mut body = Map::new();
            let fields = [("workflow", workflow), ("params", params), ("items", items)];
            for (name, value) in fields {
                if let Some(value) = value {
                    body.insert(name.into(), value);
                }
            }
            if let Some((key, value)) = extra {
                body.insert(key, value);
            }
            Value::Object(body)
        })
        .boxed()
}

/// A valid try-on body of 1 to 6 items (6 is one too many), then one change (or none).
fn mutated_tryon() -> BoxedStrategy<Value> {
    (
        1..=6usize,
        0..8u8,
        any::<prop::sample::Index>(),
        key(),
        json_value(),
    )
        .prop_map(|(items, mutation, at, key, value)| {
            let mut body = tryon_body("prop", items);
            let item = at.index(items);
            let item_field = ["garment_image", "description"][at.index(2)];
            match mutation {
                0 => {}
                1 => drop(body.as_object_mut().unwrap().remove(TOP_KEYS[at.index(3)])),
                2 => drop(
                    body["params"]
                        .as_object_mut()
                        .unwrap()
                        .remove("person_image"),
                ),
                3 => drop(
                    body["items"][item]
                        .as_object_mut()
                        .unwrap()
                        .remove(item_field),
                ),
                4 => body[TOP_KEYS[at.index(3)]] = value,
                5 => body["items"][item] = value,
                6 => body["items"][item][item_field] = value,
                _ => body[key.as_str()] = value,
            }
            body
        })
        .boxed()
}

/// Bytes that are mostly not JSON: noise, and a valid body cut, spliced or followed by junk.
fn byte_soup() -> BoxedStrategy<Vec<u8>> {
    let valid_bytes = (1..=3usize).prop_map(|n| tryon_body("bytes", n).to_string().into_bytes());
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        (valid_bytes.clone(), any::<prop::sample::Index>())
            .prop_map(|(b, at)| b[..at.index(b.len())].to_vec()),
        (
            valid_bytes.clone(),
            any::<prop::sample::Index>(),
            any::<u8>()
        )
            .prop_map(|(mut b, at, byte)| {
                let at = at.index(b.len());
                b[at] = byte;
                b
            }),
        (
            valid_bytes.clone(),
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u8>(), 1..8)
        )
            .prop_map(|(b, at, junk)| {
                let at = at.index(b.len());
                [&b[..at], &junk, &b[at..]].concat()
            }),
        (valid_bytes, prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(b, junk)| [b, junk].concat()),
    ]
    .boxed()
}

/// A start request: its body and `Content-Type`, shown as text when a case fails.
#[derive(Clone)]
struct Start {
    body: Vec<u8>,
    content_type: Option<&'static str>,
}

impl std::fmt::Debug for Start {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Content-Type {:?}, body {:?}",
            self.content_type,
            String::from_utf8_lossy(&self.body)
        )
    }
}

fn start_request() -> BoxedStrategy<Start> {
    let as_bytes = |v: Value| v.to_string().into_bytes();
    let body = prop_oneof![
        2 => json_value().prop_map(as_bytes),
        3 => start_like().prop_map(as_bytes),
        3 => mutated_tryon().prop_map(as_bytes),
        2 => byte_soup(),
    ];
    let content_type = prop_oneof![
        12 => Just(Some("application/json")),
        1 => Just(Some("application/json; charset=utf-8")),
        1 => Just(Some("text/plain")),
        1 => Just(None),
    ];
    (body, content_type)
        .prop_map(|(body, content_type)| Start { body, content_type })
        .boxed()
}

/// What the API contract says a start body is: a valid start (expect 201) or not.
fn is_valid_start(body: &[u8]) -> bool {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    if body.keys().any(|k| !TOP_KEYS.contains(&k.as_str())) {
        return false;
    }
    let Some(Value::String(workflow)) = body.get("workflow") else {
        return false;
    };
    let no_params = json!({});
    let params = match body.get("params") {
        None | Some(Value::Null) => &no_params,
        Some(params @ Value::Object(_)) => params,
        Some(_) => return false,
    };
    let Some(Value::Array(items)) = body.get("items") else {
        return false;
    };
    // (max_items, fields step 1 reads, fields later steps read) from tests/common's config.
    let (max_items, first, rest): (usize, &[&str], &[&str]) = match workflow.as_str() {
        "tryon" => (
            5,
            &[
                "params.person_image",
                "item.garment_image",
                "item.description",
            ],
            &["item.garment_image", "item.description"],
        ),
        "failing" => (10, &["item.x"], &["item.x"]),
        "listy" => (10, &["params.start", "item.n"], &["item.n"]),
        _ => return false,
    };
    let has = |item: &Value, path: &str| {
        let (root, field) = path.split_once('.').unwrap();
        let scope = if root == "params" { params } else { item };
        scope.get(field).is_some()
    };
    (1..=max_items).contains(&items.len())
        && items.iter().all(Value::is_object)
        && items.iter().enumerate().all(|(i, item)| {
            (if i == 0 { first } else { rest })
                .iter()
                .all(|path| has(item, path))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_start_bodies_get_201_only_when_valid_and_a_json_error_otherwise() {
    let (_sim, _dir, app) = spawn().await;
    let host = host(&app);
    let runtime = tokio::runtime::Handle::current();
    let mut config = Config {
        cases: 400,
        max_shrink_iters: 200,
        failure_persistence: None,
        ..Config::default()
    };
    if matches!(config.rng_seed, RngSeed::Random) {
        config.rng_seed = RngSeed::Fixed(0x5eed_57e9);
    }
    let mut runner = TestRunner::new(config);
    let created = std::cell::RefCell::new(HashSet::new());
    let refused = std::cell::Cell::new(0usize);
    let outcome = tokio::task::block_in_place(|| {
        runner.run(&start_request(), |Start { body, content_type }| {
            let mut request = Request::new("POST", "/v1/tasks").body(body.clone());
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let reply = runtime
                .block_on(send(&host, &request))
                .map_err(TestCaseError::fail)?;
            let json_type = content_type.is_some_and(|t| t.starts_with("application/json"));
            let valid = json_type && is_valid_start(&body);
            prop_assert!(
                [201, 200, 400, 404, 413, 415].contains(&reply.status),
                "status {}",
                reply.describe()
            );
            if valid {
                prop_assert_eq!(reply.status, 201, "a valid start: {}", reply.describe());
                let task = reply.json().unwrap_or_default();
                let id = task["id"].as_str().unwrap_or_default().to_owned();
                let location = format!("/v1/tasks/{id}");
                prop_assert_eq!(reply.header("location"), Some(location.as_str()));
                prop_assert!(created.borrow_mut().insert(id), "a new id");
            } else {
                let code = check_error_shape(&reply).map_err(TestCaseError::fail)?;
                if !json_type {
                    prop_assert_eq!(
                        (reply.status, code.as_str()),
                        (415, "unsupported_media_type")
                    );
                } else if serde_json::from_slice::<Value>(&body).is_err() {
                    prop_assert_eq!((reply.status, code.as_str()), (400, "invalid_request"));
                } else {
                    prop_assert!(
                        [(400, "invalid_request"), (404, "unknown_workflow")]
                            .contains(&(reply.status, code.as_str())),
                        "an invalid start: {}",
                        reply.describe()
                    );
                }
                refused.set(refused.get() + 1);
            }
            Ok(())
        })
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    let (created, refused) = (created.into_inner(), refused.get());
    assert!(
        created.len() >= 10 && refused >= 100,
        "the generator covers both sides: {} created, {refused} refused",
        created.len()
    );
    let list = send(&host, &get("/v1/tasks?limit=200"))
        .await
        .unwrap()
        .json()
        .unwrap();
    let listed: HashSet<String> = list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, created, "exactly the 201s wrote a task");
    assert!(list["next_cursor"].is_null());
}
