//! Kept outputs: with `[outputs] keep = true` a step's output files are copied into the data
//! dir before the step succeeds, served by the engine, usable by the next step, and still
//! there after Replicate (the simulator) deletes its copies.

use crate::support::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const WITHIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_files_are_kept_served_chained_and_outlive_replicates_copies() {
    // `test/keeper` is the simulator's default model: 20 ms starting, 80 ms processing. Its
    // output files are deleted 2 s after the prediction ends.
    let env = Env::start_with(Load::Light, 80, |config| {
        config.output_retention = Some(Duration::from_secs(2));
    })
    .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = env
        .config("")
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\""))
        + "[outputs]\nkeep = true\n[workflows.keeper]\nmodel = \"test/keeper\"\n[workflows.keeper.input]\n\
           image = \"{{previous.kept_output}}\"\nn = \"{{item.n}}\"\n[workflows.keeper.first]\nimage = \"{{params.start}}\"\n";
    let app = env.spawn(&config);
    let id = app.start_ok(&json!({"workflow": "keeper", "params": {"start": "s.png"}, "items": [{"n": 1}, {"n": 2}]})).await;
    let task = app.wait_until_finished(&id, WITHIN).await;
    assert_eq!(task["status"], "succeeded", "{task:#}");

    let first = &task["steps"][0];
    let kept_url = first["kept_output"].as_str().unwrap();
    assert!(
        kept_url.starts_with(&format!("http://127.0.0.1:{port}/v1/files/{id}/1/")),
        "{kept_url}"
    );
    assert_ne!(
        first["output"], first["kept_output"],
        "the original URL is reported too"
    );
    assert_eq!(
        task["steps"][1]["input"]["image"], kept_url,
        "step 2 read the kept copy"
    );
    assert!(task["kept_output"]
        .as_str()
        .unwrap()
        .contains(&format!("/v1/files/{id}/2/")));

    let fetch = |url: String| {
        let http = app.http.clone();
        async move { http.get(url).send().await.unwrap() }
    };
    let original = fetch(first["output"].as_str().unwrap().to_owned())
        .await
        .bytes()
        .await
        .unwrap();
    let kept = fetch(kept_url.to_owned()).await;
    assert_eq!(kept.status(), 200);
    assert_eq!(kept.headers()["content-type"], "image/png");
    assert_eq!(kept.bytes().await.unwrap(), original, "the same bytes");

    // Over a real socket, ranges and validators work too.
    let client = reqwest::Client::new();
    let part = client
        .get(kept_url)
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 0-9/{}", original.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), original[..10]);
    let whole = fetch(kept_url.to_owned()).await;
    let etag = whole.headers()["etag"].clone();
    let unchanged = client
        .get(kept_url)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.status(), 304);

    // Replicate deletes its copy; ours stays.
    let deadline = Instant::now() + WITHIN;
    while fetch(first["output"].as_str().unwrap().to_owned())
        .await
        .status()
        != 404
    {
        assert!(
            Instant::now() < deadline,
            "the simulator never expired the output"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let prediction: Value = env
        .sim
        .predictions()
        .into_iter()
        .find(|p| p["id"] == first["prediction_id"])
        .unwrap();
    assert_eq!(prediction["data_removed"], true);
    assert_eq!(
        fetch(kept_url.to_owned()).await.status(),
        200,
        "the kept file outlives Replicate's"
    );

    for bad in [
        format!("{id}/1/..%2F..%2Fdata%2Fdb"),
        format!("{id}/1/nope.png"),
        format!("{id}/x/a.png"),
        "tsk_0/1/a".into(),
    ] {
        let response = fetch(format!("{}/v1/files/{bad}", app.url)).await;
        assert_eq!(response.status(), 404, "{bad}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "not_found", "{bad}: {error}");
    }
}
