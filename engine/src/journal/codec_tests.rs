//! Envelope round trips, corruption detection, and golden fixtures: bytes written by this
//! version (committed under `engine/tests/fixtures/`) must stay readable by every later one.

use super::*;
use crate::model::{Json, Step, StepStatus, TaskId, TaskStatus};

fn sample_task() -> Task {
    let mut step = Step::new(1, Json(r#"{"garment_image":"a.png"}"#.into()), 0, Some(0));
    step.status = StepStatus::Succeeded;
    step.input = Some(Json(r#"{"garm_img":"a.png"}"#.into()));
    step.attempt = 1;
    step.prediction_id = Some("gm3qorzdhgbfurvjtvhg6dckhu".into());
    step.output = Some(Json(r#""https://x/out.png""#.into()));
    step.started_at = Some(1_764_000_001_000);
    step.completed_at = Some(1_764_000_002_000);
    Task {
        id: TaskId([0xab; 16]),
        workflow: "tryon".into(),
        status: TaskStatus::Running,
        params: Json(r#"{"person_image":"p.png"}"#.into()),
        steps: vec![step, Step::new(2, Json("{}".into()), 0, Some(1))],
        output: None,
        error: None,
        idempotency_key: Some("key-1".into()),
        created_at: 1_764_000_000_000,
        updated_at: 1_764_000_002_000,
        completed_at: None,
        seq: 5,
        stages: vec![crate::model::StagePlan::legacy(None)],
    }
}

fn sample_events() -> Vec<Event> {
    vec![
        Event::TaskCreated {
            workflow: "tryon".into(),
            params: Json("{}".into()),
            items: vec![Json("{}".into())],
            idempotency_key: None,
            at: 1,
        },
        Event::StepRequested {
            step: 1,
            attempt: 1,
            input: Json("{}".into()),
            at: 2,
        },
        Event::PredictionCreated {
            step: 1,
            attempt: 1,
            prediction_id: "p".into(),
            at: 3,
        },
        Event::PredictionStarted {
            step: 1,
            prediction_id: "p".into(),
            at: 4,
        },
        Event::StepSucceeded {
            step: 1,
            prediction_id: "p".into(),
            output: Json("1".into()),
            at: 5,
        },
        Event::StepFailed {
            step: 1,
            prediction_id: None,
            error: "e".into(),
            canceled: true,
            at: 6,
        },
        Event::AttemptFailed {
            step: 1,
            prediction_id: Some("p".into()),
            error: "e".into(),
            at: 7,
        },
        Event::TaskCanceled {
            reason: "r".into(),
            at: 8,
        },
        Event::CancelSettled { step: 1, at: 9 },
        Event::TaskRetried { at: 10 },
        Event::OutputsKept {
            step: 1,
            prediction_id: "p".into(),
            kept_output: Json("2".into()),
            at: 11,
        },
    ]
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn records_round_trip() {
    let task = sample_task();
    assert_eq!(decode_task(&encode_task(&task)).unwrap(), task);
    for event in sample_events() {
        assert_eq!(decode_event(&encode_event(&event)).unwrap(), event);
    }
}

#[test]
fn every_flipped_bit_is_caught() {
    let bytes = encode_task(&sample_task());
    for i in 0..bytes.len() * 8 {
        let mut damaged = bytes.clone();
        damaged[i / 8] ^= 1 << (i % 8);
        assert!(decode_task(&damaged).is_err(), "bit {i} flipped unnoticed");
    }
}

#[test]
fn truncated_and_mistyped_records_are_errors() {
    let bytes = encode_task(&sample_task());
    assert_eq!(decode_task(&bytes[..5]), Err(CodecError::TooShort(5)));
    assert_eq!(
        decode_task(&bytes[..bytes.len() - 1]),
        Err(CodecError::Checksum)
    );
    let event = encode_event(&sample_events()[0]);
    assert_eq!(
        decode_task(&event),
        Err(CodecError::Schema {
            found: 2,
            expected: 7
        })
    );
}

/// Today's sample: schema 2 adds `kept_output`.
fn sample_task_v2() -> Task {
    let mut task = sample_task();
    task.steps[0].kept_output = Some(Json(r#""https://stepwise/v1/files/t/1/out.png""#.into()));
    task
}

#[test]
fn golden_task_v1_still_decodes_and_converts_forward() {
    let bytes = hex::decode(fixture("task_v1.hex").trim()).unwrap();
    let task = decode_task(&bytes).unwrap();
    assert_eq!(
        task,
        sample_task(),
        "a schema-1 step reads with no kept output"
    );
    assert!(task.steps.iter().all(|s| s.kept_output.is_none()));
}

#[test]
fn golden_task_v2_still_decodes() {
    let bytes = hex::decode(fixture("task_v2.hex").trim()).unwrap();
    assert_eq!(decode_task(&bytes).unwrap(), sample_task_v2());
}

/// Today's sample: schema 3 adds `sent`.
fn sample_task_v3() -> Task {
    let mut task = sample_task_v2();
    task.steps[0].sent = Some(crate::model::SendWindow {
        first: 12,
        last: 15,
    });
    task
}

#[test]
fn golden_task_v3_still_decodes() {
    let bytes = hex::decode(fixture("task_v3.hex").trim()).unwrap();
    assert_eq!(decode_task(&bytes).unwrap(), sample_task_v3());
}

/// Today's sample: schema 4 adds stages (`Task::stages`; a step's stage, item index,
/// fallback model and `run_from`).
fn sample_task_v4() -> Task {
    use crate::model::StagePlan;
    let stage = |name: &str, each, parallel, max_parallel| StagePlan {
        name: name.into(),
        model: Some(format!("acme/{name}")),
        each,
        parallel,
        max_parallel,
    };
    let mut task = sample_task_v3();
    task.workflow = "lookbook".into();
    task.stages = vec![
        stage("cutout", false, false, None),
        stage("tryon", true, false, None),
        stage("variants", true, true, Some(2)),
    ];
    let items = [Json(r#"{"seed":1}"#.into()), Json(r#"{"seed":2}"#.into())];
    let mut steps = crate::model::layout(&task.stages, &items);
    steps[0] = task.steps[0].clone();
    steps[0].item = Json("null".into());
    steps[0].item_index = None;
    steps[1].model = Some("acme/tryon-fallback".into());
    steps[1].attempt = 3;
    steps[1].run_from = 2;
    task.steps = steps;
    task
}

#[test]
fn golden_task_v4_still_decodes() {
    let bytes = hex::decode(fixture("task_v4.hex").trim()).unwrap();
    let task = decode_task(&bytes).unwrap();
    assert_eq!(task, sample_task_v4());
    let shape: Vec<(u32, Option<u32>)> =
        task.steps.iter().map(|s| (s.stage, s.item_index)).collect();
    assert_eq!(
        shape,
        [
            (0, None),
            (1, Some(0)),
            (1, Some(1)),
            (2, Some(0)),
            (2, Some(1))
        ]
    );
}

#[test]
fn a_task_without_stages_reads_as_one_chained_stage() {
    let bytes = hex::decode(fixture("task_v3.hex").trim()).unwrap();
    let task = decode_task(&bytes).unwrap();
    assert_eq!(task.stages, [crate::model::StagePlan::legacy(None)]);
    let shape: Vec<(u32, Option<u32>, u32)> = task
        .steps
        .iter()
        .map(|s| (s.stage, s.item_index, s.run_from))
        .collect();
    assert_eq!(shape, [(0, Some(0), 1), (0, Some(1), 1)]);
}

/// The events of a task with stages.
fn pipeline_events() -> Vec<Event> {
    vec![
        Event::TaskPlanned {
            workflow: "lookbook".into(),
            params: Json(r#"{"person_image":"p.png"}"#.into()),
            items: vec![Json(r#"{"seed":1}"#.into())],
            stages: sample_task_v4().stages,
            idempotency_key: Some("k".into()),
            at: 21,
        },
        Event::FallbackRequested {
            step: 2,
            attempt: 3,
            input: Json(r#"{"image":"a.png"}"#.into()),
            model: "acme/tryon-fallback".into(),
            at: 22,
        },
    ]
}

#[test]
fn golden_pipeline_events_still_decode() {
    let decoded: Vec<Event> = fixture("events_pipeline_v1.hex")
        .lines()
        .map(|line| decode_event(&hex::decode(line).unwrap()).unwrap())
        .collect();
    assert_eq!(decoded, pipeline_events());
}

fn create_sent() -> Event {
    Event::CreateSent {
        step: 2,
        attempt: 3,
        at: 17,
    }
}

#[test]
fn golden_create_sent_event_still_decodes() {
    let bytes = hex::decode(fixture("event_create_sent_v1.hex").trim()).unwrap();
    assert_eq!(decode_event(&bytes).unwrap(), create_sent());
}

#[test]
fn golden_events_v1_still_decode() {
    let decoded: Vec<Event> = fixture("events_v1.hex")
        .lines()
        .map(|line| decode_event(&hex::decode(line).unwrap()).unwrap())
        .collect();
    assert_eq!(decoded, sample_events());
}

#[test]
fn sealed_records_round_trip_and_catch_damage() {
    let bytes = encode_sealed(3, &sample_events());
    assert_eq!(decode_sealed(&bytes).unwrap(), (3, sample_events()));
    let mut flipped = bytes.clone();
    flipped[5] ^= 0x10;
    assert_eq!(decode_sealed(&flipped), Err(CodecError::Checksum));
    assert!(matches!(
        decode_sealed(&encode_event(&sample_events()[0])),
        Err(CodecError::Schema { .. })
    ));
}

#[test]
fn event_runs_round_trip_and_single_events_read_as_runs_of_one() {
    let events = sample_events();
    let refs: Vec<&Event> = events.iter().collect();
    let bytes = encode_event_run(&refs);
    assert_eq!(decode_events(&bytes).unwrap(), events);
    assert_eq!(
        decode_events(&encode_event(&events[3])).unwrap(),
        vec![events[3].clone()]
    );
    let mut flipped = bytes.clone();
    flipped[9] ^= 0x04;
    assert_eq!(decode_events(&flipped), Err(CodecError::Checksum));
    assert!(matches!(
        decode_events(&encode_task(&sample_task())),
        Err(CodecError::Schema { .. })
    ));
}

#[test]
fn golden_event_run_v1_still_decodes() {
    let bytes = hex::decode(fixture("event_run_v1.hex").trim()).unwrap();
    assert_eq!(decode_events(&bytes).unwrap(), sample_events());
}

#[test]
fn golden_sealed_v1_still_decodes() {
    let bytes = hex::decode(fixture("sealed_v1.hex").trim()).unwrap();
    assert_eq!(decode_sealed(&bytes).unwrap(), (1, sample_events()));
}

/// Writes the fixtures; run once per new schema with
/// `STEPWISE_WRITE_FIXTURES=1 cargo test -p stepwise-engine golden`, then commit them.
#[test]
fn golden_fixtures_writer() {
    if std::env::var_os("STEPWISE_WRITE_FIXTURES").is_none() {
        return;
    }
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    // Schemas 1 to 3 can no longer be written; their fixtures are frozen in the repository.
    std::fs::write(
        format!("{dir}/task_v4.hex"),
        hex::encode(encode_task(&sample_task_v4())),
    )
    .unwrap();
    let events: Vec<String> = pipeline_events()
        .iter()
        .map(|e| hex::encode(encode_event(e)))
        .collect();
    std::fs::write(format!("{dir}/events_pipeline_v1.hex"), events.join("\n")).unwrap();
    std::fs::write(
        format!("{dir}/event_create_sent_v1.hex"),
        hex::encode(encode_event(&create_sent())),
    )
    .unwrap();
    let events: Vec<String> = sample_events()
        .iter()
        .map(|e| hex::encode(encode_event(e)))
        .collect();
    std::fs::write(format!("{dir}/events_v1.hex"), events.join("\n")).unwrap();
    std::fs::write(
        format!("{dir}/sealed_v1.hex"),
        hex::encode(encode_sealed(1, &sample_events())),
    )
    .unwrap();
    let events = sample_events();
    let run: Vec<&Event> = events.iter().collect();
    std::fs::write(
        format!("{dir}/event_run_v1.hex"),
        hex::encode(encode_event_run(&run)),
    )
    .unwrap();
}
