//! Template compilation and filling.

use super::*;
use serde_json::json;

fn no_outputs(_: usize, _: bool) -> Vec<Value> {
    unreachable!("a one-model workflow reads no stage")
}

fn config(toml_text: &str) -> WorkflowConfig {
    toml::from_str(toml_text).unwrap()
}

fn tryon() -> Workflow {
    Workflow::compile(
        "tryon",
        &config(
            r#"
            model = "cuuupid/idm-vton"
            max_items = 3
            [input]
            human_img = "{{previous.output}}"
            garm_img = "{{item.garment_image}}"
            steps = 30
            [first]
            human_img = "{{params.person_image}}"
            "#,
        ),
        LimitsConfig::default(),
    )
    .unwrap()
}

#[test]
fn step_one_reads_params_and_later_steps_read_the_previous_output() {
    let wf = tryon();
    let params = json!({"person_image": "me.png"});
    let item = json!({"garment_image": "shirt.png"});
    let scope = Scope {
        params: &params,
        item: &item,
        previous_output: None,
        previous_kept_output: None,
        stage_outputs: &no_outputs,
    };
    assert_eq!(
        wf.step_input(0, Some(0), &scope).unwrap(),
        json!({"human_img": "me.png", "garm_img": "shirt.png", "steps": 30})
    );
    let previous = json!("https://x/out.png");
    let scope = Scope {
        params: &params,
        item: &item,
        previous_output: Some(&previous),
        previous_kept_output: None,
        stage_outputs: &no_outputs,
    };
    assert_eq!(
        wf.step_input(0, Some(1), &scope).unwrap()["human_img"],
        previous
    );
}

#[test]
fn a_lone_placeholder_keeps_the_type_and_one_inside_text_becomes_text() {
    let wf = Workflow::compile(
        "w",
        &config(
            r#"
            version = "abc"
            [input]
            image = "{{previous.output.0}}"
            n = "{{item.count}}"
            text = "not {{item.count}}"
            [first]
            image = "{{params.start}}"
            "#,
        ),
        LimitsConfig::default(),
    )
    .unwrap();
    let params = json!({"start": {"nested": true}});
    let item = json!({"count": 4});
    let output = json!(["a.png", "b.png"]);
    let scope = Scope {
        params: &params,
        item: &item,
        previous_output: Some(&output),
        previous_kept_output: None,
        stage_outputs: &no_outputs,
    };
    let input = wf.step_input(0, Some(1), &scope).unwrap();
    assert_eq!(input, json!({"image": "a.png", "n": 4, "text": "not 4"}));
    assert_eq!(
        wf.step_input(0, Some(0), &scope).unwrap()["image"],
        json!({"nested": true})
    );
}

#[test]
fn a_missing_item_field_is_reported_with_its_item_index() {
    let wf = tryon();
    let params = json!({"person_image": "me.png"});
    let items = [json!({"garment_image": "a"}), json!({"garment": "b"})];
    let err = wf.check_start(&params, &items).unwrap_err();
    assert_eq!(
        err.0,
        "items[1]: missing `item.garment_image`, required by the workflow's input"
    );
}

#[test]
fn start_requests_need_between_one_and_max_items() {
    let wf = tryon();
    let params = json!({"person_image": "me.png"});
    assert!(wf
        .check_start(&params, &[])
        .unwrap_err()
        .0
        .contains("at least one"));
    let items = vec![json!({"garment_image": "a"}); 4];
    assert!(wf
        .check_start(&params, &items)
        .unwrap_err()
        .0
        .contains("at most 3"));
    assert!(wf
        .check_start(&json!({}), &items[..1])
        .unwrap_err()
        .0
        .contains("params.person_image"));
    wf.check_start(&params, &items[..3]).unwrap();
}

#[test]
fn the_check_returns_step_one_input_as_the_step_will_build_it() {
    let wf = tryon();
    let params = json!({"person_image": "me.png"});
    let items = [
        json!({"garment_image": "shirt.png"}),
        json!({"garment_image": "hat.png"}),
    ];
    let scope = Scope {
        params: &params,
        item: &items[0],
        previous_output: None,
        previous_kept_output: None,
        stage_outputs: &no_outputs,
    };
    // The loop records this as step 1's input instead of building it again.
    assert_eq!(
        wf.check_start(&params, &items).unwrap(),
        Some(wf.step_input(0, Some(0), &scope).unwrap())
    );

    // Workflows whose step 1 reads `previous` are refused at load, so this is always known.
    let shoes = [json!({"garment_image": "shoes.png"})];
    let scope = Scope {
        params: &params,
        item: &shoes[0],
        previous_output: None,
        previous_kept_output: None,
        stage_outputs: &no_outputs,
    };
    assert_eq!(
        wf.check_start(&params, &shoes).unwrap(),
        Some(wf.step_input(0, Some(0), &scope).unwrap())
    );
}

#[test]
fn a_missing_previous_output_path_fails_the_step_input() {
    let wf = tryon();
    let (params, item) = (json!({}), json!({"garment_image": "a"}));
    let scope = Scope {
        params: &params,
        item: &item,
        previous_output: None,
        previous_kept_output: None,
        stage_outputs: &no_outputs,
    };
    assert!(wf
        .step_input(0, Some(1), &scope)
        .unwrap_err()
        .0
        .contains("previous.output"));
}

