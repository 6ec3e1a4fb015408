//! The `e2e` scenario: N tasks of K steps through the whole engine (API, runtime, journal,
//! Replicate client, webhooks or polling) against a zero-latency simulator (predictions end
//! the moment they are created), so what is measured is the engine's own cost per step;
//! `--prediction-ms` gives the predictions a duration instead, to see the disk cost of many
//! tasks in flight at once.
//!
//! - steps per second: N·K over the wall time from the first start request until the
//!   runtime holds no unfinished task;
//! - engine overhead per step: wall time per step minus the simulator's own time per
//!   prediction (its `completed_at − created_at`, 0 here), both amortised over the run and,
//!   per task, `(completed_at − created_at) / K` from the task's own timestamps (that one
//!   includes queueing behind the other N−1 tasks);
//! - disk: the size of the data dir (file lengths, and allocated blocks × 512 as `du` counts)
//!   after a warm-up, when every task has finished, and after a clean shutdown; the growth
//!   divided by N is the cost of one finished K-step task.
//!
//! `--pipeline` (`e2e_pipeline.rs`) runs this measurement on a pipeline and on the chain.

use super::disk::{self, DiskUse};
use super::e2e_pipeline::Workload;
use super::e2e_tasks::{post_tasks, read_back, until_idle};
use super::harness::{Harness, Setup};
use super::load::{self, Outcome};
use super::stats::Summary;
use super::Report;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone)]
pub struct Options {
    /// Tasks to run. sled grows its file by 512 KiB segments and keeps ~1.5 MB of them in
    /// flight, so fewer tasks measure disk per task coarsely (docs/BENCHMARKS.md, "Disk").
    #[arg(long, default_value_t = 4000)]
    pub tasks: usize,
    /// Steps (items) per task.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Size of a string field (`pad`) in every item, which the workflow also copies into the
    /// step's prediction input. Random base64 characters, different in every item.
    #[arg(long, default_value_t = 100)]
    pub payload_bytes: usize,
    /// Concurrent clients posting the tasks.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Status-check interval of the polling mode (first check and every later one).
    #[arg(long, default_value_t = 10)]
    pub poll_ms: u64,
    /// Only this mode: `webhooks` or `polling`.
    #[arg(long)]
    pub only: Option<String>,
    /// Tasks run (and waited for) before the baseline is taken.
    #[arg(long, default_value_t = 50)]
    pub warmup: usize,
    /// Each prediction's time in the simulator (`processing`, plus a fifth of it `starting`).
    /// 0, the default, measures the engine alone; with it, every task is in flight at once
    /// for a while, as many tasks are in production, which changes how sled's pages age.
    #[arg(long, default_value_t = 0)]
    pub prediction_ms: u64,
    /// Send every start with an `Idempotency-Key` (26 random characters, as a frontend would
    /// make), which the engine keeps as long as the task.
    #[arg(long)]
    pub idempotency_keys: bool,
    /// A four-stage pipeline over ITEMS items (2 + 2·ITEMS steps per task) against the chain
    /// of as many steps, per step (docs/BENCHMARKS.md, "Pipelines").
    #[arg(long, value_name = "ITEMS", num_args = 0..=1, default_missing_value = "3", conflicts_with = "steps")]
    pub pipeline: Option<usize>,
    /// With `--pipeline`: rounds of both, which goes first alternating, so a slow spell
    /// falls on both.
    #[arg(long, default_value_t = 1, requires = "pipeline")]
    pub rounds: usize,
}

