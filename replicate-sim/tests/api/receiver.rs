//! A webhook receiver for the tests: a small axum server on a port-0 listener that records every
//! delivery (headers, raw body, arrival time) and can fail the first few, plus Standard-Webhooks
//! signature verification written independently of the simulator's signing code.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::helpers::eventually;

pub const LIMIT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct Hit {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: time::OffsetDateTime,
}

impl Hit {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers[name].to_str().unwrap()
    }
    pub fn status(&self) -> String {
        self.json()["status"].as_str().unwrap().to_string()
    }
}

/// Records deliveries; answers 500 to the first `failures` of them, then 200.
#[derive(Clone)]
pub struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    failures: Arc<AtomicUsize>,
    pub url: String,
}

impl Receiver {
    pub async fn spawn(failures: usize) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            hits: Arc::default(),
            failures: Arc::new(AtomicUsize::new(failures)),
            url: format!(
                "http://{}/hooks/replicate?task=42",
                listener.local_addr().unwrap()
            ),
        };
        let app = axum::Router::new()
            .fallback(record)
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits until at least `n` deliveries arrived and returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Hit> {
        eventually(LIMIT, &format!("{n} webhook deliveries"), || async {
            let hits = self.hits();
            (hits.len() >= n).then_some(hits)
        })
        .await
    }
}

async fn record(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.hits.lock().unwrap().push(Hit {
        headers,
        body,
        at: time::OffsetDateTime::now_utc(),
    });
    let failing = r
        .failures
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

/// Verifies a delivery as a Standard-Webhooks receiver would.
pub fn verifies(secret: &str, hit: &Hit) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    let signed = format!(
        "{}.{}.",
        hit.header("webhook-id"),
        hit.header("webhook-timestamp")
    );
    mac.update(signed.as_bytes());
    mac.update(&hit.body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    hit.header("webhook-signature").split(' ').any(|entry| {
        entry
            .split_once(',')
            .is_some_and(|(_, sig)| sig == expected)
    })
}
