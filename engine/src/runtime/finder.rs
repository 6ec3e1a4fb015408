//! The search for predictions that a create call may have made although its answer never
//! reached the journal (a restart, a reset connection). Replicate has no idempotency key, so
//! the only way to know is to list the predictions created while the call was out and look
//! for one with exactly the step's input that no task owns.
//!
//! Every search waiting when a pass begins shares that pass: one walk over the list, newest
//! first, bounded by the union of their windows, so a thousand ambiguous steps after a restart
//! read the same pages once. A pass ends when the list does or when its pages are older than
//! the window: not finding a prediction there is an answer ("not found"), never an error.
//! A pass and a create of the same input never overlap (`create_guard`): a prediction whose
//! create answer is still on its way belongs to that create, not to a search, and each
//! prediction a create or a search returns is claimed here until its owner is journaled.

use crate::journal::Store;
use crate::model::Millis;
use crate::replicate::{ClientError, Prediction, ReplicateClient};
use serde_json::Value;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, OwnedRwLockReadGuard, RwLock};

/// How long a prediction a create or search returned stays claimed here: far longer than
/// its owner takes to reach the journal, where the owner index takes over.
const CLAIM_TTL: Duration = Duration::from_secs(15 * 60);

type Reply = oneshot::Sender<Result<Option<Prediction>, ClientError>>;

/// One step's search: a prediction with `input`, created within `[from, until]` (ms).
struct Search {
    input: Value,
    key: u64,
    from: Millis,
    until: Millis,
    reply: Option<Reply>,
}

#[derive(Default)]
struct State {
    waiting: Vec<Search>,
    /// A pass is running; searches that arrive meanwhile wait for the next one.
    running: bool,
    /// Predictions a create or search returned, not yet known to be journaled.
    claimed: HashMap<String, Instant>,
    /// When `claimed` last dropped its expired entries.
    pruned: Option<Instant>,
    /// One lock per input: creates hold it shared while out, a pass holds it exclusively.
    locks: HashMap<u64, Weak<RwLock<()>>>,
}

impl State {
    fn claim(&mut self, prediction_id: &str) {
        self.claimed
            .insert(prediction_id.to_owned(), Instant::now());
        // Every create claims one: drop expired claims now and then, searches or not.
        if self.pruned.is_none_or(|at| at.elapsed() >= CLAIM_TTL / 15) {
            self.claimed.retain(|_, at| at.elapsed() < CLAIM_TTL);
            self.pruned = Some(Instant::now());
        }
    }
}

/// Shared by every call the runtime spawns; cheap to clone.
#[derive(Clone)]
pub(crate) struct Finder {
    client: ReplicateClient,
    store: Arc<dyn Store>,
    state: Arc<Mutex<State>>,
}

/// What one pass saw, for the logs.
#[derive(Default)]
struct PassStats {
    pages: usize,
    /// Predictions in the window whose input Replicate has deleted (`data_removed`).
    removed: usize,
}

