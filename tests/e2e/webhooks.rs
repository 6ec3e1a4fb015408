//! Webhook deliveries into the engine: valid ones move tasks on at once, forged, stale,
//! replayed, out-of-order and old-attempt ones change nothing, and lost ones are made up for
//! by the safety-net poll.

use crate::support::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use stepwise_engine::webhook::WebhookKey;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WITHIN: Duration = Duration::from_secs(30);

/// Webhooks on, pointed at a loopback port nobody listens on: the simulator's own deliveries
/// fail, so only the deliveries a test sends by hand reach the engine. A safety poll of a
/// minute or more means "deliveries only": the checks of a prediction still `starting` (at
/// the usual cadence under webhooks) go as far out, or one of them could end the step before
/// the test's delivery does.
fn webhook_config(env: &Env, safety_poll_ms: u64) -> String {
    let (initial, max) = if safety_poll_ms >= 60_000 {
        (safety_poll_ms, safety_poll_ms)
    } else {
        (40, 200)
    };
    env.config("")
        .replace(
            "poll_initial_ms = 40",
            &format!("poll_initial_ms = {initial}"),
        )
        .replace(
            "poll_max_ms = 200",
            &format!(
                "poll_max_ms = {max}\nwebhook_base_url = \"http://127.0.0.1:9\"\n\
                 webhook_secret = \"{SECRET}\"\nsafety_poll_ms = {safety_poll_ms}"
            ),
        )
}

struct Delivery {
    id: String,
    timestamp: i64,
    body: String,
}

impl Delivery {
    fn of(prediction: &Value) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let id = format!("msg_{}", prediction["id"].as_str().unwrap_or("x"));
        Delivery {
            id,
            timestamp: now,
            body: prediction.to_string(),
        }
    }

    async fn send(&self, app: &App, query: &str, signature: Option<String>) -> reqwest::Response {
        let key = WebhookKey::parse(SECRET).unwrap();
        let signature = signature.unwrap_or_else(|| {
            key.sign(&self.id, &self.timestamp.to_string(), self.body.as_bytes())
        });
        app.http
            .post(format!("{}/v1/webhooks/replicate?{query}", app.url))
            .header("content-type", "application/json")
            .header("webhook-id", &self.id)
            .header("webhook-timestamp", self.timestamp.to_string())
            .header("webhook-signature", signature)
            .body(self.body.clone())
            .send()
            .await
            .unwrap()
    }
}

