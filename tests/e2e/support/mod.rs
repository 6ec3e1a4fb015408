//! Helpers for black-box tests: a simulated Replicate in-process, the real `stepwise`
//! binary as a child process, and waits that poll a condition until a deadline.
#![allow(dead_code)]

pub mod browser;

use replicate_sim::{ModelBehavior, OutputShape, SimConfig, SimHandle};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SIM_TOKEN: &str = "r8_test_token";

/// A simulated Replicate with the models the test workflows use.
pub async fn start_sim(processing_ms: u64) -> SimHandle {
    start_sim_with(processing_ms, |_| {}).await
}

/// `start_sim`, with `tweak` applied to the simulator's config before it starts.
pub async fn start_sim_with(processing_ms: u64, tweak: impl FnOnce(&mut SimConfig)) -> SimHandle {
    let quick = |ms| ModelBehavior {
        starting_ms: ms / 4,
        processing_ms: ms,
        ..Default::default()
    };
    let mut config = SimConfig {
        token: SIM_TOKEN.into(),
        default_model: quick(processing_ms),
        ..Default::default()
    };
    config
        .models
        .insert("test/tryon".into(), quick(processing_ms));
    config.models.insert(
        "test/failing".into(),
        ModelBehavior {
            failure_rate: 1.0,
            failure_message: "CUDA out of memory".into(),
            ..quick(processing_ms)
        },
    );
    config.models.insert(
        "test/list".into(),
        ModelBehavior {
            output: OutputShape::UrlList,
            ..quick(processing_ms)
        },
    );
    config.models.insert(
        "test/slow".into(),
        ModelBehavior {
            starting_ms: 100,
            processing_ms: 600_000,
            ..Default::default()
        },
    );
    tweak(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    replicate_sim::start(config, listener).await.unwrap()
}

/// A config for `stepwise serve` against `sim_url`, storing in `dir/data`, with quick polls.
pub fn config_toml(dir: &Path, sim_url: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
{extra}
[storage]
data_dir = "{data}"
[replicate]
api_base = "{sim_url}"
poll_initial_ms = 40
poll_max_ms = 200
creates_per_minute = 60000
create_burst = 1000
other_calls_per_minute = 600000
other_burst = 10000
[workflows.tryon]
model = "test/tryon"
max_items = 5
[workflows.tryon.input]
human_img = "{{{{previous.output}}}}"
garm_img = "{{{{item.garment_image}}}}"
garment_des = "{{{{item.description}}}}"
steps = 30
[workflows.tryon.first]
human_img = "{{{{params.person_image}}}}"
[workflows.failing]
model = "test/failing"
[workflows.failing.input]
x = "{{{{item.x}}}}"
[workflows.listy]
model = "test/list"
[workflows.listy.input]
image = "{{{{previous.output.0}}}}"
n = "{{{{item.n}}}}"
[workflows.listy.first]
image = "{{{{params.start}}}}"
[workflows.retrying]
model = "test/failing"
step_retries = 2
[workflows.retrying.input]
x = "{{{{item.x}}}}"
[workflows.slow]
model = "test/slow"
step_timeout = "1s"
step_retries = 1
[workflows.slow.input]
x = "{{{{item.x}}}}"
[workflows.deadline]
model = "test/slow"
task_timeout = "1s"
[workflows.deadline.input]
x = "{{{{item.x}}}}"
[workflows.capped]
model = "test/tryon"
max_in_flight = 2
[workflows.capped.input]
x = "{{{{item.x}}}}"
"#,
        data = dir.join("data").display()
    )
}

/// The real binary, serving on a port it picked.
pub struct App {
    child: Option<Child>,
    pub url: String,
    pub http: reqwest::Client,
    pub dir: PathBuf,
}

impl App {
    /// Writes `config` to `dir/config.toml` and starts `stepwise serve` on it.
    pub fn spawn(dir: &Path, config: &str) -> App {
        Self::spawn_with_env(dir, config, &[])
    }