/// What one mode measured.
pub(super) struct Run {
    pub(super) mode: String,
    pub(super) starts: Outcome,
    pub(super) wall: Duration,
    pub(super) cpu: Duration,
    pub(super) succeeded: usize,
    pub(super) failed: usize,
    pub(super) predictions: usize,
    pub(super) sim_mean_ms: f64,
    pub(super) overhead: Summary,
    pub(super) groups: (u64, u64),
    pub(super) baseline: DiskUse,
    pub(super) finished: DiskUse,
    pub(super) closed: DiskUse,
    /// The part of `baseline` and `finished` in the archive (settled tasks), the rest being
    /// the journal (tasks in flight, and sled's garbage from them).
    pub(super) archive: (DiskUse, DiskUse),
    /// Keys and key+value bytes in the journal after the run, by key kind (warm-up included).
    pub(super) live: Vec<(char, u64, u64)>,
    /// Tasks in the journal (the warm-up's and the run's).
    pub(super) journal_tasks: usize,
}

impl Run {
    pub(super) fn steps(&self, options: &Options) -> usize {
        options.tasks * options.steps
    }

    fn steps_per_second(&self, options: &Options) -> f64 {
        self.steps(options) as f64 / self.wall.as_secs_f64()
    }

    fn amortised_overhead_ms(&self, options: &Options) -> f64 {
        self.wall.as_secs_f64() * 1000.0 / self.steps(options) as f64 - self.sim_mean_ms
    }

    pub(super) fn live_bytes(&self) -> u64 {
        self.live.iter().map(|(_, _, bytes)| bytes).sum()
    }

    pub(super) fn errors(&self) -> usize {
        self.starts.errors + self.failed
    }

    fn growth(&self, at: DiskUse, options: &Options) -> Value {
        let apparent = at.apparent_bytes as f64 - self.baseline.apparent_bytes as f64;
        let allocated = at.allocated_bytes as f64 - self.baseline.allocated_bytes as f64;
        let (n, k) = (options.tasks as f64, (options.tasks * options.steps) as f64);
        json!({
            "apparent_bytes": at.apparent_bytes,
            "allocated_bytes": at.allocated_bytes,
            "apparent_per_task": apparent / n,
            "allocated_per_task": allocated / n,
            "apparent_per_step": apparent / k,
            "allocated_per_step": allocated / k,
        })
    }

    fn archive_growth(&self) -> f64 {
        self.archive.1.allocated_bytes as f64 - self.archive.0.allocated_bytes as f64
    }

    pub(super) fn json(&self, options: &Options) -> Value {
        json!({
            "tasks": options.tasks,
            "steps": self.steps(options),
            "succeeded": self.succeeded,
            "failed": self.failed,
            "errors": self.errors(),
            "predictions": self.predictions,
            "wall_seconds": self.wall.as_secs_f64(),
            "steps_per_second": self.steps_per_second(options),
            "tasks_per_second": options.tasks as f64 / self.wall.as_secs_f64(),
            "simulator_ms_per_prediction": self.sim_mean_ms,
            "overhead_ms_per_step_amortised": self.amortised_overhead_ms(options),
            "overhead_ms_per_step_per_task": self.overhead,
            "cpu_seconds": self.cpu.as_secs_f64(),
            "cpu_us_per_step": self.cpu.as_secs_f64() * 1e6 / self.steps(options) as f64,
            "journal_groups": self.groups.0,
            "journal_task_writes": self.groups.1,
            "starts": self.starts.json(),
            "journal_live": {
                "tasks": self.journal_tasks,
                "bytes_per_task": self.live_bytes() as f64 / self.journal_tasks.max(1) as f64,
                "by_kind": self.live.iter().map(|(kind, keys, bytes)| (kind.to_string(), json!({ "keys": keys, "bytes": bytes }))).collect::<serde_json::Map<_, _>>(),
            },
            "disk": {
                "baseline": self.baseline,
                "finished": self.growth(self.finished, options),
                "after_shutdown": self.growth(self.closed, options),
                "archive_allocated_per_task": self.archive_growth() / options.tasks as f64,
            },
        })
    }
}

