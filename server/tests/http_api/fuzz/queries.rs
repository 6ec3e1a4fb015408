//! Bad list queries, odd task ids and bad idempotency keys. Each must get a 4xx JSON error.

use super::check::{bad, case, valid, Case};
use super::wire::{get, post};
use super::UNKNOWN_ID;

pub fn bad_list_queries() -> Vec<Case> {
    let long_cursor = format!("cursor={}", "z".repeat(10_000));
    let queries = [
        "foo=1",
        "bogus",
        "limit=1&bogus",
        "%zz=1",
        "limit=0",
        "limit=-1",
        "limit=abc",
        "limit=100000",
        "limit=201",
        "limit=",
        "limit=1.5",
        "limit=18446744073709551616",
        "limit=%00",
        "limit=%FF",
        "limit=1&limit=2",
        "status=bogus",
        "status=",
        "status=RUNNING",
        "status=running%00",
        "status=running&status=failed",
        "cursor=abc",
        "cursor=zz",
        "cursor=",
        "cursor=%00",
        "cursor=64",
        "cursor=%FF%FE",
        &long_cursor,
        "workflow=tryon&limit=0",
    ];
    queries
        .into_iter()
        .map(|query| {
            bad(
                format!("list query ?{}", &query[..query.len().min(40)]),
                get(format!("/v1/tasks?{query}")),
            )
        })
        .collect()
}

pub fn odd_ids() -> Vec<Case> {
    let ids = [
        "x".to_owned(),
        "tsk_".to_owned(),
        "tsk".to_owned(),
        format!("tsk_{}", "0".repeat(31)),
        format!("tsk_{}", "0".repeat(33)),
        format!("tsk_{}", "g".repeat(32)),
        UNKNOWN_ID.to_uppercase(),
        format!("{UNKNOWN_ID}%00"),
        "%20".to_owned(),
        "%00".to_owned(),
        "..".to_owned(),
        "..%2F..%2Fetc%2Fpasswd".to_owned(),
        "tsk_0123456789abcdef%2F0123456789abcdef".to_owned(),
        "%2F".to_owned(),
        "%E2%9C%93".to_owned(),
        "\u{e9}\u{2713}".to_owned(),
        "tsk_%F0%9F%A6%80%F0%9F%A6%80%F0%9F%A6%80%F0%9F%A6%80".to_owned(),
        "%C3%A9".repeat(5_000),
        format!("tsk_{}", "0".repeat(10_000)),
        "%".to_owned(),
        "%zz".to_owned(),
        format!("{UNKNOWN_ID};x=1"),
        "%FF".to_owned(),
        "tsk_%C3%28".to_owned(),
    ];
    let mut cases: Vec<Case> = ids
        .into_iter()
        .map(|id| {
            let shown: String = id.chars().take(60).collect();
            case(
                format!("GET of the odd id {shown:?}"),
                get(format!("/v1/tasks/{id}")),
                404,
                "not_found",
            )
        })
        .collect();
    cases.push(case(
        "an absolute-form target",
        get("http://example.com/v1/tasks/x"),
        404,
        "not_found",
    ));
    // The query is checked before the id is looked up: `wait` is the only parameter.
    let unknown_parameter = get(format!("/v1/tasks/{UNKNOWN_ID}?limit=0"));
    cases.push(case(
        "an unknown query parameter on a task",
        unknown_parameter,
        400,
        "invalid_request",
    ));
    cases.push(case(
        "a long poll over 60 s",
        get(format!("/v1/tasks/{UNKNOWN_ID}?wait=61")),
        400,
        "invalid_request",
    ));
    cases
}

pub fn bad_idempotency_keys() -> Vec<Case> {
    let body = valid(1);
    let keyed = |key: &[u8]| post(body.clone()).header("idempotency-key", key.to_vec());
    vec![
        bad("an empty Idempotency-Key", keyed(b"")),
        bad("a blank Idempotency-Key", keyed(b"   ")),
        bad(
            "a 256-character Idempotency-Key",
            keyed("k".repeat(256).as_bytes()),
        ),
        bad(
            "a 1000-character Idempotency-Key",
            keyed("k".repeat(1000).as_bytes()),
        ),
        bad("a non-ASCII Idempotency-Key", keyed("ключ".as_bytes())),
        bad("an Idempotency-Key with a tab inside", keyed(b"a\tb")),
    ]
}
