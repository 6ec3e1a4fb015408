//! Webhook delivery: one background task per simulator (the [`Hub`]'s dispatcher) keeps a
//! binary heap of due work: "is prediction X terminal yet?" checks at each prediction's terminal
//! time, and delivery attempts (first tries, retries, delayed or held ones). Each due attempt is
//! sent by a short-lived task that reports back, so a slow receiver never stalls the heap.
//!
//! The dispatcher starts lazily with the first webhook message, holds only a weak reference to
//! the state (it ends when the simulator is dropped or shut down), and renders bodies exactly
//! as `GET /v1/predictions/{id}` would at that moment. Pure rules live in [`crate::webhooks`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use rand::rngs::StdRng;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::state::{SimState, WeakSimState};
use crate::stats::WebhookOutcome;
use crate::webhooks::{message_id, retry_offset, sign, signing_key, AttemptFate, Event};
use crate::SimConfig;

/// What every delivery needs from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The HMAC key: the decoded part of the `whsec_` secret.
    pub key: Vec<u8>,
    /// Multiplies the retry schedule of terminal webhooks.
    pub retry_scale: f64,
    /// Per-attempt HTTP timeout.
    pub timeout: Duration,
}

impl Settings {
    pub fn new(secret: &str, config: &SimConfig) -> Self {
        Settings {
            key: signing_key(secret),
            retry_scale: config.webhook_retry_scale,
            timeout: config.webhook_timeout,
        }
    }
}

/// News for the dispatcher.
pub enum Msg {
    /// A prediction with a `webhook` was stored. `start_body` is set when it asked for `start`.
    Created {
        id: String,
        url: String,
        start_body: Option<Bytes>,
        completed: bool,
        terminal_at: OffsetDateTime,
    },
    /// The prediction was canceled: it is terminal now.
    Canceled { id: String },
}

/// The sending side, kept in the state; the dispatcher is spawned on first use.
pub struct Hub {
    tx: mpsc::UnboundedSender<Msg>,
    idle: Mutex<Option<(mpsc::UnboundedReceiver<Msg>, StdRng)>>,
    settings: Settings,
}

impl Hub {
    pub fn new(settings: Settings, rng: StdRng) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Hub {
            tx,
            idle: Mutex::new(Some((rx, rng))),
            settings,
        }
    }

    /// Hands `msg` to the dispatcher, starting it first if needed. Call inside a tokio runtime.
    pub fn send(&self, state: &SimState, msg: Msg) {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((rx, rng)) = idle {
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(self.settings.timeout)
                .user_agent("replicate-sim-webhooks")
                .build()
                .expect("the webhook HTTP client builds");
            let (done_tx, done_rx) = mpsc::unbounded_channel();
            let dispatcher = Dispatcher {
                state: state.downgrade(),
                settings: self.settings.clone(),
                rng,
                client,
                heap: BinaryHeap::new(),
                jobs: HashMap::new(),
                seq: 0,
                awaiting: HashMap::new(),
                held_starts: HashMap::new(),
                done_tx,
            };
            tokio::spawn(dispatcher.run(rx, done_rx, state.shutdown_signal()));
        }
        // Fails only once the dispatcher has stopped (shutdown), when nothing is sent anyway.
        let _ = self.tx.send(msg);
    }
}

/// One message to one URL; attempts share its `webhook-id` and body.
struct Delivery {
    prediction_id: String,
    url: String,
    msg_id: String,
    body: Bytes,
    event: Event,
    /// When the first attempt became due; retries are scheduled from here.
    since: Instant,
}

enum Job {
    /// Deliver `completed` (and release a held `start`) if the prediction is terminal.
    Check(String),
    /// Attempt number `n` (0 = first) of a delivery.
    Attempt(Arc<Delivery>, u32),
}

/// A prediction whose terminal state has not been delivered yet.
struct Awaiting {
    url: String,
    completed: bool,
}

/// An attempt task's report.
struct Done {
    delivery: Arc<Delivery>,
    attempt: u32,
    ok: bool,
}