pub async fn run(options: Options) -> anyhow::Result<Report> {
    if let Some(items) = options.pipeline {
        return super::e2e_pipeline::run(options, items).await;
    }
    anyhow::ensure!(
        options.tasks > 0 && options.steps > 0,
        "--tasks and --steps must be at least 1"
    );
    anyhow::ensure!(
        options.steps <= 100,
        "--steps must be at most 100 (the workflow's max_items)"
    );
    let mut runs = vec![];
    let chain = Workload::Chain {
        steps: options.steps,
    };
    for (name, webhooks) in modes(&options)? {
        runs.push(measure(&options, chain, name, webhooks).await?);
    }

    let kib = |bytes: f64| bytes / 1024.0;
    let mut table = format!(
        "e2e: {} tasks x {} steps, items with a {} B string, {}, {} posting clients\n",
        options.tasks,
        options.steps,
        options.payload_bytes,
        match options.prediction_ms {
            0 => "zero-latency simulator".to_string(),
            ms => format!("predictions of {} ms", ms + ms / 5),
        },
        options.clients
    );
    table += &format!(
        "{:<16} {:>7} {:>8} {:>9} {:>8} {:>10} | {:>32} | {:>9} {:>6}\n",
        "mode",
        "steps",
        "wall s",
        "steps/s",
        "tasks/s",
        "ovh ms/st",
        "per-task ovh ms/step p50/p90/p99/max",
        "cpu us/st",
        "errors"
    );
    for run in &runs {
        let o = &run.overhead;
        table += &format!(
            "{:<16} {:>7} {:>8.2} {:>9.0} {:>8.0} {:>10} | {:>32} | {:>9.0} {:>6}\n",
            run.mode,
            run.steps(&options),
            run.wall.as_secs_f64(),
            run.steps_per_second(&options),
            options.tasks as f64 / run.wall.as_secs_f64(),
            // With slow predictions running side by side, wall time per step says nothing of
            // the engine: only the per-task figure does.
            match options.prediction_ms {
                0 => format!("{:.3}", run.amortised_overhead_ms(&options)),
                _ => "-".to_string(),
            },
            format!(
                "{:.1} / {:.1} / {:.1} / {:.1}",
                o.p50_ms, o.p90_ms, o.p99_ms, o.max_ms
            ),
            run.cpu.as_secs_f64() * 1e6 / run.steps(&options) as f64,
            run.errors()
        );
    }
    table += "ovh ms/st: wall time per step minus the simulator's time per prediction (amortised); per-task: (completed_at - created_at)/steps - simulator time\n";
    table += "disk: growth of the data dir over the baseline taken after the warm-up (apparent = file lengths; allocated = blocks x 512, as du)\n";
    table += &format!(
        "{:<16} {:>14} {:>22} {:>22} {:>22}\n",
        "mode",
        "baseline KiB",
        "at finish KiB app/alloc",
        "per task B app/alloc",
        "after close B/task"
    );
    for run in &runs {
        let per_task = |at: DiskUse| {
            (
                (at.apparent_bytes as f64 - run.baseline.apparent_bytes as f64)
                    / options.tasks as f64,
                (at.allocated_bytes as f64 - run.baseline.allocated_bytes as f64)
                    / options.tasks as f64,
            )
        };
        let (fa, fb) = per_task(run.finished);
        let (ca, cb) = per_task(run.closed);
        table += &format!(
            "{:<16} {:>14} {:>22} {:>22} {:>22}\n",
            run.mode,
            format!(
                "{:.0}/{:.0}",
                kib(run.baseline.apparent_bytes as f64),
                kib(run.baseline.allocated_bytes as f64)
            ),
            format!(
                "{:.0}/{:.0}",
                kib(run.finished.apparent_bytes as f64),
                kib(run.finished.allocated_bytes as f64)
            ),
            format!("{fa:.0}/{fb:.0}"),
            format!("{ca:.0}/{cb:.0}"),
        );
    }
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    let mut targets = serde_json::Map::new();
    for run in &runs {
        let rate = run.steps_per_second(&options);
        table += &format!(
            "{}: {rate:.0} steps/s (target >= 2000: {})",
            run.mode,
            met(rate >= 2000.0)
        );
        targets.insert(
            format!("{}_steps_per_second_at_least_2000", key(&run.mode)),
            json!(rate >= 2000.0),
        );
        if options.steps == 3 {
            let per_task = (run.finished.allocated_bytes as f64
                - run.baseline.allocated_bytes as f64)
                / options.tasks as f64;
            table += &format!(
                "; {:.0} B allocated per 3-step task (target < 4096: {})",
                per_task,
                met(per_task < 4096.0)
            );
            targets.insert(
                format!("{}_disk_under_4_kib_per_task", key(&run.mode)),
                json!(per_task < 4096.0),
            );
        }
        table += &format!(
            "; {} predictions, {} journal groups ({:.1} task writes each)\n",
            run.predictions,
            run.groups.0,
            run.groups.1 as f64 / run.groups.0.max(1) as f64
        );
        let live = run.live_bytes() as f64 / run.journal_tasks.max(1) as f64;
        let kinds: Vec<String> = run
            .live
            .iter()
            .map(|(kind, _, bytes)| {
                format!(
                    "{kind} {:.0}",
                    *bytes as f64 / run.journal_tasks.max(1) as f64
                )
            })
            .collect();
        let growth = (run.finished.allocated_bytes as f64 - run.baseline.allocated_bytes as f64)
            / options.tasks as f64;
        table += &format!(
            "  journal content after the run: {live:.0} B per task ({}); disk growth / content: {:.1}x\n",
            kinds.join(", "),
            growth / live.max(1.0)
        );
        table += &format!(
            "  of the growth: archive (settled tasks) {:.0} B per task, journal (tasks in flight) {:.0} B per task, {:.0} KiB at finish\n",
            run.archive_growth() / options.tasks as f64,
            growth - run.archive_growth() / options.tasks as f64,
            // Two walks of the data dir, the archive's second: a blob sled wrote in between
            // would make it the bigger one.
            kib(run.finished.allocated_bytes.saturating_sub(run.archive.1.allocated_bytes) as f64),
        );
    }
    let json = json!({
        "scenario": "e2e",
        "tasks": options.tasks,
        "prediction_ms": options.prediction_ms,
        "idempotency_keys": options.idempotency_keys,
        "steps_per_task": options.steps,
        "payload_bytes": options.payload_bytes,
        "clients": options.clients,
        "poll_ms": options.poll_ms,
        "modes": runs.iter().map(|run| (key(&run.mode), run.json(&options))).collect::<serde_json::Map<_, _>>(),
        "targets": targets,
    });
    Ok(Report { table, json })
}

