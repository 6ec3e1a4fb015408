//! `{{stages.NAME.*}}` placeholders: which stages a template may read, and the values they
//! fill in from the earlier stages' outputs.

use super::super::template::Template;
use super::*;
use serde_json::json;
use std::cell::RefCell;

fn names() -> Vec<String> {
    ["cutout", "tryon", "variants", "sheet"]
        .map(str::to_owned)
        .to_vec()
}

/// Parses `value` as an input of stage `stage` of the four-stage pipeline.
fn parse_in(stage: usize, value: Value) -> Result<Template, Vec<String>> {
    let names = names();
    let reach = Reach {
        stage_names: &names,
        stage,
        no_previous: None,
        no_item: None,
    };
    let mut problems = vec![];
    let template = Template::parse(
        &value,
        "workflows.w.stages[3].input.x",
        &reach,
        &mut problems,
    );
    if problems.is_empty() {
        Ok(template)
    } else {
        Err(problems)
    }
}

/// Outputs of stages 0 (`cutout`, once) and 1 (`tryon`, three items); the kept versions
/// differ from the plain ones so a test can tell which it got.
fn outputs(stage: usize, kept: bool) -> Vec<Value> {
    let host = if kept { "https://me" } else { "https://r8" };
    match stage {
        0 => vec![json!({"url": format!("{host}/cut.png"), "mask": [1, 2]})],
        1 => (1..=3)
            .map(|i| json!(format!("{host}/try{i}.png")))
            .collect(),
        2 => vec![],
        _ => unreachable!("no stage {stage} before the sheet"),
    }
}

/// Fills `template` in the last stage, noting which stages it asked for.
fn fill(template: &str) -> (Result<Value, String>, Vec<(usize, bool)>) {
    let asked = RefCell::new(vec![]);
    let stage_outputs = |stage: usize, kept: bool| {
        asked.borrow_mut().push((stage, kept));
        outputs(stage, kept)
    };
    let scope = Scope {
        params: &Value::Null,
        item: &Value::Null,
        previous_output: None,
        previous_kept_output: None,
        stage_outputs: &stage_outputs,
    };
    let filled = parse_in(3, json!(template)).unwrap().fill(&scope, false);
    (filled, asked.into_inner())
}

#[test]
fn a_stage_placeholder_reads_the_last_output_or_all_of_them_in_item_order() {
    let cases = [
        ("{{stages.tryon.output}}", json!("https://r8/try3.png")),
        (
            "{{stages.tryon.outputs}}",
            json!([
                "https://r8/try1.png",
                "https://r8/try2.png",
                "https://r8/try3.png"
            ]),
        ),
        ("{{stages.tryon.kept_output}}", json!("https://me/try3.png")),
        (
            "{{stages.tryon.kept_outputs.0}}",
            json!("https://me/try1.png"),
        ),
        ("{{stages.tryon.outputs.1}}", json!("https://r8/try2.png")),
        (
            "{{ stages.cutout.output.url }}",
            json!("https://r8/cut.png"),
        ),
        ("{{stages.cutout.output.mask.1}}", json!(2)),
        (
            "{{stages.cutout.outputs}}",
            json!([{"url": "https://r8/cut.png", "mask": [1, 2]}]),
        ),
        (
            "cut {{stages.cutout.kept_output.url}} then {{stages.tryon.outputs.0}}",
            json!("cut https://me/cut.png then https://r8/try1.png"),
        ),
        ("all: {{stages.cutout.output.mask}}", json!("all: [1,2]")),
        ("{{stages.variants.outputs}}", json!([])),
    ];
    for (template, expected) in cases {
        assert_eq!(fill(template).0, Ok(expected), "{template}");
    }
}

#[test]
fn only_the_stages_a_template_reads_are_asked_for_with_the_kept_flag_as_written() {
    let (_, asked) = fill("{{stages.tryon.kept_outputs}} {{stages.cutout.output.url}}");
    assert_eq!(asked, [(1, true), (0, false)]);
    let (_, asked) = fill("no stage here");
    assert!(asked.is_empty());
}

#[test]
fn a_missing_stage_value_is_an_input_error_naming_its_path() {
    for (template, path) in [
        ("{{stages.cutout.output.nope}}", "stages.cutout.output.nope"),
        ("{{stages.tryon.outputs.3}}", "stages.tryon.outputs.3"),
        ("x {{stages.variants.output}}", "stages.variants.output"),
    ] {
        assert_eq!(
            fill(template).0,
            Err(format!(
                "missing `{path}`, required by the workflow's input"
            )),
            "{template}"
        );
    }
}

#[test]
fn a_stage_reads_only_known_stages_before_it_and_only_their_output_fields() {
    let cases = [
        (2, "{{stages.tryon.output}}", None),
        (1, "{{stages.cutout.kept_outputs.0}}", None),
        (
            3,
            "{{stages.nope.output}}",
            Some("reads an unknown stage \"nope\"; the stages are \"cutout\", \"tryon\""),
        ),
        (
            1,
            "{{stages.tryon.output}}",
            Some("is a forward reference: stage \"tryon\" is this stage itself"),
        ),
        (
            1,
            "a {{stages.sheet.outputs}}",
            Some("is a forward reference: stage \"sheet\" is a later stage"),
        ),
        (
            3,
            "{{stages.tryon.result}}",
            Some("a stage has no field \"result\"; after stages.tryon. use output, outputs"),
        ),
        (
            3,
            "{{stages.tryon.input.x}}",
            Some("a stage has no field \"input\""),
        ),
        (3, "{{stages.tryon}}", Some("names no stage field")),
        (3, "{{stages}}", Some("names no stage field")),
    ];
    for (stage, text, expected) in cases {
        match (parse_in(stage, json!(text)), expected) {
            (Ok(_), None) => {}
            (Err(problems), Some(expected)) => {
                assert_eq!(problems.len(), 1, "{text}: {problems:?}");
                assert!(
                    problems[0].starts_with("workflows.w.stages[3].input.x: ")
                        && problems[0].contains(expected),
                    "{text}: {problems:?}"
                );
            }
            (result, _) => panic!("{text} in stage {stage}: {result:?}"),
        }
    }
}

#[test]
fn refused_item_and_previous_reads_give_the_reason_of_the_stage() {
    let names = names();
    let reach = Reach {
        stage_names: &names,
        stage: 0,
        no_previous: Some("the first stage runs once and has no step before it"),
        no_item: Some("stage \"cutout\" runs once"),
    };
    let mut problems = vec![];
    Template::parse(
        &json!({"a": "{{previous.kept_output}}", "b": "x {{item.y}}", "c": "{{params.z}}"}),
        "k",
        &reach,
        &mut problems,
    );
    assert_eq!(
        problems,
        [
            "k.a: the first stage runs once and has no step before it (\"previous.kept_output\")",
            "k.b: stage \"cutout\" runs once (\"item.y\")",
        ]
    );
}

#[test]
fn the_start_check_leaves_stage_placeholders_as_written_without_asking_for_outputs() {
    let template = parse_in(
        3,
        json!({"a": "{{stages.tryon.outputs}}", "b": "see {{ stages.cutout.output.url }}"}),
    )
    .unwrap();
    let never = |_: usize, _: bool| -> Vec<Value> { panic!("no output exists at start") };
    let scope = Scope {
        params: &Value::Null,
        item: &Value::Null,
        previous_output: None,
        previous_kept_output: None,
        stage_outputs: &never,
    };
    assert_eq!(
        template.fill(&scope, true).unwrap(),
        json!({"a": "{{stages.tryon.outputs}}", "b": "see {{stages.cutout.output.url}}"})
    );
}
