//! `stepwise tasks list|show|watch|cancel|retry`: the API from a terminal. Human tables by
//! default, `--json` for scripts; the token comes from `STEPWISE_API_TOKEN`.

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
    /// Tasks, newest first.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        workflow: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One task: its steps, timings, outputs, and its event history.
    Show { id: String },
    /// Follow a task live until it ends.
    Watch { id: String },
    /// Cancel a task and its running prediction.
    Cancel { id: String },
    /// Run a failed task again from its failed step.
    Retry { id: String },
}

struct Api {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url.trim_end_matches('/')));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
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
            limit,
        } => {
            let mut query = format!("?limit={limit}");
            for (key, value) in [("status", status), ("workflow", workflow)] {
                if let Some(value) = value {
                    query.push_str(&format!("&{key}={value}"));
                }
            }
            let page = api.call(get, &format!("/v1/tasks{query}")).await?;
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
        TaskCommand::Watch { id } => watch(&api, &id, args.json).await,
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
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", human());
    }
    Ok(())
}

fn text(value: &Value) -> String {
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
        out.push_str(&format!("\n(more: --cursor {cursor} on the API)"));
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

/// Follows the task's event stream, one line per change, until the task ends.
async fn watch(api: &Api, id: &str, json: bool) -> anyhow::Result<()> {
    let mut request = api.http.get(format!(
        "{}/v1/tasks/{id}/events",
        api.url.trim_end_matches('/')
    ));
    if let Some(token) = &api.token {
        request = request.bearer_auth(token);
    }
    let mut response = request
        .send()
        .await
        .with_context(|| format!("cannot reach {}", api.url))?;
    if !response.status().is_success() {
        bail!("the server answered {}", response.status());
    }
    let mut events = super::sse::Parser::default();
    while let Some(chunk) = response.chunk().await? {
        for event in events.feed(&chunk) {
            let message: Value = serde_json::from_str(&event.data)
                .with_context(|| format!("event {:?} is not JSON", event.id))?;
            if json {
                println!("{message}");
                continue;
            }
            let task = &message["task"];
            let current = task["steps"].as_array().and_then(|steps| {
                steps
                    .iter()
                    .find(|s| s["status"] != "succeeded" && s["status"] != "pending")
            });
            let step = current
                .map(|s| format!("step {} {}", text(&s["index"]), text(&s["status"])))
                .unwrap_or_default();
            println!(
                "{:>4}  {:<20} {:<10} {:<6} {}",
                text(&message["seq"]),
                text(&message["kind"]),
                text(&task["status"]),
                text(&task["progress"]),
                step
            );
        }
    }
    Ok(())
}