/// The simulator's view of a prediction, once it has ended.
async fn finished_prediction(sim: &replicate_sim::SimHandle, id: &Value) -> Value {
    let deadline = Instant::now() + WITHIN;
    loop {
        let prediction = sim
            .predictions()
            .into_iter()
            .find(|p| p["id"] == *id)
            .unwrap();
        if prediction["status"] == "succeeded" {
            return prediction;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn etag(app: &App, id: &str) -> String {
    let response = app
        .http
        .get(format!("{}/v1/tasks/{id}", app.url))
        .send()
        .await
        .unwrap();
    response.headers()["etag"].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_ask_for_webhooks_tagged_with_the_step() {
    let env = Env::start(Load::Light, 50).await;
    let app = env.spawn(&webhook_config(&env, 600_000));
    let id = app.start_ok(&tryon_body("tag", 1)).await;
    let task = app
        .wait_for(&id, WITHIN, |t| t["steps"][0]["prediction_id"].is_string())
        .await;
    let prediction = env
        .sim
        .predictions()
        .into_iter()
        .find(|p| p["id"] == task["steps"][0]["prediction_id"])
        .unwrap();
    assert_eq!(
        prediction["webhook"],
        format!("http://127.0.0.1:9/v1/webhooks/replicate?task={id}&step=1&attempt=1")
    );
    assert_eq!(
        prediction["webhook_events_filter"],
        json!(["start", "completed"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_delivery_moves_the_task_on_and_bad_ones_change_nothing() {
    let env = Env::start(Load::Light, 50).await;
    // The safety-net poll is far away: only deliveries can move this task.
    let app = env.spawn(&webhook_config(&env, 600_000));
    let id = app.start_ok(&tryon_body("hook", 2)).await;
    let task = app
        .wait_for(&id, WITHIN, |t| t["steps"][0]["prediction_id"].is_string())
        .await;
    let done = finished_prediction(&env.sim, &task["steps"][0]["prediction_id"]).await;
    let query = format!("task={id}&step=1&attempt=1");
    let before = etag(&app, &id).await;

    let delivery = Delivery::of(&done);
    let forged = delivery
        .send(
            &app,
            &query,
            Some("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()),
        )
        .await;
    assert_eq!(forged.status(), 401);
    assert_eq!(
        forged.json::<Value>().await.unwrap()["error"]["code"],
        "unauthorized"
    );
    let stale = Delivery {
        timestamp: delivery.timestamp - 400,
        ..Delivery::of(&done)
    };
    assert_eq!(stale.send(&app, &query, None).await.status(), 401);
    let tampered = Delivery {
        body: delivery.body.replace("succeeded", "failed"),
        ..Delivery::of(&done)
    };
    let signature = WebhookKey::parse(SECRET).unwrap().sign(
        &delivery.id,
        &delivery.timestamp.to_string(),
        delivery.body.as_bytes(),
    );
    assert_eq!(
        tampered.send(&app, &query, Some(signature)).await.status(),
        401
    );
    let other_attempt = delivery
        .send(&app, &format!("task={id}&step=1&attempt=2"), None)
        .await;
    assert_eq!(
        other_attempt.status(),
        200,
        "an old or unknown attempt is acknowledged"
    );
    assert_eq!(
        etag(&app, &id).await,
        before,
        "none of these changed the task"
    );

    assert_eq!(delivery.send(&app, &query, None).await.status(), 200);
    let moved = app.get_task(&id).await;
    assert_eq!(
        moved["steps"][0]["status"], "succeeded",
        "applied before the answer: {moved:#}"
    );
    assert_eq!(moved["steps"][0]["output"], done["output"]);
    assert_ne!(
        moved["steps"][1]["status"], "pending",
        "step 2 started at once"
    );

    assert_eq!(
        delivery.send(&app, &query, None).await.status(),
        200,
        "a replay is acknowledged"
    );
    let mut start = done.clone();
    start["status"] = json!("processing");
    assert_eq!(
        Delivery::of(&start).send(&app, &query, None).await.status(),
        200,
        "a late start is acknowledged"
    );
    let later = app.get_task(&id).await;
    assert_eq!(
        later["steps"][0], moved["steps"][0],
        "neither the replay nor the late start changed step 1"
    );
    assert_eq!(
        predictions_for(&env.sim, "https://img/hook/g1.png").len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_webhooks_only_delay_the_task_until_the_safety_net_poll() {
    let env = Env::start(Load::Light, 50).await;
    let app = env.spawn(&webhook_config(&env, 300));
    let id = app.start_ok(&tryon_body("lost", 2)).await;
    let task = app.wait_until_finished(&id, WITHIN).await;
    assert_chained(&env.sim, &task, "lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_refused_when_webhooks_are_off() {
    let (_env, app) = spawn_app(Load::Light, 50).await;
    let delivery = Delivery::of(&json!({"id": "p", "status": "succeeded"}));
    let response = delivery
        .send(
            &app,
            "task=tsk_00000000000000000000000000000000&step=1&attempt=1",
            None,
        )
        .await;
    assert_eq!(response.status(), 404);
}

/// A config whose webhooks go to the engine itself, on a port picked before it starts.
pub(crate) fn self_webhook_config(env: &Env) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    env.config("")
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\""))
        .replace(
            "poll_max_ms = 200",
            &format!(
                "poll_max_ms = 200\nwebhook_base_url = \"http://127.0.0.1:{port}\"\nsafety_poll_ms = 600000"
            ),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulators_own_deliveries_drive_tasks_through_duplicates_delays_and_reordering() {
    // Replicate's retry schedule (0.5 s, 1.5 s, 3.5 s, ... after the first try) at a tenth:
    // at full scale, a delivery dropped five times in a row (0.3^5, so one task in a few
    // dozen runs) would come back after the 30 s this test waits.
    let env = Env::start_with(Load::Light, 80, |config| config.webhook_retry_scale = 0.1).await;
    env.sim.set_faults(replicate_sim::Faults {
        webhook_duplicate_rate: 0.5,
        webhook_delay_ms: (0, 30),
        webhook_reorder: true,
        webhook_drop_rate: 0.3,
        ..Default::default()
    });
    // No secret in the config: the engine fetches it from the simulator at startup.
    let app = env.spawn(&self_webhook_config(&env));
    let mut ids = vec![];
    for i in 0..10 {
        ids.push(app.start_ok(&tryon_body(&format!("push{i}"), 3)).await);
    }
    for (i, id) in ids.iter().enumerate() {
        // The safety-net poll is ten minutes away: only deliveries can finish these tasks.
        let task = app.wait_until_finished(id, WITHIN).await;
        assert_chained(&env.sim, &task, &format!("push{i}"));
    }
    let stats = env.sim.stats();
    assert!(stats.webhooks_delivered >= 30, "{stats:?}");
    assert!(
        stats.webhooks_dropped > 0,
        "some attempts were dropped and retried: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_webhooks_a_step_shows_processing_before_it_succeeds() {
    // Predictions start for 0.5 s, then process for 2 s. Replicate's `start` delivery comes
    // at creation (still `starting`), and the safety poll is ten minutes away: the engine
    // checks a starting prediction at the usual cadence, sees it processing, then leaves
    // the rest to the `completed` delivery.
    let env = Env::start(Load::Light, 2_000).await;
    let app = env.spawn(&self_webhook_config(&env));
    let id = app.start_ok(&tryon_body("shows", 1)).await;
    let url = format!("/v1/tasks/{id}");
    let processing = eventually("step 1 processing", WITHIN, || async {
        let task = app.get_json(&url).await;
        assert_ne!(task["status"], "succeeded", "it was never seen processing");
        (task["steps"][0]["status"] == "processing").then_some(task)
    })
    .await;
    assert_eq!(processing["status"], "running");
    let task = app.wait_until_finished(&id, WITHIN).await;
    assert_eq!(task["status"], "succeeded");
    let journal = app.get_json(&format!("/v1/tasks/{id}/journal")).await;
    let kinds: Vec<&str> = journal["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    let started = kinds.iter().position(|k| *k == "prediction_started");
    let succeeded = kinds.iter().position(|k| *k == "step_succeeded");
    assert!(started.is_some() && started < succeeded, "{kinds:?}");
    let stats = env.sim.stats();
    assert!(
        stats.webhooks_delivered >= 2,
        "start and completed: {stats:?}"
    );
}
