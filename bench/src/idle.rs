//! The cost of waiting: M tasks whose predictions run for a day, in an engine running as a
//! child process. Measures its resident memory before the tasks are started and once they
//! are all waiting (memory per waiting task), then its CPU use over a window in which
//! nothing happens (no status check is due: polling is set slow on purpose, so this is the
//! idle cost of the runtime, the timer wheel and sled's background threads).

use super::child::{EngineBinary, EngineProcess};
use super::procfs;
use super::rig::{self, Rig};
use super::Report;
use serde_json::json;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Options {
    /// Waiting tasks; several sizes comma-separated (`10000,30000,100000`), each measured in a
    /// fresh engine and data dir.
    #[arg(long, value_delimiter = ',', default_value = "100000")]
    tasks: Vec<usize>,
    /// Steps per task (only the first one runs: its prediction takes a day).
    #[arg(long, default_value_t = 1)]
    steps: usize,
    /// Concurrent clients starting tasks.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Wait after the last prediction is created before measuring memory.
    #[arg(long, default_value_t = 5.0)]
    settle_seconds: f64,
    /// The window over which idle CPU is measured.
    #[arg(long, default_value_t = 10.0)]
    idle_seconds: f64,
    /// First status check after a create. The default keeps every check out of the window.
    #[arg(long, default_value_t = 600_000)]
    poll_initial_ms: u64,
    #[arg(long, default_value_t = 3_600_000)]
    poll_max_ms: u64,
    /// sled's page cache (`[storage] cache_bytes`); default: the engine's (32 MiB).
    #[arg(long)]
    cache_bytes: Option<u64>,
}

/// Targets: 100 000 waiting tasks in under 3 KiB each and under 2% of one core.
const TARGET_BYTES_PER_TASK: f64 = 3072.0;
const TARGET_IDLE_CPU_PERCENT: f64 = 2.0;
/// A day: predictions never finish during the run.
const PREDICTION_MS: u64 = 24 * 3600 * 1000;

#[derive(serde::Serialize)]
struct Measured {
    tasks: usize,
    steps: usize,
    predictions_created: u64,
    unfinished: u64,
    start_seconds: f64,
    starts_per_second: f64,
    baseline: procfs::Memory,
    waiting: procfs::Memory,
    bytes_per_task: f64,
    anon_bytes_per_task: f64,
    /// (RSS - RSS of the next smaller size measured) / (tasks - its tasks): the cost of one
    /// more waiting task, without the fixed costs that first use brings. `None` for the
    /// smallest size.
    marginal_bytes_per_task: Option<f64>,
    idle_seconds: f64,
    idle_cpu_seconds: f64,
    idle_cpu_percent: f64,
    idle_context_switches_per_second: f64,
    status_checks_during_idle: u64,
    threads: usize,
    data_dir_bytes: u64,
}

pub async fn run(options: Options, engine: EngineBinary) -> anyhow::Result<Report> {
    anyhow::ensure!(options.steps >= 1, "--steps must be at least 1");
    anyhow::ensure!(
        !options.tasks.is_empty() && options.tasks.iter().all(|&n| n > 0),
        "--tasks must be positive"
    );
    let mut rows: Vec<Measured> = vec![];
    for &tasks in &options.tasks {
        rows.push(measure(&options, &engine, tasks).await?);
    }
    rows.sort_by_key(|m| m.tasks);
    for i in 1..rows.len() {
        let (smaller, larger) = (&rows[i - 1], &rows[i]);
        if larger.tasks > smaller.tasks {
            let grown = larger.waiting.rss as f64 - smaller.waiting.rss as f64;
            rows[i].marginal_bytes_per_task = Some(grown / (larger.tasks - smaller.tasks) as f64);
        }
    }
    let mut table = format!(
        "idle: tasks waiting on {} h predictions, engine as a child process (polls: first after {} s, max {} s; sled cache {})\n\
         {:>8} {:>9} {:>10} {:>10} {:>10} {:>9} {:>10} {:>9} {:>8} {:>8}\n",
        PREDICTION_MS / 3_600_000,
        options.poll_initial_ms / 1000,
        options.poll_max_ms / 1000,
        options.cache_bytes.map_or("32 MiB (default)".to_owned(), |b| format!("{} MiB", b / 1048576)),
        "tasks",
        "starts/s",
        "base MiB",
        "after MiB",
        "B/task",
        "anonB/t",
        "marg. B/t",
        "idle CPU",
        "csw/s",
        "polls",
    );
    for m in &rows {
        table.push_str(&format!(
            "{:>8} {:>9.0} {:>10.1} {:>10.1} {:>10.0} {:>9.0} {:>10} {:>8.2}% {:>8.1} {:>8}\n",
            m.tasks,
            m.starts_per_second,
            m.baseline.rss as f64 / 1048576.0,
            m.waiting.rss as f64 / 1048576.0,
            m.bytes_per_task,
            m.anon_bytes_per_task,
            m.marginal_bytes_per_task
                .map_or("-".to_owned(), |b| format!("{b:.0}")),
            m.idle_cpu_percent,
            m.idle_context_switches_per_second,
            m.status_checks_during_idle,
        ));
    }
    let largest = rows
        .iter()
        .max_by_key(|m| m.tasks)
        .expect("at least one size");
    let memory_met = largest.bytes_per_task < TARGET_BYTES_PER_TASK;
    let cpu_met = largest.idle_cpu_percent < TARGET_IDLE_CPU_PERCENT;
    table.push_str(&format!(
        "targets at {} tasks: < 3 KiB/task: {} ({:.0} B); < 2% of one core idle: {} ({:.2}%)",
        largest.tasks,
        if memory_met { "met" } else { "MISSED" },
        largest.bytes_per_task,
        if cpu_met { "met" } else { "MISSED" },
        largest.idle_cpu_percent,
    ));
    let json = json!({
        "scenario": "idle",
        "steps": options.steps,
        "prediction_ms": PREDICTION_MS,
        "poll_initial_ms": options.poll_initial_ms,
        "poll_max_ms": options.poll_max_ms,
        "settle_seconds": options.settle_seconds,
        "idle_seconds": options.idle_seconds,
        "cache_bytes": options.cache_bytes,
        "clock_ticks_per_second": procfs::clock_ticks_per_second(),
        "results": rows,
        "targets": {
            "tasks": largest.tasks,
            "bytes_per_task_below": TARGET_BYTES_PER_TASK,
            "bytes_per_task_met": memory_met,
            "idle_cpu_percent_below": TARGET_IDLE_CPU_PERCENT,
            "idle_cpu_met": cpu_met,
        },
    });
    Ok(Report { table, json })
}

