//! `e2e --pipeline`: a four-stage pipeline (once, per item chained, per item in parallel,
//! once) against the one-model chain of as many steps per task, through the same `e2e`
//! measurement (same simulator, same modes, same task count), so the two differ only in the
//! workflow. Reports each run and, per mode, both workloads' per-step figures (steps/s,
//! allocated disk per step) and their ratio pipeline / chain; the target is within 20 %.
//!
//! Both workloads carry the same payload per step: one `--payload-bytes` string in every
//! step's prediction input and one per step in the start request.

use super::e2e::{self, Options, Run};
use super::e2e_tasks::{bodies, noise};
use super::Report;
use hyper::body::Bytes;
use serde_json::{json, Value};
use std::time::Duration;

/// The pipeline of issue 19's example, each stage a different model of the simulator (all
/// answer alike), and a payload string in every stage's input as the chain's `pad`.
const PIPELINE: &str = r#"
[workflows.pipe]
max_items = 100
[[workflows.pipe.stages]]
name = "cutout"
model = "bench/rembg"
[workflows.pipe.stages.input]
image = "{{params.person_image}}"
pad = "{{params.cutout_pad}}"
[[workflows.pipe.stages]]
name = "tryon"
model = "bench/tryon"
each = "item"
[workflows.pipe.stages.input]
human_img = "{{previous.output}}"
garm_img = "{{item.garment_image}}"
[[workflows.pipe.stages]]
name = "variants"
model = "bench/variant"
each = "item"
parallel = true
[workflows.pipe.stages.input]
image = "{{stages.tryon.output}}"
seed = "{{item.seed}}"
pad = "{{item.pad}}"
[[workflows.pipe.stages]]
name = "sheet"
model = "bench/grid"
[workflows.pipe.stages.input]
images = "{{stages.variants.outputs}}"
pad = "{{params.sheet_pad}}"
"#;

/// What a measured run posts.
#[derive(Clone, Copy, Debug)]
pub enum Workload {
    /// The `padded` workflow: one model, `steps` items chained.
    Chain { steps: usize },
    /// `PIPELINE` over `items` items.
    Pipeline { items: usize },
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Chain { .. } => "chain",
            Workload::Pipeline { .. } => "pipeline",
        }
    }

    pub fn steps_per_task(self) -> usize {
        match self {
            Workload::Chain { steps } => steps,
            Workload::Pipeline { items } => 2 + 2 * items,
        }
    }

    /// Workflows the engine needs beyond the harness's own `chain` and `padded`.
    pub fn workflows(self) -> &'static str {
        match self {
            Workload::Chain { .. } => "",
            Workload::Pipeline { .. } => PIPELINE,
        }
    }

    /// The start bodies of `count` tasks tagged `{prefix}{i}`, built before anything is
    /// timed; every string of `payload_bytes` is different.
    pub fn bodies(self, prefix: &str, count: usize, payload_bytes: usize) -> Vec<Bytes> {
        let items = match self {
            Workload::Chain { steps } => return bodies(prefix, count, steps, payload_bytes),
            Workload::Pipeline { items } => items,
        };
        (0..count)
            .map(|i| {
                let tag = format!("{prefix}{i}");
                let pad = |what: &str| noise(&format!("{tag}-{what}"), payload_bytes);
                let items: Vec<Value> = (0..items)
                    .map(|n| {
                        json!({
                            "garment_image": pad(&format!("g{n}")),
                            "seed": format!("{tag}-{n}"),
                            "pad": pad(&format!("v{n}")),
                        })
                    })
                    .collect();
                let body = json!({
                    "workflow": "pipe",
                    "params": {
                        "person_image": format!("s{tag}"),
                        "cutout_pad": pad("cutout"),
                        "sheet_pad": pad("sheet"),
                    },
                    "items": items,
                });
                serde_json::to_vec(&body).expect("JSON encodes").into()
            })
            .collect()
    }
}

