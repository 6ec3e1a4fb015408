//! The `start` scenario: durable `POST /v1/tasks` (each 201 comes after the task is fsynced)
//! from N concurrent clients, next to three references measured in the same run, in turns
//! with the engine (`rounds.rs`): a bare hyper server answering the same POST, a
//! single-threaded `write 100 B + fdatasync` loop on the same file system, and the floor
//! (`floor.rs`: that hyper server journaling a start's entries through the same sled group
//! commit, and nothing else). Engine starts per second over fsyncs per second is the
//! group-commit factor: how many starts one journal sync carries.
//!
//! The engine's own simulator runs 10-minute predictions and the engine checks none before
//! then, so a started task costs its journal writes and one create call, then only waits.
//! By default the create rate limit is lifted, so every start's create runs during the
//! measurement on the same two cores. `--creates-per-minute 600` keeps Replicate's real
//! account limit (the shipped default) instead: creates then trickle out at 10/s, as they
//! would in production after a burst of starts, and the figure is the start path alone.

use super::harness::{create_burst, Harness, Target};
use super::load::{self, Outcome, Plan};
use super::wrk::{Driver, LoadOptions};
use super::Report;
use super::{floor, reference, rounds};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Options {
    /// Concurrent clients (one keep-alive connection each).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Send this many requests instead of sending for a time (ignored when --seconds is
    /// given).
    #[arg(long)]
    requests: Option<usize>,
    /// Send for this many seconds [default: 5, unless --requests is given]; each reference
    /// runs as long.
    #[arg(long)]
    seconds: Option<f64>,
    /// Items (steps) in each started task.
    #[arg(long, default_value_t = 3)]
    items: usize,
    /// Requests sent before measuring (connections, caches), not counted.
    #[arg(long, default_value_t = 500)]
    warmup: usize,
    /// How long the fdatasync reference runs (over all rounds).
    #[arg(long, default_value_t = 2.0)]
    fsync_seconds: f64,
    /// Measure in this many rounds, each running every reference, then the engine, for
    /// its share of the time (or requests): a slow spell of the machine then falls on the
    /// engine and its references alike (no more rounds than --requests).
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Load an engine already running at this URL instead of starting one. Its workflow
    /// must accept --body (default: the README's `tryon` body, as `serve --simulate` has).
    #[arg(long)]
    target: Option<String>,
    /// The JSON start body to send (default: a chain of --items steps).
    #[arg(long)]
    body: Option<String>,
    /// Our engine's create rate limit (burst: a tenth of it). Default: lifted, so each start's
    /// create call runs during the measurement. 600 is Replicate's account limit and the
    /// shipped default.
    #[arg(long)]
    creates_per_minute: Option<u32>,
    /// Where the fdatasync reference writes with --target (put it on the engine's disk).
    /// Default: next to our own engine's data dir, or the system temp dir.
    #[arg(long)]
    probe_dir: Option<PathBuf>,
    #[command(flatten)]
    load: LoadOptions,
}

