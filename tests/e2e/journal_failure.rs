//! The real binary on the real sled store, whose fsync fails after a batch was applied
//! (injected): the engine must exit non-zero instead of guessing, no start may be answered
//! with an error and then exist, every start answered 201 must exist after the restart, and
//! every task runs with one prediction per step.

use crate::support::*;
use serde_json::{json, Value};
use std::time::Duration;

const STARTS: usize = 120;

/// How the first try of one start ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    Created,
    Refused(u16),
    /// No answer: the connection closed when the process exited.
    Unanswered,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_stops_the_engine_and_no_error_answered_start_runs() {
    // Light: 120 starts in waves of ten, then a restart, take under a core.
    let env = Env::start(Load::Light, 100).await;
    let plain =
        "[workflows.plain]\nmodel = \"test/tryon\"\n[workflows.plain.input]\nx = \"{{item.x}}\"\n";
    let config = env.config(plain);
    // Open, marks and the first few groups succeed; a later commit fails after applying.
    let mut app = env.spawn_with_env(&config, &[("STEPWISE_FAULT_FAIL_SYNC_AFTER", "8")]);
    let base = app.url.clone();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    // Waves of concurrent starts, so the failing commit lands among them.
    let mut outcomes = vec![];
    for wave in 0..STARTS / 10 {
        let starts = (wave * 10..wave * 10 + 10).map(|i| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                let body = json!({"workflow": "plain", "items": [{"x": i}]});
                let key = format!("k{i}");
                match client
                    .post(format!("{base}/v1/tasks"))
                    .header("idempotency-key", key)
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(response) if response.status() == 201 => Outcome::Created,
                    Ok(response) => Outcome::Refused(response.status().as_u16()),
                    Err(_) => Outcome::Unanswered,
                }
            })
        });
        for start in starts.collect::<Vec<_>>() {
            outcomes.push(start.await.unwrap());
        }
    }
    let status = app.wait_for_exit(Duration::from_secs(60)).await;
    assert_eq!(
        status.code(),
        Some(74),
        "the engine exits with EX_IOERR after a failed commit"
    );
    assert!(
        outcomes.iter().any(|o| *o != Outcome::Created),
        "the fault fired while starts were coming in"
    );
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            Outcome::Created | Outcome::Unanswered | Outcome::Refused(503)
        )),
        "{outcomes:?}"
    );

    let app = env.spawn(&config);
    let mut running = vec![];
    for (i, outcome) in outcomes.iter().enumerate() {
        let body = json!({"workflow": "plain", "items": [{"x": i}]});
        let response = client
            .post(format!("{}/v1/tasks", app.url))
            .header("idempotency-key", format!("k{i}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let existed = response.status() == 200;
        match outcome {
            Outcome::Created => assert!(existed, "start k{i} was answered 201 and is gone"),
            Outcome::Refused(code) => {
                assert!(!existed, "start k{i} was answered {code} and exists")
            }
            Outcome::Unanswered => {}
        }
        running.push(
            response.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for id in &running {
        let task = app.wait_until_finished(id, Duration::from_secs(60)).await;
        assert_eq!(task["status"], "succeeded", "{task}");
    }
    assert_eq!(
        env.sim.create_calls() as usize,
        STARTS,
        "one prediction per task"
    );
}
