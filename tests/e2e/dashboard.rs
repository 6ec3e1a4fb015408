//! End-to-end test of the built-in dashboard (server/dashboard/index.html, served at `GET /`)
//! in a real headless Chromium, driven by server/dashboard/e2e/drive.js (Node +
//! playwright-core, reused from examples/frontend/e2e) against the real binary and the
//! simulated Replicate.
//!
//! drive.js asks this harness, over its stdout/stdin (`ASK {json}` / one JSON line back), to
//! do what the page must not: start tasks with the API token, and switch the simulator's model
//! from failing to working before the page retries.
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`), `node`, and `npm ci --prefix
//! examples/frontend/e2e`. Without them the tests print why and pass, unless `CI` is set:
//! then a missing tool is a failure. `STEPWISE_UPDATE_SCREENSHOTS=1` refreshes
//! docs/dashboard-list.png, docs/dashboard-task.png and docs/dashboard-pipeline.png.

use crate::support::browser::*;
use crate::support::lookbook::LOOKBOOK;
use crate::support::*;
use replicate_sim::{ModelBehavior, SimHandle};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long one scenario may take (drive.js has its own, shorter, deadlines per wait).
const SCENARIO_DEADLINE: Duration = Duration::from_secs(60);
const TOKEN: &str = "admin-secret";
/// A real-looking long error (with an unbroken path), to check the list does not overflow.
const LONG_ERROR: &str = "CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 23.69 GiB total \
    capacity; 18.41 GiB already allocated; 3.12 GiB free; 19.20 GiB reserved in total by PyTorch) \
    at /root/.pyenv/versions/3.11.9/lib/python3.11/site-packages/torch/nn/modules/module.py:1532 \
    If reserved memory is >> allocated memory try setting max_split_size_mb to avoid \
    fragmentation. See documentation for Memory Management and PYTORCH_CUDA_ALLOC_CONF";

/// The body of a task of `kind`, as drive.js asks for it (`tag` goes into its params).
fn start_body(kind: &str, tag: Option<&str>) -> Option<Value> {
    Some(match kind {
        "tryon" => tryon_body(tag.unwrap_or("dash"), 3),
        "slow" => {
            let mut body = tryon_body(tag.unwrap_or("dash-slow"), 2);
            body["workflow"] = json!("slowtryon");
            body
        }
        "failing" => json!({"workflow": "failing", "items": [{"x": "retry me"}]}),
        "lookbook" => lookbook_body("lookbook", tag.unwrap_or("dash-stages"), 2, 1),
        _ => return None,
    })
}

/// Answers one `ASK` from drive.js.
async fn answer(app: &App, sim: &SimHandle, token: Option<&str>, request: &Value) -> Value {
    match request["op"].as_str() {
        Some("start") => {
            let kind = request["kind"].as_str().unwrap_or("");
            let Some(body) = start_body(kind, request["tag"].as_str()) else {
                return json!({"error": format!("unknown kind in {request}")});
            };
            let mut post = app.http.post(format!("{}/v1/tasks", app.url)).json(&body);
            if let Some(token) = token {
                post = post.bearer_auth(token);
            }
            let response = post.send().await.unwrap();
            let status = response.status().as_u16();
            let task: Value = response.json().await.unwrap_or(Value::Null);
            if status != 201 {
                return json!({"error": format!("start answered {status}: {task}")});
            }
            json!({"id": task["id"]})
        }
        Some("heal") => {
            let model = request["model"].as_str().unwrap_or("test/failing");
            sim.set_model(
                model,
                ModelBehavior {
                    starting_ms: 50,
                    processing_ms: 100,
                    ..Default::default()
                },
            );
            json!({"ok": true})
        }
        _ => json!({"error": format!("unknown request {request}")}),
    }
}

