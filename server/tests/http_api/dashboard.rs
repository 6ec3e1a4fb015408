//! The built-in dashboard as served: the page at `/` and every file it loads from
//! `/dashboard/{file}` answer 200 with their content type and headers, without the API token;
//! the page holds no inline script (its CSP allows only its own files); any other name is a
//! 404 JSON error.

use crate::support::*;
use axum::http::StatusCode;

/// The files the page must load, in order (styles first).
const EXPECTED: [&str; 8] = [
    "dashboard.css",
    "api.js",
    "list.js",
    "task.js",
    "steps.js",
    "timeline.js",
    "live.js",
    "main.js",
];

fn header<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

/// The values of `attr="dashboard/…"` in the page, in order.
fn referenced(page: &str, attr: &str) -> Vec<String> {
    let needle = format!("{attr}=\"dashboard/");
    page.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &page[at + needle.len()..];
            rest[..rest.find('"').expect("a closing quote")].to_owned()
        })
        .collect()
}

fn assert_embedded_headers(reply: &Reply, content_type: &str) {
    assert_eq!(header(reply, "content-type"), content_type);
    assert_eq!(header(reply, "cache-control"), "no-cache");
    assert_eq!(header(reply, "x-content-type-options"), "nosniff");
    assert_eq!(header(reply, "x-frame-options"), "DENY");
    let csp = header(reply, "content-security-policy");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_files_are_served_without_the_token() {
    // With a token: the page and its files are open anyway (they hold no data).
    let app = spawn_app_with_token("s3cret").await;
    let page = app.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_embedded_headers(&page, "text/html; charset=utf-8");
    let html = std::str::from_utf8(&page.body).unwrap();

    let mut files = referenced(html, "href");
    files.extend(referenced(html, "src"));
    assert_eq!(files, EXPECTED, "the page loads these files, in this order");
    // Nothing inline for the CSP to block: every <script> has a src, no on…= handler.
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script src=").count(),
        "an inline <script> in the page"
    );
    assert!(!html.contains("<style"), "an inline <style> in the page");
    let lower = html.to_ascii_lowercase();
    for handler in [
        " onclick=",
        " onload=",
        " onchange=",
        " onsubmit=",
        " oninput=",
    ] {
        assert!(!lower.contains(handler), "an inline {handler} handler");
    }

    for file in EXPECTED {
        let reply = app.get(&format!("/dashboard/{file}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{file}");
        let content_type = if file.ends_with(".css") {
            "text/css; charset=utf-8"
        } else {
            "text/javascript; charset=utf-8"
        };
        assert_embedded_headers(&reply, content_type);
        assert!(reply.body.len() > 100, "{file} is nearly empty");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_dashboard_file_is_a_json_404() {
    let app = spawn_app().await;
    for path in [
        "/dashboard/nope.js",
        "/dashboard/index.html",
        "/dashboard/%2e%2e%2fCargo.toml",
        "/dashboard/%FF",
        "/dashboard/",
        "/dashboard",
    ] {
        let reply = app.get(path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.json()["error"]["code"], "not_found", "{path}");
        assert!(reply.json()["error"]["message"].is_string(), "{path}");
    }
    // Only GET: another method on a file is refused as on every route.
    let post = app
        .post_json("/dashboard/api.js", &serde_json::json!({}))
        .await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(post.json()["error"]["code"].is_string());
}