pub async fn run(options: Options) -> anyhow::Result<Report> {
    anyhow::ensure!(options.clients > 0, "--clients must be at least 1");
    let plan = Plan::measured(options.clients, options.requests, options.seconds);
    let driver = options.load.driver(plan)?;
    anyhow::ensure!(
        options.creates_per_minute != Some(0),
        "--creates-per-minute must be at least 1"
    );
    anyhow::ensure!(
        options.creates_per_minute.is_none() || options.target.is_none(),
        "--creates-per-minute sets the engine this command starts; with --target, set [replicate] creates_per_minute in the target's config"
    );
    let target = Target::start(options.target.clone(), options.creates_per_minute).await?;
    let body = target.start_body(options.body.as_deref(), options.items)?;
    let url = format!("{}/v1/tasks", target.url());

    // One start first, for the size of the engine's answer (the floor answers as much).
    let answer_len = load::expect_status(
        load::client(1)
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone()),
        201,
    )
    .await
    .map_err(|e| anyhow::anyhow!("the first start failed: {e}"))?
    .len();
    // Warm up the engine (connections, sled's first pages), then let its creates finish.
    let warmup = Plan {
        clients: options.clients,
        requests: Some(options.warmup),
        duration: None,
    };
    let warm = load::post_json(
        "warm-up",
        warmup,
        Driver::InProcess,
        target.url(),
        "/v1/tasks",
        body.clone(),
        201,
    )
    .await;
    anyhow::ensure!(
        warm.errors == 0,
        "warm-up failed: {}",
        warm.first_error.unwrap_or_default()
    );
    // With a create limit only the burst goes out now; the rest trickles during the run.
    let mut owed = 1 + options.creates_per_minute.map_or(options.warmup, |rate| {
        options.warmup.min(create_burst(rate) as usize - 1)
    }) as u64;
    target
        .settle(
            owed,
            Duration::from_secs(60),
            options.creates_per_minute.is_none(),
        )
        .await?;

    // The engine and its references in turns (`rounds.rs`); each round's references run
    // while the engine is idle.
    let probe_dir = match (&options.probe_dir, target.harness()) {
        (Some(dir), _) => dir.clone(),
        (None, Some(harness)) => harness.scratch_dir().to_path_buf(),
        (None, None) => std::env::temp_dir(),
    };
    let rounds = rounds::count(options.rounds, plan);
    let (mut fsyncs, mut hypers, mut floors, mut engines) = (vec![], vec![], vec![], vec![]);
    // CPU, journal groups, task writes and create calls during the engine's rounds only.
    let (mut cpu, mut during) = (Duration::ZERO, [0u64; 3]);
    // This process's CPU during the bare-hyper reference's rounds.
    let mut hyper_cpu = Duration::ZERO;
    for round in 0..rounds {
        let share = plan.share(round, rounds);
        fsyncs
            .push(reference::fsync_rate(&probe_dir, options.fsync_seconds / rounds as f64).await?);
        let cpu_before = load::cpu_time();
        hypers.push(reference::hello_post(share, driver, "/v1/tasks", body.clone()).await?);
        hyper_cpu += load::cpu_time().saturating_sub(cpu_before);
        floors
            .push(floor::durable_post(share, driver, &probe_dir, body.clone(), answer_len).await?);

        let counters_before = target.harness().map(engine_counters);
        let cpu_before = load::cpu_time();
        let engine = load::post_json(
            &rounds::label("start", round, rounds),
            share,
            driver,
            target.url(),
            "/v1/tasks",
            body.clone(),
            201,
        )
        .await;
        cpu += load::cpu_time().saturating_sub(cpu_before);
        if let (Some(harness), Some(before)) = (target.harness(), counters_before) {
            let after = engine_counters(harness);
            (0..3).for_each(|i| during[i] += after[i] - before[i]);
        }
        owed += (engine.requests - engine.errors) as u64;
        engines.push(engine);
        // Unthrottled, the creates of this round's starts finish before the next round's
        // references run, as the warm-up's did before the first.
        if options.creates_per_minute.is_none() && round + 1 < rounds {
            target.settle(owed, Duration::from_secs(120), true).await?;
        }
    }
    let per_round = rounds::ratios(&engines, &hypers);
    // Known only for the engine this command started.
    let own = target.harness().is_some();
    let groups = own.then_some((during[0], during[1]));
    let creates = own.then_some(during[2]);
    let rates = json!({
        "engine": rounds::rates(&engines),
        "bare_hyper": rounds::rates(&hypers),
        "floor": rounds::rates(&floors),
        "fdatasync": fsyncs.iter().map(|f| f.per_second).collect::<Vec<_>>(),
    });
    let (fsync, hyper, floor, engine) = (
        reference::Fsync::merge(&fsyncs),
        Outcome::merge(hypers),
        Outcome::merge(floors),
        Outcome::merge(engines),
    );
    target.stop().await?;

    let vs_hyper = engine.per_second() / hyper.per_second();
    let group_factor = engine.per_second() / fsync.per_second;
    let vs_floor = engine.per_second() / floor.per_second();
    let targets = json!({
        "group_commit_factor_at_least_4": group_factor >= 4.0,
        "vs_bare_hyper_at_least_25_percent": vs_hyper >= 0.25,
        "p99_under_20_ms_at_64_clients": (options.clients == 64).then_some(engine.latency.p99_ms < 20.0),
    });
    let met = |ok: bool| if ok { "met" } else { "MISSED" };

    let creates_note = match (options.target.is_some(), options.creates_per_minute) {
        (true, _) => String::new(),
        (false, None) => ", creates unthrottled".to_owned(),
        (false, Some(rate)) => format!(", creates limited to {rate}/min"),
    };
    let mut table = format!(
        "start: durable POST /v1/tasks ({} items each, {} bytes), {} clients, {}{}{creates_note}\n{}\n",
        options.items,
        body.len(),
        options.clients,
        describe(plan),
        rounds::describe(rounds),
        Outcome::header()
    );
    table += &engine.row("engine POST /v1/tasks");
    table += "\n";
    table += &hyper.row("bare hyper POST (same body)");
    table += "\n";
    table += &floor.row("hyper + sled floor");
    table += "\n";
    table += &format!(
        "{:<30} {:>7} {:>9.0} {:>8.2}   (one thread, write 100 B + fdatasync, {})\n",
        "fdatasync loop",
        fsync.syncs,
        fsync.per_second,
        fsync.mean_ms,
        probe_dir.display()
    );
    table += &format!(
        "engine / bare hyper: {:.1}% (target >= 25%: {}){}\n",
        vs_hyper * 100.0,
        met(vs_hyper >= 0.25),
        rounds::spread(&per_round)
    );
    table += &format!(
        "engine / fdatasync:  {group_factor:.1}x, the group-commit factor (target >= 4x: {})\n",
        met(group_factor >= 4.0)
    );
    table += &format!(
        "floor: {:.1}% of bare hyper, {:.1}x fdatasync; the engine does {:.1}% of the floor\n",
        floor.per_second() / hyper.per_second() * 100.0,
        floor.per_second() / fsync.per_second,
        vs_floor * 100.0
    );
    if options.clients == 64 {
        table += &format!(
            "engine p99: {:.2} ms (target < 20 ms at 64 clients: {})\n",
            engine.latency.p99_ms,
            met(engine.latency.p99_ms < 20.0)
        );
    }
    if options.target.is_none() && options.creates_per_minute.is_none() {
        table += "(the targets are read on the start path alone: --creates-per-minute 600, the engine's\n \
                  shipped limit; here each start's create call and its journal write share the cores too)\n";
    }
    if let (Some((g, t)), Some(c)) = (groups, creates) {
        table += &format!(
            "journal groups during the run: {g} ({:.1} task writes each, {:.1} starts per group); creates sent: {c}\n",
            t as f64 / g.max(1) as f64,
            engine.requests as f64 / g.max(1) as f64
        );
    }
    let whose = match (options.target.is_some(), driver) {
        (true, Driver::InProcess) => "this process: the load generator only",
        (false, Driver::InProcess) => "engine, simulator and load generator together",
        (true, Driver::Wrk { .. }) => "this process: nothing measured, wrk is another",
        (false, Driver::Wrk { .. }) => "engine and simulator, wrk is another process",
    };
    table += &load::footer(cpu, &engine, "start", whose);
    table += &load::reference_footer(hyper_cpu, &hyper, "POST", driver);
    table += &driver.describe();
    table += "\n";
    let json = json!({
        "scenario": "start",
        "load": driver.json(),
        "clients": options.clients,
        "rounds": rounds,
        "items": options.items,
        "creates_per_minute": options.creates_per_minute,
        "body_bytes": body.len(),
        "engine": engine.json(),
        "reference": { "bare_hyper": hyper.json(), "fdatasync": fsync.json(), "floor": floor.json(), "probe_dir": probe_dir },
        "ratios": {
            "engine_vs_bare_hyper": vs_hyper,
            "group_commit_factor": group_factor,
            "engine_vs_floor": vs_floor,
            "floor_vs_bare_hyper": floor.per_second() / hyper.per_second(),
            "floor_vs_fdatasync": floor.per_second() / fsync.per_second,
            "engine_vs_bare_hyper_per_round": per_round,
        },
        "targets": targets,
        "journal_groups": groups.map(|(g, _)| g),
        "journal_task_writes": groups.map(|(_, t)| t),
        "creates": creates,
        "cpu_seconds": cpu.as_secs_f64(),
        "cpu_us_per_request": {
            "engine": load::micros_per_request(cpu, &engine),
            "bare_hyper": load::micros_per_request(hyper_cpu, &hyper),
        },
        "per_round_per_second": rates,
    });
    Ok(Report { table, json })
}

/// Journal groups, task writes in them, and create calls the simulator received so far.
fn engine_counters(harness: &Harness) -> [u64; 3] {
    let (groups, task_writes) = harness.groups();
    [groups, task_writes, harness.sim.create_calls()]
}

pub(super) fn describe(plan: Plan) -> String {
    match (plan.requests, plan.duration) {
        (Some(n), _) => format!("{n} requests"),
        (None, Some(d)) => format!("{:.1} s", d.as_secs_f64()),
        (None, None) => String::new(),
    }
}
