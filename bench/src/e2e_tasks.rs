//! The `e2e` scenario's traffic: start bodies with random payload, posting them from N
//! clients (collecting the ids), waiting until the runtime holds no unfinished task, and
//! reading every task back for its timestamps.

use super::harness::Harness;
use super::load::{self, Outcome, Plan};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The start bodies of `count` tasks tagged `{prefix}{i}`, built before anything is timed.
pub fn bodies(
    prefix: &str,
    count: usize,
    steps: usize,
    payload_bytes: usize,
) -> Vec<hyper::body::Bytes> {
    (0..count)
        .map(|i| {
            let tag = format!("{prefix}{i}");
            let items: Vec<Value> = (0..steps)
                .map(|n| json!({ "n": format!("{tag}-{n}"), "pad": noise(&format!("{tag}-{n}"), payload_bytes) }))
                .collect();
            let body = json!({ "workflow": "padded", "params": { "start": format!("s{tag}") }, "items": items });
            serde_json::to_vec(&body).expect("JSON encodes").into()
        })
        .collect()
}

/// `len` characters of the base64 alphabet, different for every `seed`: payload that
/// compresses about as badly as a base64 file (6 bits of entropy per character).
pub fn noise(seed: &str, len: usize) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = seed.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    }) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x >> 58) as usize] as char
        })
        .collect()
}

/// Posts one task per body; answers the start outcome and the ids.
pub async fn post_tasks(
    harness: &Harness,
    clients: usize,
    bodies: Vec<hyper::body::Bytes>,
    label: &str,
    idempotency_keys: bool,
) -> (Outcome, Vec<String>) {
    let http = load::client(clients);
    let keys: Vec<Option<String>> = (0..bodies.len())
        .map(|i| idempotency_keys.then(|| noise(&format!("key-{label}-{i}"), 26)))
        .collect();
    let ids = Arc::new(Mutex::new(Vec::with_capacity(bodies.len())));
    let (collected, url) = (ids.clone(), format!("{}/v1/tasks", harness.url));
    let plan = Plan {
        clients,
        requests: Some(bodies.len()),
        duration: None,
    };
    let outcome = load::run(label, plan, move |i| {
        let mut request = http
            .post(&url)
            .header("content-type", "application/json")
            .body(bodies[i].clone());
        if let Some(key) = &keys[i] {
            request = request.header("idempotency-key", key.as_str());
        }
        let collected = collected.clone();
        async move {
            let answer = load::expect_status(request, 201).await?;
            let task: Value = serde_json::from_slice(&answer).map_err(|e| e.to_string())?;
            collected
                .lock()
                .expect("not poisoned")
                .push(task["id"].as_str().unwrap_or_default().to_owned());
            Ok(())
        }
    })
    .await;
    let ids = std::mem::take(&mut *ids.lock().expect("not poisoned"));
    (outcome, ids)
}

/// Waits until the runtime holds no unfinished task; answers when it first saw that.
pub async fn until_idle(
    harness: &Harness,
    total: usize,
    within: Duration,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + within;
    let mut progress = super::progress::Progress::new("finishing", total as u64);
    loop {
        let unfinished = harness.unfinished();
        progress.set(total.saturating_sub(unfinished) as u64);
        if unfinished == 0 {
            progress.finish();
            return Ok(Instant::now());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{unfinished} tasks still unfinished after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Reads every task back (not timed): (status, created_at ms, completed_at ms) by id.
pub async fn read_back(
    harness: &Harness,
    ids: &[String],
    clients: usize,
) -> anyhow::Result<Vec<(String, i64, i64)>> {
    let http = load::client(clients);
    let ids: Arc<Vec<String>> = Arc::new(ids.to_vec());
    let found = Arc::new(Mutex::new(Vec::with_capacity(ids.len())));
    let (base, collected, list) = (harness.url.clone(), found.clone(), ids.clone());
    let plan = Plan {
        clients,
        requests: Some(ids.len()),
        duration: None,
    };
    let outcome = load::run("reading", plan, move |i| {
        let request = http.get(format!("{base}/v1/tasks/{}", list[i]));
        let collected = collected.clone();
        async move {
            let answer = load::expect_status(request, 200).await?;
            let task: Value = serde_json::from_slice(&answer).map_err(|e| e.to_string())?;
            let at = |field: &str| {
                task[field]
                    .as_str()
                    .and_then(stepwise_engine::time::parse_rfc3339)
                    .unwrap_or(0)
            };
            let status = task["status"].as_str().unwrap_or("").to_owned();
            collected.lock().expect("not poisoned").push((
                status,
                at("created_at"),
                at("completed_at"),
            ));
            Ok(())
        }
    })
    .await;
    anyhow::ensure!(
        outcome.errors == 0,
        "reading the tasks back failed: {}",
        outcome.first_error.unwrap_or_default()
    );
    let found = std::mem::take(&mut *found.lock().expect("not poisoned"));
    Ok(found)
}
