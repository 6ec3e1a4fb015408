//! Pipelines: compiling `[[stages]]` into stages with their settings, the start check with and
//! without per-item stages, and each stage shape's step inputs.

use super::*;
use serde_json::json;

const LOOKBOOK: &str = r#"
    max_items = 10
    step_retries = 1
    step_timeout = "10m"

    [[stages]]
    name = "cutout"
    model = "acme/rembg"
    [stages.input]
    image = "{{params.person_image}}"

    [[stages]]
    name = "tryon"
    model = "acme/tryon"
    each = "item"
    step_retries = 2
    step_timeout = "5m"
    fallback_model = "acme/tryon-old"
    [stages.input]
    human_img = "{{previous.output}}"
    garm_img = "{{item.garment_image}}"

    [[stages]]
    name = "variants"
    version = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"
    each = "item"
    parallel = true
    max_parallel = 4
    fallback_version = "0ld"
    [stages.input]
    image = "{{stages.tryon.output}}"
    seed = "{{item.seed}}"
    [stages.first]
    seed = 0

    [[stages]]
    name = "sheet"
    model = "acme/grid"
    [stages.input]
    images = "{{stages.variants.kept_outputs}}"
    cutout = "{{stages.cutout.output}}"
    title = "{{params.title}}: {{previous.output}}"
"#;

fn compile(text: &str) -> Result<Workflow, Vec<String>> {
    let config: WorkflowConfig = toml::from_str(text).unwrap();
    Workflow::compile("lookbook", &config, LimitsConfig::default())
}

fn lookbook() -> Workflow {
    compile(LOOKBOOK).unwrap()
}

fn items() -> Vec<Value> {
    vec![
        json!({"garment_image": "shirt.png", "seed": 11}),
        json!({"garment_image": "hat.png", "seed": 22}),
    ]
}

/// Outputs of the lookbook's stages once they ran on two items; kept versions on another host.
fn outputs(stage: usize, kept: bool) -> Vec<Value> {
    let host = if kept { "https://me" } else { "https://r8" };
    let names: &[&str] = match stage {
        0 => &["cut"],
        1 => &["try1", "try2"],
        2 => &["var1", "var2"],
        _ => unreachable!("stage {stage} is read by none"),
    };
    names
        .iter()
        .map(|n| json!(format!("{host}/{n}.png")))
        .collect()
}

fn scope<'a>(params: &'a Value, item: &'a Value, previous: Option<&'a Value>) -> Scope<'a> {
    Scope {
        params,
        item,
        previous_output: previous,
        previous_kept_output: None,
        stage_outputs: &outputs,
    }
}

#[test]
fn the_four_stage_example_compiles_into_stages_with_their_own_settings() {
    let wf = lookbook();
    let shape: Vec<_> = wf
        .stages
        .iter()
        .map(|s| {
            let fallback = s.fallback.as_ref().map(Target::label);
            let timeout = s.step_timeout.map(|t| t.as_secs());
            (
                s.name.as_str(),
                s.target.label(),
                fallback,
                s.each,
                s.parallel,
                s.max_parallel,
                s.step_retries,
                timeout,
            )
        })
        .collect();
    let variants = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa";
    assert_eq!(
        shape,
        [
            (
                "cutout",
                "acme/rembg",
                None,
                false,
                false,
                None,
                1,
                Some(600)
            ),
            (
                "tryon",
                "acme/tryon",
                Some("acme/tryon-old"),
                true,
                false,
                None,
                2,
                Some(300)
            ),
            (
                "variants",
                variants,
                Some("0ld"),
                true,
                true,
                Some(4),
                1,
                Some(600)
            ),
            ("sheet", "acme/grid", None, false, false, None, 1, Some(600)),
        ]
    );
    assert_eq!(wf.stages[1].target, Target::Model("acme/tryon".into()));
    assert_eq!(wf.stages[2].fallback, Some(Target::Version("0ld".into())));
    assert!(wf.per_item());
    assert_eq!((wf.max_items, wf.task_timeout), (10, None));
}

