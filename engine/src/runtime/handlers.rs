//! The runtime's reactions to starts, create results, status checks and due timers: which
//! events to record and which calls to start. Called only from the runtime loop, which owns
//! all the state touched here.

use super::effect::{Effect, PredictionCall};
use super::effect::{Ensured, CLOCK_SKEW_MS};
use super::group::Waiter;
use super::policy;
use super::{new_active, PreparedStart, Runtime, StartError, StartReply};
use crate::event::Event;
use crate::machine::{self, Command};
use crate::metrics::Call;
use crate::model::{Json, StagePlan, Step, Task, TaskId};
use crate::replicate::{ClientError, Phase, Prediction};
use crate::workflow::{Scope, Stage, Target, Workflow};
use std::collections::HashMap;

/// The event that starts `step`: its intent with the built input (on the stage's fallback
/// once its retries are spent), or its failure when the input cannot be built (e.g. the
/// previous output lacks a templated path).
pub(super) fn request_step(workflows: &HashMap<String, Workflow>, task: &Task, step: u32) -> Event {
    let at = crate::time::now_millis();
    let fail = |error: String| Event::StepFailed {
        step,
        prediction_id: None,
        error,
        canceled: false,
        at,
    };
    let Some(workflow) = workflows.get(&task.workflow) else {
        return fail(format!(
            "workflow '{}' is no longer configured",
            task.workflow
        ));
    };
    let Some(current) = task.step(step) else {
        return fail("no such step".into());
    };
    let Some((stage, plan)) = stage_of(workflow, task, current) else {
        return fail(format!(
            "the stages of workflow '{}' changed since the task started",
            task.workflow
        ));
    };
    // A chain reads the step before; a parallel branch the step before its stage.
    let previous = if plan.parallel {
        task.steps.iter().rev().find(|s| s.stage < current.stage)
    } else {
        step.checked_sub(1).and_then(|prev| task.step(prev))
    };
    let previous_output = previous
        .and_then(|prev| prev.output.as_ref())
        .map(Json::value);
    let previous_kept = previous
        .and_then(|prev| prev.kept_output.as_ref())
        .map(Json::value);
    let (params, item) = (task.params.value(), current.item.value());
    let stage_outputs = |index: usize, kept: bool| -> Vec<serde_json::Value> {
        task.stage_steps(index as u32)
            .map(|s| {
                let output = if kept {
                    s.kept_output.as_ref().or(s.output.as_ref())
                } else {
                    s.output.as_ref()
                };
                output.map_or(serde_json::Value::Null, Json::value)
            })
            .collect()
    };
    let scope = Scope {
        params: &params,
        item: &item,
        previous_output: previous_output.as_ref(),
        previous_kept_output: previous_kept.as_ref(),
        stage_outputs: &stage_outputs,
    };
    let item_index = current.item_index.map(|i| i as usize);
    let input = match workflow.step_input(current.stage as usize, item_index, &scope) {
        Ok(input) => Json::from_value(&input),
        Err(error) => return fail(format!("cannot build the input: {error}")),
    };
    let tries = (current.attempt + 1).saturating_sub(current.run_from) + 1;
    let fallback = stage
        .fallback
        .as_ref()
        .filter(|_| tries > stage.step_retries + 1);
    step_requested(task, step, input, fallback.map(|t| t.label().to_owned()))
}

/// The intent to run `step` with `input`, already built; on `fallback` when given.
pub(super) fn step_requested(
    task: &Task,
    step: u32,
    input: Json,
    fallback: Option<String>,
) -> Event {
    let attempt = task.step(step).map_or(0, |current| current.attempt) + 1;
    let at = crate::time::now_millis();
    match fallback {
        Some(model) => Event::FallbackRequested {
            step,
            attempt,
            input,
            model,
            at,
        },
        None => Event::StepRequested {
            step,
            attempt,
            input,
            at,
        },
    }
}

