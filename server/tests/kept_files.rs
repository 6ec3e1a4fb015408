//! Kept output files are served from disk by `GET /v1/files/{task}/{step}/{name}` with HTTP's
//! own tools (ranges, validators, 304s), and a name that does not lead to a kept file gets the
//! API's JSON 404 whatever the reason. Driven in process through `router()`; the engine writes
//! nothing here: the files are put where the keeper would have written them.

use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use serde_json::Value;
use std::path::Path;
use stepwise_engine::model::TaskId;
use stepwise_engine::{Engine, StoreChoice};
use stepwise_server::Config;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const TASK: TaskId = TaskId([7; 16]);

/// A server over a disk engine in `data` (with `[outputs] keep` as given) and its shutdown.
fn launch(data: &Path, keep: bool) -> (axum::Router, CancellationToken) {
    let config = format!(
        "[storage]\ndata_dir = {:?}\n[outputs]\nkeep = {keep}\n\
         [replicate]\napi_base = \"http://127.0.0.1:9\"\napi_token = \"unused\"\n\
         [workflows.echo]\nmodel = \"test/echo\"\n",
        data.display().to_string()
    );
    let config = Config::from_toml(&config, "test").expect("a valid config");
    let shutdown = CancellationToken::new();
    let (engine, _runtime) =
        Engine::launch(&config.engine_config(), StoreChoice::Disk, shutdown.clone())
            .expect("the engine starts");
    let app = stepwise_server::router(engine, &config.server, shutdown.clone());
    (app, shutdown)
}

/// Writes `bytes` where the keeper keeps step 1's file `name` of `TASK`.
fn keep(data: &Path, name: &str, bytes: &[u8]) {
    let dir = data.join("files").join(TASK.to_string()).join("1");
    std::fs::create_dir_all(&dir).expect("the step's folder");
    std::fs::write(dir.join(name), bytes).expect("the kept file");
}

/// 200 000 bytes, so a whole answer takes several of `ServeFile`'s 64 KiB reads.
fn content() -> Vec<u8> {
    (0..200_000u32).map(|i| (i % 251) as u8).collect()
}

async fn get(app: &axum::Router, path: &str, headers: &[(&str, &str)]) -> Response<Body> {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Body::empty()).expect("a valid request");
    app.clone().oneshot(request).await.expect("infallible")
}

async fn body(response: Response<Body>) -> Vec<u8> {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await;
    bytes.expect("a readable body").to_vec()
}

fn header(response: &Response<Body>, name: header::HeaderName) -> &str {
    response.headers()[name].to_str().expect("a visible header")
}

fn url(name: &str) -> String {
    format!("/v1/files/{TASK}/1/{name}")
}

#[tokio::test]
async fn a_kept_file_is_streamed_whole_with_its_type_validators_and_cache_headers() {
    let data = tempfile::tempdir().expect("a temp dir");
    let (app, shutdown) = launch(data.path(), true);
    keep(data.path(), "0-out.png", &content());

    let response = get(&app, &url("0-out.png"), &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, header::CONTENT_TYPE), "image/png");
    assert_eq!(header(&response, header::CONTENT_LENGTH), "200000");
    assert_eq!(header(&response, header::ACCEPT_RANGES), "bytes");
    assert_eq!(
        header(&response, header::CACHE_CONTROL),
        "private, max-age=86400, immutable"
    );
    assert_eq!(header(&response, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert!(response.headers().contains_key(header::ETAG));
    assert!(response.headers().contains_key(header::LAST_MODIFIED));
    assert_eq!(body(response).await, content());

    keep(data.path(), "1-notes.txt", b"hello");
    let text = get(&app, &url("1-notes.txt"), &[]).await;
    assert_eq!(
        header(&text, header::CONTENT_TYPE),
        "text/plain; charset=utf-8"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn a_range_request_gets_206_with_just_those_bytes() {
    let data = tempfile::tempdir().expect("a temp dir");
    let (app, shutdown) = launch(data.path(), true);
    keep(data.path(), "0-out.png", &content());

    let response = get(&app, &url("0-out.png"), &[("range", "bytes=0-9")]).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&response, header::CONTENT_RANGE), "bytes 0-9/200000");
    assert_eq!(header(&response, header::CONTENT_LENGTH), "10");
    assert_eq!(header(&response, header::CONTENT_TYPE), "image/png");
    assert_eq!(body(response).await, content()[..10]);

    let tail = get(&app, &url("0-out.png"), &[("range", "bytes=199990-")]).await;
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header(&tail, header::CONTENT_RANGE),
        "bytes 199990-199999/200000"
    );
    assert_eq!(body(tail).await, content()[199_990..]);
    shutdown.cancel();
}