    /// Like `spawn`, with extra environment variables (e.g. fault injection).
    pub fn spawn_with_env(dir: &Path, config: &str, env: &[(&str, &str)]) -> App {
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("engine.log"))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_stepwise"))
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("REPLICATE_API_TOKEN", SIM_TOKEN)
            .env("STEPWISE_LOG", "info,stepwise_engine=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("the stepwise binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("stepwise listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "stepwise did not start; log:\n{}",
                    std::fs::read_to_string(dir.join("engine.log")).unwrap_or_default()
                )
            });
        App {
            child: Some(child),
            url,
            http: reqwest::Client::new(),
            dir: dir.to_owned(),
        }
    }

    /// `kill -9`: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Waits until the process exits by itself (e.g. an injected crash).
    pub async fn wait_for_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the engine did not exit within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().unwrap()
    }

    pub async fn start_task(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/tasks", self.url))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `POST /v1/tasks/{id}/{action}` (cancel, retry): status and body.
    pub async fn control(&self, id: &str, action: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/v1/tasks/{id}/{action}", self.url))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// Starts a task and returns its id, asserting a 201.
    pub async fn start_ok(&self, body: &Value) -> String {
        let response = self.start_task(body).await;
        assert_eq!(response.status(), 201);
        response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Polls the task until `check` accepts it or `within` passes.
    pub async fn wait_for(
        &self,
        id: &str,
        within: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let task = self.get_task(id).await;
            if check(&task) {
                return task;
            }
            assert!(
                Instant::now() < deadline,
                "condition not met in {within:?}: {task:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn get_task(&self, id: &str) -> Value {
        let response = self
            .http
            .get(format!("{}/v1/tasks/{id}", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Polls the task until it is terminal or `within` passes.
    pub async fn wait_until_finished(&self, id: &str, within: Duration) -> Value {
        let terminal = |task: &Value| {
            ["succeeded", "failed", "canceled"].contains(&task["status"].as_str().unwrap_or(""))
        };
        self.wait_for(id, within, terminal).await
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A try-on start body whose items are tagged with `tag`, so each step's input is unique.
pub fn tryon_body(tag: &str, items: usize) -> Value {
    let items: Vec<Value> = (1..=items)
        .map(|i| json!({"garment_image": format!("https://img/{tag}/g{i}.png"), "description": format!("{tag} garment {i}")}))
        .collect();
    json!({"workflow": "tryon", "params": {"person_image": format!("https://img/{tag}/person.png")}, "items": items})
}

/// Every prediction the simulator holds whose input has `garm_img` == `garment`.
pub fn predictions_for(sim: &SimHandle, garment: &str) -> Vec<Value> {
    sim.predictions()
        .into_iter()
        .filter(|p| p["input"]["garm_img"] == garment)
        .collect()
}

/// Checks a finished try-on task: succeeded, and each step's input carries the previous
/// step's output, as the simulator recorded them.
pub fn assert_chained(sim: &SimHandle, task: &Value, tag: &str) {
    assert_eq!(task["status"], "succeeded", "{task:#}");
    let steps = task["steps"].as_array().unwrap();
    let mut previous = json!(format!("https://img/{tag}/person.png"));
    for (i, step) in steps.iter().enumerate() {
        let garment = format!("https://img/{tag}/g{}.png", i + 1);
        let predictions = predictions_for(sim, &garment);
        assert_eq!(
            predictions.len(),
            1,
            "exactly one prediction for {garment}: {predictions:#?}"
        );
        let prediction = &predictions[0];
        assert_eq!(
            prediction["input"]["human_img"],
            previous,
            "step {} input chains",
            i + 1
        );
        assert_eq!(step["prediction_id"], prediction["id"]);
        assert_eq!(step["output"], prediction["output"]);
        assert_eq!(step["status"], "succeeded");
        previous = prediction["output"].clone();
    }
    assert_eq!(task["output"], previous);
}