/// The modes `--only` leaves: (name, webhooks).
pub(super) fn modes(options: &Options) -> anyhow::Result<Vec<(String, bool)>> {
    let modes: Vec<(String, bool)> = [
        ("webhooks".to_owned(), true),
        (format!("polling {} ms", options.poll_ms), false),
    ]
    .into_iter()
    .filter(|(name, _)| {
        options
            .only
            .as_deref()
            .is_none_or(|only| name.starts_with(only))
    })
    .collect();
    anyhow::ensure!(!modes.is_empty(), "--only takes `webhooks` or `polling`");
    Ok(modes)
}

pub(super) fn key(mode: &str) -> String {
    mode.split_whitespace().next().unwrap_or(mode).to_owned()
}

/// One mode's run of `workload`; `options.steps` is its steps per task.
pub(super) async fn measure(
    options: &Options,
    workload: Workload,
    mode: String,
    webhooks: bool,
) -> anyhow::Result<Run> {
    let setup = Setup {
        prediction_ms: options.prediction_ms,
        webhooks,
        poll_initial_ms: options.poll_ms,
        poll_max_ms: options.poll_ms,
        creates_per_minute: None,
    };
    let harness = Harness::start_with(&setup, workload.workflows()).await?;
    let budget = Duration::from_secs(600);

    if options.warmup > 0 {
        let (warm, _) = post_tasks(
            &harness,
            options.clients,
            workload.bodies("w", options.warmup, options.payload_bytes),
            "warm-up",
            options.idempotency_keys,
        )
        .await;
        anyhow::ensure!(
            warm.errors == 0,
            "warm-up failed: {}",
            warm.first_error.unwrap_or_default()
        );
        until_idle(&harness, options.warmup, budget).await?;
    }
    let baseline = disk::disk_use(&harness.data_dir())?;
    let archive_baseline = disk::disk_use(&harness.data_dir().join("archive"))?;
    let groups_before = harness.groups();
    let predictions_before = harness.sim.predictions().len();

    let bodies = workload.bodies("t", options.tasks, options.payload_bytes);
    let cpu_before = load::cpu_time();
    let started = Instant::now();
    let (starts, ids) = post_tasks(
        &harness,
        options.clients,
        bodies,
        &mode,
        options.idempotency_keys,
    )
    .await;
    let mut ended = until_idle(&harness, options.tasks, budget).await?;
    let mut cpu = load::cpu_time().saturating_sub(cpu_before);
    let finished = disk::disk_use(&harness.data_dir())?;
    let archive_finished = disk::disk_use(&harness.data_dir().join("archive"))?;
    let groups = harness.groups();

    let mut tasks = read_back(&harness, &ids, options.clients).await?;
    // The runtime's gauge is published at the end of a turn, so in a tiny run it can read 0
    // just before the last start's turn ends: then wait again and take the later time.
    if tasks
        .iter()
        .any(|(status, _, _)| !["succeeded", "failed", "canceled"].contains(&status.as_str()))
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        ended = until_idle(&harness, options.tasks, budget).await?;
        cpu = load::cpu_time().saturating_sub(cpu_before);
        tasks = read_back(&harness, &ids, options.clients).await?;
    }
    let wall = ended - started;

    // The simulator's own time per prediction, by task tag.
    let predictions = harness.sim.predictions();
    let mut sim_total = 0.0;
    let mut counted = 0usize;
    for p in &predictions[predictions_before.min(predictions.len())..] {
        let at = |v: &Value| {
            v.as_str()
                .and_then(stepwise_engine::time::parse_rfc3339_micros)
        };
        let (Some(created), Some(completed)) = (at(&p["created_at"]), at(&p["completed_at"]))
        else {
            continue;
        };
        let ms = (completed - created) as f64 / 1000.0;
        sim_total += ms;
        counted += 1;
    }
    let sim_mean_ms = if counted == 0 {
        0.0
    } else {
        sim_total / counted as f64
    };
    let overhead: Vec<Duration> = tasks
        .iter()
        .filter(|(status, _, _)| status == "succeeded")
        .map(|(_, created, completed)| {
            let per_step = (completed - created) as f64 / options.steps as f64 - sim_mean_ms;
            Duration::from_secs_f64(per_step.max(0.0) / 1000.0)
        })
        .collect();
    let succeeded = tasks
        .iter()
        .filter(|(status, _, _)| status == "succeeded")
        .count();
    let failed = tasks.len() - succeeded;
    let root = harness.stop_keeping_data().await?;
    let closed = disk::disk_use(&root.path().join("data"))?;
    let live = tokio::task::spawn_blocking({
        let dir = root.path().join("data");
        move || disk::live_bytes(&dir)
    })
    .await??;
    drop(root);
    Ok(Run {
        mode,
        starts,
        wall,
        cpu,
        succeeded,
        failed,
        predictions: counted,
        sim_mean_ms,
        overhead: Summary::of(&overhead),
        groups: (groups.0 - groups_before.0, groups.1 - groups_before.1),
        baseline,
        archive: (archive_baseline, archive_finished),
        finished,
        closed,
        live,
        journal_tasks: options.warmup + options.tasks,
    })
}
