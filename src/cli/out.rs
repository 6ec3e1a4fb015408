//! Standard output for the CLI: every line goes through `line`, which turns a closed pipe
//! (`stepwise tasks show ID | head -2`) into `StdoutClosed` instead of `println!`'s panic;
//! `main` ends quietly on it.

use std::io::Write;

/// The reader of our standard output went away: nothing more can be shown.
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Writes `text` and a newline to standard output, flushed (a `watch` line shows at once).
pub fn line(text: impl std::fmt::Display) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let written = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
    match written {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        other => Ok(other?),
    }
}

/// True when `error` is a closed standard output, which ends a command without complaint.
pub fn is_closed(error: &anyhow::Error) -> bool {
    error.is::<StdoutClosed>()
}