async fn measure(
    options: &Options,
    program: &EngineBinary,
    tasks: usize,
) -> anyhow::Result<Measured> {
    let mut rig = Rig::start(
        program,
        PREDICTION_MS,
        options.poll_initial_ms,
        options.poll_max_ms,
        options.steps,
    )
    .await?;
    rig.config.cache_bytes = options.cache_bytes;
    let mut engine = EngineProcess::spawn(&rig.config, Duration::from_secs(60)).await?;
    engine
        .wait_for_healthz_resumed(Instant::now() + Duration::from_secs(60), |n| n == 0)
        .await?;
    // The baseline: started, one answered request (the health check), nothing stored.
    tokio::time::sleep(Duration::from_secs_f64(options.settle_seconds.min(2.0))).await;
    let baseline = engine.memory()?;

    let started = Instant::now();
    let ids = rig::start_tasks(&engine, tasks, options.steps, options.clients).await?;
    let start_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        ids.len() == tasks && ids.iter().all(|id| id.starts_with("tsk_")),
        "not every start answered an id"
    );
    rig::wait_created(
        &rig,
        &engine,
        tasks as u64,
        tasks as u64,
        Duration::from_secs(600),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs_f64(options.settle_seconds)).await;
    let waiting = engine.memory()?;

    // The idle window: nobody calls the engine, no status check falls due.
    let checks_before = rig.status_checks();
    let (ticks_before, switches_before) = (engine.cpu_ticks()?, engine.context_switches()?);
    let window_start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(options.idle_seconds)).await;
    let (ticks_after, switches_after) = (engine.cpu_ticks()?, engine.context_switches()?);
    let window = window_start.elapsed().as_secs_f64();
    let status_checks_during_idle = rig.status_checks() - checks_before;
    let idle_cpu_seconds = (ticks_after - ticks_before) as f64 / procfs::clock_ticks_per_second();

    let health = engine.health().await?;
    let predictions_created = rig.sim.create_calls();
    let threads = engine.threads();
    let data_dir_bytes = super::disk::disk_use(&rig.config.data_dir)
        .map(|d| d.apparent_bytes)
        .unwrap_or(0);
    // A clean stop, so a profiler wrapping the child (STEPWISE_BENCH_CHILD_WRAPPER) can write.
    engine.terminate(Duration::from_secs(120));
    rig.stop().await;
    Ok(Measured {
        tasks,
        steps: options.steps,
        predictions_created,
        unfinished: health.unfinished,
        start_seconds,
        starts_per_second: tasks as f64 / start_seconds,
        baseline,
        waiting,
        bytes_per_task: waiting.rss.saturating_sub(baseline.rss) as f64 / tasks as f64,
        anon_bytes_per_task: waiting.anon.saturating_sub(baseline.anon) as f64 / tasks as f64,
        idle_seconds: window,
        idle_cpu_seconds,
        idle_cpu_percent: 100.0 * idle_cpu_seconds / window,
        idle_context_switches_per_second: procfs::switches_between(
            &switches_before,
            &switches_after,
        ) as f64
            / window,
        status_checks_during_idle,
        marginal_bytes_per_task: None,
        threads,
        data_dir_bytes,
    })
}
