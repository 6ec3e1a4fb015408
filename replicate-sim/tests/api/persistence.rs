//! The state file (`SimConfig::state_file`): a simulator shut down and started again on the
//! same file serves the same predictions, on the same timelines, at the same address, signs
//! with the same secret, delivers the terminal webhooks it still owed exactly once, and refuses
//! a file it cannot read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use replicate_sim::{persist, start, SimConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::receiver::{verifies, Receiver};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        let dir = std::env::temp_dir().join(format!(
            "sim-persistence-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join("simulator.jsonl")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config() -> SimConfig {
    let mut config = SimConfig {
        default_model: behavior(50, 100),
        ..SimConfig::default()
    };
    config
        .models
        .insert("acme/slow".into(), behavior(100, 1500));
    config
        .models
        .insert("acme/stuck".into(), behavior(100, 600_000));
    config
}

/// A simulator on `path`, on the address the file records when there is one.
async fn spawn_on(path: &Path, config: SimConfig) -> TestSim {
    let addr = persist::previous_addr(path).map_or("127.0.0.1:0".into(), |a| a.to_string());
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let config = SimConfig {
        state_file: Some(path.to_path_buf()),
        ..config
    };
    TestSim {
        sim: start(config, listener).await.unwrap(),
        http: reqwest::Client::new(),
    }
}

impl TestSim {
    async fn secret(&self) -> String {
        let body = self
            .get_absolute(&self.url("/v1/webhooks/default/secret"))
            .await;
        body["key"].as_str().unwrap().to_string()
    }