struct Dispatcher {
    state: WeakSimState,
    settings: Settings,
    rng: StdRng,
    client: reqwest::Client,
    /// (due, sequence number) of every job in `jobs`, earliest first.
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    jobs: HashMap<u64, Job>,
    seq: u64,
    awaiting: HashMap<String, Awaiting>,
    /// `start` bodies held back by `webhook_reorder`, per prediction id (with their URL).
    held_starts: HashMap<String, (String, Bytes)>,
    done_tx: mpsc::UnboundedSender<Done>,
}

impl Dispatcher {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Msg>,
        mut done_rx: mpsc::UnboundedReceiver<Done>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            let next = self.heap.peek().map(|Reverse((at, _))| *at);
            tokio::select! {
                changed = shutdown.changed() => if changed.is_err() { break },
                msg = rx.recv() => match msg {
                    Some(msg) => self.handle(msg),
                    None => break,
                },
                Some(done) = done_rx.recv() => self.finished(done),
                _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    if !self.fire_due() {
                        break;
                    }
                }
            }
        }
        tracing::debug!("Webhook dispatcher stopped.");
    }

    fn push(&mut self, at: Instant, job: Job) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq)));
        self.jobs.insert(self.seq, job);
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Created {
                id,
                url,
                start_body,
                completed,
                terminal_at,
            } => {
                let Some(state) = self.state.upgrade() else {
                    return;
                };
                let reorder = state.gate().webhook_faults().reorder;
                let mut held = false;
                if let Some(body) = start_body {
                    if reorder {
                        self.held_starts.insert(id.clone(), (url.clone(), body));
                        held = true;
                    } else {
                        self.begin(&id, &url, body, Event::Start);
                    }
                }
                if completed || held {
                    self.awaiting
                        .insert(id.clone(), Awaiting { url, completed });
                    self.push(instant_for(terminal_at), Job::Check(id));
                }
            }
            Msg::Canceled { id } => {
                if self.awaiting.contains_key(&id) {
                    self.push(Instant::now(), Job::Check(id));
                }
            }
        }
    }

    /// Runs every job that is due. Returns false when the simulator is gone.
    fn fire_due(&mut self) -> bool {
        let now = Instant::now();
        while self.heap.peek().is_some_and(|Reverse((at, _))| *at <= now) {
            let Some(Reverse((_, seq))) = self.heap.pop() else {
                break;
            };
            let Some(job) = self.jobs.remove(&seq) else {
                continue;
            };
            let Some(state) = self.state.upgrade() else {
                return false;
            };
            match job {
                Job::Check(id) => self.check(&state, id),
                Job::Attempt(delivery, attempt) => self.attempt(&state, delivery, attempt),
            }
        }
        true
    }

    fn check(&mut self, state: &SimState, id: String) {
        if !self.awaiting.contains_key(&id) {
            return; // Already delivered (e.g. canceled before its planned finish).
        }
        let now = OffsetDateTime::now_utc();
        let rendered = {
            let store = state.store();
            let Some(stored) = store.get(&id) else {
                return;
            };
            if !stored.snapshot(now).status.is_terminal() {
                let at = instant_for(stored.terminal_at()).max(Instant::now());
                drop(store);
                self.push(at + Duration::from_millis(1), Job::Check(id));
                return;
            }
            state.render(stored, now)
        };
        let Some(awaiting) = self.awaiting.remove(&id) else {
            return;
        };
        if awaiting.completed {
            let body = Bytes::from(serde_json::to_vec(&rendered).expect("JSON serialises"));
            self.begin(&id, &awaiting.url, body, Event::Completed);
        } else {
            self.release_start(&id);
        }
    }

    /// Creates a delivery and schedules its first attempt now.
    fn begin(&mut self, prediction_id: &str, url: &str, body: Bytes, event: Event) {
        let delivery = Arc::new(Delivery {
            prediction_id: prediction_id.to_string(),
            url: url.to_string(),
            msg_id: message_id(&mut self.rng),
            body,
            event,
            since: Instant::now(),
        });
        self.schedule(delivery, 0, Instant::now());
    }

    /// Schedules an attempt at `at` plus the injected delay.
    fn schedule(&mut self, delivery: Arc<Delivery>, attempt: u32, at: Instant) {
        let delay = match self.state.upgrade() {
            Some(state) => state.gate().webhook_faults().delay(&mut self.rng),
            None => return,
        };
        self.push(at + delay, Job::Attempt(delivery, attempt));
    }

    fn attempt(&mut self, state: &SimState, delivery: Arc<Delivery>, attempt: u32) {
        let fate = state.gate().webhook_faults().draw(&mut self.rng);
        if fate == AttemptFate::Drop {
            state.gate().record_webhook(WebhookOutcome::Dropped);
            tracing::debug!(msg_id = %delivery.msg_id, attempt, "Dropped a webhook attempt (injected).");
            self.finished(Done {
                delivery,
                attempt,
                ok: false,
            });
            return;
        }
        let (state, client, key) = (
            state.clone(),
            self.client.clone(),
            self.settings.key.clone(),
        );
        let done_tx = self.done_tx.clone();
        tokio::spawn(async move {
            let ok = post(&state, &client, &key, &delivery).await;
            if fate == AttemptFate::SendTwice {
                post(&state, &client, &key, &delivery).await;
            }
            let _ = done_tx.send(Done {
                delivery,
                attempt,
                ok,
            });
        });
    }

    fn finished(&mut self, done: Done) {
        let Done {
            delivery,
            attempt,
            ok,
        } = done;
        if delivery.event != Event::Completed {
            return; // `start` is never retried.
        }
        if !ok {
            if let Some(offset) = retry_offset(attempt + 1, self.settings.retry_scale) {
                let at = delivery.since + offset;
                self.schedule(delivery, attempt + 1, at);
                return;
            }
            tracing::warn!(msg_id = %delivery.msg_id, url = %delivery.url, "Gave up on a terminal webhook.");
        }
        if let Some(persister) = self.state.upgrade().as_ref().and_then(SimState::persister) {
            persister.webhook_done(&delivery.prediction_id); // Not owed after a restart.
        }
        self.release_start(&delivery.prediction_id);
    }

    /// Sends a `start` held back by `webhook_reorder`, now that the terminal one is done.
    fn release_start(&mut self, prediction_id: &str) {
        if let Some((url, body)) = self.held_starts.remove(prediction_id) {
            self.begin(prediction_id, &url, body, Event::Start);
        }
    }
}

