//! `stepwise tasks list|show|watch|cancel|retry`: the API from a terminal. Human tables by
//! default, `--json` for scripts; the token comes from `STEPWISE_API_TOKEN`.

use super::out::line;
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
    /// Run a failed task again from its failed step.
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
    let mut table = Table::new(&[
        "STEP",
        "STATUS",
        "ATTEMPT",
        "PREDICTION",
        "STARTED",
        "COMPLETED",
        "OUTPUT / ERROR",
    ]);
    for step in task["steps"].as_array().into_iter().flatten() {
        let result = if step["error"].is_null() {
            text(&step["output"])
        } else {
            text(&step["error"])
        };
        table.row(vec![
            text(&step["index"]),
            text(&step["status"]),
            text(&step["attempt"]),
            text(&step["prediction_id"]),
            text(&step["started_at"]),
            text(&step["completed_at"]),
            result,
        ]);
    }
    out + &table.render()
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
