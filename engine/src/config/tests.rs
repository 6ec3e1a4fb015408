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
