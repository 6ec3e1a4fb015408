//! The runtime: the one loop that owns the state of every unfinished task.
//! It receives messages (start, cancel, retry, call results, timers), folds events into tasks
//! through the state machine, commits them as durable journal groups (one written while the
//! loop records the next, `group`), and only once a group is on disk answers its callers and
//! acts on what `machine::decide` asks for. Its decisions are data (`effect::Effect`: create,
//! check, cancel, keep, schedule) that one executor runs; the production one spawns the HTTP
//! calls, whose results come back as messages, so no lock guards a task and a late answer can
//! never race a fresh one. Timing and retry rules live in `policy`.
//!
//! A task's path: `Engine::start` → `Msg::Start` → `handlers::on_start` (journal the task and
//! step 1's intent) → `group` (commit, answer) → `after_commit` → `handlers::on_due` →
//! `Effect::Create` → `effect::ensure_prediction` (`CreateSent`, then the create) →
//! `Msg::Created` → `handlers::on_created` → `Effect::Schedule`/`Check` or a webhook →
//! `outcome::observe` → the next step, until `machine::decide` has nothing left.

mod active;
mod admission;
mod committer;
mod control;
mod create_gate;
#[cfg(test)]
mod decisions_tests;
mod effect;
mod finder;
mod group;
mod handlers;
mod inputs;
mod lifecycle;
mod mover;
mod msg;
mod outcome;
mod policy;

pub use admission::QueueView;
pub use effect::SEND_GRACE;
pub use policy::Policy;

/// Live counters the runtime publishes once per loop turn, for health checks and metrics.
#[derive(Default)]
pub struct Gauges {
    /// Recovery finished: every unfinished task from the journal is loaded and scheduled.
    pub resumed: std::sync::atomic::AtomicBool,
    /// Unfinished tasks in memory.
    pub unfinished: std::sync::atomic::AtomicUsize,
    /// Journal groups committed, and the tasks written by them.
    pub groups: std::sync::atomic::AtomicU64,
    pub group_tasks: std::sync::atomic::AtomicU64,
    /// Tasks waiting for one of the create calls allowed out at once.
    pub creates_waiting: std::sync::atomic::AtomicUsize,
}

use crate::event::Event;
use crate::journal::Store;
use crate::machine::{self, Command};
use crate::model::{Json, Task, TaskId, TaskIdMap};
use crate::scheduler::Scheduler;
use crate::workflow::Workflow;
pub(crate) use active::StepKey;
use active::{new_active, Active};
use admission::Admission;
pub(crate) use committer::Committer;
use group::Group;
pub(crate) use lifecycle::Parts;
pub(crate) use msg::{CancelOutcome, Msg};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most messages and due timers folded into one journal group.
const MAX_GROUP: usize = 2048;

/// A start request, as the API received it.
#[derive(Clone, Debug)]
pub struct StartRequest {
    pub workflow: String,
    pub params: serde_json::Value,
    pub items: Vec<serde_json::Value>,
    pub idempotency_key: Option<String>,
}

