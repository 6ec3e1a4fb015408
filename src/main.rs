//! The `stepwise` binary: `serve` runs the engine and its HTTP API; `check-config` validates
//! a configuration and prints it with secrets masked; `tasks` and `inspect` are operator
//! tools. The benchmark is its own binary, `stepwise-bench` (`bench/`).

mod cli;

// jemalloc instead of glibc malloc: 8-10% less CPU per start and a lower p99 under load
// (docs/benchmarks-history.md, "jemalloc").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use stepwise::{logs, serve};

#[derive(Parser)]
#[command(
    name = "stepwise",
    version,
    about = "A durable workflow engine for Replicate predictions"
)]
struct Cli {
    /// Log lines as human text or as JSON objects (for collectors).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
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
    CheckConfig {
        /// Configuration file. Default: ./config.toml if present, else the embedded defaults.
        path: Option<PathBuf>,
    },
    /// List, show, follow, cancel and retry tasks on a running server.
    Tasks(cli::TasksArgs),
    /// Read a stopped engine's data dir offline: counts, unfinished tasks, one task's journal.
    Inspect(cli::InspectArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Only `serve` narrates its work; elsewhere the command's own output is what matters.
    let default_filter = match cli.command {
        Command::Serve { .. } => logs::SERVE_FILTER,
        _ => logs::QUIET_FILTER,
    };
    logs::init(cli.log_format == LogFormat::Json, default_filter);
    let result = match cli.command {
        Command::Serve { config, simulate } => serve::run(config, simulate),
        Command::Tasks(args) => cli::tasks(args),
        Command::Inspect(args) => cli::inspect(args),
        Command::CheckConfig { path } => serve::check_config(path),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `stepwise tasks list | head`: the reader has what it wanted.
        Err(error) if cli::stdout_closed(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("stepwise: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// `stepwise <any command> --help` explains every flag and argument it lists.
    #[test]
    fn every_flag_and_argument_has_a_help_line() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (no about)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "stepwise", &mut missing);
        assert!(missing.is_empty(), "without help: {missing:?}");
    }
}
