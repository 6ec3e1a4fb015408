//! End-to-end test of the example frontend (examples/frontend/index.html) in a real headless
//! Chromium, driven by examples/frontend/e2e/drive.js (Node + playwright-core) against the
//! real binary and the simulated Replicate: served from its folder by a tiny file server (with
//! CORS on the engine), and as `stepwise serve --simulate` serves it itself at `/example/`.
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`), `node`, and `npm ci --prefix
//! examples/frontend/e2e`. Without them the tests print why and pass, unless `CI` is set:
//! then a missing tool is a failure.

use crate::support::browser::*;
use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one scenario may take in the browser (drive.js has its own, shorter, deadlines).
const SCENARIO_DEADLINE: Duration = Duration::from_secs(120);

fn frontend_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/frontend")
}

/// A tiny static file server for examples/frontend/: GET of a file directly in that folder
/// (`/` is index.html), nothing else. One request per connection.
async fn serve_frontend() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let root = frontend_dir();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let root = root.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 64 * 1024 {
                    match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await
                    {
                        Ok(Ok(n)) if n > 0 => request.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&request);
                let mut parts = head.lines().next().unwrap_or("").split_whitespace();
                let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let path = target.split(['?', '#']).next().unwrap_or("");
                let name = match path.trim_start_matches('/') {
                    "" => "index.html",
                    name => name,
                };
                let file = (method == "GET" || method == "HEAD")
                    .then_some(name)
                    .filter(|n| !n.contains('/') && !n.contains('\\') && !n.starts_with('.'))
                    .and_then(|n| std::fs::read(root.join(n)).ok());
                let (status, content_type, body) = match file {
                    Some(body) => {
                        let content_type = match name.rsplit('.').next() {
                            Some("html") => "text/html; charset=utf-8",
                            Some("js") => "text/javascript; charset=utf-8",
                            Some("css") => "text/css; charset=utf-8",
                            Some("png") => "image/png",
                            Some("json") => "application/json",
                            _ => "application/octet-stream",
                        };
                        ("200 OK", content_type, body)
                    }
                    None => (
                        "404 Not Found",
                        "text/plain; charset=utf-8",
                        b"not found\n".to_vec(),
                    ),
                };
                let header = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
                     Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(header.as_bytes()).await;
                if method != "HEAD" {
                    let _ = stream.write_all(&body).await;
                }
                let _ = stream.shutdown().await;
            });
        }
    });
    url
}

/// Starts the simulator, the engine (allowing the page's origin) and the page's server,
/// then runs one drive.js scenario; panics with drive.js's report when it fails.
async fn run_scenario(scenario: &str, extra_args: &[&str]) -> String {
    // Light: a headless Chromium on one page takes under a core, and drive.js waits with
    // deadlines of its own.
    let env = Env::start(Load::Light, 300).await;
    let page = serve_frontend().await;
    let extra = format!("cors_origins = [\"{page}\"]");
    let app = env.spawn(&(env.config(&extra) + SLOW_TRYON));
    let page = format!("{page}/index.html");
    drive(scenario, &page, &app.url, extra_args, env.path(), || {
        app.log()
    })
    .await
}

