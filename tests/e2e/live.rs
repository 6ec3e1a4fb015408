//! Live progress for frontends: ETag and 304, long polls that wake on change, and the
//! Server-Sent Events stream with Last-Event-ID resumption.

use crate::support::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const WITHIN: Duration = Duration::from_secs(30);

/// One parsed SSE message.
#[derive(Debug)]
struct Message {
    id: u64,
    data: Value,
}

/// Reads an event stream to its end (or `within`), parsing `id:` and `data:` lines.
async fn read_stream(response: reqwest::Response, within: Duration) -> (Vec<Message>, String) {
    let mut body = String::new();
    let mut response = response;
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, response.chunk()).await {
            Ok(Ok(Some(chunk))) => body.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(Ok(None)) => break,
            Ok(Err(e)) => panic!("stream broke: {e}"),
            Err(_) => panic!("the stream did not end within {within:?}: {body}"),
        }
    }
    let messages = body
        .split("\n\n")
        .filter_map(|block| {
            let id = block
                .lines()
                .find_map(|l| l.strip_prefix("id:"))?
                .trim()
                .parse()
                .ok()?;
            let data = block.lines().find_map(|l| l.strip_prefix("data:"))?.trim();
            Some(Message {
                id,
                data: serde_json::from_str(data).unwrap(),
            })
        })
        .collect();
    (messages, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_sends_the_task_then_every_change_and_closes_at_the_end() {
    let (_env, app) = spawn_app(Load::Light, 150).await;
    let id = app.start_ok(&tryon_body("sse", 3)).await;
    let response = app
        .http
        .get(format!("{}/v1/tasks/{id}/events", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let (messages, _) = read_stream(response, WITHIN).await;
    assert_eq!(messages[0].data["kind"], "snapshot");
    assert!(
        messages.windows(2).all(|w| w[0].id < w[1].id),
        "ids grow: {messages:?}"
    );
    assert!(messages
        .iter()
        .all(|m| m.data["seq"] == m.id && m.data["task"]["id"] == id.as_str()));
    let last = &messages.last().unwrap().data;
    assert_eq!(last["task"]["status"], "succeeded");
    assert_eq!(last["kind"], "step_succeeded");
    let kinds: Vec<String> = messages
        .iter()
        .flat_map(|m| m.data["kinds"].as_array().unwrap().clone())
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let count = |kind: &str| kinds.iter().filter(|k| *k == kind).count();
    assert_eq!(count("step_succeeded"), 3, "{kinds:?}");
    assert_eq!(
        count("step_requested"),
        2,
        "steps 2 and 3 (step 1's came with the start): {kinds:?}"
    );
    assert!(count("prediction_created") >= 2, "{kinds:?}");

    // A reconnect after the end is told to stop; one from the middle gets the current state.
    let final_seq = messages.last().unwrap().id;
    let again = app
        .http
        .get(format!("{}/v1/tasks/{id}/events", app.url))
        .header("Last-Event-ID", final_seq.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 204);
    let middle = app
        .http
        .get(format!("{}/v1/tasks/{id}/events", app.url))
        .header("Last-Event-ID", messages[1].id.to_string())
        .send()
        .await
        .unwrap();
    let (resumed, _) = read_stream(middle, WITHIN).await;
    assert_eq!(resumed.len(), 1);
    assert_eq!(
        (resumed[0].id, resumed[0].data["task"]["status"].as_str()),
        (final_seq, Some("succeeded"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_resumed_with_the_current_id_sends_only_what_comes_next() {
    let (_env, app) = spawn_app(Load::Light, 400).await;
    let id = app.start_ok(&tryon_body("resume", 2)).await;
    let url = format!("{}/v1/tasks/{id}", app.url);
    let etag = app.http.get(&url).send().await.unwrap().headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    let seen: u64 = etag.trim_matches('"').parse().unwrap();
    let response = app
        .http
        .get(format!("{url}/events"))
        .header("Last-Event-ID", seen.to_string())
        .send()
        .await
        .unwrap();
    let (messages, _) = read_stream(response, WITHIN).await;
    assert!(
        messages.iter().all(|m| m.id > seen),
        "nothing at or before Last-Event-ID {seen}: {messages:?}"
    );
    assert!(
        messages.len() >= 3,
        "the changes after {seen}: {messages:?}"
    );
    assert_eq!(messages.last().unwrap().data["task"]["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_turn_unchanged_polls_into_304s() {
    let (_env, app) = spawn_app(Load::Light, 30).await;
    let id = app.start_ok(&tryon_body("etag", 1)).await;
    app.wait_until_finished(&id, WITHIN).await;
    let url = format!("{}/v1/tasks/{id}", app.url);
    let first = app.http.get(&url).send().await.unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let task: Value = first.json().await.unwrap();
    assert_eq!(etag, format!("\"{}\"", task_seq(&app, &id).await));
    assert!(task["status"] == "succeeded");
    let same = app
        .http
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), 304);
    assert_eq!(same.headers()["etag"].to_str().unwrap(), etag);
    assert!(same.bytes().await.unwrap().is_empty());
    let stale = app
        .http
        .get(&url)
        .header("If-None-Match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
}

async fn task_seq(app: &App, id: &str) -> u64 {
    let response = app
        .http
        .get(format!("{}/v1/tasks/{id}/events", app.url))
        .send()
        .await
        .unwrap();
    let (messages, _) = read_stream(response, WITHIN).await;
    messages.last().unwrap().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_answers_as_soon_as_the_task_changes() {
    let (_env, app) = spawn_app(Load::Light, 600).await;
    let id = app.start_ok(&tryon_body("long", 1)).await;
    let url = format!("{}/v1/tasks/{id}", app.url);
    let mut etag = app.http.get(&url).send().await.unwrap().headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    let mut seen = 0;
    loop {
        let response = app
            .http
            .get(format!("{url}?wait=20"))
            .header("If-None-Match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "each answer is a change, not a timeout"
        );
        let next = response.headers()["etag"].to_str().unwrap().to_owned();
        assert_ne!(next, etag);
        etag = next;
        seen += 1;
        let task: Value = response.json().await.unwrap();
        if task["status"] == "succeeded" {
            break;
        }
    }
    assert!(seen >= 2, "woke for intermediate changes too");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "woken by changes, not by the 20 s wait"
    );
    let timed_out = app
        .http
        .get(format!("{url}?wait=1"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(timed_out.status(), 304);
    let too_long = app.http.get(format!("{url}?wait=61")).send().await.unwrap();
    assert_eq!(too_long.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_does_not_hold_up_a_clean_shutdown() {
    let (_env, mut app) = spawn_app(Load::Light, 60_000).await;
    let id = app.start_ok(&tryon_body("open", 1)).await;
    let url = format!("{}/v1/tasks/{id}", app.url);
    let mut stream = app.http.get(format!("{url}/events")).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.chunk().await.unwrap().is_some(),
        "the snapshot arrived: the stream is open"
    );
    let started = Instant::now();
    let status = app.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(rest.is_ok(), "the server ended the stream");
}
