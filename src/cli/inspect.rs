//! `stepwise inspect --data-dir DIR`: reads a stopped engine's journal offline: counts by
//! status, unfinished tasks (oldest first, the ones to look at when something is stuck), and
//! one task's journal with `--task ID`.

use super::table::Table;
use anyhow::Context;
use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;
use stepwise_engine::journal::{KvStore, ListQuery, Store};
use stepwise_engine::model::TaskId;
use stepwise_engine::time::rfc3339;

#[derive(Args)]
pub struct InspectArgs {
    /// The data dir of a stopped engine (sled allows one process at a time).
    #[arg(long)]
    data_dir: PathBuf,
    /// Show this task's snapshot and journal.
    #[arg(long)]
    task: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.data_dir.join("db").exists(),
        "{} is not a stepwise data dir",
        args.data_dir.display()
    );
    let store = KvStore::open(&args.data_dir, 16 << 20)
        .context("cannot open the data dir (is the engine still running?)")?;
    if let Some(id) = args.task {
        return show_task(&store, &id, args.json);
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = store.list(&ListQuery {
            limit: 1000,
            cursor,
            ..Default::default()
        })?;
        for task in &page.tasks {
            *counts.entry(task.status.as_str().to_owned()).or_default() += 1;
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut unfinished = store.active()?;
    unfinished.sort_by_key(|t| t.updated_at);
    if args.json {
        let stuck: Vec<_> = unfinished
            .iter()
            .map(|t| serde_json::json!({"id": t.id.to_string(), "workflow": t.workflow, "status": t.status.as_str(), "current_step": t.current_step(), "updated_at": rfc3339(t.updated_at)}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "counts": counts, "unfinished": stuck })
            )?
        );
        return Ok(());
    }
    let mut table = Table::new(&["STATUS", "TASKS"]);
    for (status, count) in &counts {
        table.row(vec![status.clone(), count.to_string()]);
    }
    println!(
        "{}\n\nunfinished, least recently changed first",
        table.render()
    );
    let mut table = Table::new(&["ID", "WORKFLOW", "STATUS", "STEP", "LAST CHANGE"]);
    for task in unfinished.iter().take(50) {
        let step = format!("{}/{}", task.current_step(), task.steps.len());
        table.row(vec![
            task.id.to_string(),
            task.workflow.clone(),
            task.status.as_str().into(),
            step,
            rfc3339(task.updated_at),
        ]);
    }
    println!("{}", table.render());
    Ok(())
}

fn show_task(store: &impl Store, id: &str, json: bool) -> anyhow::Result<()> {
    let task_id: TaskId = id
        .parse()
        .map_err(|_| anyhow::anyhow!("{id:?} is not a task id"))?;
    let task = store
        .task(&task_id)?
        .with_context(|| format!("no task {id} in this data dir"))?;
    let events = store.events(&task_id)?;
    if json {
        let events: Vec<_> = events.iter().map(|(seq, e)| serde_json::json!({"seq": seq, "kind": e.kind(), "at": rfc3339(e.at()), "event": format!("{e:?}")})).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "task": format!("{task:?}"), "events": events })
            )?
        );
        return Ok(());
    }
    println!(
        "{}  {}  {}  step {}/{}",
        task.id,
        task.workflow,
        task.status.as_str(),
        task.current_step(),
        task.steps.len()
    );
    let mut table = Table::new(&["SEQ", "AT", "EVENT"]);
    for (seq, event) in &events {
        table.row(vec![
            seq.to_string(),
            rfc3339(event.at()),
            format!("{event:?}"),
        ]);
    }
    println!("{}", table.render());
    Ok(())
}
