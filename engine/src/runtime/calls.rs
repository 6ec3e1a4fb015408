//! The HTTP calls the runtime spawns. They run outside the runtime loop, touch no task state,
//! and report back as messages.

use super::CancelOutcome;
use crate::journal::Store;
use crate::replicate::{ClientError, Prediction, ReplicateClient};
use crate::workflow::Target;
use serde_json::Value;
use std::sync::Arc;

/// Slack on both ends of the search window, for clock skew between this machine and
/// Replicate.
const CLOCK_SKEW_MS: i64 = 5_000;

/// What `ensure_prediction` needs to know about the step.
pub struct EnsureJob {
    pub client: ReplicateClient,
    pub store: Arc<dyn Store>,
    pub target: Target,
    pub input: Value,
    /// When the intent was journaled: no create for it can be older.
    pub intent_at: i64,
    /// No create for this intent can be newer: the end of the last create call that failed
    /// ambiguously, or, for an intent journaled before a restart, when this process started.
    pub sent_by: i64,
    /// The intent was journaled by this process and no create for it may have gone through:
    /// create directly. Otherwise a create may already exist: look for it first.
    pub fresh: bool,
    /// Sent as `Cancel-After`, so Replicate stops the prediction even if we cannot.
    pub cancel_after: Option<std::time::Duration>,
    /// Where Replicate should post this attempt's `start` and `completed` webhooks.
    pub webhook: Option<String>,
}

/// Cancels the step's prediction at Replicate. Without an id (the create's answer never
/// reached the journal), first look for the prediction that create may have made.
pub async fn cancel_prediction(
    job: EnsureJob,
    prediction_id: Option<String>,
) -> Result<CancelOutcome, ClientError> {
    let Some(id) = prediction_id else {
        return Ok(match find_unowned(&job).await? {
            Some(prediction) => CancelOutcome::Found(prediction),
            None => CancelOutcome::Settled,
        });
    };
    match job.client.cancel(&id).await {
        Ok(prediction) => Ok(CancelOutcome::Answered(prediction)),
        Err(ClientError::Final { status: 404, .. }) => Ok(CancelOutcome::Settled),
        Err(error) => Err(error),
    }
}

/// A prediction made for this intent: created between the intent and the last moment a
/// create for it could have been sent, with exactly this input, and owned by no task yet.
async fn find_unowned(job: &EnsureJob) -> Result<Option<Prediction>, ClientError> {
    let store = job.store.clone();
    let input = &job.input;
    let (from, until) = (job.intent_at - CLOCK_SKEW_MS, job.sent_by + CLOCK_SKEW_MS);
    job.client
        .find_between(from, until, |p| {
            // An owner journaled this prediction after it existed, so after `from - skew`.
            p.input.as_ref() == Some(input) && matches!(store.prediction_owner(&p.id, from - CLOCK_SKEW_MS), Ok(None))
        })
        .await
}

/// Makes sure one prediction exists for the step: after a restart or an ambiguous failure,
/// first look among the predictions created since the intent for one with exactly this
/// input that no task owns yet; create only when there is none.
pub async fn ensure_prediction(job: EnsureJob) -> Result<(Prediction, bool), ClientError> {
    if !job.fresh {
        if let Some(prediction) = find_unowned(&job).await? {
            return Ok((prediction, true));
        }
    }
    let created = job.client.create(&job.target, &job.input, job.cancel_after, job.webhook.as_deref()).await?;
    crash_after_create_hook();
    Ok((created, false))
}

/// Fault injection for crash tests: with `STEPWISE_FAULT_CRASH_AFTER_CREATE=N` in the
/// environment, the process aborts right after its N-th successful create call, before the
/// prediction id reaches the journal (the worst moment for a crash). Unset in production.
fn crash_after_create_hook() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
    static CREATED: AtomicU64 = AtomicU64::new(0);
    let limit = LIMIT.get_or_init(|| {
        std::env::var("STEPWISE_FAULT_CRASH_AFTER_CREATE").ok().and_then(|v| v.parse().ok())
    });
    if let Some(limit) = limit {
        if CREATED.fetch_add(1, Ordering::SeqCst) + 1 >= *limit {
            eprintln!("fault injection: aborting after create call {limit}");
            std::process::abort();
        }
    }
}

#[cfg(test)]
#[path = "calls_tests.rs"]
mod tests;
