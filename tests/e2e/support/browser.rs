//! What the browser tests share: where Chromium and playwright-core are, whether they are
//! installed (a printed skip when not, a failure under CI), and a slow try-on workflow.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A workflow like `tryon` on the simulator's `test/slow` model (predictions that run for
/// ten minutes, no timeouts), for cancel scenarios. Append it to a `config_toml`.
pub const SLOW_TRYON: &str = r#"
[workflows.slowtryon]
model = "test/slow"
[workflows.slowtryon.input]
human_img = "{{previous.output}}"
garm_img = "{{item.garment_image}}"
garment_des = "{{item.description}}"
[workflows.slowtryon.first]
human_img = "{{params.person_image}}"
"#;

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn chromium_path() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// The one install of playwright-core both drivers use.
pub fn node_modules() -> PathBuf {
    repo_root().join("examples/frontend/e2e/node_modules")
}

/// Whether the browser tools are there. When one is missing: a printed skip, or a panic
/// under CI.
pub fn tools_present(suite: &str, test: &str) -> bool {
    let mut missing = Vec::new();
    let chromium = chromium_path();
    if !chromium.is_file() {
        missing.push(format!(
            "{} (apt-get install -y chromium)",
            chromium.display()
        ));
    }
    let node_ok = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !node_ok {
        missing.push("node (apt-get install -y nodejs npm)".to_owned());
    }
    let modules = node_modules().join("playwright-core");
    if !modules.is_dir() {
        missing.push(format!(
            "{} (npm ci --prefix examples/frontend/e2e)",
            modules.display()
        ));
    }
    if missing.is_empty() {
        return true;
    }
    let message = format!("{suite} test `{test}` needs: {}", missing.join("; "));
    if std::env::var_os("CI").is_some() {
        panic!("{message} (CI is set, so this is a failure)");
    }
    // Straight to stderr, past the test harness's capture, so the skip shows in a passing run.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {message}");
    false
}

/// The last `lines` lines of `text` (an engine log, shown when a scenario fails).
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
