//! A one-line progress bar on stderr, redrawn at most ten times a second; silent when
//! stderr is not a terminal (CI logs, `--json` pipelines).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    label: String,
    total: u64,
    drawn_at: Option<Instant>,
    enabled: bool,
}

impl Progress {
    pub fn new(label: &str, total: u64) -> Self {
        Progress {
            label: label.to_owned(),
            total: total.max(1),
            drawn_at: None,
            enabled: std::io::stderr().is_terminal(),
        }
    }

    pub fn set(&mut self, done: u64) {
        if !self.enabled
            || self
                .drawn_at
                .is_some_and(|at| at.elapsed() < Duration::from_millis(100))
                && done < self.total
        {
            return;
        }
        self.drawn_at = Some(Instant::now());
        let width = 30;
        let filled = (done.min(self.total) * width / self.total) as usize;
        let bar = format!(
            "{}{}",
            "#".repeat(filled),
            "-".repeat(width as usize - filled)
        );
        eprint!("\r{:<12} [{bar}] {done}/{}", self.label, self.total);
        let _ = std::io::stderr().flush();
    }

    pub fn finish(self) {
        if self.enabled && self.drawn_at.is_some() {
            eprintln!();
        }
    }
}
