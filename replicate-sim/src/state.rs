//! The simulator's shared state: the prediction store (creation-ordered Vec plus an id index)
//! behind one `std::sync::Mutex`, the model behaviours, the id/failure/cold-boot randomness, and
//! the fault [`Gate`] behind a second mutex. Callers pass `now` in; each lock is held only for
//! short, synchronous sections and never both at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::{watch, Notify};

use crate::delivery::{Hub, Msg, Settings};
use crate::faults::{chance, LifecycleFaults};
use crate::gate::Gate;
use crate::persist::Persister;
use crate::prediction::{Plan, RenderCtx, StoredPrediction};
use crate::webhooks::random_secret;
use crate::{ModelBehavior, SimConfig};

/// What a create request resolved to, before the store assigns id and time.
#[derive(Clone, Debug)]
pub struct NewPrediction {
    pub model: String,
    pub version: String,
    pub deployment: Option<String>,
    /// Keys tried, in order, to find the model behaviour; the first is also the output-hash key.
    pub lookup_keys: Vec<String>,
    pub input: Value,
    pub cancel_after: Option<Duration>,
    pub webhook: Option<String>,
    pub webhook_events_filter: Option<Vec<String>>,
}

pub struct Store {
    predictions: Vec<StoredPrediction>,
    /// id -> position in `predictions`.
    index: HashMap<String, usize>,
    /// Output hash -> position of the latest prediction with that output, so a file URL
    /// finds the input its picture is drawn from.
    outputs: HashMap<String, usize>,
    models: HashMap<String, ModelBehavior>,
    default_model: ModelBehavior,
    rng: StdRng,
    create_calls: u64,
    /// Cold boots and the failure-rate override, drawn at creation.
    lifecycle: LifecycleFaults,
    /// Behaviours that win over the model's for a prediction whose input has `key` equal to
    /// `value`: the first match, in the order they were set.
    input_behaviors: Vec<InputBehavior>,
}

/// See [`Store::set_input_behavior`].
struct InputBehavior {
    key: String,
    value: Value,
    behavior: ModelBehavior,
}

impl Store {
    pub fn new(
        default_model: ModelBehavior,
        models: HashMap<String, ModelBehavior>,
        rng: StdRng,
    ) -> Self {
        Store {
            predictions: Vec::new(),
            index: HashMap::new(),
            outputs: HashMap::new(),
            models,
            default_model,
            rng,
            create_calls: 0,
            lifecycle: LifecycleFaults::default(),
            input_behaviors: Vec::new(),
        }
    }

