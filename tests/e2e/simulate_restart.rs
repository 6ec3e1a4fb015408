//! `stepwise serve --simulate` keeps the simulator's predictions in the data dir: `kill -9` the
//! server while a three-step try-on runs, start it again on the same data dir, and the task
//! finishes on the predictions the first run created; no step gets a second prediction.
//! Only the public HTTP APIs are used: the engine's, and the simulator's (found in the log).

use crate::support::{announced_url, eventually, turn, Load};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The token `serve --simulate` gives its simulator (the simulator's default).
const SIM_TOKEN: &str = "r8_sim_token";
const LIMIT: Duration = Duration::from_secs(60);

/// `stepwise serve --simulate --config dir/config.toml`, its log appended to dir/engine.log.
struct Server {
    child: Child,
    url: String,
    sim_url: String,
}

impl Server {
    fn spawn(dir: &Path) -> Server {
        let log_path = dir.join("engine.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_stepwise"))
            .args(["serve", "--simulate", "--config"])
            .arg(dir.join("config.toml"))
            .current_dir(dir)
            .env("STEPWISE_LOG", "info")
            .env_remove("REPLICATE_API_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("the stepwise binary starts");
        let rx = announced_url(&mut child);
        let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        let url = rx
            .recv_timeout(LIMIT)
            .unwrap_or_else(|_| panic!("stepwise did not start; log:\n{}", read_log()));
        // The simulator logs its URL before the engine listens; the last such line is this run's.
        let log = read_log();
        let sim_url = log
            .lines()
            .rev()
            .find(|l| l.contains("Simulated Replicate started."))
            .and_then(|l| l.split("url=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no simulator URL in the log:\n{log}"))
            .to_owned();
        Server {
            child,
            url,
            sim_url,
        }
    }

    /// `kill -9`: no chance to flush or clean up.
    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, port: u16) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
[storage]
data_dir = "{data}"
[replicate]
api_base = "http://127.0.0.1:9"
poll_initial_ms = 100
poll_max_ms = 500
[workflows.tryon]
model = "cuuupid/idm-vton"
max_items = 10
[workflows.tryon.input]
human_img = "{{{{previous.output}}}}"
garm_img = "{{{{item.garment_image}}}}"
garment_des = "{{{{item.description}}}}"
steps = 30
[workflows.tryon.first]
human_img = "{{{{params.person_image}}}}"
"#,
        data = dir.join("data").display()
    )
}

async fn get_json(http: &reqwest::Client, url: &str, token: Option<&str>) -> Option<Value> {
    let mut request = http.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

/// Every prediction the simulator lists, following `next` pages.
async fn sim_predictions(http: &reqwest::Client, sim_url: &str) -> Vec<Value> {
    let mut all = vec![];
    let mut next = Some(format!("{sim_url}/v1/predictions"));
    while let Some(url) = next {
        let page = get_json(http, &url, Some(SIM_TOKEN))
            .await
            .expect("the simulator lists its predictions");
        all.extend(page["results"].as_array().expect("results").iter().cloned());
        next = page["next"].as_str().map(str::to_owned);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_simulate_mode_resumes_the_task_on_the_same_predictions() {
    let _turn = turn(Load::Light).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().to_owned();
    let _log = print_log_on_failure(&dir);
    // A known engine port, so the simulator's webhooks reach the engine in both runs.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(dir.join("config.toml"), config(&dir, port)).unwrap();
    let http = reqwest::Client::new();

    let mut first = Server::spawn(&dir);
    let body = json!({
        "workflow": "tryon",
        "params": {"person_image": "https://example.com/me.jpg"},
        "items": [
            {"garment_image": "https://example.com/shirt.jpg",  "description": "blue shirt"},
            {"garment_image": "https://example.com/jacket.jpg", "description": "denim jacket"},
            {"garment_image": "https://example.com/scarf.jpg",  "description": "red scarf"}
        ]
    });
    let response = http
        .post(format!("{}/v1/tasks", first.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let task_id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let task_url = format!("{}/v1/tasks/{task_id}", first.url);
    let step1 = eventually("step 1 has a prediction", LIMIT, || async {
        let task = get_json(&http, &task_url, None).await?;
        task["steps"][0]["prediction_id"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    let secret_url = format!("{}/v1/webhooks/default/secret", first.sim_url);
    let secret = get_json(&http, &secret_url, Some(SIM_TOKEN))
        .await
        .expect("the simulator's secret");
    first.kill9();

    let second = Server::spawn(&dir);
    assert_eq!(
        second.sim_url, first.sim_url,
        "the simulator is back on its port"
    );
    let secret_url = format!("{}/v1/webhooks/default/secret", second.sim_url);
    assert_eq!(
        get_json(&http, &secret_url, Some(SIM_TOKEN)).await,
        Some(secret),
        "the same webhook secret"
    );
    let task_url = format!("{}/v1/tasks/{task_id}", second.url);
    let task = eventually("the task finishes", LIMIT, || async {
        let task = get_json(&http, &task_url, None).await?;
        ["succeeded", "failed", "canceled"]
            .contains(&task["status"].as_str()?)
            .then_some(task)
    })
    .await;
    assert_eq!(task["status"], "succeeded", "{task:#}");
    let steps = task["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3, "{task:#}");
    assert_eq!(
        steps[0]["prediction_id"],
        step1.as_str(),
        "step 1 kept the first run's prediction"
    );

    // One prediction per step at the simulator, each the one its step recorded, chained.
    let predictions = sim_predictions(&http, &second.sim_url).await;
    assert!(
        predictions.iter().any(|p| p["id"] == step1.as_str()),
        "the first run's prediction is still listed"
    );
    assert_eq!(
        predictions.len(),
        3,
        "no second prediction for any step: {predictions:#?}"
    );
    let mut previous = json!("https://example.com/me.jpg");
    for (step, item) in steps.iter().zip(body["items"].as_array().unwrap()) {
        let for_step: Vec<&Value> = predictions
            .iter()
            .filter(|p| p["input"]["garm_img"] == item["garment_image"])
            .collect();
        assert_eq!(
            for_step.len(),
            1,
            "exactly one prediction for {}: {for_step:#?}",
            item["garment_image"]
        );
        assert_eq!(step["prediction_id"], for_step[0]["id"]);
        assert_eq!(step["status"], "succeeded");
        assert_eq!(for_step[0]["status"], "succeeded");
        assert_eq!(
            for_step[0]["input"]["human_img"], previous,
            "step {} chains",
            step["index"]
        );
        previous = for_step[0]["output"].clone();
    }
    assert_eq!(task["output"], previous);
}

/// Prints the engine's log (both runs) when the test fails.
fn print_log_on_failure(dir: &Path) -> impl Drop + '_ {
    struct Guard<'a>(&'a Path);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                eprintln!(
                    "engine log:\n{}",
                    std::fs::read_to_string(self.0.join("engine.log")).unwrap_or_default()
                );
            }
        }
    }
    Guard(dir)
}
