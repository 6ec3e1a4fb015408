//! Bad start bodies: malformed JSON, fields of the wrong type or name, huge strings, arrays
//! and nesting, invalid UTF-8 and NUL bytes. Each must get a 4xx JSON error.

use super::check::{bad, case, valid, with_field, without_field, Case};
use super::wire::post;
use serde_json::json;

pub fn malformed_json() -> Vec<Case> {
    let body = valid(1);
    let truncated = |n: usize| body.as_bytes()[..n].to_vec();
    let texts: Vec<(&str, Vec<u8>)> = vec![
        ("an empty body", vec![]),
        ("only whitespace", b" \r\n\t ".to_vec()),
        ("a lone brace", b"{".to_vec()),
        ("a valid body cut one byte short", truncated(body.len() - 1)),
        ("a valid body cut in half", truncated(body.len() / 2)),
        ("a valid body cut inside a string", truncated(5)),
        ("trailing garbage", format!("{body} x").into_bytes()),
        ("a trailing closing brace", format!("{body}}}").into_bytes()),
        ("two bodies back to back", format!("{body}{body}").into_bytes()),
        ("mismatched brackets", br#"{"workflow":"tryon","params":{"person_image":"p"},"items":[{"garment_image":"g","description":"d"}}"#.to_vec()),
        ("an object closed by a bracket", br#"{"workflow":"tryon"]"#.to_vec()),
        ("items nested one level too deep", br#"{"workflow":"tryon","params":{"person_image":"p"},"items":[[{"garment_image":"g","description":"d"}]]}"#.to_vec()),
        ("the body wrapped in an array", format!("[{body}]").into_bytes()),
        ("the body wrapped in an object", format!("{{\"task\":{body}}}").into_bytes()),
        ("a top-level string", br#""tryon""#.to_vec()),
        ("a top-level number", b"42".to_vec()),
        ("a top-level null", b"null".to_vec()),
        ("a top-level true", b"true".to_vec()),
        ("an empty object", b"{}".to_vec()),
        ("unquoted keys", br#"{workflow:"tryon",items:[{}]}"#.to_vec()),
        ("single quotes", br#"{'workflow':'tryon','items':[{}]}"#.to_vec()),
        ("a trailing comma", body.replacen('}', ",}", 1).into_bytes()),
        ("a comment", format!("/* hi */{body}").into_bytes()),
        ("a NaN literal", br#"{"workflow":"tryon","params":{"person_image":NaN},"items":[{"garment_image":"g","description":"d"}]}"#.to_vec()),
        ("a number out of range", br#"{"workflow":"tryon","params":{"person_image":1e999},"items":[{"garment_image":"g","description":"d"}]}"#.to_vec()),
        ("a lone surrogate escape", br#"{"workflow":"tryon","params":{"person_image":"\ud800"},"items":[{"garment_image":"g","description":"d"}]}"#.to_vec()),
        ("a bad escape", br#"{"workflow":"tr\yon","items":[{}]}"#.to_vec()),
        ("a duplicate workflow key", br#"{"workflow":"nope","workflow":"tryon","params":{"person_image":"p"},"items":[{"garment_image":"g","description":"d"}]}"#.to_vec()),
    ];
    texts
        .into_iter()
        .map(|(what, body)| bad(format!("malformed JSON: {what}"), post(body)))
        .collect()
}

pub fn mistyped_fields() -> Vec<Case> {
    let item = json!({"garment_image": "g", "description": "d"});
    let mut cases = vec![];
    for value in [
        json!(42),
        json!(1.5),
        json!(true),
        json!(null),
        json!([]),
        json!(["tryon"]),
        json!({}),
        json!({"name": "tryon"}),
    ] {
        cases.push(bad(
            format!("`workflow` as {value}"),
            post(with_field("workflow", value)),
        ));
    }
    for value in [
        json!([]),
        json!([{"person_image": "p"}]),
        json!("p"),
        json!(1),
        json!(true),
    ] {
        cases.push(bad(
            format!("`params` as {value}"),
            post(with_field("params", value)),
        ));
    }
    let items = [
        json!({}),
        json!({"0": item}),
        json!("items"),
        json!(1),
        json!(null),
        json!(true),
        json!([]),
        json!([1]),
        json!(["g"]),
        json!([null]),
        json!([[]]),
        json!([true]),
        json!([item, 2]),
        json!([item, item, item, item, item, item]),
    ];
    for value in items {
        cases.push(bad(
            format!("`items` as {value}"),
            post(with_field("items", value)),
        ));
    }
    cases.push(bad("no `workflow`", post(without_field("workflow"))));
    cases.push(bad("no `items`", post(without_field("items"))));
    cases.push(bad(
        "no `params` where a template reads them",
        post(without_field("params")),
    ));
    cases.push(bad(
        "an item without a template field",
        post(with_field("items", json!([{"garment_image": "g"}]))),
    ));
    cases.push(bad(
        "a params object without a template field",
        post(with_field("params", json!({"person": "p"}))),
    ));
    for field in [
        "extra",
        "Workflow",
        "workflow ",
        "id",
        "status",
        "",
        "__proto__",
        "idempotency_key",
    ] {
        cases.push(bad(
            format!("the unknown top-level field {field:?}"),
            post(with_field(field, json!(1))),
        ));
    }
    cases.push(case(
        "an unknown workflow",
        post(with_field("workflow", json!("nope"))),
        404,
        "unknown_workflow",
    ));
    cases.push(case(
        "a workflow name with a case change",
        post(with_field("workflow", json!("TRYON"))),
        404,
        "unknown_workflow",
    ));
    cases
}

pub fn huge_bodies() -> Vec<Case> {
    let huge = "h".repeat(900 * 1024);
    let deep_arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_objects = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    vec![
        case("a 900 KB workflow name", post(with_field("workflow", json!(huge))), 404, "unknown_workflow"),
        bad("a 900 KB unknown field name", post(with_field(&huge, json!(1)))),
        bad(
            "a 900 KB item field with params missing",
            post(json!({"workflow": "tryon", "items": [{"garment_image": huge, "description": "d"}]}).to_string()),
        ),
        bad("a 900 KB string as params", post(with_field("params", json!(huge)))),
        bad(
            "100 000 empty items",
            post(format!(
                r#"{{"workflow":"tryon","params":{{"person_image":"p"}},"items":[{}]}}"#,
                vec!["{}"; 100_000].join(",")
            )),
        ),
        bad(
            "100 000 numbers as items",
            post(format!(
                r#"{{"workflow":"tryon","params":{{"person_image":"p"}},"items":[{}]}}"#,
                vec!["1"; 100_000].join(",")
            )),
        ),
        bad(
            "20 000 valid items",
            post(with_field("items", json!(vec![json!({"garment_image": "g", "description": "d"}); 20_000]))),
        ),
        bad(
            "items nested 10 000 arrays deep",
            post(format!(r#"{{"workflow":"tryon","params":{{"person_image":"p"}},"items":{deep_arrays}}}"#)),
        ),
        bad(
            "params nested 10 000 objects deep",
            post(format!(r#"{{"workflow":"tryon","params":{deep_objects},"items":[{{}}]}}"#)),
        ),
        bad("10 000 unclosed brackets", post("[".repeat(10_000))),
        bad("100 000 nested arrays as the whole body", post(format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)))),
    ]
}

pub fn bad_bytes() -> Vec<Case> {
    let body = valid(1);
    let garbled = |from: &str, to: &[u8]| {
        let at = body.find(from).unwrap();
        [
            &body.as_bytes()[..at],
            to,
            &body.as_bytes()[at + from.len()..],
        ]
        .concat()
    };
    let utf16: Vec<u8> = body.encode_utf16().flat_map(u16::to_le_bytes).collect();
    vec![
        bad(
            "invalid UTF-8 in the workflow name",
            post(garbled("tryon", b"try\xffon")),
        ),
        bad(
            "a truncated UTF-8 sequence in a value",
            post(garbled("person.png", b"person\xc3(.png")),
        ),
        bad(
            "an overlong UTF-8 encoding of a slash",
            post(garbled("https://", b"https:\xc0\xaf/")),
        ),
        bad(
            "invalid UTF-8 in a key",
            post(garbled("\"params\"", b"\"par\xfeams\"")),
        ),
        bad("a UTF-16 body", post(utf16)),
        bad(
            "a UTF-8 byte order mark and garbage",
            post(b"\xef\xbb\xbf\xff\xfe".to_vec()),
        ),
        bad(
            "a raw NUL inside a string",
            post(garbled("tryon", b"try\0on")),
        ),
        bad(
            "a raw NUL between tokens",
            post(garbled("\"items\"", b"\0\"items\"")),
        ),
        bad("a body of NUL bytes", post(vec![0u8; 1000])),
        bad(
            "an escaped NUL in a key",
            post(with_field("workflow\u{0}", json!("tryon"))),
        ),
        case(
            "an escaped NUL in the workflow name",
            post(with_field("workflow", json!("tryon\u{0}"))),
            404,
            "unknown_workflow",
        ),
        bad(
            "raw control characters in a string",
            post(garbled("tryon", b"try\x01\x1bon")),
        ),
    ]
}
