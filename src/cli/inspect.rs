//! `stepwise inspect`: reads a stopped engine's journal offline: counts by status, unfinished
//! tasks (oldest first, the ones to look at when something is stuck), and one task's journal
//! with `--task ID`. The data dir comes from the config, as `serve` finds it, unless
//! `--data-dir` names one; a dir a running server holds is refused at once, in one line.

use super::out::line;
use super::table::Table;
use anyhow::Context;
use clap::Args;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use stepwise::serve::startup::{DataDirLock, LockError};
use stepwise_engine::journal::{KvStore, ListQuery, Store};
use stepwise_engine::model::TaskId;
use stepwise_engine::time::rfc3339;
use stepwise_server::render;

#[derive(Args)]
pub struct InspectArgs {
    /// Configuration file whose `storage.data_dir` to read. Default: ./config.toml if
    /// present, else the embedded defaults (as `serve`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Read this data dir instead of the config's.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Show this task's snapshot and journal.
    #[arg(long)]
    task: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => {
            let (config, _) = stepwise::serve::load_config(args.config)?;
            config.engine.storage.data_dir
        }
    };
    anyhow::ensure!(
        data_dir.join("db").exists(),
        "{} is not a stepwise data dir",
        data_dir.display()
    );
    let _lock = lock_unless_in_use(&data_dir)?;
    let store = KvStore::open(&data_dir, 16 << 20).context("cannot open the data dir")?;
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
            .map(|t| serde_json::json!({"id": t.id.to_string(), "workflow": t.workflow, "status": t.status.as_str(), "current_step": t.progress().current, "updated_at": rfc3339(t.updated_at)}))
            .collect();
        line(serde_json::to_string_pretty(
            &serde_json::json!({ "counts": counts, "unfinished": stuck }),
        )?)?;
        return Ok(());
    }
    let mut table = Table::new(&["STATUS", "TASKS"]);
    for (status, count) in &counts {
        table.row(vec![status.clone(), count.to_string()]);
    }
    line(format!(
        "{}\n\nunfinished, least recently changed first",
        table.render()
    ))?;
    let mut table = Table::new(&["ID", "WORKFLOW", "STATUS", "STEP", "LAST CHANGE"]);
    for task in unfinished.iter().take(50) {
        let progress = task.progress();
        let step = format!("{}/{}", progress.current, progress.total);
        table.row(vec![
            task.id.to_string(),
            task.workflow.clone(),
            task.status.as_str().into(),
            step,
            rfc3339(task.updated_at),
        ]);
    }
    line(table.render())
}

fn show_task(store: &impl Store, id: &str, json: bool) -> anyhow::Result<()> {
    let task_id: TaskId = id
        .parse()
        .map_err(|_| anyhow::anyhow!("{id:?} is not a task id"))?;
    let task = store
        .task(&task_id)?
        .with_context(|| format!("no task {id} in this data dir"))?;
    let events: Vec<Value> = store
        .events(&task_id)?
        .iter()
        .map(|(seq, event)| render::event(*seq, event))
        .collect();
    if json {
        let task = serde_json::to_value(render::task(&task, None))?;
        let both = serde_json::json!({ "task": task, "events": events });
        return line(serde_json::to_string_pretty(&both)?);
    }
    let progress = task.progress();
    line(format!(
        "{}  {}  {}  {}/{} steps succeeded",
        task.id,
        task.workflow,
        task.status.as_str(),
        progress.completed,
        progress.total
    ))?;
    let mut table = Table::new(&["SEQ", "AT", "EVENT", "DETAIL"]);
    for event in &events {
        table.row(vec![
            event["seq"].to_string(),
            event["at"].as_str().unwrap_or("-").to_owned(),
            event["kind"].as_str().unwrap_or("-").to_owned(),
            detail(event),
        ]);
    }
    line(table.render())
}

/// An event's fields other than seq, at and kind, as `key=value` pairs.
fn detail(event: &Value) -> String {
    let Some(fields) = event.as_object() else {
        return String::new();
    };
    fields
        .iter()
        .filter(|(key, value)| !matches!(key.as_str(), "seq" | "at" | "kind") && !value.is_null())
        .map(|(key, value)| match value {
            Value::String(text) => format!("{key}={text}"),
            other => format!("{key}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Locks the data dir as `serve` does, held while reading, so a running server is refused at
/// once in one line (rather than waited for, or failed on with sled's message), and no server
/// starts on the dir meanwhile.
fn lock_unless_in_use(data_dir: &Path) -> anyhow::Result<DataDirLock> {
    DataDirLock::try_take(data_dir).map_err(|error| match error {
        LockError::InUse => anyhow::anyhow!(
            "the data dir {} is in use by a running server; stop it or query the API",
            data_dir.display()
        ),
        LockError::Io(error) => {
            anyhow::anyhow!("cannot lock the data dir {}: {error}", data_dir.display())
        }
    })
}
