//! The config as a whole: the shipped file, environment overrides, `check-config` output, and
//! every duration key read through `EngineConfig::from_toml`.

use super::*;

#[test]
fn unknown_keys_are_rejected_with_their_name() {
    let err =
        EngineConfig::from_toml("[storage]\ndata_dir = \"x\"\ndata_dri = 1\n", "test").unwrap_err();
    assert!(err.to_string().contains("data_dri"), "{err}");
}

#[test]
fn environment_overrides_secrets() {
    let mut config: EngineConfig = toml::from_str("[replicate]\napi_token = \"file\"").unwrap();
    config.apply_env(|name| (name == "REPLICATE_API_TOKEN").then(|| "env".to_owned()));
    assert_eq!(config.replicate.api_token.as_deref(), Some("env"));
    assert_eq!(config.replicate.webhook_secret, None);
}

#[test]
fn the_masked_config_prints_as_toml_that_reads_back() {
    let mut config: EngineConfig = toml::from_str(
        "[storage]\nretention = \"7d\"\n[workflows.tryon]\nmodel = \"a/b\"\n[workflows.tryon.input]\nx = \"{{item.x}}\"\n",
    )
    .unwrap();
    config.replicate.api_token = Some("r8_secret".into());
    let text = toml::to_string(&config.masked()).unwrap();
    assert!(!text.contains("r8_secret"), "{text}");
    assert!(
        text.contains("api_token = \"***\"") && text.contains("retention = \"7d\""),
        "{text}"
    );
    let again: EngineConfig = toml::from_str(&text).unwrap();
    assert_eq!(again.storage.retention, config.storage.retention);
    assert_eq!(
        again.workflows["tryon"].input,
        config.workflows["tryon"].input
    );
    assert_eq!(
        again.replicate.poll_initial_ms,
        config.replicate.poll_initial_ms
    );
}

#[test]
fn every_duration_key_reads_units_and_bare_numbers_in_the_unit_its_name_promises() {
    let text = "[storage]\nretention = \"36h\"\n\
         [replicate]\npoll_initial = \"500ms\"\npoll_max = 20\nconnect_timeout = \"2s\"\n\
         request_timeout = \"1m\"\nretry_initial_ms = 250\nretry_max_ms = \"1h\"\n\
         safety_poll = \"1m30s\"\n\
         [workflows.w]\nmodel = \"a/b\"\nstep_timeout = \"2m\"\ntask_timeout = 30\n";
    let config = EngineConfig::from_toml(text, "test").unwrap();
    assert_eq!(config.storage.retention, Duration::from_secs(36 * 3600));
    let r = &config.replicate;
    assert_eq!(
        [
            r.poll_initial_ms,
            r.poll_max_ms,
            r.connect_timeout_ms,
            r.request_timeout_ms,
            r.retry_initial_ms,
            r.retry_max_ms,
            r.safety_poll_ms
        ],
        [500, 20_000, 2000, 60_000, 250, 3_600_000, 90_000]
    );
    let w = &config.workflows["w"];
    assert_eq!(w.step_timeout, Some(Duration::from_secs(120)));
    assert_eq!(w.task_timeout, Some(Duration::from_secs(30)));
}

#[test]
fn a_bad_duration_is_refused_naming_its_key_and_the_forms_it_takes() {
    let workflow = "[workflows.w]\nmodel = \"a/b\"\n";
    for (text, key, unit) in [
        (
            "[replicate]\npoll_initial = \"5 parsecs\"\n",
            "`replicate.poll_initial`",
            "seconds",
        ),
        (
            "[replicate]\npoll_initial_ms = \"5 parsecs\"\n",
            "`replicate.poll_initial_ms`",
            "milliseconds",
        ),
        (
            "[replicate]\nsafety_poll_ms = -1\n",
            "`replicate.safety_poll_ms`",
            "milliseconds",
        ),
        (
            "[replicate]\nretry_max = 1.5\n",
            "`replicate.retry_max`",
            "seconds",
        ),
        (
            "[storage]\nretention = \"soon\"\n",
            "`storage.retention`",
            "seconds",
        ),
        (
            "[workflows.x]\nmodel = \"a/b\"\nstep_timeout = \"10x\"\n",
            "`step_timeout`",
            "seconds",
        ),
    ] {
        let err = EngineConfig::from_toml(&format!("{text}{workflow}"), "test").unwrap_err();
        let message = err.to_string();
        assert!(message.contains(key), "{message}");
        assert!(message.contains("\"500ms\", \"2s\", \"10m\""), "{message}");
        assert!(
            message.contains(&format!("whole number of {unit}")),
            "{message}"
        );
    }
}

