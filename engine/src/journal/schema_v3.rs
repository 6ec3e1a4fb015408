//! Frozen schema 3 of the task snapshot (steps with their create calls' send window, before
//! workflows had stages). Never edit these types: they decode data dirs written by that
//! version; `From` converts them to today's `Task` as one chained stage, one step per item.
//! Schemas 1 and 2 convert to these first.

use crate::model::{
    Json, Millis, SendWindow, StagePlan, Step, StepStatus, Task, TaskId, TaskStatus,
};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct StepV3 {
    pub index: u32,
    pub status: StepStatus,
    pub item: Json,
    pub input: Option<Json>,
    pub attempt: u32,
    pub prediction_id: Option<String>,
    pub output: Option<Json>,
    pub error: Option<String>,
    pub started_at: Option<Millis>,
    pub completed_at: Option<Millis>,
    pub cancel_pending: bool,
    pub kept_output: Option<Json>,
    pub sent: Option<SendWindow>,
}

#[derive(Deserialize)]
pub struct TaskV3 {
    pub id: TaskId,
    pub workflow: String,
    pub status: TaskStatus,
    pub params: Json,
    pub steps: Vec<StepV3>,
    pub output: Option<Json>,
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub completed_at: Option<Millis>,
    pub seq: u64,
}

impl From<StepV3> for Step {
    /// Step N of a task without stages ran item N-1 of its one stage. A retried step's
    /// retries are not renewed (`run_from` 1), as that version did.
    fn from(v3: StepV3) -> Step {
        Step {
            index: v3.index,
            status: v3.status,
            item: v3.item,
            input: v3.input,
            attempt: v3.attempt,
            prediction_id: v3.prediction_id,
            output: v3.output,
            error: v3.error,
            started_at: v3.started_at,
            completed_at: v3.completed_at,
            cancel_pending: v3.cancel_pending,
            kept_output: v3.kept_output,
            sent: v3.sent,
            stage: 0,
            item_index: Some(v3.index.saturating_sub(1)),
            model: None,
            run_from: 1,
        }
    }
}

impl From<TaskV3> for Task {
    fn from(v3: TaskV3) -> Task {
        Task {
            id: v3.id,
            workflow: v3.workflow,
            status: v3.status,
            params: v3.params,
            steps: v3.steps.into_iter().map(Step::from).collect(),
            output: v3.output,
            error: v3.error,
            idempotency_key: v3.idempotency_key,
            created_at: v3.created_at,
            updated_at: v3.updated_at,
            completed_at: v3.completed_at,
            seq: v3.seq,
            stages: vec![StagePlan::legacy(None)],
        }
    }
}
