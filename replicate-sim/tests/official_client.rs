//! Runs tests/official_client.py (the official Python `replicate` client) against a simulator.
//! Skips, with a message, when `python3 -c "import replicate"` fails, except under CI.

use std::process::Command;
use std::time::{Duration, Instant};

use replicate_sim::{start, ModelBehavior, SimConfig};

fn python_client_available() -> bool {
    Command::new("python3")
        .args(["-c", "import replicate"])
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_works_against_the_simulator() {
    if !python_client_available() {
        // CI installs the client (.ci/run); there a missing client is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but the Python `replicate` client is not installed"
        );
        eprintln!(
            "SKIPPED the_official_python_client_works_against_the_simulator: \
             `python3 -c \"import replicate\"` failed; run `pip install 'replicate>=1,<2'` to enable it"
        );
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
