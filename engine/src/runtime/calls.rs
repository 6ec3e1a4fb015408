//! The HTTP calls the runtime spawns. They run outside the runtime loop, touch no task state,
//! and report back as messages.

use super::finder::Finder;
use super::{AckReply, CancelOutcome, ControlError, Msg};
use crate::model::{Millis, TaskId};
use crate::replicate::{ClientError, Prediction, ReplicateClient};
use crate::workflow::Target;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Slack on both ends of a search window, for clock skew between this machine and Replicate.
pub const CLOCK_SKEW_MS: i64 = 5_000;

/// The longest a create may wait between its `CreateSent` being journaled and being sent:
/// a call whose mark took longer to become durable is withdrawn and asks again, so a
/// journaled mark always bounds when its create could reach Replicate (`Policy::create_reach`).
pub const SEND_GRACE: Duration = Duration::from_secs(5);

/// How an `ensure_prediction` call ended.
#[derive(Debug)]
pub(crate) enum Ensured {
    /// Created now.
    Created(Prediction),
    /// Made by an earlier create whose answer was lost; found in the list.
    Found(Prediction),
    /// Not sent: the runtime no longer wanted it (the task was canceled meanwhile), or its
    /// mark took too long to become durable.
    Withdrawn,
}

/// Asks the runtime to journal that the step's create is about to be sent.
pub(crate) struct SendMark {
    pub outbox: mpsc::Sender<Msg>,
    pub id: TaskId,
    pub step: u32,
    pub attempt: u32,
}

impl SendMark {
    /// True once the mark is durable, soon enough that the create may still go.
    async fn journal(&self) -> bool {
        let asked = Instant::now();
        let (reply, answer): (AckReply, oneshot::Receiver<Result<(), ControlError>>) =
            oneshot::channel();
        let message = Msg::Sending {
            id: self.id,
            step: self.step,
            attempt: self.attempt,
            reply,
        };
        if self.outbox.send(message).await.is_err() {
            return false;
        }
        matches!(answer.await, Ok(Ok(()))) && asked.elapsed() <= SEND_GRACE
    }
}

/// What `ensure_prediction` needs to know about the step.
pub(crate) struct EnsureJob {
    pub client: ReplicateClient,
    pub finder: Finder,
    pub target: Target,
    pub input: Value,
    /// A create for this attempt may have reached Replicate unanswered: look for its
    /// prediction among those created in this window (ms) before creating.
    pub search: Option<(Millis, Millis)>,
    /// Sent as `Cancel-After`, so Replicate stops the prediction even if we cannot.
    pub cancel_after: Option<Duration>,
    /// Where Replicate should post this attempt's `start` and `completed` webhooks.
    pub webhook: Option<String>,
    pub mark: SendMark,
}

/// Cancels the step's prediction at Replicate. Without an id (no create answer reached the
/// journal), only a create that may have reached Replicate can have made one: look for it.
pub(crate) async fn cancel_prediction(
    job: EnsureJob,
    prediction_id: Option<String>,
) -> Result<CancelOutcome, ClientError> {
    let Some(id) = prediction_id else {
        let Some((from, until)) = job.search else {
            return Ok(CancelOutcome::Settled);
        };
        return Ok(match job.finder.find(job.input, from, until).await? {
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

/// Makes sure one prediction exists for the step: when an earlier create may have made one,
/// look for it first; create only when there is none, and only once the create is journaled
/// as sent. The bool says whether a search ran to its end without finding one.
pub(crate) async fn ensure_prediction(job: EnsureJob) -> (Result<Ensured, ClientError>, bool) {
    let mut searched = false;
    if let Some((from, until)) = job.search {
        match job.finder.find(job.input.clone(), from, until).await {
            Ok(Some(prediction)) => return (Ok(Ensured::Found(prediction)), false),
            Ok(None) => searched = true,
            Err(error) => return (Err(error), false),
        }
    }
    job.client.create_slot().await;
    // No search over this input runs until the answer is claimed.
    let guard = job.finder.create_guard(&job.input).await;
    if !job.mark.journal().await {
        return (Ok(Ensured::Withdrawn), searched);
    }
    let created = job
        .client
        .create(
            &job.target,
            &job.input,
            job.cancel_after,
            job.webhook.as_deref(),
        )
        .await;
    if let Ok(prediction) = &created {
        job.finder.claim(&prediction.id);
    }
    drop(guard);
    if created.is_ok() {
        crash_after_create_hook();
    }
    (created.map(Ensured::Created), searched)
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
        std::env::var("STEPWISE_FAULT_CRASH_AFTER_CREATE")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if let Some(limit) = limit {
        if CREATED.fetch_add(1, Ordering::SeqCst) + 1 >= *limit {
            eprintln!("fault injection: aborting after create call {limit}");
            std::process::abort();
        }
    }
}
