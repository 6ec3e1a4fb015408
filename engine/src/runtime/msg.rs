//! The messages the runtime loop receives: requests from the API (start, cancel, retry) and
//! the answers of the calls it spawned (creates, checks, cancels, downloads, webhooks), each
//! naming the task and the step it is for.

use super::{effect, AckReply, ControlReply, PreparedStart, StartReply};
use crate::model::TaskId;
use crate::replicate::{ClientError, Prediction};

pub(crate) enum Msg {
    Start {
        start: PreparedStart,
        reply: StartReply,
    },
    Cancel {
        id: TaskId,
        reply: ControlReply,
    },
    Retry {
        id: TaskId,
        reply: ControlReply,
    },
    /// An `ensure_prediction` call ended; `searched`: its search for an earlier create's
    /// prediction ran to the end (found nothing), so no earlier create is left unresolved.
    Created {
        id: TaskId,
        step: u32,
        attempt: u32,
        result: Result<effect::Ensured, ClientError>,
        searched: bool,
    },
    /// A create call is about to be sent: journal `CreateSent`, then answer.
    Sending {
        id: TaskId,
        step: u32,
        attempt: u32,
        reply: AckReply,
    },
    Checked {
        id: TaskId,
        step: u32,
        prediction_id: String,
        result: Result<Prediction, ClientError>,
    },
    /// A download of a succeeded step's output files ended.
    Kept {
        id: TaskId,
        step: u32,
        prediction: Prediction,
        result: Result<serde_json::Value, crate::outputs::Transient>,
    },
    /// A verified webhook delivery for `attempt` of `step`; answered once its effect is durable.
    Webhook {
        id: TaskId,
        step: u32,
        attempt: u32,
        prediction: Prediction,
        reply: AckReply,
    },
    /// A cancel call (or, without an id, the search for the prediction to cancel) ended.
    CancelDone {
        id: TaskId,
        step: u32,
        attempt: u32,
        result: Result<CancelOutcome, ClientError>,
    },
}

/// What a cancel call found.
#[derive(Debug)]
pub(crate) enum CancelOutcome {
    /// Replicate has no running prediction for the step (canceled, ended, or never made).
    Settled,
    /// The prediction a lost create made was found; it still has to be canceled.
    Found(Prediction),
    /// Replicate's answer to the cancel: the prediction as it is now (it may have ended
    /// just before, e.g. succeeded).
    Answered(Prediction),
}
