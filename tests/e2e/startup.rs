//! What `stepwise serve` refuses before it touches a task: a token Replicate rejects, a busy
//! port, a data dir another server holds. Each refusal is one line on stderr and a non-zero
//! exit, and leaves the data dir as it was.

use crate::support::{assert_chained, tryon_body, Env, Load, SIM_TOKEN};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a refused start may take on a loaded machine (it takes well under a second).
const EXIT_WITHIN: Duration = Duration::from_secs(20);

/// A `stepwise serve` expected to stop by itself: how it ended, what it printed.
struct Refused {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Refused {
    /// The error line `main` printed: the last line of stderr.
    fn error_line(&self) -> &str {
        self.stderr.lines().last().unwrap_or_default()
    }
}

/// Writes `config` to `dir/name.toml`, runs `stepwise serve` on it with `token`, and waits
/// for it to exit (killing it and failing the test after `EXIT_WITHIN`).
async fn serve_until_exit(dir: &Path, name: &str, config: &str, token: &str) -> Refused {
    let config_path = dir.join(format!("{name}.toml"));
    std::fs::write(&config_path, config).unwrap();
    let (stdout_path, stderr_path) = (
        dir.join(format!("{name}.out")),
        dir.join(format!("{name}.err")),
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_stepwise"));
    for (variable, _) in std::env::vars_os() {
        let variable = variable.to_string_lossy();
        if variable.starts_with("STEPWISE_") || variable.starts_with("REPLICATE_") {
            command.env_remove(variable.as_ref());
        }
    }
    let mut child = command
        .args(["serve", "--config"])
        .arg(&config_path)
        .env("REPLICATE_API_TOKEN", token)
        .stdout(Stdio::from(std::fs::File::create(&stdout_path).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&stderr_path).unwrap()))
        .spawn()
        .expect("the stepwise binary starts");
    let deadline = Instant::now() + EXIT_WITHIN;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "stepwise serve did not exit within {EXIT_WITHIN:?}; stderr:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    Refused {
        status,
        stdout: std::fs::read_to_string(&stdout_path).unwrap(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap(),
    }
}

/// The exact one-line refusals, as `main` prints them.
fn assert_refused(run: &Refused, line: &str) {
    assert!(!run.status.success(), "exit status {:?}", run.status);
    assert_eq!(
        run.error_line(),
        format!("stepwise: {line}"),
        "stderr:\n{}",
        run.stderr
    );
    assert!(
        !run.stdout.contains("stepwise listening on"),
        "it must not have served: {}",
        run.stdout
    );
}

#[tokio::test]
async fn a_token_replicate_rejects_stops_the_start_before_the_data_dir_exists() {
    let env = Env::start(Load::Light, 50).await;
    let run = serve_until_exit(env.path(), "wrong-token", &env.config(""), "r8_wrong").await;
    assert_refused(
        &run,
        &format!(
            "Replicate rejected the API token (401 from {}/v1/account): check \
             REPLICATE_API_TOKEN (https://replicate.com/account/api-tokens)",
            env.sim.base_url().trim_end_matches('/')
        ),
    );
    assert!(
        !env.path().join("data").exists(),
        "the data dir was created"
    );
    assert_eq!(env.sim.create_calls(), 0);
}

#[tokio::test]
async fn an_unreachable_replicate_at_start_is_a_warning_and_the_server_starts() {
    let env = Env::start(Load::Light, 50).await;
    // A port nobody listens on: the token check cannot connect.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let config = env.config("").replace(&env.sim.base_url(), &closed_url);
    let app = env.spawn(&config);
    assert!(
        app.log()
            .contains("Could not check the Replicate API token; starting anyway."),
        "{}",
        app.log()
    );
    assert_eq!(
        app.get_json("/v1/tasks").await["tasks"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_exits_at_once_and_the_first_finishes() {
    let env = Env::start(Load::Light, 300).await;
    let config = env.config("");
    let first = env.spawn(&config);
    assert!(
        first.log().contains("Replicate token accepted."),
        "the token check at start reads the account: {}",
        first.log()
    );
    let id = first.start_ok(&tryon_body("first", 3)).await;
    // Same data dir, another port (both ask for port 0). The line is the lock file's refusal,
    // given at once, not the journal's after sled's bounded wait for its own lock.
    let second = serve_until_exit(env.path(), "second", &config, SIM_TOKEN).await;
    assert_refused(
        &second,
        &format!(
            "the data dir {} is in use by another stepwise process",
            env.path().join("data").display()
        ),
    );
    let task = first
        .wait_until_finished(&id, Duration::from_secs(60))
        .await;
    // Exactly one prediction per step: the second server resumed nothing.
    assert_chained(&env.sim, &task, "first");
}

#[tokio::test]
async fn a_server_on_a_busy_port_exits_and_leaves_its_data_dir_alone() {
    let env = Env::start(Load::Light, 50).await;
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap();
    let config = env.config("").replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"{address}\""),
    );
    let run = serve_until_exit(env.path(), "busy", &config, SIM_TOKEN).await;
    assert_refused(&run, &format!("cannot listen on {address}: address in use"));
    assert!(
        !env.path().join("data").exists(),
        "the data dir was created"
    );
    drop(busy);
}

/// `stepwise check-config` on `config`, without any `REPLICATE_*`/`STEPWISE_*` variable.
fn check_config(dir: &Path, config: &str) -> std::process::Output {
    let path = dir.join("check.toml");
    std::fs::write(&path, config).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_stepwise"));
    for (variable, _) in std::env::vars_os() {
        let variable = variable.to_string_lossy();
        if variable.starts_with("STEPWISE_") || variable.starts_with("REPLICATE_") {
            command.env_remove(variable.as_ref());
        }
    }
    command.arg("check-config").arg(&path).output().unwrap()
}

#[tokio::test]
async fn check_config_warns_without_a_token_and_lists_every_template_problem() {
    let _turn = crate::support::turn(Load::Light).await;
    let dir = tempfile::tempdir().unwrap();
    let valid = "[workflows.w]\nmodel = \"a/b\"\n[workflows.w.input]\nprompt = \"a photo of {{item.prompt}}\"\n";
    let output = check_config(dir.path(), valid);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "stepwise: warning: REPLICATE_API_TOKEN is not set: `stepwise serve` will refuse to \
         start without it (`stepwise serve --simulate` needs none)"
    );

    let broken = "[workflows.w]\nmodel = \"a/b\"\n[workflows.w.input]\n\
                  a = \"{{item.prompt}\"\nb = \"{{ }}\"\nc = \"x }}\"\n";
    let output = check_config(dir.path(), broken);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines[0], "stepwise: invalid config:", "{stderr}");
    assert_eq!(lines.len(), 4, "one line per problem: {stderr}");
    for (line, key) in lines[1..].iter().zip(["a", "b", "c"]) {
        assert!(
            line.starts_with(&format!("  workflows.w.input.{key}: ")),
            "{stderr}"
        );
    }
}
