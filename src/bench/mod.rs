//! `stepwise bench`: measures the engine on this machine. Each scenario starts what it needs
//! in-process (the simulator on loopback, the engine on a fresh temporary data dir, the HTTP
//! API on a free port), drives it over real HTTP, and prints a table (or `--json`).

mod child;
mod conn;
mod disk;
mod e2e;
mod e2e_tasks;
mod floor;
mod harness;
mod idle;
mod load;
mod progress;
mod recover;
mod reference;
mod rig;
mod rounds;
mod start;
mod stats;
mod status;
mod transitions;

use clap::{Args, Subcommand};

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    scenario: Scenario,
    /// Print one JSON object instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Scenario {
    /// Durable `POST /v1/tasks` with N concurrent clients, against the fdatasync, bare-HTTP
    /// and hyper + sled floor references measured in the same run.
    Start(start::Options),
    /// `GET /v1/tasks/{id}` over a pool of existing tasks, against the bare-HTTP reference.
    Status(status::Options),
    /// N multi-step tasks through the whole engine against the simulator: steps per second,
    /// per-step engine overhead, and disk used per finished task.
    E2e(e2e::Options),
    /// M tasks waiting on slow predictions: resident memory per task and CPU while idle.
    Idle(idle::Options),
    /// M unfinished tasks in a data dir, `kill -9`, restart: time until the API answers and
    /// until every task is resumed.
    Recover(recover::Options),
    /// Step-transition latency: from the simulator completing step k to it receiving the
    /// create of step k+1, with webhooks and with polling only.
    Transitions(transitions::Options),
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let report = match args.scenario {
            Scenario::Start(options) => start::run(options).await?,
            Scenario::Status(options) => status::run(options).await?,
            Scenario::E2e(options) => e2e::run(options).await?,
            Scenario::Idle(options) => idle::run(options).await?,
            Scenario::Recover(options) => recover::run(options).await?,
            Scenario::Transitions(options) => transitions::run(options).await?,
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report.json)?);
        } else {
            println!("{}", report.table);
        }
        Ok(())
    })
}

/// What a scenario prints.
pub struct Report {
    pub table: String,
    pub json: serde_json::Value,
}
