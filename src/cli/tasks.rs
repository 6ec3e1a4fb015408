//! `stepwise tasks list|show|watch|cancel|retry`: the API from a terminal. Human tables by
//! default, `--json` for scripts; the token comes from `STEPWISE_API_TOKEN`.

use super::out::line;
use super::stages;
use super::table::Table;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::Value;

#[derive(Args)]
pub struct TasksArgs {
    /// The server's base URL.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:8080",
        env = "STEPWISE_URL"
    )]
    url: String,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: TaskCommand,
}

#[derive(Subcommand)]
enum TaskCommand {
    /// Tasks, newest first (summaries; `tasks show` has the steps).
    List {
        /// Only tasks in this status: pending, running, succeeded, failed or canceled.
        #[arg(long)]
        status: Option<String>,
        /// Only tasks of this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// Only tasks whose id starts with TEXT or whose params contain it (any case).
        #[arg(long = "q", visible_alias = "search", value_name = "TEXT")]
        q: Option<String>,
        /// Tasks per page (1 to 200).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Where to continue: the cursor a previous page printed.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// One task: its steps, timings, outputs, and its event history.
    Show {
        /// The task id (tsk_...).
        id: String,
    },
    /// Follow a task live until it ends: each step as it finishes, then the task's output.
    Watch {
        /// The task id (tsk_...).
        id: String,
    },
    /// Cancel a task and its running prediction.
    Cancel {
        /// The task id (tsk_...).
        id: String,
    },
    /// Run a failed task again: its failed and canceled steps run again, succeeded ones keep
    /// their outputs.
    Retry {
        /// The task id (tsk_...).
        id: String,
    },
}

pub(super) struct Api {
    pub(super) http: reqwest::Client,
    pub(super) url: String,
    pub(super) token: Option<String>,
}

impl Api {
    /// A request to `path` with the token, if any.
    pub(super) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let request = self.http.request(method, url);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str) -> anyhow::Result<Value> {
        self.send(self.request(method, path)).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body["error"]["message"].as_str().unwrap_or("no message");
            bail!(
                "{} {status}: {message}",
                body["error"]["code"].as_str().unwrap_or("error")
            );
        }
        Ok(body)
    }
}

pub async fn run(args: TasksArgs) -> anyhow::Result<()> {
    let token = std::env::var("STEPWISE_API_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let api = Api {
        http: reqwest::Client::new(),
        url: args.url,
        token,
    };
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    match args.command {
        TaskCommand::List {
            status,
            workflow,
            q,
            limit,
            cursor,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            for (key, value) in [
                ("status", status),
                ("workflow", workflow),
                ("q", q),
                ("cursor", cursor),
            ] {
                if let Some(value) = value {
                    query.push((key, value));
                }
            }
            let request = api.request(get, "/v1/tasks").query(&query);
            let page = api.send(request).await?;
            print(args.json, &page, || list_table(&page))
        }
        TaskCommand::Show { id } => {
            let task = api.call(get.clone(), &format!("/v1/tasks/{id}")).await?;
            let journal = api.call(get, &format!("/v1/tasks/{id}/journal")).await?;
            let both = serde_json::json!({ "task": task, "journal": journal["events"] });
            print(args.json, &both, || {
                format!(
                    "{}\n\nhistory\n{}",
                    task_table(&task),
                    journal_table(&journal)
                )
            })
        }
        TaskCommand::Watch { id } => super::watch::watch(&api, &id, args.json).await,
        TaskCommand::Cancel { id } => {
            let task = api.call(post, &format!("/v1/tasks/{id}/cancel")).await?;
            print(args.json, &task, || task_table(&task))
        }
        TaskCommand::Retry { id } => {
            let task = api.call(post, &format!("/v1/tasks/{id}/retry")).await?;
            print(args.json, &task, || task_table(&task))
        }
    }
}

fn print(json: bool, value: &Value, human: impl FnOnce() -> String) -> anyhow::Result<()> {
    if json {
        line(serde_json::to_string_pretty(value)?)
    } else {
        line(human())
    }
}

pub(super) fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn list_table(page: &Value) -> String {
    let mut table = Table::new(&["ID", "WORKFLOW", "STATUS", "PROGRESS", "CREATED", "ERROR"]);
    for task in page["tasks"].as_array().into_iter().flatten() {
        let cells = [
            "id",
            "workflow",
            "status",
            "progress",
            "created_at",
            "error",
        ];
        table.row(cells.iter().map(|k| text(&task[*k])).collect());
    }
    let mut out = table.render();
    if let Some(cursor) = page["next_cursor"].as_str() {
        out.push_str(&format!("\nmore: --cursor {cursor}"));
    }
    out
}