    fn new_id(&mut self) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        loop {
            let id: String = (0..26)
                .map(|_| ALPHABET[self.rng.random_range(0..ALPHABET.len())] as char)
                .collect();
            if !self.index.contains_key(&id) {
                return id;
            }
        }
    }

    /// Stores a new prediction created at `now` (clamped so creation times never decrease)
    /// and returns its position.
    pub fn create(&mut self, new: NewPrediction, now: OffsetDateTime) -> usize {
        let behavior = self
            .input_behaviors
            .iter()
            .find(|b| new.input.get(&b.key) == Some(&b.value))
            .map(|b| &b.behavior)
            .or_else(|| new.lookup_keys.iter().find_map(|k| self.models.get(k)))
            .unwrap_or(&self.default_model)
            .clone();
        let failure_rate = self.lifecycle.failure_rate.unwrap_or(behavior.failure_rate);
        let fails = chance(&mut self.rng, failure_rate);
        let starting_ms = if chance(&mut self.rng, self.lifecycle.cold_boot_rate) {
            self.lifecycle.cold_boot_ms
        } else {
            behavior.starting_ms
        };
        let created_at = self
            .predictions
            .last()
            .map_or(now, |last| last.created_at.max(now));
        let id = self.new_id();
        let position = self.predictions.len();
        self.index.insert(id.clone(), position);
        let model_key = new.lookup_keys.into_iter().next().unwrap_or_default();
        self.outputs
            .insert(crate::output::output_hash(&model_key, &new.input), position);
        self.predictions.push(StoredPrediction {
            id,
            model: new.model,
            version: new.version,
            deployment: new.deployment,
            model_key,
            input: new.input,
            created_at,
            deadline: new.cancel_after.map(|d| created_at + d),
            webhook: new.webhook,
            webhook_events_filter: new.webhook_events_filter,
            plan: Plan {
                starting: Duration::from_millis(starting_ms),
                processing: Duration::from_millis(behavior.processing_ms),
                failure: fails.then_some(behavior.failure_message),
                output: behavior.output,
            },
            canceled_at: None,
        });
        self.create_calls += 1;
        position
    }

    pub fn get(&self, id: &str) -> Option<&StoredPrediction> {
        self.index.get(id).map(|&i| &self.predictions[i])
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut StoredPrediction> {
        self.index.get(id).map(|&i| &mut self.predictions[i])
    }

    pub fn at(&self, position: usize) -> &StoredPrediction {
        &self.predictions[position]
    }

    /// The latest prediction whose output file has this hash.
    pub fn by_output(&self, hash: &str) -> Option<&StoredPrediction> {
        self.outputs.get(hash).map(|&i| &self.predictions[i])
    }

    pub fn all(&self) -> &[StoredPrediction] {
        &self.predictions
    }

    /// Positions `lo..hi` of predictions created in `[after, before)`.
    pub fn created_range(
        &self,
        after: Option<OffsetDateTime>,
        before: Option<OffsetDateTime>,
    ) -> (usize, usize) {
        let lo = after.map_or(0, |a| {
            self.predictions.partition_point(|p| p.created_at < a)
        });
        let hi = before.map_or(self.predictions.len(), |b| {
            self.predictions.partition_point(|p| p.created_at < b)
        });
        (lo, hi.max(lo))
    }

    pub fn set_model(&mut self, key: &str, behavior: ModelBehavior) {
        self.models.insert(key.to_string(), behavior);
    }

    pub fn create_calls(&self) -> u64 {
        self.create_calls
    }

    /// From now on, a prediction of any model whose input has `key` equal to `value` is
    /// created with `behavior` instead of its model's (one branch of many failing, say).
    pub fn set_input_behavior(&mut self, key: &str, value: Value, behavior: ModelBehavior) {
        self.input_behaviors.push(InputBehavior {
            key: key.to_string(),
            value,
            behavior,
        });
    }

    /// Forgets every [`Store::set_input_behavior`]: predictions created from now on follow
    /// their model's behaviour.
    pub fn clear_input_behaviors(&mut self) {
        self.input_behaviors.clear();
    }

    pub fn set_lifecycle(&mut self, lifecycle: LifecycleFaults) {
        self.lifecycle = lifecycle;
    }

    /// Replaces every prediction with `predictions` (read back from a state file), sorted by
    /// creation time; they count as create calls.
    pub fn restore(&mut self, mut predictions: Vec<StoredPrediction>) {
        predictions.sort_by_key(|p| p.created_at);
        self.index = predictions
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        self.outputs = predictions
            .iter()
            .enumerate()
            .map(|(i, p)| (crate::output::output_hash(&p.model_key, &p.input), i))
            .collect();
        self.create_calls = predictions.len() as u64;
        self.predictions = predictions;
    }
}

/// Everything the handlers share; cheap to clone.
#[derive(Clone)]
pub struct SimState {
    inner: Arc<Inner>,
}

struct Inner {
    token: String,
    base: String,
    omit_optional_keys: bool,
    output_retention: Option<std::time::Duration>,
    page_size: usize,
    webhook_secret: String,
    webhooks: Hub,
    store: Mutex<Store>,
    gate: Mutex<Gate>,
    /// Woken whenever a prediction is canceled, so `Prefer: wait` requests re-check at once.
    changed: Notify,
    /// Flips to true when the server shuts down, so waiting requests return early. The sender
    /// lives here so it outlives every receiver.
    shutdown: watch::Sender<bool>,
    /// Set once at start when the simulator persists its state ([`crate::persist`]).
    persist: OnceLock<Persister>,
}