/// One workload's runs in one mode, added up over the rounds.
#[derive(Default)]
struct Totals {
    steps: usize,
    wall: Duration,
    cpu: Duration,
    groups: u64,
    task_writes: u64,
    /// Allocated bytes the data dir grew by from the baseline to every task finished.
    growth: f64,
    /// Journal and archive content after the run, by key kind, and the steps it holds
    /// (warm-up included).
    live: std::collections::BTreeMap<char, u64>,
    live_steps: usize,
}

impl Totals {
    fn add(&mut self, run: &Run, options: &Options) {
        self.steps += run.steps(options);
        self.wall += run.wall;
        self.cpu += run.cpu;
        self.groups += run.groups.0;
        self.task_writes += run.groups.1;
        self.growth += run.finished.allocated_bytes as f64 - run.baseline.allocated_bytes as f64;
        for (kind, _, bytes) in &run.live {
            *self.live.entry(*kind).or_default() += bytes;
        }
        self.live_steps += run.journal_tasks * options.steps;
    }

    fn steps_per_second(&self) -> f64 {
        self.steps as f64 / self.wall.as_secs_f64()
    }

    fn bytes_per_step(&self) -> f64 {
        self.growth / self.steps as f64
    }

    fn cpu_per_step(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.steps as f64
    }

    fn per_step(&self, n: u64) -> f64 {
        n as f64 / self.steps as f64
    }

    fn live_per_step(&self) -> f64 {
        self.live.values().sum::<u64>() as f64 / self.live_steps.max(1) as f64
    }

    fn json(&self) -> Value {
        json!({
            "steps": self.steps,
            "wall_seconds": self.wall.as_secs_f64(),
            "steps_per_second": self.steps_per_second(),
            "allocated_bytes_per_step": self.bytes_per_step(),
            "cpu_us_per_step": self.cpu_per_step(),
            "journal_groups_per_step": self.per_step(self.groups),
            "journal_task_writes_per_step": self.per_step(self.task_writes),
            "stored_bytes_per_step": self.live_per_step(),
            "stored_bytes_per_step_by_kind": self.live.iter().map(|(kind, bytes)| (kind.to_string(), json!(*bytes as f64 / self.live_steps.max(1) as f64))).collect::<serde_json::Map<_, _>>(),
        })
    }
}

