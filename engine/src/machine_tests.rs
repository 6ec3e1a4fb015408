//! State-machine tests: every transition, and the stale, duplicate and out-of-order events
//! that a poll racing a late answer produces.

use super::*;
use crate::model::Json;

fn created(items: usize) -> Event {
    Event::TaskCreated {
        workflow: "tryon".into(),
        params: Json(r#"{"person_image":"p.png"}"#.into()),
        items: (0..items)
            .map(|i| Json(format!(r#"{{"n":{i}}}"#)))
            .collect(),
        idempotency_key: None,
        at: 1_000,
    }
}

/// The first command `decide` gives: a one-stage task has at most one.
fn next(task: &Task) -> Option<Command> {
    let mut commands = decide(task);
    assert!(commands.len() <= 1, "a chain runs one step at a time");
    commands.pop()
}

fn task(items: usize) -> Task {
    create(TaskId([7; 16]), &created(items)).unwrap()
}

fn requested(step: u32, attempt: u32) -> Event {
    Event::StepRequested {
        step,
        attempt,
        input: Json(format!(r#"{{"s":{step}}}"#)),
        at: 2_000,
    }
}

fn pred(step: u32) -> String {
    format!("pred{step}")
}

fn prediction_created(step: u32) -> Event {
    Event::PredictionCreated {
        step,
        attempt: 1,
        prediction_id: pred(step),
        at: 3_000,
    }
}

fn succeeded(step: u32) -> Event {
    Event::StepSucceeded {
        step,
        prediction_id: pred(step),
        output: Json(format!(r#""out{step}""#)),
        at: 5_000,
    }
}

fn failed(step: u32, canceled: bool) -> Event {
    Event::StepFailed {
        step,
        prediction_id: Some(pred(step)),
        error: "boom".into(),
        canceled,
        at: 6_000,
    }
}

/// Runs step `step` of `task` to success through every intermediate event.
fn run_step(task: &mut Task, step: u32) {
    apply(task, &requested(step, 1)).unwrap();
    apply(task, &prediction_created(step)).unwrap();
    let started = Event::PredictionStarted {
        step,
        prediction_id: pred(step),
        at: 4_000,
    };
    apply(task, &started).unwrap();
    apply(task, &succeeded(step)).unwrap();
}

#[test]
fn a_new_task_is_pending_at_step_zero_and_asks_for_its_first_step() {
    let t = task(3);
    assert_eq!(t.status, TaskStatus::Pending);
    assert_eq!(t.current_step(), 0);
    assert_eq!(t.seq, 1);
    assert_eq!(next(&t), Some(Command::Request { step: 1 }));
}

#[test]
fn only_task_created_can_create_a_task() {
    assert_eq!(
        create(TaskId([1; 16]), &requested(1, 1)),
        Err(Ignored::NotFirstEvent)
    );
    let mut t = task(1);
    assert_eq!(apply(&mut t, &created(1)), Err(Ignored::NotFirstEvent));
}

#[test]
fn a_requested_step_runs_the_task_and_asks_to_ensure_its_prediction() {
    let mut t = task(2);
    apply(&mut t, &requested(1, 1)).unwrap();
    assert_eq!(t.status, TaskStatus::Running);
    assert_eq!(t.current_step(), 1);
    assert_eq!(t.steps[0].status, StepStatus::Starting);
    assert_eq!(t.steps[0].started_at, Some(2_000));
    assert_eq!(
        next(&t),
        Some(Command::EnsurePrediction {
            step: 1,
            attempt: 1,
            input: Json(r#"{"s":1}"#.into())
        })
    );
}

#[test]
fn a_created_prediction_is_watched_through_processing() {
    let mut t = task(2);
    apply(&mut t, &requested(1, 1)).unwrap();
    apply(&mut t, &prediction_created(1)).unwrap();
    let watch = Some(Command::Watch {
        step: 1,
        prediction_id: pred(1),
    });
    assert_eq!(next(&t), watch);
    apply(
        &mut t,
        &Event::PredictionStarted {
            step: 1,
            prediction_id: pred(1),
            at: 4_000,
        },
    )
    .unwrap();
    assert_eq!(t.steps[0].status, StepStatus::Processing);
    assert_eq!(next(&t), watch);
}

#[test]
fn a_succeeded_step_moves_on_to_the_next_one() {
    let mut t = task(3);
    run_step(&mut t, 1);
    assert_eq!(t.steps[0].output, Some(Json(r#""out1""#.into())));
    assert_eq!(t.status, TaskStatus::Running);
    assert_eq!(t.current_step(), 1, "step 2 has not started yet");
    assert_eq!(next(&t), Some(Command::Request { step: 2 }));
    apply(&mut t, &requested(2, 1)).unwrap();
    assert_eq!(t.current_step(), 2);
}

#[test]
fn the_last_success_ends_the_task_with_its_output() {
    let mut t = task(3);
    for step in 1..=3 {
        run_step(&mut t, step);
    }
    assert_eq!(t.status, TaskStatus::Succeeded);
    assert_eq!(t.output, Some(Json(r#""out3""#.into())));
    assert_eq!(t.completed_at, Some(5_000));
    assert_eq!(t.current_step(), 3);
    assert_eq!(t.completed_steps(), 3);
    assert_eq!(t.seq, 1 + 3 * 4);
    assert_eq!(next(&t), None);
}

#[test]
fn a_failed_prediction_fails_the_task_with_the_steps_error() {
    let mut t = task(3);
    run_step(&mut t, 1);
    apply(&mut t, &requested(2, 1)).unwrap();
    apply(&mut t, &prediction_created(2)).unwrap();
    apply(&mut t, &failed(2, false)).unwrap();
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.steps[1].status, StepStatus::Failed);
    assert_eq!(t.error.as_deref(), Some("step 2: boom"));
    assert_eq!(t.current_step(), 2);
    assert_eq!(next(&t), None);
}

#[test]
fn a_canceled_prediction_fails_the_task_and_marks_the_step_canceled() {
    let mut t = task(1);
    apply(&mut t, &requested(1, 1)).unwrap();
    apply(&mut t, &prediction_created(1)).unwrap();
    apply(&mut t, &failed(1, true)).unwrap();
    assert_eq!(t.steps[0].status, StepStatus::Canceled);
    assert_eq!(t.status, TaskStatus::Failed);
}

#[test]
fn a_step_can_fail_before_any_prediction_exists() {
    let mut t = task(2);
    let no_input = Event::StepFailed {
        step: 1,
        prediction_id: None,
        error: "bad".into(),
        canceled: false,
        at: 9,
    };
    apply(&mut t, &no_input).unwrap();
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.current_step(), 1);
}

#[test]
fn results_for_another_prediction_are_ignored() {
    let mut t = task(2);
    apply(&mut t, &requested(1, 1)).unwrap();
    apply(&mut t, &prediction_created(1)).unwrap();
    let before = t.clone();
    let other = Event::StepSucceeded {
        step: 1,
        prediction_id: "someone-else".into(),
        output: Json("1".into()),
        at: 9,
    };
    assert_eq!(apply(&mut t, &other), Err(Ignored::Stale { step: 1 }));
    let failed_without_id = Event::StepFailed {
        step: 1,
        prediction_id: None,
        error: "x".into(),
        canceled: false,
        at: 9,
    };
    assert_eq!(
        apply(&mut t, &failed_without_id),
        Err(Ignored::Stale { step: 1 })
    );
    assert_eq!(t, before, "an ignored event changes nothing");
}

#[test]
fn a_duplicate_result_is_ignored() {
    let mut t = task(2);
    run_step(&mut t, 1);
    let before = t.clone();
    assert!(matches!(
        apply(&mut t, &succeeded(1)),
        Err(Ignored::WrongState { step: 1, .. })
    ));
    assert!(matches!(
        apply(&mut t, &failed(1, false)),
        Err(Ignored::WrongState { step: 1, .. })
    ));
    assert_eq!(t, before);
}

#[test]
fn a_late_processing_after_success_is_ignored() {
    let mut t = task(2);
    run_step(&mut t, 1);
    let late = Event::PredictionStarted {
        step: 1,
        prediction_id: pred(1),
        at: 9,
    };
    assert!(matches!(
        apply(&mut t, &late),
        Err(Ignored::WrongState { .. })
    ));
}

#[test]
fn a_result_that_arrives_before_processing_is_accepted() {
    let mut t = task(1);
    apply(&mut t, &requested(1, 1)).unwrap();
    apply(&mut t, &prediction_created(1)).unwrap();
    apply(&mut t, &succeeded(1)).unwrap();
    assert_eq!(t.status, TaskStatus::Succeeded);
}

#[test]
fn a_second_prediction_id_for_the_same_attempt_is_ignored() {
    let mut t = task(1);
    apply(&mut t, &requested(1, 1)).unwrap();
    apply(&mut t, &prediction_created(1)).unwrap();
    let again = Event::PredictionCreated {
        step: 1,
        attempt: 1,
        prediction_id: "dup".into(),
        at: 9,
    };
    assert_eq!(apply(&mut t, &again), Err(Ignored::Stale { step: 1 }));
    assert_eq!(t.steps[0].prediction_id.as_deref(), Some("pred1"));
}

#[test]
fn steps_cannot_run_out_of_order() {
    let mut t = task(3);
    assert!(matches!(
        apply(&mut t, &requested(2, 1)),
        Err(Ignored::WrongState { step: 2, .. })
    ));
    assert_eq!(apply(&mut t, &requested(9, 1)), Err(Ignored::NoSuchStep(9)));
    assert_eq!(
        apply(&mut t, &requested(1, 2)),
        Err(Ignored::Stale { step: 1 }),
        "attempts count from 1"
    );
    apply(&mut t, &requested(1, 1)).unwrap();
    assert!(matches!(
        apply(&mut t, &requested(1, 2)),
        Err(Ignored::WrongState { .. })
    ));
}

#[test]
fn a_finished_task_ignores_everything() {
    let mut t = task(1);
    run_step(&mut t, 1);
    for event in [requested(1, 2), prediction_created(1), failed(1, false)] {
        assert_eq!(apply(&mut t, &event), Err(Ignored::TaskFinished));
    }
}

#[test]
fn replaying_the_events_rebuilds_the_same_task() {
    let mut live = task(2);
    let mut events = vec![];
    for step in 1..=2 {
        for e in [
            requested(step, 1),
            prediction_created(step),
            succeeded(step),
        ] {
            apply(&mut live, &e).unwrap();
            events.push(e);
        }
    }
    let mut replayed = create(TaskId([7; 16]), &created(2)).unwrap();
    for e in &events {
        apply(&mut replayed, e).unwrap();
    }
    assert_eq!(replayed, live);
}

fn cancel(reason: &str) -> Event {
    Event::TaskCanceled {
        reason: reason.into(),
        at: 7_000,
    }
}

#[test]
fn a_failed_attempt_sends_the_step_back_to_pending_for_a_new_attempt() {
    let mut t = task(2);
    apply(&mut t, &requested(1, 1)).unwrap();
    apply(&mut t, &prediction_created(1)).unwrap();
    let failed = Event::AttemptFailed {
        step: 1,
        prediction_id: Some(pred(1)),
        error: "oom".into(),
        at: 6,
    };
    apply(&mut t, &failed).unwrap();
    assert_eq!(t.status, TaskStatus::Running);
    assert_eq!(t.steps[0].status, StepStatus::Pending);
    assert_eq!(t.steps[0].error.as_deref(), Some("oom"));
    assert_eq!(t.steps[0].prediction_id, None);
    assert_eq!(next(&t), Some(Command::Request { step: 1 }));
    assert_eq!(
        apply(&mut t, &requested(1, 1)),
        Err(Ignored::Stale { step: 1 }),
        "attempt 1 is spent"
    );
    apply(&mut t, &requested(1, 2)).unwrap();
    assert_eq!(t.steps[0].attempt, 2);
    assert_eq!(t.steps[0].error, None);
    let late = Event::StepSucceeded {
        step: 1,
        prediction_id: pred(1),
        output: Json("1".into()),
        at: 9,
    };
    assert_eq!(
        apply(&mut t, &late),
        Err(Ignored::Stale { step: 1 }),
        "attempt 1's result is stale"
    );
}

#[test]
fn canceling_a_running_task_marks_the_prediction_for_cancel_at_replicate() {
    let mut t = task(3);
    run_step(&mut t, 1);
    apply(&mut t, &requested(2, 1)).unwrap();
    apply(&mut t, &prediction_created(2)).unwrap();
    apply(&mut t, &cancel("canceled by request")).unwrap();
    assert_eq!(t.status, TaskStatus::Canceled);
    assert_eq!(t.error.as_deref(), Some("canceled by request"));
    let statuses: Vec<StepStatus> = t.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        vec![
            StepStatus::Succeeded,
            StepStatus::Canceled,
            StepStatus::Canceled
        ]
    );
    assert!(t.steps[1].cancel_pending && !t.steps[2].cancel_pending);
    assert!(!t.is_settled());
    assert_eq!(
        next(&t),
        Some(Command::CancelPrediction {
            step: 2,
            attempt: 1,
            prediction_id: Some(pred(2)),
            input: Some(Json(r#"{"s":2}"#.into()))
        })
    );
    apply(&mut t, &Event::CancelSettled { step: 2, at: 8 }).unwrap();
    assert!(t.is_settled());
    assert_eq!(next(&t), None);
    assert_eq!(
        apply(&mut t, &Event::CancelSettled { step: 2, at: 9 }),
        Err(Ignored::TaskFinished)
    );
}

#[test]
fn a_prediction_created_after_the_cancel_is_recorded_so_it_can_be_canceled() {
    let mut t = task(1);
    apply(&mut t, &requested(1, 1)).unwrap();
    apply(&mut t, &cancel("stop")).unwrap();
    assert!(matches!(
        next(&t),
        Some(Command::CancelPrediction {
            prediction_id: None,
            ..
        })
    ));
    apply(&mut t, &prediction_created(1)).unwrap();
    assert!(matches!(
        next(&t),
        Some(Command::CancelPrediction {
            prediction_id: Some(_),
            ..
        })
    ));
    let result = Event::StepSucceeded {
        step: 1,
        prediction_id: pred(1),
        output: Json("1".into()),
        at: 9,
    };
    assert_eq!(
        apply(&mut t, &result),
        Err(Ignored::TaskFinished),
        "a canceled task stays canceled"
    );
}

#[test]
fn canceling_a_pending_task_needs_nothing_from_replicate() {
    let mut t = task(2);
    apply(&mut t, &cancel("stop")).unwrap();
    assert!(t.is_settled());
    assert_eq!(t.current_step(), 1);
    assert_eq!(apply(&mut t, &cancel("again")), Err(Ignored::TaskFinished));
}

#[test]
fn a_retried_task_runs_again_from_its_failed_step_and_keeps_earlier_outputs() {
    let mut t = task(3);
    run_step(&mut t, 1);
    apply(&mut t, &requested(2, 1)).unwrap();
    apply(&mut t, &prediction_created(2)).unwrap();
    apply(&mut t, &failed(2, false)).unwrap();
    apply(&mut t, &Event::TaskRetried { at: 10 }).unwrap();
    assert_eq!(t.status, TaskStatus::Running);
    assert_eq!((t.error.clone(), t.completed_at), (None, None));
    assert_eq!(t.steps[0].output, Some(Json(r#""out1""#.into())));
    assert_eq!(t.steps[1].status, StepStatus::Pending);
    assert_eq!(next(&t), Some(Command::Request { step: 2 }));
    apply(&mut t, &requested(2, 2)).unwrap();
    assert_eq!(t.steps[1].attempt, 2);
}

#[test]
fn only_a_failed_task_can_be_retried() {
    let mut running = task(1);
    assert_eq!(
        apply(&mut running, &Event::TaskRetried { at: 1 }),
        Err(Ignored::NotFinished)
    );
    let mut done = task(1);
    run_step(&mut done, 1);
    assert_eq!(
        apply(&mut done, &Event::TaskRetried { at: 1 }),
        Err(Ignored::TaskFinished)
    );
    let mut canceled = task(1);
    apply(&mut canceled, &cancel("x")).unwrap();
    assert_eq!(
        apply(&mut canceled, &Event::TaskRetried { at: 1 }),
        Err(Ignored::TaskFinished)
    );
}

#[test]
fn create_marks_widen_the_attempts_send_window_and_a_new_attempt_starts_without_one() {
    let mut task = task(1);
    apply(&mut task, &requested(1, 1)).unwrap();
    assert_eq!(
        task.steps[0].sent, None,
        "an intent alone never reached Replicate"
    );
    for at in [2_100, 2_500] {
        apply(
            &mut task,
            &Event::CreateSent {
                step: 1,
                attempt: 1,
                at,
            },
        )
        .unwrap();
    }
    assert_eq!(
        task.steps[0].sent,
        Some(crate::model::SendWindow {
            first: 2_100,
            last: 2_500
        })
    );
    let stale = Event::CreateSent {
        step: 1,
        attempt: 2,
        at: 2_600,
    };
    assert_eq!(apply(&mut task, &stale), Err(Ignored::Stale { step: 1 }));
    let failed = Event::AttemptFailed {
        step: 1,
        prediction_id: None,
        error: "reset".into(),
        at: 2_700,
    };
    apply(&mut task, &failed).unwrap();
    apply(&mut task, &requested(1, 2)).unwrap();
    assert_eq!(
        task.steps[0].sent, None,
        "the new attempt has sent nothing yet"
    );
    apply(
        &mut task,
        &Event::PredictionCreated {
            step: 1,
            attempt: 2,
            prediction_id: pred(1),
            at: 2_800,
        },
    )
    .unwrap();
    let late = Event::CreateSent {
        step: 1,
        attempt: 2,
        at: 2_900,
    };
    assert_eq!(
        apply(&mut task, &late),
        Err(Ignored::Stale { step: 1 }),
        "nothing is sent once the prediction is known"
    );
}