impl Finder {
    pub fn new(client: ReplicateClient, store: Arc<dyn Store>) -> Self {
        Finder {
            client,
            store,
            state: Arc::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Only map and vector updates run under this lock; none can panic half way.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The prediction with exactly `input`, created in `[from, until]` (ms) and owned by no
    /// task, claimed for the caller; `None` when there is none.
    pub async fn find(
        &self,
        input: Value,
        from: Millis,
        until: Millis,
    ) -> Result<Option<Prediction>, ClientError> {
        let (reply, answer) = oneshot::channel();
        let key = input_key(&input);
        let start = {
            let mut state = self.state();
            state.waiting.push(Search {
                input,
                key,
                from,
                until,
                reply: Some(reply),
            });
            !std::mem::replace(&mut state.running, true)
        };
        if start {
            let finder = self.clone();
            tokio::spawn(async move { finder.drive().await });
        }
        answer.await.unwrap_or_else(|_| {
            Err(ClientError::retryable(
                "the prediction search stopped".into(),
            ))
        })
    }

    /// Held by a create call from just before it is sent until its answer is claimed: no
    /// pass over the same input runs meanwhile.
    pub async fn create_guard(&self, input: &Value) -> OwnedRwLockReadGuard<()> {
        self.lock_for(input_key(input)).read_owned().await
    }

    /// Marks a prediction as this process's, until its owner is journaled.
    pub fn claim(&self, prediction_id: &str) {
        self.state().claim(prediction_id);
    }

    fn lock_for(&self, key: u64) -> Arc<RwLock<()>> {
        let mut state = self.state();
        if let Some(lock) = state.locks.get(&key).and_then(Weak::upgrade) {
            return lock;
        }
        state.locks.retain(|_, lock| lock.strong_count() > 0);
        let lock = Arc::new(RwLock::new(()));
        state.locks.insert(key, Arc::downgrade(&lock));
        lock
    }

    /// Runs passes while searches wait.
    async fn drive(self) {
        loop {
            let batch = {
                let mut state = self.state();
                if state.waiting.is_empty() {
                    state.running = false;
                    return;
                }
                std::mem::take(&mut state.waiting)
            };
            self.pass(batch).await;
        }
    }

    /// One walk over the list for every search in `batch`; answers each of them.
    async fn pass(&self, mut batch: Vec<Search>) {
        let mut keys: Vec<u64> = batch.iter().map(|s| s.key).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut guards = Vec::with_capacity(keys.len());
        for key in keys {
            guards.push(self.lock_for(key).write_owned().await);
        }
        let from = batch.iter().map(|s| s.from).min().unwrap_or_default();
        let until = batch.iter().map(|s| s.until).max().unwrap_or_default();
        let mut stats = PassStats::default();
        let outcome = self.walk(&mut batch, from, until, &mut stats).await;
        drop(guards);
        let unmatched = batch.iter().filter(|s| s.reply.is_some()).count();
        tracing::info!(
            searches = batch.len(),
            unmatched,
            pages = stats.pages,
            "Searched Replicate for predictions whose create answer was lost."
        );
        if stats.removed > 0 && unmatched > 0 {
            tracing::warn!(removed = stats.removed, "Replicate had deleted the input of some predictions in the search window; they cannot be matched, and the steps that found none are created again.");
        }
        for search in &mut batch {
            if let Some(reply) = search.reply.take() {
                let _ = reply.send(outcome.clone().map(|()| None));
            }
        }
    }

    /// Walks the pages of `[from, until]`, answering each search as its prediction turns up.
    async fn walk(
        &self,
        batch: &mut [Search],
        from: Millis,
        until: Millis,
        stats: &mut PassStats,
    ) -> Result<(), ClientError> {
        let mut url = self.client.list_url(from, until)?;
        loop {
            let page = self.client.list_page(url).await?;
            stats.pages += 1;
            let past_start = page
                .results
                .iter()
                .any(|p| created_ms(p).is_some_and(|at| at < from));
            let mut candidates: Vec<(Prediction, usize)> = vec![];
            for prediction in page.results {
                let input = match &prediction.input {
                    Some(input) if !input.is_null() && !prediction.data_removed => input,
                    _ => {
                        stats.removed += 1;
                        continue;
                    }
                };
                let at = created_ms(&prediction);
                let wanted = batch.iter().position(|s| {
                    s.reply.is_some()
                        && at.is_none_or(|at| s.from <= at && at <= s.until)
                        && &s.input == input
                });
                if let Some(index) = wanted {
                    candidates.push((prediction, index));
                }
            }
            if !candidates.is_empty() {
                self.answer_unowned(batch, candidates, from).await?;
            }
            if batch.iter().all(|s| s.reply.is_none()) || past_start {
                return Ok(());
            }
            match page.next {
                Some(next) => url = next,
                None => return Ok(()),
            }
        }
    }

    /// Hands each prediction no task owns to a search that wants it (one each).
    async fn answer_unowned(
        &self,
        batch: &mut [Search],
        candidates: Vec<(Prediction, usize)>,
        from: Millis,
    ) -> Result<(), ClientError> {
        let ids: Vec<String> = candidates.iter().map(|(p, _)| p.id.clone()).collect();
        let store = self.store.clone();
        let now = crate::time::now_millis();
        // A bounded scan of the owner index, on a blocking thread: never on an async worker.
        let owned = tokio::task::spawn_blocking(move || {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            store.owned_predictions(&ids, from, now)
        })
        .await
        .map_err(|e| ClientError::retryable(format!("the owner lookup failed: {e}")))?
        .map_err(|e| ClientError::retryable(format!("the owner lookup failed: {e}")))?;
        for (prediction, first) in candidates {
            let mut state = self.state();
            if owned.contains(&prediction.id) || state.claimed.contains_key(&prediction.id) {
                continue;
            }
            // The search picked for it, or another one with the same input still unanswered.
            let input = batch[first].input.clone();
            let at = created_ms(&prediction);
            let Some(search) = batch.iter_mut().find(|s| {
                s.reply.is_some()
                    && s.input == input
                    && at.is_none_or(|at| s.from <= at && at <= s.until)
            }) else {
                continue;
            };
            state.claim(&prediction.id);
            drop(state);
            if let Some(reply) = search.reply.take() {
                let _ = reply.send(Ok(Some(prediction)));
            }
        }
        Ok(())
    }
}

fn created_ms(prediction: &Prediction) -> Option<Millis> {
    prediction
        .created_at
        .as_deref()
        .and_then(crate::time::parse_rfc3339)
}

/// A hash of the input's JSON text (serde_json writes object keys sorted, so equal values
/// hash equal).
fn input_key(input: &Value) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    input.to_string().hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
#[path = "finder_tests.rs"]
mod tests;
