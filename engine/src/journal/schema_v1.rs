//! Frozen schema 1 of the task snapshot, as written before steps could keep their output
//! files. Never edit these types: they decode data dirs written by that version, and
//! `From` converts them to schema 3 (`schema_v3`), which converts to today's `Task`.

use super::schema_v3::{StepV3, TaskV3};
use crate::model::{Json, Millis, StepStatus, TaskId, TaskStatus};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct StepV1 {
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
}

#[derive(Deserialize)]
pub struct TaskV1 {
    pub id: TaskId,
    pub workflow: String,
    pub status: TaskStatus,
    pub params: Json,
    pub steps: Vec<StepV1>,
    pub output: Option<Json>,
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub completed_at: Option<Millis>,
    pub seq: u64,
}

impl From<StepV1> for StepV3 {
    fn from(v1: StepV1) -> StepV3 {
        StepV3 {
            index: v1.index,
            status: v1.status,
            item: v1.item,
            input: v1.input,
            attempt: v1.attempt,
            prediction_id: v1.prediction_id,
            output: v1.output,
            error: v1.error,
            started_at: v1.started_at,
            completed_at: v1.completed_at,
            cancel_pending: v1.cancel_pending,
            kept_output: None,
            sent: None,
        }
    }
}

impl From<TaskV1> for TaskV3 {
    fn from(v1: TaskV1) -> TaskV3 {
        TaskV3 {
            id: v1.id,
            workflow: v1.workflow,
            status: v1.status,
            params: v1.params,
            steps: v1.steps.into_iter().map(StepV3::from).collect(),
            output: v1.output,
            error: v1.error,
            idempotency_key: v1.idempotency_key,
            created_at: v1.created_at,
            updated_at: v1.updated_at,
            completed_at: v1.completed_at,
            seq: v1.seq,
        }
    }
}
