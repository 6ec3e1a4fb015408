//! The operator CLI against a running server, and `inspect` on a stopped engine's data dir.

use crate::support::lookbook::*;
use crate::support::*;
use serde_json::{json, Value};
use std::process::Command;

fn stepwise(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stepwise"))
        .args(args)
        .env_remove("STEPWISE_API_TOKEN")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_commands_list_show_watch_cancel_and_retry() {
    let (env, mut app) = spawn_app(Load::Light, 100).await;
    let url = app.url.clone();
    let done = app.start_ok(&tryon_body("cli", 2)).await;

    let (ok, out, err) = tokio::task::spawn_blocking({
        let (url, done) = (url.clone(), done.clone());
        move || stepwise(&["tasks", "watch", &done, "--url", &url])
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with(&format!("task {done}  workflow tryon  2 steps")),
        "a header first:\n{out}"
    );
    for step in 1..=2 {
        let told = format!("step {step}/2 succeeded: ");
        assert_eq!(
            lines.iter().filter(|l| l.starts_with(&told)).count(),
            1,
            "each step once, with its output:\n{out}"
        );
    }
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("task succeeded (2/2): output "),
        "watch ends with the output:\n{out}"
    );

    let (ok, out, _) = stepwise(&["tasks", "list", "--url", &url]);
    assert!(ok);
    let (ok, out_q, _) = stepwise(&["tasks", "list", "--search", "CLI", "--url", &url]);
    assert!(
        ok && out_q.contains(&done),
        "search finds it by params:\n{out_q}"
    );
    let (ok, out_none, _) = stepwise(&["tasks", "list", "--q", "zzz", "--url", &url]);
    assert!(ok && !out_none.contains(&done), "{out_none}");
    assert!(
        out.starts_with("ID") && out.contains(&done) && out.contains("succeeded  2/2"),
        "{out}"
    );
    let (ok, out, _) = stepwise(&[
        "tasks", "list", "--status", "failed", "--json", "--url", &url,
    ]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["tasks"],
        json!([])
    );

    let (ok, out, _) = stepwise(&["tasks", "show", &done, "--url", &url]);
    assert!(ok);
    assert!(
        out.contains("history")
            && out.contains("task_created")
            && out.contains("prediction_created"),
        "{out}"
    );
    let (ok, out, _) = stepwise(&["tasks", "show", &done, "--json", "--url", &url]);
    assert!(ok);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["task"]["id"], done.as_str());
    assert_eq!(shown["journal"][0]["kind"], "task_created");

    let slow = app
        .start_ok(&json!({"workflow": "slow", "items": [{"x": 1}]}))
        .await;
    let (ok, out, _) = stepwise(&["tasks", "cancel", &slow, "--url", &url]);
    assert!(ok && out.contains("canceled"), "{out}");
    let (ok, _, err) = stepwise(&["tasks", "retry", &done, "--url", &url]);
    assert!(!ok, "retrying a succeeded task is refused");
    assert!(err.contains("conflict"), "{err}");
    let (ok, _, err) = stepwise(&["tasks", "show", "tsk_nope", "--url", &url]);
    assert!(!ok && err.contains("not_found"), "{err}");

    // Paging: one task a page, the cursor printed and taken back.
    let (ok, first, _) = stepwise(&["tasks", "list", "--limit", "1", "--url", &url]);
    assert!(ok, "{first}");
    let cursor = first
        .lines()
        .find_map(|l| l.strip_prefix("more: --cursor "))
        .unwrap_or_else(|| panic!("a next cursor:\n{first}"));
    let (ok, second, err) = stepwise(&[
        "tasks", "list", "--limit", "1", "--cursor", cursor, "--url", &url,
    ]);
    assert!(ok && second.contains(&done), "{second}{err}");
    assert!(
        !first.contains(&done),
        "newest first: the slow task, then this one"
    );

    // The server holds the data dir: inspect says so in one line, at once.
    let data = env.path().join("data");
    let (ok, _, err) = stepwise(&["inspect", "--data-dir", data.to_str().unwrap()]);
    assert!(!ok, "{err}");
    assert!(
        err.trim()
            == format!(
                "stepwise: the data dir {} is in use by a running server; stop it or query the API",
                data.display()
            ),
        "{err}"
    );

    assert!(app.terminate().success());
    // By default, the data dir of the config (as `serve` reads it).
    let config = env.path().join("config.toml");
    let (ok, out, err) = stepwise(&["inspect", "--config", config.to_str().unwrap()]);
    assert!(ok && out.contains("succeeded  1"), "{out}{err}");
    let (ok, out, err) = stepwise(&["inspect", "--data-dir", data.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("succeeded  1") && out.contains("canceled   1"),
        "{out}"
    );
    let (ok, out, _) = stepwise(&[
        "inspect",
        "--data-dir",
        data.to_str().unwrap(),
        "--task",
        &done,
    ]);
    assert!(ok, "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("step_succeeded") && l.contains("output=")),
        "readable events:\n{out}"
    );
    assert!(!out.contains("StepSucceeded {"), "not Rust's Debug:\n{out}");
    let (ok, _, err) = stepwise(&["inspect", "--data-dir", env.path().to_str().unwrap()]);
    assert!(!ok && err.contains("not a stepwise data dir"), "{err}");
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[server]\napi_token = \"hunter2\"\n[workflows.w]\nmodel = \"a/b\"\n",
    )
    .unwrap();
    let (ok, out, _) = stepwise(&["check-config", path.to_str().unwrap()]);
    assert!(ok);
    assert!(
        out.contains("api_token = \"***\"") && !out.contains("hunter2"),
        "{out}"
    );
    assert!(
        out.contains("poll_initial_ms = 1000") && out.contains("[workflows.w]"),
        "defaults are shown: {out}"
    );
    std::fs::write(&path, "[workflows.w]\nmax_items = 1\n").unwrap();
    let (ok, _, err) = stepwise(&["check-config", path.to_str().unwrap()]);
    assert!(
        !ok && err.contains("workflows.w: neither model nor version"),
        "{err}"
    );
}

