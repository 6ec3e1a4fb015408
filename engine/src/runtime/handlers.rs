//! The runtime's reactions to starts, create results, status checks and due timers: which
//! events to record and which calls to start. Called only from the runtime loop, which owns
//! all the state touched here.

use super::effect::{Effect, PredictionCall};
use super::effect::{Ensured, CLOCK_SKEW_MS};
use super::group::Waiter;
use super::inputs::{self, plan, stage_of, target_of};
use super::policy;
use super::{new_active, PreparedStart, Runtime, StartError, StartReply};
use crate::event::Event;
use crate::machine::{self, Command};
use crate::metrics::Call;
use crate::model::{Task, TaskId};
use crate::replicate::{ClientError, Phase, Prediction};

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
                let error = format!("Replicate refused the prediction (HTTP {status}): {detail}");
                self.refused(id, step, error);
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

    /// Replicate refused the step's create outright (invalid input, unknown or forbidden
    /// model): no retry on that model would do better. The same input goes to the stage's
    /// fallback at once, in the same group, when it has one and is not on it yet; else the
    /// step fails.
    fn refused(&mut self, id: TaskId, step: u32, error: String) {
        let at = crate::time::now_millis();
        let on_fallback = self
            .active
            .get(&id)
            .and_then(|a| a.task.step(step))
            .is_none_or(|s| s.model.is_some());
        let has_fallback = self.stage(id, step).is_some_and(|s| s.fallback.is_some());
        if has_fallback && !on_fallback {
            let failed = Event::AttemptFailed {
                step,
                prediction_id: None,
                error: error.clone(),
                at,
            };
            if self.record(id, failed) {
                if let Some(active) = self.active.get(&id) {
                    let event = inputs::request_step_on(&self.workflows, &active.task, step, true);
                    self.record(id, event);
                }
                return;
            }
        }
        let failed = Event::StepFailed {
            step,
            prediction_id: None,
            error,
            canceled: false,
            at,
        };
        self.record(id, failed);
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
                // A task that ended meanwhile (a sibling branch failed, a cancel) needs no
                // more checks: its commit asks for the cancel at once instead.
                let ended = active.task.status.is_terminal();
                if !self.observe(id, step, &prediction) && !ended {
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
