//! Retention: finished tasks are deleted with their journal once they are older than the
//! configured retention, and the data dir stays bounded under steady load.

use crate::support::*;
use serde_json::Value;
use std::time::{Duration, Instant};

fn data_dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                data_dir_bytes(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_tasks_go_after_their_retention_and_the_data_dir_stays_bounded() {
    let sim = start_sim(10).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_toml(dir.path(), &sim.base_url(), "")
        .replace("[storage]", "[storage]\nretention = \"2s\"");
    let app = App::spawn(dir.path(), &config);

    let first = app.start_ok(&tryon_body("kept-then-gone", 1)).await;
    app.wait_until_finished(&first, Duration::from_secs(30))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = app
            .http
            .get(format!("{}/v1/tasks/{first}", app.url))
            .send()
            .await
            .unwrap();
        if response.status() == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "the task outlived its retention");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Steady load: waves of tasks, each wave finishing and expiring. The data dir must stop
    // growing with the number of tasks ever run.
    let mut sizes = vec![];
    for wave in 0..8 {
        let mut ids = vec![];
        for i in 0..100 {
            ids.push(app.start_ok(&tryon_body(&format!("w{wave}-{i}"), 3)).await);
        }
        for id in &ids {
            app.wait_until_finished(id, Duration::from_secs(60)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let list: Value = app
                .http
                .get(format!("{}/v1/tasks?limit=200", app.url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if list["tasks"].as_array().unwrap().is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "wave {wave} was not swept");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        sizes.push(data_dir_bytes(&dir.path().join("data")));
    }
    eprintln!("data dir bytes after each wave of 100 three-step tasks: {sizes:?}");
    let settled = sizes[2];
    let last = *sizes.last().unwrap();
    assert!(last <= settled * 2, "the data dir keeps growing: {sizes:?}");
}
