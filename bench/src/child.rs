//! The engine as a child process (`serve` of this very executable, which runs the product's
//! `stepwise::serve`, or of the binary `--stepwise-bin` names), so that its memory and CPU
//! can be measured apart from the benchmark driver and the simulator, and so that it can be
//! `kill -9`ed. The simulator stays in the benchmark process; the child talks to it over
//! loopback like it would talk to Replicate.

use crate::procfs::{self, Memory};
use anyhow::Context;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The workflow every child engine serves: the same `chain` as the in-process harness.
pub const WORKFLOW: &str = "chain";

/// The executable the child engine runs as `EXE serve --config PATH`.
#[derive(Clone, Debug)]
pub struct EngineBinary(PathBuf);

impl EngineBinary {
    /// `asked` (`--stepwise-bin`, `STEPWISE_BIN`) when given, which must exist; else this
    /// executable, whose hidden `serve` is the product's.
    pub fn choose(asked: Option<PathBuf>) -> anyhow::Result<EngineBinary> {
        match asked {
            Some(path) => EngineBinary::at(&path),
            None => Ok(EngineBinary(
                std::env::current_exe().context("cannot find this executable")?,
            )),
        }
    }

    /// A binary given by path, refused with a way out when it is missing.
    pub fn at(path: &Path) -> anyhow::Result<EngineBinary> {
        anyhow::ensure!(
            path.is_file(),
            "--stepwise-bin {}: no such file. Build the engine first \
             (`cargo build --release -p stepwise`, then pass target/release/stepwise), \
             or leave --stepwise-bin and STEPWISE_BIN unset to serve it from this executable",
            path.display()
        );
        Ok(EngineBinary(path.to_owned()))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// What the child engine is started with.
#[derive(Clone, Debug)]
pub struct ChildConfig {
    /// The executable that serves it.
    pub program: EngineBinary,
    /// Where `config.toml` and `engine.log` go.
    pub dir: PathBuf,
    /// The engine's data dir (kept across restarts by the caller).
    pub data_dir: PathBuf,
    /// The simulator's base URL and token.
    pub api_base: String,
    pub api_token: String,
    pub model: String,
    pub poll_initial_ms: u64,
    pub poll_max_ms: u64,
    pub max_items: usize,
    /// `[storage] cache_bytes` (sled's page cache); `None`: the engine's default (64 MiB).
    pub cache_bytes: Option<u64>,
}

impl ChildConfig {
    pub fn toml(&self) -> String {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\
             [storage]\ndata_dir = {data:?}\n{cache}\
             [replicate]\napi_base = \"{api}\"\napi_token = \"{token}\"\n\
             poll_initial_ms = {initial}\npoll_max_ms = {max}\n\
             creates_per_minute = 600000\ncreate_burst = 100000\n\
             other_calls_per_minute = 600000\nother_burst = 100000\n\
             [workflows.{WORKFLOW}]\nmodel = \"{model}\"\nmax_items = {items}\n\
             [workflows.{WORKFLOW}.input]\nimage = \"{{{{previous.output}}}}\"\nn = \"{{{{item.n}}}}\"\n\
             [workflows.{WORKFLOW}.first]\nimage = \"{{{{params.start}}}}\"\n",
            data = self.data_dir.display().to_string(),
            cache = self.cache_bytes.map(|b| format!("cache_bytes = {b}\n")).unwrap_or_default(),
            api = self.api_base,
            token = self.api_token,
            initial = self.poll_initial_ms,
            max = self.poll_max_ms,
            model = self.model,
            items = self.max_items.max(1),
        )
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("engine.log")
    }
}

/// `/healthz` as the engine answers it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Health {
    pub resumed: bool,
    pub unfinished: u64,
}

/// A running `stepwise serve` child. Dropping it kills the process.
pub struct EngineProcess {
    child: Option<std::process::Child>,
    url: String,
    pid: u32,
    log: PathBuf,
    /// Just before `spawn`.
    pub spawned_at: Instant,
    /// When the `stepwise listening on …` line was read.
    pub listening_at: Instant,
    pub http: reqwest::Client,
}

