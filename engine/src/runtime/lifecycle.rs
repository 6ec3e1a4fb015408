//! The runtime's lifecycle: building it from its parts, the message loop itself, resuming
//! unfinished tasks at start, the periodic retention sweep, and the metrics derived from
//! journaled events.

use super::admission::{Admission, CreateGate, QueueView};
use super::effect;
use super::group::Group;
use super::{finder, group, mover, new_active, Committer, Gauges, Msg, Policy, Runtime, MAX_GROUP};
use crate::event::Event;
use crate::journal::Store;
use crate::journal::StoreError;
use crate::metrics::StepOutcome;
use crate::model::{Task, TaskId};
use crate::replicate::ReplicateClient;
use crate::scheduler::Scheduler;
use crate::workflow::Workflow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Everything a runtime is built from.
pub(crate) struct Parts {
    pub store: Arc<dyn Store>,
    pub client: ReplicateClient,
    pub workflows: Arc<HashMap<String, Workflow>>,
    pub policy: Policy,
    /// Predictions in flight at once, over every workflow (None: no limit; `admission`).
    pub max_in_flight: Option<usize>,
    pub retention: Duration,
    pub keeper: Option<crate::outputs::Keeper>,
    pub webhook_base_url: Option<String>,
    pub channel: (mpsc::Sender<Msg>, mpsc::Receiver<Msg>),
    pub committer: Committer,
    /// Runs the effects; `None`: the production executor, spawning the HTTP calls.
    pub executor: Option<Box<dyn effect::Executor>>,
}

impl Runtime {
    pub(crate) fn new(parts: Parts) -> Self {
        let Parts {
            store,
            client,
            workflows,
            policy,
            max_in_flight,
            retention,
            keeper,
            webhook_base_url,
            channel,
            committer,
            executor,
        } = parts;
        let caps = workflows
            .iter()
            .filter_map(|(name, w)| w.max_in_flight.map(|max| (name.clone(), max)))
            .collect();
        let executor = executor.unwrap_or_else(|| {
            Box::new(effect::Calls {
                finder: finder::Finder::new(client.clone(), store.clone()),
                client,
                keeper: keeper.clone(),
                outbox: channel.0.clone(),
            })
        });
        Runtime {
            store,
            workflows,
            policy,
            retention,
            keeper,
            webhook_url: webhook_base_url
                .map(|base| format!("{}/v1/webhooks/replicate", base.trim_end_matches('/'))),
            active: crate::model::TaskIdMap::default(),
            timers: Scheduler::default(),
            deadlines: Scheduler::default(),
            admission: Admission::new(max_in_flight, caps),
            creates: CreateGate::new(policy.max_creates_out),
            inbox: channel.1,
            started_at: crate::time::now_millis(),
            marks_since: 0,
            effects: Vec::new(),
            executor,
            group: Group::default(),
            inflight: None,
            committer,
            changes: crate::changes::Changes::default(),
            gauges: Arc::default(),
            mover: None,
            failed: None,
        }
    }

    pub(crate) fn queue_view(&self) -> QueueView {
        self.admission.view()
    }

    pub(crate) fn changes(&self) -> crate::changes::Changes {
        self.changes.clone()
    }

    pub(crate) fn gauges(&self) -> Arc<Gauges> {
        self.gauges.clone()
    }
}

impl Runtime {
    /// Resumes every unfinished task, then serves messages until `shutdown`. Nothing is
    /// acknowledged before its group is on disk, and stopping writes what was recorded.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) -> Result<(), StoreError> {
        self.mover = Some(mover::Mover::start(self.store.clone()));
        self.recover().await?;
        self.gauges
            .resumed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        // Sweep often enough that a short retention (tests) is honoured, at most once a minute.
        let every = (self.retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        // The first one an interval after the start, not during recovery's burst of checks.
        let mut sweep = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The sweep runs only with every recorded change on disk (no commit running, nothing
        // recorded since): a retry recorded but not yet durable reopens a task the sweep would
        // otherwise delete. Under steady load that moment never comes by itself, so a due
        // sweep stops the intake until the commits in hand are written.
        let mut sweep_due = false;
        while self.failed.is_none() {
            if sweep_due && self.inflight.is_none() && self.group.is_empty() {
                sweep_due = false;
                self.sweep().await;
            }
            let intake = !sweep_due;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                outcome = group::finished(&mut self.inflight), if self.inflight.is_some() => {
                    self.finish_commit(outcome)
                }
                _ = sweep.tick(), if intake => sweep_due = true,
                msg = self.inbox.recv(), if intake => match msg {
                    Some(msg) => self.handle(msg),
                    None => break,
                },
                (id, step) = self.timers.next(), if intake => self.on_due(id, step),
                id = self.deadlines.next(), if intake => self.on_task_deadline(id),
            }
            self.run_effects();
            if !sweep_due {
                for _ in 1..MAX_GROUP {
                    match self.inbox.try_recv() {
                        Ok(msg) => self.handle(msg),
                        Err(_) => break,
                    }
                }
                for (id, step) in self.timers.drain_due(MAX_GROUP) {
                    self.on_due(id, step);
                }
                self.release_waiting_creates();
                self.run_effects();
            }
            // One commit runs at a time; what arrives meanwhile is the next group.
            if self.failed.is_none() && self.inflight.is_none() && !self.group.is_empty() {
                self.start_commit();
            }
            self.gauges
                .unfinished
                .store(self.active.len(), std::sync::atomic::Ordering::Relaxed);
        }
        // Nothing recorded stays unwritten: the callers waiting on it get their answers.
        self.commit_group().await;
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        tracing::info!(
            unfinished = self.active.len(),
            "Runtime stopped; unfinished tasks resume at next start."
        );
        if let Some(mover) = self.mover.take() {
            mover.finish().await;
        }
        Ok(())
    }

