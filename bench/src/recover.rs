//! Recovery after a crash: M unfinished tasks (each waiting on a day-long prediction that
//! exists at the simulator), the engine `kill -9`ed, then restarted on the same data dir.
//! Measured from the restart's spawn: when the API first answers, when `/healthz` says
//! `resumed: true` with all M tasks, when the status API first serves a random task
//! correctly, and when the burst of status checks the restart sends (one per running
//! prediction, at once) has been answered by the simulator.

use super::child::{EngineBinary, EngineProcess};
use super::rig::{self, Rig};
use super::stats::Summary;
use super::Report;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Options {
    /// Unfinished tasks; several sizes comma-separated (`10000,30000,100000`), each measured
    /// in a fresh engine and data dir.
    #[arg(long, value_delimiter = ',', default_value = "100000")]
    tasks: Vec<usize>,
    /// Steps per task (only the first one runs: its prediction takes a day).
    #[arg(long, default_value_t = 1)]
    steps: usize,
    /// Concurrent clients starting (and then verifying) tasks before the crash.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// First status check after a create (the restart checks every prediction at once
    /// regardless); slow, so no check runs before the crash.
    #[arg(long, default_value_t = 600_000)]
    poll_initial_ms: u64,
    #[arg(long, default_value_t = 3_600_000)]
    poll_max_ms: u64,
    /// Longest the restart may take before the run fails.
    #[arg(long, default_value_t = 300)]
    timeout_seconds: u64,
}

/// Targets: 100 000 unfinished tasks resumed in under 5 s; the status API answers in under 1 s.
const TARGET_RESUMED_MS: f64 = 5000.0;
const TARGET_STATUS_MS: f64 = 1000.0;
const PREDICTION_MS: u64 = 24 * 3600 * 1000;

#[derive(serde::Serialize)]
struct Measured {
    tasks: usize,
    steps: usize,
    data_dir_bytes: u64,
    rss_before_kill: u64,
    /// Milliseconds from the restart's spawn.
    listening_ms: f64,
    first_answer_ms: f64,
    resumed_ms: f64,
    resumed_unfinished: u64,
    status_ok_ms: f64,
    burst_done_ms: f64,
    /// Status checks the simulator answered after the restart (at least `tasks`).
    burst_checks: u64,
    burst_checks_per_second: f64,
    /// `GET /v1/tasks/{id}` of random tasks from the first answer until the burst ended.
    status_during_recovery: Summary,
    status_samples_wrong: usize,
    rss_after_resumed: u64,
    rss_after_burst: u64,
    cpu_seconds_to_resumed: f64,
    cpu_seconds_to_burst_done: f64,
    /// Warnings the restarted engine logged (count, first distinct messages).
    engine_warnings: usize,
    engine_warning_samples: Vec<String>,
}

pub async fn run(options: Options, engine: EngineBinary) -> anyhow::Result<Report> {
    anyhow::ensure!(options.steps >= 1, "--steps must be at least 1");
    anyhow::ensure!(
        !options.tasks.is_empty() && options.tasks.iter().all(|&n| n > 0),
        "--tasks must be positive"
    );
    let mut rows = vec![];
    for &tasks in &options.tasks {
        rows.push(measure(&options, &engine, tasks).await?);
    }
    let mut table = format!(
        "recover: kill -9 with M tasks waiting on {} h predictions, restart on the same data dir\n\
         times in ms from the restart's spawn\n\
         {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>9}\n",
        PREDICTION_MS / 3_600_000,
        "tasks",
        "data MiB",
        "listening",
        "1st answ",
        "resumed",
        "status ok",
        "burst end",
        "checks/s",
        "st p50 ms",
        "st p99 ms",
        "RSS MiB",
    );
    for m in &rows {
        table.push_str(&format!(
            "{:>8} {:>8.1} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>10.1} {:>10.1} {:>9.1}\n",
            m.tasks,
            m.data_dir_bytes as f64 / 1048576.0,
            m.listening_ms,
            m.first_answer_ms,
            m.resumed_ms,
            m.status_ok_ms,
            m.burst_done_ms,
            m.burst_checks_per_second,
            m.status_during_recovery.p50_ms,
            m.status_during_recovery.p99_ms,
            m.rss_after_burst as f64 / 1048576.0,
        ));
    }
    let largest = rows
        .iter()
        .max_by_key(|m| m.tasks)
        .expect("at least one size");
    let resumed_met = largest.resumed_ms < TARGET_RESUMED_MS;
    let status_met = largest.status_ok_ms < TARGET_STATUS_MS;
    table.push_str(&format!(
        "targets at {} tasks: resumed < 5 s: {} ({:.0} ms); status API < 1 s: {} ({:.0} ms)",
        largest.tasks,
        if resumed_met { "met" } else { "MISSED" },
        largest.resumed_ms,
        if status_met { "met" } else { "MISSED" },
        largest.status_ok_ms,
    ));
    let json = json!({
        "scenario": "recover",
        "steps": options.steps,
        "prediction_ms": PREDICTION_MS,
        "poll_initial_ms": options.poll_initial_ms,
        "poll_max_ms": options.poll_max_ms,
        "results": rows,
        "targets": {
            "tasks": largest.tasks,
            "resumed_ms_below": TARGET_RESUMED_MS,
            "resumed_met": resumed_met,
            "status_ms_below": TARGET_STATUS_MS,
            "status_met": status_met,
        },
    });
    Ok(Report { table, json })
}

