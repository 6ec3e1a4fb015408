//! Frozen schema 2 of the task snapshot (steps with kept output files, before create calls
//! were journaled as sent). Never edit these types: they decode data dirs written by that
//! version, and `From` converts them to schema 3 (`schema_v3`), which converts to today's `Task`.

use super::schema_v3::{StepV3, TaskV3};
use crate::model::{Json, Millis, StepStatus, TaskId, TaskStatus};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct StepV2 {
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
}

#[derive(Deserialize)]
pub struct TaskV2 {
    pub id: TaskId,
    pub workflow: String,
    pub status: TaskStatus,
    pub params: Json,
    pub steps: Vec<StepV2>,
    pub output: Option<Json>,
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub completed_at: Option<Millis>,
    pub seq: u64,
}

impl From<StepV2> for StepV3 {
    /// `sent` stays `None`: whether that version sent a create is unknown, which recovery
    /// reads from the data dir's `create_marks_since` (see `Store::create_marks_since`).
    fn from(v2: StepV2) -> StepV3 {
        StepV3 {
            index: v2.index,
            status: v2.status,
            item: v2.item,
            input: v2.input,
            attempt: v2.attempt,
            prediction_id: v2.prediction_id,
            output: v2.output,
            error: v2.error,
            started_at: v2.started_at,
            completed_at: v2.completed_at,
            cancel_pending: v2.cancel_pending,
            kept_output: v2.kept_output,
            sent: None,
        }
    }
}

impl From<TaskV2> for TaskV3 {
    fn from(v2: TaskV2) -> TaskV3 {
        TaskV3 {
            id: v2.id,
            workflow: v2.workflow,
            status: v2.status,
            params: v2.params,
            steps: v2.steps.into_iter().map(StepV3::from).collect(),
            output: v2.output,
            error: v2.error,
            idempotency_key: v2.idempotency_key,
            created_at: v2.created_at,
            updated_at: v2.updated_at,
            completed_at: v2.completed_at,
            seq: v2.seq,
        }
    }
}
