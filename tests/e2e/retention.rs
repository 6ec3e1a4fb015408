//! Retention: finished tasks are deleted with their journal once they are older than the
//! configured retention, and the data dir stays bounded under steady load.

use crate::support::*;
use std::time::Duration;

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

/// Waits until task `id` has finished, or is already gone: retention deletes only finished
/// tasks, so a 404 means it finished and then outlived its retention (2 s here, shorter than
/// a loaded machine may take to poll a wave of a hundred tasks one by one).
async fn wait_until_finished_or_deleted(app: &App, id: &str) {
    let url = format!("{}/v1/tasks/{id}", app.url);
    eventually(
        &format!("task {id} finishes"),
        Duration::from_secs(60),
        || async {
            let response = app.http.get(&url).send().await.unwrap();
            match response.status().as_u16() {
                404 => Some(()),
                200 => is_finished(&response.json().await.unwrap()).then_some(()),
                status => panic!("GET {url} answered {status}"),
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_tasks_go_after_their_retention_and_the_data_dir_stays_bounded() {
    // Heavy: eight waves of a hundred tasks; the data dir's size does not depend on timing,
    // so a light neighbour does not change what is asserted.
    let env = Env::start(Load::Heavy, 10).await;
    let config = env
        .config("")
        .replace("[storage]", "[storage]\nretention = \"2s\"");
    let app = env.spawn(&config);

    let first = app.start_ok(&tryon_body("kept-then-gone", 1)).await;
    wait_until_finished_or_deleted(&app, &first).await;
    eventually(
        "the task is deleted after its retention",
        Duration::from_secs(30),
        || async {
            let response = app
                .http
                .get(format!("{}/v1/tasks/{first}", app.url))
                .send()
                .await
                .unwrap();
            (response.status() == 404).then_some(())
        },
    )
    .await;

    // Steady load: waves of tasks, each wave finishing and expiring. The data dir must stop
    // growing with the number of tasks ever run.
    let mut sizes = vec![];
    for wave in 0..8 {
        let mut ids = vec![];
        for i in 0..100 {
            ids.push(app.start_ok(&tryon_body(&format!("w{wave}-{i}"), 3)).await);
        }
        for id in &ids {
            wait_until_finished_or_deleted(&app, id).await;
        }
        eventually(
            &format!("wave {wave} is swept"),
            Duration::from_secs(30),
            || async {
                let list = app.get_json("/v1/tasks?limit=200").await;
                list["tasks"].as_array().unwrap().is_empty().then_some(())
            },
        )
        .await;
        sizes.push(data_dir_bytes(&env.path().join("data")));
    }
    eprintln!("data dir bytes after each wave of 100 three-step tasks: {sizes:?}");
    let settled = sizes[2];
    let last = *sizes.last().unwrap();
    assert!(last <= settled * 2, "the data dir keeps growing: {sizes:?}");
}