#[test]
fn the_one_model_form_is_one_chained_stage_named_main_with_the_workflows_settings() {
    let wf = compile(
        r#"
        model = "cuuupid/idm-vton"
        step_retries = 3
        step_timeout = "2m"
        [input]
        human_img = "{{previous.output}}"
        garm_img = "{{item.g}}"
        [first]
        human_img = "{{params.person}}"
        "#,
    )
    .unwrap();
    assert_eq!(wf.stages.len(), 1);
    let main = &wf.stages[0];
    assert_eq!(main.name, "main");
    assert_eq!(main.target, Target::Model("cuuupid/idm-vton".into()));
    assert_eq!(main.fallback, None);
    assert!(main.each && !main.parallel && main.max_parallel.is_none());
    assert_eq!(main.step_retries, 3);
    assert_eq!(main.step_timeout, Some(Duration::from_secs(120)));
    let (params, item, previous) = (json!({"person": "me.png"}), json!({"g": "a"}), json!("o"));
    assert_eq!(
        wf.step_input(0, Some(0), &scope(&params, &item, None))
            .unwrap(),
        json!({"human_img": "me.png", "garm_img": "a"})
    );
    assert_eq!(
        wf.step_input(0, Some(1), &scope(&params, &item, Some(&previous)))
            .unwrap(),
        json!({"human_img": "o", "garm_img": "a"})
    );
}

#[test]
fn a_once_stage_builds_its_one_step_from_params_and_earlier_outputs() {
    let wf = lookbook();
    let params = json!({"person_image": "me.png", "title": "Spring"});
    let cutout = wf
        .step_input(0, None, &scope(&params, &Value::Null, None))
        .unwrap();
    assert_eq!(cutout, json!({"image": "me.png"}));
    let last = json!("https://r8/var2.png");
    let sheet = wf
        .step_input(3, None, &scope(&params, &Value::Null, Some(&last)))
        .unwrap();
    assert_eq!(
        sheet,
        json!({
            "images": ["https://me/var1.png", "https://me/var2.png"],
            "cutout": "https://r8/cut.png",
            "title": "Spring: https://r8/var2.png",
        })
    );
}

#[test]
fn a_chained_stage_reads_its_item_and_the_step_before_it() {
    let wf = lookbook();
    let (params, items) = (json!({}), items());
    let cut = json!("https://r8/cut.png");
    assert_eq!(
        wf.step_input(1, Some(0), &scope(&params, &items[0], Some(&cut)))
            .unwrap(),
        json!({"human_img": "https://r8/cut.png", "garm_img": "shirt.png"})
    );
    let try1 = json!("https://r8/try1.png");
    assert_eq!(
        wf.step_input(1, Some(1), &scope(&params, &items[1], Some(&try1)))
            .unwrap(),
        json!({"human_img": "https://r8/try1.png", "garm_img": "hat.png"})
    );
    let err = wf
        .step_input(1, Some(1), &scope(&params, &items[1], None))
        .unwrap_err();
    assert_eq!(
        err.0,
        "missing `previous.output`, required by the workflow's input"
    );
}

#[test]
fn a_parallel_stage_gives_every_item_the_same_inputs_and_first_only_to_item_one() {
    let wf = lookbook();
    let (params, items) = (json!({}), items());
    let inputs: Vec<Value> = (0..2)
        .map(|i| {
            wf.step_input(2, Some(i), &scope(&params, &items[i], None))
                .unwrap()
        })
        .collect();
    assert_eq!(
        inputs,
        [
            json!({"image": "https://r8/try2.png", "seed": 0}),
            json!({"image": "https://r8/try2.png", "seed": 22}),
        ]
    );
    let err = wf
        .step_input(4, None, &scope(&params, &Value::Null, None))
        .unwrap_err();
    assert_eq!(err.0, "workflow \"lookbook\" has no stage 4");
}

