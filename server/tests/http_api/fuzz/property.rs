//! The property: random start bodies (any JSON, start-like objects, valid try-on bodies with
//! one change, byte soup) with random content types get 201 exactly when the API contract
//! says the body is a valid start, and a JSON error otherwise; afterwards exactly the 201s are
//! listed.

use super::check::check_error_shape;
use super::wire::{get, send, Request};
use crate::support::tryon_body;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};
use std::collections::HashSet;

const TOP_KEYS: [&str; 3] = ["workflow", "params", "items"];
const FIELD_NAMES: [&str; 9] = [
    "workflow",
    "params",
    "items",
    "person_image",
    "garment_image",
    "description",
    "x",
    "n",
    "start",
];
const WORKFLOWS: [&str; 5] = ["tryon", "failing", "listy", "nope", ""];

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        2 => prop::sample::select(WORKFLOWS.to_vec()).prop_map(String::from),
        2 => "(?s).{0,12}",
        1 => any::<String>(),
    ]
    .boxed()
}

fn key() -> BoxedStrategy<String> {
    prop_oneof![3 => prop::sample::select(FIELD_NAMES.to_vec()).prop_map(String::from), 1 => text()]
        .boxed()
}

fn object_of(pairs: Vec<(String, Value)>) -> Value {
    Value::Object(pairs.into_iter().collect())
}

/// Any JSON value, nested up to four deep.
fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::num::f64::NORMAL.prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::vec((key(), inner), 0..6).prop_map(object_of),
        ]
    })
    .boxed()
}

/// An object with some of the start fields, each either plausible or any value.
fn start_like() -> BoxedStrategy<Value> {
    let workflow = prop_oneof![4 => prop::sample::select(WORKFLOWS.to_vec()).prop_map(Value::from), 1 => json_value()];
    let field_value = prop_oneof![3 => "[a-z:/.]{0,10}".prop_map(Value::from), 1 => json_value()];
    let plausible_object = |names: Vec<&'static str>| {
        prop::collection::vec(
            (
                prop::sample::select(names).prop_map(String::from),
                field_value.clone(),
            ),
            0..4,
        )
        .prop_map(object_of)
    };
    let params = prop_oneof![4 => plausible_object(vec!["person_image", "start", "other"]), 1 => json_value()];
    let item = prop_oneof![8 => plausible_object(vec!["garment_image", "description", "x", "n", "other"]), 1 => json_value()];
    let items = prop_oneof![4 => prop::collection::vec(item, 0..7).prop_map(Value::from), 1 => json_value()];
    let extra = prop::option::weighted(0.1, (key(), json_value()));
    (
        prop::option::weighted(0.95, workflow),
        prop::option::weighted(0.8, params),
        prop::option::weighted(0.95, items),
        extra,
    )
        .prop_map(|(workflow, params, items, extra)| {
            let mut body = Map::new();
            let fields = [("workflow", workflow), ("params", params), ("items", items)];
            for (name, value) in fields {
                if let Some(value) = value {
                    body.insert(name.into(), value);
                }
            }
            if let Some((key, value)) = extra {
                body.insert(key, value);
            }
            Value::Object(body)
        })
        .boxed()
}

/// A valid try-on body of 1 to 6 items (6 is one too many), then one change (or none).
fn mutated_tryon() -> BoxedStrategy<Value> {
    (
        1..=6usize,
        0..8u8,
        any::<prop::sample::Index>(),
        key(),
        json_value(),
    )
        .prop_map(|(items, mutation, at, key, value)| {
            let mut body = tryon_body("prop", items);
            let item = at.index(items);
            let item_field = ["garment_image", "description"][at.index(2)];
            match mutation {
                0 => {}
                1 => drop(body.as_object_mut().unwrap().remove(TOP_KEYS[at.index(3)])),
                2 => drop(
                    body["params"]
                        .as_object_mut()
                        .unwrap()
                        .remove("person_image"),
                ),
                3 => drop(
                    body["items"][item]
                        .as_object_mut()
                        .unwrap()
                        .remove(item_field),
                ),
                4 => body[TOP_KEYS[at.index(3)]] = value,
                5 => body["items"][item] = value,
                6 => body["items"][item][item_field] = value,
                _ => body[key.as_str()] = value,
            }
            body
        })
        .boxed()
}

/// Bytes that are mostly not JSON: noise, and a valid body cut, spliced or followed by junk.
fn byte_soup() -> BoxedStrategy<Vec<u8>> {
    let valid_bytes = (1..=3usize).prop_map(|n| tryon_body("bytes", n).to_string().into_bytes());
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        (valid_bytes.clone(), any::<prop::sample::Index>())
            .prop_map(|(b, at)| b[..at.index(b.len())].to_vec()),
        (
            valid_bytes.clone(),
            any::<prop::sample::Index>(),
            any::<u8>()
        )
            .prop_map(|(mut b, at, byte)| {
                let at = at.index(b.len());
                b[at] = byte;
                b
            }),
        (
            valid_bytes.clone(),
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u8>(), 1..8)
        )
            .prop_map(|(b, at, junk)| {
                let at = at.index(b.len());
                [&b[..at], &junk, &b[at..]].concat()
            }),
        (valid_bytes, prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(b, junk)| [b, junk].concat()),
    ]
    .boxed()
}

