//! The runtime's decisions for a task with stages: branches created at once within the
//! caps, the join's input, a failing branch canceling its siblings, the fallback model.

use super::*;

const LOOKBOOK: &str = r#"
    max_items = 5
    [[stages]]
    name = "cutout"
    model = "acme/rembg"
    [stages.input]
    image = "{{params.person}}"
    [[stages]]
    name = "variants"
    model = "acme/variant"
    each = "item"
    parallel = true
    step_retries = 1
    fallback_model = "acme/variant-old"
    [stages.input]
    image = "{{previous.output}}"
    seed = "{{item.seed}}"
    [[stages]]
    name = "sheet"
    model = "acme/grid"
    [stages.input]
    images = "{{stages.variants.outputs}}"
    cutout = "{{stages.cutout.output}}"
"#;

fn start(rig: &mut Rig, seeds: &[u32]) -> TaskId {
    let _context = rig.tokio.enter();
    let request = StartRequest {
        workflow: "lookbook".into(),
        params: json!({"person": "me.png"}),
        items: seeds.iter().map(|seed| json!({ "seed": seed })).collect(),
        idempotency_key: None,
    };
    let (reply, answer) = oneshot::channel();
    rig.runtime.handle(Msg::Start {
        start: PreparedStart::new(request, None),
        reply,
    });
    rig.runtime.commit_now();
    answer.blocking_recv().unwrap().expect("started").task.id
}

/// Creates of the effects, as (step, input).
fn creates(effects: &[Effect]) -> Vec<(u32, serde_json::Value)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Create { step, call, .. } => Some((*step, call.input.clone())),
            _ => None,
        })
        .collect()
}

fn ended(id: TaskId, step: u32, attempt: u32, status: &str, output: serde_json::Value) -> Msg {
    Msg::Checked {
        id,
        step,
        prediction_id: format!("p{step}-{attempt}"),
        result: Ok(prediction(&format!("p{step}-{attempt}"), status, output)),
    }
}

fn made(id: TaskId, step: u32, attempt: u32) -> Msg {
    Msg::Created {
        id,
        step,
        attempt,
        result: Ok(Ensured::Created(prediction(
            &format!("p{step}-{attempt}"),
            "processing",
            json!(null),
        ))),
        searched: false,
    }
}

/// Runs the cutout to success and returns the effects that follow (the branches' creates).
fn past_cutout(rig: &mut Rig, id: TaskId) -> Vec<Effect> {
    assert_eq!(creates(&rig.take()), [(1, json!({"image": "me.png"}))]);
    rig.send(made(id, 1, 1));
    rig.take();
    rig.send(ended(id, 1, 1, "succeeded", json!("cut.png")));
    rig.take()
}

#[test]
fn parallel_branches_are_created_at_once_and_the_join_gets_every_output() {
    let mut rig = Rig::with_workflow("lookbook", LOOKBOOK, None, false);
    let id = start(&mut rig, &[7, 8, 9]);
    let branches = creates(&past_cutout(&mut rig, id));
    assert_eq!(
        branches,
        [
            (2, json!({"image": "cut.png", "seed": 7})),
            (3, json!({"image": "cut.png", "seed": 8})),
            (4, json!({"image": "cut.png", "seed": 9})),
        ]
    );
    for step in 2..=4 {
        rig.send(made(id, step, 1));
    }
    rig.take();
    // Branches end out of order; the join waits for the last.
    for step in [4, 2] {
        rig.send(ended(
            id,
            step,
            1,
            "succeeded",
            json!(format!("v{step}.png")),
        ));
        assert!(creates(&rig.take()).is_empty(), "the join waits");
    }
    rig.send(ended(id, 3, 1, "succeeded", json!("v3.png")));
    assert_eq!(
        creates(&rig.take()),
        [(
            5,
            json!({"images": ["v2.png", "v3.png", "v4.png"], "cutout": "cut.png"})
        )]
    );
}

