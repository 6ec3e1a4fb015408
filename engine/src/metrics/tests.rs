//! Every metric rendered with its HELP and TYPE lines and values, series on first use.

use super::*;

fn has_line(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "missing {line:?} in\n{text}"
    );
}

fn has_metric(text: &str, name: &str, help: &str, kind: &str) {
    let head = format!("# HELP {name} {help}\n# TYPE {name} {kind}\n");
    assert!(text.contains(&head), "missing {head:?} in\n{text}");
}

#[test]
fn every_metric_renders_with_its_help_type_and_values() {
    let metrics = Metrics::new();
    metrics.tasks_started("tryon").inc();
    metrics.tasks_started("tryon").inc();
    metrics.tasks_started("say \"hi\"").inc();
    metrics.tasks_finished("tryon", TaskStatus::Succeeded).inc();
    metrics
        .tasks_finished("tryon", TaskStatus::Failed)
        .inc_by(2);
    metrics.step_retries("tryon").inc();
    metrics.call_retries(Call::KeepOutputs).inc();
    metrics.call_retries(Call::Create).inc_by(3);
    metrics
        .rate_limiter_wait(LimiterBucket::Creates)
        .inc_by(0.25);
    metrics
        .rate_limiter_wait(LimiterBucket::Creates)
        .inc_by(0.5);
    metrics.webhook_deliveries(Delivery::Rejected).inc();
    metrics
        .replicate_calls("create", CallStatus::Http(201))
        .inc();
    metrics
        .replicate_calls("create", CallStatus::Http(201))
        .inc();
    metrics.replicate_calls("get", CallStatus::Timeout).inc();
    metrics.tasks_deleted.inc_by(7);
    metrics.journal_commit_seconds.observe(0.002);
    metrics.journal_commit_seconds.observe(5.0);
    metrics.journal_group_tasks.observe(3.0);
    let step = metrics.step_duration("tryon", StepOutcome::Succeeded);
    step.observe(0.5);
    step.observe(5.0);
    let text = metrics.render(&Readings {
        tasks_in_flight: 4,
        tasks_queued: 1,
        tasks_watched: 2,
        creates_waiting: 0,
        recovered: true,
        data_dir_bytes: Some(4096),
    });

    let gauges = [
        ("stepwise_tasks_in_flight", "Unfinished tasks in memory.", 4),
        (
            "stepwise_tasks_queued",
            "Tasks held back by a concurrency cap.",
            1,
        ),
        (
            "stepwise_tasks_watched",
            "Tasks with an open event stream or long poll.",
            2,
        ),
        (
            "stepwise_creates_waiting",
            "Tasks waiting for one of the create calls allowed out at once.",
            0,
        ),
        (
            "stepwise_recovered",
            "1 once recovery after start has finished.",
            1,
        ),
        (
            "stepwise_data_dir_bytes",
            "Size of the files in the data dir.",
            4096,
        ),
    ];
    for (name, help, value) in gauges {
        has_metric(&text, name, help, "gauge");
        has_line(&text, &format!("{name} {value}"));
    }

    let name = "stepwise_tasks_started_total";
    has_metric(&text, name, "Tasks accepted.", "counter");
    has_line(&text, &format!("{name}{{workflow=\"tryon\"}} 2"));
    has_line(&text, &format!("{name}{{workflow=\"say \\\"hi\\\"\"}} 1"));
    let name = "stepwise_tasks_finished_total";
    has_metric(&text, name, "Tasks that ended, by outcome.", "counter");
    has_line(
        &text,
        &format!("{name}{{workflow=\"tryon\",outcome=\"succeeded\"}} 1"),
    );
    has_line(
        &text,
        &format!("{name}{{workflow=\"tryon\",outcome=\"failed\"}} 2"),
    );
    let name = "stepwise_step_retries_total";
    has_metric(&text, name, "Prediction attempts run again.", "counter");
    has_line(&text, &format!("{name}{{workflow=\"tryon\"}} 1"));
    let name = "stepwise_call_retries_total";
    let help = "Calls that failed and will be retried with backoff, by call.";
    has_metric(&text, name, help, "counter");
    has_line(&text, &format!("{name}{{call=\"keep_outputs\"}} 1"));
    has_line(&text, &format!("{name}{{call=\"create\"}} 3"));
    let name = "stepwise_rate_limiter_wait_seconds_total";
    let help = "Time calls waited for the client-side rate limiter.";
    has_metric(&text, name, help, "counter");
    has_line(&text, &format!("{name}{{bucket=\"creates\"}} 0.75"));
    let name = "stepwise_webhook_deliveries_total";
    let help = "Webhook deliveries received, by signature check result.";
    has_metric(&text, name, help, "counter");
    has_line(&text, &format!("{name}{{result=\"rejected\"}} 1"));
    let name = "stepwise_replicate_calls_total";
    let help = "Calls to Replicate by endpoint and HTTP status (or error).";
    has_metric(&text, name, help, "counter");
    has_line(
        &text,
        &format!("{name}{{endpoint=\"create\",status=\"201\"}} 2"),
    );
    has_line(
        &text,
        &format!("{name}{{endpoint=\"get\",status=\"timeout\"}} 1"),
    );
    let name = "stepwise_tasks_deleted_total";
    let help = "Finished tasks deleted after their retention.";
    has_metric(&text, name, help, "counter");
    has_line(&text, &format!("{name} 7"));

    let name = "stepwise_journal_commit_seconds";
    let help = "Time to write and fsync one journal group.";
    has_metric(&text, name, help, "histogram");
    assert!(text.contains(
        "stepwise_journal_commit_seconds_bucket{le=\"0.001\"} 0\n\
         stepwise_journal_commit_seconds_bucket{le=\"0.005\"} 1\n"
    ));
    has_line(&text, "stepwise_journal_commit_seconds_bucket{le=\"5\"} 2");
    assert!(text.contains(
        "stepwise_journal_commit_seconds_bucket{le=\"1800\"} 2\n\
         stepwise_journal_commit_seconds_bucket{le=\"+Inf\"} 2\n\
         stepwise_journal_commit_seconds_sum 5.002\n\
         stepwise_journal_commit_seconds_count 2\n"
    ));
    let name = "stepwise_journal_group_tasks";
    has_metric(
        &text,
        name,
        "Tasks written by one journal group.",
        "histogram",
    );
    has_line(&text, "stepwise_journal_group_tasks_bucket{le=\"2\"} 0");
    has_line(&text, "stepwise_journal_group_tasks_bucket{le=\"5\"} 1");
    has_line(&text, "stepwise_journal_group_tasks_count 1");
    let name = "stepwise_step_duration_seconds";
    let help = "Time from a step's create intent to its end, by outcome.";
    has_metric(&text, name, help, "histogram");
    let labels = "workflow=\"tryon\",outcome=\"succeeded\"";
    has_line(&text, &format!("{name}_bucket{{{labels},le=\"0.25\"}} 0"));
    has_line(&text, &format!("{name}_bucket{{{labels},le=\"0.5\"}} 1"));
    has_line(&text, &format!("{name}_bucket{{{labels},le=\"+Inf\"}} 2"));
    has_line(&text, &format!("{name}_sum{{{labels}}} 5.5"));
    has_line(&text, &format!("{name}_count{{{labels}}} 2"));

    // Prometheus text, not OpenMetrics: no `# EOF`, and one HELP per metric.
    assert!(!text.contains("# EOF"), "{text}");
    assert_eq!(text.matches("# HELP ").count(), 17, "{text}");
}

