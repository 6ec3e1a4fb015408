//! The runtime: the one loop that owns the state of every unfinished task.
//! It receives messages (start, call results, timers), folds events into tasks through the
//! state machine, commits each loop turn's events as one durable journal group, and only
//! then answers callers and performs what `machine::decide` asks for. HTTP calls run as
//! spawned tasks whose results come back as messages, so no lock guards a task and a late
//! answer can never race a fresh one.

mod calls;
mod handlers;

use crate::event::Event;
use crate::journal::{Store, StoreError, TaskWrite};
use crate::machine::{self, Command};
use crate::model::{Task, TaskId};
use crate::replicate::{ClientError, Prediction, ReplicateClient};
use crate::scheduler::Scheduler;
use crate::workflow::Workflow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

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
    pub task: Task,
    pub created: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StartError {
    #[error("unknown workflow {0:?}")]
    UnknownWorkflow(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the engine cannot accept tasks right now: {0}")]
    Unavailable(String),
}

pub(crate) enum Msg {
    Start { request: StartRequest, reply: oneshot::Sender<Result<Started, StartError>> },
    Created { id: TaskId, step: u32, attempt: u32, result: Result<(Prediction, bool), ClientError> },
    Checked { id: TaskId, step: u32, prediction_id: String, result: Result<Prediction, ClientError> },
}

/// How often to check predictions, and how to back off after failed calls.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub poll_initial: Duration,
    pub poll_max: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
}

/// What the runtime keeps in memory for one unfinished task.
struct Active {
    task: Task,
    /// Events applied since the last commit, with their sequence numbers.
    unsaved: Vec<(u64, Event)>,
    /// A call for this task is running; its result will come back as a message.
    calling: bool,
    /// See `calls::EnsureJob::fresh`.
    fresh_intent: bool,
    /// Delay before the next status check; doubles up to `Policy::poll_max`.
    poll_delay: Duration,
    /// Consecutive failed calls, for backoff.
    failures: u32,
}

enum Reply {
    Created(TaskId),
    Existing(TaskId),
}

pub(crate) struct Runtime {
    store: Arc<dyn Store>,
    client: ReplicateClient,
    workflows: Arc<HashMap<String, Workflow>>,
    policy: Policy,
    active: HashMap<TaskId, Active>,
    timers: Scheduler<TaskId>,
    inbox: mpsc::Receiver<Msg>,
    /// Handed to spawned calls so their results come back.
    outbox: mpsc::Sender<Msg>,
    /// Tasks touched in the current group, in order.
    touched: Vec<TaskId>,
    touched_set: HashSet<TaskId>,
    replies: Vec<(oneshot::Sender<Result<Started, StartError>>, Reply)>,
    /// Idempotency keys of tasks created in the current group (not yet in the store).
    group_keys: HashMap<String, TaskId>,
}