#[test]
fn a_first_chained_stage_reads_previous_only_past_item_one() {
    let text = r#"
        [[stages]]
        name = "dress"
        model = "a/b"
        each = "item"
        [stages.input]
        img = "{{previous.kept_output}}"
        garment = "{{item.g}}"
        [stages.first]
        img = "{{params.me}}"

        [[stages]]
        name = "upscale"
        model = "a/up"
        [stages.input]
        img = "{{previous.output}}"
    "#;
    let wf = compile(text).unwrap();
    let (params, item) = (json!({"me": "me.png"}), json!({"g": "g.png"}));
    assert_eq!(
        wf.step_input(0, Some(0), &scope(&params, &item, None))
            .unwrap(),
        json!({"img": "me.png", "garment": "g.png"})
    );
    let (output, kept) = (json!("https://r8/1.png"), json!("https://me/1.png"));
    let with_kept = Scope {
        previous_kept_output: Some(&kept),
        ..scope(&params, &item, Some(&output))
    };
    assert_eq!(wf.step_input(0, Some(1), &with_kept).unwrap()["img"], kept);
    assert_eq!(
        wf.step_input(1, None, &scope(&params, &Value::Null, Some(&output)))
            .unwrap(),
        json!({"img": "https://r8/1.png"})
    );
}

#[test]
fn items_are_required_only_when_some_stage_runs_per_item() {
    let wf = lookbook();
    let params = json!({"person_image": "me.png", "title": "t"});
    assert_eq!(
        wf.check_start(&params, &items()).unwrap(),
        Some(json!({"image": "me.png"})),
        "step 1 is the cutout, which runs once"
    );
    assert_eq!(
        wf.check_start(&params, &[]).unwrap_err().0,
        "`items` must hold at least one item"
    );

    let video = compile(
        r#"
        [[stages]]
        name = "image"
        model = "a/image"
        [stages.input]
        prompt = "{{params.prompt}}"
        [[stages]]
        name = "video"
        model = "a/video"
        [stages.input]
        start = "{{previous.output}}"
        prompt = "{{params.prompt}}, moving"
        "#,
    )
    .unwrap();
    assert!(!video.per_item());
    let params = json!({"prompt": "a cat"});
    assert_eq!(
        video.check_start(&params, &[]).unwrap(),
        Some(json!({"prompt": "a cat"}))
    );
    assert_eq!(
        video.check_start(&params, &[json!({})]).unwrap_err().0,
        "workflow \"lookbook\" takes no items (none of its stages runs per item): leave \
         `items` out"
    );
    assert_eq!(
        video.check_start(&json!({}), &[]).unwrap_err().0,
        "stage \"image\": missing `params.prompt`, required by the workflow's input"
    );
}

#[test]
fn the_start_check_names_the_stage_and_item_whose_input_cannot_be_built() {
    let wf = lookbook();
    let params = json!({"person_image": "me.png", "title": "t"});
    let mut items = items();
    items[1] = json!({"garment_image": "hat.png"});
    assert_eq!(
        wf.check_start(&params, &items).unwrap_err().0,
        "stage \"variants\", items[1]: missing `item.seed`, required by the workflow's input"
    );
    items[1] = json!({"seed": 1});
    assert_eq!(
        wf.check_start(&params, &items).unwrap_err().0,
        "stage \"tryon\", items[1]: missing `item.garment_image`, required by the workflow's \
         input"
    );
    assert_eq!(
        wf.check_start(&json!({"person_image": "me.png"}), &self::items())
            .unwrap_err()
            .0,
        "stage \"sheet\": missing `params.title`, required by the workflow's input"
    );
    let too_many = vec![self::items()[0].clone(); 11];
    assert!(wf
        .check_start(&params, &too_many)
        .unwrap_err()
        .0
        .contains("takes at most 10"));
}