    async fn create_with_completed_hook(&self, url: &str) -> Value {
        let response = self
            .post("/v1/models/acme/m/predictions")
            .json(
                &json!({"input": {"n": 1}, "webhook": url, "webhook_events_filter": ["completed"]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }
}

fn id_of(prediction: &Value) -> String {
    prediction["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_restarted_simulator_serves_the_same_predictions_on_the_same_timelines() {
    let dir = TempDir::new("restart");
    let a = spawn_on(&dir.file(), config()).await;
    let done = a.create_for_model("acme/quick", json!({"n": 1})).await;
    let done = a.wait_until_finished(&id_of(&done)).await;
    let slow = a.create_for_model("acme/slow", json!({"n": 2})).await;
    let stuck = a.create_for_model("acme/stuck", json!({"n": 3})).await;
    let response = a
        .post(&format!("/v1/predictions/{}/cancel", id_of(&stuck)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let canceled: Value = response.json().await.unwrap();
    assert_eq!(canceled["status"], "canceled");
    let (addr, secret, listed) = (a.sim.addr(), a.secret().await, a.list_ids().await);
    a.sim.shutdown().await;

    let b = spawn_on(&dir.file(), config()).await;
    assert_eq!(b.sim.addr(), addr, "the same address again");
    assert_eq!(b.secret().await, secret, "the same webhook secret");
    assert_eq!(
        b.fetch(&id_of(&done)).await,
        done,
        "a finished prediction reads the same"
    );
    assert_eq!(b.fetch(&id_of(&stuck)).await, canceled, "a cancel is kept");
    assert_eq!(b.list_ids().await, listed, "listed as before");
    assert_eq!(b.sim.create_calls(), 3);

    // The slow one keeps its timeline: it finishes 1.6 s after its creation, as planned.
    let finished = b.wait_until_finished(&id_of(&slow)).await;
    assert_eq!(finished["status"], "succeeded");
    assert_eq!(finished["created_at"], slow["created_at"]);
    let took = parse_time(&finished["completed_at"]) - parse_time(&slow["created_at"]);
    assert_eq!(took, Duration::from_millis(1600));

    // New predictions get new ids and are listed first.
    let fresh = b.create_for_model("acme/quick", json!({"n": 4})).await;
    let ids = b.list_ids().await;
    assert_eq!(ids.len(), 4);
    assert_eq!(ids[0], id_of(&fresh));
    assert!(!listed.contains(&id_of(&fresh)));
}

#[tokio::test]
async fn an_output_url_handed_out_before_a_restart_answers_the_same_picture_after_it() {
    let dir = TempDir::new("files");
    let a = spawn_on(&dir.file(), config()).await;
    let created = a
        .create_for_model("acme/quick", json!({"garment_des": "red wool scarf"}))
        .await;
    let done = a.wait_until_finished(&id_of(&created)).await;
    let url = done["output"].as_str().unwrap().to_string();
    let before = crate::files::fetch_png(&a.http, &url).await;
    a.sim.shutdown().await;

    let b = spawn_on(&dir.file(), config()).await;
    let after = crate::files::fetch_png(&b.http, &url).await;
    assert_eq!(after, before, "the same URL, the same bytes");
    assert_eq!(crate::files::png_size(&after), (320, 400));
}

#[tokio::test]
async fn a_webhook_owed_at_a_restart_is_delivered_once_signed_with_the_same_secret() {
    let dir = TempDir::new("webhooks");
    let hook = Receiver::spawn(0).await;
    let a = spawn_on(&dir.file(), config()).await;
    let secret = a.secret().await;
    let owed = a.create_with_completed_hook(&hook.url).await;
    a.sim.shutdown().await;
    // Let it finish while no simulator runs (its plan: 50 ms starting, 100 ms processing).
    let finish = parse_time(&owed["created_at"]) + Duration::from_millis(150);
    let left: Duration = (finish - time::OffsetDateTime::now_utc())
        .try_into()
        .unwrap_or_default();
    tokio::time::sleep(left).await;

    let b = spawn_on(&dir.file(), config()).await;
    let hits = hook.wait_for(1).await;
    assert_eq!(hits[0].json(), b.fetch(&id_of(&owed)).await);
    assert_eq!(hits[0].status(), "succeeded");
    assert!(
        verifies(&secret, &hits[0]),
        "signed with the persisted secret"
    );
    eventually(
        Duration::from_secs(5),
        "the delivery noted in the file",
        || async {
            let loaded = persist::load(&dir.file()).unwrap();
            loaded.webhooks_done.contains(&id_of(&owed)).then_some(())
        },
    )
    .await;
    b.sim.shutdown().await;

    // Not owed again: a witness created after the restart is the only new delivery.
    let c = spawn_on(&dir.file(), config()).await;
    let witness = c.create_with_completed_hook(&hook.url).await;
    let hits = hook.wait_for(2).await;
    assert_eq!(hits[1].json()["id"], witness["id"]);
    c.sim.shutdown().await;
    assert_eq!(hook.hits().len(), 2, "the first webhook was sent once");
}

#[tokio::test]
async fn a_corrupt_state_file_fails_start_and_a_torn_last_line_is_skipped() {
    let dir = TempDir::new("corrupt");
    let a = spawn_on(&dir.file(), config()).await;
    let kept = a.create_for_model("acme/quick", json!({"n": 1})).await;
    a.sim.shutdown().await;

    // A crash mid-append leaves half a line at the end: skipped.
    let mut bytes = std::fs::read(dir.file()).unwrap();
    bytes.extend_from_slice(br#"{"created":{"id":"half"#);
    std::fs::write(dir.file(), &bytes).unwrap();
    let b = spawn_on(&dir.file(), config()).await;
    assert_eq!(b.list_ids().await, vec![id_of(&kept)]);
    b.sim.shutdown().await;

    std::fs::write(dir.file(), "{\"header\": 1}\nnot json\n").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = SimConfig {
        state_file: Some(dir.file()),
        ..config()
    };
    let Err(error) = start(config, listener).await else {
        panic!("a corrupt state file must fail the start");
    };
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    let message = error.to_string();
    assert!(
        message.contains(&dir.file().display().to_string()),
        "{message}"
    );
    assert!(message.contains("line 1"), "{message}");
}
