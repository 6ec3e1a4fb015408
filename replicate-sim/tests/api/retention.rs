//! Output retention: like Replicate's one-hour deletion of API outputs, shortened.

use crate::helpers::*;
use replicate_sim::SimConfig;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn outputs_and_their_files_expire_after_the_output_retention() {
    let config = SimConfig {
        default_model: behavior(0, 20),
        output_retention: Some(Duration::from_millis(600)),
        ..Default::default()
    };
    let sim = spawn_sim(config).await;
    let created = sim
        .create_for_model("acme/img", json!({"prompt": "cat"}))
        .await;
    let id = created["id"].as_str().unwrap();
    let done = sim.wait_until_finished(id).await;
    assert_eq!(done["data_removed"], false);
    let url = done["output"].as_str().unwrap().to_owned();
    let file = reqwest::get(&url).await.unwrap();
    assert_eq!(file.status(), 200);
    assert_eq!(file.headers()["content-type"], "image/png");
    assert!(file.bytes().await.unwrap().starts_with(b"\x89PNG"));

    let removed = eventually(
        Duration::from_secs(10),
        "the output to be removed",
        || async {
            let now = sim.fetch(id).await;
            (now["data_removed"] == true).then_some(now)
        },
    )
    .await;
    assert!(removed["output"].is_null());
    assert_eq!(
        reqwest::get(&url).await.unwrap().status(),
        404,
        "the file is gone too"
    );
}