#[test]
fn max_in_flight_counts_predictions_so_branches_wait_for_slots() {
    let mut rig = Rig::with_workflow("lookbook", LOOKBOOK, Some(2), false);
    let id = start(&mut rig, &[1, 2, 3]);
    let branches = creates(&past_cutout(&mut rig, id));
    assert_eq!(
        branches.iter().map(|(step, _)| *step).collect::<Vec<_>>(),
        [2, 3],
        "two slots: two branches"
    );
    let other = start(&mut rig, &[4]);
    assert!(creates(&rig.take()).is_empty(), "a new task waits too");
    rig.send(made(id, 2, 1));
    rig.send(made(id, 3, 1));
    rig.take();
    rig.send(ended(id, 2, 1, "succeeded", json!("v2.png")));
    assert_eq!(
        creates(&rig.take())
            .iter()
            .map(|(s, _)| *s)
            .collect::<Vec<_>>(),
        [4],
        "the freed slot goes to the running task's waiting branch first"
    );
    assert_eq!(rig.runtime.queue_view().position(&other), Some(1));
}

#[test]
fn a_failed_branch_cancels_its_running_siblings_and_no_later_stage_runs() {
    let mut rig = Rig::with_workflow("lookbook", LOOKBOOK, None, false);
    let id = start(&mut rig, &[1, 2]);
    past_cutout(&mut rig, id);
    rig.send(made(id, 2, 1));
    rig.send(made(id, 3, 1));
    rig.take();
    // Attempt 1 fails, the retry fails, the fallback fails: the branch fails.
    rig.send(ended(id, 2, 1, "failed", json!(null)));
    assert_eq!(
        creates(&rig.take()).len(),
        1,
        "a retry on the stage's model"
    );
    rig.send(made(id, 2, 2));
    rig.take();
    rig.send(ended(id, 2, 2, "failed", json!(null)));
    let fallback = rig.take();
    let [Effect::Create {
        call, attempt: 3, ..
    }] = fallback.as_slice()
    else {
        panic!("one create on the fallback: {fallback:?}");
    };
    assert_eq!(
        call.target,
        crate::workflow::Target::Model("acme/variant-old".into())
    );
    assert_eq!(
        call.input,
        json!({"image": "cut.png", "seed": 1}),
        "the same input"
    );
    assert_eq!(
        rig.task(id).steps[1].model.as_deref(),
        Some("acme/variant-old")
    );
    rig.send(made(id, 2, 3));
    rig.take();
    rig.send(ended(id, 2, 3, "failed", json!(null)));
    let task = rig.task(id);
    assert_eq!(task.status, crate::model::TaskStatus::Failed);
    let cancels: Vec<(u32, Option<String>)> = rig
        .take()
        .into_iter()
        .filter_map(|e| match e {
            Effect::Cancel {
                step,
                prediction_id,
                ..
            } => Some((step, prediction_id)),
            Effect::Create { .. } => panic!("nothing is created after a failure"),
            _ => None,
        })
        .collect();
    assert_eq!(cancels, [(3, Some("p3-1".to_owned()))]);
}

#[test]
fn a_fallback_that_succeeds_records_its_model_on_the_step() {
    let mut rig = Rig::with_workflow("lookbook", LOOKBOOK, None, false);
    let id = start(&mut rig, &[1]);
    past_cutout(&mut rig, id);
    rig.send(made(id, 2, 1));
    rig.send(ended(id, 2, 1, "failed", json!(null)));
    rig.take();
    rig.send(made(id, 2, 2));
    rig.send(ended(id, 2, 2, "failed", json!(null)));
    rig.take();
    rig.send(made(id, 2, 3));
    rig.send(ended(id, 2, 3, "succeeded", json!("v.png")));
    let task = rig.task(id);
    let step = &task.steps[1];
    assert_eq!(
        (step.status, step.model.as_deref(), step.attempt),
        (
            crate::model::StepStatus::Succeeded,
            Some("acme/variant-old"),
            3
        )
    );
    assert_eq!(creates(&rig.take())[0].0, 3, "the sheet runs next");
}