/// A start request: its body and `Content-Type`, shown as text when a case fails.
#[derive(Clone)]
struct Start {
    body: Vec<u8>,
    content_type: Option<&'static str>,
}

impl std::fmt::Debug for Start {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Content-Type {:?}, body {:?}",
            self.content_type,
            String::from_utf8_lossy(&self.body)
        )
    }
}

fn start_request() -> BoxedStrategy<Start> {
    let as_bytes = |v: Value| v.to_string().into_bytes();
    let body = prop_oneof![
        2 => json_value().prop_map(as_bytes),
        3 => start_like().prop_map(as_bytes),
        3 => mutated_tryon().prop_map(as_bytes),
        2 => byte_soup(),
    ];
    let content_type = prop_oneof![
        12 => Just(Some("application/json")),
        1 => Just(Some("application/json; charset=utf-8")),
        1 => Just(Some("text/plain")),
        1 => Just(None),
    ];
    (body, content_type)
        .prop_map(|(body, content_type)| Start { body, content_type })
        .boxed()
}

/// What the API contract says a start body is: a valid start (expect 201) or not.
fn is_valid_start(body: &[u8]) -> bool {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    if body.keys().any(|k| !TOP_KEYS.contains(&k.as_str())) {
        return false;
    }
    let Some(Value::String(workflow)) = body.get("workflow") else {
        return false;
    };
    let no_params = json!({});
    let params = match body.get("params") {
        None | Some(Value::Null) => &no_params,
        Some(params @ Value::Object(_)) => params,
        Some(_) => return false,
    };
    let Some(Value::Array(items)) = body.get("items") else {
        return false;
    };
    // (max_items, fields step 1 reads, fields later steps read) from the test config
    // (tests/e2e/support/fixtures.rs).
    let (max_items, first, rest): (usize, &[&str], &[&str]) = match workflow.as_str() {
        "tryon" => (
            5,
            &[
                "params.person_image",
                "item.garment_image",
                "item.description",
            ],
            &["item.garment_image", "item.description"],
        ),
        "failing" => (10, &["item.x"], &["item.x"]),
        "listy" => (10, &["params.start", "item.n"], &["item.n"]),
        _ => return false,
    };
    let has = |item: &Value, path: &str| {
        let (root, field) = path.split_once('.').unwrap();
        let scope = if root == "params" { params } else { item };
        scope.get(field).is_some()
    };
    (1..=max_items).contains(&items.len())
        && items.iter().all(Value::is_object)
        && items.iter().enumerate().all(|(i, item)| {
            (if i == 0 { first } else { rest })
                .iter()
                .all(|path| has(item, path))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_start_bodies_get_201_only_when_valid_and_a_json_error_otherwise() {
    let (_app, host) = super::spawn().await;
    let runtime = tokio::runtime::Handle::current();
    let mut config = Config {
        cases: 400,
        max_shrink_iters: 200,
        failure_persistence: None,
        ..Config::default()
    };
    if matches!(config.rng_seed, RngSeed::Random) {
        config.rng_seed = RngSeed::Fixed(0x5eed_57e9);
    }
    let mut runner = TestRunner::new(config);
    let created = std::cell::RefCell::new(HashSet::new());
    let refused = std::cell::Cell::new(0usize);
    let outcome = tokio::task::block_in_place(|| {
        runner.run(&start_request(), |Start { body, content_type }| {
            let mut request = Request::new("POST", "/v1/tasks").body(body.clone());
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let reply = runtime
                .block_on(send(&host, &request))
                .map_err(TestCaseError::fail)?;
            let json_type = content_type.is_some_and(|t| t.starts_with("application/json"));
            let valid = json_type && is_valid_start(&body);
            prop_assert!(
                [201, 200, 400, 404, 413, 415].contains(&reply.status),
                "status {}",
                reply.describe()
            );
            if valid {
                prop_assert_eq!(reply.status, 201, "a valid start: {}", reply.describe());
                let task = reply.json().unwrap_or_default();
                let id = task["id"].as_str().unwrap_or_default().to_owned();
                let location = format!("/v1/tasks/{id}");
                prop_assert_eq!(reply.header("location"), Some(location.as_str()));
                prop_assert!(created.borrow_mut().insert(id), "a new id");
            } else {
                let code = check_error_shape(&reply).map_err(TestCaseError::fail)?;
                if !json_type {
                    prop_assert_eq!(
                        (reply.status, code.as_str()),
                        (415, "unsupported_media_type")
                    );
                } else if serde_json::from_slice::<Value>(&body).is_err() {
                    prop_assert_eq!((reply.status, code.as_str()), (400, "invalid_request"));
                } else {
                    prop_assert!(
                        [(400, "invalid_request"), (404, "unknown_workflow")]
                            .contains(&(reply.status, code.as_str())),
                        "an invalid start: {}",
                        reply.describe()
                    );
                }
                refused.set(refused.get() + 1);
            }
            Ok(())
        })
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    let (created, refused) = (created.into_inner(), refused.get());
    assert!(
        created.len() >= 10 && refused >= 100,
        "the generator covers both sides: {} created, {refused} refused",
        created.len()
    );
    let list = send(&host, &get("/v1/tasks?limit=200"))
        .await
        .unwrap()
        .json()
        .unwrap();
    let listed: HashSet<String> = list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, created, "exactly the 201s wrote a task");
    assert!(list["next_cursor"].is_null());
}
