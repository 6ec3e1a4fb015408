//! The search for lost creates' predictions, against the simulator: it adopts only what no
//! task owns or claims, shares one pass among many searches, ends at its window's start
//! however long the list, cannot match predictions whose input Replicate deleted, and never
//! overlaps a create of the same input.

use super::*;
use crate::config::ReplicateConfig;
use crate::event::Event;
use crate::journal::{KvStore, TaskWrite};
use crate::machine;
use crate::model::{Json, TaskId};
use crate::workflow::Target;
use replicate_sim::Endpoint;
use serde_json::json;

struct Rig {
    sim: replicate_sim::SimHandle,
    client: ReplicateClient,
    store: Arc<dyn Store>,
    finder: Finder,
}

async fn rig(config: replicate_sim::SimConfig) -> Rig {
    let token = config.token.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let sim = replicate_sim::start(config, listener)
        .await
        .expect("the simulator starts");
    let replicate = ReplicateConfig {
        api_base: sim.base_url(),
        api_token: Some(token),
        other_calls_per_minute: 1_000_000,
        creates_per_minute: 1_000_000,
        ..ReplicateConfig::default()
    };
    let client = ReplicateClient::new(&replicate).unwrap();
    let store: Arc<dyn Store> = Arc::new(KvStore::in_memory());
    let finder = Finder::new(client.clone(), store.clone());
    Rig {
        sim,
        client,
        store,
        finder,
    }
}

impl Rig {
    async fn create(&self, input: &Value) -> Prediction {
        self.client.create_slot().await;
        self.client
            .create(&Target::Model("acme/tryon".into()), input, None, None)
            .await
            .unwrap()
    }

    fn list_calls(&self) -> u64 {
        self.sim
            .stats()
            .requests
            .get(&Endpoint::List)
            .copied()
            .unwrap_or(0)
    }
}

/// Journals a one-step task that made `prediction_id` and ended: its events get sealed.
fn finished_owner(store: &dyn Store, prediction_id: &str, input: &Value, at: i64) {
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
        Event::StepRequested {
            step: 1,
            attempt: 1,
            input: Json::from_value(input),
            at,
        },
        Event::PredictionCreated {
            step: 1,
            attempt: 1,
            prediction_id: prediction_id.into(),
            at,
        },
        Event::StepSucceeded {
            step: 1,
            prediction_id: prediction_id.into(),
            output: Json("1".into()),
            at,
        },
    ] {
        machine::apply(&mut task, &event).unwrap();
        events.push((task.seq, event));
    }
    store
        .commit(&[TaskWrite {
            task: Arc::new(task),
            events,
        }])
        .unwrap();
}

fn now() -> i64 {
    crate::time::now_millis()
}

#[tokio::test]
async fn a_search_adopts_an_unowned_twin_never_an_owned_or_claimed_one() {
    let rig = rig(replicate_sim::SimConfig::default()).await;
    let input = json!({ "garment": "same.png" });
    let from = now() - 5_000;
    let ours = rig.create(&input).await;
    let theirs = rig.create(&input).await;
    let until = now() + 5_000;

    finished_owner(rig.store.as_ref(), &theirs.id, &input, now());
    let found = rig.finder.find(input.clone(), from, until).await.unwrap();
    assert_eq!(
        found.map(|p| p.id),
        Some(ours.id.clone()),
        "the newer twin is owned by an ended task: skipped"
    );
    let again = rig.finder.find(input.clone(), from, until).await.unwrap();
    assert_eq!(
        again.map(|p| p.id),
        None,
        "the adopted one is claimed: a second search cannot take it too"
    );
    assert_eq!(rig.sim.create_calls(), 2, "and nothing was created");
}

#[tokio::test]
async fn many_searches_share_one_pass_and_each_gets_its_own_prediction() {
    let rig = rig(replicate_sim::SimConfig {
        page_size: 5,
        ..Default::default()
    })
    .await;
    let from = now() - 5_000;
    let mut made = vec![];
    for n in 0..40 {
        let input = json!({ "n": n % 20 });
        made.push((input.clone(), rig.create(&input).await.id));
    }
    let until = now() + 5_000;
    let searches = made.iter().map(|(input, _)| {
        let finder = rig.finder.clone();
        let input = input.clone();
        tokio::spawn(async move { finder.find(input, from, until).await.unwrap() })
    });
    let found: Vec<Option<Prediction>> = futures_join(searches).await;
    let mut ids: Vec<String> = found
        .into_iter()
        .map(|p| p.expect("every search finds one").id)
        .collect();
    ids.sort();
    let mut expected: Vec<String> = made.into_iter().map(|(_, id)| id).collect();
    expected.sort();
    assert_eq!(
        ids, expected,
        "two searches per input, two predictions per input: one each"
    );
    // 40 predictions, 5 a page: 8 pages a pass. Searches that arrive while one runs share
    // the next, so at most two passes.
    assert!(
        rig.list_calls() <= 16,
        "{} list calls for 40 searches",
        rig.list_calls()
    );
}

#[tokio::test]
async fn a_search_ends_at_its_window_however_long_the_list() {
    let rig = rig(replicate_sim::SimConfig {
        page_size: 3,
        ..Default::default()
    })
    .await;
    for n in 0..60 {
        rig.create(&json!({ "old": n })).await;
    }
    let from = now();
    let mine = rig.create(&json!({ "mine": 1 })).await;
    let until = now();
    let found = rig
        .finder
        .find(json!({ "mine": 1 }), from, until)
        .await
        .unwrap();
    assert_eq!(found.map(|p| p.id), Some(mine.id));
    let missing = rig
        .finder
        .find(json!({ "never": 1 }), from, until)
        .await
        .unwrap();
    assert!(missing.is_none(), "not found is an answer, not an error");
    assert!(
        rig.list_calls() <= 4,
        "{} list calls: the 60 older predictions were not paged through",
        rig.list_calls()
    );
}

#[tokio::test]
async fn predictions_whose_input_was_deleted_never_match() {
    let config = replicate_sim::SimConfig {
        output_retention: Some(Duration::from_millis(1)),
        default_model: replicate_sim::ModelBehavior {
            starting_ms: 0,
            processing_ms: 0,
            ..Default::default()
        },
        ..Default::default()
    };
    let rig = rig(config).await;
    let input = json!({ "gone": true });
    let from = now() - 5_000;
    let made = rig.create(&input).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while rig
        .client
        .get(&made.id)
        .await
        .map(|p| !p.data_removed)
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "the simulator never removed the prediction's data"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let found = rig.finder.find(input, from, now() + 5_000).await.unwrap();
    assert!(
        found.is_none(),
        "an input Replicate deleted cannot be told apart: the step is created again"
    );
}

#[tokio::test]
async fn a_search_waits_for_a_create_of_the_same_input_to_be_claimed() {
    let rig = rig(replicate_sim::SimConfig::default()).await;
    let input = json!({ "racing": 1 });
    let from = now() - 5_000;
    let guard = rig.finder.create_guard(&input).await;
    let made = rig.create(&input).await;
    let search = {
        let finder = rig.finder.clone();
        let input = input.clone();
        tokio::spawn(async move { finder.find(input, from, now() + 5_000).await.unwrap() })
    };
    let blocked = tokio::time::timeout(Duration::from_millis(300), async {
        while rig.list_calls() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        blocked.is_err(),
        "the pass listed while a create of its input was out"
    );
    rig.finder.claim(&made.id);
    drop(guard);
    assert!(
        search.await.unwrap().is_none(),
        "the create's own prediction is not another step's"
    );
}

async fn futures_join<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = vec![];
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.unwrap());
    }
    out
}