/// A durable task, and whether this request created it (false: idempotent repeat).
#[derive(Clone, Debug)]
pub struct Started {
    pub task: Arc<Task>,
    pub created: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StartError {
    #[error("unknown workflow '{0}'")]
    UnknownWorkflow(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the engine cannot accept tasks right now: {0}")]
    Unavailable(String),
    /// The journal failed while this start was being written: whether the task exists is
    /// unknown until the engine restarts from what is on disk. Not an answer to give a
    /// client (it would read as "not done"); the server lets the connection drop instead.
    #[error("the journal failed while the task was written; the engine stops")]
    Interrupted,
}

/// Why a cancel or retry was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ControlError {
    #[error("no such task")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("the engine cannot take writes right now: {0}")]
    Unavailable(String),
    /// As `StartError::Interrupted`: the outcome is unknown until the engine restarts.
    #[error("the journal failed while the change was written; the engine stops")]
    Interrupted,
}

pub(crate) type StartReply = oneshot::Sender<Result<Started, StartError>>;
pub(crate) type ControlReply = oneshot::Sender<Result<Task, ControlError>>;
pub(crate) type AckReply = oneshot::Sender<Result<(), ControlError>>;

/// A checked start, its JSON already written out by the caller's task, so the loop (one
/// thread for every task) neither writes it nor parses it back.
pub(crate) struct PreparedStart {
    pub workflow: String,
    pub params: Json,
    pub items: Vec<Json>,
    pub idempotency_key: Option<String>,
    /// Step 1's prediction input, when the check could build it.
    pub first_input: Option<Json>,
}

impl PreparedStart {
    pub fn new(request: StartRequest, first_input: Option<serde_json::Value>) -> Self {
        PreparedStart {
            params: Json::from_value(&request.params),
            items: request.items.iter().map(Json::from_value).collect(),
            first_input: first_input.as_ref().map(Json::from_value),
            workflow: request.workflow,
            idempotency_key: request.idempotency_key,
        }
    }
}

pub(crate) struct Runtime {
    store: Arc<dyn Store>,
    workflows: Arc<HashMap<String, Workflow>>,
    policy: Policy,
    /// `{webhook_base_url}/v1/webhooks/replicate` when webhooks are on.
    webhook_url: Option<String>,
    /// Finished tasks older than this are deleted by the periodic sweep.
    retention: Duration,
    /// Copies output files into the data dir when `[outputs] keep` is on (the executor has
    /// its own handle; the sweep deletes a swept task's files through this one).
    keeper: Option<crate::outputs::Keeper>,
    /// Boxed: the map moves every entry when it grows, and a resize of hundreds of
    /// thousands of tasks stalls the loop for tens of ms when each entry is a whole `Active`.
    active: TaskIdMap<Box<Active>>,
    /// The next status check, create retry or cancel retry of each running step.
    timers: Scheduler<StepKey>,
    /// When each task with a `task_timeout` must be canceled.
    deadlines: Scheduler<TaskId>,
    admission: Admission,
    creates: create_gate::CreateGate,
    inbox: mpsc::Receiver<Msg>,
    /// When this runtime started: no create sent by an earlier run can be newer.
    started_at: i64,
    /// Since when the data dir journals every create as sent (`Store::create_marks_since`);
    /// read at recovery.
    marks_since: i64,
    /// What this turn's decisions asked for, run by `executor` once they are made.
    effects: Vec<effect::Effect>,
    executor: Box<dyn effect::Executor>,
    group: Group,
    /// The group being written while `group` records the next one.
    inflight: Option<group::InFlight>,
    /// Runs every group commit on its own thread.
    committer: Committer,
    changes: crate::changes::Changes,
    gauges: Arc<Gauges>,
    /// Started by `run`, so it lives on the runtime's own tokio runtime.
    mover: Option<mover::Mover>,
    /// A commit failed: the runtime stops writing and `run` ends with this error.
    failed: Option<crate::journal::StoreError>,
}

impl Runtime {
    /// Decides what `msg` asks for, then runs the effects decided.
    fn handle(&mut self, msg: Msg) {
        self.decide(msg);
        self.run_effects();
    }

    fn decide(&mut self, msg: Msg) {
        match msg {
            Msg::Start { start, reply } => self.on_start(start, reply),
            Msg::Cancel { id, reply } => self.on_cancel(id, reply),
            Msg::Retry { id, reply } => self.on_retry(id, reply),
            Msg::Created {
                id,
                step,
                attempt,
                result,
                searched,
            } => self.on_created(id, step, attempt, result, searched),
            Msg::Sending {
                id,
                step,
                attempt,
                reply,
            } => self.on_sending(id, step, attempt, reply),
            Msg::Checked {
                id,
                step,
                prediction_id,
                result,
            } => self.on_checked(id, step, &prediction_id, result),
            Msg::Kept {
                id,
                step,
                prediction,
                result,
            } => self.on_kept(id, step, prediction, result),
            Msg::Webhook {
                id,
                step,
                attempt,
                prediction,
                reply,
            } => self.on_webhook(id, step, attempt, prediction, reply),
            Msg::CancelDone {
                id,
                step,
                attempt,
                result,
            } => self.on_cancel_done(id, step, attempt, result),
        }
    }