#[test]
fn series_appear_on_first_use_and_the_data_dir_gauge_only_when_known() {
    let metrics = Metrics::new();
    let text = metrics.render(&Readings::default());
    assert!(!text.contains("stepwise_tasks_started_total"), "{text}");
    assert!(!text.contains("stepwise_data_dir_bytes"), "{text}");
    has_line(&text, "stepwise_tasks_deleted_total 0");
    has_line(&text, "stepwise_recovered 0");

    let with_dir = Readings {
        data_dir_bytes: Some(10),
        ..Readings::default()
    };
    has_line(&metrics.render(&with_dir), "stepwise_data_dir_bytes 10");
    let text = metrics.render(&Readings::default());
    assert!(!text.contains("stepwise_data_dir_bytes"), "{text}");
}

#[test]
fn a_workflow_is_resolved_once_and_its_handles_share_one_series() {
    let metrics = Metrics::new();
    let first = metrics.tasks_started("tryon");
    let again = metrics.tasks_started(&String::from("tryon"));
    first.inc();
    again.inc();
    assert_eq!(metrics.tasks_started("tryon").get(), 2);
    assert_eq!(metrics.workflows.read().map(|w| w.len()).unwrap_or(0), 1);
    // The same label set through the family is the same series.
    let labels = WorkflowLabels {
        workflow: Arc::from("tryon"),
    };
    assert_eq!(metrics.tasks_started.get_or_create(&labels).get(), 2);
}
