//! The bench binary's own plumbing, black-box: `hello` serves the bare-HTTP reference alone
//! (for `wrk`) and stops by itself; `--stepwise-bin` refuses a missing engine binary with a
//! way out instead of failing mid-scenario.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn bench() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stepwise-bench"));
    command
        .env("STEPWISE_LOG", "error")
        .env_remove("STEPWISE_BIN");
    command
}

#[test]
fn hello_answers_an_outside_client_then_stops_by_itself() {
    let mut child = bench()
        .args(["hello", "--seconds", "2", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the stepwise-bench binary runs");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("a first line");
    let url = first
        .trim()
        .strip_prefix("bare hyper listening on http://")
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();

    let mut stream = TcpStream::connect(&url).expect("the reference listens");
    stream
        .write_all(b"GET /v1/tasks/x HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .expect("the request is sent");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello"), "{answer}");

    let status = child.wait().expect("it exits by itself after --seconds");
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("the report");
    let report: serde_json::Value = serde_json::from_str(&rest).expect("a JSON report");
    assert_eq!(report["scenario"], "hello");
    assert_eq!(report["requests"], 1, "{report}");
    assert!(
        report["seconds"].as_f64().is_some_and(|s| s >= 2.0),
        "{report}"
    );
}

#[test]
fn a_missing_engine_binary_is_refused_with_how_to_build_it() {
    let output = bench()
        .args([
            "idle",
            "--tasks",
            "10",
            "--stepwise-bin",
            "/nonexistent/stepwise",
        ])
        .output()
        .expect("the stepwise-bench binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("/nonexistent/stepwise: no such file")
            && stderr.contains("cargo build --release -p stepwise"),
        "{stderr}"
    );
}