impl SimState {
    /// `base` is the public URL without a trailing slash.
    pub fn new(config: SimConfig, base: String) -> Self {
        let seeded = |offset: u64| {
            config.seed.map_or_else(StdRng::from_os_rng, |seed| {
                StdRng::seed_from_u64(seed.wrapping_add(offset))
            })
        };
        let mut rng = seeded(0);
        let gate_rng = seeded(0x9e37_79b9_7f4a_7c15);
        // Drawn even when the secret is configured, so seeded ids stay the same.
        let random_secret = random_secret(&mut rng);
        let webhook_secret = config.webhook_secret.clone().unwrap_or(random_secret);
        let settings = Settings::new(&webhook_secret, &config);
        let webhooks = Hub::new(settings, seeded(0x3c6e_f372_fe94_f82a));
        let gate = Gate::new(config.rate_limits.as_ref(), gate_rng, Instant::now());
        let store = Store::new(config.default_model, config.models, rng);
        SimState {
            inner: Arc::new(Inner {
                token: config.token,
                base: base.trim_end_matches('/').to_string(),
                omit_optional_keys: config.omit_optional_keys,
                output_retention: config.output_retention,
                page_size: config.page_size.max(1),
                webhook_secret,
                webhooks,
                store: Mutex::new(store),
                gate: Mutex::new(gate),
                changed: Notify::new(),
                shutdown: watch::Sender::new(false),
                persist: OnceLock::new(),
            }),
        }
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.inner
            .store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn gate(&self) -> MutexGuard<'_, Gate> {
        self.inner
            .gate
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn token(&self) -> &str {
        &self.inner.token
    }

    pub fn base(&self) -> &str {
        &self.inner.base
    }

    pub fn page_size(&self) -> usize {
        self.inner.page_size
    }

    pub fn webhook_secret(&self) -> &str {
        &self.inner.webhook_secret
    }

    /// Tells the webhook dispatcher about a created or canceled prediction (see
    /// [`crate::delivery`]). Call inside a tokio runtime.
    pub fn send_webhook(&self, msg: Msg) {
        self.inner.webhooks.send(self, msg);
    }

    pub(crate) fn downgrade(&self) -> WeakSimState {
        WeakSimState(Arc::downgrade(&self.inner))
    }

    /// Where creates, cancels and webhook notes are written, when the state is persisted.
    pub fn persister(&self) -> Option<&Persister> {
        self.inner.persist.get()
    }

    pub(crate) fn set_persister(&self, persister: Persister) {
        // Called once, by `start`, before any request is served.
        let _ = self.inner.persist.set(persister);
    }

    pub fn changed(&self) -> &Notify {
        &self.inner.changed
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Tells the server and every waiting request to stop.
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    pub fn render_ctx(&self) -> RenderCtx<'_> {
        RenderCtx {
            base: &self.inner.base,
            omit_optional_keys: self.inner.omit_optional_keys,
            output_retention: self.inner.output_retention,
        }
    }

    /// Whether the output file with this hash is still served: some prediction with that
    /// output has not passed its output retention (or none is set).
    pub fn file_alive(&self, hash: &str, now: time::OffsetDateTime) -> bool {
        let Some(retention) = self.inner.output_retention else {
            return true;
        };
        let store = self.inner.store.lock().unwrap_or_else(|p| p.into_inner());
        store.all().iter().any(|p| {
            let snap = p.snapshot(now);
            crate::output::output_hash(&p.model_key, &p.input) == hash
                && snap.completed_at.is_some_and(|done| now < done + retention)
        })
    }

    /// Renders one stored prediction at `now`.
    pub fn render(&self, prediction: &StoredPrediction, now: OffsetDateTime) -> Value {
        prediction.render(now, &self.render_ctx())
    }
}

/// A reference that does not keep the simulator alive (held by the webhook dispatcher).
#[derive(Clone)]
pub(crate) struct WeakSimState(Weak<Inner>);

impl WeakSimState {
    pub fn upgrade(&self) -> Option<SimState> {
        self.0.upgrade().map(|inner| SimState { inner })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn new_prediction(key: &str) -> NewPrediction {
        NewPrediction {
            model: key.into(),
            version: "hidden".into(),
            deployment: None,
            lookup_keys: vec![key.into()],
            input: json!({}),
            cancel_after: None,
            webhook: None,
            webhook_events_filter: None,
        }
    }

    #[test]
    fn ids_are_26_lowercase_alphanumerics_and_indexed() {
        let mut store = Store::new(
            ModelBehavior::default(),
            HashMap::new(),
            StdRng::seed_from_u64(7),
        );
        let now = datetime!(2025-01-01 00:00 UTC);
        let pos = store.create(new_prediction("o/n"), now);
        let id = store.at(pos).id.clone();
        assert_eq!(id.len(), 26);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert_eq!(store.get(&id).unwrap().id, id);
        assert_eq!(store.create_calls(), 1);
    }

    #[test]
    fn creation_times_never_decrease_and_ranges_follow_them() {
        let mut store = Store::new(
            ModelBehavior::default(),
            HashMap::new(),
            StdRng::seed_from_u64(7),
        );
        let t = datetime!(2025-01-01 00:00 UTC);
        store.create(new_prediction("o/n"), t);
        store.create(new_prediction("o/n"), t - Duration::from_secs(5));
        store.create(new_prediction("o/n"), t + Duration::from_secs(5));
        assert_eq!(store.all()[1].created_at, t);
        assert_eq!(store.created_range(Some(t), None), (0, 3));
        assert_eq!(store.created_range(None, Some(t)), (0, 0));
        assert_eq!(
            store.created_range(Some(t + Duration::from_secs(1)), None),
            (2, 3)
        );
    }

    #[test]
    fn model_behaviour_is_looked_up_by_key_then_default() {
        let mut models = HashMap::new();
        models.insert(
            "o/fail".to_string(),
            ModelBehavior {
                failure_rate: 1.0,
                ..ModelBehavior::default()
            },
        );
        let mut store = Store::new(ModelBehavior::default(), models, StdRng::seed_from_u64(7));
        let now = datetime!(2025-01-01 00:00 UTC);
        let failing = store.create(new_prediction("o/fail"), now);
        let fine = store.create(new_prediction("o/other"), now);
        assert!(store.at(failing).plan.failure.is_some());
        assert!(store.at(fine).plan.failure.is_none());
    }

    #[test]
    fn an_input_behavior_wins_over_the_model_until_cleared() {
        let mut store = Store::new(
            ModelBehavior::default(),
            HashMap::new(),
            StdRng::seed_from_u64(7),
        );
        store.set_input_behavior(
            "seed",
            json!(2),
            ModelBehavior {
                failure_rate: 1.0,
                ..ModelBehavior::default()
            },
        );
        let with_input = |seed: Value| NewPrediction {
            input: json!({ "seed": seed }),
            ..new_prediction("o/n")
        };
        let now = datetime!(2025-01-01 00:00 UTC);
        let marked = store.create(with_input(json!(2)), now);
        let other = store.create(with_input(json!(3)), now);
        let text = store.create(with_input(json!("2")), now);
        assert!(store.at(marked).plan.failure.is_some());
        assert!(store.at(other).plan.failure.is_none());
        assert!(
            store.at(text).plan.failure.is_none(),
            "the value's JSON type counts"
        );
        store.clear_input_behaviors();
        let after = store.create(with_input(json!(2)), now);
        assert!(store.at(after).plan.failure.is_none());
    }

    #[test]
    fn lifecycle_faults_override_failure_and_starting_time() {
        let mut store = Store::new(
            ModelBehavior::default(),
            HashMap::new(),
            StdRng::seed_from_u64(7),
        );
        store.set_lifecycle(LifecycleFaults {
            cold_boot_rate: 1.0,
            cold_boot_ms: 4000,
            failure_rate: Some(1.0),
        });
        let now = datetime!(2025-01-01 00:00 UTC);
        let cold = store.create(new_prediction("o/n"), now);
        assert_eq!(store.at(cold).plan.starting, Duration::from_millis(4000));
        assert_eq!(
            store.at(cold).plan.failure.as_deref(),
            Some("Simulated model failure")
        );
        store.set_lifecycle(LifecycleFaults::default());
        let normal = store.create(new_prediction("o/n"), now);
        assert_eq!(store.at(normal).plan.starting, Duration::from_millis(50));
        assert!(store.at(normal).plan.failure.is_none());
    }
}
