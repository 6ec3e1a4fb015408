//! The task and step model: ids, statuses, and the stored shape of a task.
//! Pure data, no IO. Stored types go through bincode, so JSON values are kept as JSON text
//! (`Json`) and field order is part of the on-disk format (see `journal::codec`).

mod id;
mod stages;

pub use id::{IdHasher, TaskId, TaskIdMap, TaskIdSet};
pub use stages::{layout, StagePlan, LEGACY_STAGE};

use serde::{Deserialize, Serialize};
use std::fmt;

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// A JSON value kept as its text, because bincode cannot store `serde_json::Value`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Json(pub String);

impl Json {
    pub fn from_value(value: &serde_json::Value) -> Self {
        Json(value.to_string())
    }

    /// The value; text that is not JSON (never written by us) reads as `null`.
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(&self.0).unwrap_or(serde_json::Value::Null)
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The lifecycle of a whole task. Never reorder variants: their index is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Canceled,
}

impl TaskStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Canceled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Running,
            Self::Succeeded,
            Self::Failed,
            Self::Canceled,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

/// The lifecycle of one step. `Starting` covers both "about to create the prediction" (no
/// `prediction_id` yet: the intent is journaled) and Replicate's own `starting`.
/// Never reorder variants: their index is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepStatus {
    Pending,
    Starting,
    Processing,
    Succeeded,
    Failed,
    Canceled,
}

impl StepStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded | StepStatus::Failed | StepStatus::Canceled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Starting => "starting",
            StepStatus::Processing => "processing",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Canceled => "canceled",
        }
    }
}

/// One prediction of a task: one item of one stage (or a stage's only step). Steps are
/// ordered stage by stage, items in order within a stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// 1-based position in the task.
    pub index: u32,
    pub status: StepStatus,
    /// The item this step was started with, as given by the client; `null` for a step of a
    /// stage that runs once.
    pub item: Json,
    /// The prediction input, fixed when the intent to create is journaled.
    pub input: Option<Json>,
    /// Counts create intents for this step; the first is 1.
    pub attempt: u32,
    pub prediction_id: Option<String>,
    pub output: Option<Json>,
    pub error: Option<String>,
    /// When the create intent was journaled.
    pub started_at: Option<Millis>,
    pub completed_at: Option<Millis>,
    /// The task was canceled while this step's prediction may still run at Replicate: a
    /// cancel must reach Replicate before the task is settled.
    pub cancel_pending: bool,
    /// `output` with every file URL replaced by the URL of the copy kept in the data dir
    /// (`[outputs] keep`); `None` when nothing was kept.
    pub kept_output: Option<Json>,
    /// When create calls for the current attempt were let out (`Event::CreateSent`); `None`
    /// while none was: then no prediction can exist for it, and a restart creates directly.
    pub sent: Option<SendWindow>,
    /// 0-based index into `Task::stages` of the stage this step belongs to.
    pub stage: u32,
    /// 0-based index of the item in the start request's `items`; `None` for a stage that
    /// runs once.
    pub item_index: Option<u32>,
    /// The model or version of the current attempt when it is not the stage's own: the
    /// stage's fallback, once its retries were spent (`Event::FallbackRequested`).
    pub model: Option<String>,
    /// The attempt a run of the step began with: 1, or the first after the task was retried.
    /// Retries and the fallback count from it.
    pub run_from: u32,
}

/// The first and the last time a create call for one attempt was journaled as sent: any
/// prediction those calls made was created in between (give or take the call's duration
/// and clock skew), which bounds the search for it after a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendWindow {
    pub first: Millis,
    pub last: Millis,
}

impl Step {
    pub fn new(index: u32, item: Json, stage: u32, item_index: Option<u32>) -> Self {
        Step {
            index,
            status: StepStatus::Pending,
            item,
            input: None,
            attempt: 0,
            prediction_id: None,
            output: None,
            error: None,
            started_at: None,
            completed_at: None,
            cancel_pending: false,
            kept_output: None,
            sent: None,
            stage,
            item_index,
            model: None,
            run_from: 1,
        }
    }
}

/// A task: a named workflow's stages run over a list of items (`stages::StagePlan`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: TaskId,
    pub workflow: String,
    pub status: TaskStatus,
    pub params: Json,
    pub steps: Vec<Step>,
    pub output: Option<Json>,
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub completed_at: Option<Millis>,
    /// Sequence number of the last journal event folded into this snapshot (0: none).
    pub seq: u64,
    /// The workflow's stages as they were when the task started, in order; every step
    /// points into it. A task journaled before stages existed has one (`LEGACY_STAGE`).
    pub stages: Vec<StagePlan>,
}

/// How far a task got, as the API counts it (docs/API.md, "Progress").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Steps that succeeded.
    pub completed: u32,
    /// The 1-based index of the first step that has not succeeded (the one running, waiting,
    /// or where the task stopped); `total` once every step succeeded.
    pub current: u32,
    pub total: u32,
}

impl Task {
    /// The 1-based step in progress, as the runtime reads it: 0 before step 1 starts, the
    /// step count once succeeded, the step that ended the task when it failed or was canceled.
    /// What the API, the CLI and the dashboard show is [`Task::progress`].
    pub fn current_step(&self) -> u32 {
        if self.status == TaskStatus::Succeeded {
            return self.steps.len() as u32;
        }
        match self
            .steps
            .iter()
            .find(|step| step.status != StepStatus::Succeeded)
        {
            Some(step) if step.status == StepStatus::Pending && !self.status.is_terminal() => {
                step.index - 1
            }
            Some(step) => step.index,
            None => self.steps.len() as u32,
        }
    }

    /// Finished, and nothing left to tell Replicate: the task can leave memory and the
    /// recovery index.
    pub fn is_settled(&self) -> bool {
        self.status.is_terminal() && !self.steps.iter().any(|step| step.cancel_pending)
    }

    /// How far the task got, as the API counts it (docs/API.md, "Progress").
    pub fn progress(&self) -> Progress {
        let total = self.steps.len() as u32;
        let current = self
            .steps
            .iter()
            .find(|step| step.status != StepStatus::Succeeded)
            .map_or(total, |step| step.index);
        Progress {
            completed: self.completed_steps(),
            current,
            total,
        }
    }

    /// Number of steps that succeeded.
    pub fn completed_steps(&self) -> u32 {
        self.steps
            .iter()
            .filter(|step| step.status == StepStatus::Succeeded)
            .count() as u32
    }

    pub fn step(&self, index: u32) -> Option<&Step> {
        self.steps.get(index.checked_sub(1)? as usize)
    }

    pub fn step_mut(&mut self, index: u32) -> Option<&mut Step> {
        self.steps.get_mut(index.checked_sub(1)? as usize)
    }
}