    /// Folds `event` into the task; ignored events (stale or duplicate results) are dropped.
    /// Returns whether the event applied.
    fn record(&mut self, id: TaskId, event: Event) -> bool {
        let Some(active) = self.active.get_mut(&id) else {
            return false;
        };
        match machine::apply(Arc::make_mut(&mut active.task), &event) {
            Ok(()) => {
                lifecycle::count_event(&active.task, &event);
                active.unsaved.push((active.task.seq, event));
                self.group.touch(id);
                true
            }
            Err(ignored) => {
                tracing::debug!(task_id = %id, event = event.kind(), ?ignored, "Event ignored.");
                false
            }
        }
    }

    /// Records the prediction of `attempt` of `step`: from the create's answer, a search, or
    /// a webhook that beat the answer.
    fn record_created(&mut self, id: TaskId, step: u32, attempt: u32, prediction_id: String) {
        let at = crate::time::now_millis();
        let event = Event::PredictionCreated {
            step,
            attempt,
            prediction_id,
            at,
        };
        self.record(id, event);
    }

    /// Applies every decision that needs no IO (admission, building the next step's input
    /// and journaling the intent), so it joins the current group.
    fn advance(&mut self, id: TaskId) {
        self.advance_with(id, None)
    }

    /// `advance`, given step 1's input if it was built before (a new task's check did).
    /// Requests every step the task may start now (the next of a chain, each branch of a
    /// parallel stage), each once it holds an in-flight slot (`admission`).
    fn advance_with(&mut self, id: TaskId, mut first_input: Option<Json>) {
        loop {
            let Some(active) = self.active.get(&id) else {
                return;
            };
            let requests: Vec<u32> = machine::decide(&active.task)
                .into_iter()
                .filter_map(|command| match command {
                    Command::Request { step } => Some(step),
                    _ => None,
                })
                .collect();
            if requests.is_empty() {
                return;
            }
            for step in requests {
                let Some(active) = self.active.get(&id) else {
                    return;
                };
                let task = &active.task;
                if !self
                    .admission
                    .admit(id, &task.workflow, task.running_steps())
                {
                    return;
                }
                let event = match (step, first_input.take()) {
                    (1, Some(input)) => inputs::step_requested(task, step, input, None),
                    _ => inputs::request_step(&self.workflows, task, step),
                };
                if !self.record(id, event) {
                    // `decide` and `apply` agree on what may be requested; should they ever
                    // not, stop here rather than ask again forever.
                    tracing::error!(task_id = %id, step, "A step decide asked for was refused.");
                    return;
                }
                if let Some(active) = self.active.get_mut(&id) {
                    active.lane(step).unresolved = None;
                }
            }
        }
    }

    fn set_deadline(&mut self, task: &Task, now: i64) {
        let timeout = self
            .workflows
            .get(&task.workflow)
            .and_then(|w| w.task_timeout);
        if let (Some(timeout), false) = (timeout, task.status.is_terminal()) {
            let due = task.created_at + timeout.as_millis() as i64;
            self.deadlines.schedule(
                task.id,
                Duration::from_millis(due.saturating_sub(now).max(0) as u64),
            );
        }
    }

    /// Sets the timer of `step`.
    fn schedule(&mut self, id: TaskId, step: u32, delay: Duration) {
        self.effects
            .push(effect::Effect::Schedule { id, step, delay });
    }

    /// Runs what the decisions so far asked for. A timer is the runtime's own state: it is
    /// set here, in the order decided, before the executor sees the effect.
    fn run_effects(&mut self) {
        for effect in std::mem::take(&mut self.effects) {
            if let effect::Effect::Schedule { id, step, delay } = effect {
                let Some(active) = self.active.get_mut(&id) else {
                    continue;
                };
                let mark = active.task.step(step).map(|s| (s.attempt, s.status));
                active.lane(step).timer_for = mark;
                self.timers.schedule((id, step), delay);
            }
            self.executor.execute(effect);
        }
    }
}

/// Counts a failed call that will be tried again.
fn count_retry(call: crate::metrics::Call) {
    crate::metrics::global().call_retries(call).inc();
}