    /// Deletes finished tasks past their retention, a bounded batch per turn so the loop
    /// never stalls for long.
    pub(super) async fn sweep(&mut self) {
        const BATCH: usize = 1000;
        let cutoff = crate::time::now_millis() - self.retention.as_millis() as i64;
        let store = self.store.clone();
        let keeper = self.keeper.clone();
        let swept = move || {
            let deleted = store.sweep(cutoff, BATCH)?;
            for id in deleted.iter().filter(|_| keeper.is_some()) {
                let dir = keeper.as_ref().map(|k| k.dir.join(id.to_string()));
                if let Some(dir) = dir.filter(|d| d.exists()) {
                    if let Err(error) = std::fs::remove_dir_all(&dir) {
                        tracing::warn!(task_id = %id, %error, "Could not delete a swept task's kept files.");
                    }
                }
            }
            Ok::<_, StoreError>(deleted.len())
        };
        match tokio::task::spawn_blocking(swept).await {
            Ok(Ok(0)) => {}
            Ok(Ok(deleted)) => {
                tracing::info!(deleted, "Finished tasks past their retention deleted.");
                crate::metrics::global()
                    .tasks_deleted
                    .inc_by(deleted as u64);
            }
            Ok(Err(error)) => tracing::warn!(%error, "Retention sweep failed; will try again."),
            Err(error) => tracing::warn!(%error, "Retention sweep panicked; will try again."),
        }
    }

    pub(super) async fn recover(&mut self) -> Result<(), StoreError> {
        let store = self.store.clone();
        // Housekeeping: a task whose move failed is whole in the journal and is read there.
        match tokio::task::spawn_blocking(move || store.finish_moves()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(moved)) => tracing::info!(
                tasks = moved,
                "Settled tasks moved to the archive (a move had been cut short)."
            ),
            Ok(Err(error)) => {
                tracing::warn!(%error, "Moving settled tasks to the archive failed; will try at the next start.")
            }
            Err(error) => {
                tracing::warn!(%error, "Moving settled tasks to the archive panicked; will try at the next start.")
            }
        }
        let store = self.store.clone();
        let now = self.started_at;
        let (marks_since, mut tasks) = tokio::task::spawn_blocking(move || {
            Ok::<_, StoreError>((store.create_marks_since(now)?, store.active()?))
        })
        .await
        .map_err(|e| StoreError::io("reading the unfinished tasks", e))??;
        self.marks_since = marks_since;
        tracing::info!(tasks = tasks.len(), "Resuming unfinished tasks.");
        tasks.sort_by_key(|task| (task.created_at, task.id));
        let now = crate::time::now_millis();
        let order: Vec<TaskId> = tasks.iter().map(|task| task.id).collect();
        for task in tasks {
            // Tasks that had started keep their slots; the others queue again in creation order.
            let started = task
                .steps
                .iter()
                .any(|s| s.status != crate::model::StepStatus::Pending);
            if started && !task.status.is_terminal() {
                self.admission
                    .hold(task.id, &task.workflow, task.running_steps());
            }
            self.set_deadline(&task, now);
            let unresolved = self.unresolved_after_restart(&task);
            let mut active = new_active(task, Duration::ZERO);
            for (step, until) in unresolved {
                active.lane(step).unresolved = Some(until);
            }
            self.active.insert(active.task.id, active);
        }
        for id in order {
            self.group.touch(id);
            self.advance(id);
        }
        while self.failed.is_none() && !self.group.is_empty() {
            self.commit_group().await;
        }
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        self.gauges
            .unfinished
            .store(self.active.len(), std::sync::atomic::Ordering::Relaxed);
        tracing::info!(tasks = self.active.len(), "Unfinished tasks resumed.");
        Ok(())
    }
}

impl Runtime {
    /// For a task read back at start: each step whose create, sent by an earlier run, may
    /// have made a prediction nobody journaled, with the latest moment it could have. A step
    /// with no `CreateSent` never reached Replicate, unless an older version journaled its
    /// intent (before `marks_since`) and sent creates without marks.
    fn unresolved_after_restart(&self, task: &Task) -> Vec<(u32, i64)> {
        use crate::model::StepStatus;
        let reach = self.policy.create_reach.as_millis() as i64;
        task.steps
            .iter()
            .filter(|s| {
                s.prediction_id.is_none() && (s.status == StepStatus::Starting || s.cancel_pending)
            })
            .filter_map(|step| match step.sent {
                Some(sent) => Some((step.index, (sent.last + reach).min(self.started_at))),
                None if step.started_at.unwrap_or(0) < self.marks_since => {
                    Some((step.index, self.started_at))
                }
                None => None,
            })
            .collect()
    }
}

/// Metrics of a journaled event: starts, step durations by outcome, retried attempts.
pub(super) fn count_event(task: &Task, event: &Event) {
    let metrics = crate::metrics::global();
    let workflow = task.workflow.as_str();
    let (step, outcome) = match event {
        Event::StepSucceeded { step, .. } => (*step, StepOutcome::Succeeded),
        Event::StepFailed { step, .. } => (*step, StepOutcome::Failed),
        Event::AttemptFailed { step, .. } => {
            metrics.step_retries(workflow).inc();
            (*step, StepOutcome::Retried)
        }
        _ => return,
    };
    let Some(started) = task.step(step).and_then(|s| s.started_at) else {
        return;
    };
    let seconds = (event.at() - started).max(0) as f64 / 1000.0;
    metrics.step_duration(workflow, outcome).observe(seconds);
}
