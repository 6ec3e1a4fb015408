//! What the runtime's decisions ask for, as data, and the calls that carry it out. The
//! decision code (`handlers`, `outcome`, `control`, `group::after_commit`) never spawns a call or
//! touches a client: it pushes an `Effect`, and once the loop turn's decisions are made the
//! runtime hands each one to its `Executor`. The production executor (`Calls`) spawns the HTTP
//! calls below, which touch no task state and report back as messages; tests hand in a fake
//! that records the effects, so the runtime's choices (what to call, when to check again, how
//! long to back off) are asserted without HTTP.

use super::finder::Finder;
use super::{AckReply, CancelOutcome, ControlError, Msg};
use crate::model::{Millis, TaskId};
use crate::outputs::Keeper;
use crate::replicate::{ClientError, Prediction, ReplicateClient};
use crate::workflow::Target;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

/// One thing the runtime decided to do.
#[derive(Debug)]
pub(crate) enum Effect {
    /// Make sure the step's attempt has its prediction: search for the one an earlier create
    /// may have made (when `call.search` is set), else journal `CreateSent` and create it.
    /// Answered by `Msg::Created`.
    Create {
        id: TaskId,
        step: u32,
        attempt: u32,
        call: PredictionCall,
        /// Where Replicate should post this attempt's webhooks (None: webhooks are off).
        webhook: Option<String>,
        /// One of the create calls allowed out at once, held until the answer is back.
        permit: OwnedSemaphorePermit,
    },
    /// Read the prediction's state. Answered by `Msg::Checked`.
    Check {
        id: TaskId,
        step: u32,
        prediction_id: String,
    },
    /// Stop the step's prediction at Replicate; without an id, find it first (`call.search`).
    /// Answered by `Msg::CancelDone`.
    Cancel {
        id: TaskId,
        step: u32,
        attempt: u32,
        prediction_id: Option<String>,
        call: PredictionCall,
    },
    /// Download the succeeded prediction's output files. Answered by `Msg::Kept`.
    Keep {
        id: TaskId,
        step: u32,
        prediction: Prediction,
    },
    /// Come back to the step (`on_due`) after `delay`: a status check, a retry after backoff.
    /// Applied by the runtime to its own timer wheel before the executor sees it.
    Schedule {
        id: TaskId,
        step: u32,
        delay: Duration,
    },
}

/// What a create or a search needs to know about the step.
#[derive(Debug)]
pub(crate) struct PredictionCall {
    pub target: Target,
    pub input: Value,
    /// A create for this attempt may have reached Replicate unanswered: look for its
    /// prediction among those created in this window (ms) first.
    pub search: Option<(Millis, Millis)>,
    /// Sent as `Cancel-After`, so Replicate stops the prediction even if we cannot.
    pub cancel_after: Option<Duration>,
}

/// Runs the effects the runtime decided on.
pub(crate) trait Executor: Send {
    fn execute(&mut self, effect: Effect);
}

/// The production executor: each call runs as a spawned task and reports back through the
/// runtime's inbox.
pub(crate) struct Calls {
    pub client: ReplicateClient,
    pub finder: Finder,
    pub keeper: Option<Keeper>,
    pub outbox: mpsc::Sender<Msg>,
}

impl Calls {
    fn job(&self, id: TaskId, step: u32, attempt: u32, call: PredictionCall) -> EnsureJob {
        EnsureJob {
            client: self.client.clone(),
            finder: self.finder.clone(),
            target: call.target,
            input: call.input,
            search: call.search,
            cancel_after: call.cancel_after,
            webhook: None,
            mark: SendMark {
                outbox: self.outbox.clone(),
                id,
                step,
                attempt,
            },
        }
    }
}

impl Executor for Calls {
    fn execute(&mut self, effect: Effect) {
        let outbox = self.outbox.clone();
        match effect {
            Effect::Create {
                id,
                step,
                attempt,
                call,
                webhook,
                permit,
            } => {
                let mut job = self.job(id, step, attempt, call);
                job.webhook = webhook;
                tokio::spawn(async move {
                    let (result, searched) = ensure_prediction(job).await;
                    // Free before the answer lands, so its turn can hand the permit on.
                    drop(permit);
                    let answer = Msg::Created {
                        id,
                        step,
                        attempt,
                        result,
                        searched,
                    };
                    let _ = outbox.send(answer).await;
                });
            }
            Effect::Check {
                id,
                step,
                prediction_id,
            } => {
                let client = self.client.clone();
                tokio::spawn(async move {
                    let result = client.get(&prediction_id).await;
                    let answer = Msg::Checked {
                        id,
                        step,
                        prediction_id,
                        result,
                    };
                    let _ = outbox.send(answer).await;
                });
            }
            Effect::Cancel {
                id,
                step,
                attempt,
                prediction_id,
                call,
            } => {
                let job = self.job(id, step, attempt, call);
                tokio::spawn(async move {
                    let result = cancel_prediction(job, prediction_id).await;
                    let answer = Msg::CancelDone {
                        id,
                        step,
                        attempt,
                        result,
                    };
                    let _ = outbox.send(answer).await;
                });
            }
            Effect::Keep {
                id,
                step,
                prediction,
            } => {
                // The runtime asks only when keeping is on, i.e. when there is a keeper.
                let Some(keeper) = self.keeper.clone() else {
                    return;
                };
                tokio::spawn(async move {
                    let output = prediction.output.clone().unwrap_or_default();
                    let result = keeper.keep(&id, step, &output).await;
                    let answer = Msg::Kept {
                        id,
                        step,
                        prediction,
                        result,
                    };
                    let _ = outbox.send(answer).await;
                });
            }
            // The runtime set the timer already.
            Effect::Schedule { .. } => {}
        }
    }
}

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
