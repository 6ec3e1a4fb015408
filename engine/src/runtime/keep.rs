//! Keeping output files before a step counts as succeeded: the download runs as a spawned
//! call; its result journals the kept output together with the step's success.

use super::effect::Effect;
use super::policy::MAX_KEEP_FAILURES;
use super::Runtime;
use crate::event::Event;
use crate::metrics::Call;
use crate::model::{Json, TaskId};
use crate::outputs::Transient;
use crate::replicate::Prediction;

impl Runtime {
    /// The prediction succeeded. Without file keeping the step succeeds now; with it, the
    /// files are downloaded first (or, while another call runs, at the next observation).
    pub(super) fn succeed(&mut self, id: TaskId, step: u32, prediction: &Prediction) {
        let output = prediction.output.clone().unwrap_or_default();
        let (true, Some(active)) = (self.keeper.is_some(), self.active.get_mut(&id)) else {
            return self.record_success(id, step, prediction.id.clone(), &output, None);
        };
        if active.keep_failures >= MAX_KEEP_FAILURES {
            tracing::warn!(task_id = %id, step, "Output files could not be kept; the step succeeds with the original URLs.");
            return self.record_success(id, step, prediction.id.clone(), &output, None);
        }
        if active.calling {
            return;
        }
        active.calling = true;
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
        active.calling = false;
        self.group.touch(id);
        match result {
            Ok(kept) => {
                active.keep_failures = 0;
                let output = prediction.output.clone().unwrap_or_default();
                self.record_success(id, step, prediction.id, &output, Some(kept));
            }
            Err(error) => {
                active.keep_failures += 1;
                let delay = policy.backoff(active.keep_failures, None);
                tracing::warn!(task_id = %id, step, %error, "Keeping output files failed; will retry.");
                super::count_retry(Call::KeepOutputs);
                self.schedule(id, delay);
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