#[test]
fn bad_templates_are_config_errors_naming_the_key() {
    let cases = [
        ("max_items = 2", "neither model nor version"),
        ("model = \"a/b\"\nversion = \"v\"", "not both"),
        ("model = \"nope\"", "owner/name"),
        (
            "model = \"a/b\"\n[input]\nx = \"{{prev.output}}\"",
            "workflows.w.input.x: unknown placeholder",
        ),
        (
            "model = \"a/b\"\n[input]\nx = \"{{previous.output}}\"",
            "set workflows.w.first.x",
        ),
        (
            "model = \"a/b\"\n[first]\nx = \"{{previous.output}}\"",
            "workflows.w.first.x: step 1 has no previous",
        ),
        (
            "model = \"a/b\"\n[input]\nx = [\"{{item}}\"]",
            "workflows.w.input.x[0]",
        ),
    ];
    for (text, expected) in cases {
        let problems = Workflow::compile("w", &config(text), LimitsConfig::default()).unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{text}: {problems:?}"
        );
    }
}

#[test]
fn strings_and_inputs_over_the_limits_are_refused_naming_the_field() {
    let limits = LimitsConfig {
        max_string_bytes: 10,
        max_input_bytes: 120,
    };
    let text = "model = \"a/b\"\n[input]\nx = \"{{item.x}}\"\ny = \"{{item.y}}\"";
    let wf = Workflow::compile("w", &config(text), limits).unwrap();
    let params = json!({"deep": {"list": ["ok", "x".repeat(11)]}});
    let err = wf
        .check_start(&params, &[json!({"x": 1, "y": 2})])
        .unwrap_err();
    assert_eq!(err.0, "`params.deep.list[1]` is longer than 10 bytes");
    let items = [
        json!({"x": "a", "y": "b"}),
        json!({"x": "long string!", "y": 1}),
    ];
    assert_eq!(
        wf.check_start(&json!({}), &items).unwrap_err().0,
        "`items[1].x` is longer than 10 bytes"
    );
    let wide: Vec<Value> = (0..20).map(|_| json!("0123456789")).collect();
    let err = wf
        .check_start(&json!({}), &[json!({"x": wide, "y": 1})])
        .unwrap_err();
    assert!(err.0.contains("over the 120-byte limit"), "{}", err.0);
}

#[test]
fn the_input_size_is_the_length_of_its_json_text() {
    for value in [
        json!(null),
        json!({"a": [1, 2.5, "é\"\n"], "b": {"c": true}}),
        json!("x".repeat(300)),
    ] {
        assert_eq!(json_len(&value), value.to_string().len(), "{value}");
    }
    let limits = LimitsConfig {
        max_string_bytes: 100,
        max_input_bytes: 17,
    };
    let wf = Workflow::compile(
        "w",
        &config("model = \"a/b\"\n[input]\nx = \"{{item.x}}\""),
        limits,
    )
    .unwrap();
    // {"x":"0123456789"} is 18 bytes: one over.
    assert!(wf
        .check_start(&json!({}), &[json!({"x": "012345678"})])
        .is_ok());
    let err = wf
        .check_start(&json!({}), &[json!({"x": "0123456789"})])
        .unwrap_err();
    assert_eq!(
        err.0,
        "items[0]: the prediction input would be 18 bytes, over the 17-byte limit"
    );
}

#[test]
fn previous_kept_output_reads_the_kept_copy_or_falls_back_to_the_output() {
    let wf = Workflow::compile(
        "w",
        &config(
            "model = \"a/b\"\n[input]\nimg = \"{{previous.kept_output}}\"\n[first]\nimg = \"x\"",
        ),
        LimitsConfig::default(),
    )
    .unwrap();
    let (params, item) = (json!({}), json!({}));
    let (output, kept) = (
        json!("https://replicate/out.png"),
        json!("https://me/v1/files/t/1/0-out.png"),
    );
    let with_kept = Scope {
        params: &params,
        item: &item,
        previous_output: Some(&output),
        previous_kept_output: Some(&kept),
        stage_outputs: &no_outputs,
    };
    assert_eq!(wf.step_input(0, Some(1), &with_kept).unwrap()["img"], kept);
    let without = Scope {
        params: &params,
        item: &item,
        previous_output: Some(&output),
        previous_kept_output: None,
        stage_outputs: &no_outputs,
    };
    assert_eq!(wf.step_input(0, Some(1), &without).unwrap()["img"], output);
}

#[test]
fn a_prompt_built_from_text_and_placeholders_reaches_the_step_input() {
    let wf = Workflow::compile(
        "w",
        &config(
            r#"
            model = "a/b"
            [input]
            prompt = "a photo of {{item.prompt}}, studio light, {{params.size}}px"
            "#,
        ),
        LimitsConfig::default(),
    )
    .unwrap();
    let params = json!({"size": 1024});
    let items = [json!({"prompt": "a red dress"})];
    assert_eq!(
        wf.check_start(&params, &items).unwrap(),
        Some(json!({"prompt": "a photo of a red dress, studio light, 1024px"}))
    );
}

#[test]
fn every_template_problem_of_a_workflow_is_reported_at_once() {
    let text = r#"
        model = "a/b"
        [input]
        a = "{{item.prompt}"
        b = "{{ }}"
        c = "{{item.prompt"
        d = "done}}"
        e = "{{user.x}}"
        f = "{{item.ok}}"
    "#;
    let problems = Workflow::compile("tryon", &config(text), LimitsConfig::default()).unwrap_err();
    let keys: Vec<&str> = problems
        .iter()
        .map(|p| p.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(
        keys,
        [
            "workflows.tryon.input.a",
            "workflows.tryon.input.b",
            "workflows.tryon.input.c",
            "workflows.tryon.input.d",
            "workflows.tryon.input.e",
        ],
        "{problems:?}"
    );
    assert!(problems[0].starts_with("workflows.tryon.input.a: unbalanced \"{{\""));
}
