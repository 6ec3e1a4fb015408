//! Crash tests: `kill -9` the engine while predictions are in flight, and make it abort at
//! the worst moment (a prediction created at Replicate, its id not yet journaled). After
//! restarts on the same data dir, every task must finish with the right chained outputs and
//! Replicate must hold exactly one prediction per (task, step).

use crate::support::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const TASKS: usize = 20;
const STEPS: usize = 3;

async fn wait_for_creates(sim: &replicate_sim::SimHandle, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while sim.create_calls() < at_least {
        assert!(
            Instant::now() < deadline,
            "only {} creates so far",
            sim.create_calls()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_any_point_loses_no_task_and_duplicates_no_prediction() {
    // Light: sixty steps through five restarts take under a core, and every wait has a
    // deadline.
    let env = Env::start(Load::Light, 300).await;
    let config = env.config("");
    let mut app = env.spawn(&config);
    let mut ids = vec![];
    for i in 0..TASKS {
        let response = app.start_task(&tryon_body(&format!("k{i}"), STEPS)).await;
        assert_eq!(response.status(), 201);
        ids.push(
            response.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }

    // Kill at random moments in the first 40% of the run (each while predictions are in
    // flight). The rest must leave creates for the two injected aborts below: a run can send
    // one create per task (20) before its abort, and the tasks move in step, so a kill late
    // in the run (or a run started only to be killed) could leave the second abort nothing
    // to create, and it would never come.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut kill_points: Vec<u64> = (0..3).map(|k| 2 + (seed >> (k * 8)) % 22).collect();
    kill_points.sort();
    eprintln!("kill -9 after these create counts: {kill_points:?}");
    for (n, creates) in kill_points.iter().enumerate() {
        wait_for_creates(&env.sim, *creates).await;
        app.kill9();
        if n + 1 < kill_points.len() {
            app = env.spawn(&config);
        }
    }

    // Now crash between a create call and its journal write, twice.
    for _ in 0..2 {
        let before = env.sim.create_calls();
        app = env.spawn_with_env(&config, &[("STEPWISE_FAULT_CRASH_AFTER_CREATE", "2")]);
        let status = app.wait_for_exit(Duration::from_secs(60)).await;
        assert!(!status.success(), "the fault hook aborts the process");
        assert!(env.sim.create_calls() >= before + 2);
    }

    let app = env.spawn(&config);
    for (i, id) in ids.iter().enumerate() {
        let task = app.wait_until_finished(id, Duration::from_secs(60)).await;
        assert_chained(&env.sim, &task, &format!("k{i}"));
    }
    assert_eq!(
        env.sim.create_calls() as usize,
        TASKS * STEPS,
        "one create per step, no more"
    );
    let log = app.log();
    let adopted = log
        .lines()
        .filter(|l| l.contains("Prediction created.") && l.contains("found=true"))
        .count();
    assert!(
        adopted >= 2,
        "recovery adopted the predictions created before each abort ({adopted})"
    );
}

/// The worst moment of a move to the archive: its archive batch durable, the journal's
/// deletes not applied. After the restart every task reads back whole and is listed once,
/// and the restarted engine finishes the move: no task is left half in each store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_a_move_to_the_archive_loses_and_duplicates_nothing() {
    use stepwise_engine::journal::{Backend, KvStore, ListQuery, Store};
    let env = Env::start(Load::Light, 20).await;
    let config = env.config("");
    let mut app = env.spawn_with_env(&config, &[("STEPWISE_FAULT_CRASH_MID_MOVE", "1")]);
    let mut ids = vec![];
    for i in 0..6 {
        ids.push(app.start_ok(&tryon_body(&format!("m{i}"), 2)).await);
    }
    // The first task to settle is moved, and the process aborts mid-move.
    let status = app.wait_for_exit(Duration::from_secs(60)).await;
    assert!(!status.success(), "the fault hook aborts the process");

    let mut app = env.spawn(&config);
    for (i, id) in ids.iter().enumerate() {
        let task = app.wait_until_finished(id, Duration::from_secs(60)).await;
        assert_chained(&env.sim, &task, &format!("m{i}"));
    }
    let listed: Value = app
        .http
        .get(format!("{}/v1/tasks?limit=100", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut listed: Vec<&str> = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    listed.sort();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(listed, expected, "every task listed once");
    assert!(app.terminate().success());

    let store = KvStore::open(&env.path().join("data"), 1 << 20).unwrap();
    let unmoved = store.backend().scan(b"c", b"d", false, usize::MAX).unwrap();
    assert!(
        unmoved.is_empty(),
        "every settled task has left the journal: {} left",
        unmoved.len()
    );
    let sealed = store.archive().scan(b"s", b"t", false, usize::MAX).unwrap();
    assert_eq!(
        sealed.len(),
        ids.len(),
        "each task is one sealed record in the archive"
    );
    assert_eq!(
        store
            .list(&ListQuery {
                limit: 100,
                ..Default::default()
            })
            .unwrap()
            .tasks
            .len(),
        ids.len()
    );
    assert!(
        app.log().contains("a move had been cut short"),
        "the restart finished the interrupted move"
    );
}