async fn measure(
    options: &Options,
    program: &EngineBinary,
    tasks: usize,
) -> anyhow::Result<Measured> {
    let rig = Rig::start(
        program,
        PREDICTION_MS,
        options.poll_initial_ms,
        options.poll_max_ms,
        options.steps,
    )
    .await?;

    // Build the data dir: M tasks, each with its prediction created and its id journaled.
    let mut engine = EngineProcess::spawn(&rig.config, Duration::from_secs(60)).await?;
    engine
        .wait_for_healthz_resumed(Instant::now() + Duration::from_secs(60), |n| n == 0)
        .await?;
    let ids = rig::start_tasks(&engine, tasks, options.steps, options.clients).await?;
    rig::wait_created(
        &rig,
        &engine,
        tasks as u64,
        tasks as u64,
        Duration::from_secs(600),
    )
    .await?;
    let predictions = journaled_predictions(&engine, &ids, options.clients).await?;
    let rss_before_kill = engine.rss_bytes()?;
    engine.kill9();
    drop(engine);
    let data_dir_bytes = super::disk::disk_use(&rig.config.data_dir)
        .map(|d| d.apparent_bytes)
        .unwrap_or(0);
    let tasks_by_index: Arc<Vec<(String, String)>> =
        Arc::new(ids.into_iter().zip(predictions).collect());

    // The restart.
    let checks_before = rig.status_checks();
    let timeout = Duration::from_secs(options.timeout_seconds);
    let engine = EngineProcess::spawn(&rig.config, timeout).await?;
    let (spawned, listening) = (engine.spawned_at, engine.listening_at);
    let deadline = spawned + timeout;
    let ms = |at: Instant| at.duration_since(spawned).as_secs_f64() * 1000.0;

    // The first answer, then `resumed` with every task.
    let first_answer = loop {
        if engine.health().await.is_ok() {
            break Instant::now();
        }
        engine.ensure_running()?;
        anyhow::ensure!(
            Instant::now() < deadline,
            "the restarted engine never answered /healthz"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };

    // Meanwhile: random tasks' status, one request at a time, until the burst has ended.
    let stop = tokio_util::sync::CancellationToken::new();
    let samples: Arc<Mutex<Vec<(Instant, Duration, bool)>>> = Arc::default();
    let sampler = tokio::spawn(sample_status(
        engine.http.clone(),
        engine.url().to_owned(),
        tasks_by_index.clone(),
        samples.clone(),
        stop.clone(),
    ));

    let (health, resumed) = engine.wait_for_healthz_resumed(deadline, |_| true).await?;
    let rss_after_resumed = engine.rss_bytes()?;
    let cpu_seconds_to_resumed = engine.cpu_seconds()?;
    anyhow::ensure!(
        health.unfinished == tasks as u64,
        "resumed with {} unfinished tasks, expected {tasks}",
        health.unfinished
    );

    let burst_done = loop {
        if rig.status_checks() - checks_before >= tasks as u64 {
            break Instant::now();
        }
        engine.ensure_running()?;
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {tasks} predictions were checked after the restart",
            rig.status_checks() - checks_before
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let burst_checks = rig.status_checks() - checks_before;
    let cpu_seconds_to_burst_done = engine.cpu_seconds()?;
    // Let the status sampler see the first correct answer when the burst was shorter than
    // its first request (small runs).
    while samples.lock().expect("not poisoned").iter().all(|s| !s.2) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.cancel();
    sampler.await??;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_after_burst = engine.rss_bytes()?;
    let health = engine.health().await?;
    anyhow::ensure!(
        health.unfinished == tasks as u64,
        "{} tasks unfinished after the burst, expected {tasks}",
        health.unfinished
    );

    let (engine_warnings, engine_warning_samples) = engine.log_warnings();
    let samples = std::mem::take(&mut *samples.lock().expect("not poisoned"));
    let status_ok = samples
        .iter()
        .find(|s| s.2)
        .map(|s| s.0)
        .ok_or_else(|| anyhow::anyhow!("no status request was answered correctly"))?;
    let during: Vec<Duration> = samples
        .iter()
        .filter(|s| s.0 <= burst_done)
        .map(|s| s.1)
        .collect();
    let wrong = samples.iter().filter(|s| !s.2).count();
    drop(engine);
    rig.stop().await;
    Ok(Measured {
        tasks,
        steps: options.steps,
        data_dir_bytes,
        rss_before_kill,
        listening_ms: ms(listening),
        first_answer_ms: ms(first_answer),
        resumed_ms: ms(resumed),
        resumed_unfinished: health.unfinished,
        status_ok_ms: ms(status_ok),
        burst_done_ms: ms(burst_done),
        burst_checks,
        burst_checks_per_second: burst_checks as f64
            / burst_done.duration_since(resumed).as_secs_f64().max(1e-3),
        status_during_recovery: Summary::of(&during),
        status_samples_wrong: wrong,
        rss_after_resumed,
        rss_after_burst,
        cpu_seconds_to_resumed,
        cpu_seconds_to_burst_done,
        engine_warnings,
        engine_warning_samples,
    })
}

/// Reads every task until each shows its first step's prediction id (so the crash comes
/// after every create answer is journaled); returns those ids, in the order of `ids`.
async fn journaled_predictions(
    engine: &EngineProcess,
    ids: &[String],
    clients: usize,
) -> anyhow::Result<Vec<String>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let deadline = Instant::now() + Duration::from_secs(600);
    let found: Arc<Mutex<Vec<Option<String>>>> = Arc::new(Mutex::new(vec![None; ids.len()]));
    let ids: Arc<Vec<String>> = Arc::new(ids.to_vec());
    let mut progress = super::progress::Progress::new("verifying", ids.len() as u64);
    loop {
        let missing: Arc<Vec<usize>> = Arc::new(
            found
                .lock()
                .expect("not poisoned")
                .iter()
                .enumerate()
                .filter(|(_, f)| f.is_none())
                .map(|(i, _)| i)
                .collect(),
        );
        if missing.is_empty() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} tasks never showed a prediction id",
            missing.len()
        );
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..clients.max(1) {
            let (next, missing, ids, found) =
                (next.clone(), missing.clone(), ids.clone(), found.clone());
            let (http, url) = (engine.http.clone(), engine.url().to_owned());
            workers.spawn(async move {
                while let Some(&i) = missing.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let task: serde_json::Value = http
                        .get(format!("{url}/v1/tasks/{}", ids[i]))
                        .send()
                        .await?
                        .error_for_status()?
                        .json()
                        .await?;
                    found.lock().expect("not poisoned")[i] = task["steps"][0]["prediction_id"]
                        .as_str()
                        .map(str::to_owned);
                }
                anyhow::Ok(())
            });
        }
        while let Some(joined) = workers.join_next().await {
            joined??;
            let done = found
                .lock()
                .expect("not poisoned")
                .iter()
                .filter(|f| f.is_some())
                .count();
            progress.set(done as u64);
        }
        if found
            .lock()
            .expect("not poisoned")
            .iter()
            .any(Option::is_none)
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    progress.finish();
    let found = std::mem::take(&mut *found.lock().expect("not poisoned"));
    Ok(found.into_iter().map(Option::unwrap_or_default).collect())
}

/// Reads random tasks one at a time until `stop`: when each answer came, how long it took,
/// and whether it was right (200, the same id, running, the journaled prediction id).
async fn sample_status(
    http: reqwest::Client,
    url: String,
    tasks: Arc<Vec<(String, String)>>,
    samples: Arc<Mutex<Vec<(Instant, Duration, bool)>>>,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64
        | 1;
    while !stop.is_cancelled() {
        // xorshift64: a fresh random task each time, no extra dependency.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let (id, prediction) = &tasks[(seed % tasks.len() as u64) as usize];
        let sent = Instant::now();
        let answer = http
            .get(format!("{url}/v1/tasks/{id}"))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let ok = match answer {
            Ok(response) if response.status() == 200 => {
                match response.json::<serde_json::Value>().await {
                    Ok(task) => {
                        task["id"] == id.as_str()
                            && task["status"] == "running"
                            && task["steps"][0]["prediction_id"] == prediction.as_str()
                    }
                    Err(_) => false,
                }
            }
            _ => false,
        };
        let took = sent.elapsed();
        samples
            .lock()
            .expect("not poisoned")
            .push((Instant::now(), took, ok));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
