//! Config errors of `[[stages]]`: each names its key, and a workflow's are reported at once.

use super::super::Workflow;
use crate::config::{LimitsConfig, WorkflowConfig};

fn problems(text: &str) -> Vec<String> {
    let config: WorkflowConfig = toml::from_str(text).unwrap();
    Workflow::compile("w", &config, LimitsConfig::default()).unwrap_err()
}

/// A valid first stage to put a second one after.
const CUTOUT: &str = "[[stages]]\nname = \"cutout\"\nmodel = \"a/cut\"\n";

#[test]
fn each_stage_problem_is_refused_naming_its_key() {
    let cases = [
        (
            "[[stages]]\nmodel = \"a/b\"",
            "workflows.w.stages[0].name: every stage needs a name",
        ),
        (
            "[[stages]]\nname = \"\"\nmodel = \"a/b\"",
            "workflows.w.stages[0].name: every stage needs a name",
        ),
        (
            "[[stages]]\nname = \"Try On\"\nmodel = \"a/b\"",
            "workflows.w.stages[0].name: \"Try On\" may hold only a-z, 0-9, _ and -",
        ),
        (
            "[[stages]]\nname = \"x\"",
            "workflows.w.stages[0] (x): neither model nor version is set",
        ),
        (
            "[[stages]]\nname = \"x\"\nmodel = \"a/b\"\nversion = \"v\"",
            "workflows.w.stages[0] (x): set either model or version, not both",
        ),
        (
            "[[stages]]\nname = \"x\"\nmodel = \"ab\"",
            "workflows.w.stages[0].model: \"ab\" is not of the form owner/name",
        ),
        (
            "[[stages]]\nname = \"x\"\nversion = \" \"",
            "workflows.w.stages[0].version must not be empty",
        ),
        (
            "[[stages]]\nname = \"x\"\nmodel = \"a/b\"\nfallback_model = \"a/\"",
            "workflows.w.stages[0].fallback_model: \"a/\" is not of the form owner/name",
        ),
        (
            "[[stages]]\nname = \"x\"\nmodel = \"a/b\"\nfallback_model = \"a/c\"\n\
             fallback_version = \"v\"",
            "workflows.w.stages[0] (x): set either fallback_model or fallback_version, not both",
        ),
        (
            "[[stages]]\nname = \"x\"\nmodel = \"a/b\"\neach = \"items\"",
            "workflows.w.stages[0].each: \"items\" is not a value it takes",
        ),
        (
            "[[stages]]\nname = \"x\"\nmodel = \"a/b\"\nparallel = true",
            "workflows.w.stages[0].parallel: stage \"x\" runs once",
        ),
        (
            "[[stages]]\nname = \"x\"\nmodel = \"a/b\"\neach = \"item\"\nmax_parallel = 2",
            "workflows.w.stages[0].max_parallel: stage \"x\" is not parallel",
        ),
        (
            "[[stages]]\nname = \"x\"\nmodel = \"a/b\"\neach = \"item\"\nparallel = true\n\
             max_parallel = 0",
            "workflows.w.stages[0].max_parallel must be at least 1",
        ),
        (
            "[[stages]]\nname = \"x\"\nmodel = \"a/b\"\n[stages.input]\nv = \"{{item.v}}\"",
            "workflows.w.stages[0].input.v: stage \"x\" runs once, not per item",
        ),
        (
            "[[stages]]\nname = \"x\"\nmodel = \"a/b\"\n[stages.first]\nv = \"{{previous.output}}\"",
            "workflows.w.stages[0].first.v: the first stage runs once and has no step before it",
        ),
        (
            "[[stages]]\nname = \"x\"\nmodel = \"a/b\"\neach = \"item\"\nparallel = true\n\
             [stages.input]\nv = \"{{previous.output}}\"\n[stages.first]\nv = 1",
            "workflows.w.stages[0].input.v: the first stage runs its items in parallel",
        ),
        (
            "[[stages]]\nname = \"x\"\nmodel = \"a/b\"\neach = \"item\"\n\
             [stages.input]\nv = \"{{previous.output}}\"",
            "workflows.w.stages[0].input.v reads `previous`, which item 1 of the first stage \
             does not have: set workflows.w.stages[0].first.v",
        ),
        (
            "[[stages]]\nname = \"x\"\nmodel = \"a/b\"\neach = \"item\"\n\
             [stages.first]\nv = \"{{previous.output}}\"",
            "workflows.w.stages[0].first.v: item 1 of the first stage has no previous output",
        ),
        (
            "[[stages]]\nname = \"x\"\nmodel = \"a/b\"\n[stages.input]\nv = \"{{stages.x.output}}\"",
            "workflows.w.stages[0].input.v: {{stages.x.output}} is a forward reference",
        ),
        (
            "model = \"a/b\"\n[[stages]]\nname = \"x\"\nmodel = \"a/b\"",
            "workflows.w.model: a workflow with [[workflows.w.stages]] sets model in each stage",
        ),
        (
            "max_items = 1",
            "workflows.w: neither model nor version is set, and it has no [[workflows.w.stages]]",
        ),
    ];
    for (text, expected) in cases {
        let problems = problems(text);
        assert_eq!(problems.len(), 1, "{text}: {problems:?}");
        assert!(problems[0].starts_with(expected), "{text}: {problems:?}");
    }
    let later = [
        (
            "[[stages]]\nname = \"cutout\"\nmodel = \"a/b\"",
            "workflows.w.stages[1].name: \"cutout\" is already the name of stages[0]",
        ),
        (
            "[[stages]]\nname = \"x\"\nmodel = \"a/b\"\n[stages.input]\nv = \"{{stages.y.output}}\"",
            "workflows.w.stages[1].input.v: {{stages.y.output}} reads an unknown stage \"y\"",
        ),
        (
            "[[stages]]\nname = \"x\"\nmodel = \"a/b\"\n[stages.input]\nv = \"{{stages.cutout.out}}\"",
            "workflows.w.stages[1].input.v: {{stages.cutout.out}}: a stage has no field \"out\"",
        ),
    ];
    for (text, expected) in later {
        let problems = problems(&format!("{CUTOUT}{text}"));
        assert_eq!(problems.len(), 1, "{text}: {problems:?}");
        assert!(problems[0].starts_with(expected), "{text}: {problems:?}");
    }
}