/// The configured stage a step belongs to, with the task's plan of it; `None` when the
/// workflow's stages no longer match the ones the task started with.
pub(super) fn stage_of<'a>(
    workflow: &'a Workflow,
    task: &'a Task,
    step: &Step,
) -> Option<(&'a Stage, &'a StagePlan)> {
    let plan = task.stage_of(step)?;
    let stage = workflow.stages.get(step.stage as usize)?;
    (stage.name == plan.name).then_some((stage, plan))
}

/// Where the step's current attempt runs: its fallback when it recorded one, else its stage's
/// model or version.
pub(super) fn target_of(workflow: &Workflow, task: &Task, step: &Step) -> Option<Target> {
    if let Some(label) = &step.model {
        return Some(if label.contains('/') {
            Target::Model(label.clone())
        } else {
            Target::Version(label.clone())
        });
    }
    stage_of(workflow, task, step).map(|(stage, _)| stage.target.clone())
}

/// The stages a new task of `workflow` runs, as its first event records them.
pub(super) fn plan(workflow: &Workflow) -> Vec<StagePlan> {
    workflow
        .stages
        .iter()
        .map(|stage| StagePlan {
            name: stage.name.clone(),
            model: Some(stage.target.label().to_owned()),
            each: stage.each,
            parallel: stage.parallel,
            max_parallel: stage.max_parallel,
        })
        .collect()
}

impl Runtime {
    pub(super) fn on_start(&mut self, request: PreparedStart, reply: StartReply) {
        if let Some(key) = &request.idempotency_key {
            let committing = self
                .inflight
                .as_ref()
                .and_then(|inflight| inflight.created_key(key));
            if let Some(id) = self.group.keys.get(key).copied().or(committing) {
                self.group.waiters.push(Waiter::Start {
                    reply,
                    id,
                    created: false,
                });
                return;
            }
            match self.store.task_for_idempotency_key(key) {
                Ok(Some(id)) => {
                    self.group.waiters.push(Waiter::Start {
                        reply,
                        id,
                        created: false,
                    });
                    return;
                }
                Ok(None) => {}
                Err(error) => {
                    let _ = reply.send(Err(StartError::Unavailable(error.to_string())));
                    return;
                }
            }
        }
        let now = crate::time::now_millis();
        let id = match TaskId::time_ordered(now) {
            Ok(id) => id,
            Err(error) => {
                let _ = reply.send(Err(StartError::Unavailable(format!(
                    "no randomness: {error}"
                ))));
                return;
            }
        };
        let Some(workflow) = self.workflows.get(&request.workflow) else {
            let _ = reply.send(Err(StartError::UnknownWorkflow(request.workflow)));
            return;
        };
        let event = Event::TaskPlanned {
            stages: plan(workflow),
            workflow: request.workflow,
            params: request.params,
            items: request.items,
            idempotency_key: request.idempotency_key.clone(),
            at: now,
        };
        let task = match machine::create(id, &event) {
            Ok(task) => task,
            Err(ignored) => {
                let _ = reply.send(Err(StartError::Invalid(ignored.to_string())));
                return;
            }
        };
        self.set_deadline(&task, now);
        let mut active = new_active(task, self.policy.poll_initial);
        active.unsaved.push((1, event));
        self.active.insert(id, active);
        if let Some(key) = request.idempotency_key {
            self.group.keys.insert(key, id);
        }
        self.group.touch(id);
        self.advance_with(id, request.first_input);
        self.group.waiters.push(Waiter::Start {
            reply,
            id,
            created: true,
        });
        let workflow = self.active.get(&id).map_or("", |a| &a.task.workflow);
        crate::metrics::global().tasks_started(workflow).inc();
        tracing::info!(task_id = %id, "Task accepted.");
    }

