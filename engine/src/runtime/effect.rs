//! What the runtime's decisions ask for, as data. The decision code (`handlers`, `control`,
//! `keep`, `group::after_commit`) never spawns a call or touches a client: it pushes an
//! `Effect`, and once the loop turn's decisions are made the runtime hands each one to its
//! `Executor`. The production executor (`Calls`) spawns the HTTP calls, whose results come
//! back as messages; tests hand in a fake that records the effects, so the runtime's choices
//! (what to call, when to check again, how long to back off) are asserted without HTTP.

use super::calls::{cancel_prediction, ensure_prediction, EnsureJob, SendMark};
use super::finder::Finder;
use super::Msg;
use crate::model::{Millis, TaskId};
use crate::outputs::Keeper;
use crate::replicate::{Prediction, ReplicateClient};
use crate::workflow::Target;
use serde_json::Value;
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

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
    /// Come back to the task (`on_due`) after `delay`: a status check, a retry after backoff.
    /// Applied by the runtime to its own timer wheel before the executor sees it.
    Schedule { id: TaskId, delay: Duration },
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
