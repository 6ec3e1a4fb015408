//! Smoke test of `stepwise-bench start|status|e2e|transitions` (`idle` and `recover` are in
//! `bench_idle_recover.rs`): the real binary at tiny sizes with `--json`. It checks that each
//! scenario completes and reports sane, consistent numbers; it asserts nothing about speed
//! (CI machines vary too much for that).

use serde_json::Value;
use std::process::Command;

fn bench(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_stepwise-bench"))
        .args(args)
        .arg("--json")
        .env("STEPWISE_LOG", "error")
        .output()
        .expect("the stepwise-bench binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "bench {args:?} failed: {stderr}\n{stdout}"
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("bench {args:?} printed no JSON ({e}): {stdout}"))
}

/// A load result: `requests` done, no errors, positive throughput, ordered percentiles.
fn check_load(what: &str, load: &Value, requests: u64) {
    assert_eq!(load["requests"], requests, "{what}: {load}");
    assert_eq!(load["errors"], 0, "{what}: {load}");
    assert!(load["per_second"].as_f64().unwrap() > 0.0, "{what}: {load}");
    check_latency(what, &load["latency"]);
    assert_eq!(load["latency"]["count"], requests, "{what}: {load}");
}

fn check_latency(what: &str, latency: &Value) {
    let at = |key: &str| {
        latency[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{what}: no {key} in {latency}"))
    };
    assert!(at("p50_ms") >= 0.0, "{what}: {latency}");
    assert!(
        at("p50_ms") <= at("p90_ms")
            && at("p90_ms") <= at("p99_ms")
            && at("p99_ms") <= at("max_ms"),
        "{what}: {latency}"
    );
}

fn positive(value: &Value, what: &str) -> f64 {
    let number = value
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {value}"));
    assert!(number.is_finite() && number > 0.0, "{what} = {number}");
    number
}

#[test]
fn start_scenario_reports_the_engine_and_its_three_references() {
    let report = bench(&[
        "start",
        "--requests",
        "200",
        "--clients",
        "4",
        "--warmup",
        "20",
        "--fsync-seconds",
        "0.2",
    ]);
    assert_eq!(report["scenario"], "start");
    check_load("engine", &report["engine"], 200);
    // Each series runs in four interleaved rounds whose shares add up to the plan.
    check_load("bare hyper", &report["reference"]["bare_hyper"], 200);
    assert_eq!(report["rounds"], 4);
    let per_round = report["ratios"]["engine_vs_bare_hyper_per_round"]
        .as_array()
        .expect("a ratio per round");
    assert_eq!(per_round.len(), 4, "{report}");
    for ratio in per_round {
        positive(ratio, "a round's engine / bare hyper");
    }
    check_load("hyper + sled floor", &report["reference"]["floor"], 200);
    positive(&report["ratios"]["engine_vs_floor"], "engine / floor");
    positive(&report["ratios"]["floor_vs_fdatasync"], "floor / fdatasync");
    positive(&report["reference"]["fdatasync"]["syncs"], "fsyncs");
    positive(
        &report["reference"]["fdatasync"]["per_second"],
        "fsyncs per second",
    );
    positive(
        &report["ratios"]["engine_vs_bare_hyper"],
        "engine / bare hyper",
    );
    positive(
        &report["ratios"]["group_commit_factor"],
        "group-commit factor",
    );
    positive(&report["journal_groups"], "journal groups");
    assert!(report["targets"].is_object());
}

#[test]
fn start_with_a_create_limit_measures_the_start_path_while_creates_wait() {
    // 60/min: a burst of 6 creates, then one every second; the run is shorter than that.
    let report = bench(&[
        "start",
        "--requests",
        "200",
        "--clients",
        "4",
        "--warmup",
        "20",
        "--fsync-seconds",
        "0.2",
        "--creates-per-minute",
        "60",
    ]);
    check_load("engine", &report["engine"], 200);
    assert_eq!(report["creates_per_minute"], 60);
    let creates = report["creates"].as_u64().expect("creates counted");
    assert!(
        creates < 20,
        "the limit held the creates back: {creates} of 200 went out during the run"
    );
    // Without a limit every start's create goes out during the run (or just after).
    let unlimited = bench(&[
        "start",
        "--requests",
        "200",
        "--clients",
        "4",
        "--warmup",
        "20",
        "--fsync-seconds",
        "0.2",
    ]);
    assert!(unlimited["creates_per_minute"].is_null());
    assert!(unlimited["creates"].as_u64().unwrap() > 150, "{unlimited}");
}

#[test]
fn status_scenario_reads_the_pool_and_compares_with_bare_hyper() {
    let report = bench(&[
        "status",
        "--pool",
        "50",
        "--requests",
        "300",
        "--clients",
        "4",
        "--warmup",
        "20",
    ]);
    assert_eq!(report["scenario"], "status");
    assert_eq!(report["pool"], 50);
    positive(&report["answer_bytes"], "answer size");
    check_load("engine", &report["engine"], 300);
    check_load("bare hyper", &report["reference"]["bare_hyper"], 300);
    positive(
        &report["ratios"]["engine_vs_bare_hyper"],
        "engine / bare hyper",
    );
    assert_eq!(report["load"], "in-process");
    // What each series cost this process per request: how much the load generator weighs.
    positive(
        &report["cpu_us_per_request"]["engine"],
        "engine CPU per GET",
    );
    positive(
        &report["cpu_us_per_request"]["bare_hyper"],
        "bare hyper CPU per GET",
    );
}

#[test]
fn e2e_scenario_finishes_every_task_and_measures_disk() {
    let report = bench(&[
        "e2e",
        "--tasks",
        "20",
        "--steps",
        "2",
        "--warmup",
        "4",
        "--clients",
        "4",
        "--payload-bytes",
        "300",
        "--idempotency-keys",
    ]);
    assert_eq!(report["scenario"], "e2e");
    assert_eq!(report["payload_bytes"], 300);
    let modes = report["modes"].as_object().unwrap();
    assert_eq!(modes.keys().collect::<Vec<_>>(), ["polling", "webhooks"]);
    for (mode, run) in modes {
        assert_eq!(run["tasks"], 20, "{mode}");
        assert_eq!(run["steps"], 40, "{mode}");
        assert_eq!(run["succeeded"], 20, "{mode}: {run}");
        assert_eq!(run["errors"], 0, "{mode}: {run}");
        assert_eq!(
            run["predictions"], 40,
            "{mode}: exactly one prediction per step"
        );
        check_load(mode, &run["starts"], 20);
        positive(&run["steps_per_second"], "steps per second");
        positive(&run["cpu_us_per_step"], "cpu per step");
        check_latency(mode, &run["overhead_ms_per_step_per_task"]);
        assert_eq!(run["overhead_ms_per_step_per_task"]["count"], 20, "{mode}");
        let disk = &run["disk"];
        positive(&disk["baseline"]["allocated_bytes"], "baseline size");
        positive(&disk["finished"]["allocated_bytes"], "size at finish");
        assert!(
            disk["finished"]["allocated_per_task"].is_number(),
            "{mode}: {disk}"
        );
        assert!(
            disk["after_shutdown"]["apparent_per_step"].is_number(),
            "{mode}: {disk}"
        );
        // The journal holds all 24 tasks (4 warm-up + 20), each finished and so sealed: one
        // record of its events, no loose event left, no snapshot checkpoint below 16 events,
        // its two predictions' owners and its idempotency key.
        let kinds = &run["journal_live"]["by_kind"];
        assert_eq!(run["journal_live"]["tasks"], 24, "{mode}");
        assert_eq!(kinds["c"]["keys"], 24, "{mode}: {run}");
        assert_eq!(kinds["s"]["keys"], 24, "{mode}: {run}");
        assert_eq!(kinds["q"]["keys"], 48, "{mode}: {run}");
        assert_eq!(
            kinds["i"]["keys"], 24,
            "{mode}: one idempotency key per task: {run}"
        );
        assert!(kinds["p"].is_null(), "{mode}: {run}");
        assert!(kinds["e"].is_null(), "{mode}: {run}");
        assert!(kinds["t"].is_null(), "{mode}: {run}");
        positive(
            &run["journal_live"]["bytes_per_task"],
            "journal bytes per task",
        );
    }
}

#[test]
fn e2e_pipeline_runs_both_workloads_with_one_prediction_per_step_and_compares_them() {
    let report = bench(&[
        "e2e",
        "--pipeline",
        "2",
        "--tasks",
        "8",
        "--warmup",
        "2",
        "--clients",
        "4",
        "--only",
        "webhooks",
    ]);
    assert_eq!(report["scenario"], "e2e_pipeline");
    assert_eq!(
        report["steps_per_task"], 6,
        "1 + 2 chained + 2 parallel + 1"
    );
    let webhooks = &report["modes"]["webhooks"];
    for workload in ["chain", "pipeline"] {
        // The bench refuses a run without exactly one prediction per step, so a report
        // means every step of every task ran once.
        assert_eq!(webhooks[workload]["steps"], 48, "{workload}: {webhooks}");
        positive(&webhooks[workload]["steps_per_second"], "steps per second");
        positive(
            &webhooks[workload]["stored_bytes_per_step"],
            "stored bytes per step",
        );
    }
    positive(&webhooks["ratio_steps_per_second"], "speed ratio");
    assert!(webhooks["ratio_allocated_bytes_per_step"].is_number());
    assert_eq!(webhooks["runs"].as_array().unwrap().len(), 2);
}

#[test]
fn transitions_scenario_times_every_transition_in_both_modes() {
    let report = bench(&[
        "transitions",
        "--transitions",
        "8",
        "--steps",
        "3",
        "--prediction-ms",
        "200",
    ]);
    assert_eq!(report["scenario"], "transitions");
    for mode in ["webhooks", "polling"] {
        let result = &report["results"][mode];
        assert_eq!(result["count"], 8, "{mode}: {result}");
        check_latency(mode, result);
    }
    // Polling sees a finished prediction at its next status check (the first comes 1 s after
    // the create, the prediction ends after ~0.5 s); a webhook brings it at once.
    let p50 = |mode: &str| report["results"][mode]["p50_ms"].as_f64().expect("a p50");
    assert!(p50("webhooks") < p50("polling"), "{report}");
}