#[tokio::test]
async fn a_range_outside_the_file_gets_416_as_a_json_error_with_the_size() {
    let data = tempfile::tempdir().expect("a temp dir");
    let (app, shutdown) = launch(data.path(), true);
    keep(data.path(), "0-out.png", &content());

    let response = get(&app, &url("0-out.png"), &[("range", "bytes=300000-300009")]).await;
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&response, header::CONTENT_RANGE), "bytes */200000");
    let error: Value = serde_json::from_slice(&body(response).await).expect("a JSON body");
    assert_eq!(error["error"]["code"], "range_not_satisfiable", "{error}");
    shutdown.cancel();
}

#[tokio::test]
async fn a_conditional_get_with_a_current_validator_gets_304_without_the_bytes() {
    let data = tempfile::tempdir().expect("a temp dir");
    let (app, shutdown) = launch(data.path(), true);
    keep(data.path(), "0-out.png", &content());
    let first = get(&app, &url("0-out.png"), &[]).await;
    let etag = header(&first, header::ETAG).to_owned();
    let modified = header(&first, header::LAST_MODIFIED).to_owned();

    for (name, value) in [("if-none-match", &etag), ("if-modified-since", &modified)] {
        let again = get(&app, &url("0-out.png"), &[(name, value)]).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{name}");
        assert_eq!(header(&again, header::ETAG), etag, "{name}");
        assert!(body(again).await.is_empty(), "{name}");
    }
    let stale = get(&app, &url("0-out.png"), &[("if-none-match", "\"other\"")]).await;
    assert_eq!(stale.status(), StatusCode::OK, "another tag gets the file");
    assert_eq!(body(stale).await, content());
    shutdown.cancel();
}

#[tokio::test]
async fn a_name_that_leads_to_no_kept_file_gets_the_json_not_found() {
    let data = tempfile::tempdir().expect("a temp dir");
    let (app, shutdown) = launch(data.path(), true);
    keep(data.path(), "0-out.png", &content());
    std::fs::create_dir_all(
        data.path()
            .join("files")
            .join(TASK.to_string())
            .join("1/2-dir"),
    )
    .expect("a folder among the files");
    std::fs::write(data.path().join("files/secret.txt"), b"not a kept file").expect("a file");

    for bad in [
        url("nope.png"),
        url("2-dir"),
        url("..%2F..%2Fsecret.txt"),
        url("..%2F..%2F..%2Fdb"),
        url(".hidden"),
        format!("/v1/files/{TASK}/x/0-out.png"),
        format!("/v1/files/{TASK}/2/0-out.png"),
        "/v1/files/tsk_0/1/0-out.png".to_owned(),
    ] {
        let response = get(&app, &bad, &[]).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{bad}");
        let error: Value = serde_json::from_slice(&body(response).await).expect("a JSON body");
        assert_eq!(error["error"]["code"], "not_found", "{bad}: {error}");
        assert_eq!(error["error"]["message"], "no such file", "{bad}: {error}");
    }
    shutdown.cancel();
}

#[tokio::test]
async fn without_keep_no_file_is_served_even_if_one_is_on_disk() {
    let data = tempfile::tempdir().expect("a temp dir");
    let (app, shutdown) = launch(data.path(), false);
    keep(data.path(), "0-out.png", &content());

    let response = get(&app, &url("0-out.png"), &[]).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let error: Value = serde_json::from_slice(&body(response).await).expect("a JSON body");
    assert_eq!(error["error"]["code"], "not_found", "{error}");
    shutdown.cancel();
}
