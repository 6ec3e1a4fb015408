//! The operator CLI against a running server, and `inspect` on a stopped engine's data dir.

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
    assert!(
        out.lines().last().unwrap().contains("succeeded"),
        "watch ends at the end:\n{out}"
    );
    assert!(out.contains("step_succeeded"), "{out}");

    let (ok, out, _) = stepwise(&["tasks", "list", "--url", &url]);
    assert!(ok);
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

    assert!(app.terminate().success());
    let data = env.path().join("data");
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
    assert!(ok && out.contains("StepSucceeded"), "{out}");
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
