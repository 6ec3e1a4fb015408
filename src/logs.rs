//! Log lines on stderr: human text (coloured on a terminal) or JSON objects, filtered by
//! `STEPWISE_LOG` (an `EnvFilter` directive) or else by the command's default.

/// Installs the global subscriber; `default_filter` applies when `STEPWISE_LOG` is unset or
/// unreadable.
pub fn init(json: bool, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STEPWISE_LOG")
        .unwrap_or_else(|_| default_filter.into());
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    if json {
        logs.json().init();
    } else {
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

/// What `serve` narrates by default: its lifecycle, not the libraries' chatter.
pub const SERVE_FILTER: &str = "info,sled=warn,hyper=warn";

/// Every other command: only what went wrong; the command's own output is what matters.
pub const QUIET_FILTER: &str = "warn";
