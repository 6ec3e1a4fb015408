//! The `status` scenario: `GET /v1/tasks/{id}` from N concurrent clients over a pool of
//! existing tasks (created first, their creates settled), next to a bare hyper server
//! answering the same GETs with `hello`, measured in the same run, in turns with the engine.

use super::harness::Target;
use super::load::{self, Outcome, Plan};
use super::wrk::{Driver, LoadOptions};
use super::Report;
use super::{reference, rounds};
use hyper::body::Bytes;
use hyper::Method;
use serde_json::json;
use std::sync::{Arc, Mutex};
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
    /// Send for this many seconds [default: 5, unless --requests is given]; the bare-hyper
    /// reference runs as long.
    #[arg(long)]
    seconds: Option<f64>,
    /// Measure in this many rounds, each running the bare-hyper reference, then the engine,
    /// for its share of the time (or requests; no more rounds than --requests).
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Tasks created first; the GETs spread over them.
    #[arg(long, default_value_t = 1000)]
    pool: usize,
    /// Items (steps) in each pool task.
    #[arg(long, default_value_t = 3)]
    items: usize,
    /// GETs sent before measuring, not counted.
    #[arg(long, default_value_t = 1000)]
    warmup: usize,
    /// Load an engine already running at this URL instead of starting one (the pool is
    /// created there with --body; default: the README's `tryon` body).
    #[arg(long)]
    target: Option<String>,
    /// The JSON start body of the pool's tasks.
    #[arg(long)]
    body: Option<String>,
    #[command(flatten)]
    load: LoadOptions,
}

pub async fn run(options: Options) -> anyhow::Result<Report> {
    anyhow::ensure!(
        options.clients > 0 && options.pool > 0,
        "--clients and --pool must be at least 1"
    );
    let plan = Plan::measured(options.clients, options.requests, options.seconds);
    let driver = options.load.driver(plan)?;
    let target = Target::start(options.target.clone(), None).await?;
    let body = target.start_body(options.body.as_deref(), options.items)?;

    // The pool.
    let ids = Arc::new(Mutex::new(Vec::with_capacity(options.pool)));
    let http = load::client(options.clients);
    let (url, collected) = (format!("{}/v1/tasks", target.url()), ids.clone());
    let pool_plan = Plan {
        clients: options.clients,
        requests: Some(options.pool),
        duration: None,
    };
    let made = load::run("pool", pool_plan, move |_| {
        let request = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone());
        let collected = collected.clone();
        async move {
            let answer = load::expect_status(request, 201).await?;
            let task: serde_json::Value =
                serde_json::from_slice(&answer).map_err(|e| e.to_string())?;
            let id = task["id"].as_str().ok_or("no id in the answer")?.to_owned();
            collected.lock().expect("not poisoned").push(id);
            Ok(())
        }
    })
    .await;
    anyhow::ensure!(
        made.errors == 0,
        "creating the pool failed: {}",
        made.first_error.unwrap_or_default()
    );
    target
        .settle(options.pool as u64, Duration::from_secs(120), true)
        .await?;
    let ids: Arc<Vec<String>> = Arc::new(std::mem::take(&mut *ids.lock().expect("not poisoned")));
    let sample = reqwest::get(format!("{}/v1/tasks/{}", target.url(), ids[0]))
        .await?
        .bytes()
        .await?
        .len();

    let get = |label: String, plan: Plan, driver: Driver, base: String| {
        let ids = ids.clone();
        async move {
            load::requests(&label, plan, driver, &base, 200, move |i| {
                // A stride coprime with most pool sizes walks the whole pool in a scattered order.
                let id = &ids[(i.wrapping_mul(7919)) % ids.len()];
                (Method::GET, format!("/v1/tasks/{id}"), Bytes::new())
            })
            .await
        }
    };
    let warm = get(
        "warm-up".to_owned(),
        Plan {
            clients: options.clients,
            requests: Some(options.warmup),
            duration: None,
        },
        Driver::InProcess,
        target.url().to_owned(),
    )
    .await;
    anyhow::ensure!(
        warm.errors == 0,
        "warm-up failed: {}",
        warm.first_error.unwrap_or_default()
    );

    // Bare hyper and the engine in turns (`rounds.rs`).
    let rounds = rounds::count(options.rounds, plan);
    let (mut hypers, mut engines) = (vec![], vec![]);
    // This process's CPU during the engine's rounds, and during the reference's.
    let (mut cpu, mut hyper_cpu) = (Duration::ZERO, Duration::ZERO);
    for round in 0..rounds {
        let share = plan.share(round, rounds);
        let cpu_before = load::cpu_time();
        hypers.push(reference::hello_get(share, driver, &format!("/v1/tasks/{}", ids[0])).await?);
        hyper_cpu += load::cpu_time().saturating_sub(cpu_before);
        let cpu_before = load::cpu_time();
        engines.push(
            get(
                rounds::label("status", round, rounds),
                share,
                driver,
                target.url().to_owned(),
            )
            .await,
        );
        cpu += load::cpu_time().saturating_sub(cpu_before);
    }
    let per_round = rounds::ratios(&engines, &hypers);
    let rates = json!({ "engine": rounds::rates(&engines), "bare_hyper": rounds::rates(&hypers) });
    let (hyper, engine) = (Outcome::merge(hypers), Outcome::merge(engines));
    target.stop().await?;

    let vs_hyper = engine.per_second() / hyper.per_second();
    let met = if vs_hyper >= 0.6 { "met" } else { "MISSED" };
    let mut table = format!(
        "status: GET /v1/tasks/{{id}} over a pool of {} tasks ({} items, answers of {} bytes), {} clients, {}{}\n{}\n",
        ids.len(),
        options.items,
        sample,
        options.clients,
        super::start::describe(plan),
        rounds::describe(rounds),
        Outcome::header()
    );
    table += &engine.row("engine GET /v1/tasks/{id}");
    table += "\n";
    table += &hyper.row("bare hyper GET (hello)");
    table += "\n";
    table += &format!(
        "engine / bare hyper: {:.1}% (target >= 60%: {met}){}\n",
        vs_hyper * 100.0,
        rounds::spread(&per_round)
    );
    let whose = match (options.target.is_some(), driver) {
        (true, Driver::InProcess) => "this process: the load generator only",
        (false, Driver::InProcess) => "engine and load generator together",
        (true, Driver::Wrk { .. }) => "this process: nothing measured, wrk is another",
        (false, Driver::Wrk { .. }) => "the engine alone, wrk is another process",
    };
    table += &load::footer(cpu, &engine, "GET", whose);
    table += &load::reference_footer(hyper_cpu, &hyper, "GET", driver);
    table += &driver.describe();
    table += "\n";
    let json = json!({
        "scenario": "status",
        "load": driver.json(),
        "clients": options.clients,
        "pool": ids.len(),
        "answer_bytes": sample,
        "engine": engine.json(),
        "reference": { "bare_hyper": hyper.json() },
        "rounds": rounds,
        "ratios": { "engine_vs_bare_hyper": vs_hyper, "engine_vs_bare_hyper_per_round": per_round },
        "targets": { "vs_bare_hyper_at_least_60_percent": vs_hyper >= 0.6 },
        "cpu_seconds": cpu.as_secs_f64(),
        "cpu_us_per_request": {
            "engine": load::micros_per_request(cpu, &engine),
            "bare_hyper": load::micros_per_request(hyper_cpu, &hyper),
        },
        "per_round_per_second": rates,
    });
    Ok(Report { table, json })
}
