//! Step-transition latency: the time from the simulator completing step k of a chain to the
//! simulator receiving the create of step k+1, read from the simulator's own timestamps
//! (`completed_at` of one prediction, `created_at` of the next), so the measurement does not
//! depend on the engine reporting on itself.

use super::harness::{Harness, Setup};
use super::stats::Summary;
use super::Report;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Options {
    /// Transitions to measure in each mode.
    #[arg(long, default_value_t = 1000)]
    transitions: usize,
    /// Steps per task (each task gives steps - 1 transitions).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// How long each simulated prediction runs.
    #[arg(long, default_value_t = 1500)]
    prediction_ms: u64,
    /// Only this mode: `webhooks` or `polling`.
    #[arg(long)]
    only: Option<String>,
}

pub async fn run(options: Options) -> anyhow::Result<Report> {
    anyhow::ensure!(options.steps >= 2, "--steps must be at least 2");
    let modes: Vec<(&str, bool)> = [("webhooks", true), ("polling", false)]
        .into_iter()
        .filter(|(name, _)| options.only.as_deref().is_none_or(|only| only == *name))
        .collect();
    let mut table = format!(
        "step transitions ({} steps/task, predictions of {} ms)\n{}\n",
        options.steps,
        options.prediction_ms,
        Summary::header()
    );
    let mut results = serde_json::Map::new();
    for (name, webhooks) in modes {
        let summary = measure(&options, webhooks).await?;
        table.push_str(&summary.row(name));
        table.push('\n');
        results.insert(name.to_owned(), json!(summary));
    }
    Ok(Report {
        table,
        json: json!({ "scenario": "transitions", "steps": options.steps, "prediction_ms": options.prediction_ms, "results": results }),
    })
}

async fn measure(options: &Options, webhooks: bool) -> anyhow::Result<Summary> {
    // The shipped defaults: 1 s first check, backing off to 10 s.
    let setup = Setup {
        prediction_ms: options.prediction_ms,
        webhooks,
        poll_initial_ms: 1000,
        poll_max_ms: 10_000,
        creates_per_minute: None,
    };
    let harness = Harness::start(&setup).await?;
    let tasks = options.transitions.div_ceil(options.steps - 1);
    let mut ids = Vec::with_capacity(tasks);
    for tag in 0..tasks {
        ids.push(harness.start_chain(tag, options.steps).await?);
    }
    let budget = Duration::from_millis(options.prediction_ms * options.steps as u64 * 4)
        + Duration::from_secs(120);
    harness.wait_all(&ids, budget).await?;
    let samples = transitions(&harness.sim.predictions());
    harness.stop().await?;
    let mut samples = samples;
    samples.truncate(options.transitions);
    Ok(Summary::of(&samples))
}

/// For every chain, each step's create time minus the previous step's completion time.
fn transitions(predictions: &[Value]) -> Vec<Duration> {
    let at = |v: &Value| {
        v.as_str()
            .and_then(stepwise_engine::time::parse_rfc3339_micros)
    };
    let mut by_item: HashMap<String, &Value> = HashMap::new();
    for p in predictions {
        if let Some(n) = p["input"]["n"].as_str() {
            by_item.insert(n.to_owned(), p);
        }
    }
    let mut samples = vec![];
    for (n, p) in &by_item {
        let Some((tag, step)) = n.split_once('-') else {
            continue;
        };
        let Ok(step) = step.parse::<usize>() else {
            continue;
        };
        if step == 0 {
            continue;
        }
        let Some(previous) = by_item.get(&format!("{tag}-{}", step - 1)) else {
            continue;
        };
        if let (Some(done), Some(created)) = (at(&previous["completed_at"]), at(&p["created_at"])) {
            samples.push(Duration::from_micros(
                created.saturating_sub(done).max(0) as u64
            ));
        }
    }
    samples
}
