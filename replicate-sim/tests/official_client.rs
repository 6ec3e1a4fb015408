//! Runs tests/official_client.py (the official Python `replicate` client) against a simulator.
//! Needs `python3` with the client (`pip install 'replicate>=1,<2'`; `.ci/run` installs it).
//! Without it the test prints `SKIPPED: …` and passes, unless `CI` is set: then it fails, so
//! CI can never pass by skipping (the same rule as the browser tests in tests/e2e).

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use replicate_sim::{start, ModelBehavior, SimConfig};

/// Whether `python3 -c "import replicate"` works. When not: a printed skip, or a panic when
/// `CI` is set.
fn python_client_present(test: &str) -> bool {
    let present = Command::new("python3")
        .args(["-c", "import replicate"])
        .output()
        .is_ok_and(|out| out.status.success());
    if present {
        return true;
    }
    let message = format!(
        "simulator test `{test}` needs: python3 with the `replicate` client \
         (pip install 'replicate>=1,<2')"
    );
    if std::env::var_os("CI").is_some() {
        panic!("{message} (CI is set, so this is a failure)");
    }
    // Straight to stderr: the test harness captures eprintln!, which would hide the skip in a
    // passing run.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {message}");
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_works_against_the_simulator() {
    if !python_client_present("official_client") {
        return;
    }
    let mut config = SimConfig {
        default_model: ModelBehavior {
            starting_ms: 20,
            processing_ms: 60,
            ..ModelBehavior::default()
        },
        ..SimConfig::default()
    };
    config.models.insert(
        "acme/slow".into(),
        ModelBehavior {
            starting_ms: 30_000,
            processing_ms: 30_000,
            ..ModelBehavior::default()
        },
    );
    let token = config.token.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = start(config, listener).await.unwrap();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/official_client.py");
    let mut child = Command::new("python3")
        .arg(script)
        .env("REPLICATE_API_TOKEN", &token)
        .env("REPLICATE_SIM_BASE_URL", sim.base_url())
        .env_remove("REPLICATE_BASE_URL")
        .spawn()
        .expect("python3 starts");
    let give_up = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= give_up {
            let _ = child.kill();
            panic!("tests/official_client.py did not finish within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        status.success(),
        "tests/official_client.py failed: {status}"
    );
    assert!(sim.create_calls() >= 4);
    sim.shutdown().await;
}