impl Runtime {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        client: ReplicateClient,
        workflows: Arc<HashMap<String, Workflow>>,
        policy: Policy,
        inbox: mpsc::Receiver<Msg>,
        outbox: mpsc::Sender<Msg>,
    ) -> Self {
        Runtime {
            store,
            client,
            workflows,
            policy,
            active: HashMap::new(),
            timers: Scheduler::default(),
            inbox,
            outbox,
            touched: vec![],
            touched_set: HashSet::new(),
            replies: vec![],
            group_keys: HashMap::new(),
        }
    }

    /// Resumes every unfinished task, then serves messages until `shutdown`. Each turn ends
    /// with a commit, so stopping between turns loses nothing acknowledged.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) -> Result<(), StoreError> {
        self.recover().await?;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                msg = self.inbox.recv() => match msg {
                    Some(msg) => self.handle(msg),
                    None => break,
                },
                id = self.timers.next() => self.on_due(id),
            }
            let mut taken = 1;
            while taken < MAX_GROUP {
                match self.inbox.try_recv() {
                    Ok(msg) => self.handle(msg),
                    Err(_) => break,
                }
                taken += 1;
            }
            for id in self.timers.drain_due(MAX_GROUP) {
                self.on_due(id);
            }
            self.commit_group().await;
        }
        tracing::info!(unfinished = self.active.len(), "Runtime stopped; unfinished tasks resume at next start.");
        Ok(())
    }

    async fn recover(&mut self) -> Result<(), StoreError> {
        let store = self.store.clone();
        let tasks = tokio::task::spawn_blocking(move || store.active())
            .await
            .map_err(|e| StoreError::Io(e.to_string()))??;
        tracing::info!(tasks = tasks.len(), "Resuming unfinished tasks.");
        for task in tasks {
            let id = task.id;
            self.active.insert(id, self.new_active(task, false, Duration::ZERO));
            self.touch(id);
            self.advance(id);
        }
        self.commit_group().await;
        Ok(())
    }

    fn new_active(&self, task: Task, fresh_intent: bool, poll_delay: Duration) -> Active {
        Active { task, unsaved: vec![], calling: false, fresh_intent, poll_delay, failures: 0 }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Start { request, reply } => self.on_start(request, reply),
            Msg::Created { id, step, attempt, result } => self.on_created(id, step, attempt, result),
            Msg::Checked { id, step, prediction_id, result } => {
                self.on_checked(id, step, &prediction_id, result)
            }
        }
    }

    fn touch(&mut self, id: TaskId) {
        if self.touched_set.insert(id) {
            self.touched.push(id);
        }
    }

    /// Folds `event` into the task; ignored events (stale or duplicate results) are dropped.
    fn record(&mut self, id: TaskId, event: Event) {
        let Some(active) = self.active.get_mut(&id) else { return };
        match machine::apply(&mut active.task, &event) {
            Ok(()) => {
                active.unsaved.push((active.task.seq, event));
                self.touch(id);
            }
            Err(ignored) => {
                tracing::debug!(task_id = %id, event = event.kind(), ?ignored, "Event ignored.")
            }
        }
    }

    /// Applies every decision that needs no IO (building the next step's input and
    /// journaling the intent), so it joins the current group.
    fn advance(&mut self, id: TaskId) {
        loop {
            let Some(active) = self.active.get(&id) else { return };
            let Some(Command::Request { step }) = machine::decide(&active.task) else { return };
            let event = handlers::request_step(&self.workflows, &active.task, step);
            let requested = matches!(event, Event::StepRequested { .. });
            self.record(id, event);
            if let Some(active) = self.active.get_mut(&id) {
                active.fresh_intent = requested;
            }
        }
    }

    async fn commit_group(&mut self) {
        let touched = std::mem::take(&mut self.touched);
        self.touched_set.clear();
        self.group_keys.clear();
        let writes: Vec<TaskWrite> = touched
            .iter()
            .filter_map(|id| {
                let active = self.active.get_mut(id)?;
                if active.unsaved.is_empty() {
                    return None;
                }
                let events = std::mem::take(&mut active.unsaved);
                Some(TaskWrite { task: active.task.clone(), events })
            })
            .collect();
        let outcome = if writes.is_empty() {
            Ok(())
        } else {
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || store.commit(&writes))
                .await
                .unwrap_or_else(|e| Err(StoreError::Io(e.to_string())))
        };
        let replies = std::mem::take(&mut self.replies);
        match outcome {
            Ok(()) => {
                for (reply, kind) in replies {
                    let _ = reply.send(self.started(kind));
                }
                for id in touched {
                    self.after_commit(id);
                }
            }
            Err(error) => self.roll_back(touched, replies, error),
        }
    }

    fn started(&self, kind: Reply) -> Result<Started, StartError> {
        let (id, created) = match kind {
            Reply::Created(id) => (id, true),
            Reply::Existing(id) => (id, false),
        };
        let task = match self.active.get(&id) {
            Some(active) => Some(active.task.clone()),
            None => self.store.task(&id).ok().flatten(),
        };
        task.map(|task| Started { task, created })
            .ok_or_else(|| StartError::Unavailable("the task could not be read back".into()))
    }

    /// The group did not reach the disk: answer its callers with an error and put every
    /// touched task back to its durable state; timers bring them forward again.
    fn roll_back(
        &mut self,
        touched: Vec<TaskId>,
        replies: Vec<(oneshot::Sender<Result<Started, StartError>>, Reply)>,
        error: StoreError,
    ) {
        tracing::error!(%error, tasks = touched.len(), "Journal commit failed; the group was rolled back.");
        for (reply, _) in replies {
            let _ = reply.send(Err(StartError::Unavailable(error.to_string())));
        }
        for id in touched {
            match self.store.task(&id) {
                Ok(Some(task)) => {
                    let delay = self.policy.retry_base;
                    if let Some(active) = self.active.get_mut(&id) {
                        active.task = task;
                        active.unsaved.clear();
                        active.fresh_intent = false;
                    }
                    self.timers.schedule(id, delay);
                }
                _ => {
                    self.active.remove(&id);
                    self.timers.cancel(&id);
                }
            }
        }
    }

    /// The task's new state is durable: start what it needs next.
    fn after_commit(&mut self, id: TaskId) {
        let Some(active) = self.active.get(&id) else { return };
        if active.calling || self.timers.is_scheduled(&id) {
            return;
        }
        match machine::decide(&active.task) {
            None => {
                tracing::info!(task_id = %id, status = active.task.status.as_str(), "Task finished.");
                self.active.remove(&id);
            }
            Some(Command::EnsurePrediction { .. }) => self.on_due(id),
            Some(Command::Watch { .. }) => {
                let delay = active.poll_delay;
                self.timers.schedule(id, delay);
            }
            Some(Command::Request { .. }) => {}
        }
    }
}
