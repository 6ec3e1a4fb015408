//! Journal events: every state change of a task, in the order it happened.
//! Stored through bincode inside the versioned envelope of `journal::codec`:
//! never reorder variants or fields, add new variants at the end.

use crate::model::{Json, Millis, StagePlan};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// The client's start request, accepted and validated.
    TaskCreated {
        workflow: String,
        params: Json,
        items: Vec<Json>,
        idempotency_key: Option<String>,
        at: Millis,
    },
    /// The intent to create a prediction for `step`, journaled before the create call, so a
    /// restart knows a prediction may exist and looks for it before creating another.
    StepRequested {
        step: u32,
        attempt: u32,
        input: Json,
        at: Millis,
    },
    /// Replicate accepted the create call (or recovery found the prediction it made).
    PredictionCreated {
        step: u32,
        attempt: u32,
        prediction_id: String,
        at: Millis,
    },
    /// The prediction moved to `processing`.
    PredictionStarted {
        step: u32,
        prediction_id: String,
        at: Millis,
    },
    StepSucceeded {
        step: u32,
        prediction_id: String,
        output: Json,
        at: Millis,
    },
    /// The step ended without output. `prediction_id` is `None` when no prediction could be
    /// made (a final create error, an input that cannot be built). `canceled` marks a
    /// prediction that Replicate reports as canceled or aborted.
    StepFailed {
        step: u32,
        prediction_id: Option<String>,
        error: String,
        canceled: bool,
        at: Millis,
    },
    /// A prediction attempt failed and the workflow allows another: the step goes back to
    /// pending, keeping its attempt count and the error.
    AttemptFailed {
        step: u32,
        prediction_id: Option<String>,
        error: String,
        at: Millis,
    },
    /// The task was canceled (through the API or by its task timeout). Pending steps become
    /// canceled; a step whose prediction may still run is marked `cancel_pending`.
    TaskCanceled { reason: String, at: Millis },
    /// Replicate confirmed the cancel of the step's prediction, or there was none to cancel.
    CancelSettled { step: u32, at: Millis },
    /// A failed task runs again from its failed step; finished steps keep their outputs.
    TaskRetried { at: Millis },
    /// The step's output files were copied into the data dir; `kept_output` is the output
    /// with their URLs replaced. Journaled just before the step's success.
    OutputsKept {
        step: u32,
        prediction_id: String,
        kept_output: Json,
        at: Millis,
    },
    /// A create call for this attempt is about to be sent, journaled before it leaves: an
    /// attempt without one never reached Replicate, so a restart creates it directly instead
    /// of searching for a prediction that cannot exist.
    CreateSent { step: u32, attempt: u32, at: Millis },
    /// The client's start request with the stages the task runs, fixed at its start (every
    /// task since workflows have stages; `TaskCreated` reads as one chained stage).
    TaskPlanned {
        workflow: String,
        params: Json,
        items: Vec<Json>,
        stages: Vec<StagePlan>,
        idempotency_key: Option<String>,
        at: Millis,
    },
    /// As `StepRequested`, on the stage's fallback `model` (or version): the step's retries
    /// on its own model are spent.
    FallbackRequested {
        step: u32,
        attempt: u32,
        input: Json,
        model: String,
        at: Millis,
    },
}

impl Event {
    pub fn at(&self) -> Millis {
        match self {
            Event::TaskCreated { at, .. }
            | Event::StepRequested { at, .. }
            | Event::PredictionCreated { at, .. }
            | Event::PredictionStarted { at, .. }
            | Event::StepSucceeded { at, .. }
            | Event::StepFailed { at, .. }
            | Event::AttemptFailed { at, .. }
            | Event::TaskCanceled { at, .. }
            | Event::CancelSettled { at, .. }
            | Event::TaskRetried { at, .. }
            | Event::OutputsKept { at, .. }
            | Event::CreateSent { at, .. }
            | Event::TaskPlanned { at, .. }
            | Event::FallbackRequested { at, .. } => *at,
        }
    }

    /// For a task's first event (`TaskCreated`, `TaskPlanned`): when, and its idempotency key.
    pub fn as_created(&self) -> Option<(Millis, Option<&str>)> {
        match self {
            Event::TaskCreated {
                at,
                idempotency_key,
                ..
            }
            | Event::TaskPlanned {
                at,
                idempotency_key,
                ..
            } => Some((*at, idempotency_key.as_deref())),
            _ => None,
        }
    }

    /// A short name for logs and event histories.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::TaskCreated { .. } => "task_created",
            Event::StepRequested { .. } => "step_requested",
            Event::PredictionCreated { .. } => "prediction_created",
            Event::PredictionStarted { .. } => "prediction_started",
            Event::StepSucceeded { .. } => "step_succeeded",
            Event::StepFailed { .. } => "step_failed",
            Event::AttemptFailed { .. } => "attempt_failed",
            Event::TaskCanceled { .. } => "task_canceled",
            Event::CancelSettled { .. } => "cancel_settled",
            Event::TaskRetried { .. } => "task_retried",
            Event::OutputsKept { .. } => "outputs_kept",
            Event::CreateSent { .. } => "create_sent",
            Event::TaskPlanned { .. } => "task_created",
            Event::FallbackRequested { .. } => "fallback_requested",
        }
    }
}
