//! The real `stepwise` binary as a child process: started on a config file, found by the
//! "stepwise listening on" line it prints, driven over HTTP, and killed (`kill -9`) when the
//! test drops it.

use super::fixtures::SIM_TOKEN;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the binary may take to start listening on a loaded machine.
const START_WITHIN: Duration = Duration::from_secs(30);

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

    /// Like `spawn`, with extra environment variables for the child only (e.g. the
    /// `STEPWISE_FAULT_*` fault injections). The child does not inherit the test's own
    /// `STEPWISE_*` and `REPLICATE_*` variables: every engine starts the same way, whatever the
    /// shell running the tests has set.
    pub fn spawn_with_env(dir: &Path, config: &str, env: &[(&str, &str)]) -> App {
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("engine.log"))
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_stepwise"));
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("STEPWISE_") || name.starts_with("REPLICATE_") {
                command.env_remove(name.as_ref());
            }
        }
        let mut child = command
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("REPLICATE_API_TOKEN", SIM_TOKEN)
            .env("STEPWISE_LOG", "info,stepwise_engine=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("the stepwise binary starts");
        let rx = announced_url(&mut child);
        let url = rx.recv_timeout(START_WITHIN).unwrap_or_else(|_| {
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

    /// The engine's log so far (both runs, when a test restarts it on the same dir).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("engine.log")).unwrap_or_default()
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

    /// `GET path` (e.g. `/v1/tasks?limit=3`) as JSON, asserting a 200.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    pub async fn get_task(&self, id: &str) -> Value {
        self.get_json(&format!("/v1/tasks/{id}")).await
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

    /// Polls the task until it is terminal or `within` passes.
    pub async fn wait_until_finished(&self, id: &str, within: Duration) -> Value {
        self.wait_for(id, within, is_finished).await
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Whether a task (as the API shows it) has reached a terminal status.
pub fn is_finished(task: &Value) -> bool {
    ["succeeded", "failed", "canceled"].contains(&task["status"].as_str().unwrap_or(""))
}

/// The URL a spawned `stepwise serve` announces on stdout ("stepwise listening on URL"),
/// delivered once it is printed; the rest of stdout is read and dropped, so the child never
/// blocks on a full pipe.
pub fn announced_url(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    // Every caller spawns the child with `Stdio::piped()` stdout.
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("stepwise listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    rx
}
