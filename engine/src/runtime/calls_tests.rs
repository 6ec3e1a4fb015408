//! Adoption after an ambiguous create: the search skips predictions another task owns, even
//! once that task has ended and its journal is sealed.

use super::*;
use crate::config::ReplicateConfig;
use crate::event::Event;
use crate::journal::{KvStore, TaskWrite};
use crate::machine;
use crate::model::{Json, TaskId};

async fn simulator() -> replicate_sim::SimHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    replicate_sim::start(replicate_sim::SimConfig::default(), listener).await.expect("the simulator starts")
}

/// Journals a one-step task that made `prediction_id` and ended: its events get sealed.
fn finished_owner(store: &dyn Store, prediction_id: &str, at: i64) -> TaskId {
    let created = Event::TaskCreated {
        workflow: "w".into(),
        params: Json("{}".into()),
        items: vec![Json("{}".into())],
        idempotency_key: None,
        at,
    };
    let mut task = machine::create(TaskId([7; 16]), &created).unwrap();
    let mut events = vec![(1, created)];
    for event in [
        Event::StepRequested { step: 1, attempt: 1, input: Json(r#"{"garment":"same.png"}"#.into()), at },
        Event::PredictionCreated { step: 1, attempt: 1, prediction_id: prediction_id.into(), at },
        Event::StepSucceeded { step: 1, prediction_id: prediction_id.into(), output: Json("1".into()), at },
    ] {
        machine::apply(&mut task, &event).unwrap();
        events.push((task.seq, event));
    }
    assert!(task.is_settled());
    store.commit(&[TaskWrite { task: Arc::new(task.clone()), events }]).unwrap();
    task.id
}

#[tokio::test]
async fn the_search_adopts_the_unowned_prediction_not_a_finished_tasks_twin() {
    let sim = simulator().await;
    let config = ReplicateConfig {
        api_base: sim.base_url(),
        api_token: Some(replicate_sim::SimConfig::default().token),
        ..ReplicateConfig::default()
    };
    let client = ReplicateClient::new(&config).unwrap();
    let target = Target::Model("acme/tryon".into());
    let input = serde_json::json!({ "garment": "same.png" });
    let intent_at = crate::time::now_millis();
    // Ours: created, but its answer never reached the journal. Then, with exactly the same
    // input, another task's, newer, so the newest-first search meets it first.
    let ours = client.create(&target, &input, None, None).await.unwrap();
    let theirs = client.create(&target, &input, None, None).await.unwrap();
    let store: Arc<dyn Store> = Arc::new(KvStore::in_memory());
    let job = || EnsureJob {
        client: client.clone(),
        store: store.clone(),
        target: target.clone(),
        input: input.clone(),
        intent_at,
        sent_by: crate::time::now_millis(),
        fresh: false,
        cancel_after: None,
        webhook: None,
    };

    let (found, adopted) = ensure_prediction(job()).await.unwrap();
    assert_eq!((found.id.as_str(), adopted), (theirs.id.as_str(), true), "unowned, the newest twin is taken");

    finished_owner(store.as_ref(), &theirs.id, crate::time::now_millis());
    let (found, adopted) = ensure_prediction(job()).await.unwrap();
    assert_eq!((found.id.as_str(), adopted), (ours.id.as_str(), true), "owned by an ended task, it is skipped");
    assert_eq!(sim.create_calls(), 2, "and nothing was created again");
}