/// One signed POST; records the outcome and returns whether it was answered 2xx.
async fn post(state: &SimState, client: &reqwest::Client, key: &[u8], d: &Delivery) -> bool {
    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    let signature = sign(key, &d.msg_id, timestamp, &d.body);
    let result = client
        .post(&d.url)
        .header("content-type", "application/json")
        .header("webhook-id", &d.msg_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(d.body.clone())
        .send()
        .await;
    let ok = match result {
        Ok(response) => {
            let status = response.status();
            let _ = response.bytes().await;
            tracing::debug!(msg_id = %d.msg_id, event = d.event.as_str(), %status, "Sent a webhook.");
            status.is_success()
        }
        Err(error) => {
            tracing::debug!(msg_id = %d.msg_id, event = d.event.as_str(), %error, "A webhook failed.");
            false
        }
    };
    let outcome = if ok {
        WebhookOutcome::Delivered
    } else {
        WebhookOutcome::Failed
    };
    state.gate().record_webhook(outcome);
    ok
}

/// The tokio instant of a wall-clock time (now if it has passed).
fn instant_for(at: OffsetDateTime) -> Instant {
    let (instant, wall) = (Instant::now(), OffsetDateTime::now_utc());
    let ahead: Duration = (at - wall).try_into().unwrap_or_default();
    instant + ahead
}