pub async fn run(options: Options, items: usize) -> anyhow::Result<Report> {
    let pipeline = Workload::Pipeline { items };
    let steps = pipeline.steps_per_task();
    anyhow::ensure!(
        options.tasks > 0 && items > 0 && options.rounds > 0,
        "--tasks, --pipeline and --rounds must be at least 1"
    );
    anyhow::ensure!(
        steps <= 100,
        "--pipeline must be at most 49 items: the chain runs 2 + 2·ITEMS steps, at most 100"
    );
    let chain = Workload::Chain { steps };
    let options = Options { steps, ..options };

    let mut table = format!(
        "e2e --pipeline: {} tasks x {steps} steps (pipeline: 1 + {items} chained + {items} parallel + 1; chain: {steps} items), {} B payload per step, {}, {} posting clients, {} round(s)\n",
        options.tasks,
        options.payload_bytes,
        match options.prediction_ms {
            0 => "zero-latency simulator".to_string(),
            ms => format!("predictions of {} ms", ms + ms / 5),
        },
        options.clients,
        options.rounds,
    );
    table += &format!(
        "{:<16} {:<9} {:>5} {:>7} {:>7} {:>8} {:>9} {:>8} {:>9} {:>9} {:>9} {:>6}\n",
        "mode",
        "workload",
        "round",
        "steps",
        "wall s",
        "steps/s",
        "B/step",
        "B/task",
        "cpu us/st",
        "groups/st",
        "writes/st",
        "errors"
    );
    let mut modes_json = serde_json::Map::new();
    let mut summary = String::new();
    let mut targets = serde_json::Map::new();
    for (mode, webhooks) in e2e::modes(&options)? {
        let (mut chain_totals, mut pipe_totals) = (Totals::default(), Totals::default());
        let mut rounds = vec![];
        let mut runs_json = vec![];
        for round in 0..options.rounds {
            let order = if round % 2 == 0 {
                [chain, pipeline]
            } else {
                [pipeline, chain]
            };
            let mut speeds = [0.0; 2];
            for workload in order {
                let run = e2e::measure(&options, workload, mode.clone(), webhooks).await?;
                check(&run, &options, workload)?;
                table += &row(&run, &options, workload, round);
                let (totals, speed) = match workload {
                    Workload::Chain { .. } => (&mut chain_totals, &mut speeds[0]),
                    Workload::Pipeline { .. } => (&mut pipe_totals, &mut speeds[1]),
                };
                totals.add(&run, &options);
                *speed = run.steps(&options) as f64 / run.wall.as_secs_f64();
                let mut json = run.json(&options);
                json["workload"] = json!(workload.name());
                json["round"] = json!(round + 1);
                runs_json.push(json);
            }
            rounds.push(speeds[1] / speeds[0]);
        }
        let key = e2e::key(&mode);
        let (text, mut json, [speed_met, disk_met]) =
            compare(&mode, &chain_totals, &pipe_totals, &rounds);
        summary += &text;
        json["runs"] = json!(runs_json);
        targets.insert(
            format!("{key}_pipeline_steps_per_second_within_20_percent"),
            json!(speed_met),
        );
        targets.insert(
            format!("{key}_pipeline_disk_per_step_within_20_percent"),
            json!(disk_met),
        );
        modes_json.insert(key, json);
    }
    table += "B/step, B/task: allocated growth of the data dir over the baseline taken after the warm-up, when every task has finished\n";
    table += "groups/st, writes/st: journal groups committed (each one fdatasync), and task writes in them, per step\n";
    table += &summary;
    let json = json!({
        "scenario": "e2e_pipeline",
        "tasks": options.tasks,
        "items": items,
        "steps_per_task": steps,
        "rounds": options.rounds,
        "prediction_ms": options.prediction_ms,
        "payload_bytes": options.payload_bytes,
        "clients": options.clients,
        "poll_ms": options.poll_ms,
        "modes": modes_json,
        "targets": targets,
    });
    Ok(Report { table, json })
}

/// One run's line of the table.
fn row(run: &Run, options: &Options, workload: Workload, round: usize) -> String {
    let steps = run.steps(options) as f64;
    let growth = run.finished.allocated_bytes as f64 - run.baseline.allocated_bytes as f64;
    format!(
        "{:<16} {:<9} {:>5} {:>7} {:>7.2} {:>8.0} {:>9.0} {:>8.0} {:>9.0} {:>9.3} {:>9.2} {:>6}\n",
        run.mode,
        workload.name(),
        round + 1,
        steps,
        run.wall.as_secs_f64(),
        steps / run.wall.as_secs_f64(),
        growth / steps,
        growth / options.tasks as f64,
        run.cpu.as_secs_f64() * 1e6 / steps,
        run.groups.0 as f64 / steps,
        run.groups.1 as f64 / steps,
        run.errors(),
    )
}