#[test]
fn a_cancel_while_a_branch_is_being_checked_stops_it_when_the_check_is_back() {
    let mut rig = Rig::with_workflow("lookbook", LOOKBOOK, None, false);
    let id = start(&mut rig, &[1, 2]);
    past_cutout(&mut rig, id);
    rig.send(made(id, 2, 1));
    rig.send(made(id, 3, 1));
    rig.take();
    {
        let _context = rig.tokio.enter();
        rig.runtime.on_due(id, 3);
        rig.runtime.run_effects();
    }
    assert!(matches!(
        rig.take().as_slice(),
        [Effect::Check { step: 3, .. }]
    ));
    let (reply, answer) = oneshot::channel();
    rig.send(Msg::Cancel { id, reply });
    answer.blocking_recv().unwrap().expect("canceled");
    let cancels = |effects: Vec<Effect>| -> Vec<u32> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Cancel { step, .. } => Some(*step),
                Effect::Schedule { step, .. } => panic!("step {step} waits for a timer"),
                _ => None,
            })
            .collect()
    };
    assert_eq!(cancels(rig.take()), [2], "step 3's check is still out");
    rig.send(ended(id, 3, 1, "processing", json!(null)));
    assert_eq!(
        cancels(rig.take()),
        [3],
        "canceled as soon as its check is back, not at its next poll"
    );
}

#[test]
fn a_create_refused_outright_goes_to_the_fallback_at_once_and_the_fallback_is_the_last_try() {
    let mut rig = Rig::with_workflow("lookbook", LOOKBOOK, None, false);
    let id = start(&mut rig, &[1]);
    past_cutout(&mut rig, id);
    let refused = Msg::Created {
        id,
        step: 2,
        attempt: 1,
        result: Err(ClientError::Final {
            status: 422,
            detail: "Invalid version or not permitted".into(),
        }),
        searched: false,
    };
    rig.send(refused);
    let effects = rig.take();
    let [Effect::Create {
        step: 2,
        attempt: 2,
        call,
        ..
    }] = effects.as_slice()
    else {
        panic!("one create on the fallback, not a retry on the refused model: {effects:?}");
    };
    assert_eq!(
        call.target,
        crate::workflow::Target::Model("acme/variant-old".into())
    );
    // The fallback's prediction fails: no retry (one was left on the stage's own model).
    rig.send(made(id, 2, 2));
    rig.take();
    rig.send(ended(id, 2, 2, "failed", json!(null)));
    assert_eq!(rig.task(id).status, crate::model::TaskStatus::Failed);
    assert!(creates(&rig.take()).is_empty());
}

#[test]
fn each_branch_times_out_on_its_stages_own_step_timeout() {
    const TIMED: &str = r#"
        [[stages]]
        name = "variants"
        model = "acme/variant"
        each = "item"
        parallel = true
        step_timeout = "20ms"
        [stages.input]
        seed = "{{item.seed}}"
    "#;
    let mut rig = Rig::with_workflow("lookbook", TIMED, None, false);
    let id = start(&mut rig, &[1, 2]);
    assert_eq!(creates(&rig.take()).len(), 2, "both branches at once");
    rig.send(made(id, 1, 1));
    rig.send(made(id, 2, 1));
    rig.take();
    // The branches were requested before this: 30 ms from now, both are past 20 ms.
    std::thread::sleep(Duration::from_millis(30));
    {
        let _context = rig.tokio.enter();
        for step in [1, 2] {
            rig.runtime.on_due(id, step);
        }
        rig.runtime.run_effects();
    }
    let canceled: Vec<(u32, Option<String>)> = rig
        .take()
        .into_iter()
        .filter_map(|e| match e {
            Effect::Cancel {
                step,
                prediction_id,
                ..
            } => Some((step, prediction_id)),
            _ => None,
        })
        .collect();
    assert_eq!(
        canceled,
        [(1, Some("p1-1".to_owned())), (2, Some("p2-1".to_owned()))],
        "each branch's prediction is canceled at its own timeout"
    );
    rig.send(Msg::CancelDone {
        id,
        step: 1,
        attempt: 1,
        result: Ok(CancelOutcome::Answered(prediction(
            "p1-1",
            "canceled",
            json!(null),
        ))),
    });
    let task = rig.task(id);
    assert_eq!(task.status, crate::model::TaskStatus::Failed);
    assert_eq!(
        task.error.as_deref(),
        Some("step 1 (variants, item 0): step timed out after 20ms")
    );
}
