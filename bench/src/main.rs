//! `stepwise-bench`: measures the engine on this machine. Each scenario starts what it needs
//! (the simulator on loopback, the engine on a fresh temporary data dir, in this process or
//! as a child process), drives it over real HTTP, and prints a table (or `--json`).
//!
//! Run it as `cargo run --release -p stepwise-bench -- <scenario> [flags]`.

mod child;
mod conn;
mod disk;
mod e2e;
mod e2e_pipeline;
mod e2e_tasks;
mod floor;
mod harness;
mod idle;
mod load;
mod procfs;
mod progress;
mod recover;
mod reference;
mod rig;
mod rounds;
mod start;
mod stats;
mod status;
mod transitions;
mod wrk;

// The product's allocator: the engine measured in this process, and the references next to
// it, then allocate as `stepwise serve` does.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use stepwise::logs;

#[derive(Parser)]
#[command(
    name = "stepwise-bench",
    version,
    about = "Measure the stepwise engine on this machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print one JSON object instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// The engine binary `idle` and `recover` start as a child (`PATH serve --config …`), say
    /// target/release/stepwise. Default: this executable, which serves the engine with the
    /// product's own `serve` code and allocator.
    #[arg(long, global = true, env = "STEPWISE_BIN")]
    stepwise_bin: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Scenario(Scenario),
    /// The child engine of `idle` and `recover`: `stepwise serve` in this executable.
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
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
    /// Only the bare-hyper reference server, for an outside load generator (`wrk`): prints
    /// its URL, answers `hello` to every request until the time is up or Ctrl-C.
    Hello(reference::HelloOptions),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => {
            logs::init(false, logs::SERVE_FILTER);
            stepwise::serve::run(Some(config), false)
        }
        Command::Scenario(scenario) => {
            logs::init(false, logs::QUIET_FILTER);
            child::EngineBinary::choose(cli.stepwise_bin)
                .and_then(|engine| run(scenario, engine, cli.json))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("stepwise-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(scenario: Scenario, engine: child::EngineBinary, json: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let report = match scenario {
            Scenario::Start(options) => start::run(options).await?,
            Scenario::Status(options) => status::run(options).await?,
            Scenario::E2e(options) => e2e::run(options).await?,
            Scenario::Idle(options) => idle::run(options, engine).await?,
            Scenario::Recover(options) => recover::run(options, engine).await?,
            Scenario::Transitions(options) => transitions::run(options).await?,
            Scenario::Hello(options) => reference::hello_alone(options).await?,
        };
        if json {
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