#[test]
fn reads_that_every_step_of_a_later_stage_can_make_are_accepted() {
    let text = format!(
        "{CUTOUT}\
         [[stages]]\nname = \"once\"\nmodel = \"a/b\"\n[stages.input]\n\
         v = \"{{{{previous.output}}}}\"\n\
         [stages.first]\nw = \"{{{{previous.kept_output}}}}\"\n\
         [[stages]]\nname = \"fan\"\nmodel = \"a/b\"\neach = \"item\"\nparallel = true\n\
         [stages.input]\nv = \"{{{{previous.output}}}} {{{{stages.once.outputs.0}}}}\"\n"
    );
    let config: WorkflowConfig = toml::from_str(&text).unwrap();
    let wf = Workflow::compile("w", &config, LimitsConfig::default());
    assert!(wf.is_ok(), "{:?}", wf.err());
}

#[test]
fn every_problem_of_a_pipeline_is_reported_at_once_each_under_its_key() {
    let text = r#"
        model = "a/b"
        max_items = 0

        [[stages]]
        model = "a/b"
        version = "v"
        parallel = true
        max_parallel = 0
        [stages.input]
        a = "{{previous.output}}"
        b = "{{item.x}}"

        [[stages]]
        name = "Try On"
        model = "nope"
        each = "items"
        max_parallel = 2
        fallback_model = "x/y"
        fallback_version = "v"
        [stages.input]
        c = "{{stages.later.output}}"
        d = "{{stages.nope.outputs}}"

        [[stages]]
        name = "later"
        model = "a/b"
        fallback_model = "bad"
        [stages.input]
        e = "{{stages.later.output}}"
        f = "{{stages.tryon.kept}}"

        [[stages]]
        name = "later"
        version = "v"
    "#;
    let expected = [
        ("workflows.w.max_items", "must be at least 1"),
        ("workflows.w.model", "sets model in each stage"),
        ("workflows.w.stages[0].name", "every stage needs a name"),
        ("workflows.w.stages[1].name", "may hold only"),
        (
            "workflows.w.stages[3].name",
            "already the name of stages[2]",
        ),
        ("workflows.w.stages[0]: ", "not both"),
        ("workflows.w.stages[0].parallel", "runs once"),
        ("workflows.w.stages[0].max_parallel", "at least 1"),
        ("workflows.w.stages[0].input.a", "no step before it"),
        ("workflows.w.stages[0].input.b", "runs once, not per item"),
        ("workflows.w.stages[1].model", "owner/name"),
        (
            "workflows.w.stages[1] (Try On)",
            "fallback_model or fallback_version",
        ),
        ("workflows.w.stages[1].each", "\"items\""),
        ("workflows.w.stages[1].max_parallel", "is not parallel"),
        ("workflows.w.stages[1].input.c", "forward reference"),
        ("workflows.w.stages[1].input.d", "unknown stage \"nope\""),
        ("workflows.w.stages[2].fallback_model", "owner/name"),
        ("workflows.w.stages[2].input.e", "this stage itself"),
        ("workflows.w.stages[2].input.f", "unknown stage \"tryon\""),
    ];
    let problems = problems(text);
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    for (problem, (key, what)) in problems.iter().zip(expected) {
        assert!(
            problem.starts_with(key) && problem.contains(what),
            "{problem:?} should be at {key} and say {what:?}"
        );
    }
}
