//! What a prediction's state means for its step: `observe` turns a status (from a check or a
//! webhook) into events; a success keeps the output files first when `[outputs] keep` is on
//! (the download runs as `Effect::Keep`; its result journals the kept output together with
//! the step's success); a failure runs the step again while the workflow's retries last.

use super::effect::Effect;
use super::group::Waiter;
use super::policy::MAX_KEEP_FAILURES;
use super::Runtime;
use crate::event::Event;
use crate::metrics::Call;
use crate::model::{Json, TaskId};
use crate::outputs::Transient;
use crate::replicate::{Phase, Prediction};

impl Runtime {
    /// A verified webhook: the same news as a status check, pushed. Deliveries for another
    /// attempt, a finished task or a step already past that state change nothing.
    pub(super) fn on_webhook(
        &mut self,
        id: TaskId,
        step: u32,
        attempt: u32,
        prediction: Prediction,
        reply: super::AckReply,
    ) {
        let current = self
            .active
            .get(&id)
            .and_then(|a| a.task.step(step))
            .filter(|s| s.attempt == attempt);
        let Some(current) = current else {
            let _ = reply.send(Ok(()));
            return;
        };
        if current.prediction_id.is_none() && current.status == crate::model::StepStatus::Starting {
            // The delivery beat the create's answer: it names this attempt's prediction.
            self.record_created(id, step, attempt, prediction.id.clone());
        }
        let owns = self
            .active
            .get(&id)
            .and_then(|a| a.task.step(step))
            .and_then(|s| s.prediction_id.as_deref())
            == Some(prediction.id.as_str());
        if owns {
            self.observe(id, step, &prediction);
        }
        self.group.touch(id);
        self.group.waiters.push(Waiter::Ack { reply });
    }

    /// Records what a prediction's state says about the step; true once the step ended.
    pub(super) fn observe(&mut self, id: TaskId, step: u32, prediction: &Prediction) -> bool {
        let at = crate::time::now_millis();
        let prediction_id = prediction.id.clone();
        match prediction.phase() {
            Phase::Starting => return false,
            Phase::Processing => {
                self.record(
                    id,
                    Event::PredictionStarted {
                        step,
                        prediction_id,
                        at,
                    },
                );
                return false;
            }
            Phase::Succeeded => {
                self.succeed(id, step, prediction);
                // Keeping files first leaves the step running until they are on disk.
                return self
                    .active
                    .get(&id)
                    .and_then(|a| a.task.step(step))
                    .is_some_and(|s| s.status.is_terminal());
            }
            Phase::Failed => {
                self.fail_attempt(id, step, Some(prediction_id), prediction.error_text())
            }
            Phase::Canceled if self.step_timed_out(id, step) => {
                let error = self.timeout_error(id, step);
                self.fail_attempt(id, step, Some(prediction_id), error);
            }
            Phase::Canceled => {
                let error = format!("prediction {} at Replicate", prediction.status);
                let prediction_id = Some(prediction_id);
                self.record(
                    id,
                    Event::StepFailed {
                        step,
                        prediction_id,
                        error,
                        canceled: true,
                        at,
                    },
                );
            }
        }
        self.advance(id);
        true
    }

    /// The attempt failed: run the step again while the workflow's retries last, otherwise
    /// fail the task.
    pub(super) fn fail_attempt(
        &mut self,
        id: TaskId,
        step: u32,
        prediction_id: Option<String>,
        error: String,
    ) {
        let at = crate::time::now_millis();
        let attempt = self
            .active
            .get(&id)
            .and_then(|a| a.task.step(step))
            .map_or(0, |s| s.attempt);
        let event = if self.allows_another(id, step) {
            tracing::info!(task_id = %id, step, attempt, %error, "Attempt failed; retrying the step.");
            Event::AttemptFailed {
                step,
                prediction_id,
                error,
                at,
            }
        } else {
            Event::StepFailed {
                step,
                prediction_id,
                error,
                canceled: false,
                at,
            }
        };
        self.record(id, event);
        self.advance(id);
    }

    /// The prediction succeeded. Without file keeping the step succeeds now; with it, the
    /// files are downloaded first (or, while another call runs, at the next observation).
    pub(super) fn succeed(&mut self, id: TaskId, step: u32, prediction: &Prediction) {
        let output = prediction.output.clone().unwrap_or_default();
        let (true, Some(active)) = (self.keeper.is_some(), self.active.get_mut(&id)) else {
            return self.record_success(id, step, prediction.id.clone(), &output, None);
        };
        let lane = active.lane(step);
        if lane.keep_failures >= MAX_KEEP_FAILURES {
            tracing::warn!(task_id = %id, step, "Output files could not be kept; the step succeeds with the original URLs.");
            return self.record_success(id, step, prediction.id.clone(), &output, None);
        }
        if lane.calling {
            return;
        }
        lane.calling = true;
        self.effects.push(Effect::Keep {
            id,
            step,
            prediction: prediction.clone(),
        });
    }

    pub(super) fn on_kept(
        &mut self,
        id: TaskId,
        step: u32,
        prediction: Prediction,
        result: Result<serde_json::Value, Transient>,
    ) {
        let policy = self.policy;
        let Some(active) = self.active.get_mut(&id) else {
            return;
        };
        let lane = active.lane(step);
        lane.calling = false;
        self.group.touch(id);
        match result {
            Ok(kept) => {
                lane.keep_failures = 0;
                let output = prediction.output.clone().unwrap_or_default();
                self.record_success(id, step, prediction.id, &output, Some(kept));
            }
            Err(error) => {
                lane.keep_failures += 1;
                let delay = policy.backoff(lane.keep_failures, None);
                tracing::warn!(task_id = %id, step, %error, "Keeping output files failed; will retry.");
                super::count_retry(Call::KeepOutputs);
                self.schedule(id, step, delay);
            }
        }
    }

    fn record_success(
        &mut self,
        id: TaskId,
        step: u32,
        prediction_id: String,
        output: &serde_json::Value,
        kept: Option<serde_json::Value>,
    ) {
        let at = crate::time::now_millis();
        if let Some(kept) = kept {
            let kept_output = Json::from_value(&kept);
            self.record(
                id,
                Event::OutputsKept {
                    step,
                    prediction_id: prediction_id.clone(),
                    kept_output,
                    at,
                },
            );
        }
        let output = Json::from_value(output);
        self.record(
            id,
            Event::StepSucceeded {
                step,
                prediction_id,
                output,
                at,
            },
        );
        self.advance(id);
    }
}
