//! The `stepwise` binary: `serve` runs the engine and its HTTP API; `check-config` validates
//! a configuration and prints it with secrets masked.

mod bench;
mod serve;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "stepwise", version, about = "A durable workflow engine for Replicate predictions")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine and its HTTP API.
    Serve {
        /// Configuration file. Default: ./config.toml if present, else the embedded defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Also start a Replicate simulator on loopback and point the engine at it.
        #[arg(long)]
        simulate: bool,
    },
    /// Validate a configuration file and print the effective settings, secrets masked.
    CheckConfig { path: Option<PathBuf> },
    /// Measure the engine on this machine (in-process simulator and engine).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A benchmark's own report is what matters; the engine's lifecycle logs would drown it.
    let default_filter = match cli.command {
        Command::Bench(_) => "warn",
        _ => "info,sled=warn,hyper=warn",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STEPWISE_LOG").unwrap_or_else(|_| default_filter.into()),
        )
        .init();
    let result = match cli.command {
        Command::Serve { config, simulate } => serve::run(config, simulate),
        Command::Bench(args) => bench::run(args),
        Command::CheckConfig { path } => serve::load_config(path).map(|(config, origin)| {
            println!("# {origin}\n{}", config.masked_summary());
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("stepwise: {error:#}");
            ExitCode::FAILURE
        }
    }
}