/// Starts the simulator and the engine (with `server_extra` in its [server] section and
/// `workflows` added to the test config's), runs one drive.js scenario against `GET /`,
/// answering its requests; returns its output, or panics with it (and the engine log's tail)
/// when the scenario failed.
async fn run_scenario(
    scenario: &str,
    server_extra: &str,
    workflows: &str,
    token: Option<&str>,
    screenshots: Option<&Path>,
) -> String {
    // Try-on predictions take ~1.9 s each, so a running step is visible for a while;
    // `test/failing` fails fast (the retry scenario does not need to wait for it).
    // Light: a headless Chromium on one page takes under a core, and drive.js waits with
    // deadlines of its own.
    let env = Env::start(Load::Light, 1500).await;
    env.sim.set_model(
        "test/failing",
        ModelBehavior {
            starting_ms: 50,
            processing_ms: 150,
            failure_rate: 1.0,
            failure_message: LONG_ERROR.into(),
            ..Default::default()
        },
    );
    let app = env.spawn(&(env.config(server_extra) + SLOW_TRYON + workflows));

    let mut args: Vec<String> = vec![
        repo_root()
            .join("server/dashboard/e2e/drive.js")
            .display()
            .to_string(),
        "--scenario".into(),
        scenario.into(),
        "--url".into(),
        format!("{}/", app.url),
        "--chromium".into(),
        chromium_path().display().to_string(),
    ];
    if let Some(token) = token {
        args.extend(["--token".into(), token.into()]);
    }
    if let Some(dir) = screenshots {
        args.extend(["--screenshots".into(), dir.display().to_string()]);
    }
    let mut child = Command::new("node")
        .args(&args)
        .env("NODE_PATH", node_modules())
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let mut stdin = child.stdin.take().unwrap();
    // stdout and stderr lines, in one channel; the reader threads end at EOF.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(bool, String)>();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let tx_err = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send((true, line));
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx_err.send((false, line));
        }
    });

    let deadline = tokio::time::Instant::now() + SCENARIO_DEADLINE;
    let mut output = String::new();
    let mut timed_out = false;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((from_stdout, line))) => {
                if let Some(request) = line.strip_prefix("ASK ").filter(|_| from_stdout) {
                    let request: Value = serde_json::from_str(request).unwrap_or(Value::Null);
                    let reply = answer(&app, &env.sim, token, &request).await;
                    output.push_str(&format!("ASK {request} -> {reply}\n"));
                    // drive.js may have exited already (it failed): its output says why.
                    let _ = writeln!(stdin, "{reply}").and_then(|()| stdin.flush());
                } else {
                    output.push_str(&line);
                    output.push('\n');
                }
            }
            Ok(None) => break,
            Err(_) => {
                timed_out = true;
                let _ = child.kill();
                break;
            }
        }
    }
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    if timed_out {
        panic!("scenario {scenario} did not finish within {SCENARIO_DEADLINE:?}:\n{output}");
    }
    if !status.success() {
        panic!(
            "scenario {scenario} failed ({status}):\n{output}\n--- engine log (tail) ---\n{}",
            tail(&app.log(), 40)
        );
    }
    println!("{output}");
    output
}

/// Where a scenario saves its screenshots: docs/ on request, else `scratch`. The committed
/// screenshots are refreshed only on request, so a test run leaves the tree as it was:
/// STEPWISE_UPDATE_SCREENSHOTS=1 cargo test --workspace --test e2e dashboard
fn screenshots_dir(scratch: &tempfile::TempDir) -> std::path::PathBuf {
    match std::env::var_os("STEPWISE_UPDATE_SCREENSHOTS") {
        Some(_) => repo_root().join("docs"),
        None => scratch.path().to_owned(),
    }
}

/// Whether `dir/name` is a real screenshot (not an empty or missing file).
fn assert_screenshot(dir: &Path, name: &str) {
    let size = std::fs::metadata(dir.join(name))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(size > 20_000, "{name} is a real screenshot ({size} bytes)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_the_dashboard_logs_in_follows_cancels_and_retries_tasks() {
    if !tools_present("dashboard", "protected") {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let shots = screenshots_dir(&scratch);
    let extra = format!("api_token = \"{TOKEN}\"");
    let output = run_scenario("protected", &extra, "", Some(TOKEN), Some(&shots)).await;
    assert!(
        output.contains(r#""scenario":"protected","ok":true"#),
        "{output}"
    );
    for name in ["dashboard-task.png", "dashboard-list.png"] {
        assert_screenshot(&shots, name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_dashboard_needs_no_login_and_cancels() {
    if !tools_present("dashboard", "open") {
        return;
    }
    let output = run_scenario("open", "", "", None, None).await;
    assert!(
        output.contains(r#""scenario":"open","ok":true"#),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_s_steps_show_under_their_stages_with_parallel_branches_side_by_side() {
    if !tools_present("dashboard", "pipeline") {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let shots = screenshots_dir(&scratch);
    let output = run_scenario("pipeline", "", LOOKBOOK, None, Some(&shots)).await;
    assert!(
        output.contains(r#""scenario":"pipeline","ok":true"#),
        "{output}"
    );
    assert_screenshot(&shots, "dashboard-pipeline.png");
}