#[test]
fn zero_is_refused_where_it_would_mean_never_or_at_once() {
    let workflow = "[workflows.w]\nmodel = \"a/b\"\n";
    for (text, key) in [
        (
            "[storage]\nretention = \"0s\"\n",
            "`storage.retention` must be more than zero",
        ),
        (
            "[workflows.x]\nmodel = \"a/b\"\ntask_timeout = 0\n",
            "`task_timeout` must be more than zero",
        ),
        (
            "[replicate]\npoll_initial = \"0ms\"\n",
            "replicate.poll_initial must be at least 1ms",
        ),
    ] {
        let err = EngineConfig::from_toml(&format!("{text}{workflow}"), "test").unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
    }
    let config = EngineConfig::from_toml(
        &format!("[replicate]\nretry_initial_ms = 0\n{workflow}"),
        "test",
    );
    assert_eq!(config.unwrap().replicate.retry_initial_ms, 0, "as before");
}

#[test]
fn a_workflow_without_model_or_version_names_its_key() {
    let err = EngineConfig::from_toml("[workflows.w]\nmax_items = 3\n", "test").unwrap_err();
    assert!(err.to_string().contains("workflows.w"), "{err}");
}

const PIPELINE: &str = r#"
[workflows.lookbook]
max_items = 10
step_retries = 1

[[workflows.lookbook.stages]]
name = "cutout"
model = "acme/rembg"
[workflows.lookbook.stages.input]
image = "{{params.person_image}}"

[[workflows.lookbook.stages]]
name = "tryon"
model = "acme/tryon"
each = "item"
step_retries = 2
step_timeout = "5m"
fallback_model = "acme/tryon-old"
[workflows.lookbook.stages.input]
human_img = "{{previous.output}}"
garm_img = "{{item.garment_image}}"

[[workflows.lookbook.stages]]
name = "variants"
model = "acme/variant"
each = "item"
parallel = true
max_parallel = 4
[workflows.lookbook.stages.input]
image = "{{stages.tryon.output}}"
seed = "{{item.seed}}"
"#;

#[test]
fn a_pipeline_reads_every_stage_key_and_prints_back_to_the_same_stages() {
    let config = EngineConfig::from_toml(PIPELINE, "test").unwrap();
    let stages = &config.workflows["lookbook"].stages;
    assert_eq!(stages.len(), 3);
    let tryon = &stages[1];
    assert_eq!(tryon.name, "tryon");
    assert_eq!(tryon.each.as_deref(), Some("item"));
    assert_eq!(tryon.step_retries, Some(2));
    assert_eq!(tryon.step_timeout, Some(Duration::from_secs(300)));
    assert_eq!(tryon.fallback_model.as_deref(), Some("acme/tryon-old"));
    assert!(stages[2].parallel && stages[2].max_parallel == Some(4));
    assert_eq!(stages[0].step_timeout, None);

    let text = toml::to_string(&config.masked()).unwrap();
    assert!(text.contains("step_timeout = \"5m\""), "{text}");
    assert!(!text.contains("parallel = false"), "{text}");
    let again = EngineConfig::from_toml(&text, "printed").unwrap();
    let names = |c: &EngineConfig| -> Vec<String> {
        c.workflows["lookbook"]
            .stages
            .iter()
            .map(|s| s.name.clone())
            .collect()
    };
    assert_eq!(names(&again), names(&config));
    assert_eq!(
        again.workflows["lookbook"].stages[2].input,
        config.workflows["lookbook"].stages[2].input
    );
}

#[test]
fn a_stage_refuses_unknown_keys_and_bad_durations_naming_them() {
    let typo = PIPELINE.replace("max_parallel = 4", "max_paralel = 4");
    let err = EngineConfig::from_toml(&typo, "test").unwrap_err();
    assert!(err.to_string().contains("max_paralel"), "{err}");
    let bad = PIPELINE.replace("step_timeout = \"5m\"", "step_timeout = \"5 min\"");
    let err = EngineConfig::from_toml(&bad, "test")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`stages[].step_timeout` = \"5 min\""), "{err}");
    let zero = PIPELINE.replace("step_timeout = \"5m\"", "step_timeout = 0");
    let err = EngineConfig::from_toml(&zero, "test")
        .unwrap_err()
        .to_string();
    assert!(err.contains("must be more than zero"), "{err}");
}

#[test]
fn check_config_lists_every_pipeline_problem_with_the_other_sections() {
    let text = format!(
        "[replicate]\npoll_initial = \"0ms\"\n{}",
        PIPELINE
            .replace("name = \"variants\"", "name = \"tryon\"")
            .replace("{{stages.tryon.output}}", "{{stages.sheet.output}}")
    );
    let Err(ConfigError::Invalid(problems)) = EngineConfig::from_toml(&text, "test") else {
        panic!("the config should be invalid");
    };
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].starts_with("replicate.poll_initial"));
    assert!(problems[1].starts_with("workflows.lookbook.stages[2].name: \"tryon\" is already"));
    assert!(problems[2].starts_with("workflows.lookbook.stages[2].input.image: "));
    assert!(problems[2].contains("unknown stage \"sheet\""));
}