/// Runs `stepwise args` with its standard output closed from the start: every write fails
/// with a broken pipe, as when `| head` has read enough.
fn stepwise_into_a_closed_pipe(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stepwise"))
        .args(args)
        .env_remove("STEPWISE_API_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_ends_the_commands_quietly() {
    let (env, mut app) = spawn_app(Load::Light, 30).await;
    let url = app.url.clone();
    let id = app.start_ok(&tryon_body("pipe", 2)).await;
    app.wait_until_finished(&id, std::time::Duration::from_secs(30))
        .await;
    let data = env.path().join("data");
    let data = data.to_str().unwrap();
    let commands: [&[&str]; 4] = [
        &["tasks", "list", "--url", &url],
        &["tasks", "show", &id, "--url", &url],
        &["tasks", "watch", &id, "--url", &url],
        &["tasks", "show", &id, "--json", "--url", &url],
    ];
    for args in commands {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let (status, err) = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            stepwise_into_a_closed_pipe(&args)
        })
        .await
        .unwrap();
        assert!(status.success() && err.is_empty(), "{status:?}: {err}");
    }
    assert!(app.terminate().success());
    for args in [
        vec!["inspect", "--data-dir", data],
        vec!["inspect", "--data-dir", data, "--task", &id],
    ] {
        let (status, err) = stepwise_into_a_closed_pipe(&args);
        assert!(
            status.success() && err.is_empty(),
            "{args:?} {status:?}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_show_and_watch_put_a_pipeline_s_steps_under_their_stages() {
    let env = Env::start(Load::Light, 100).await;
    let app = env.spawn(&(env.config("") + LOOKBOOK));
    let url = app.url.clone();
    let id = app
        .start_ok(&lookbook_body("lookbook", "cli-stages", 2, 1))
        .await;
    let task = app
        .wait_until_finished(&id, std::time::Duration::from_secs(30))
        .await;
    assert_eq!(task["status"], "succeeded", "{task:#}");
    assert_eq!(task["stages"], lookbook_stages(), "{task:#}");

    let (ok, out, err) = stepwise(&["tasks", "show", &id, "--url", &url]);
    assert!(ok, "{err}");
    let table: Vec<&str> = out.lines().take_while(|l| !l.is_empty()).skip(2).collect();
    assert!(
        table[0].starts_with("STEP  ITEM  STATUS     ATTEMPT  PREDICTION"),
        "a pipeline's steps show their item:\n{out}"
    );
    // Each heading, then its steps: (step, item) as the table's first two columns.
    let shown: Vec<(String, Option<(String, String)>)> = table[1..]
        .iter()
        .map(|line| match line.strip_prefix("stage ") {
            Some(_) => (line.to_string(), None),
            None => {
                let mut cells = line.split_whitespace();
                let mut next = || cells.next().unwrap_or_default().to_owned();
                (String::new(), Some((next(), next())))
            }
        })
        .collect();
    let row = |step: &str, item: &str| (String::new(), Some((step.into(), item.into())));
    let heading = |text: &str| (text.to_owned(), None);
    assert_eq!(
        shown,
        vec![
            heading("stage 1/3 cutout: test/rembg, once, 1/1 succeeded"),
            row("1", "-"),
            heading("stage 2/3 tryon: test/tryon, each item, chained, 2/2 succeeded"),
            row("2", "0"),
            row("3", "1"),
            heading(
                "stage 3/3 variants: test/variant, each item, in parallel (at most 2 at once), \
                 2/2 succeeded"
            ),
            row("4", "0"),
            row("5", "1"),
        ],
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("5     1     succeeded")),
        "{out}"
    );

    let (ok, out, err) = tokio::task::spawn_blocking({
        let (url, id) = (url.clone(), id.clone());
        move || stepwise(&["tasks", "watch", &id, "--url", &url])
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    for told in [
        "step 1/5 (cutout) succeeded: ",
        "step 3/5 (tryon item 1) succeeded: ",
        "step 4/5 (variants item 0) succeeded: ",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(told)),
            "watch tells {told:?}:\n{out}"
        );
    }
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.starts_with("task succeeded (5/5): output ")),
        "{out}"
    );
}
