//! Smoke test of `stepwise-bench idle` and `stepwise-bench recover`: the real binary runs
//! both scenarios on a few hundred tasks (the engine as its own child process, `kill -9`ed and
//! restarted for `recover`) and prints JSON whose figures must be complete and sane. No timing
//! is asserted: CI machines vary too much.

use serde_json::Value;
use std::process::Command;

fn bench(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_stepwise-bench"))
        .args(args)
        .arg("--json")
        .env("STEPWISE_LOG", "warn")
        .output()
        .expect("the stepwise-bench binary runs");
    assert!(
        output.status.success(),
        "bench {args:?} failed: {}\nstdout: {}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "bench {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[test]
fn idle_reports_memory_and_cpu_of_waiting_tasks() {
    // The child engine from an explicit binary (here this very one, which serves the engine
    // as `stepwise serve` does); `recover` below uses the default.
    let report = bench(&[
        "--stepwise-bin",
        env!("CARGO_BIN_EXE_stepwise-bench"),
        "idle",
        "--tasks",
        "200",
        "--steps",
        "2",
        "--settle-seconds",
        "0.5",
        "--idle-seconds",
        "1",
    ]);
    assert_eq!(report["scenario"], "idle");
    let results = report["results"].as_array().expect("results");
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(r["tasks"], 200);
    assert_eq!(r["steps"], 2);
    // Only step 1 of each task runs: its prediction takes a day.
    assert_eq!(r["predictions_created"], 200);
    assert_eq!(r["unfinished"], 200);
    assert!(r["baseline"]["rss"].as_u64().unwrap() > 0);
    assert!(r["waiting"]["rss"].as_u64().unwrap() > r["baseline"]["rss"].as_u64().unwrap());
    assert!(r["bytes_per_task"].as_f64().unwrap() > 0.0);
    let cpu = r["idle_cpu_percent"].as_f64().unwrap();
    assert!((0.0..=100.0 * 64.0).contains(&cpu), "idle CPU {cpu}");
    assert!(r["idle_seconds"].as_f64().unwrap() >= 1.0);
    assert!(r["start_seconds"].as_f64().unwrap() > 0.0);
    // Polling is slow on purpose: no status check may fall inside the idle window.
    assert_eq!(r["status_checks_during_idle"], 0);
    assert!(r["data_dir_bytes"].as_u64().unwrap() > 0);
    assert!(report["targets"]["bytes_per_task_met"].is_boolean());
}

#[test]
fn recover_resumes_every_task_after_kill_9() {
    let report = bench(&["recover", "--tasks", "200"]);
    assert_eq!(report["scenario"], "recover");
    let results = report["results"].as_array().expect("results");
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(r["tasks"], 200);
    assert_eq!(r["resumed_unfinished"], 200);
    // The restart checks every running prediction once.
    assert!(r["burst_checks"].as_u64().unwrap() >= 200);
    let ms = |key: &str| r[key].as_f64().unwrap_or_else(|| panic!("{key} missing"));
    assert!(ms("listening_ms") > 0.0);
    assert!(ms("first_answer_ms") >= ms("listening_ms"));
    assert!(ms("resumed_ms") >= ms("first_answer_ms"));
    assert!(ms("status_ok_ms") > 0.0);
    assert!(ms("burst_done_ms") > 0.0);
    assert!(r["status_during_recovery"]["count"].as_u64().is_some());
    assert!(r["rss_after_resumed"].as_u64().unwrap() > 0);
    assert!(r["data_dir_bytes"].as_u64().unwrap() > 0);
}