impl EngineProcess {
    /// Writes the config and starts the child; returns once it printed its address (or fails
    /// after `within`, quoting the end of its log).
    pub async fn spawn(config: &ChildConfig, within: Duration) -> anyhow::Result<EngineProcess> {
        let config_path = config.dir.join("config.toml");
        std::fs::write(&config_path, config.toml())?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(config.log_path())?;
        let exe = config.program.path();
        let spawned_at = Instant::now();
        // `STEPWISE_BENCH_CHILD_WRAPPER="valgrind --tool=massif"` runs the child under a
        // profiler (it execs in place, so the pid and /proc figures stay the child's).
        let wrapper = std::env::var("STEPWISE_BENCH_CHILD_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut command = Command::new(program);
                command.args(words).arg(exe);
                command
            }
            None => Command::new(exe),
        };
        let mut child = command
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("REPLICATE_API_TOKEN", &config.api_token)
            .env("STEPWISE_LOG", "warn")
            .env_remove("STEPWISE_API_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("cannot start the engine child {}", exe.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Keeps reading (and dropping) stdout after the address, so the child never blocks on
        // a full pipe; ends when the child exits.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("stepwise listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send((url.trim().to_owned(), Instant::now()));
                    }
                }
            }
        });
        let mut process = EngineProcess {
            child: Some(child),
            url: String::new(),
            pid,
            log: config.log_path(),
            spawned_at,
            listening_at: spawned_at,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()?,
        };
        match tokio::time::timeout(within, rx).await {
            Ok(Ok((url, at))) => {
                process.url = url;
                process.listening_at = at;
                Ok(process)
            }
            Ok(Err(_)) => {
                let status = process.child.as_mut().and_then(|c| c.wait().ok());
                anyhow::bail!(
                    "the engine exited ({status:?}) before listening; log:\n{}",
                    process.log_tail()
                )
            }
            Err(_) => anyhow::bail!(
                "the engine did not listen within {within:?}; log:\n{}",
                process.log_tail()
            ),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Resident set size (`VmRSS`), in bytes.
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        Ok(self.memory()?.rss)
    }

    /// `VmRSS`, `RssAnon`, `RssFile` and `VmHWM`.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        procfs::memory(self.pid)
    }

    /// User plus system CPU time of every thread, in clock ticks.
    pub fn cpu_ticks(&self) -> anyhow::Result<u64> {
        procfs::cpu_ticks(self.pid)
    }

    /// CPU seconds used so far (all threads).
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        Ok(self.cpu_ticks()? as f64 / procfs::clock_ticks_per_second())
    }

    /// Context switches of each live thread, by thread id (`procfs::context_switches`).
    pub fn context_switches(&self) -> anyhow::Result<HashMap<String, u64>> {
        procfs::context_switches(self.pid)
    }

    /// Threads of the process.
    pub fn threads(&self) -> usize {
        procfs::threads(self.pid)
    }

    /// `kill -9`, then reaps the process.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (a clean shutdown, which lets a profiler wrapping the child write its
    /// output), then SIGKILL if it has not exited within `grace`.
    pub fn terminate(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: signals our own child, which has not been reaped yet (so the pid is its).
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// `GET /healthz` once.
    pub async fn health(&self) -> anyhow::Result<Health> {
        let body: serde_json::Value = self
            .http
            .get(format!("{}/healthz", self.url))
            .timeout(Duration::from_secs(5))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(Health {
            resumed: body["resumed"] == true,
            unfinished: body["unfinished"].as_u64().unwrap_or(0),
        })
    }

    /// Polls `/healthz` every 5 ms until it says `resumed: true` and `unfinished` satisfies
    /// `unfinished_ok`; returns the answer and when it came.
    pub async fn wait_for_healthz_resumed(
        &self,
        deadline: Instant,
        unfinished_ok: impl Fn(u64) -> bool,
    ) -> anyhow::Result<(Health, Instant)> {
        let mut last = None;
        loop {
            if let Ok(health) = self.health().await {
                if health.resumed && unfinished_ok(health.unfinished) {
                    return Ok((health, Instant::now()));
                }
                last = Some(health);
            }
            self.ensure_running()?;
            anyhow::ensure!(
                Instant::now() < deadline,
                "the engine did not resume in time (last /healthz: {last:?})"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Fails (with the log) when the child has exited.
    pub fn ensure_running(&self) -> anyhow::Result<()> {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            // A zombie (exited, not reaped yet) counts as gone.
            if !status
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            {
                return Ok(());
            }
        }
        anyhow::bail!(
            "the engine process {} exited; log:\n{}",
            self.pid(),
            self.log_tail()
        )
    }

    /// Warnings and errors the child logged so far: their count and the first few distinct
    /// messages (timestamps and task ids left out), so a report can say what went wrong.
    pub fn log_warnings(&self) -> (usize, Vec<String>) {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut count = 0;
        let mut distinct: Vec<String> = vec![];
        for line in log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        {
            count += 1;
            // `2026-…Z  WARN target: message key=value…`: keep level, target and message.
            let text = line
                .split_once(" WARN ")
                .or_else(|| line.split_once(" ERROR "))
                .map_or(line, |(_, rest)| rest);
            let message: String = text
                .split(" task_id=")
                .next()
                .unwrap_or(text)
                .chars()
                .take(200)
                .collect();
            if distinct.len() < 5 && !distinct.contains(&message) {
                distinct.push(message);
            }
        }
        (count, distinct)
    }

    /// The last lines of the child's stderr log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