fn task_table(task: &Value) -> String {
    let mut out = format!(
        "{}  {}  {}  {}\ncreated {}  completed {}\n",
        text(&task["id"]),
        text(&task["workflow"]),
        text(&task["status"]),
        text(&task["progress"]),
        text(&task["created_at"]),
        text(&task["completed_at"]),
    );
    if !task["error"].is_null() {
        out.push_str(&format!("error: {}\n", text(&task["error"])));
    }
    let steps = task["steps"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    out + &steps_table(stages::named(task), steps).render()
}

/// The steps, under a heading per stage when the task has stages worth naming (then with each
/// step's item, and the model it ran on when that was its stage's fallback).
fn steps_table(stages: Option<&[Value]>, steps: &[Value]) -> Table {
    let fallbacks = stages.is_some_and(|stages| {
        steps
            .iter()
            .any(|s| stages::fallback_model(stages, s).is_some())
    });
    let mut header = vec!["STEP"];
    if stages.is_some() {
        header.push("ITEM");
    }
    header.extend(["STATUS", "ATTEMPT"]);
    if fallbacks {
        header.push("MODEL");
    }
    header.extend(["PREDICTION", "STARTED", "COMPLETED", "OUTPUT / ERROR"]);
    let mut table = Table::new(&header);
    let mut stage_shown = None;
    for step in steps {
        let mut row = vec![text(&step["index"])];
        if let Some(stages) = stages {
            if stage_shown != Some(&step["stage"]) {
                stage_shown = Some(&step["stage"]);
                match stages::find(stages, &step["stage"]) {
                    Some((position, _)) => table.section(stages::heading(stages, position, steps)),
                    None => table.section(format!("stage {}", text(&step["stage"]))),
                }
            }
            row.push(stages::item(step));
        }
        row.extend([text(&step["status"]), text(&step["attempt"])]);
        if let (true, Some(stages)) = (fallbacks, stages) {
            row.push(
                stages::fallback_model(stages, step)
                    .unwrap_or("")
                    .to_owned(),
            );
        }
        let result = if step["error"].is_null() {
            text(&step["output"])
        } else {
            text(&step["error"])
        };
        row.extend([
            text(&step["prediction_id"]),
            text(&step["started_at"]),
            text(&step["completed_at"]),
            result,
        ]);
        table.row(row);
    }
    table
}

fn journal_table(journal: &Value) -> String {
    let mut table = Table::new(&["SEQ", "AT", "EVENT", "STEP", "DETAIL"]);
    for event in journal["events"].as_array().into_iter().flatten() {
        let detail = ["prediction_id", "error", "reason"]
            .iter()
            .filter_map(|k| event[*k].as_str().map(|v| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(" ");
        table.row(vec![
            text(&event["seq"]),
            text(&event["at"]),
            text(&event["kind"]),
            text(&event["step"]),
            detail,
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(index: u64, stage: &str, item: Option<u64>, status: &str, model: &str) -> Value {
        json!({"index": index, "stage": stage, "item_index": item, "status": status,
            "attempt": 1, "model": model, "prediction_id": format!("p{index}"),
            "started_at": null, "completed_at": null, "output": format!("o{index}.png"),
            "error": null})
    }

    #[test]
    fn a_pipeline_task_shows_its_steps_under_a_heading_per_stage() {
        let task = json!({
            "id": "tsk_1", "workflow": "lookbook", "status": "running", "progress": "3/5",
            "created_at": "t0", "completed_at": null, "error": null,
            "stages": [
                {"name": "cutout", "model": "acme/rembg", "runs": "once", "max_parallel": null},
                {"name": "tryon", "model": "acme/tryon", "runs": "each", "max_parallel": null},
                {"name": "variants", "model": "acme/variant", "runs": "parallel", "max_parallel": 2},
            ],
            "steps": [
                step(1, "cutout", None, "succeeded", "acme/rembg"),
                step(2, "tryon", Some(0), "succeeded", "acme/tryon"),
                step(3, "tryon", Some(1), "succeeded", "acme/tryon-lite"),
                step(4, "variants", Some(0), "processing", "acme/variant"),
                step(5, "variants", Some(1), "processing", "acme/variant"),
            ],
        });
        let shown = task_table(&task);
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines[0], "tsk_1  lookbook  running  3/5");
        assert!(lines[2].starts_with("STEP  ITEM  STATUS"), "{shown}");
        assert!(
            lines[2].contains("MODEL"),
            "a fallback adds the model column:\n{shown}"
        );
        assert_eq!(
            lines[3],
            "stage 1/3 cutout: acme/rembg, once, 1/1 succeeded"
        );
        assert!(lines[4].starts_with("1     -     succeeded"), "{shown}");
        assert!(lines[6].starts_with("2     0     succeeded"), "{shown}");
        assert_eq!(
            lines[5],
            "stage 2/3 tryon: acme/tryon, each item, chained, 2/2 succeeded"
        );
        assert!(lines[7].contains("acme/tryon-lite"), "{shown}");
        assert_eq!(
            lines[8],
            "stage 3/3 variants: acme/variant, each item, in parallel (at most 2 at once), 0/2 succeeded"
        );
        assert!(lines[10].starts_with("5     1     processing"), "{shown}");
        assert_eq!(lines.len(), 11, "{shown}");
    }

    #[test]
    fn a_one_model_task_shows_a_flat_list_of_steps() {
        let task = json!({
            "id": "tsk_1", "workflow": "tryon", "status": "succeeded", "progress": "1/1",
            "created_at": "t0", "completed_at": "t1", "error": null,
            "stages": [{"name": "main", "model": "acme/tryon", "runs": "each", "max_parallel": null}],
            "steps": [step(1, "main", Some(0), "succeeded", "acme/tryon")],
        });
        let shown = task_table(&task);
        let lines: Vec<&str> = shown.lines().collect();
        assert!(
            lines[2].starts_with("STEP  STATUS     ATTEMPT  PREDICTION"),
            "{shown}"
        );
        assert!(
            lines[3].starts_with("1     succeeded  1        p1"),
            "{shown}"
        );
        assert_eq!(lines.len(), 4, "{shown}");
    }
}