/// One mode's comparison over its rounds: the summary lines, their JSON, and whether the
/// steps/s and the disk targets are met. `rounds` holds each round's steps/s ratio,
/// pipeline / chain.
fn compare(
    mode: &str,
    chain: &Totals,
    pipe: &Totals,
    rounds: &[f64],
) -> (String, Value, [bool; 2]) {
    let speed = pipe.steps_per_second() / chain.steps_per_second();
    let disk = pipe.bytes_per_step() / chain.bytes_per_step();
    let cpu = pipe.cpu_per_step() / chain.cpu_per_step();
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    let per_round: Vec<String> = rounds.iter().map(|r| format!("{r:.2}")).collect();
    let mut text = format!(
        "{mode}: steps/s chain {:.0}, pipeline {:.0}, ratio {speed:.2} (target >= 0.80: {}; by round {}); \
         allocated B/step chain {:.0}, pipeline {:.0}, ratio {disk:.2} (target <= 1.20: {})\n",
        chain.steps_per_second(),
        pipe.steps_per_second(),
        met(speed >= 0.8),
        per_round.join(" "),
        chain.bytes_per_step(),
        pipe.bytes_per_step(),
        met(disk <= 1.2),
    );
    text += &format!(
        "  per step, chain / pipeline: cpu {:.0} / {:.0} us (ratio {cpu:.2}), journal groups {:.4} / {:.4}, task writes {:.2} / {:.2}, stored {:.0} / {:.0} B ({})\n",
        chain.cpu_per_step(),
        pipe.cpu_per_step(),
        chain.per_step(chain.groups),
        pipe.per_step(pipe.groups),
        chain.per_step(chain.task_writes),
        pipe.per_step(pipe.task_writes),
        chain.live_per_step(),
        pipe.live_per_step(),
        by_kind(chain, pipe),
    );
    let json = json!({
        "chain": chain.json(),
        "pipeline": pipe.json(),
        "ratio_steps_per_second": speed,
        "ratio_steps_per_second_by_round": rounds,
        "ratio_allocated_bytes_per_step": disk,
        "ratio_cpu_per_step": cpu,
    });
    (text, json, [speed >= 0.8, disk <= 1.2])
}

/// A run whose tasks did not all succeed with one prediction per step measures something
/// else than the workload: refuse it rather than print its figures.
fn check(run: &Run, options: &Options, workload: Workload) -> anyhow::Result<()> {
    let expected = run.steps(options);
    anyhow::ensure!(
        run.errors() == 0 && run.succeeded == options.tasks && run.predictions == expected,
        "the {} run ({}) is not valid: {} of {} tasks succeeded, {} start errors, {} predictions for {expected} steps",
        workload.name(),
        run.mode,
        run.succeeded,
        options.tasks,
        run.starts.errors,
        run.predictions,
    );
    Ok(())
}

/// Stored bytes per step by key kind, `kind chain/pipeline`.
fn by_kind(chain: &Totals, pipe: &Totals) -> String {
    let kinds: std::collections::BTreeSet<char> =
        chain.live.keys().chain(pipe.live.keys()).copied().collect();
    let per_step = |t: &Totals, kind: char| {
        t.live.get(&kind).copied().unwrap_or(0) as f64 / t.live_steps.max(1) as f64
    };
    kinds
        .into_iter()
        .map(|kind| {
            format!(
                "{kind} {:.0}/{:.0}",
                per_step(chain, kind),
                per_step(pipe, kind)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipeline_start_carries_one_payload_string_per_step_as_the_chain_does() {
        let payload = 100;
        let pipe = Workload::Pipeline { items: 3 };
        let chain = Workload::Chain {
            steps: pipe.steps_per_task(),
        };
        assert_eq!(pipe.steps_per_task(), 8);
        let count = |body: &Bytes| {
            let text = std::str::from_utf8(body).unwrap();
            let value: Value = serde_json::from_str(text).unwrap();
            let strings = |v: &Value| -> Vec<String> {
                let mut found = vec![];
                let mut stack = vec![v.clone()];
                while let Some(v) = stack.pop() {
                    match v {
                        Value::String(s) if s.len() == payload => found.push(s),
                        Value::Array(a) => stack.extend(a),
                        Value::Object(o) => stack.extend(o.into_iter().map(|(_, v)| v)),
                        _ => {}
                    }
                }
                found
            };
            strings(&value).len()
        };
        let (p, c) = (pipe.bodies("t", 2, payload), chain.bodies("t", 2, payload));
        assert_eq!(count(&p[0]), 8);
        assert_eq!(count(&c[0]), 8);
        assert_ne!(p[0], p[1]);
    }
}
