//! Parsing templates once and filling them: placeholders alone or inside text, and every
//! malformed string refused naming its key.

use super::*;
use serde_json::json;

fn no_outputs(_: usize, _: bool) -> Vec<Value> {
    unreachable!("these templates read no stage")
}

/// What a template of the one-model form reads: anything but stages; `previous` outside
/// step 1's overrides.
fn one_model(previous: bool) -> Reach<'static> {
    static NAMES: std::sync::OnceLock<[String; 1]> = std::sync::OnceLock::new();
    Reach {
        stage_names: NAMES.get_or_init(|| ["main".to_owned()]),
        stage: 0,
        no_previous: (!previous).then_some("step 1 has no previous output"),
        no_item: None,
    }
}

fn parse(value: Value) -> Result<Template, Vec<String>> {
    let mut problems = vec![];
    let template = Template::parse(
        &value,
        "workflows.w.input.x",
        &one_model(true),
        &mut problems,
    );
    if problems.is_empty() {
        Ok(template)
    } else {
        Err(problems)
    }
}

fn fill(template: &str, item: Value) -> Result<Value, String> {
    let params = json!({"size": 512});
    let output = json!(["https://x/a.png", "https://x/b.png"]);
    let scope = Scope {
        params: &params,
        item: &item,
        previous_output: Some(&output),
        previous_kept_output: None,
        stage_outputs: &no_outputs,
    };
    parse(json!(template)).unwrap().fill(&scope, false)
}

#[test]
fn a_placeholder_inside_text_is_replaced_by_the_values_text() {
    let item = json!({"prompt": "red dress", "n": 3, "hd": true, "none": null,
                      "tags": ["a", "b"], "style": {"k": "v"}});
    let cases = [
        (
            "a photo of {{item.prompt}}, studio light",
            "a photo of red dress, studio light",
        ),
        ("{{item.n}} images", "3 images"),
        ("hd={{ item.hd }}", "hd=true"),
        ("[{{item.none}}]", "[]"),
        ("tags: {{item.tags}}", "tags: [\"a\",\"b\"]"),
        ("style {{item.style}}", "style {\"k\":\"v\"}"),
        ("{{item.prompt}} at {{params.size}}px", "red dress at 512px"),
        ("{{item.prompt}}{{item.n}}", "red dress3"),
        ("first: {{previous.output.0}}", "first: https://x/a.png"),
        ("{single} braces } stay {", "{single} braces } stay {"),
    ];
    for (template, expected) in cases {
        assert_eq!(
            fill(template, item.clone()).unwrap(),
            json!(expected),
            "{template}"
        );
    }
}

#[test]
fn a_string_that_is_one_placeholder_keeps_the_json_type() {
    let item = json!({"n": 3, "tags": ["a"], "none": null});
    assert_eq!(fill("{{item.n}}", item.clone()).unwrap(), json!(3));
    assert_eq!(fill("{{ item.tags }}", item.clone()).unwrap(), json!(["a"]));
    assert_eq!(fill("{{item.none}}", item.clone()).unwrap(), json!(null));
    assert_eq!(
        fill("{{previous.output}}", item).unwrap()[1],
        json!("https://x/b.png")
    );
}

#[test]
fn templates_are_parsed_once_into_their_parts() {
    let template = parse(json!({
        "whole": "{{item.x}}",
        "text": "a {{item.x}} b",
        "plain": "no placeholder",
        "list": [1, "{{params.y}}"],
        "fixed": {"deep": [1, 2]},
    }))
    .unwrap();
    let Template::Object(fields) = template else {
        panic!("an object template compiles to an object: {template:?}");
    };
    let kind = |name: &str| {
        let (_, template) = fields.iter().find(|(field, _)| field == name).unwrap();
        match template {
            Template::Literal(_) => "literal",
            Template::Object(_) => "object",
            Template::Array(_) => "array",
            Template::Whole(_) => "whole",
            Template::Text(_) => "text",
        }
    };
    assert_eq!(kind("whole"), "whole");
    assert_eq!(kind("text"), "text");
    assert_eq!(kind("plain"), "literal");
    assert_eq!(kind("list"), "array");
    assert_eq!(kind("fixed"), "literal", "no placeholder below: one value");
}

#[test]
fn malformed_braces_and_unknown_roots_are_errors_naming_the_key() {
    let cases = [
        (
            "{{item.prompt}",
            "unbalanced \"{{\" at byte 0: no \"}}\" closes it",
        ),
        (
            "a {{item.prompt",
            "unbalanced \"{{\" at byte 2: no \"}}\" closes it",
        ),
        ("{{ }}", "empty placeholder \"{{ }}\""),
        ("{{}}", "empty placeholder"),
        ("done}} now", "\"}}\" at byte 4 has no \"{{\" before it"),
        (
            "{{item.a}} and b}}",
            "\"}}\" at byte 16 has no \"{{\" before it",
        ),
        ("{{a {{item.x}}", "another \"{{\" opens before it closes"),
        ("hi {{user.name}}", "unknown placeholder {{user.name}}"),
        ("{{item}}", "unknown placeholder {{item}}"),
        ("{{item..x}}", "unknown placeholder {{item..x}}"),
        (
            "{{previous.input}}",
            "unknown placeholder {{previous.input}}",
        ),
    ];
    for (text, expected) in cases {
        let problems = parse(json!(text)).unwrap_err();
        assert_eq!(problems.len(), 1, "{text}: {problems:?}");
        assert!(
            problems[0].starts_with("workflows.w.input.x: ") && problems[0].contains(expected),
            "{text}: {problems:?}"
        );
    }
}

#[test]
fn every_malformed_string_is_reported_with_its_own_key() {
    let problems =
        parse(json!({"a": "{{item.x", "b": ["ok", "x}}"], "c": "{{item.c}}"})).unwrap_err();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("workflows.w.input.x.a: unbalanced"));
    assert!(problems[1].starts_with("workflows.w.input.x.b[1]: \"}}\""));
}

#[test]
fn step_one_cannot_read_previous_even_inside_text() {
    let mut problems = vec![];
    let template = Template::parse(
        &json!("after {{previous.output}}"),
        "workflows.w.first.x",
        &one_model(false),
        &mut problems,
    );
    assert_eq!(
        problems,
        ["workflows.w.first.x: step 1 has no previous output (\"previous.output\")"]
    );
    let mut problems = vec![];
    let template_rest = Template::parse(
        &json!(["after {{previous.kept_output}}"]),
        "workflows.w.input.x",
        &one_model(true),
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert!(template_rest.reads_previous());
    assert!(
        !template.reads_previous(),
        "a refused string is kept as a literal"
    );
}

#[test]
fn a_missing_value_inside_text_names_its_path() {
    assert_eq!(
        fill("a photo of {{item.prompt}}", json!({})).unwrap_err(),
        "missing `item.prompt`, required by the workflow's input"
    );
}

#[test]
fn the_start_check_leaves_previous_placeholders_as_written() {
    let template =
        parse(json!({"a": "{{previous.output}}", "b": "x {{ previous.output.0 }} {{item.n}}"}))
            .unwrap();
    let (params, item) = (json!({}), json!({"n": 1}));
    let scope = Scope {
        params: &params,
        item: &item,
        previous_output: None,
        previous_kept_output: None,
        stage_outputs: &no_outputs,
    };
    assert_eq!(
        template.fill(&scope, true).unwrap(),
        json!({"a": "{{previous.output}}", "b": "x {{previous.output.0}} 1"})
    );
    assert!(template.fill(&scope, false).is_err());
}
