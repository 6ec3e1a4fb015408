//! State-machine tests for tasks with stages: a once stage, a chain per item and parallel
//! branches in one task; what runs when, a failing branch, retry, cancel with several
//! predictions in flight, and replay of the stage events.

use super::*;
use crate::model::{Json, StagePlan};

fn stage(name: &str, each: bool, parallel: bool, max_parallel: Option<u32>) -> StagePlan {
    StagePlan {
        name: name.into(),
        model: Some(format!("acme/{name}")),
        each,
        parallel,
        max_parallel,
    }
}

/// cutout (once) → tryon (chain) → variants (parallel, at most `max`) → sheet (once).
fn planned(items: usize, max: Option<u32>) -> Event {
    Event::TaskPlanned {
        workflow: "lookbook".into(),
        params: Json(r#"{"person":"p.png"}"#.into()),
        items: (0..items)
            .map(|i| Json(format!(r#"{{"n":{i}}}"#)))
            .collect(),
        stages: vec![
            stage("cutout", false, false, None),
            stage("tryon", true, false, None),
            stage("variants", true, true, max),
            stage("sheet", false, false, None),
        ],
        idempotency_key: None,
        at: 1_000,
    }
}

fn requested(step: u32, attempt: u32) -> Event {
    Event::StepRequested {
        step,
        attempt,
        input: Json(format!(r#"{{"s":{step}}}"#)),
        at: 2_000,
    }
}

fn pred(step: u32, attempt: u32) -> String {
    format!("pred{step}-{attempt}")
}

fn created(step: u32, attempt: u32) -> Event {
    Event::PredictionCreated {
        step,
        attempt,
        prediction_id: pred(step, attempt),
        at: 3_000,
    }
}

fn succeeded(step: u32, attempt: u32) -> Event {
    Event::StepSucceeded {
        step,
        prediction_id: pred(step, attempt),
        output: Json(format!(r#""out{step}""#)),
        at: 5_000,
    }
}

/// Starts `step` (first attempt): intent and prediction.
fn start(task: &mut Task, step: u32) {
    apply(task, &requested(step, 1)).unwrap();
    apply(task, &created(step, 1)).unwrap();
}

fn run(task: &mut Task, step: u32) {
    start(task, step);
    apply(task, &succeeded(step, 1)).unwrap();
}

/// The steps `decide` asks to request.
fn requests(task: &Task) -> Vec<u32> {
    decide(task)
        .into_iter()
        .filter_map(|c| match c {
            Command::Request { step } => Some(step),
            _ => None,
        })
        .collect()
}

fn watched(task: &Task) -> Vec<u32> {
    decide(task)
        .into_iter()
        .filter_map(|c| match c {
            Command::Watch { step, .. } => Some(step),
            _ => None,
        })
        .collect()
}

#[test]
fn steps_are_known_at_start_with_their_stage_and_item() {
    let t = create(TaskId([1; 16]), &planned(3, None)).unwrap();
    assert_eq!(t.steps.len(), 1 + 3 + 3 + 1);
    let sheet = &t.steps[7];
    assert_eq!((sheet.stage, sheet.item_index), (3, None));
    assert_eq!(t.steps[5].item.0, r#"{"n":1}"#);
    assert_eq!(t.steps[5].item_index, Some(1));
    assert_eq!(requests(&t), [1], "only the once stage's step can start");
}

#[test]
fn a_chain_runs_its_items_one_after_another_then_branches_start_together() {
    let mut t = create(TaskId([1; 16]), &planned(3, None)).unwrap();
    run(&mut t, 1);
    assert_eq!(requests(&t), [2]);
    assert!(
        apply(&mut t, &requested(3, 1)).is_err(),
        "item 2 of a chain waits for item 1"
    );
    run(&mut t, 2);
    run(&mut t, 3);
    run(&mut t, 4);
    assert_eq!(requests(&t), [5, 6, 7], "every branch at once");
    assert!(
        apply(&mut t, &requested(8, 1)).is_err(),
        "the join waits for every branch"
    );
    start(&mut t, 5);
    start(&mut t, 6);
    start(&mut t, 7);
    assert_eq!(watched(&t), [5, 6, 7]);
    apply(&mut t, &succeeded(6, 1)).unwrap();
    apply(&mut t, &succeeded(5, 1)).unwrap();
    assert_eq!(watched(&t), [7]);
    assert!(
        requests(&t).is_empty(),
        "the join waits for the last branch"
    );
    apply(&mut t, &succeeded(7, 1)).unwrap();
    assert_eq!(requests(&t), [8]);
    run(&mut t, 8);
    assert_eq!(t.status, TaskStatus::Succeeded);
    assert_eq!(
        t.output,
        Some(Json(r#""out8""#.into())),
        "the last stage's output"
    );
    assert_eq!(t.progress().completed, 8);
}

#[test]
fn max_parallel_caps_the_branches_running_at_once() {
    let mut t = create(TaskId([1; 16]), &planned(3, Some(2))).unwrap();
    for step in 1..=4 {
        run(&mut t, step);
    }
    assert_eq!(requests(&t), [5, 6]);
    start(&mut t, 5);
    start(&mut t, 6);
    assert!(requests(&t).is_empty());
    assert!(
        matches!(
            apply(&mut t, &requested(7, 1)),
            Err(Ignored::WrongState { step: 7, .. })
        ),
        "a third branch over the cap is refused, live or in replay"
    );
    apply(&mut t, &succeeded(5, 1)).unwrap();
    assert_eq!(requests(&t), [7]);
}

/// The task at its parallel stage: three branches running.
fn branching() -> Task {
    let mut t = create(TaskId([1; 16]), &planned(3, None)).unwrap();
    for step in 1..=4 {
        run(&mut t, step);
    }
    start(&mut t, 5);
    start(&mut t, 6);
    apply(&mut t, &requested(7, 1)).unwrap();
    t
}

#[test]
fn a_failing_branch_fails_the_task_and_cancels_its_running_siblings() {
    let mut t = branching();
    let failed = Event::StepFailed {
        step: 6,
        prediction_id: Some(pred(6, 1)),
        error: "boom".into(),
        canceled: false,
        at: 6_000,
    };
    apply(&mut t, &failed).unwrap();
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.error.as_deref(), Some("step 6 (variants, item 1): boom"));
    let statuses: Vec<_> = t.steps[4..].iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        [
            StepStatus::Canceled,
            StepStatus::Failed,
            StepStatus::Canceled,
            StepStatus::Pending
        ],
        "the join never runs"
    );
    let cancels: Vec<(u32, Option<String>)> = decide(&t)
        .into_iter()
        .map(|c| match c {
            Command::CancelPrediction {
                step,
                prediction_id,
                ..
            } => (step, prediction_id),
            other => panic!("only cancels, got {other:?}"),
        })
        .collect();
    assert_eq!(
        cancels,
        [(5, Some(pred(5, 1))), (7, None)],
        "the running branch, and the one whose create may be out"
    );
    // A late success of a canceled sibling changes nothing.
    assert_eq!(apply(&mut t, &succeeded(5, 1)), Err(Ignored::TaskFinished));
    assert!(
        apply(&mut t, &Event::TaskRetried { at: 7_000 }).is_err(),
        "no retry while siblings may still run"
    );
    for step in [5, 7] {
        apply(&mut t, &Event::CancelSettled { step, at: 7_000 }).unwrap();
    }
    assert!(decide(&t).is_empty() && t.is_settled());
}

#[test]
fn retry_runs_only_the_failed_and_canceled_steps_again() {
    let mut t = branching();
    apply(&mut t, &succeeded(5, 1)).unwrap();
    let failed = Event::StepFailed {
        step: 6,
        prediction_id: Some(pred(6, 1)),
        error: "boom".into(),
        canceled: false,
        at: 6_000,
    };
    apply(&mut t, &failed).unwrap();
    apply(&mut t, &Event::CancelSettled { step: 7, at: 7_000 }).unwrap();
    apply(&mut t, &Event::TaskRetried { at: 8_000 }).unwrap();
    assert_eq!(t.status, TaskStatus::Running);
    assert_eq!(
        t.steps[4].status,
        StepStatus::Succeeded,
        "kept, not paid again"
    );
    assert_eq!(t.steps[4].prediction_id, Some(pred(5, 1)));
    assert_eq!(requests(&t), [6, 7]);
    assert_eq!(
        (t.steps[5].run_from, t.steps[6].run_from),
        (2, 2),
        "the retried steps' retries count from their next attempt"
    );
    for step in [6, 7] {
        apply(&mut t, &requested(step, 2)).unwrap();
        apply(&mut t, &created(step, 2)).unwrap();
        apply(&mut t, &succeeded(step, 2)).unwrap();
    }
    run(&mut t, 8);
    assert_eq!(t.status, TaskStatus::Succeeded);
}

#[test]
fn cancel_stops_every_prediction_in_flight() {
    let mut t = branching();
    let cancel = Event::TaskCanceled {
        reason: "stop".into(),
        at: 6_000,
    };
    apply(&mut t, &cancel).unwrap();
    let steps: Vec<u32> = decide(&t).iter().map(Command::step).collect();
    assert_eq!(steps, [5, 6, 7]);
    assert_eq!(t.steps[7].status, StepStatus::Canceled);
    assert!(!t.steps[7].cancel_pending, "the join had nothing running");
}

#[test]
fn a_fallback_attempt_records_its_model_and_replays_the_same() {
    let events = [
        planned(1, None),
        requested(1, 1),
        created(1, 1),
        Event::AttemptFailed {
            step: 1,
            prediction_id: Some(pred(1, 1)),
            error: "flaky".into(),
            at: 4_000,
        },
        Event::FallbackRequested {
            step: 1,
            attempt: 2,
            input: Json(r#"{"s":1}"#.into()),
            model: "acme/backup".into(),
            at: 4_500,
        },
        created(1, 2),
        succeeded(1, 2),
    ];
    let replay = |events: &[Event]| {
        let mut t = create(TaskId([2; 16]), &events[0]).unwrap();
        for event in &events[1..] {
            apply(&mut t, event).unwrap();
        }
        t
    };
    let t = replay(&events);
    assert_eq!(t.steps[0].model.as_deref(), Some("acme/backup"));
    assert_eq!(t.steps[0].status, StepStatus::Succeeded);
    assert_eq!(replay(&events), t, "replay is deterministic");
    assert_eq!(t.seq, events.len() as u64);
}

#[test]
fn the_first_event_of_either_kind_starts_a_task_and_only_once() {
    let mut t = create(TaskId([3; 16]), &planned(1, None)).unwrap();
    assert_eq!(
        apply(&mut t, &planned(1, None)),
        Err(Ignored::NotFirstEvent)
    );
    assert!(create(TaskId([3; 16]), &requested(1, 1)).is_err());
}

/// Random runs of a pipeline through every event a live engine could journal (intents,
/// predictions, successes, attempt failures, final failures, cancels, settles, retries),
/// each picked among what `decide` allows now: the stage order and the parallel cap always
/// hold, a replay of the events rebuilds the task exactly, and a task succeeds exactly when
/// every step did.
#[test]
fn random_runs_keep_the_stage_order_and_the_cap_and_replay_exactly() {
    use rand::{Rng, SeedableRng};
    for seed in 0..300u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let first = planned(rng.random_range(1..=4), Some(2));
        let mut t = create(TaskId([9; 16]), &first).unwrap();
        let mut events = vec![first];
        for _ in 0..200 {
            let Some(event) = next_event(&t, &mut rng) else {
                break;
            };
            apply(&mut t, &event).unwrap_or_else(|e| panic!("seed {seed}: {event:?}: {e}"));
            events.push(event);
            check_invariants(&t, seed);
        }
        let mut replayed = create(TaskId([9; 16]), &events[0]).unwrap();
        for event in &events[1..] {
            apply(&mut replayed, event).unwrap();
        }
        assert_eq!(replayed, t, "seed {seed}");
    }
}

/// One event a live engine could journal next, picked at random.
fn next_event(t: &Task, rng: &mut impl rand::Rng) -> Option<Event> {
    let at = 10_000;
    if t.status.is_terminal() {
        if let Some(s) = t.steps.iter().find(|s| s.cancel_pending) {
            return Some(Event::CancelSettled { step: s.index, at });
        }
        return (t.status == TaskStatus::Failed && rng.random_bool(0.5))
            .then_some(Event::TaskRetried { at });
    }
    if rng.random_bool(0.03) {
        let reason = "stop".into();
        return Some(Event::TaskCanceled { reason, at });
    }
    let commands = decide(t);
    let command = commands.get(rng.random_range(0..commands.len().max(1)))?;
    let s = t.step(command.step())?;
    let (step, attempt) = (s.index, s.attempt);
    let pid = pred(step, attempt);
    Some(match command {
        Command::Request { .. } => requested(step, attempt + 1),
        Command::EnsurePrediction { .. } => created(step, attempt),
        Command::Watch { .. } => match rng.random_range(0..10) {
            0 => Event::AttemptFailed {
                step,
                prediction_id: Some(pid),
                error: "flaky".into(),
                at,
            },
            1 => Event::StepFailed {
                step,
                prediction_id: Some(pid),
                error: "boom".into(),
                canceled: false,
                at,
            },
            _ => succeeded(step, attempt),
        },
        Command::CancelPrediction { .. } => return None,
    })
}

fn check_invariants(t: &Task, seed: u64) {
    for (k, plan) in t.stages.iter().enumerate() {
        let k = k as u32;
        if plan.parallel {
            assert!(t.running_in_stage(k) <= 2, "seed {seed}: over max_parallel");
        }
        // A step was ever asked for once it has an attempt (a cancel also ends steps that
        // never started).
        let later_asked = t.steps.iter().any(|s| s.stage > k && s.attempt > 0);
        let all_done = t.stage_steps(k).all(|s| s.status == StepStatus::Succeeded);
        assert!(
            !later_asked || all_done,
            "seed {seed}: a step after stage {k} ran before all of it succeeded"
        );
    }
    let all = t.steps.iter().all(|s| s.status == StepStatus::Succeeded);
    assert_eq!(all, t.status == TaskStatus::Succeeded, "seed {seed}");
}
