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
use crate::model::{Json, Task, TaskId};
use crate::replicate::{ClientError, Phase, Prediction};
use crate::workflow::{Scope, Workflow};
use std::collections::HashMap;

/// The event that starts `step`: its intent with the built input, or its failure when the
/// input cannot be built (e.g. the previous output lacks a templated path).
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
    let previous = step.checked_sub(1).and_then(|prev| task.step(prev));
    let previous_output = previous
        .and_then(|prev| prev.output.as_ref())
        .map(Json::value);
    let previous_kept = previous
        .and_then(|prev| prev.kept_output.as_ref())
        .map(Json::value);
    let (params, item) = (task.params.value(), current.item.value());
    let scope = Scope {
        params: &params,
        item: &item,
        previous_output: previous_output.as_ref(),
        previous_kept_output: previous_kept.as_ref(),
        stage_outputs: &|_, _| Vec::new(),
    };
    match workflow.step_input(0, Some(step as usize - 1), &scope) {
        Ok(input) => step_requested(task, step, Json::from_value(&input)),
        Err(error) => fail(format!("cannot build the input: {error}")),
    }
}

/// The intent to run `step` with `input`, already built.
pub(super) fn step_requested(task: &Task, step: u32, input: Json) -> Event {
    let attempt = task.step(step).map_or(0, |current| current.attempt) + 1;
    Event::StepRequested {
        step,
        attempt,
        input,
        at: crate::time::now_millis(),
    }
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
        let event = Event::TaskCreated {
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
        let mut active = new_active(task, None, self.policy.poll_initial);
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
        active.calling = false;
        if searched {
            // Every create sent before the search was looked for and made nothing.
            active.unresolved = None;
        }
        // Re-evaluated after the commit, even if this result changes nothing.
        self.group.touch(id);
        match result {
            Ok(Ensured::Created(prediction) | Ensured::Found(prediction)) => {
                active.failures = 0;
                active.unresolved = None;
                let starting = prediction.phase() == Phase::Starting;
                active.poll_delay = policy.first_poll(starting);
                tracing::info!(task_id = %id, step, prediction_id = %prediction.id, found, "Prediction created.");
                self.record_created(id, step, attempt, prediction.id.clone());
                self.observe(id, step, &prediction);
            }
            Ok(Ensured::Withdrawn) => {}
            Err(ClientError::Final { status, detail }) => {
                tracing::warn!(task_id = %id, step, status, %detail, "Replicate refused to create the prediction.");
                let at = crate::time::now_millis();
                let error = format!("Replicate refused the prediction (HTTP {status}): {detail}");
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
                let sent = active.task.step(step).is_some_and(|s| s.sent.is_some());
                if policy::create_may_have_landed(sent, refused) {
                    // The create may have gone through: look for it before creating again.
                    active.unresolved = Some(crate::time::now_millis());
                }
                active.failures += 1;
                let delay = self.policy.backoff(active.failures, retry_after);
                tracing::warn!(task_id = %id, step, %message, retry_in_ms = delay.as_millis() as u64, "Create failed; will retry.");
                super::count_retry(Call::Create);
                self.schedule(id, delay);
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
        active.calling = false;
        // Re-evaluated after the commit, even if this result changes nothing.
        self.group.touch(id);
        match result {
            Ok(prediction) => {
                active.failures = 0;
                let starting = prediction.phase() == Phase::Starting;
                active.poll_delay = policy.next_poll(active.poll_delay, starting);
                if !self.observe(id, step, &prediction) {
                    let delay = self.next_check_delay(id);
                    self.schedule(id, delay);
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
                active.failures += 1;
                let retry_after = match &error {
                    ClientError::Retryable { retry_after, .. } => *retry_after,
                    ClientError::Final { .. } => None,
                };
                let delay = policy.check_backoff(active.failures, retry_after, active.poll_delay);
                tracing::warn!(task_id = %id, step, %error, "Status check failed; will retry.");
                super::count_retry(Call::Check);
                self.schedule(id, delay);
            }
        }
    }

    /// A timer fell due (or a call must start now): decide the call the task needs next.
    pub(super) fn on_due(&mut self, id: TaskId) {
        let Some(active) = self.active.get(&id) else {
            return;
        };
        // A call may only start from durable state: with events still unsaved or in the running
        // commit (say a webhook ended the step and journaled the next intent), the task waits
        // for its commit, after which `after_commit` brings it back here.
        if active.calling || !active.is_durable() {
            return;
        }
        let Some(workflow) = self.workflows.get(&active.task.workflow) else {
            return;
        };
        let task = &active.task;
        let call = |step: u32, input: serde_json::Value| PredictionCall {
            target: workflow.stages[0].target.clone(),
            input,
            search: active.unresolved.map(|until| {
                let from = sent_from(task, step) - CLOCK_SKEW_MS;
                (from, until + CLOCK_SKEW_MS)
            }),
            cancel_after: workflow.stages[0].step_timeout,
        };
        let attempt_of = |step: u32| task.step(step).map_or(0, |s| s.attempt);
        let effect = match machine::decide(task) {
            Some(Command::Request { .. }) => return self.advance(id),
            Some(Command::EnsurePrediction {
                step,
                attempt,
                input,
            }) => {
                // Over the gate's limit the task waits there, as an id, until a call is back:
                // its request is built only once it has a permit.
                let Some(permit) = self.creates.permit(id) else {
                    return;
                };
                let call = call(step, input.value());
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
            Some(Command::Watch {
                step,
                prediction_id,
            }) if self.step_timed_out(id, step) => {
                tracing::warn!(task_id = %id, step, %prediction_id, "Step timed out; canceling its prediction.");
                Effect::Cancel {
                    id,
                    step,
                    attempt: attempt_of(step),
                    prediction_id: Some(prediction_id),
                    call: call(step, serde_json::Value::Null),
                }
            }
            Some(Command::Watch {
                step,
                prediction_id,
            }) => Effect::Check {
                id,
                step,
                prediction_id,
            },
            Some(Command::CancelPrediction {
                step,
                attempt,
                prediction_id,
                input,
            }) => {
                let input = input.map(|input| input.value()).unwrap_or_default();
                Effect::Cancel {
                    id,
                    step,
                    attempt,
                    prediction_id,
                    call: call(step, input),
                }
            }
            None => return,
        };
        self.effects.push(effect);
        if let Some(active) = self.active.get_mut(&id) {
            active.calling = true;
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