    pub(super) fn on_created(
        &mut self,
        id: TaskId,
        step: u32,
        attempt: u32,
        result: Result<Ensured, ClientError>,
        searched: bool,
    ) {
        let policy = self.policy;
        let found = matches!(result, Ok(Ensured::Found(_)));
        let Some(active) = self.active.get_mut(&id) else {
            return;
        };
        let sent = active.task.step(step).is_some_and(|s| s.sent.is_some());
        let lane = active.lane(step);
        lane.calling = false;
        if searched {
            // Every create sent before the search was looked for and made nothing.
            lane.unresolved = None;
        }
        // Re-evaluated after the commit, even if this result changes nothing.
        self.group.touch(id);
        match result {
            Ok(Ensured::Created(prediction) | Ensured::Found(prediction)) => {
                lane.failures = 0;
                lane.unresolved = None;
                let starting = prediction.phase() == Phase::Starting;
                lane.poll_delay = policy.first_poll(starting);
                tracing::info!(task_id = %id, step, prediction_id = %prediction.id, found, "Prediction created.");
                self.record_created(id, step, attempt, prediction.id.clone());
                self.observe(id, step, &prediction);
            }
            Ok(Ensured::Withdrawn) => {}
            Err(ClientError::Final { status, detail }) => {
                tracing::warn!(task_id = %id, step, status, %detail, "Replicate refused to create the prediction.");
                let at = crate::time::now_millis();
                let error = format!("Replicate refused the prediction (HTTP {status}): {detail}");
                // Refused outright (invalid input, unknown model): no retry would do better.
                self.record(
                    id,
                    Event::StepFailed {
                        step,
                        prediction_id: None,
                        error,
                        canceled: false,
                        at,
                    },
                );
            }
            Err(ClientError::Retryable {
                message,
                retry_after,
                refused,
                ..
            }) => {
                if policy::create_may_have_landed(sent, refused) {
                    // The create may have gone through: look for it before creating again.
                    lane.unresolved = Some(crate::time::now_millis());
                }
                lane.failures += 1;
                let delay = self.policy.backoff(lane.failures, retry_after);
                tracing::warn!(task_id = %id, step, %message, retry_in_ms = delay.as_millis() as u64, "Create failed; will retry.");
                super::count_retry(Call::Create);
                self.schedule(id, step, delay);
            }
        }
    }

    /// A create call is about to leave: journal it as sent, unless the step no longer wants
    /// it (the task was canceled or moved on while the call waited for its turn).
    pub(super) fn on_sending(
        &mut self,
        id: TaskId,
        step: u32,
        attempt: u32,
        reply: super::AckReply,
    ) {
        // The state machine takes the mark only for the attempt in flight of an unfinished
        // task whose prediction is not known yet: the same rule decides whether it may leave.
        let at = crate::time::now_millis();
        if !self.record(id, Event::CreateSent { step, attempt, at }) {
            let _ = reply.send(Err(super::ControlError::Conflict(
                "the create is no longer wanted".into(),
            )));
            return;
        }
        self.group.waiters.push(Waiter::Ack { reply });
    }

    pub(super) fn on_checked(
        &mut self,
        id: TaskId,
        step: u32,
        prediction_id: &str,
        result: Result<Prediction, ClientError>,
    ) {
        let policy = self.policy;
        let Some(active) = self.active.get_mut(&id) else {
            return;
        };
        let lane = active.lane(step);
        lane.calling = false;
        // Re-evaluated after the commit, even if this result changes nothing.
        self.group.touch(id);
        match result {
            Ok(prediction) => {
                lane.failures = 0;
                let starting = prediction.phase() == Phase::Starting;
                lane.poll_delay = policy.next_poll(lane.poll_delay, starting);
                if !self.observe(id, step, &prediction) {
                    let delay = self.next_check_delay(id, step);
                    self.schedule(id, step, delay);
                }
            }
            Err(ClientError::Final { status: 404, .. }) => {
                let at = crate::time::now_millis();
                let error = format!("prediction {prediction_id} no longer exists at Replicate");
                let prediction_id = Some(prediction_id.to_owned());
                self.record(
                    id,
                    Event::StepFailed {
                        step,
                        prediction_id,
                        error,
                        canceled: false,
                        at,
                    },
                );
            }
            Err(error) => {
                lane.failures += 1;
                let retry_after = match &error {
                    ClientError::Retryable { retry_after, .. } => *retry_after,
                    ClientError::Final { .. } => None,
                };
                let delay = policy.check_backoff(lane.failures, retry_after, lane.poll_delay);
                tracing::warn!(task_id = %id, step, %error, "Status check failed; will retry.");
                super::count_retry(Call::Check);
                self.schedule(id, step, delay);
            }
        }
    }

