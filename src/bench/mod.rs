//! `stepwise bench`: measures the engine on this machine. Each scenario starts what it needs
//! in-process (the simulator on loopback, the engine on a fresh temporary data dir, the HTTP
//! API on a free port), drives it over real HTTP, and prints a table (or `--json`).

mod harness;
mod stats;
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
    /// Step-transition latency: from the simulator completing step k to it receiving the
    /// create of step k+1, with webhooks and with polling only.
    Transitions(transitions::Options),
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let report = match args.scenario {
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
