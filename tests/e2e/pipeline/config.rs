//! `stepwise check-config` on a workflow whose stages are wrong in several ways at once: every
//! problem is printed in the same run, each naming its key.

use crate::support::*;
use std::process::Command;

/// Every stage mistake the issue names, once each: `{{item.x}}` in a once stage and a forward
/// reference (stage 0), an unknown stage (stage 1), a duplicate name (stage 3).
const BROKEN: &str = r#"
[workflows.bad]
[[workflows.bad.stages]]
name = "a"
model = "test/a"
[workflows.bad.stages.input]
x = "{{item.x}}"
y = "{{stages.c.output}}"
[[workflows.bad.stages]]
name = "b"
model = "test/b"
each = "item"
[workflows.bad.stages.input]
z = "{{stages.nope.output}}"
[[workflows.bad.stages]]
name = "c"
model = "test/c"
[workflows.bad.stages.input]
w = "{{stages.a.output}}"
[[workflows.bad.stages]]
name = "b"
model = "test/d"
[workflows.bad.stages.input]
v = "{{stages.c.output}}"
"#;

#[tokio::test]
async fn check_config_names_every_broken_stage_at_once() {
    let _turn = turn(Load::Light).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("check.toml");
    std::fs::write(&path, BROKEN).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_stepwise"));
    for (variable, _) in std::env::vars_os() {
        let variable = variable.to_string_lossy();
        if variable.starts_with("STEPWISE_") || variable.starts_with("REPLICATE_") {
            command.env_remove(variable.as_ref());
        }
    }
    let output = command.arg("check-config").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == "stepwise: invalid config:")
        .unwrap_or_else(|| panic!("a heading: {stderr}"));
    let problems: Vec<&str> = lines[start + 1..]
        .iter()
        .copied()
        .filter(|l| l.starts_with("  "))
        .collect();
    for key in [
        "workflows.bad.stages[0].input.x",
        "workflows.bad.stages[0].input.y",
        "workflows.bad.stages[1].input.z",
        "workflows.bad.stages[3].name",
    ] {
        let naming = problems
            .iter()
            .filter(|l| l.starts_with(&format!("  {key}: ")))
            .count();
        assert_eq!(naming, 1, "one line names {key}:\n{stderr}");
    }
    assert_eq!(problems.len(), 4, "one line per problem:\n{stderr}");
}