    /// A timer of `step` fell due (or a call must start now): decide the call it needs next.
    pub(super) fn on_due(&mut self, id: TaskId, step: u32) {
        let Some(active) = self.active.get(&id) else {
            return;
        };
        // A call may only start from durable state: with events still unsaved or in the running
        // commit (say a webhook ended the step and journaled the next intent), the task waits
        // for its commit, after which `after_commit` brings it back here.
        if active.calling(step) || !active.is_durable() {
            return;
        }
        let Some(workflow) = self.workflows.get(&active.task.workflow) else {
            return;
        };
        let task = &active.task;
        let Some(current) = task.step(step) else {
            return;
        };
        let stage = stage_of(workflow, task, current).map(|(stage, _)| stage);
        let Some(target) = target_of(workflow, task, current) else {
            return;
        };
        let unresolved = active.lane_of(step).and_then(|lane| lane.unresolved);
        let call = |input: serde_json::Value| PredictionCall {
            target: target.clone(),
            input,
            search: unresolved.map(|until| {
                let from = sent_from(task, step) - CLOCK_SKEW_MS;
                (from, until + CLOCK_SKEW_MS)
            }),
            cancel_after: stage.and_then(|stage| stage.step_timeout),
        };
        let command = machine::decide(task)
            .into_iter()
            .find(|command| command.step() == step);
        let effect = match command {
            Some(Command::Request { .. }) => return self.advance(id),
            Some(Command::EnsurePrediction { attempt, input, .. }) => {
                // Over the gate's limit the step waits there, as a key, until a call is back:
                // its request is built only once it has a permit.
                let Some(permit) = self.creates.permit((id, step)) else {
                    return;
                };
                let call = call(input.value());
                let webhook = self
                    .webhook_url
                    .as_ref()
                    .map(|url| format!("{url}?task={id}&step={step}&attempt={attempt}"));
                Effect::Create {
                    id,
                    step,
                    attempt,
                    call,
                    webhook,
                    permit,
                }
            }
            Some(Command::Watch { prediction_id, .. }) if self.step_timed_out(id, step) => {
                tracing::warn!(task_id = %id, step, %prediction_id, "Step timed out; canceling its prediction.");
                Effect::Cancel {
                    id,
                    step,
                    attempt: current.attempt,
                    prediction_id: Some(prediction_id),
                    call: call(serde_json::Value::Null),
                }
            }
            Some(Command::Watch { prediction_id, .. }) => Effect::Check {
                id,
                step,
                prediction_id,
            },
            Some(Command::CancelPrediction {
                attempt,
                prediction_id,
                input,
                ..
            }) => {
                let input = input.map(|input| input.value()).unwrap_or_default();
                Effect::Cancel {
                    id,
                    step,
                    attempt,
                    prediction_id,
                    call: call(input),
                }
            }
            None => return,
        };
        self.effects.push(effect);
        if let Some(active) = self.active.get_mut(&id) {
            active.lane(step).calling = true;
        }
    }
}

/// The earliest a create for the step's current attempt can have been sent: its first
/// `CreateSent`, or (journaled by a version without those marks) its intent.
pub(super) fn sent_from(task: &Task, step: u32) -> i64 {
    let step = task.step(step);
    let sent = step.and_then(|s| s.sent).map(|sent| sent.first);
    sent.or_else(|| step.and_then(|s| s.started_at))
        .unwrap_or(0)
}