/// Runs drive.js's `scenario` on `page` against the engine at `api`, writing its output in
/// `dir`; panics with its report and the tail of `log()` when it fails.
async fn drive(
    scenario: &str,
    page: &str,
    api: &str,
    extra_args: &[&str],
    dir: &Path,
    log: impl Fn() -> String,
) -> String {
    let mut args: Vec<String> = vec![
        frontend_dir().join("e2e/drive.js").display().to_string(),
        "--scenario".into(),
        scenario.into(),
        "--page".into(),
        page.into(),
        "--api".into(),
        api.into(),
        "--chromium".into(),
        chromium_path().display().to_string(),
    ];
    args.extend(extra_args.iter().map(|s| s.to_string()));
    let out_path = dir.join("drive.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new("node")
        .args(&args)
        .current_dir(frontend_dir().join("e2e"))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("node starts");
    // The engine, the simulator and the page's server run on this runtime: wait off it.
    let status = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + SCENARIO_DEADLINE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    match status {
        Some(status) if status.success() => {
            println!("{output}");
            output
        }
        Some(status) => panic!(
            "scenario {scenario} failed ({status}):\n{output}\n--- engine log (tail) ---\n{}",
            tail(&log(), 40)
        ),
        None => {
            panic!("scenario {scenario} did not finish within {SCENARIO_DEADLINE:?}:\n{output}")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_follows_a_task_live_until_every_step_succeeded_in_order() {
    if !tools_present("frontend", "live") {
        return;
    }
    // The committed screenshot is refreshed only on request, so a test run leaves the tree as
    // it was: STEPWISE_UPDATE_SCREENSHOTS=1 cargo test --workspace --test e2e frontend
    let scratch = tempfile::tempdir().unwrap();
    let screenshot = match std::env::var_os("STEPWISE_UPDATE_SCREENSHOTS") {
        Some(_) => frontend_dir().join("e2e/screenshot.png"),
        None => scratch.path().join("screenshot.png"),
    };
    let output = run_scenario("live", &["--screenshot", &screenshot.display().to_string()]).await;
    assert!(output.contains(r#""succeededOrder":[1,2,3]"#), "{output}");
    assert!(
        std::fs::metadata(&screenshot).is_ok_and(|m| m.len() > 10_000),
        "a real screenshot was taken"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_cancels_a_running_task() {
    if !tools_present("frontend", "cancel") {
        return;
    }
    let output = run_scenario("cancel", &["--workflow", "slowtryon"]).await;
    assert!(output.contains(r#""ok":true"#), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_event_source_the_page_polls_until_the_task_succeeded() {
    if !tools_present("frontend", "polling") {
        return;
    }
    let output = run_scenario("polling", &["--workflow", "slowtryon"]).await;
    assert!(output.contains(r#""mode":"polling""#), "{output}");
}

/// `stepwise serve --simulate` with the repository's config.toml (on port 0, data dir in a
/// temp dir), killed on drop.
struct Simulated {
    child: std::process::Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Simulated {
    fn start() -> Simulated {
        let dir = tempfile::tempdir().unwrap();
        let config = std::fs::read_to_string(repo_root().join("config.toml"))
            .unwrap()
            .replace(r#"listen = "127.0.0.1:8080""#, r#"listen = "127.0.0.1:0""#);
        assert!(
            config.contains(r#"listen = "127.0.0.1:0""#),
            "config.toml's listen line moved"
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("engine.log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_stepwise"))
            .args(["serve", "--simulate", "--config", "config.toml"])
            .current_dir(dir.path())
            .env("STEPWISE_LOG", "info")
            .env_remove("REPLICATE_API_TOKEN")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("the stepwise binary starts");
        let rx = announced_url(&mut child);
        let mut server = Simulated {
            child,
            url: String::new(),
            dir,
        };
        server.url = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("stepwise did not start:\n{}", server.log()));
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("engine.log")).unwrap_or_default()
    }
}

impl Drop for Simulated {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_simulate_serves_the_page_at_example_on_its_own_origin() {
    if !tools_present("frontend", "served") {
        return;
    }
    let _turn = turn(Load::Light).await;
    let server = Simulated::start();
    let page = format!("{}/example/", server.url);
    // `serve --simulate` runs each prediction for 2.5 s: three steps take about 8 s.
    let args = ["--timeout-ms", "90000"];
    let output = drive(
        "served",
        &page,
        &server.url,
        &args,
        server.dir.path(),
        || server.log(),
    )
    .await;
    assert!(
        output.contains(r#""sizes":[[320,400],[320,400],[320,400]]"#),
        "{output}"
    );
}

/// No browser needed: `serve --simulate` answers `/example/` with the page (and redirects
/// `/example` there); a plain `serve` has no such route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_page_is_served_only_under_simulate() {
    let env = Env::start(Load::Light, 50).await;
    let plain = env.spawn(&env.config(""));
    let simulated = Simulated::start();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap() }
    };

    let page = get(format!("{}/example/", simulated.url)).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.unwrap();
    assert_eq!(
        html,
        std::fs::read_to_string(frontend_dir().join("index.html")).unwrap()
    );
    let bare = get(format!("{}/example", simulated.url)).await;
    assert_eq!(bare.status(), 308);
    assert_eq!(bare.headers()["location"], "/example/");

    let absent = get(format!("{}/example/", plain.url)).await;
    assert_eq!(absent.status(), 404, "a plain serve has no example page");
}
